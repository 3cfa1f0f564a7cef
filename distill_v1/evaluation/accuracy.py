"""Accuracy, cross-entropy loss, per-class accuracy and confusion counts.

The numpy helpers work on label and prediction arrays; `evaluate_arrays` runs
a network over in-memory images in batches (the last, partial batch
included, so every example is counted exactly once) and scores its logits.
Accuracies are fractions in [0, 1].

Usage:

  acc, loss, predictions = accuracy.evaluate_arrays(
      sess, images_ph, logits, splits.test_images, splits.test_labels,
      batch_size=500)
  per_class = accuracy.per_class_accuracy(splits.test_labels, predictions, 10)
"""

import numpy as np

from distill_v1 import errors


def _check_labels(labels, num_classes, name="labels"):
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise errors.DataError("%s have shape %s, expected [N]" %
                           (name, labels.shape))
  if labels.size and not np.issubdtype(labels.dtype, np.integer):
    raise errors.DataError("%s have dtype %s, expected integers" %
                           (name, labels.dtype))
  labels = labels.astype(np.int64, copy=False)
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    bad = labels[(labels < 0) | (labels >= num_classes)][0]
    raise errors.DataError("%s hold class %d, expected classes in [0, %d)" %
                           (name, bad, num_classes))
  return labels


def _check_pair(labels, predictions, num_classes):
  labels = _check_labels(labels, num_classes, "labels")
  predictions = _check_labels(predictions, num_classes, "predictions")
  if labels.shape != predictions.shape:
    raise errors.DataError(
        "labels have shape %s but predictions %s, expected the same" %
        (labels.shape, predictions.shape))
  return labels, predictions


def confusion_matrix(labels, predictions, num_classes):
  """Counts of (true class, predicted class) pairs.

  Args:
    labels: int [N] true classes in [0, num_classes).
    predictions: int [N] predicted classes in [0, num_classes).
    num_classes: number of classes.

  Returns:
    int64 [num_classes, num_classes]; row = true class, column = predicted
    class; the diagonal holds the correct predictions.

  Raises:
    DataError: shapes differ or a class is out of range.
  """
  labels, predictions = _check_pair(labels, predictions, num_classes)
  counts = np.zeros([num_classes, num_classes], dtype=np.int64)
  np.add.at(counts, (labels, predictions), 1)
  return counts


def per_class_accuracy(labels, predictions, num_classes):
  """Fraction of each class's examples predicted correctly (recall).

  Args:
    labels: int [N] true classes.
    predictions: int [N] predicted classes.
    num_classes: number of classes.

  Returns:
    A list of num_classes floats in [0, 1]; None for a class without
    examples (instead of NaN, so the result is valid JSON).

  Raises:
    DataError: shapes differ or a class is out of range.
  """
  counts = confusion_matrix(labels, predictions, num_classes)
  totals = counts.sum(axis=1)
  return [
      float(counts[c, c]) / float(totals[c]) if totals[c] else None
      for c in range(num_classes)
  ]


def mean_cross_entropy(logits, labels):
  """Mean softmax cross-entropy (nats) of float [N, K] logits, int [N] labels.

  Computed in float64 with the log-sum-exp shift, so large logits neither
  overflow nor lose the small differences that matter.
  """
  logits = np.asarray(logits, dtype=np.float64)
  labels = np.asarray(labels)
  if logits.ndim != 2 or labels.shape != logits.shape[:1]:
    raise errors.DataError(
        "logits have shape %s and labels %s, expected [N, num_classes] and "
        "[N]" % (logits.shape, labels.shape))
  labels = _check_labels(labels, logits.shape[1])
  if not labels.size:
    raise errors.DataError("no examples to compute a loss over")
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_norm = np.log(np.exp(shifted).sum(axis=1))
  picked = shifted[np.arange(labels.shape[0]), labels]
  return float(np.mean(log_norm - picked))


def evaluate_arrays(sess, images_ph, logits, images, labels, batch_size):
  """Runs `logits` over `images` in batches and scores the predictions.

  Args:
    sess: a tf.compat.v1.Session with the network's variables restored.
    images_ph: the float32 [None, H, W, C] input placeholder.
    logits: the float [None, num_classes] logits tensor fed by `images_ph`.
    images: float32 [N, H, W, C] numpy array.
    labels: int [N] numpy array of classes.
    batch_size: examples per `sess.run`; N need not be a multiple (the last
      batch is smaller).

  Returns:
    (accuracy, loss, predictions): accuracy as a fraction in [0, 1], the mean
    softmax cross-entropy in nats, and int64 [N] predicted classes.

  Raises:
    DataError: empty or mismatched arrays, labels out of range.
    ConfigError: batch_size < 1.
  """
  if batch_size < 1:
    raise errors.ConfigError("batch_size is %r, expected >= 1" % batch_size)
  num_examples = len(images)
  if num_examples == 0:
    raise errors.DataError("no examples to evaluate (images have shape %s)" %
                           (np.shape(images),))
  labels = np.asarray(labels)
  if labels.shape != (num_examples,):
    raise errors.DataError(
        "labels have shape %s, expected [%d] to match the images" %
        (labels.shape, num_examples))
  chunks = []
  for start in range(0, num_examples, batch_size):
    chunks.append(sess.run(
        logits, feed_dict={images_ph: images[start:start + batch_size]}))
  all_logits = np.concatenate(chunks, axis=0)
  loss = mean_cross_entropy(all_logits, labels)
  predictions = np.argmax(all_logits, axis=1).astype(np.int64)
  accuracy = float(np.mean(predictions == labels))
  return accuracy, loss, predictions
