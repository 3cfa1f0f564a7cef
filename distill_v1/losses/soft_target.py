"""The soft-target loss of knowledge distillation, as the article does it.

The article's recipe, literally: the teacher's temperature-softened
distribution `softmax(z_t / T)` is passed as `onehot_labels` to
`tf.compat.v1.losses.softmax_cross_entropy`, with the student's softened
logits `z_s / T` as `logits`. Following Hinton, Vinyals & Dean (2015) the
result is multiplied by `T**2`: the gradient of the softened cross-entropy
w.r.t. `z_s` is `(softmax(z_s / T) - softmax(z_t / T)) / T`, which for large
`T` shrinks like `1 / T**2`; the factor keeps the soft term's gradients on the
same scale as the hard term's whatever `T` is.

Per batch of B examples and K classes, with p = softmax(z_t / T) and
q = softmax(z_s / T):

  soft_loss = T**2 * (1 / B) * sum_b ( -sum_k p[b, k] * log q[b, k] )

The reduction is `tf.compat.v1.losses.Reduction.MEAN` with weights 1.0, i.e.
the sum of per-example cross-entropies divided by the batch size.

This is a cross-entropy, not a KL divergence: it equals
`T**2 * (KL(p || q) + H(p))`. The teacher's entropy H(p) does not depend on
the student, so the gradients equal those of the Keras `Distiller`'s
`KLDivergence * T**2`, but the logged value is larger by `T**2 * H(p)` and
does not reach 0 when the student matches the teacher.

The teacher's distribution is behind `tf.stop_gradient` (the v1 loss also
stops gradients into `onehot_labels`; the explicit op keeps that guarantee
visible and independent of it): no gradient reaches the teacher. Nothing is
added to the `GraphKeys.LOSSES` collection (`loss_collection=None`); the
caller owns the total it minimises.
"""

import collections
import math
import numbers

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.losses import outputs


def validate_temperature(temperature):
  """Checks a softmax temperature without building a graph.

  Args:
    temperature: a Python or numpy real number.

  Returns:
    The temperature as a Python float.

  Raises:
    ConfigError: temperature is not a real number, not finite or not > 0.
  """
  if (isinstance(temperature, bool) or
      not isinstance(temperature, numbers.Real)):
    raise errors.ConfigError(
        "temperature=%r is not a number; expected a finite float > 0" %
        (temperature,))
  value = float(temperature)
  if not math.isfinite(value) or value <= 0.0:
    raise errors.ConfigError(
        "temperature=%r is not the expected finite number > 0 (the logits are "
        "divided by it)" % (temperature,))
  return value


def _num_classes(tensor, role, scope_name):
  """The static number of classes (last dimension) of a [batch, K] tensor."""
  outputs.check_rank(tensor, 2, scope_name)
  outputs.check_floating(tensor, scope_name)
  num_classes = outputs.static_dim(tensor, -1)
  if num_classes is None:
    raise errors.ConfigError(
        "For tensor %s (%s) in scope %s, the number of classes (last "
        "dimension of shape %s) must be known when the graph is built" %
        (tensor.name, role, scope_name, tensor.shape))
  return num_classes


def _check_teacher_student(teacher, student, scope_name):
  """ConfigError unless teacher and student are [batch, K] with the same K."""
  teacher_classes = _num_classes(teacher, "teacher", scope_name)
  student_classes = _num_classes(student, "student", scope_name)
  if teacher_classes != student_classes:
    raise errors.ConfigError(
        "In scope %s, teacher has %d classes, student has %d (tensors %s and "
        "%s); they must predict the same classes" %
        (scope_name, teacher_classes, student_classes, teacher.name,
         student.name))
  outputs.check_same_batch(teacher, student, scope_name)


def soft_targets(teacher_logits, temperature, scope=None):
  """The teachers' mean softened distribution, for one teacher or an ensemble.

  Args:
    teacher_logits: a float tensor [batch, num_classes] or a non-empty list of
      them (one per teacher, all with the same number of classes).
    temperature: float > 0.
    scope: name scope (default "soft_targets").

  Returns:
    float32 tensor [batch, num_classes]: (1 / N) * sum_i softmax(z_i / T);
    each row sums to 1. Not behind stop_gradient (the losses add it).

  Raises:
    ConfigError: bad temperature, empty list, bad ranks, or teachers with
      different numbers of classes or batch sizes.
  """
  temperature = validate_temperature(temperature)
  if isinstance(teacher_logits, (list, tuple)):
    teacher_list = list(teacher_logits)
  else:
    teacher_list = [teacher_logits]
  if not teacher_list:
    raise errors.ConfigError(
        "soft_targets needs at least one teacher's logits; got an empty list")
  with tf.compat.v1.name_scope(scope, "soft_targets", teacher_list) as name:
    scope_name = name.rstrip("/")
    teacher_list = [tf.convert_to_tensor(t) for t in teacher_list]
    first_classes = _num_classes(teacher_list[0], "teacher 0", scope_name)
    for i, logits in enumerate(teacher_list[1:], start=1):
      classes = _num_classes(logits, "teacher %d" % i, scope_name)
      if classes != first_classes:
        raise errors.ConfigError(
            "In scope %s, teacher %d has %d classes, teacher 0 has %d "
            "(tensors %s and %s); an ensemble's teachers must predict the "
            "same classes" % (scope_name, i, classes, first_classes,
                              logits.name, teacher_list[0].name))
      outputs.check_same_batch(teacher_list[0], logits, scope_name)
    probs = [tf.nn.softmax(tf.cast(t, tf.float32) / temperature)
             for t in teacher_list]
    if len(probs) == 1:
      return tf.identity(probs[0], name="value")
    return tf.math.divide(tf.add_n(probs), float(len(probs)), name="value")


