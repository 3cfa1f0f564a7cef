"""Tests for distill_v1.losses.distillation against numpy references."""

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.losses import distillation


def np_softmax(x):
  x = np.asarray(x, np.float64)
  e = np.exp(x - x.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def np_log_softmax(x):
  x = np.asarray(x, np.float64)
  shifted = x - x.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_hard(labels, logits):
  return -np_log_softmax(logits)[np.arange(len(labels)), labels].mean()


def np_soft(probs, student, temperature, scale=True):
  loss = -(probs * np_log_softmax(student / temperature)).sum(axis=1).mean()
  return loss * (temperature**2 if scale else 1.0)


def _case(seed, batch=8, classes=10):
  rng = np.random.RandomState(seed)
  labels = rng.randint(0, classes, size=batch)
  student = (4 * rng.randn(batch, classes)).astype(np.float32)
  teachers = [(4 * rng.randn(batch, classes)).astype(np.float32)
              for _ in range(3)]
  return labels, student, teachers


def _run(fetches):
  with tf.compat.v1.Session() as sess:
    return sess.run(fetches)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("scale", [True, False])
def test_total_is_alpha_hard_plus_one_minus_alpha_soft(alpha, scale):
  labels, student, teachers = _case(0)
  temperature = 4.0
  with tf.Graph().as_default():
    output = distillation.distillation_loss(
        labels, student, teachers[0], temperature=temperature, alpha=alpha,
        scale_by_t_squared=scale)
    assert list(output.extra) == ["hard_loss", "soft_loss", "total_loss",
                                  "teacher_agreement"]
    assert output.loss.dtype == tf.float32 and output.loss.shape.ndims == 0
    assert not tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.LOSSES)
    loss, extra = _run([output.loss, output.extra])
  hard = np_hard(labels, student)
  soft = np_soft(np_softmax(teachers[0] / temperature), student, temperature,
                 scale)
  np.testing.assert_allclose(extra["hard_loss"], hard, rtol=1e-5)
  np.testing.assert_allclose(extra["soft_loss"], soft, rtol=1e-5)
  np.testing.assert_allclose(loss, alpha * hard + (1 - alpha) * soft,
                             rtol=1e-5)
  assert extra["total_loss"] == loss


def test_ensemble_list_and_precomputed_probs():
  labels, student, teachers = _case(1)
  temperature, alpha = 3.0, 0.25
  probs = np.mean([np_softmax(t / temperature) for t in teachers], axis=0)
  with tf.Graph().as_default():
    from_list = distillation.distillation_loss(
        labels, student, teachers, temperature=temperature, alpha=alpha)
    from_probs = distillation.distillation_loss(
        labels, student, teacher_probs=probs.astype(np.float32),
        temperature=temperature, alpha=alpha)
    from_list, from_probs = _run([from_list, from_probs])
  expected = (alpha * np_hard(labels, student) +
              (1 - alpha) * np_soft(probs, student, temperature))
  np.testing.assert_allclose(from_list.loss, expected, rtol=1e-5)
  np.testing.assert_allclose(from_probs.loss, expected, rtol=1e-5)
  expected_agreement = np.mean(probs.argmax(1) == student.argmax(1))
  assert from_list.extra["teacher_agreement"] == expected_agreement
  assert from_probs.extra["teacher_agreement"] == expected_agreement


def test_teacher_agreement_hand_made():
  # Student picks 0, 1, 2, 0; teacher picks 0, 2, 2, 1: two of four agree.
  student = np.array([[5, 1, 0], [0, 3, 1], [0, 0, 9], [2, 1, 1]],
                     np.float32)
  teacher = np.array([[9, 0, 0], [0, 1, 4], [1, 2, 3], [0, 7, 1]],
                     np.float32)
  with tf.Graph().as_default():
    output = distillation.distillation_loss(
        np.array([0, 1, 2, 0]), student, teacher, temperature=2.0)
    direct = distillation.teacher_agreement(student, teacher)
    agreement, direct = _run([output.extra["teacher_agreement"], direct])
  assert agreement == 0.5
  assert direct == 0.5


