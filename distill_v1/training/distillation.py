"""The model_fn of distillation: a frozen teacher (or ensemble) teaches a student.

Follows the article's recipe step by step:
  1. the teacher's logits on the training batch become soft targets
     `softmax(z_t / T)` (behind `tf.stop_gradient`; the teacher's variables
     are non-trainable and restored from its own checkpoint);
  2. the student's logits `z_s / T` are fitted to them with
     `tf.compat.v1.losses.softmax_cross_entropy`, times T**2;
  3. the true labels give the hard loss; the total is
     `alpha * hard + (1 - alpha) * soft`;
  4. the loop's optimizer (GradientDescentOptimizer by default) gets only the
     student's variables as `var_list`.
"""

import collections

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.losses import distillation as distillation_loss_lib
from distill_v1.training import loop


def distillation_model_fn(student_fn, num_classes, student_scope,
                          teacher_builders, temperature, alpha=0.1,
                          scale_soft_loss=True):
  """Returns a model_fn for `loop.train` that distills into the student.

  Args:
    student_fn: fn(images, num_classes, is_training, scope) -> (logits,
      end_points).
    num_classes: int, the student's class count (the data set's).
    student_scope: variable scope of the student (its checkpoint names).
    teacher_builders: non-empty list of fn(images) -> TeacherHandle (see
      `distill_v1.teachers`); two or more form an ensemble whose soft targets
      are the mean of the teachers' softened distributions.
    temperature: float T > 0.
    alpha: float in [0, 1], the weight of the hard-label loss.
    scale_soft_loss: multiply the soft loss by T**2 (Hinton et al. 2015).

  Returns:
    fn(images, labels, is_training) -> loop.ModelOutputs. In inference mode
    (evaluation) only the student is built.

  Raises:
    ConfigError: bad temperature or alpha, no teacher, or a teacher whose
      class count differs from the student's.
  """
  distillation_loss_lib.validate_distillation_args(temperature, alpha)
  if not teacher_builders:
    raise errors.ConfigError("distillation needs at least one teacher")

  def model_fn(images, labels, is_training):
    student_logits, _ = student_fn(images, num_classes,
                                   is_training=is_training,
                                   scope=student_scope)
    student_vars = tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES, scope=student_scope + "/")
    if not is_training:
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels, logits=student_logits))
      return loop.ModelOutputs(loss=loss, logits=student_logits, scalars={},
                               var_list=student_vars)
    teachers = [build(images) for build in teacher_builders]
    for teacher in teachers:
      teacher_classes = teacher.logits.shape[-1]
      if teacher_classes is not None and int(teacher_classes) != num_classes:
        raise errors.ConfigError(
            "teacher %s (%s) has %d classes, the student has %d" %
            (teacher.model, teacher.checkpoint, int(teacher_classes),
             num_classes))
    teacher_logits = [t.logits for t in teachers]
    output = distillation_loss_lib.distillation_loss(
        labels, student_logits,
        teacher_logits=teacher_logits if len(teachers) > 1 else
        teacher_logits[0],
        temperature=temperature, alpha=alpha,
        scale_by_t_squared=scale_soft_loss)
    frozen = [v for t in teachers for v in t.variables]
    frozen_names = set(v.op.name for v in frozen)
    leaked = [v.op.name for v in student_vars if v.op.name in frozen_names]
    if leaked:  # A teacher in the student's scope would be trained.
      raise errors.ConfigError("teacher variables in the student's scope: %s"
                               % ", ".join(leaked))
    scalars = collections.OrderedDict(
        (k, v) for k, v in output.extra.items() if k != "total_loss")

    def init_fn(sess):
      for teacher in teachers:
        teacher.init_fn(sess)

    return loop.ModelOutputs(loss=output.loss, logits=student_logits,
                             scalars=scalars, var_list=student_vars,
                             frozen_vars=frozen, init_fn=init_fn)

  return model_fn
