"""SavedModel export of a frozen inference graph, as TF Serving loads it.

  saved_model.write_saved_model(frozen, "/tmp/export/saved_model/1",
                                class_names=["T-shirt/top", ...])

Layout: `<base>/<version>/` (TF Serving watches `<base>` and serves the
highest numbered version) with `saved_model.pb`, an empty `variables/`
(the graph is frozen: the weights are constants, batch norm folded) and
`assets/class_names.txt`, one class name per line in class order.

The meta graph is tagged `serve` and has one signature, `serving_default`
(method `tensorflow/serving/predict`):

  inputs   images         float32 [None, H, W, C], pixels in [0, 1]
  outputs  logits         float32 [None, num_classes]
           probabilities  float32 [None, num_classes]
           classes        int64 [None]

It is written with TF1's `SavedModelBuilder` from a session, into a
temporary folder that is renamed into place, so a reader never sees half a
model. `tf.saved_model.load` reads it back (TF2), as do TF Serving and TF1's
`tf.compat.v1.saved_model.load`.
"""

import contextlib
import os
import shutil
import tempfile

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.export import frozen_graph

DIRNAME = "saved_model"
DEFAULT_VERSION = 1
SIGNATURE_KEY = "serving_default"
CLASS_NAMES_ASSET = "class_names.txt"
_ASSET_NODE = "class_names_asset"


def version_dir(base, version=DEFAULT_VERSION):
  """`<base>/<version>`, the folder TF Serving loads a version from."""
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise errors.ConfigError(
        "SavedModel version is %r, expected a positive integer (TF Serving "
        "loads numbered folders)" % (version,))
  return os.path.join(base, str(version))


def class_names_text(class_names):
  """One name per line; names may not contain line breaks."""
  for name in class_names:
    if "\n" in name or "\r" in name:
      raise errors.ConfigError("class name %r holds a line break" % name)
  return "".join("%s\n" % name for name in class_names)


def _signature(graph):
  info = tf.compat.v1.saved_model.utils.build_tensor_info
  inputs = {frozen_graph.INPUT_NAME: info(
      graph.get_tensor_by_name(frozen_graph.INPUT_NAME + ":0"))}
  outputs = {name: info(graph.get_tensor_by_name(name + ":0"))
             for name in frozen_graph.OUTPUT_NAMES}
  return tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
      inputs=inputs, outputs=outputs,
      method_name=tf.compat.v1.saved_model.signature_constants
      .PREDICT_METHOD_NAME)


def _build(frozen, path, class_names, scratch):
  """Writes the SavedModel to `path` (which must not exist)."""
  asset_source = os.path.join(scratch, CLASS_NAMES_ASSET)
  with open(asset_source, "w", encoding="utf-8") as f:
    f.write(class_names_text(class_names))
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.import_graph_def(frozen.graph_def, name="")
    # The builder copies every file named in ASSET_FILEPATHS into assets/.
    asset = tf.constant(asset_source, name=_ASSET_NODE)
    with tf.compat.v1.Session(graph=graph) as sess:
      builder = tf.compat.v1.saved_model.Builder(path)
      builder.add_meta_graph_and_variables(
          sess, [tf.compat.v1.saved_model.tag_constants.SERVING],
          signature_def_map={SIGNATURE_KEY: _signature(graph)},
          assets_collection=[asset], strip_default_attrs=True)
      builder.save()


def write_saved_model(frozen, path, class_names, overwrite=False):
  """Writes `frozen` as a SavedModel folder `path`, atomically.

  Args:
    frozen: frozen_graph.FrozenModel.
    path: the version folder, e.g. `<dir>/saved_model/1` (see version_dir).
    class_names: list of num_classes strings, stored as an asset.
    overwrite: replace an existing `path`.

  Returns:
    Total bytes of the files written.

  Raises:
    ExportError: `path` exists and not `overwrite`, or writing fails (then
      nothing is left: neither a partial folder nor the temporary one).
    ConfigError: the class names do not match the model.
  """
  frozen_graph.refuse_existing(path, overwrite)
  if len(class_names) != frozen.num_classes:
    raise errors.ConfigError(
        "%d class names for a model with %d classes" %
        (len(class_names), frozen.num_classes))
  parent = os.path.dirname(os.path.abspath(path))
  created = []
  folder = parent
  while not os.path.isdir(folder):
    created.append(folder)
    folder = os.path.dirname(folder)
  try:
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp", dir=parent)
  except OSError as e:
    raise errors.ExportError("cannot write %s: %s" % (path, e.strerror or e))
  try:
    staged = os.path.join(scratch, "model")
    _build(frozen, staged, class_names, scratch)
    total = folder_bytes(staged)
    if os.path.lexists(path):
      # A folder cannot be replaced by rename in one step: move the old one
      # into the scratch folder (removed below), then the new one in.
      os.rename(path, os.path.join(scratch, "old"))
    os.rename(staged, path)
    return total
  except BaseException as e:
    with contextlib.suppress(OSError):
      shutil.rmtree(scratch)
    for folder in created:  # Innermost first; only if still empty.
      with contextlib.suppress(OSError):
        os.rmdir(folder)
    if isinstance(e, (OSError, tf.errors.OpError)):
      raise errors.ExportError("cannot write SavedModel %s: %s" % (
          path, " ".join(str(e).split()))) from None
    raise
  finally:
    if os.path.isdir(scratch):
      shutil.rmtree(scratch, ignore_errors=True)


def folder_bytes(path):
  """Total bytes of the files under `path`."""
  total = 0
  for base, _, files in os.walk(path):
    for name in files:
      total += os.path.getsize(os.path.join(base, name))
  return total


def read_class_names(path):
  """The class names of a SavedModel folder's asset, or None if absent."""
  asset = os.path.join(path, "assets", CLASS_NAMES_ASSET)
  if not os.path.isfile(asset):
    return None
  with open(asset, "r", encoding="utf-8") as f:
    return [line.rstrip("\n") for line in f]
