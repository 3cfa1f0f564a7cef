"""Tests of distill_v1.training.fused_sgd against numpy and plain SGD."""

import numpy as np
import pytest

from distill_v1.compat import tf
from distill_v1.models import mlp
from distill_v1.training import fused_sgd
from distill_v1.training import optimizers


def _op_types(graph):
  return [op.type for op in graph.get_operations()]


def test_one_dense_step_matches_numpy():
  rng = np.random.RandomState(0)
  x = rng.randn(5, 3).astype(np.float32)
  w0 = rng.randn(3, 4).astype(np.float32)
  target = rng.randn(5, 4).astype(np.float32)
  with tf.Graph().as_default() as graph:
    w = tf.compat.v1.get_variable("w", initializer=w0, use_resource=True)
    y = tf.linalg.matmul(tf.constant(x), w)
    loss = 0.5 * tf.reduce_sum(tf.square(y - target))
    opt = fused_sgd.FusedGradientDescentOptimizer(0.05)
    train_op = opt.minimize(loss, var_list=[w])
    assert opt.fused_variables == [w]
    assert "ResourceApplyGradientDescent" not in _op_types(graph)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(train_op)
      got = sess.run(w)
  # dL/dW = x^T (x W - target).
  expected = w0 - 0.05 * x.T.dot(x.dot(w0) - target)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _train_mlp(fused, weight_decay=0.0, steps=5):
  rng = np.random.RandomState(1)
  images = rng.rand(16, 28, 28, 1).astype(np.float32)
  labels = rng.randint(0, 10, size=16)
  with tf.Graph().as_default() as graph:
    tf.compat.v1.set_random_seed(3)
    logits, _ = mlp.mlp_student(tf.constant(images), 10, is_training=True,
                                layer_widths={"fc1": 32, "fc2": 16})
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                       logits=logits))
    var_list = tf.compat.v1.trainable_variables()
    if weight_decay:
      loss += weight_decay * tf.add_n(
          [tf.nn.l2_loss(v) for v in var_list if "kernel" in v.op.name])
    opt = optimizers.make_optimizer("sgd", tf.constant(0.2), fused=fused)
    train_op = opt.minimize(loss, var_list=var_list)
    applies = _op_types(graph).count("ResourceApplyGradientDescent")
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      for _ in range(steps):
        sess.run(train_op)
      values = {v.op.name: sess.run(v) for v in var_list}
  return values, applies, opt


def test_mlp_training_equals_gradient_descent():
  plain, plain_applies, plain_opt = _train_mlp(fused=False)
  fused, fused_applies, fused_opt = _train_mlp(fused=True)
  assert type(plain_opt) is tf.compat.v1.train.GradientDescentOptimizer
  assert isinstance(fused_opt, tf.compat.v1.train.GradientDescentOptimizer)
  # Three kernels fused; the three biases keep the parent's update.
  assert plain_applies == 6 and fused_applies == 3
  assert sorted(v.op.name for v in fused_opt.fused_variables) == [
      "mlp_student/fc1/kernel", "mlp_student/fc2/kernel",
      "mlp_student/logits/kernel"]
  for name, value in plain.items():
    np.testing.assert_allclose(fused[name], value, rtol=1e-5, atol=1e-6,
                               err_msg=name)
  # The run moved the weights, so equality is not trivially of the start.
  start, _, _ = _train_mlp(fused=False, steps=0)
  assert np.abs(plain["mlp_student/fc1/kernel"] -
                start["mlp_student/fc1/kernel"]).max() > 1e-4


def test_weight_decay_falls_back_and_stays_equal():
  plain, _, _ = _train_mlp(fused=False, weight_decay=0.01)
  fused, applies, opt = _train_mlp(fused=True, weight_decay=0.01)
  # Kernel gradients are sums (MatMul + decay), so nothing is fused.
  assert applies == 6 and not opt.fused_variables
  for name, value in plain.items():
    np.testing.assert_allclose(fused[name], value, rtol=1e-6, err_msg=name)


def test_matmul_producing_sees_through_identities_only():
  with tf.Graph().as_default():
    a = tf.ones([2, 3])
    b = tf.ones([3, 4])
    product = tf.linalg.matmul(a, b)
    assert fused_sgd.matmul_producing(tf.identity(tf.identity(product))) is (
        product.op)
    assert fused_sgd.matmul_producing(product * 2.0) is None


@pytest.mark.parametrize("transpose_a,transpose_b", [(False, True),
                                                     (True, True)])
def test_transposed_products_are_folded_with_their_transposes(transpose_a,
                                                              transpose_b):
  # A gradient that is a MatMul with other transposes than x^T @ dy.
  rng = np.random.RandomState(2)
  w0 = rng.randn(3, 4).astype(np.float32)
  a = rng.randn(*((5, 3) if transpose_a else (3, 5))).astype(np.float32)
  b = rng.randn(4, 5).astype(np.float32)
  with tf.Graph().as_default():
    w = tf.compat.v1.get_variable("w", initializer=w0, use_resource=True)
    grad = tf.linalg.matmul(a, b, transpose_a=transpose_a,
                            transpose_b=transpose_b)
    opt = fused_sgd.FusedGradientDescentOptimizer(0.5)
    train_op = opt.apply_gradients([(grad, w)])
    assert opt.fused_variables == [w]
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(train_op)
      got = sess.run(w)
  product = (a.T if transpose_a else a).dot(b.T)
  np.testing.assert_allclose(got, w0 - 0.5 * product, rtol=1e-5, atol=1e-6)
