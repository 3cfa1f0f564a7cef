"""Tests for distill_v1.losses.soft_target against numpy references."""

import math

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.losses import soft_target


def np_softmax(x):
  x = np.asarray(x, np.float64)
  e = np.exp(x - x.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def np_log_softmax(x):
  x = np.asarray(x, np.float64)
  shifted = x - x.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_soft_loss_from_probs(probs, student, temperature, scale=True):
  per_example = -(probs * np_log_softmax(student / temperature)).sum(axis=1)
  return per_example.mean() * (temperature**2 if scale else 1.0)


def np_soft_loss(teacher, student, temperature, scale=True):
  return np_soft_loss_from_probs(np_softmax(teacher / temperature), student,
                                 temperature, scale)


def _logits(seed, shape=(8, 10), spread=5.0):
  rng = np.random.RandomState(seed)
  return (spread * rng.randn(*shape)).astype(np.float32)


def _run(fetches, feed_dict=None):
  with tf.compat.v1.Session() as sess:
    return sess.run(fetches, feed_dict)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
@pytest.mark.parametrize("scale", [True, False])
def test_matches_numpy(temperature, scale):
  teacher, student = _logits(0), _logits(1)
  with tf.Graph().as_default():
    output = soft_target.soft_target_loss(
        tf.constant(teacher), tf.constant(student), temperature,
        scale_by_t_squared=scale)
    assert output.loss.dtype == tf.float32
    assert output.loss.shape.ndims == 0
    assert list(output.extra) == ["soft_loss"]
    loss, extra = _run([output.loss, output.extra])
  expected = np_soft_loss(teacher, student, temperature, scale)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  assert extra["soft_loss"] == loss


def test_scaled_is_t_squared_times_unscaled():
  teacher, student = _logits(2), _logits(3)
  with tf.Graph().as_default():
    scaled = soft_target.soft_target_loss(teacher, student, 4.0).loss
    unscaled = soft_target.soft_target_loss(teacher, student, 4.0,
                                            scale_by_t_squared=False).loss
    scaled, unscaled = _run([scaled, unscaled])
  np.testing.assert_allclose(scaled, 16.0 * unscaled, rtol=1e-6)
  assert unscaled > 0.1  # Not trivially zero.


def test_one_hot_teacher_at_t1_is_plain_cross_entropy():
  labels = np.array([3, 0, 9, 9, 5, 1, 2, 7])
  teacher = (1e3 * np.eye(10)[labels]).astype(np.float32)  # Huge margin.
  student = _logits(4)
  with tf.Graph().as_default():
    soft = soft_target.soft_target_loss(teacher, student, 1.0).loss
    hard = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=student))
    soft, hard = _run([soft, hard])
  np.testing.assert_allclose(soft, hard, rtol=1e-6)
  np.testing.assert_allclose(
      soft, -np_log_softmax(student)[np.arange(8), labels].mean(), rtol=1e-5)


def test_uses_the_v1_loss_op_and_stays_out_of_the_losses_collection():
  with tf.Graph().as_default() as graph:
    soft_target.soft_target_loss(_logits(0), _logits(1), 4.0)
    soft_target.soft_target_loss_from_probs(np_softmax(_logits(0) / 4.0),
                                            _logits(1), 4.0)
    assert not tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.LOSSES)
    op_types = {op.type for op in graph.get_operations()}
  assert "SoftmaxCrossEntropyWithLogits" in op_types


def test_no_gradient_reaches_the_teacher():
  teacher, student = _logits(5), _logits(6)
  with tf.Graph().as_default():
    teacher_t = tf.constant(teacher)
    student_t = tf.constant(student)
    output = soft_target.soft_target_loss(teacher_t, student_t, 4.0)
    teacher_grad, student_grad = tf.gradients(output.loss,
                                              [teacher_t, student_t])
    assert teacher_grad is None
    probs_t = tf.constant(np_softmax(teacher / 4.0).astype(np.float32))
    from_probs = soft_target.soft_target_loss_from_probs(probs_t, student_t,
                                                         4.0)
    assert tf.gradients(from_probs.loss, [probs_t]) == [None]
    graph = tf.compat.v1.get_default_graph()
    for scope_name in ("soft_target_loss", "soft_target_loss_1"):
      op = graph.get_operation_by_name(scope_name + "/teacher_soft_targets")
      assert op.type == "StopGradient"
    student_grad = _run(student_grad)
  # d/dz_s of T**2 * mean_b CE = T * (softmax(z_s/T) - softmax(z_t/T)) / B.
  expected = 4.0 * (np_softmax(student / 4.0) - np_softmax(teacher / 4.0)) / 8
  np.testing.assert_allclose(student_grad, expected, atol=1e-6)


def _soft_gradient_norms(temperatures, scale, seed):
  teacher, student = _logits(seed, (32, 10)), _logits(seed + 100, (32, 10))
  with tf.Graph().as_default():
    student_t = tf.constant(student)
    grads = []
    for temperature in temperatures:
      loss = soft_target.soft_target_loss(teacher, student_t, temperature,
                                          scale_by_t_squared=scale).loss
      grads.append(tf.norm(tf.gradients(loss, [student_t])[0]))
    return np.array(_run(grads))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_t_squared_keeps_the_gradient_scale(seed):
  temperatures = [1.0, 2.0, 4.0, 8.0, 20.0]
  norms = _soft_gradient_norms(temperatures, True, seed)
  assert np.all(norms > 0)
  assert norms.max() / norms.min() < 3.0, norms
  # Without T**2 the norm falls about as 1 / T**2 once T is large.
  raw = _soft_gradient_norms([4.0, 20.0], False, seed)
  np.testing.assert_allclose(raw, norms[[2, 4]] / np.array([16.0, 400.0]),
                             rtol=1e-4)
  ratio = raw[1] / raw[0]
  assert 0.5 * (4.0 / 20.0)**2 < ratio < 2.0 * (4.0 / 20.0)**2, ratio


