"""Tests for distill_v1.models.layers against numpy references."""

import math

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import layers


def _randomize(sess, variables, rng):
  """Gives every variable random values so biases and betas matter."""
  for v in variables:
    sess.run(v.assign(rng.normal(size=v.shape.as_list()).astype(np.float32)))


def _var(name):
  matches = [v for v in tf.compat.v1.global_variables()
             if v.name == name + ":0"]
  assert len(matches) == 1, (name, tf.compat.v1.global_variables())
  return matches[0]


# --- numpy references -------------------------------------------------------


def _same_pads(size, k, s):
  out = -(-size // s)
  total = max((out - 1) * s + k - size, 0)
  return out, total // 2, total - total // 2


def _pad_input(x, kh, kw, sh, sw, padding, value=0.0):
  _, h, w, _ = x.shape
  if padding == "SAME":
    oh, top, bottom = _same_pads(h, kh, sh)
    ow, left, right = _same_pads(w, kw, sw)
    x = np.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)],
               constant_values=value)
  else:
    oh = (h - kh) // sh + 1
    ow = (w - kw) // sw + 1
  return x, oh, ow


def np_conv2d(x, k, stride, padding):
  kh, kw, cin, cout = k.shape
  x, oh, ow = _pad_input(x, kh, kw, stride, stride, padding)
  out = np.zeros([x.shape[0], oh, ow, cout])
  for i in range(oh):
    for j in range(ow):
      patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
      for o in range(cout):
        out[:, i, j, o] = np.sum(patch * k[:, :, :, o], axis=(1, 2, 3))
  return out


def np_depthwise_conv2d(x, k, stride, padding):
  kh, kw, cin, mult = k.shape
  x, oh, ow = _pad_input(x, kh, kw, stride, stride, padding)
  out = np.zeros([x.shape[0], oh, ow, cin * mult])
  for i in range(oh):
    for j in range(ow):
      patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
      for c in range(cin):
        for m in range(mult):
          out[:, i, j, c * mult + m] = np.sum(patch[..., c] * k[:, :, c, m],
                                              axis=(1, 2))
  return out


def np_pool(x, size, stride, padding, reduce_fn):
  x, oh, ow = _pad_input(x, size, size, stride, stride, padding,
                         value=np.nan)
  out = np.zeros([x.shape[0], oh, ow, x.shape[3]])
  for i in range(oh):
    for j in range(ow):
      patch = x[:, i * stride:i * stride + size, j * stride:j * stride + size]
      out[:, i, j, :] = reduce_fn(patch, axis=(1, 2))
  return out


# --- dense and convolutions -------------------------------------------------


def test_dense_matches_numpy():
  rng = np.random.RandomState(0)
  x = rng.normal(size=[5, 7]).astype(np.float32)
  with tf.Graph().as_default():
    inputs = tf.compat.v1.placeholder(tf.float32, [None, 7])
    outputs = layers.dense(inputs, 3, activation=tf.nn.relu, scope="fc")
    assert outputs.shape.as_list() == [None, 3]
    kernel, bias = _var("fc/kernel"), _var("fc/bias")
    assert kernel.shape.as_list() == [7, 3] and bias.shape.as_list() == [3]
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      np.testing.assert_array_equal(sess.run(bias), np.zeros(3))
      _randomize(sess, [kernel, bias], rng)
      got, k, b = sess.run([outputs, kernel, bias], {inputs: x})
  np.testing.assert_allclose(got, np.maximum(x @ k + b, 0), rtol=1e-5,
                             atol=1e-5)


def test_dense_without_bias_has_no_bias_variable():
  with tf.Graph().as_default():
    layers.dense(tf.zeros([2, 4]), 3, use_bias=False, scope="fc")
    names = [v.name for v in tf.compat.v1.global_variables()]
  assert names == ["fc/kernel:0"]


@pytest.mark.parametrize("padding,stride,size", [
    ("SAME", 1, 7), ("VALID", 1, 7), ("SAME", 2, 7), ("VALID", 2, 8),
    ("SAME", 2, 8)])
