"""Tests for distill_v1.models.mlp."""

import numpy as np

from distill_v1.compat import tf
from distill_v1.models import mlp


def _count(variables):
  return sum(int(np.prod(v.shape.as_list())) for v in variables)


def _build(fn, shape, num_classes, **kwargs):
  images = tf.compat.v1.placeholder(tf.float32, [None] + list(shape))
  logits, end_points = fn(images, num_classes, **kwargs)
  return images, logits, end_points


def test_mlp_teacher_parameters_and_names():
  with tf.Graph().as_default():
    _, logits, end_points = _build(mlp.mlp_teacher, [28, 28, 1], 10)
    params = _count(tf.compat.v1.trainable_variables())
    names = [v.name for v in tf.compat.v1.trainable_variables()]
  assert params == (784 * 1200 + 1200) + (1200 * 1200 + 1200) + (1200 * 10 +
                                                                  10)
  assert params == 2395210
  assert names == ["mlp_teacher/fc1/kernel:0", "mlp_teacher/fc1/bias:0",
                   "mlp_teacher/fc2/kernel:0", "mlp_teacher/fc2/bias:0",
                   "mlp_teacher/logits/kernel:0", "mlp_teacher/logits/bias:0"]
  assert list(end_points) == ["flatten", "fc1", "dropout1", "fc2", "dropout2",
                              "logits"]
  assert logits.shape.as_list() == [None, 10]
  assert end_points["fc2"].shape.as_list() == [None, 1200]


def test_mlp_student_parameters_and_names():
  with tf.Graph().as_default():
    _, logits, end_points = _build(mlp.mlp_student, [28, 28, 1], 10,
                                   scope="student")
    params = _count(tf.compat.v1.trainable_variables())
    first = tf.compat.v1.trainable_variables()[0].name
  assert params == (784 * 800 + 800) + (800 * 800 + 800) + (800 * 10 + 10)
  assert params == 1276810
  assert first == "student/fc1/kernel:0"
  assert list(end_points) == ["flatten", "fc1", "fc2", "logits"]
  assert logits.shape.as_list() == [None, 10]


def test_mlps_adapt_to_other_shapes():
  x = np.random.RandomState(0).uniform(size=[3, 32, 32, 3]).astype(np.float32)
  for fn, hidden in ((mlp.mlp_teacher, 1200), (mlp.mlp_student, 800)):
    with tf.Graph().as_default():
      images, logits, _ = _build(fn, [32, 32, 3], 7)
      params = _count(tf.compat.v1.trainable_variables())
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        got = sess.run(logits, {images: x})
    assert params == (3072 * hidden + hidden) + (hidden * hidden + hidden) + (
        hidden * 7 + 7)
    assert got.shape == (3, 7)


def test_mlp_teacher_dropout_only_in_training():
  x = np.random.RandomState(1).uniform(size=[4, 28, 28, 1]).astype(np.float32)
  with tf.Graph().as_default():
    tf.compat.v1.set_random_seed(1)
    step = tf.compat.v1.train.get_or_create_global_step()
    images = tf.constant(x)
    train_logits, _ = mlp.mlp_teacher(images, 10, is_training=True)
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(),
                                     reuse=True):
      eval_logits, eval_points = mlp.mlp_teacher(images, 10)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      train_0, eval_0, fc1, dropped = sess.run(
          [train_logits, eval_logits, eval_points["fc1"],
           eval_points["dropout1"]])
      sess.run(step.assign(1))
      train_1, eval_1 = sess.run([train_logits, eval_logits])
  np.testing.assert_array_equal(eval_0, eval_1)
  np.testing.assert_array_equal(fc1, dropped)
  assert not np.allclose(train_0, train_1)
  assert not np.allclose(train_0, eval_0)