def test_soft_targets_of_an_ensemble_is_the_mean_distribution():
  teachers = [_logits(7), _logits(8), _logits(9)]
  with tf.Graph().as_default():
    probs = soft_target.soft_targets(teachers, 3.0)
    single = soft_target.soft_targets(teachers[0], 3.0)
    probs, single = _run([probs, single])
  expected = np.mean([np_softmax(t / 3.0) for t in teachers], axis=0)
  np.testing.assert_allclose(probs, expected, atol=1e-6)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
  np.testing.assert_allclose(single, np_softmax(teachers[0] / 3.0),
                             atol=1e-6)


@pytest.mark.parametrize("scale", [True, False])
def test_loss_from_probs(scale):
  teachers = [_logits(10), _logits(11)]
  student = _logits(12)
  with tf.Graph().as_default():
    ensemble = soft_target.soft_target_loss_from_probs(
        soft_target.soft_targets(teachers, 2.0), student, 2.0,
        scale_by_t_squared=scale)
    # One teacher's softened distribution gives soft_target_loss exactly.
    one = soft_target.soft_target_loss_from_probs(
        soft_target.soft_targets([teachers[0]], 2.0), student, 2.0,
        scale_by_t_squared=scale)
    direct = soft_target.soft_target_loss(teachers[0], student, 2.0,
                                          scale_by_t_squared=scale)
    ensemble, one, direct = _run([ensemble.loss, one.loss, direct.loss])
  probs = np.mean([np_softmax(t / 2.0) for t in teachers], axis=0)
  np.testing.assert_allclose(
      ensemble, np_soft_loss_from_probs(probs, student, 2.0, scale),
      rtol=1e-5)
  np.testing.assert_allclose(one, direct, rtol=1e-6)


def test_extreme_logits_are_finite():
  teacher = np.array([[1e4, -1e4, 0.0], [0.0, 1e4, -1e4]], np.float32)
  student = np.array([[-1e4, 1e4, 0.0], [0.0, 1e4, -1e4]], np.float32)
  with tf.Graph().as_default():
    student_t = tf.constant(student)
    losses = []
    for temperature in (0.5, 1.0, 20.0):
      losses.append(soft_target.soft_target_loss(teacher, student_t,
                                                 temperature).loss)
    grads = tf.gradients(tf.add_n(losses), [student_t])
    losses, grads = _run([losses, grads])
  assert np.all(np.isfinite(losses)) and np.all(np.isfinite(grads[0]))
  # Example 0 at T = 1: the student puts log-probability -2e4 on the class
  # the teacher is sure of; example 1 agrees.
  np.testing.assert_allclose(losses[1], 1e4, rtol=1e-5)


def test_dynamic_batch():
  teacher, student = _logits(13), _logits(14)
  with tf.Graph().as_default():
    teacher_ph = tf.compat.v1.placeholder(tf.float32, [None, 10])
    student_ph = tf.compat.v1.placeholder(tf.float32, [None, 10])
    loss = soft_target.soft_target_loss(teacher_ph, student_ph, 4.0).loss
    loss = _run(loss, {teacher_ph: teacher, student_ph: student})
  np.testing.assert_allclose(loss, np_soft_loss(teacher, student, 4.0),
                             rtol=1e-5)


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf"),
                                 "4", True, None])
def test_bad_temperature(bad):
  with pytest.raises(errors.ConfigError, match=r"temperature=.*"):
    soft_target.validate_temperature(bad)
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError, match=r"temperature="):
      soft_target.soft_target_loss(_logits(0), _logits(1), bad)
    with pytest.raises(errors.ConfigError, match=r"temperature="):
      soft_target.soft_targets([_logits(0)], bad)


def test_validate_temperature_returns_a_float():
  assert soft_target.validate_temperature(np.float32(4)) == 4.0
  assert isinstance(soft_target.validate_temperature(2), float)
  assert soft_target.validate_temperature(1e-3) == 1e-3
  assert math.isclose(soft_target.validate_temperature(20), 20.0)


def test_class_mismatch():
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError,
                       match=r"teacher has 10 classes, student has 5"):
      soft_target.soft_target_loss(tf.zeros([4, 10]), tf.zeros([4, 5]), 4.0)
    with pytest.raises(errors.ConfigError,
                       match=r"teacher has 3 classes, student has 5"):
      soft_target.soft_target_loss_from_probs(tf.zeros([4, 3]),
                                              tf.zeros([4, 5]), 4.0)
    with pytest.raises(errors.ConfigError,
                       match=r"teacher 1 has 4 classes, teacher 0 has 10"):
      soft_target.soft_targets([tf.zeros([2, 10]), tf.zeros([2, 4])], 4.0)
    with pytest.raises(errors.ConfigError, match=r"number of classes"):
      soft_target.soft_target_loss(
          tf.compat.v1.placeholder(tf.float32, [None, None]),
          tf.zeros([4, 5]), 4.0)


def test_shape_errors():
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError,
                       match=r"For tensor .* in scope soft_target_loss, rank 1 "
                       r"is not the expected 2"):
      soft_target.soft_target_loss(tf.zeros([10]), tf.zeros([4, 10]), 4.0)
    with pytest.raises(errors.ConfigError,
                       match=r"batch size 4 .* batch size 6"):
      soft_target.soft_target_loss(tf.zeros([4, 10]), tf.zeros([6, 10]), 4.0)
    with pytest.raises(errors.ConfigError, match=r"empty list"):
      soft_target.soft_targets([], 4.0)