def test_conv2d_matches_numpy(padding, stride, size):
  rng = np.random.RandomState(1)
  x = rng.normal(size=[2, size, size + 1, 3]).astype(np.float32)
  with tf.Graph().as_default():
    inputs = tf.constant(x)
    outputs = layers.conv2d(inputs, 4, [3, 2], stride=stride, padding=padding,
                            activation=tf.nn.relu, scope="conv")
    kernel, bias = _var("conv/kernel"), _var("conv/bias")
    assert kernel.shape.as_list() == [3, 2, 3, 4]
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      _randomize(sess, [kernel, bias], rng)
      got, k, b = sess.run([outputs, kernel, bias])
  want = np.maximum(np_conv2d(x, k, stride, padding) + b, 0)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding,stride", [("SAME", 1), ("VALID", 2),
                                            ("SAME", 2)])
def test_depthwise_conv2d_matches_numpy(padding, stride):
  rng = np.random.RandomState(2)
  x = rng.normal(size=[2, 7, 6, 3]).astype(np.float32)
  with tf.Graph().as_default():
    outputs = layers.depthwise_conv2d(tf.constant(x), 3, stride=stride,
                                      depth_multiplier=2, padding=padding,
                                      scope="dw")
    kernel, bias = _var("dw/depthwise_kernel"), _var("dw/bias")
    assert kernel.shape.as_list() == [3, 3, 3, 2]
    assert bias.shape.as_list() == [6]
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      _randomize(sess, [kernel, bias], rng)
      got, k, b = sess.run([outputs, kernel, bias])
  want = np_depthwise_conv2d(x, k, stride, padding) + b
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_separable_conv2d_matches_numpy():
  rng = np.random.RandomState(3)
  x = rng.normal(size=[2, 6, 6, 3]).astype(np.float32)
  with tf.Graph().as_default():
    outputs = layers.separable_conv2d(tf.constant(x), 5, 3, stride=2,
                                      depth_multiplier=2, scope="sep")
    dk = _var("sep/depthwise_kernel")
    pk = _var("sep/pointwise_kernel")
    bias = _var("sep/bias")
    assert pk.shape.as_list() == [1, 1, 6, 5]
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      _randomize(sess, [dk, pk, bias], rng)
      got, dkv, pkv, b = sess.run([outputs, dk, pk, bias])
  want = np_conv2d(np_depthwise_conv2d(x, dkv, 2, "SAME"), pkv, 1,
                   "SAME") + b
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# --- batch norm -------------------------------------------------------------