def test_gradients_reach_only_the_student():
  labels, student, teachers = _case(2)
  with tf.Graph().as_default():
    student_t = tf.constant(student)
    teacher_ts = [tf.constant(t) for t in teachers]
    single = distillation.distillation_loss(labels, student_t, teacher_ts[0],
                                            temperature=4.0)
    ensemble = distillation.distillation_loss(labels, student_t, teacher_ts,
                                              temperature=4.0)
    for output in (single, ensemble):
      grads = tf.gradients(output.loss, [student_t] + teacher_ts)
      assert grads[0] is not None
      assert grads[1:] == [None, None, None]
    student_grad = _run(tf.gradients(single.loss, [student_t])[0])
  alpha, temperature, batch = 0.1, 4.0, len(labels)
  expected = (alpha * (np_softmax(student) - np.eye(10)[labels]) / batch +
              (1 - alpha) * temperature *
              (np_softmax(student / temperature) -
               np_softmax(teachers[0] / temperature)) / batch)
  np.testing.assert_allclose(student_grad, expected, atol=1e-6)


def test_extreme_logits_are_finite():
  student = np.array([[1e4, -1e4, 0.0], [-1e4, 0.0, 1e4]], np.float32)
  teacher = np.array([[-1e4, 1e4, 0.0], [-1e4, 0.0, 1e4]], np.float32)
  with tf.Graph().as_default():
    student_t = tf.constant(student)
    output = distillation.distillation_loss(np.array([1, 2]), student_t,
                                            teacher, temperature=4.0)
    grad = tf.gradients(output.loss, [student_t])[0]
    values, grad = _run([output.extra, grad])
  assert all(np.isfinite(v) for v in values.values())
  assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("alpha", [-0.1, 1.1, float("nan"), True, "0.5"])
def test_bad_alpha(alpha):
  with pytest.raises(errors.ConfigError, match=r"alpha="):
    distillation.validate_distillation_args(4.0, alpha)
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError, match=r"alpha="):
      distillation.distillation_loss([0], np.zeros([1, 3], np.float32),
                                     np.zeros([1, 3], np.float32),
                                     temperature=4.0, alpha=alpha)


@pytest.mark.parametrize("temperature", [0.0, -2.0, float("inf")])
def test_bad_temperature(temperature):
  with pytest.raises(errors.ConfigError, match=r"temperature="):
    distillation.validate_distillation_args(temperature, 0.1)


def test_validate_distillation_args_needs_no_graph():
  graph = tf.compat.v1.get_default_graph()
  before = len(graph.get_operations())
  assert distillation.validate_distillation_args(4, np.float32(0.5)) == (4.0,
                                                                         0.5)
  assert distillation.validate_distillation_args(1e-2, 0) == (0.01, 0.0)
  assert distillation.validate_distillation_args(20.0, 1) == (20.0, 1.0)
  assert len(graph.get_operations()) == before


def test_argument_errors():
  zeros = np.zeros([2, 3], np.float32)
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError, match=r"needs a temperature"):
      distillation.distillation_loss([0, 1], zeros, zeros)
    with pytest.raises(errors.ConfigError, match=r"exactly one .* neither"):
      distillation.distillation_loss([0, 1], zeros, temperature=4.0)
    with pytest.raises(errors.ConfigError, match=r"exactly one .* both"):
      distillation.distillation_loss([0, 1], zeros, zeros, temperature=4.0,
                                     teacher_probs=zeros)
    with pytest.raises(errors.ConfigError,
                       match=r"teacher has 4 classes, student has 3"):
      distillation.distillation_loss([0, 1], zeros,
                                     np.zeros([2, 4], np.float32),
                                     temperature=4.0)
