"""Tests of distill_v1.training.fast_gradients against numpy and TensorFlow."""

import numpy as np
import pytest

from distill_v1.compat import tf
from distill_v1.models import cnn
from distill_v1.training import fast_gradients
from distill_v1.training import fused_sgd

BACKPROP_OPS = {"Conv2DBackpropInput", "Conv2DBackpropFilter"}


def _conv_gradients(enabled, x, w, seed=0, **conv_kwargs):
  """(dx, dw) of sum(conv2d(x, w) * r) for a fixed random r, and op types."""
  with tf.Graph().as_default() as graph:
    xv, wv = tf.constant(x), tf.constant(w)
    with fast_gradients.scope(enabled):
      y = tf.nn.conv2d(xv, wv, **conv_kwargs)
    r = np.random.RandomState(seed).randn(*y.shape).astype(np.float32)
    dx, dw = tf.gradients(tf.reduce_sum(y * r), [xv, wv])
    with tf.compat.v1.Session() as sess:
      values = sess.run([dx, dw])
    return values, r, {op.type for op in graph.get_operations()}


def _numpy_conv_same_stride1(x, w):
  """Reference conv2d, SAME, stride 1, odd kernel: [n, h, w, out]."""
  kh, kw = w.shape[:2]
  pad = np.pad(x, [(0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)])
  out = np.zeros(x.shape[:3] + (w.shape[3],), np.float64)
  for i in range(kh):
    for j in range(kw):
      out += np.einsum("nhwc,co->nhwo",
                       pad[:, i:i + x.shape[1], j:j + x.shape[2]], w[i, j])
  return out


@pytest.mark.parametrize("kernel, in_channels, out_channels", [
    (5, 3, 4), (3, 1, 2), (1, 6, 5), (3, 2, 7)])
def test_conv_gradients_match_numpy(kernel, in_channels, out_channels):
  rng = np.random.RandomState(kernel)
  x = rng.randn(3, 7, 6, in_channels).astype(np.float32)
  w = rng.randn(kernel, kernel, in_channels, out_channels).astype(np.float32)
  (dx, dw), r, types = _conv_gradients(True, x, w, strides=1,
                                       padding="SAME")
  assert not types & BACKPROP_OPS  # the forward-op path was taken
  # L = sum(conv(x, w) * r) is linear in x and in w: its gradient along a
  # basis direction is L of that direction.
  loss = lambda xx, ww: float(np.sum(_numpy_conv_same_stride1(xx, ww) * r))
  expected_dw = np.zeros(w.shape)
  for index in np.ndindex(*w.shape):
    basis = np.zeros(w.shape)
    basis[index] = 1
    expected_dw[index] = loss(x.astype(np.float64), basis)
  np.testing.assert_allclose(dw, expected_dw, rtol=1e-4, atol=1e-4)
  for index in [(0, 0, 0, 0), (1, 3, 2, in_channels - 1), (2, 6, 5, 0)]:
    basis = np.zeros(x.shape)
    basis[index] = 1
    assert dx[index] == pytest.approx(loss(basis, w.astype(np.float64)),
                                      rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("conv_kwargs", [
    dict(strides=1, padding="SAME"),
    dict(strides=2, padding="SAME"),
    dict(strides=1, padding="VALID"),
])  # (TensorFlow's CPU Conv2D has no dilations.)
@pytest.mark.parametrize("kernel", [1, 2, 3])
def test_conv_gradients_equal_tensorflows(kernel, conv_kwargs):
  rng = np.random.RandomState(10 + kernel)
  x = rng.randn(4, 9, 8, 3).astype(np.float32)
  w = rng.randn(kernel, kernel, 3, 5).astype(np.float32)
  fast, _, fast_types = _conv_gradients(True, x, w, **conv_kwargs)
  native, _, native_types = _conv_gradients(False, x, w, **conv_kwargs)
  for got, expected in zip(fast, native):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  assert BACKPROP_OPS <= native_types
  applies = (conv_kwargs == dict(strides=1, padding="SAME") and
             kernel % 2 == 1)
  assert bool(fast_types & BACKPROP_OPS) != applies


@pytest.mark.parametrize("transpose_a, transpose_b", [
    (False, False), (True, False), (False, True), (True, True)])
def test_matmul_gradients_equal_numpy(transpose_a, transpose_b):
  rng = np.random.RandomState(3)
  a = rng.randn(5, 4).astype(np.float32)
  b = rng.randn(4, 6).astype(np.float32)
  r = rng.randn(5, 6).astype(np.float32)
  a_in = a.T.copy() if transpose_a else a
  b_in = b.T.copy() if transpose_b else b
  with tf.Graph().as_default():
    av, bv = tf.constant(a_in), tf.constant(b_in)
    with fast_gradients.scope():
      y = tf.linalg.matmul(av, bv, transpose_a=transpose_a,
                           transpose_b=transpose_b)
    assert y.op.get_attr("_gradient_op_type") == (
        fast_gradients.MATMUL_GRADIENT.encode())
    da, db = tf.gradients(tf.reduce_sum(y * r), [av, bv])
    with tf.compat.v1.Session() as sess:
      da, db = sess.run([da, db])
  # y = a @ b: dL/da = r @ b^T, dL/db = a^T @ r (transposed back if the
  # input was given transposed).
  expected_da, expected_db = r.dot(b.T), a.T.dot(r)
  np.testing.assert_allclose(da, expected_da.T if transpose_a else expected_da,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(db, expected_db.T if transpose_b else expected_db,
                             rtol=1e-5, atol=1e-5)


def test_disabled_scope_leaves_the_ops_alone():
  with tf.Graph().as_default():
    with fast_gradients.scope(False):
      y = tf.linalg.matmul(tf.ones([2, 3]), tf.ones([3, 4]))
    with pytest.raises(ValueError):
      y.op.get_attr("_gradient_op_type")


def test_cnn_teacher_step_is_the_same_and_sgd_still_fuses_its_kernels():
  rng = np.random.RandomState(0)
  images = rng.rand(8, 28, 28, 1).astype(np.float32)
  labels = rng.randint(0, 10, size=8)

  def one_step(enabled):
    with tf.Graph().as_default() as graph:
      with fast_gradients.scope(enabled):
        logits, _ = cnn.cnn_teacher(tf.constant(images), 10,
                                    is_training=False)
      loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
      optimizer = fused_sgd.FusedGradientDescentOptimizer(0.1)
      train_op = optimizer.minimize(loss)
      fused = sorted(v.name for v in optimizer.fused_variables)
      types = {op.type for op in graph.get_operations()}
      variables = tf.compat.v1.trainable_variables()
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        before = sess.run(variables)
        sess.run(train_op)
        after = sess.run(variables)
    return [b - a for a, b in zip(before, after)], fused, types

  fast_steps, fast_fused, fast_types = one_step(True)
  native_steps, native_fused, native_types = one_step(False)
  assert not fast_types & BACKPROP_OPS and BACKPROP_OPS <= native_types
  assert fast_fused == native_fused and len(fast_fused) == 2  # fc1, logits
  for fast, native in zip(fast_steps, native_steps):
    assert np.abs(native).max() > 0
    np.testing.assert_allclose(fast, native, rtol=1e-4,
                               atol=1e-4 * np.abs(native).max())
