"""Evaluates a checkpoint end to end: accuracy, loss, size, FLOPs, latency.

The network is rebuilt from `model_spec.json` beside the checkpoint (name,
options, class count, image shape) under the variable scope named after the
model, checked against the checkpoint's variable names and shapes, restored
(model variables only: global_step and optimizer slots stay on disk), and run
on the test split.

Usage:

  result = evaluate_lib.evaluate_checkpoint("/tmp/train")   # latest ckpt
  print(evaluate_lib.format_table(result))
  evaluate_lib.write_json(result, "/tmp/train/eval.json")
"""

import json
import math
import os

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf
from distill_v1.data import datasets
from distill_v1.evaluation import accuracy
from distill_v1.evaluation import latency
from distill_v1.evaluation import model_stats
from distill_v1.models import nets_factory

DEFAULT_DATASET = "fashion_mnist"
EVAL_JSON_FILENAME = "eval.json"
# The keys of the evaluate JSON, in the order they are written.
RESULT_KEYS = ("model", "checkpoint", "global_step", "test_accuracy",
               "test_loss", "params", "flops_per_example", "checkpoint_bytes",
               "latency_ms", "per_class_accuracy", "num_test_examples")
LATENCY_BATCH_SIZES = (1, 128)


def _read_spec(prefix, required):
  """model_spec.json beside `prefix`; {} when absent and not `required`."""
  folder = os.path.dirname(prefix) or "."
  path = os.path.join(folder, checkpoints.MODEL_SPEC_FILENAME)
  if not required and not os.path.exists(path):
    return {}
  return checkpoints.read_model_spec(folder)


def _model_setup(spec, splits, model, model_options):
  """Resolves (model name, options, num_classes, image_shape, class names)."""
  model_name = model or spec.get("model")
  if not model_name:
    raise errors.ConfigError(
        "no model given and model_spec.json names none: pass model=")
  if model_options is not None:
    options = dict(model_options)
  elif spec.get("model") == model_name:
    options = dict(spec.get("model_options") or {})
  else:
    # The spec's options belong to another architecture.
    options = {}
  num_classes = spec.get("num_classes", splits.num_classes)
  if num_classes != splits.num_classes:
    raise errors.DataError(
        "the checkpoint's model has %d classes (model_spec.json) but data set "
        "%s has %d" % (num_classes, splits.name, splits.num_classes))
  image_shape = tuple(spec.get("image_shape", splits.image_shape))
  if tuple(image_shape) != tuple(splits.image_shape):
    raise errors.DataError(
        "the checkpoint's model takes images %s (model_spec.json) but data set "
        "%s has images %s" % (list(image_shape), splits.name,
                              list(splits.image_shape)))
  class_names = list(splits.class_names or spec.get("class_names") or [])
  if len(class_names) != num_classes:
    class_names = ["class_%d" % c for c in range(num_classes)]
  return model_name, options, int(num_classes), image_shape, class_names


def evaluate_checkpoint(checkpoint, splits=None, model=None,
                        model_options=None, batch_size=500,
                        latency_repeats=latency.DEFAULT_REPEATS,
                        latency_warmup=latency.DEFAULT_WARMUP, dataset=None,
                        data_dir=None, session_config=None,
                        latency_batch_sizes=LATENCY_BATCH_SIZES):
  """Evaluates a checkpoint on the test split and measures the model.

  Args:
    checkpoint: a checkpoint prefix (`dir/model.ckpt-100`) or a training
      directory (its latest checkpoint is used).
    splits: a datasets.DataSplits; default: `load_dataset(dataset)`.
    model: network name; default: the `model` of model_spec.json.
    model_options: network options; default: those of model_spec.json when
      `model` is the spec's model, else none.
    batch_size: examples per `sess.run` for accuracy.
    latency_repeats: timed runs per latency batch size (>= 1).
    latency_warmup: untimed runs before timing.
    dataset: data set name when `splits` is None; default: the spec's
      `dataset`, else fashion_mnist.
    data_dir: folder of the data set files when `splits` is None.
    session_config: optional tf.compat.v1.ConfigProto.
    latency_batch_sizes: batch sizes timed; () skips the latency runs
      (`latency_ms` is then empty).

  Returns:
    A dict with the keys of RESULT_KEYS:
      model: network name (also its variable scope).
      checkpoint: absolute checkpoint prefix.
      global_step: int, or None when unknown.
      test_accuracy: fraction in [0, 1].
      test_loss: mean softmax cross-entropy in nats.
      params: trainable parameters of the model.
      flops_per_example: int, 2 x multiply-adds (+ element-wise ops) of a
        batch-1 inference pass (see model_stats.flops_per_example).
      checkpoint_bytes: int, bytes of `.index` + `.data-*` (with global_step
        and optimizer slots, as stored).
      latency_ms: {"batch_1": ms, "batch_128": ms}, median per `sess.run`.
      per_class_accuracy: {class name: fraction, or None without examples}.
      num_test_examples: int.

  Raises:
    CheckpointError: no checkpoint, no model_spec.json (and no `model`), or
      a checkpoint of another architecture (names each variable and shape).
    ConfigError: unknown model or bad options.
    DataError: the data set does not match the model.
  """
  prefix = checkpoints.resolve_checkpoint(checkpoint)
  spec = _read_spec(prefix, required=model is None)
  if splits is None:
    splits = datasets.load_dataset(
        dataset or spec.get("dataset") or DEFAULT_DATASET, data_dir=data_dir)
  model_name, options, num_classes, image_shape, class_names = _model_setup(
      spec, splits, model, model_options)
  network_fn = nets_factory.get_network_fn(model_name, **options)

  graph = tf.Graph()
  with graph.as_default():
    images = tf.compat.v1.placeholder(
        tf.float32, [None] + list(image_shape), name="images")
    logits, _ = network_fn(images, num_classes, is_training=False,
                           scope=model_name)
    variables = model_stats.scope_variables(model_name)
    params = model_stats.trainable_params(model_name)
    with tf.compat.v1.Session(graph=graph, config=session_config) as sess:
      checkpoints.restore_variables(sess, prefix, variables,
                                    model_name=model_name)
      graph.finalize()
      test_accuracy, test_loss, predictions = accuracy.evaluate_arrays(
          sess, images, logits, splits.test_images, splits.test_labels,
          batch_size)
      latency_ms = {
          latency.latency_key(b): latency.measure_latency(
              sess, logits, images, b, warmup=latency_warmup,
              repeats=latency_repeats)["median_ms"]
          for b in latency_batch_sizes
      }

  per_class = accuracy.per_class_accuracy(splits.test_labels, predictions,
                                          num_classes)
  return {
      "model": model_name,
      "checkpoint": os.path.abspath(prefix),
      "global_step": checkpoints.stored_global_step(prefix),
      "test_accuracy": test_accuracy,
      "test_loss": test_loss,
      "params": params,
      "flops_per_example": model_stats.flops_per_example(
          network_fn, image_shape, num_classes),
      "checkpoint_bytes": model_stats.checkpoint_bytes(prefix),
      "latency_ms": latency_ms,
      "per_class_accuracy": dict(zip(class_names, per_class)),
      "num_test_examples": int(len(splits.test_labels)),
  }


