r"""Classifies images with any exported model and prints the class names.

Usage:
  distill-v1-predict --model_file=/tmp/export/model_int8.tflite \
      --images=shoe.png,shirt.png
  distill-v1-predict --model_file=/tmp/export/saved_model \
      --images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
      --labels=/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz \
      --max_images=10 --top_k=3
  distill-v1-predict --model_file=/tmp/export/frozen_graph.pb \
      --images=batch.npz --npz_key=x_test

--model_file is a `.tflite` file (run by the LiteRT / TFLite interpreter;
int8 models are fed quantized input), a frozen GraphDef `.pb` (imported
into a session) or a SavedModel folder (`saved_model/` or
`saved_model/1/`, loaded with tf.saved_model.load); graphs are checked
against the safe loader's op allow-list before they run.

--images is a comma-separated list of PNG files (decoded by
tf.io.decode_png, converted to the model's channels), IDX image files (raw
or gzip, as MNIST ships them) and npz files (array --npz_key, default
x_test, else the only array). Pixels are uint8 0..255 (scaled to [0, 1])
or floats already in [0, 1]; images must have the model's height and width.

Class names come from --class_names (one per line), else the export's own
(class_names.txt or export.json beside the file, the SavedModel's asset),
else class_<i>. One line per image: `<source>[<index>]: <name> <prob>%`.
With --labels (IDX or npz labels for the same images), the accuracy too.

Bad input ends with one line `predict: error: ...` on stderr and a non-zero
exit code (2 data, 3 configuration, 5 unsafe graph).
"""

import json
import os

from absl import app
from absl import flags
import numpy as np

if __package__:
  from . import common_flags  # pylint: disable=g-import-not-at-top
else:
  import common_flags  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "model_file", None,
    "Exported model: a .tflite file, a frozen GraphDef .pb, or a SavedModel "
    "folder.")
flags.DEFINE_list(
    "images", None,
    "Comma-separated image files: .png, IDX (e.g. t10k-images-idx3-ubyte.gz) "
    "or .npz.")
flags.DEFINE_string("npz_key", None,
                    "Array of the npz files holding images (default: x_test, "
                    "else the only array).")
flags.DEFINE_string(
    "labels", None,
    "Optional labels of the images (IDX file, or npz with y_test): prints "
    "the accuracy too.")
flags.DEFINE_string(
    "class_names", None,
    "Text file with one class name per line (default: the export's).")
flags.DEFINE_integer("top_k", 1, "Classes printed per image, most probable "
                     "first.", lower_bound=1)
flags.DEFINE_integer("max_images", None,
                     "Classify at most this many images (default: all).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 500, "Images per model call.",
                     lower_bound=1)
flags.DEFINE_boolean(
    "allow_unsafe_ops", False,
    "Run graphs holding ops outside the safe loader's allow-list (file or "
    "network I/O, Python calls). Only for files you trust.")

flags.mark_flag_as_required("model_file")
flags.mark_flag_as_required("images")
flags.register_validator("model_file", bool,
                         message="--model_file must not be empty")
flags.register_validator("images", bool,
                         message="--images must name at least one file")

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _to_unit_range(array, source):
  """uint8 0..255 -> float32 / 255; floats must already be in [0, 1]."""
  from distill_v1 import errors  # pylint: disable=g-import-not-at-top
  array = np.asarray(array)
  if array.dtype == np.uint8:
    return array.astype(np.float32) / 255.0
  if array.dtype.kind == "f":
    if array.size and (np.nanmin(array) < 0.0 or np.nanmax(array) > 1.0 or
                       np.isnan(array).any()):
      raise errors.DataError(
          "%s holds float pixels in [%g, %g], expected [0, 1] (or uint8 "
          "0..255)" % (source, np.nanmin(array), np.nanmax(array)))
    return array.astype(np.float32)
  raise errors.DataError("%s holds %s pixels, expected uint8 or float" %
                         (source, array.dtype.name))


def _with_channels(images, source):
  """[N, H, W] -> [N, H, W, 1]; [N, H, W, C] unchanged."""
  from distill_v1 import errors  # pylint: disable=g-import-not-at-top
  if images.ndim == 3:
    return images[..., np.newaxis]
  if images.ndim == 4:
    return images
  raise errors.DataError("%s holds an array of shape %s, expected images "
                         "[N, H, W] or [N, H, W, C]" %
                         (source, list(images.shape)))


def _read_png(path, channels):
  from distill_v1 import errors  # pylint: disable=g-import-not-at-top
  from distill_v1.compat import tf  # pylint: disable=g-import-not-at-top
  with open(path, "rb") as f:
    data = f.read()
  try:
    image = tf.io.decode_png(data, channels=channels or 0).numpy()
  except (tf.errors.InvalidArgumentError, ValueError) as e:
    raise errors.DataError("cannot decode PNG %s: %s" % (
        path, " ".join(str(e).split())[:200])) from None
  return _to_unit_range(image, path)[np.newaxis]


def _read_npz(path, key):
  from distill_v1 import errors  # pylint: disable=g-import-not-at-top
  try:
    with np.load(path, allow_pickle=False) as npz:
      keys = list(npz.keys())
      if key is None:
        key = "x_test" if "x_test" in keys else (keys[0] if len(keys) == 1
                                                 else None)
      if key is None or key not in keys:
        raise errors.DataError(
            "%s has arrays %s; pass --npz_key to say which holds the images"
            % (path, ", ".join(keys) or "(none)"))
      array = npz[key]
  except (OSError, ValueError) as e:
    raise errors.DataError("cannot read %s as npz: %s" % (path, e)) from None
  return _with_channels(_to_unit_range(array, "%s[%s]" % (path, key)),
                        "%s[%s]" % (path, key))