def _softened_cross_entropy(onehot_labels, student_logits, temperature,
                            scale_by_t_squared):
  """The article's softmax_cross_entropy at temperature T, times T**2."""
  loss = tf.compat.v1.losses.softmax_cross_entropy(
      onehot_labels=onehot_labels,
      logits=student_logits / temperature,
      reduction=tf.compat.v1.losses.Reduction.MEAN,
      loss_collection=None)
  if scale_by_t_squared:
    loss = loss * (temperature * temperature)
  return tf.identity(loss, name="value")


def _soft_loss(teacher, student_logits, temperature, scale_by_t_squared,
               scope, to_probs):
  """The shared body: checks, soft targets behind stop_gradient, the loss.

  Args:
    teacher: float tensor [batch, num_classes], logits or probabilities.
    student_logits: float tensor [batch, num_classes].
    temperature: validated float > 0.
    scale_by_t_squared: multiply by T**2.
    scope: name scope (default "soft_target_loss").
    to_probs: fn(float32 teacher tensor) -> soft targets [batch, classes].
  """
  with tf.compat.v1.name_scope(scope, "soft_target_loss",
                               [teacher, student_logits]) as name:
    scope_name = name.rstrip("/")
    teacher = tf.convert_to_tensor(teacher)
    student_logits = tf.convert_to_tensor(student_logits)
    _check_teacher_student(teacher, student_logits, scope_name)
    onehot_labels = tf.stop_gradient(
        to_probs(tf.cast(teacher, tf.float32)), name="teacher_soft_targets")
    loss = _softened_cross_entropy(onehot_labels,
                                   tf.cast(student_logits, tf.float32),
                                   temperature, scale_by_t_squared)
    return outputs.LossOutput(
        loss=loss, extra=collections.OrderedDict([("soft_loss", loss)]))


def soft_target_loss(teacher_logits, student_logits, temperature,
                     scale_by_t_squared=True, scope=None):
  """Soft-target loss between one teacher's and the student's logits.

  Args:
    teacher_logits: float tensor [batch, num_classes]; put behind
      tf.stop_gradient here, so no gradient reaches the teacher.
    student_logits: float tensor [batch, num_classes].
    temperature: float > 0; T = 1 is the plain softmax, larger T softer.
    scale_by_t_squared: multiply by T**2 (Hinton et al. 2015); False gives
      the article's unscaled cross-entropy.
    scope: name scope (default "soft_target_loss").

  Returns:
    LossOutput: `loss` = (T**2 *) mean over the batch of
    -sum_k softmax(z_t / T)_k * log softmax(z_s / T)_k, a float32 scalar in
    nats; `extra` = {"soft_loss": loss}.

  Raises:
    ConfigError: temperature not finite or <= 0, ranks other than 2, or the
      teacher's and student's numbers of classes (static last dimensions) or
      batch sizes differ ("teacher has %d classes, student has %d").
  """
  temperature = validate_temperature(temperature)
  return _soft_loss(
      teacher_logits, student_logits, temperature, scale_by_t_squared, scope,
      lambda logits: tf.nn.softmax(logits / temperature))


def soft_target_loss_from_probs(teacher_probs, student_logits, temperature,
                                scale_by_t_squared=True, scope=None):
  """Soft-target loss from precomputed soft targets (ensembles, caches).

  Args:
    teacher_probs: float tensor [batch, num_classes] of probabilities already
      softened at the same `temperature`, e.g. `soft_targets(list, T)` for an
      ensemble or softmax(cached_logits / T); each row should sum to 1 (not
      checked at run time). Put behind tf.stop_gradient here.
    student_logits: float tensor [batch, num_classes].
    temperature: float > 0, the temperature the targets were softened with.
    scale_by_t_squared: multiply by T**2.
    scope: name scope (default "soft_target_loss").

  Returns:
    LossOutput as in `soft_target_loss`, with softmax(z_t / T) replaced by
    `teacher_probs`.

  Raises:
    ConfigError: as in `soft_target_loss`.
  """
  temperature = validate_temperature(temperature)
  return _soft_loss(teacher_probs, student_logits, temperature,
                    scale_by_t_squared, scope, lambda probs: probs)
