"""Tests for distill_v1.losses.feature against numpy references."""

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.losses import feature

# Bilinear 2 -> 4 upsampling with half-pixel centres (tf.image.resize):
# output i samples input coordinate (i + 0.5) / 2 - 0.5, clamped at the edges.
_UPSAMPLE_2_TO_4 = np.array([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75],
                             [0.0, 1.0]])


def _var(name):
  matches = [v for v in tf.compat.v1.global_variables()
             if v.name == name + ":0"]
  assert len(matches) == 1, (name, tf.compat.v1.global_variables())
  return matches[0]


def _features(seed, shape):
  return np.random.RandomState(seed).randn(*shape).astype(np.float32)


# --- hint loss --------------------------------------------------------------


def test_hint_identity_adapter_is_mean_squared_error():
  student, teacher = _features(0, (2, 4, 4, 3)), _features(1, (2, 4, 4, 3))
  with tf.Graph().as_default():
    output = feature.hint_loss(tf.constant(student), tf.constant(teacher))
    assert list(output.extra) == ["hint_loss"]
    kernel = _var("hint_adapter/kernel")
    assert kernel.shape.as_list() == [1, 1, 3, 3]
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(kernel.assign(np.eye(3, dtype=np.float32)[None, None]))
      loss = sess.run(output.loss)
  np.testing.assert_allclose(loss, np.mean((student - teacher)**2),
                             rtol=1e-5)


def test_hint_conv_adapter_loss_and_gradients():
  student, teacher = _features(2, (2, 3, 3, 4)), _features(3, (2, 3, 3, 6))
  weight = _features(4, (4, 6))
  bias = _features(5, (6,))
  with tf.Graph().as_default():
    student_t = tf.constant(student)
    teacher_t = tf.constant(teacher)
    output = feature.hint_loss(student_t, teacher_t, scope="fitnet/hint1")
    kernel = _var("fitnet/hint1/kernel")
    bias_var = _var("fitnet/hint1/bias")
    assert kernel in tf.compat.v1.trainable_variables()
    assert bias_var in tf.compat.v1.trainable_variables()
    grads = tf.gradients(output.loss,
                         [student_t, teacher_t, kernel, bias_var])
    assert grads[1] is None
    assert all(g is not None for g in (grads[0], grads[2], grads[3]))
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run([kernel.assign(weight[None, None]), bias_var.assign(bias)])
      loss, student_grad, kernel_grad, bias_grad = sess.run(
          [output.loss, grads[0], grads[2], grads[3]])
  diff = student @ weight + bias - teacher
  n = diff.size
  np.testing.assert_allclose(loss, np.mean(diff**2), rtol=1e-5)
  np.testing.assert_allclose(student_grad, 2 * diff @ weight.T / n,
                             atol=1e-6)
  np.testing.assert_allclose(
      kernel_grad[0, 0],
      2 * student.reshape(-1, 4).T @ diff.reshape(-1, 6) / n, atol=1e-6)
  np.testing.assert_allclose(bias_grad, 2 * diff.reshape(-1, 6).sum(0) / n,
                             atol=1e-6)


def test_hint_dense_adapter_for_rank_2_features():
  student, teacher = _features(6, (5, 8)), _features(7, (5, 3))
  weight = _features(8, (8, 3))
  with tf.Graph().as_default():
    student_t = tf.constant(student)
    output = feature.hint_loss(student_t, tf.constant(teacher))
    kernel = _var("hint_adapter/kernel")
    assert kernel.shape.as_list() == [8, 3]
    grad = tf.gradients(output.loss, [student_t])[0]
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(kernel.assign(weight))
      loss, grad = sess.run([output.loss, grad])
  diff = student @ weight - teacher
  np.testing.assert_allclose(loss, np.mean(diff**2), rtol=1e-5)
  np.testing.assert_allclose(grad, 2 * diff @ weight.T / diff.size,
                             atol=1e-6)


def test_hint_spatial_mismatch_and_resize():
  student, teacher = _features(9, (2, 2, 2, 3)), _features(10, (2, 4, 4, 3))
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError,
                       match=r"shape \(2, 2, 2, 3\).*shape \(2, 4, 4, 3\).*"
                       r"resize=True"):
      feature.hint_loss(tf.constant(student), tf.constant(teacher))
  with tf.Graph().as_default():
    output = feature.hint_loss(tf.constant(student), tf.constant(teacher),
                               resize=True)
    kernel = _var("hint_adapter/kernel")
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(kernel.assign(np.eye(3, dtype=np.float32)[None, None]))
      loss = sess.run(output.loss)
  resized = np.einsum("ih,jw,bhwc->bijc", _UPSAMPLE_2_TO_4, _UPSAMPLE_2_TO_4,
                      student)
  np.testing.assert_allclose(loss, np.mean((resized - teacher)**2),
                             rtol=1e-5)


def test_hint_dynamic_spatial_mismatch_fails_at_run_time():
  with tf.Graph().as_default():
    student = tf.compat.v1.placeholder(tf.float32, [None, None, None, 2])
    teacher = tf.compat.v1.placeholder(tf.float32, [None, None, None, 2])
    output = feature.hint_loss(student, teacher)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      ok = sess.run(output.loss, {student: np.zeros([1, 3, 3, 2]),
                                  teacher: np.zeros([1, 3, 3, 2])})
      assert ok == 0.0
      with pytest.raises(tf.errors.InvalidArgumentError,
                         match=r"heights and widths differ"):
        sess.run(output.loss, {student: np.zeros([1, 3, 3, 2]),
                               teacher: np.zeros([1, 2, 2, 2])})


