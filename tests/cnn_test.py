"""Tests for distill_v1.models.cnn."""

import numpy as np

from distill_v1.compat import tf
from distill_v1.models import cnn


def _count(variables):
  return sum(int(np.prod(v.shape.as_list())) for v in variables)


def test_cnn_teacher_parameters_and_end_points():
  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(tf.float32, [None, 28, 28, 1])
    logits, end_points = cnn.cnn_teacher(images, 10)
    params = _count(tf.compat.v1.trainable_variables())
    names = [v.name for v in tf.compat.v1.trainable_variables()]
  assert params == ((5 * 5 * 1 * 32 + 32) + (5 * 5 * 32 * 64 + 64) +
                    (7 * 7 * 64 * 1024 + 1024) + (1024 * 10 + 10))
  assert params == 3274634
  assert names[0] == "cnn_teacher/conv1/kernel:0"
  assert list(end_points) == ["conv1", "pool1", "conv2", "pool2", "flatten",
                              "fc1", "dropout1", "logits"]
  assert end_points["conv2"].shape.as_list() == [None, 14, 14, 64]
  assert end_points["pool2"].shape.as_list() == [None, 7, 7, 64]
  assert logits.shape.as_list() == [None, 10]


def test_cnn_student_parameters_and_end_points():
  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(tf.float32, [None, 28, 28, 1])
    logits, end_points = cnn.cnn_student(images, 10)
    params = _count(tf.compat.v1.trainable_variables())
    names = [v.name for v in tf.compat.v1.trainable_variables()]
  assert params == ((3 * 3 * 1 * 16 + 16) + (3 * 3 * 16 * 32 + 32) +
                    (7 * 7 * 32 * 10 + 10))
  assert params == 20490
  assert names == ["cnn_student/conv1/kernel:0", "cnn_student/conv1/bias:0",
                   "cnn_student/conv2/kernel:0", "cnn_student/conv2/bias:0",
                   "cnn_student/logits/kernel:0", "cnn_student/logits/bias:0"]
  assert list(end_points) == ["conv1", "pool1", "conv2", "pool2", "flatten",
                              "logits"]
  assert logits.shape.as_list() == [None, 10]


def test_cnns_adapt_to_other_shapes():
  x = np.random.RandomState(0).uniform(size=[2, 32, 32, 3]).astype(np.float32)
  with tf.Graph().as_default():
    images = tf.constant(x)
    teacher, _ = cnn.cnn_teacher(images, 7, is_training=True)
    student, points = cnn.cnn_student(images, 7)
    teacher_params = _count(tf.compat.v1.trainable_variables("cnn_teacher/"))
    student_params = _count(tf.compat.v1.trainable_variables("cnn_student/"))
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      got_teacher, got_student = sess.run([teacher, student])
  assert points["pool2"].shape.as_list() == [2, 8, 8, 32]
  assert teacher_params == ((5 * 5 * 3 * 32 + 32) + (5 * 5 * 32 * 64 + 64) +
                            (8 * 8 * 64 * 1024 + 1024) + (1024 * 7 + 7))
  assert student_params == ((3 * 3 * 3 * 16 + 16) + (3 * 3 * 16 * 32 + 32) +
                            (8 * 8 * 32 * 7 + 7))
  assert got_teacher.shape == (2, 7) and got_student.shape == (2, 7)
  assert np.all(np.isfinite(got_teacher))
