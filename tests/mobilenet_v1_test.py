"""Tests for distill_v1.models.mobilenet_v1."""

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import layers
from distill_v1.models import mobilenet_v1


def _count(variables):
  return sum(int(np.prod(v.shape.as_list())) for v in variables)


@pytest.mark.parametrize("width,published", [(1.0, 4.24e6), (0.75, 2.59e6),
                                             (0.5, 1.34e6), (0.25, 0.47e6)])
def test_parameters_match_published_counts(width, published):
  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3])
    logits, end_points = mobilenet_v1.mobilenet_v1(
        images, 1001, width_multiplier=width)
    params = _count(tf.compat.v1.trainable_variables())
  assert abs(params / published - 1) < 0.01, params
  assert logits.shape.as_list() == [None, 1001]
  assert end_points["conv2d_13_pointwise"].shape.as_list()[1:3] == [7, 7]


def test_width_one_matches_slim_layer_table():
  # Slim's docstring lists the base network's weights: 3,185,088 at width 1.0
  # and 1,800,144 at 0.75.
  for width, want in ((1.0, 3185088), (0.75, 1800144)):
    with tf.Graph().as_default():
      images = tf.compat.v1.placeholder(tf.float32, [None, 128, 128, 3])
      mobilenet_v1.mobilenet_v1(images, 1001, width_multiplier=width)
      kernels = [k for k in layers.get_kernels()
                 if not k.name.startswith("mobilenet_v1/logits/")]
      assert _count(kernels) == want


def test_formula_for_width_one_at_224():
  depths = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024,
            1024]
  want = 3 * 3 * 3 * 32 + 2 * 32  # Stem conv, no bias, BN gamma and beta.
  for d_in, d_out in zip(depths[:-1], depths[1:]):
    want += 3 * 3 * d_in + 2 * d_in  # Depthwise + BN.
    want += d_in * d_out + 2 * d_out  # Pointwise + BN.
  want += 1024 * 1001 + 1001  # Logits with bias.
  with tf.Graph().as_default():
    mobilenet_v1.mobilenet_v1(
        tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3]), 1001)
    trainable = tf.compat.v1.trainable_variables()
    moving = [v.name for v in tf.compat.v1.moving_average_variables()]
  assert _count(trainable) == want
  assert len(moving) == 2 * 27
  assert not set(moving) & set(v.name for v in trainable)


def test_depth_rounding_and_min_depth():
  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3])
    _, points = mobilenet_v1.mobilenet_v1(images, 5, width_multiplier=0.1,
                                          min_depth=8)
  assert points["conv2d_0"].shape[-1] == 8  # max(int(3.2), 8)
  assert points["conv2d_3_pointwise"].shape[-1] == 12  # int(12.8)
  assert points["conv2d_13_pointwise"].shape[-1] == 102  # int(102.4)


def test_layer_strides():
  slim = (2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
  assert mobilenet_v1.layer_strides(224, 224) == slim
  assert mobilenet_v1.layer_strides(64, 80) == slim
  assert mobilenet_v1.layer_strides(None, 28) == slim
  assert mobilenet_v1.layer_strides(28, 28) == (1, 1, 2, 1, 2, 1, 2, 1, 1, 1,
                                                1, 1, 1, 1)
  assert mobilenet_v1.layer_strides(32, 40) == (1, 1, 2, 1, 2, 1, 2, 1, 1, 1,
                                                1, 1, 1, 1)
  assert mobilenet_v1.layer_strides(8, 8) == (1, 1, 2) + (1,) * 11


def test_runs_on_28x28_with_4x4_final_feature_map():
  x = np.random.RandomState(0).uniform(size=[4, 28, 28, 1]).astype(np.float32)
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(0)
    images = tf.constant(x)
    logits, points = mobilenet_v1.mobilenet_v1(images, 10, is_training=True,
                                               width_multiplier=0.25)
    update_ops = tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.UPDATE_OPS)
    loss = tf.reduce_mean(logits ** 2)
    grads = tf.gradients(loss, tf.compat.v1.trainable_variables())
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(),
                                     reuse=True):
      eval_logits, _ = mobilenet_v1.mobilenet_v1(images, 10,
                                                 width_multiplier=0.25)
    assert len(tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.UPDATE_OPS)) == len(update_ops) == 54
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      got, got_eval, _ = sess.run([logits, eval_logits, update_ops])
  assert all(g is not None for g in grads)
  assert points["conv2d_0"].shape.as_list() == [4, 28, 28, 8]
  assert points["conv2d_13_pointwise"].shape.as_list() == [4, 4, 4, 256]
  assert points["avg_pool"].shape.as_list() == [4, 1, 1, 256]
  assert got.shape == (4, 10) and got_eval.shape == (4, 10)
  assert np.all(np.isfinite(got)) and np.all(np.isfinite(got_eval))


def test_variable_names_follow_slim_layout():
  with tf.Graph().as_default():
    mobilenet_v1.mobilenet_v1(tf.zeros([1, 28, 28, 1]), 3, scope="m")
    names = [v.name for v in tf.compat.v1.global_variables()]
  assert names[:6] == ["m/conv2d_0/kernel:0", "m/conv2d_0/batch_norm/gamma:0",
                       "m/conv2d_0/batch_norm/beta:0",
                       "m/conv2d_0/batch_norm/moving_mean:0",
                       "m/conv2d_0/batch_norm/moving_variance:0",
                       "m/conv2d_1_depthwise/depthwise_kernel:0"]
  assert names[-2:] == ["m/logits/kernel:0", "m/logits/bias:0"]
  assert not [n for n in names if "bias" in n and "logits" not in n]


def test_bad_options_raise_config_error():
  with tf.Graph().as_default():
    images = tf.zeros([1, 28, 28, 1])
    with pytest.raises(errors.ConfigError, match=r"width_multiplier=0 .*> 0"):
      mobilenet_v1.mobilenet_v1(images, 10, width_multiplier=0)
    with pytest.raises(errors.ConfigError, match=r"rank 2 is not the expected"):
      mobilenet_v1.mobilenet_v1(tf.zeros([1, 784]), 10, scope="m2")