def test_hint_shape_errors():
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError, match=r"rank 4 \(shape .*rank 2"):
      feature.hint_loss(tf.zeros([2, 3, 3, 4]), tf.zeros([2, 4]))
    with pytest.raises(errors.ConfigError,
                       match=r"rank 3 is not the expected 2 or 4"):
      feature.hint_loss(tf.zeros([2, 3, 4]), tf.zeros([2, 3, 4]))
    with pytest.raises(errors.ConfigError, match=r"batch size 2 .* size 3"):
      feature.hint_loss(tf.zeros([2, 4]), tf.zeros([3, 4]))
    with pytest.raises(errors.ConfigError, match=r"channel count"):
      feature.hint_loss(tf.zeros([2, 4]),
                        tf.compat.v1.placeholder(tf.float32, [2, None]))


# --- attention transfer -----------------------------------------------------


def np_attention(a, p):
  q = np.mean(np.abs(a.astype(np.float64))**p, axis=-1).reshape(len(a), -1)
  return q / np.linalg.norm(q, axis=1, keepdims=True)


def np_at_loss(students, teachers, p):
  pairs = [np.linalg.norm(np_attention(s, p) - np_attention(t, p),
                          axis=1).mean()
           for s, t in zip(students, teachers)]
  return np.mean(pairs), pairs


@pytest.mark.parametrize("p", [1, 2, 4])
def test_attention_transfer_matches_numpy(p):
  students = [_features(11, (3, 4, 4, 2)), _features(12, (3, 2, 2, 5))]
  teachers = [_features(13, (3, 4, 4, 6)), _features(14, (3, 2, 2, 7))]
  with tf.Graph().as_default():
    output = feature.attention_transfer_loss(
        [tf.constant(s) for s in students],
        [tf.constant(t) for t in teachers], p=p)
    assert list(output.extra) == ["attention_transfer_loss",
                                  "attention_transfer_loss/pair_0",
                                  "attention_transfer_loss/pair_1"]
    with tf.compat.v1.Session() as sess:
      loss, extra = sess.run([output.loss, output.extra])
  expected, pairs = np_at_loss(students, teachers, p)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(extra["attention_transfer_loss/pair_0"],
                             pairs[0], rtol=1e-5)
  np.testing.assert_allclose(extra["attention_transfer_loss/pair_1"],
                             pairs[1], rtol=1e-5)


def test_attention_map_matches_numpy():
  a = _features(15, (2, 3, 5, 4))
  with tf.Graph().as_default():
    q = tf.compat.v1.Session().run(feature.attention_map(tf.constant(a)))
  assert q.shape == (2, 15)
  np.testing.assert_allclose(q, np_attention(a, 2), rtol=1e-5)


def test_attention_transfer_gradients():
  student, teacher = _features(16, (2, 3, 3, 4)), _features(17, (2, 3, 3, 8))
  with tf.Graph().as_default():
    student_t = tf.constant(student)
    teacher_t = tf.constant(teacher)
    loss = feature.attention_transfer_loss(student_t, teacher_t).loss
    student_grad, teacher_grad = tf.gradients(loss, [student_t, teacher_t])
    assert teacher_grad is None
    # Identical attention maps: loss 0, gradient 0 and not NaN.
    same = feature.attention_transfer_loss(student_t, 2.0 * student_t).loss
    same_grad = tf.gradients(same, [student_t])[0]
    with tf.compat.v1.Session() as sess:
      loss, student_grad, same, same_grad = sess.run(
          [loss, student_grad, same, same_grad])
  assert loss > 0
  assert np.abs(student_grad).max() > 0
  assert same < 1e-6
  assert np.all(np.isfinite(same_grad))
  assert np.abs(same_grad).max() < 1e-3
  # Finite differences on one element.
  eps = 1e-3
  bumped = student.copy()
  bumped[0, 1, 2, 3] += eps
  numeric = (np_at_loss([bumped], [teacher], 2)[0] -
             np_at_loss([student], [teacher], 2)[0]) / eps
  np.testing.assert_allclose(student_grad[0, 1, 2, 3], numeric, rtol=1e-2,
                             atol=1e-4)


def test_attention_transfer_resize():
  student, teacher = _features(18, (2, 2, 2, 3)), _features(19, (2, 4, 4, 5))
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError,
                       match=r"shape \(2, 2, 2, 3\).*shape \(2, 4, 4, 5\)"):
      feature.attention_transfer_loss(tf.constant(student),
                                      tf.constant(teacher))
    loss = feature.attention_transfer_loss(tf.constant(student),
                                           tf.constant(teacher),
                                           resize=True).loss
    loss = tf.compat.v1.Session().run(loss)
  resized = np.einsum("ih,jw,bhwc->bijc", _UPSAMPLE_2_TO_4, _UPSAMPLE_2_TO_4,
                      student)
  np.testing.assert_allclose(loss, np_at_loss([resized], [teacher], 2)[0],
                             rtol=1e-5)


def test_attention_transfer_errors():
  with tf.Graph().as_default():
    a = tf.zeros([2, 3, 3, 4])
    with pytest.raises(errors.ConfigError, match=r"1 student and 2 teacher"):
      feature.attention_transfer_loss([a], [a, a])
    with pytest.raises(errors.ConfigError, match=r"0 student and 0 teacher"):
      feature.attention_transfer_loss([], [])
    with pytest.raises(errors.ConfigError, match=r"p=0.5 .* >= 1"):
      feature.attention_transfer_loss(a, a, p=0.5)
    with pytest.raises(errors.ConfigError,
                       match=r"rank 2 is not the expected 4"):
      feature.attention_transfer_loss(tf.zeros([2, 4]), a)
    with pytest.raises(errors.ConfigError, match=r"batch size 2 .* size 5"):
      feature.attention_transfer_loss(a, tf.zeros([5, 3, 3, 4]))
