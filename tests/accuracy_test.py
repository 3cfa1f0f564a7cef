"""Tests of distill_v1.evaluation.accuracy against numpy references."""

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.evaluation import accuracy

v1 = tf.compat.v1


def test_confusion_matrix_counts_pairs():
  labels = [0, 0, 1, 2, 2, 2]
  predictions = [0, 1, 1, 2, 0, 2]
  np.testing.assert_array_equal(
      accuracy.confusion_matrix(labels, predictions, 3),
      [[1, 1, 0],
       [0, 1, 0],
       [1, 0, 2]])


def test_per_class_accuracy_against_numpy_and_empty_class():
  rng = np.random.RandomState(0)
  labels = rng.randint(0, 3, size=200)  # class 3 has no examples
  predictions = np.where(rng.uniform(size=200) < 0.7, labels,
                         rng.randint(0, 4, size=200))
  result = accuracy.per_class_accuracy(labels, predictions, 4)
  for c in range(3):
    mask = labels == c
    assert result[c] == pytest.approx(np.mean(predictions[mask] == c))
  assert result[3] is None


def test_labels_out_of_range_and_shape_mismatch():
  with pytest.raises(errors.DataError, match=r"labels hold class 5, expected "
                     r"classes in \[0, 3\)"):
    accuracy.per_class_accuracy([0, 5], [0, 1], 3)
  with pytest.raises(errors.DataError, match=r"labels have shape \(2,\) but "
                     r"predictions \(3,\)"):
    accuracy.confusion_matrix([0, 1], [0, 1, 2], 3)


def test_mean_cross_entropy_is_stable_and_matches_numpy():
  logits = np.array([[1000.0, 0.0, -1000.0], [0.5, 0.25, 2.0]])
  labels = np.array([0, 1])
  # Row 0: the correct class dominates, loss ~ 0 (no overflow to NaN).
  probs_row1 = np.exp(logits[1]) / np.exp(logits[1]).sum()
  expected = (0.0 - np.log(probs_row1[1])) / 2
  assert accuracy.mean_cross_entropy(logits, labels) == pytest.approx(expected)


def _linear_graph(weights):
  """images [None, 2, 2, 1] -> logits = flatten(images) @ weights."""
  images = v1.placeholder(tf.float32, [None, 2, 2, 1])
  logits = tf.matmul(tf.reshape(images, [-1, 4]), tf.constant(weights))
  return images, logits


@pytest.mark.parametrize("batch_size", [1, 7, 10, 23, 500])
def test_evaluate_arrays_batches_every_example_once(batch_size):
  rng = np.random.RandomState(1)
  weights = rng.normal(size=[4, 3]).astype(np.float32)
  images = rng.uniform(size=[23, 2, 2, 1]).astype(np.float32)
  labels = rng.randint(0, 3, size=23).astype(np.int64)
  np_logits = images.reshape([23, 4]).astype(np.float64) @ weights
  np_predictions = np.argmax(np_logits, axis=1)
  shifted = np_logits - np_logits.max(axis=1, keepdims=True)
  np_loss = np.mean(np.log(np.exp(shifted).sum(axis=1)) -
                    shifted[np.arange(23), labels])
  with tf.Graph().as_default():
    images_ph, logits = _linear_graph(weights)
    with v1.Session() as sess:
      acc, loss, predictions = accuracy.evaluate_arrays(
          sess, images_ph, logits, images, labels, batch_size)
  np.testing.assert_array_equal(predictions, np_predictions)
  assert acc == pytest.approx(np.mean(np_predictions == labels))
  assert loss == pytest.approx(np_loss, rel=1e-5)


def test_evaluate_arrays_rejects_empty_and_mismatched():
  with tf.Graph().as_default():
    images_ph, logits = _linear_graph(np.ones([4, 3], np.float32))
    with v1.Session() as sess:
      with pytest.raises(errors.DataError, match=r"no examples"):
        accuracy.evaluate_arrays(sess, images_ph, logits,
                                 np.zeros([0, 2, 2, 1], np.float32),
                                 np.zeros([0], np.int64), 4)
      with pytest.raises(errors.DataError, match=r"expected \[3\]"):
        accuracy.evaluate_arrays(sess, images_ph, logits,
                                 np.zeros([3, 2, 2, 1], np.float32),
                                 np.zeros([2], np.int64), 4)
      with pytest.raises(errors.ConfigError, match=r"batch_size is 0"):
        accuracy.evaluate_arrays(sess, images_ph, logits,
                                 np.zeros([3, 2, 2, 1], np.float32),
                                 np.zeros([3], np.int64), 0)