@pytest.mark.parametrize("shape", [[4, 3, 5, 6], [16, 6]])
def test_batch_norm_training_uses_batch_stats_and_updates(shape):
  rng = np.random.RandomState(4)
  x = (rng.normal(size=shape) * 3 + 2).astype(np.float32)
  decay, eps = 0.9, 1e-3
  with tf.Graph().as_default():
    outputs = layers.batch_norm(tf.constant(x), is_training=True, decay=decay,
                                epsilon=eps, scope="bn")
    gamma, beta = _var("bn/gamma"), _var("bn/beta")
    mean_var, variance_var = _var("bn/moving_mean"), _var("bn/moving_variance")
    update_ops = tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.UPDATE_OPS)
    assert len(update_ops) == 2
    trainable = set(tf.compat.v1.trainable_variables())
    assert gamma in trainable and beta in trainable
    assert mean_var not in trainable and variance_var not in trainable
    assert mean_var in tf.compat.v1.global_variables()
    assert variance_var in tf.compat.v1.moving_average_variables()
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      np.testing.assert_array_equal(sess.run(gamma), np.ones(shape[-1]))
      np.testing.assert_array_equal(sess.run(mean_var), np.zeros(shape[-1]))
      np.testing.assert_array_equal(sess.run(variance_var),
                                    np.ones(shape[-1]))
      _randomize(sess, [gamma, beta], rng)
      got, g, b = sess.run([outputs, gamma, beta])
      sess.run(update_ops)
      moving_mean, moving_variance = sess.run([mean_var, variance_var])
  axes = tuple(range(len(shape) - 1))
  mean, var = x.mean(axis=axes), x.var(axis=axes)
  n = x.size // shape[-1]
  np.testing.assert_allclose(got, (x - mean) / np.sqrt(var + eps) * g + b,
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(moving_mean, (1 - decay) * mean, rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(
      moving_variance, decay * 1.0 + (1 - decay) * var * n / (n - 1),
      rtol=1e-4)


@pytest.mark.parametrize("shape", [[2, 3, 3, 4], [5, 4]])
def test_batch_norm_inference_uses_moving_stats(shape):
  rng = np.random.RandomState(5)
  x = rng.normal(size=shape).astype(np.float32)
  with tf.Graph().as_default():
    outputs = layers.batch_norm(tf.constant(x), is_training=False,
                                epsilon=0.01, scope="bn")
    assert not tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
    variables = [_var("bn/" + n) for n in ("gamma", "beta", "moving_mean")]
    moving_variance = _var("bn/moving_variance")
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      _randomize(sess, variables, rng)
      sess.run(moving_variance.assign(
          rng.uniform(0.5, 2.0, size=[4]).astype(np.float32)))
      got, (g, b, m), v = sess.run([outputs, variables, moving_variance])
  np.testing.assert_allclose(got, (x - m) / np.sqrt(v + 0.01) * g + b,
                             rtol=1e-4, atol=1e-4)


def test_batch_norm_without_center_and_scale():
  with tf.Graph().as_default():
    outputs = layers.batch_norm(tf.ones([2, 2, 2, 3]), False, center=False,
                                scale=False, scope="bn")
    names = sorted(v.name for v in tf.compat.v1.global_variables())
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      got = sess.run(outputs)
  assert names == ["bn/moving_mean:0", "bn/moving_variance:0"]
  np.testing.assert_allclose(got, np.ones([2, 2, 2, 3]) / math.sqrt(1.001),
                             rtol=1e-5)


def test_batch_norm_rejects_tensor_is_training():
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError, match=r"is_training=.*Python bool"):
      layers.batch_norm(tf.ones([2, 3]), tf.constant(True))


# --- dropout ----------------------------------------------------------------


def test_dropout_is_identity_at_inference_and_rate_zero():
  x = np.arange(12, dtype=np.float32).reshape(3, 4)
  with tf.Graph().as_default():
    a = layers.dropout(tf.constant(x), 0.5, is_training=False)
    b = layers.dropout(tf.constant(x), 0.0, is_training=True)
    with tf.compat.v1.Session() as sess:
      got_a, got_b = sess.run([a, b])
  np.testing.assert_array_equal(got_a, x)
  np.testing.assert_array_equal(got_b, x)


def test_dropout_training_keeps_and_scales_reproducibly_per_step():
  rate = 0.3
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(7)
    step = tf.compat.v1.train.get_or_create_global_step()
    ones = tf.ones([200, 500])
    first = layers.dropout(ones, rate, is_training=True, scope="drop_a")
    second = layers.dropout(ones, rate, is_training=True, scope="drop_b")
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      mask_0, again_0, other_0 = sess.run([first, first, second])
      mask_0b = sess.run(first)
      sess.run(step.assign(1))
      mask_1 = sess.run(first)
  kept = mask_0 != 0
  assert abs(kept.mean() - (1 - rate)) < 0.01
  np.testing.assert_allclose(mask_0[kept], 1 / (1 - rate), rtol=1e-6)
  np.testing.assert_array_equal(mask_0, again_0)
  np.testing.assert_array_equal(mask_0, mask_0b)
  assert (mask_0 != mask_1).mean() > 0.2  # A new step, a new mask.
  assert (mask_0 != other_0).mean() > 0.2  # Another layer, another mask.

  # The same seed and step reproduce the mask in a fresh graph.
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(7)
    tf.compat.v1.train.get_or_create_global_step()
    first = layers.dropout(tf.ones([200, 500]), rate, True, scope="drop_a")
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      np.testing.assert_array_equal(sess.run(first), mask_0)


def test_dropout_without_global_step_uses_step_zero():
  with tf.Graph().as_default():
    out = layers.dropout(tf.ones([50, 50]), 0.5, True, scope="d")
    with tf.compat.v1.Session() as sess:
      a, b = sess.run(out), sess.run(out)
  np.testing.assert_array_equal(a, b)
  assert 0.4 < (a != 0).mean() < 0.6


@pytest.mark.parametrize("rate", [1.0, -0.1, "x"])
def test_dropout_rejects_bad_rate(rate):
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError, match=r"dropout rate .* \[0, 1\)"):
      layers.dropout(tf.ones([2, 2]), rate, True)


