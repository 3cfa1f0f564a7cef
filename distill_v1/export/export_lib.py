"""Exports a checkpoint in every serving format, into one folder, atomically.

  result = export_lib.export_checkpoint("/tmp/cnn_student", "/tmp/export",
                                        verifier=verify.Verifier())

writes into `/tmp/export`:

  frozen_graph.pb               frozen GraphDef, batch norm folded
  saved_model/1/                SavedModel, `serving_default` signature
  model_float32.tflite          TFLite, float32
  model_dynamic_range.tflite    TFLite, int8 weights, float input/output
  model_float16.tflite          TFLite, float16 weights
  model_int8.tflite             TFLite, full int8, int8 input and output
  class_names.txt               one class name per line, in class order
  export.json                   what was exported: model, checkpoint, input
                                and output names and shapes, the int8
                                quantization parameters, file sizes, the
                                size line and the verification report

Everything is written to a staging folder beside the output folder, checked
(the lint before TFLite conversion, the verifier's run of every file in its
real runtime), and only then moved into place: a failure leaves nothing
behind, and an existing target is refused unless `overwrite=True`.

Hooks for compression, passed down by the caller (this module never imports
`compression/`): `network_fn` (any nets_factory-style function),
`custom_getter` (a variable custom getter: pruning masks, fake-quantized
kernels), `graph_hook(logits, end_points) -> logits`, and
`configure_converter(converter, variant)` to adjust a TFLite converter.
"""

import collections
import contextlib
import json
import os
import shutil
import tempfile

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf
from distill_v1.data import datasets
from distill_v1.export import frozen_graph
from distill_v1.export import saved_model as saved_model_lib
from distill_v1.export import tflite
from distill_v1.models import nets_factory

FROZEN_GRAPH = "frozen_graph"
SAVED_MODEL = "saved_model"
FORMATS = (FROZEN_GRAPH, SAVED_MODEL) + tflite.VARIANTS
CLASS_NAMES_FILENAME = "class_names.txt"
MANIFEST_FILENAME = "export.json"
DEFAULT_DATASET = "fashion_mnist"


def format_path(format_name,
                saved_model_version=saved_model_lib.DEFAULT_VERSION):
  """The path of a format's file relative to the export folder."""
  if format_name == FROZEN_GRAPH:
    return frozen_graph.FILENAME
  if format_name == SAVED_MODEL:
    return saved_model_lib.version_dir(saved_model_lib.DIRNAME,
                                       saved_model_version)
  if format_name in tflite.VARIANTS:
    return tflite.filename(format_name)
  raise errors.ConfigError("export format %r is not one of %s" %
                           (format_name, ", ".join(FORMATS)))


def parse_formats(formats):
  """A list of formats from a list or a comma-separated string; "all" = all.

  Raises:
    ConfigError: unknown or repeated names, or none.
  """
  if isinstance(formats, str):
    formats = [f.strip() for f in formats.split(",") if f.strip()]
  formats = list(formats)
  if formats == ["all"]:
    return list(FORMATS)
  unknown = [f for f in formats if f not in FORMATS]
  if unknown or not formats or len(set(formats)) != len(formats):
    raise errors.ConfigError(
        "formats %s: expected distinct names among %s (or 'all')" %
        (",".join(formats) or "(none)", ", ".join(FORMATS)))
  return [f for f in FORMATS if f in formats]


ModelSetup = collections.namedtuple("ModelSetup", [
    "model", "options", "scope", "network_fn", "num_classes", "image_shape",
    "class_names", "dataset"])


def model_setup(prefix, model=None, model_options=None, network_fn=None,
                scope=None, num_classes=None, image_shape=None,
                class_names=None):
  """What to build for a checkpoint: from arguments, else model_spec.json.

  Returns:
    ModelSetup.

  Raises:
    CheckpointError: no model_spec.json and not enough arguments.
    ConfigError: unknown model or options.
  """
  folder = os.path.dirname(prefix) or "."
  spec = {}
  if os.path.exists(os.path.join(folder, checkpoints.MODEL_SPEC_FILENAME)):
    spec = checkpoints.read_model_spec(folder)
  elif model is None or num_classes is None or image_shape is None:
    checkpoints.read_model_spec(folder)  # Raises, naming the file.
  model = model or spec.get("model")
  if model_options is None:
    model_options = (spec.get("model_options") or {}) if (
        spec.get("model") == model) else {}
  if network_fn is None:
    network_fn = nets_factory.get_network_fn(model, **model_options)
  num_classes = int(num_classes or spec["num_classes"])
  image_shape = nets_factory.check_image_shape(image_shape or
                                               spec["image_shape"])
  names = list(class_names or spec.get("class_names") or [])
  if len(names) != num_classes:
    names = ["class_%d" % c for c in range(num_classes)]
  return ModelSetup(model=model, options=dict(model_options),
                    scope=scope or model, network_fn=network_fn,
                    num_classes=num_classes, image_shape=image_shape,
                    class_names=names, dataset=spec.get("dataset"))


