"""Tests of distill_v1.evaluation.latency (no timing thresholds)."""

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.evaluation import latency

v1 = tf.compat.v1


def tiny_net(images, num_classes, is_training=False, scope=None):
  del is_training
  with v1.variable_scope(scope or "tiny_net"):
    flat = tf.reshape(images, [-1, int(np.prod(images.shape[1:]))])
    kernel = v1.get_variable("kernel", [flat.shape[-1], num_classes])
    bias = v1.get_variable("bias", [num_classes],
                           initializer=v1.zeros_initializer())
  return tf.nn.bias_add(tf.matmul(flat, kernel), bias), {}


def test_random_images_shape_and_range():
  x = latency.random_images((4, 3, 2), 5, seed=3)
  assert x.shape == (5, 4, 3, 2) and x.dtype == np.float32
  assert x.min() >= 0.0 and x.max() < 1.0


def test_measure_latency_feeds_the_batch_and_reports_positive_times():
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, 4, 4, 1])
    logits, _ = tiny_net(images, 3)
    # Fails the run unless the random input has the requested batch size
    # and lies in [0, 1].
    checks = [
        tf.debugging.assert_equal(tf.shape(images)[0], 6),
        tf.debugging.assert_greater_equal(tf.reduce_min(images), 0.0),
        tf.debugging.assert_less_equal(tf.reduce_max(images), 1.0),
    ]
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      stats = latency.measure_latency(sess, [logits] + checks, images, 6,
                                      warmup=1, repeats=5)
      with pytest.raises(tf.errors.InvalidArgumentError):
        latency.measure_latency(sess, checks, images, 5, warmup=0,
                                repeats=1)
  assert stats["batch_size"] == 6 and stats["repeats"] == 5
  for key in ("median_ms", "p10_ms", "p90_ms", "mean_ms", "min_ms"):
    assert stats[key] > 0
  assert stats["min_ms"] <= stats["p10_ms"] <= stats["median_ms"] <= (
      stats["p90_ms"])


def test_measure_latency_with_feed_builder():
  calls = []
  with tf.Graph().as_default():
    x = v1.placeholder(tf.float32, [None])
    y = tf.reduce_sum(x)

    def feed_builder(batch_size):
      calls.append(batch_size)
      return {x: np.ones([batch_size], np.float32)}

    with v1.Session() as sess:
      stats = latency.measure_latency(sess, y, feed_builder, 3, warmup=0,
                                      repeats=2)
  assert calls == [3]
  assert stats["median_ms"] > 0


def test_measure_latency_rejects_bad_arguments():
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, None, 4, 1])
    with v1.Session() as sess:
      with pytest.raises(errors.ConfigError, match=r"repeats is 0"):
        latency.measure_latency(sess, images, images, 1, repeats=0)
      with pytest.raises(errors.ConfigError, match=r"batch_size is 0"):
        latency.measure_latency(sess, images, images, 0)
      with pytest.raises(errors.ConfigError,
                         match=r"For tensor Placeholder:0, shape .* H, W, C "
                         r"known"):
        latency.measure_latency(sess, images, images, 1)


def test_latency_ms_without_checkpoint():
  result = latency.latency_ms(tiny_net, None, (4, 4, 1), 3,
                              batch_sizes=(1, 128), warmup=1, repeats=3)
  assert sorted(result) == ["batch_1", "batch_128"]
  assert all(v > 0 for v in result.values())


def test_latency_ms_restores_checkpoint(tmp_path):
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, 4, 4, 1])
    tiny_net(images, 3, scope="student")
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      prefix = v1.train.Saver().save(sess, str(tmp_path / "model.ckpt"),
                                     write_meta_graph=False)
  result = latency.latency_ms(tiny_net, prefix, (4, 4, 1), 3,
                              batch_sizes=(2,), warmup=0, repeats=2,
                              scope="student")
  assert list(result) == ["batch_2"] and result["batch_2"] > 0
  # A checkpoint of another shape is refused with the variable named.
  with pytest.raises(errors.CheckpointError,
                     match=r"student/kernel has shape \[16, 3\] in the "
                     r"checkpoint but \[16, 5\]"):
    latency.latency_ms(tiny_net, prefix, (4, 4, 1), 5, batch_sizes=(1,),
                       warmup=0, repeats=1, scope="student")


def test_latency_stats_gives_median_and_percentiles_per_batch():
  result = latency.latency_stats(tiny_net, None, (4, 4, 1), 3,
                                 batch_sizes=(1, 8), warmup=0, repeats=5)
  assert sorted(result) == ["batch_1", "batch_8"]
  for key, batch in (("batch_1", 1), ("batch_8", 8)):
    stats = result[key]
    assert stats["batch_size"] == batch and stats["repeats"] == 5
    assert 0 < stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"]