def default_json_path(result):
  """`<checkpoint dir>/eval.json` for an evaluate_checkpoint result."""
  return os.path.join(os.path.dirname(result["checkpoint"]),
                      EVAL_JSON_FILENAME)


def _human_bytes(num_bytes):
  """Bytes as B, KB (1024 B) or MB (1024 KB)."""
  if num_bytes < 1024:
    return "%d B" % num_bytes
  if num_bytes < 1024 * 1024:
    return "%.1f KB" % (num_bytes / 1024.0)
  return "%.2f MB" % (num_bytes / (1024.0 * 1024.0))


def _percent(fraction):
  if fraction is None or not math.isfinite(fraction):
    return "n/a"
  return "%.2f%%" % (100.0 * fraction)


def _ms(value):
  return "n/a" if value is None else "%.3f ms" % value


def format_table(result):
  """Formats an evaluate_checkpoint result for people.

  Accuracies are percentages with 2 decimals, parameters with thousands
  separators, FLOPs in millions (M = 10**6), sizes in KB / MB (1024-based)
  with the exact byte count, latency in milliseconds per `sess.run` of the
  whole batch; then one row per class.

  Args:
    result: the dict of evaluate_checkpoint (or one read back from JSON).

  Returns:
    A multi-line string without a trailing newline.
  """
  step = result.get("global_step")
  latency_ms = result.get("latency_ms") or {}
  rows = [
      ("model", result["model"]),
      ("checkpoint", "%s%s" % (result["checkpoint"], "" if step is None else
                               " (global step %d)" % step)),
      ("test accuracy", "%s (%s examples)" % (
          _percent(result["test_accuracy"]),
          "{:,}".format(result["num_test_examples"]))),
      ("test loss", "n/a" if result["test_loss"] is None else
       "%.4f" % result["test_loss"]),
      ("parameters", "{:,}".format(result["params"])),
      ("FLOPs per example", "%.3f M (%s)" % (
          result["flops_per_example"] / 1e6,
          "{:,}".format(result["flops_per_example"]))),
      ("checkpoint size", "%s (%s bytes)" % (
          _human_bytes(result["checkpoint_bytes"]),
          "{:,}".format(result["checkpoint_bytes"]))),
  ]
  for key in sorted(latency_ms, key=lambda k: int(k.rsplit("_", 1)[-1])):
    rows.append(("latency %s" % key.replace("_", " "), _ms(latency_ms[key])))
  width = max(len(label) for label, _ in rows)
  lines = ["%-*s  %s" % (width, label, value) for label, value in rows]

  per_class = result.get("per_class_accuracy") or {}
  if per_class:
    name_width = max([len("class")] + [len(str(n)) for n in per_class])
    lines.append("")
    lines.append("%-*s  %s" % (name_width, "class", "accuracy"))
    for name, fraction in per_class.items():
      lines.append("%-*s  %8s" % (name_width, name, _percent(fraction)))
  return "\n".join(lines)


def _json_safe(value):
  """Converts numpy scalars to Python and non-finite floats to None."""
  if isinstance(value, dict):
    return {str(k): _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  if hasattr(value, "item") and not isinstance(value, (str, bytes)):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def write_json(result, path):
  """Writes `result` as indented JSON to `path` atomically.

  Keys keep their order (RESULT_KEYS, classes in class order); NaN or
  infinite numbers (a diverged model's loss) are written as null so the file
  stays strict JSON.

  Args:
    result: the dict of evaluate_checkpoint.
    path: output file; its folder is created if needed.

  Raises:
    ExportError: the file cannot be written.
  """
  text = json.dumps(_json_safe(result), indent=2, allow_nan=False) + "\n"
  fileio.write_text(path, text)