def _targets(formats, saved_model_version):
  paths = [format_path(f, saved_model_version) for f in formats]
  return paths + [CLASS_NAMES_FILENAME, MANIFEST_FILENAME]


def existing_targets(out_dir, formats,
                     saved_model_version=saved_model_lib.DEFAULT_VERSION):
  """The target paths (relative) that already exist in `out_dir`."""
  return [p for p in _targets(formats, saved_model_version)
          if os.path.lexists(os.path.join(out_dir, p))]


def _check_splits(splits, setup):
  if tuple(splits.image_shape) != tuple(setup.image_shape):
    raise errors.DataError(
        "the checkpoint's model takes images %s but data set %s has images "
        "%s" % (list(setup.image_shape), splits.name,
                list(splits.image_shape)))
  if splits.num_classes != setup.num_classes:
    raise errors.DataError(
        "the checkpoint's model has %d classes but data set %s has %d" %
        (setup.num_classes, splits.name, splits.num_classes))


def _publish(staging, out_dir, relative_paths):
  """Moves the staged entries into `out_dir`, undoing all on a failure.

  Each entry is replaced by a rename (atomic for files; a folder is moved
  aside first). If a rename fails, the entries already moved are moved back
  and the replaced ones restored.
  """
  aside = os.path.join(staging, ".replaced")
  done = []  # (target, old copy or None)
  try:
    for i, rel in enumerate(relative_paths):
      source = os.path.join(staging, rel)
      target = os.path.join(out_dir, rel)
      os.makedirs(os.path.dirname(target), exist_ok=True)
      old = None
      if os.path.lexists(target):
        old = os.path.join(aside, str(i))
        os.makedirs(aside, exist_ok=True)
        os.rename(target, old)
      done.append((source, target, old))
      os.rename(source, target)
  except OSError as e:
    for source, target, old in reversed(done):
      with contextlib.suppress(OSError):
        if os.path.lexists(target) and not os.path.lexists(source):
          os.rename(target, source)
        if old is not None:
          os.rename(old, target)
    raise errors.ExportError("cannot move the export into %s: %s" %
                             (out_dir, e.strerror or e)) from None


def _json_default(value):
  if hasattr(value, "item"):
    return value.item()
  if hasattr(value, "tolist"):
    return value.tolist()
  raise TypeError("not JSON serializable: %r" % (value,))


