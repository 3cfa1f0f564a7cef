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
from distill_v1.data import input_pipeline
from distill_v1.losses import distillation as distillation_loss_lib
from distill_v1.losses import feature as feature_loss_lib
from distill_v1.training import loop

CACHED_LOGITS_KEY = "teacher_logits"
ADAPTER_SCOPE = "feature_adapters"

FeatureTerm = collections.namedtuple("FeatureTerm", [
    "kind",  # "hint" (FitNets) or "attention" (attention transfer).
    "pairs",  # list of (student end point, teacher end point) names.
    "weight",  # float > 0, multiplies the term in the total loss.
])
FEATURE_KINDS = ("hint", "attention")


class TeachersInInput(input_pipeline.BatchFunction):
  """Frozen teachers run inside the input pipeline (online distillation).

  As `train_extras[CACHED_LOGITS_KEY]` of `loop.train` (see
  `teacher_extras`), the teachers' logits of each batch are computed in the
  pipeline's map function, so `prefetch` overlaps the next batches' teacher
  forward passes with this batch's student step; the step then reads them
  like cached logits. `setup` builds each teacher once in the outer graph
  (its variables and checkpoint restore), `__call__` runs the teachers'
  `forward` on a batch: float32 [batch, num_teachers, num_classes].
  """

  def __init__(self, teacher_builders):
    if not teacher_builders:
      raise errors.ConfigError("distillation needs at least one teacher")
    self._builders = list(teacher_builders)
    self.handles = None  # TeacherHandles, once `setup` has run.

  def setup(self, images):
    self.handles = [build(images) for build in self._builders]
    for handle in self.handles:
      if handle.forward is None:
        raise errors.ConfigError(
            "teacher %s (%s) cannot run inside the input pipeline" %
            (handle.model, handle.checkpoint))

  def __call__(self, images):
    if self.handles is None:  # pragma: no cover - internal misuse
      raise ValueError("TeachersInInput.setup has not run")
    return tf.stack([h.forward(images) for h in self.handles], axis=1)


def teacher_extras(teacher_builders):
  """(TeachersInInput, train_extras dict) for online distillation in the input.

  Pass the first as `teacher_builders` of `distillation_model_fn` and the
  second as `train_extras` of `loop.train`.
  """
  teachers = TeachersInInput(teacher_builders)
  return teachers, {CACHED_LOGITS_KEY: teachers}


def _end_point(end_points, name, role):
  if name not in end_points:
    raise errors.ConfigError(
        "%s has no end point %r; it has: %s" %
        (role, name, ", ".join(end_points.keys())))
  return end_points[name]


def _feature_losses(terms, student_end_points, teacher_end_points, resize):
  """Returns [(name, weighted loss tensor)] for the feature terms."""
  out = []
  for i, term in enumerate(terms):
    students = [_end_point(student_end_points, s, "the student")
                for s, _ in term.pairs]
    teachers = [_end_point(teacher_end_points, t, "the teacher")
                for _, t in term.pairs]
    if term.kind == "hint":
      if len(term.pairs) != 1:
        raise errors.ConfigError("a hint term takes one end-point pair, got "
                                 "%d" % len(term.pairs))
      output = feature_loss_lib.hint_loss(
          students[0], teachers[0],
          scope="%s/hint_%d" % (ADAPTER_SCOPE, i), resize=resize)
    else:
      output = feature_loss_lib.attention_transfer_loss(
          students, teachers, resize=resize)
    out.append(("%s_loss" % term.kind, term.weight * output.loss))
  return out


