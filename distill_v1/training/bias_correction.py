"""Per-class logit offsets after distillation (Hinton et al. 2015, section 3).

When classes are left out of the transfer set (`--omit_classes`), the
distilled student still learns them from the soft targets, but its logits for
them come out too low. Hinton et al. raised the bias of the omitted class by
3.5; here the offsets are either given (`CLASS:OFFSET,...`) or learned by
minimising the cross-entropy of `logits + offsets` on the validation split
(a convex problem in the offsets alone), then added to the bias of the
student's logits layer in a new checkpoint.
"""

import os

import numpy as np

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1 import checkpoints

LOGITS_BIAS_SUFFIX = "logits/bias"


def parse_offsets(text, num_classes):
  """Parses `CLASS:OFFSET,...` into a float32 array [num_classes].

  Raises:
    ConfigError: malformed text or a class outside [0, num_classes).
  """
  offsets = np.zeros([num_classes], np.float32)
  for item in [t for t in text.split(",") if t.strip()]:
    parts = item.split(":")
    try:
      cls, value = int(parts[0]), float(parts[1])
      if len(parts) != 2:
        raise ValueError(item)
    except (ValueError, IndexError):
      raise errors.ConfigError(
          "--bias_correction=%s: expected 'learn' or CLASS:OFFSET pairs such "
          "as 3:3.5" % text) from None
    if not 0 <= cls < num_classes:
      raise errors.ConfigError(
          "--bias_correction: class %d is outside [0, %d)" %
          (cls, num_classes))
    offsets[cls] = value
  return offsets


def fit_offsets(logits, labels, num_classes, steps=500, learning_rate=1.0):
  """Learns per-class offsets b minimising mean CE(softmax(logits + b), labels).

  Args:
    logits: float array [N, num_classes].
    labels: int array [N].
    num_classes: int.
    steps: gradient-descent steps (the problem is convex and small).
    learning_rate: step size.

  Returns:
    float32 array [num_classes], with mean 0 (a shift common to all classes
    changes nothing).
  """
  logits = np.asarray(logits, np.float64)
  onehot = np.eye(num_classes)[np.asarray(labels)]
  offsets = np.zeros([num_classes])
  for _ in range(steps):
    z = logits + offsets
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=1, keepdims=True)
    offsets -= learning_rate * (probs - onehot).mean(axis=0)
  return (offsets - offsets.mean()).astype(np.float32)


def find_logits_bias(prefix, scope):
  """The name of the logits-layer bias of `scope` in checkpoint `prefix`."""
  name = "%s/%s" % (scope, LOGITS_BIAS_SUFFIX)
  names = [n for n, _ in tf.train.list_variables(prefix)]
  if name not in names:
    raise errors.CheckpointError(
        "checkpoint %s has no %s to correct (variables ending in /bias: %s)" %
        (prefix, name, ", ".join(n for n in names if n.endswith("/bias"))))
  return name


def write_corrected_checkpoint(prefix, scope, offsets, out_dir, model_spec):
  """Copies the student's variables with offsets added to its logits bias.

  Args:
    prefix: the student's checkpoint prefix.
    scope: the student's variable scope.
    offsets: float array [num_classes].
    out_dir: folder of the new checkpoint (with its model_spec.json).
    model_spec: dict for model_spec.json.

  Returns:
    The new checkpoint prefix.
  """
  bias_name = find_logits_bias(prefix, scope)
  reader = tf.train.load_checkpoint(prefix)
  graph = tf.Graph()
  with graph.as_default():
    variables = []
    for name, _ in tf.train.list_variables(prefix):
      if not name.startswith(scope + "/") and name != "global_step":
        continue
      value = reader.get_tensor(name)
      if name == bias_name:
        if value.shape != offsets.shape:
          raise errors.ConfigError(
              "%s has shape %s, the offsets %s" %
              (name, value.shape, offsets.shape))
        value = value + offsets.astype(value.dtype)
      variables.append(tf.compat.v1.Variable(value, name=name))
    saver = tf.compat.v1.train.Saver(variables)
    step = checkpoints.step_of(prefix) or 0
    os.makedirs(out_dir, exist_ok=True)
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      new_prefix = saver.save(
          sess, os.path.join(out_dir, checkpoints.CHECKPOINT_BASENAME),
          global_step=step, write_meta_graph=False)
  checkpoints.write_model_spec(out_dir, model_spec)
  return new_prefix


def network_logits(network_fn, num_classes, scope, prefix, images,
                   batch_size=1000):
  """Logits of a checkpointed network over `images`, float32 [N, classes]."""
  graph = tf.Graph()
  with graph.as_default():
    images_ph = tf.compat.v1.placeholder(
        tf.float32, [None] + list(images.shape[1:]))
    logits, _ = network_fn(images_ph, num_classes, is_training=False,
                           scope=scope)
    saver = tf.compat.v1.train.Saver(tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, scope=scope + "/"))
    with tf.compat.v1.Session(graph=graph) as sess:
      saver.restore(sess, prefix)
      parts = [sess.run(logits, {images_ph: images[i:i + batch_size]})
               for i in range(0, len(images), batch_size)]
  return np.concatenate(parts, axis=0)


def per_class_accuracy(logits, labels, num_classes):
  """Fractions [num_classes] (NaN for a class without examples)."""
  predictions = np.argmax(logits, axis=1)
  out = np.full([num_classes], np.nan)
  for c in range(num_classes):
    mask = labels == c
    if mask.any():
      out[c] = float(np.mean(predictions[mask] == c))
  return out


def correct(network_fn, num_classes, scope, prefix, splits, setting, out_dir,
            model_spec):
  """Finds or sets the offsets, writes the corrected checkpoint, reports.

  Args:
    network_fn: the student's network function.
    num_classes: int.
    scope: the student's variable scope.
    prefix: the student's trained checkpoint.
    splits: DataSplits; "learn" needs a validation split.
    setting: "learn" or "CLASS:OFFSET,...".
    out_dir: folder of the corrected checkpoint.
    model_spec: dict for its model_spec.json.

  Returns:
    dict: offsets, checkpoint, test_accuracy_before/after,
    per_class_accuracy_before/after (lists; None for absent classes).

  Raises:
    ConfigError: "learn" without a validation split, or a bad setting.
  """
  if setting == "learn":
    if not len(splits.validation_labels):
      raise errors.ConfigError(
          "--bias_correction=learn fits the offsets on the validation split: "
          "give --validation_size > 0")
    val_logits = network_logits(network_fn, num_classes, scope, prefix,
                                splits.validation_images)
    offsets = fit_offsets(val_logits, splits.validation_labels, num_classes)
  else:
    offsets = parse_offsets(setting, num_classes)
  new_prefix = write_corrected_checkpoint(prefix, scope, offsets, out_dir,
                                          model_spec)
  test_logits = network_logits(network_fn, num_classes, scope, prefix,
                               splits.test_images)
  labels = splits.test_labels

  def summary(logits):
    acc = float(np.mean(np.argmax(logits, 1) == labels))
    per_class = [None if np.isnan(a) else float(a)
                 for a in per_class_accuracy(logits, labels, num_classes)]
    return acc, per_class

  before, per_before = summary(test_logits)
  after, per_after = summary(test_logits + offsets)
  return {
      "offsets": [float(o) for o in offsets],
      "checkpoint": new_prefix,
      "test_accuracy_before": before,
      "test_accuracy_after": after,
      "per_class_accuracy_before": per_before,
      "per_class_accuracy_after": per_after,
  }