def export_checkpoint(checkpoint, out_dir, formats=FORMATS, overwrite=False,
                      model=None, model_options=None, network_fn=None,
                      scope=None, custom_getter=None, graph_hook=None,
                      splits=None, dataset=None, data_dir=None,
                      num_calibration_examples=(
                          tflite.DEFAULT_CALIBRATION_EXAMPLES),
                      seed=0, saved_model_version=(
                          saved_model_lib.DEFAULT_VERSION),
                      fold_batch_norm=True, configure_converter=None,
                      verifier=None, session_config=None):
  """Exports a checkpoint into `out_dir`.

  Args:
    checkpoint: checkpoint prefix or training directory (latest checkpoint).
    out_dir: output folder (created if needed).
    formats: list (or comma-separated string) of FORMATS.
    overwrite: replace existing targets instead of refusing.
    model, model_options: network name and options; default: those of
      model_spec.json beside the checkpoint.
    network_fn: a network function to use instead of the zoo's (e.g. a
      structurally pruned or fake-quantized variant); its variables must be
      under `scope` as in the checkpoint.
    scope: variable scope of the model in the checkpoint (default: model).
    custom_getter: variable custom getter around the network.
    graph_hook: `fn(logits, end_points) -> logits` after the network.
    splits: datasets.DataSplits; default: loaded from `dataset` /
      `data_dir` (only when int8 or verification needs data).
    dataset, data_dir: data set name and folder; default: model_spec.json's.
    num_calibration_examples: training images calibrating int8.
    seed: seed of the calibration sample.
    saved_model_version: the version folder under saved_model/.
    fold_batch_norm: fold batch norm into the kernels.
    configure_converter: optional `fn(converter, variant)` applied to each
      TFLite converter before it converts.
    verifier: optional object with `reference(sess, inference, splits)` and
      `verify(export_dir, files, frozen) -> report` (evaluation.verify's
      Verifier); a failing verification aborts the export.
    session_config: optional tf.compat.v1.ConfigProto.

  Returns:
    The manifest dict also written to export.json: "model", "checkpoint",
    "output_dir", "image_shape", "num_classes", "class_names", "input",
    "outputs", "files" ({format: {"path", "bytes"}}), "tflite"
    ({variant: io details}), "folded_batch_norms", "verification".

  Raises:
    ExportError: a target exists (and not overwrite), the lint or the
      converter fails, verification fails, or writing fails. Nothing is left
      in out_dir then.
    CheckpointError, ConfigError, DataError: bad checkpoint or arguments.
  """
  formats = parse_formats(formats)
  prefix = checkpoints.resolve_checkpoint(checkpoint)
  setup = model_setup(prefix, model=model, model_options=model_options,
                      network_fn=network_fn, scope=scope)
  out_dir = os.path.abspath(out_dir)
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise errors.ExportError("output folder %s is a file" % out_dir)
  existing = existing_targets(out_dir, formats, saved_model_version)
  if existing and not overwrite:
    raise errors.ExportError(
        "export target(s) already exist in %s: %s; pass --overwrite "
        "(overwrite=True) to replace them" % (out_dir, ", ".join(existing)))
  needs_data = tflite.INT8 in formats or verifier is not None
  if needs_data and splits is None:
    splits = datasets.load_dataset(
        dataset or setup.dataset or DEFAULT_DATASET, data_dir=data_dir)
  if splits is not None:
    _check_splits(splits, setup)
  calibration = None
  if tflite.INT8 in formats:
    calibration = tflite.calibration_images(
        splits.train_images, num_calibration_examples, seed=seed)

  parent = os.path.dirname(out_dir)
  created_out_dir = not os.path.exists(out_dir)
  try:
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="." + os.path.basename(out_dir) +
                               ".export-", dir=parent)
    # mkdtemp makes the folder private (0700); a new export folder gets the
    # permissions os.makedirs would give it.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
  except OSError as e:
    raise errors.ExportError("cannot write into %s: %s" %
                             (parent, e.strerror or e)) from None
  try:
    with frozen_graph.restored_inference_graph(
        prefix, setup.network_fn, setup.image_shape, setup.num_classes,
        scope=setup.scope, custom_getter=custom_getter,
        graph_hook=graph_hook, session_config=session_config) as (
            sess, inference):
      if verifier is not None:
        verifier.reference(sess, inference, splits)
      frozen = frozen_graph.freeze_session(sess, inference,
                                           fold_batch_norm=fold_batch_norm)

    files = collections.OrderedDict()
    tflite_details = collections.OrderedDict()
    sizes = collections.OrderedDict()
    for format_name in formats:
      rel = format_path(format_name, saved_model_version)
      path = os.path.join(staging, rel)
      if format_name == FROZEN_GRAPH:
        sizes[format_name] = frozen_graph.write_frozen_graph(
            frozen.graph_def, path)
      elif format_name == SAVED_MODEL:
        sizes[format_name] = saved_model_lib.write_saved_model(
            frozen, path, setup.class_names)
      else:
        configure = None
        if configure_converter is not None:
          configure = (lambda converter, v=format_name:
                       configure_converter(converter, v))
        data = tflite.convert(frozen, format_name,
                              representative_images=calibration,
                              configure=configure)
        sizes[format_name] = tflite.write_tflite(data, path)
        tflite_details[format_name] = tflite.io_details(data)
      files[format_name] = rel
    fileio.write_text(os.path.join(staging, CLASS_NAMES_FILENAME),
                      saved_model_lib.class_names_text(setup.class_names))

    report = None
    if verifier is not None:
      report = verifier.verify(staging, files, frozen)

    manifest = collections.OrderedDict([
        ("model", setup.model),
        ("model_options", setup.options),
        ("checkpoint", os.path.abspath(prefix)),
        ("output_dir", out_dir),
        ("image_shape", list(setup.image_shape)),
        ("num_classes", setup.num_classes),
        ("class_names", setup.class_names),
        ("input", {"name": frozen_graph.INPUT_NAME, "dtype": "float32",
                   "shape": [None] + list(setup.image_shape),
                   "range": [0.0, 1.0]}),
        ("outputs", {
            frozen_graph.LOGITS: {"dtype": "float32",
                                  "shape": [None, setup.num_classes]},
            frozen_graph.PROBABILITIES: {"dtype": "float32",
                                         "shape": [None, setup.num_classes]},
            frozen_graph.CLASSES: {"dtype": "int64", "shape": [None]}}),
        ("files", collections.OrderedDict(
            (f, {"path": files[f], "bytes": sizes[f]}) for f in files)),
        ("tflite", tflite_details),
        ("folded_batch_norms", frozen.folded),
        ("tensorflow", tf.__version__),
        ("verification", report),
    ])
    fileio.write_text(os.path.join(staging, MANIFEST_FILENAME),
                      json.dumps(manifest, indent=2,
                                 default=_json_default) + "\n")
    entries = list(files.values()) + [CLASS_NAMES_FILENAME, MANIFEST_FILENAME]
    if created_out_dir and not os.path.exists(out_dir):
      # A new folder: one rename publishes everything at once.
      os.rename(staging, out_dir)
    else:
      _publish(staging, out_dir, entries)
    return manifest
  except OSError as e:
    raise errors.ExportError("cannot write the export into %s: %s" %
                             (out_dir, e.strerror or e)) from None
  finally:
    if os.path.isdir(staging):
      shutil.rmtree(staging, ignore_errors=True)
