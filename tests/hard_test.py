"""Tests for distill_v1.losses.hard against a numpy reference."""

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.losses import hard


def np_cross_entropy(labels, logits):
  logits = logits.astype(np.float64)
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  return -log_probs[np.arange(len(labels)), labels].mean()


@pytest.mark.parametrize("label_dtype", [np.int32, np.int64])
def test_matches_numpy(label_dtype):
  rng = np.random.RandomState(0)
  logits = (3 * rng.randn(6, 5)).astype(np.float32)
  labels = rng.randint(0, 5, size=6).astype(label_dtype)
  with tf.Graph().as_default():
    output = hard.hard_loss(tf.constant(labels), tf.constant(logits))
    assert output.loss.dtype == tf.float32
    assert output.loss.shape.ndims == 0
    assert list(output.extra) == ["hard_loss"]
    assert not tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.LOSSES)
    with tf.compat.v1.Session() as sess:
      loss, extra = sess.run([output.loss, output.extra])
  np.testing.assert_allclose(loss, np_cross_entropy(labels, logits),
                             rtol=1e-5)
  assert extra["hard_loss"] == loss


def test_dynamic_batch_and_gradient():
  rng = np.random.RandomState(1)
  logits = rng.randn(4, 3).astype(np.float32)
  labels = np.array([0, 2, 1, 2])
  with tf.Graph().as_default():
    labels_ph = tf.compat.v1.placeholder(tf.int64, [None])
    logits_ph = tf.compat.v1.placeholder(tf.float32, [None, 3])
    output = hard.hard_loss(labels_ph, logits_ph)
    grad, = tf.gradients(output.loss, [logits_ph])
    with tf.compat.v1.Session() as sess:
      loss, g = sess.run([output.loss, grad],
                         {labels_ph: labels, logits_ph: logits})
  np.testing.assert_allclose(loss, np_cross_entropy(labels, logits),
                             rtol=1e-5)
  e = np.exp(logits - logits.max(1, keepdims=True))
  expected = (e / e.sum(1, keepdims=True) - np.eye(3)[labels]) / 4
  np.testing.assert_allclose(g, expected, atol=1e-6)


def test_extreme_logits_are_finite():
  logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], np.float32)
  with tf.Graph().as_default():
    output = hard.hard_loss(tf.constant([1, 1]), tf.constant(logits))
    with tf.compat.v1.Session() as sess:
      loss = sess.run(output.loss)
  # Example 0 is wrong by a margin of 2e4 nats, example 1 right.
  np.testing.assert_allclose(loss, 1e4, rtol=1e-6)


def test_rank_errors():
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError,
                       match=r"For tensor .* in scope hard_loss, rank 2 is "
                       r"not the expected 1"):
      hard.hard_loss(tf.zeros([4, 1], tf.int64), tf.zeros([4, 3]))
    with pytest.raises(errors.ConfigError,
                       match=r"rank 3 is not the expected 2"):
      hard.hard_loss(tf.zeros([4], tf.int64), tf.zeros([4, 3, 1]))


def test_batch_and_dtype_errors():
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError,
                       match=r"batch size 4 .* batch size 5"):
      hard.hard_loss(tf.zeros([4], tf.int64), tf.zeros([5, 3]))
    with pytest.raises(errors.ConfigError, match=r"not an integer type"):
      hard.hard_loss(tf.zeros([4]), tf.zeros([4, 3]))
    with pytest.raises(errors.ConfigError, match=r"not a floating-point"):
      hard.hard_loss(tf.zeros([4], tf.int64), tf.zeros([4, 3], tf.int32))