def distillation_model_fn(student_fn, num_classes, student_scope,
                          teacher_builders, temperature, alpha=0.1,
                          scale_soft_loss=True, feature_terms=(),
                          feature_resize=False):
  """Returns a model_fn for `loop.train` that distills into the student.

  Args:
    student_fn: fn(images, num_classes, is_training, scope) -> (logits,
      end_points).
    num_classes: int, the student's class count (the data set's).
    student_scope: variable scope of the student (its checkpoint names).
    teacher_builders: non-empty list of fn(images) -> TeacherHandle (see
      `distill_v1.teachers`); two or more form an ensemble whose soft targets
      are the mean of the teachers' softened distributions. None for cached
      distillation: the loop then passes the teachers' logits as
      `extras[CACHED_LOGITS_KEY]`, float32 [batch, num_teachers, classes]
      (see `distill_v1.teachers.logits_cache`), and no teacher is built.
      A `TeachersInInput` (see `teacher_extras`): the teachers run in the
      input pipeline and their logits arrive as those extras too.
    temperature: float T > 0.
    alpha: float in [0, 1], the weight of the hard-label loss.
    scale_soft_loss: multiply the soft loss by T**2 (Hinton et al. 2015).
    feature_terms: FeatureTerms added to the loss: FitNets hints (a student
      end point regressed onto a teacher end point through a learned adapter,
      whose variables are trained with the student's) and attention transfer
      (Zagoruyko & Komodakis 2017). Needs one teacher built from a
      checkpoint (its end points), not a logits cache.
    feature_resize: resize student features to the teacher's spatial size.

  Returns:
    fn(images, labels, is_training) -> loop.ModelOutputs. In inference mode
    (evaluation) only the student is built.

  Raises:
    ConfigError: bad temperature or alpha, no teacher, or a teacher whose
      class count differs from the student's.
  """
  distillation_loss_lib.validate_distillation_args(temperature, alpha)
  in_input = isinstance(teacher_builders, TeachersInInput)
  if teacher_builders is not None and not in_input and not teacher_builders:
    raise errors.ConfigError("distillation needs at least one teacher")
  if feature_terms and (teacher_builders is None or in_input or
                        len(teacher_builders) != 1):
    raise errors.ConfigError(
        "feature distillation needs exactly one teacher built from its "
        "checkpoint in the training step (not a logits cache, an ensemble "
        "or teachers in the input pipeline)")
  for term in feature_terms:
    if term.kind not in FEATURE_KINDS or not term.weight > 0:
      raise errors.ConfigError(
          "feature term %r: kind must be one of %s and weight > 0" %
          (term, ", ".join(FEATURE_KINDS)))

  def model_fn(images, labels, is_training, extras=None):
    student_logits, student_end_points = student_fn(images, num_classes,
                                   is_training=is_training,
                                   scope=student_scope)
    student_vars = tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES, scope=student_scope + "/")
    if not is_training:
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels, logits=student_logits))
      return loop.ModelOutputs(loss=loss, logits=student_logits, scalars={},
                               var_list=student_vars)
    if teacher_builders is None or in_input:
      if not extras or CACHED_LOGITS_KEY not in extras:
        raise errors.ConfigError(
            "%s distillation needs the teachers' logits as extras[%r]" %
            ("online" if in_input else "cached", CACHED_LOGITS_KEY))
      teachers = teacher_builders.handles if in_input else []
      if teachers is None:  # pragma: no cover - internal misuse
        raise ValueError("the input pipeline did not set up the teachers")
      cached = extras[CACHED_LOGITS_KEY]
      teacher_logits = tf.unstack(tf.stop_gradient(cached), axis=1)
      sources = (["%s (%s)" % (t.model, t.checkpoint) for t in teachers]
                 if in_input else ["logits cache"] * len(teacher_logits))
    else:
      teachers = [build(images) for build in teacher_builders]
      teacher_logits = [t.logits for t in teachers]
      sources = ["%s (%s)" % (t.model, t.checkpoint) for t in teachers]
    for source, logits in zip(sources, teacher_logits):
      teacher_classes = logits.shape[-1]
      if teacher_classes is not None and int(teacher_classes) != num_classes:
        raise errors.ConfigError(
            "teacher %s has %d classes, the student has %d" %
            (source, int(teacher_classes), num_classes))
    output = distillation_loss_lib.distillation_loss(
        labels, student_logits,
        teacher_logits=teacher_logits if len(teacher_logits) > 1 else
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
    loss = output.loss
    if feature_terms:
      for name, term_loss in _feature_losses(
          feature_terms, student_end_points, teachers[0].end_points,
          feature_resize):
        scalars[name] = term_loss
        loss = loss + term_loss
      student_vars = student_vars + tf.compat.v1.get_collection(
          tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES,
          scope=ADAPTER_SCOPE + "/")

    def init_fn(sess):
      for teacher in teachers:
        teacher.init_fn(sess)

    return loop.ModelOutputs(loss=loss, logits=student_logits,
                             scalars=scalars, var_list=student_vars,
                             frozen_vars=frozen, init_fn=init_fn)

  return model_fn