def read_image_file(path, channels=None, npz_key=None):
  """float32 [N, H, W, C] in [0, 1] from a PNG, npz or IDX file."""
  from distill_v1 import errors  # pylint: disable=g-import-not-at-top
  from distill_v1.data import idx  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise errors.DataError("image file %s not found" % path)
  with open(path, "rb") as f:
    head = f.read(8)
  if head == _PNG_MAGIC:
    return _read_png(path, channels)
  if path.endswith(".npz") or head.startswith(b"PK"):
    return _read_npz(path, npz_key)
  return _with_channels(_to_unit_range(idx.read_images(path), path), path)


def read_labels_file(path, num_classes):
  from distill_v1.data import idx  # pylint: disable=g-import-not-at-top
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as npz:
      labels = np.asarray(npz["y_test"] if "y_test" in npz else
                          npz[list(npz.keys())[0]]).astype(np.int64)
    idx.check_labels(labels, num_classes, path)
    return labels
  return idx.read_labels(path, num_classes)


def _read_lines(path):
  with open(path, "r", encoding="utf-8") as f:
    return [line.rstrip("\r\n") for line in f if line.strip()]


def export_class_names(model_path):
  """Class names stored with an export, or None."""
  # pylint: disable=g-import-not-at-top
  from distill_v1.export import saved_model as saved_model_lib
  # pylint: enable=g-import-not-at-top
  folder = model_path if os.path.isdir(model_path) else os.path.dirname(
      os.path.abspath(model_path))
  candidates = [folder]
  if os.path.isdir(model_path):
    names = saved_model_lib.read_class_names(model_path)
    if names:
      return names
    # saved_model/1/ -> the export folder two levels up.
    candidates += [os.path.dirname(folder), os.path.dirname(
        os.path.dirname(folder))]
  for candidate in candidates:
    text = os.path.join(candidate, "class_names.txt")
    if os.path.isfile(text):
      return _read_lines(text)
    manifest = os.path.join(candidate, "export.json")
    if os.path.isfile(manifest):
      with open(manifest, "r", encoding="utf-8") as f:
        names = json.load(f).get("class_names")
      if names:
        return list(names)
  return None


def _softmax(logits):
  logits = np.asarray(logits, np.float64)
  shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
  return shifted / shifted.sum(axis=1, keepdims=True)


def predict():
  """Loads --model_file, classifies --images, prints one line per image."""
  # pylint: disable=g-import-not-at-top
  from distill_v1 import errors
  from distill_v1.evaluation import verify_runner
  # pylint: enable=g-import-not-at-top
  model = verify_runner.load_exported_model(
      FLAGS.model_file, allow_unsafe_ops=FLAGS.allow_unsafe_ops)
  channels = model.image_shape[2] if model.image_shape else None
  sources, batches = [], []
  remaining = FLAGS.max_images
  for path in FLAGS.images:
    if remaining is not None and remaining <= 0:
      break
    images = read_image_file(path, channels, FLAGS.npz_key)
    if remaining is not None:
      images = images[:remaining]
      remaining -= len(images)
    if model.image_shape and tuple(images.shape[1:]) != tuple(
        model.image_shape):
      raise errors.DataError(
          "%s holds images of shape %s; the model takes %s (height, width, "
          "channels)" % (path, list(images.shape[1:]),
                         list(model.image_shape)))
    sources.extend((path, i) for i in range(len(images)))
    batches.append(images)
  images = np.concatenate(batches, axis=0)
  logits = model.predict(images, batch_size=FLAGS.batch_size)
  num_classes = logits.shape[1]
  if FLAGS.class_names:
    class_names = _read_lines(FLAGS.class_names)
    source = FLAGS.class_names
  else:
    class_names = export_class_names(FLAGS.model_file)
    source = "the export"
  if class_names is None:
    class_names = ["class_%d" % c for c in range(num_classes)]
  elif len(class_names) != num_classes:
    raise errors.ConfigError(
        "%d class names in %s but the model has %d classes" %
        (len(class_names), source, num_classes))
  probabilities = _softmax(logits)
  top_k = min(FLAGS.top_k, num_classes)
  order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
  for (path, index), ranked, probs in zip(sources, order, probabilities):
    print("%s[%d]: %s" % (os.path.basename(path), index, ", ".join(
        "%s %.1f%%" % (class_names[c], 100.0 * probs[c]) for c in ranked)))
  result = {"classes": order[:, 0], "class_names": class_names,
            "probabilities": probabilities}
  if FLAGS.labels:
    labels = read_labels_file(FLAGS.labels, num_classes)[:len(images)]
    if len(labels) != len(images):
      raise errors.DataError("%s has %d labels for %d images" %
                             (FLAGS.labels, len(labels), len(images)))
    accuracy = float(np.mean(order[:, 0] == labels))
    print("accuracy: %.2f%% (%d images, %s)" % (100.0 * accuracy, len(images),
                                                model.runtime))
    result["accuracy"] = accuracy
  model.close()
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  common_flags.run_guarded("predict", predict)


def run():
  """Console-script entry point (`distill-v1-predict`)."""
  app.run(main)


if __name__ == "__main__":
  run()
