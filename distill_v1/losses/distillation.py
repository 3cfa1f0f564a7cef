"""The distillation objective: hard labels and the teacher's soft targets.

  total_loss = alpha * hard_loss + (1 - alpha) * soft_loss

`alpha` weighs the HARD (true-label) loss, as in the Keras `Distiller`
(`alpha * student_loss + (1 - alpha) * distillation_loss`); the benchmark
protocol uses alpha = 0.1 and T = 4. `soft_loss` is multiplied by T**2 unless
`scale_by_t_squared` is False (see `soft_target.py`).
"""

import collections
import numbers

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.losses import hard
from distill_v1.losses import outputs
from distill_v1.losses import soft_target


def validate_alpha(alpha):
  """Checks the hard-loss weight without building a graph.

  Args:
    alpha: a Python or numpy real number.

  Returns:
    alpha as a Python float.

  Raises:
    ConfigError: alpha is not a real number in [0, 1].
  """
  if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
    raise errors.ConfigError(
        "alpha=%r is not a number; expected a float in [0, 1] (the weight of "
        "the hard-label loss)" % (alpha,))
  value = float(alpha)
  if not 0.0 <= value <= 1.0:  # NaN fails this too.
    raise errors.ConfigError(
        "alpha=%r is not in the expected range [0, 1] (the weight of the "
        "hard-label loss; the soft loss gets 1 - alpha)" % (alpha,))
  return value


def validate_distillation_args(temperature, alpha):
  """Checks temperature and alpha; usable from absl flag validators.

  Args:
    temperature: finite number > 0.
    alpha: number in [0, 1].

  Returns:
    (temperature, alpha) as Python floats.

  Raises:
    ConfigError: either value is out of range.
  """
  return (soft_target.validate_temperature(temperature),
          validate_alpha(alpha))


def teacher_agreement(student_logits, teacher_scores, scope=None):
  """Fraction of examples where student and teacher pick the same class.

  Args:
    student_logits: float tensor [batch, num_classes].
    teacher_scores: float tensor [batch, num_classes], logits or
      probabilities (argmax is the same either way).
    scope: name scope (default "teacher_agreement").

  Returns:
    float32 scalar in [0, 1]; ties go to the lowest class index (argmax).
  """
  with tf.compat.v1.name_scope(scope, "teacher_agreement",
                               [student_logits, teacher_scores]):
    same = tf.equal(tf.argmax(student_logits, axis=-1),
                    tf.argmax(teacher_scores, axis=-1))
    return tf.reduce_mean(tf.cast(same, tf.float32), name="value")


def distillation_loss(labels, student_logits, teacher_logits=None,
                      temperature=None, alpha=0.1, scale_by_t_squared=True,
                      teacher_probs=None, scope=None):
  """alpha * hard cross-entropy + (1 - alpha) * soft-target loss.

  Give exactly one of `teacher_logits` and `teacher_probs`.

  Args:
    labels: int tensor [batch], the true classes.
    student_logits: float tensor [batch, num_classes].
    teacher_logits: float tensor [batch, num_classes], or a list of them for
      an ensemble (the soft targets are then the mean of the teachers'
      softened distributions, `soft_target.soft_targets`).
    temperature: float > 0 (required).
    alpha: float in [0, 1], the weight of the hard-label loss.
    scale_by_t_squared: multiply the soft loss by T**2.
    teacher_probs: float tensor [batch, num_classes] of soft targets already
      softened at `temperature` (cached or precomputed ensembles).
    scope: name scope (default "distillation_loss").

  Returns:
    LossOutput: `loss` = total_loss, a float32 scalar; `extra` (in order):
    hard_loss, soft_loss, total_loss, teacher_agreement (top-1 agreement of
    the student with the teacher or the ensemble's mean distribution).

  Raises:
    ConfigError: bad temperature or alpha, none or both of teacher_logits and
      teacher_probs, or inconsistent shapes.
  """
  if temperature is None:
    raise errors.ConfigError(
        "distillation_loss needs a temperature (a finite float > 0)")
  temperature, alpha = validate_distillation_args(temperature, alpha)
  if (teacher_logits is None) == (teacher_probs is None):
    raise errors.ConfigError(
        "distillation_loss needs exactly one of teacher_logits and "
        "teacher_probs; got %s" %
        ("neither" if teacher_logits is None else "both"))
  with tf.compat.v1.name_scope(scope, "distillation_loss"):
    hard_output = hard.hard_loss(labels, student_logits)
    if teacher_probs is None and isinstance(teacher_logits, (list, tuple)):
      teacher_probs = soft_target.soft_targets(teacher_logits, temperature)
    if teacher_probs is None:
      soft_output = soft_target.soft_target_loss(
          teacher_logits, student_logits, temperature,
          scale_by_t_squared=scale_by_t_squared)
      teacher_scores = teacher_logits
    else:
      soft_output = soft_target.soft_target_loss_from_probs(
          teacher_probs, student_logits, temperature,
          scale_by_t_squared=scale_by_t_squared)
      teacher_scores = teacher_probs
    total = tf.math.add(alpha * hard_output.loss,
                        (1.0 - alpha) * soft_output.loss, name="total_loss")
    agreement = teacher_agreement(student_logits,
                                  tf.stop_gradient(teacher_scores))
    extra = collections.OrderedDict([
        ("hard_loss", hard_output.loss),
        ("soft_loss", soft_output.loss),
        ("total_loss", total),
        ("teacher_agreement", agreement),
    ])
    return outputs.LossOutput(loss=total, extra=extra)