# --- pooling and flatten ----------------------------------------------------


@pytest.mark.parametrize("padding,size,stride", [("VALID", 2, None),
                                                 ("SAME", 2, None),
                                                 ("VALID", 3, 2),
                                                 ("SAME", 3, 2)])
def test_pooling_matches_numpy(padding, size, stride):
  rng = np.random.RandomState(6)
  x = rng.normal(size=[2, 7, 6, 3]).astype(np.float32)
  with tf.Graph().as_default():
    mx = layers.max_pool2d(tf.constant(x), size, stride=stride,
                           padding=padding)
    av = layers.avg_pool2d(tf.constant(x), size, stride=stride,
                           padding=padding)
    with tf.compat.v1.Session() as sess:
      got_max, got_avg = sess.run([mx, av])
  s = stride or size
  np.testing.assert_allclose(got_max, np_pool(x, size, s, padding, np.nanmax),
                             rtol=1e-6)
  np.testing.assert_allclose(got_avg,
                             np_pool(x, size, s, padding, np.nanmean),
                             rtol=1e-5, atol=1e-6)


def test_flatten_keeps_batch_dimension():
  x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
  with tf.Graph().as_default():
    static = tf.compat.v1.placeholder(tf.float32, [None, 3, 4, 5])
    dynamic = tf.compat.v1.placeholder(tf.float32, [None, None, 4, 5])
    flat_static = layers.flatten(static)
    flat_dynamic = layers.flatten(dynamic)
    assert flat_static.shape.as_list() == [None, 60]
    with tf.compat.v1.Session() as sess:
      a = sess.run(flat_static, {static: x})
      b = sess.run(flat_dynamic, {dynamic: x})
      empty = sess.run(flat_static, {static: x[:0]})
  np.testing.assert_array_equal(a, x.reshape(2, 60))
  np.testing.assert_array_equal(b, x.reshape(2, 60))
  assert empty.shape == (0, 60)


# --- initializers -----------------------------------------------------------


def _initial_kernels(seed):
  with tf.Graph().as_default():
    if seed is not None:
      tf.compat.v1.set_random_seed(seed)
    net = layers.conv2d(tf.zeros([1, 5, 5, 4]), 8, 3, scope="conv")
    net = layers.depthwise_conv2d(net, 3, depth_multiplier=2, scope="dw")
    net = layers.dense(tf.zeros([1, 300]), 200, scope="fc_a")
    layers.dense(tf.zeros([1, 300]), 200, scope="fc_b")
    kernels = layers.get_kernels()
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      return dict(zip([k.name for k in kernels], sess.run(kernels)))


def test_initializer_is_deterministic_per_seed_and_name():
  a, b = _initial_kernels(3), _initial_kernels(3)
  c = _initial_kernels(4)
  assert list(a) == ["conv/kernel:0", "dw/depthwise_kernel:0",
                     "fc_a/kernel:0", "fc_b/kernel:0"]
  for name in a:
    np.testing.assert_array_equal(a[name], b[name])
    assert not np.allclose(a[name], c[name])
  assert not np.allclose(a["fc_a/kernel:0"], a["fc_b/kernel:0"])
  np.testing.assert_array_equal(_initial_kernels(None)["fc_a/kernel:0"],
                                _initial_kernels(0)["fc_a/kernel:0"])


