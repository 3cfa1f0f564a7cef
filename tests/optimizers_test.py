"""Tests of distill_v1.training.optimizers against the schedule formulas."""

import math

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.training import optimizers

v1 = tf.compat.v1

STEPS = (0, 1, 7, 49, 50, 51, 74, 75, 76, 99, 100, 150)


def _rates(steps=STEPS, **kwargs):
  """Evaluates learning_rate_schedule(**kwargs) at each of `steps`."""
  with tf.Graph().as_default():
    global_step = v1.placeholder(tf.int64, [])
    rate = optimizers.learning_rate_schedule(global_step=global_step, **kwargs)
    assert rate.dtype == tf.float32
    assert rate.shape.as_list() == []
    with v1.Session() as sess:
      return np.array([sess.run(rate, {global_step: s}) for s in steps])


def _check(kwargs, formula):
  expected = np.array([formula(s) for s in STEPS], np.float64)
  np.testing.assert_allclose(_rates(**kwargs), expected, rtol=1e-6, atol=1e-8)


def test_none_is_constant():
  _check(dict(base_rate=0.05, decay="none", total_steps=100,
              steps_per_epoch=10), lambda s: 0.05)


def test_exponential_defaults_to_decay_rate_at_the_end():
  # decay_epochs defaults to the run: 100 steps.
  _check(dict(base_rate=0.1, decay="exponential", total_steps=100,
              steps_per_epoch=10, decay_rate=0.01),
         lambda s: 0.1 * 0.01**(s / 100.0))


def test_exponential_with_decay_epochs():
  _check(dict(base_rate=0.2, decay="exponential", total_steps=100,
              steps_per_epoch=10, decay_rate=0.5, decay_epochs=2),
         lambda s: 0.2 * 0.5**(s / 20.0))


def test_piecewise_default_boundaries_at_half_and_three_quarters():
  # tf.compat.v1.train.piecewise_constant: values[i] while step <= boundary.
  def formula(s):
    return 0.1 * 0.1**((s > 50) + (s > 75))

  _check(dict(base_rate=0.1, decay="piecewise", total_steps=100,
              steps_per_epoch=10), formula)
  assert _rates(steps=(50, 51, 76), base_rate=0.1, decay="piecewise",
                total_steps=100, steps_per_epoch=10).tolist() == pytest.approx(
                    [0.1, 0.01, 0.001])


def test_piecewise_with_boundaries_in_epochs():
  def formula(s):
    return 1.0 * 0.5**((s > 20) + (s > 70))

  _check(dict(base_rate=1.0, decay="piecewise", total_steps=100,
              steps_per_epoch=10, decay_rate=0.5, boundaries_epochs=[2, 7]),
         formula)


def test_cosine_reaches_zero_at_the_end_and_stays():
  _check(dict(base_rate=0.3, decay="cosine", total_steps=100,
              steps_per_epoch=10),
         lambda s: 0.3 * 0.5 * (1 + math.cos(math.pi * min(s / 100.0, 1.0))))
  rates = _rates(steps=(0, 50, 100, 150), base_rate=0.3, decay="cosine",
                 total_steps=100, steps_per_epoch=10)
  np.testing.assert_allclose(rates, [0.3, 0.15, 0.0, 0.0], atol=1e-7)


def test_warmup_is_linear_then_follows_the_schedule():
  _check(dict(base_rate=0.1, decay="none", total_steps=100,
              steps_per_epoch=10, warmup_steps=10),
         lambda s: 0.1 * min(1.0, (s + 1) / 10.0))
  _check(dict(base_rate=0.3, decay="cosine", total_steps=100,
              steps_per_epoch=10, warmup_steps=20),
         lambda s: (0.3 * 0.5 * (1 + math.cos(math.pi * min(s / 100.0, 1.0)))
                    * min(1.0, (s + 1) / 20.0)))


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(decay="linear"), r"learning_rate_decay 'linear' is not one of "
     r"none, exponential, piecewise, cosine"),
    (dict(base_rate=0.0), r"learning_rate must be a finite number > 0, got "
     r"0\.0"),
    (dict(base_rate=-1.0), r"got -1\.0"),
    (dict(base_rate=float("nan")), r"got nan"),
    (dict(base_rate=float("inf")), r"got inf"),
    (dict(decay="exponential", decay_rate=0.0),
     r"learning_rate_decay_rate must be in \(0, 1\], got 0\.0"),
    (dict(decay="piecewise", decay_rate=1.5), r"got 1\.5"),
])
def test_schedule_errors(kwargs, pattern):
  args = dict(base_rate=0.1, decay="none", total_steps=10, steps_per_epoch=5)
  args.update(kwargs)
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError, match=pattern):
      optimizers.learning_rate_schedule(
          global_step=tf.constant(0, tf.int64), **args)


@pytest.mark.parametrize("name,cls", [
    ("sgd", v1.train.GradientDescentOptimizer),
    ("momentum", v1.train.MomentumOptimizer),
    ("adam", v1.train.AdamOptimizer),
    ("rmsprop", v1.train.RMSPropOptimizer),
])
def test_make_optimizer_types(name, cls):
  with tf.Graph().as_default():
    optimizer = optimizers.make_optimizer(name, 0.01, momentum=0.5)
  assert type(optimizer) is cls  # pylint: disable=unidiomatic-typecheck
  if name in ("momentum", "rmsprop"):
    assert optimizer._momentum == 0.5  # pylint: disable=protected-access


def test_sgd_takes_a_plain_gradient_step():
  with tf.Graph().as_default():
    w = v1.get_variable("w", initializer=np.array([1.0, -2.0], np.float32))
    loss = tf.reduce_sum(tf.square(w))  # gradient 2 w
    rate = optimizers.learning_rate_schedule(0.25, "none", tf.constant(0),
                                             total_steps=1, steps_per_epoch=1)
    train_op = optimizers.make_optimizer("sgd", rate).minimize(loss)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      sess.run(train_op)
      np.testing.assert_allclose(sess.run(w), [0.5, -1.0])


@pytest.mark.parametrize("name,momentum,pattern", [
    ("adagrad", 0.9, r"optimizer 'adagrad' is not one of sgd, momentum, "
     r"adam, rmsprop"),
    ("momentum", 1.0, r"momentum must be in \[0, 1\), got 1\.0"),
    ("rmsprop", -0.1, r"got -0\.1"),
])
def test_make_optimizer_errors(name, momentum, pattern):
  with pytest.raises(errors.ConfigError, match=pattern):
    optimizers.make_optimizer(name, 0.1, momentum=momentum)
