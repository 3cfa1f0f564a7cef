"""Learning-rate schedules and optimizers built from explicit arguments.

Nothing here reads flags: the binaries pass the values in. The article's
recipe is plain `tf.compat.v1.train.GradientDescentOptimizer` (`sgd`) with a
constant rate; the other choices exist for training strong teachers.
"""

import math

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.training import fused_sgd

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
LEARNING_RATE_DECAYS = ("none", "exponential", "piecewise", "cosine")


def check_schedule(base_rate, decay, decay_rate):
  """Raises ConfigError for a schedule no run can use (no graph needed)."""
  if not base_rate > 0 or not math.isfinite(base_rate):
    raise errors.ConfigError(
        "learning_rate must be a finite number > 0, got %r" % base_rate)
  if decay not in LEARNING_RATE_DECAYS:
    raise errors.ConfigError(
        "learning_rate_decay %r is not one of %s" %
        (decay, ", ".join(LEARNING_RATE_DECAYS)))
  if decay in ("exponential", "piecewise") and not 0 < decay_rate <= 1:
    raise errors.ConfigError(
        "learning_rate_decay_rate must be in (0, 1], got %r" % decay_rate)


def check_optimizer(name, momentum):
  """Raises ConfigError for an unknown optimizer or momentum off [0, 1)."""
  if name not in OPTIMIZERS:
    raise errors.ConfigError("optimizer %r is not one of %s" %
                             (name, ", ".join(OPTIMIZERS)))
  if not 0 <= momentum < 1:
    raise errors.ConfigError("momentum must be in [0, 1), got %r" % momentum)


def learning_rate_schedule(base_rate, decay, global_step, total_steps,
                           steps_per_epoch, decay_rate=0.1,
                           decay_epochs=None, boundaries_epochs=None,
                           warmup_steps=0):
  """Returns the learning rate as a float32 scalar tensor of `global_step`.

  Args:
    base_rate: float > 0, the initial learning rate.
    decay: one of LEARNING_RATE_DECAYS.
      none: constant `base_rate`.
      exponential: `base_rate * decay_rate ** (step / (decay_epochs *
        steps_per_epoch))`, continuous; `decay_epochs` defaults to the run's
        epochs (so the rate ends at `base_rate * decay_rate`).
      piecewise: multiplies by `decay_rate` at each epoch in
        `boundaries_epochs` (default: at 50% and 75% of the run).
      cosine: `base_rate * 0.5 * (1 + cos(pi * step / total_steps))`.
    global_step: int64 scalar tensor.
    total_steps: int, steps of the whole run.
    steps_per_epoch: int.
    decay_rate: float in (0, 1] for exponential and piecewise.
    decay_epochs: float, see exponential.
    boundaries_epochs: list of epochs, see piecewise.
    warmup_steps: int, linear warm-up from 0 over this many steps.

  Returns:
    float32 scalar tensor.

  Raises:
    ConfigError: an unknown decay or a non-positive rate.
  """
  check_schedule(base_rate, decay, decay_rate)
  total_steps = max(int(total_steps), 1)
  step = tf.cast(global_step, tf.float32)
  with tf.compat.v1.name_scope("learning_rate"):
    if decay == "none":
      rate = tf.constant(base_rate, tf.float32)
    elif decay == "exponential":
      epochs = decay_epochs or (total_steps / float(steps_per_epoch))
      rate = base_rate * tf.pow(
          tf.constant(decay_rate, tf.float32),
          step / float(max(epochs * steps_per_epoch, 1)))
    elif decay == "piecewise":
      if boundaries_epochs is None:
        boundaries = [int(total_steps * 0.5), int(total_steps * 0.75)]
      else:
        boundaries = [int(e * steps_per_epoch) for e in boundaries_epochs]
      values = [base_rate * decay_rate**i for i in range(len(boundaries) + 1)]
      rate = tf.compat.v1.train.piecewise_constant(
          tf.cast(global_step, tf.int64), [tf.constant(b, tf.int64)
                                           for b in boundaries], values)
      rate = tf.cast(rate, tf.float32)
    else:  # cosine
      progress = tf.minimum(step / float(total_steps), 1.0)
      rate = base_rate * 0.5 * (1.0 + tf.cos(math.pi * progress))
    if warmup_steps > 0:
      rate = rate * tf.minimum(1.0, (step + 1.0) / float(warmup_steps))
  return tf.identity(rate, name="learning_rate")


def make_optimizer(name, learning_rate, momentum=0.9, fused=False):
  """Returns a `tf.compat.v1.train.Optimizer`.

  Args:
    name: one of OPTIMIZERS; "sgd" is GradientDescentOptimizer (the
      article's), "momentum" MomentumOptimizer with `momentum`.
    learning_rate: float or float32 scalar tensor.
    momentum: float in [0, 1), for "momentum" and "rmsprop".
    fused: with "sgd", a `fused_sgd.FusedGradientDescentOptimizer` (a
      GradientDescentOptimizer that folds MatMul gradients into the update);
      ignored by the others.

  Raises:
    ConfigError: an unknown name or momentum outside [0, 1).
  """
  check_optimizer(name, momentum)
  train = tf.compat.v1.train
  if name == "sgd":
    if fused:
      return fused_sgd.FusedGradientDescentOptimizer(learning_rate)
    return train.GradientDescentOptimizer(learning_rate)
  if name == "momentum":
    return train.MomentumOptimizer(learning_rate, momentum)
  if name == "adam":
    return train.AdamOptimizer(learning_rate)
  return train.RMSPropOptimizer(learning_rate, momentum=momentum)