def test_initializer_is_glorot_uniform_with_keras_fans():
  kernels = _initial_kernels(5)
  limits = {
      "conv/kernel:0": math.sqrt(6.0 / (3 * 3 * 4 + 3 * 3 * 8)),
      "dw/depthwise_kernel:0": math.sqrt(6.0 / (3 * 3 * 8 + 3 * 3 * 2)),
      "fc_a/kernel:0": math.sqrt(6.0 / (300 + 200)),
  }
  for name, limit in limits.items():
    values = kernels[name]
    assert np.abs(values).max() <= limit
    assert np.abs(values).max() > 0.9 * limit
  fc = kernels["fc_a/kernel:0"]
  # Uniform on [-l, l]: mean 0, standard deviation l / sqrt(3).
  assert abs(fc.mean()) < 0.05 * limits["fc_a/kernel:0"]
  np.testing.assert_allclose(fc.std(), limits["fc_a/kernel:0"] / math.sqrt(3),
                             rtol=0.02)


# --- custom getters and get_kernels -----------------------------------------


def test_custom_getter_on_outer_scope_sees_every_variable():
  seen = []

  def zero_kernels(getter, name, *args, **kwargs):
    seen.append(name)
    variable = getter(name, *args, **kwargs)
    if name.split("/")[-1] in layers.KERNEL_NAMES:
      return variable * 0.0  # What a pruning mask of zeros would do.
    return variable

  with tf.Graph().as_default():
    with tf.compat.v1.variable_scope("net", custom_getter=zero_kernels):
      net = layers.conv2d(tf.ones([1, 4, 4, 2]), 3, 3)
      net = layers.depthwise_conv2d(net, 3)
      net = layers.separable_conv2d(net, 4, 3)
      net = layers.batch_norm(net, is_training=True)
      out = layers.dense(layers.flatten(net), 2, scope="fc")
    all_names = [v.name[:-2] for v in tf.compat.v1.global_variables()]
    kernels = [k.name[:-2] for k in layers.get_kernels("net")]
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      got = sess.run(out)
  assert seen == all_names
  assert len(all_names) == 13
  assert kernels == ["net/conv2d/kernel",
                     "net/depthwise_conv2d/depthwise_kernel",
                     "net/separable_conv2d/depthwise_kernel",
                     "net/separable_conv2d/pointwise_kernel",
                     "net/fc/kernel"]
  np.testing.assert_array_equal(got, np.zeros([1, 2]))  # Only zero biases.


def test_get_kernels_filters_by_scope_prefix():
  with tf.Graph().as_default():
    layers.dense(tf.zeros([1, 2]), 2, scope="a/fc")
    layers.dense(tf.zeros([1, 2]), 2, scope="ab/fc")
    with tf.compat.v1.variable_scope("a", reuse=True) as scope:
      pass
    assert [k.name for k in layers.get_kernels("a")] == ["a/fc/kernel:0"]
    assert [k.name for k in layers.get_kernels(scope)] == ["a/fc/kernel:0"]
    assert len(layers.get_kernels()) == 2


# --- errors -----------------------------------------------------------------


def test_rank_errors_name_tensor_scope_and_ranks():
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError,
                       match=r"For tensor .* in scope my_fc, rank 3 is not "
                       r"the expected 2"):
      layers.dense(tf.zeros([2, 3, 4]), 5, scope="my_fc")
    with pytest.raises(errors.ConfigError,
                       match=r"in scope conv2d, rank 2 is not the expected 4"):
      layers.conv2d(tf.zeros([2, 3]), 5, 3)
    with pytest.raises(errors.ConfigError, match=r"last dimension .* known"):
      layers.conv2d(tf.compat.v1.placeholder(tf.float32, [1, 4, 4, None]),
                    5, 3)
    with pytest.raises(errors.ConfigError, match=r"padding='FULL' is not one"):
      layers.conv2d(tf.zeros([1, 4, 4, 1]), 5, 3, padding="FULL")
    with pytest.raises(errors.ConfigError, match=r"kernel_size=\[3\] is not"):
      layers.conv2d(tf.zeros([1, 4, 4, 1]), 5, [3])
    with pytest.raises(errors.ConfigError, match=r"units=0 is not a positive"):
      layers.dense(tf.zeros([1, 4]), 0)
