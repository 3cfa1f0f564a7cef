"""Feature losses: FitNets hints and attention transfer.

Both compare intermediate features (`end_points` of the networks) of the
student and the teacher. The teacher's features are always behind
`tf.stop_gradient`. Spatial sizes must match; with `resize=True` the student
feature is resized to the teacher's height and width with bilinear
`tf.image.resize` (half-pixel centres, no antialiasing) first.

Hint loss (Romero et al. 2015, FitNets): a learned adapter, a 1x1 convolution
for [batch, H, W, C] features or a dense layer for [batch, C] features, maps
the student feature to the teacher's channel count;

  hint_loss = mean over all elements of (adapter(s) - t)**2

(the paper's 1/2 * ||.||^2 summed per example, here averaged over batch,
positions and channels so the value does not grow with the feature size).
The adapter's variables (`<scope>/kernel`, `<scope>/bias`) are trainable
student-side variables made with `tf.compat.v1.get_variable` by
`distill_v1.models.layers`; the caller adds
`tf.compat.v1.trainable_variables(scope)` to the optimizer's var_list. To
share an adapter between two graphs' towers, call inside a
`tf.compat.v1.variable_scope(..., reuse=True)`.

Attention transfer (Zagoruyko & Komodakis 2017): for a feature A [batch, H,
W, C] the attention map is Q = mean_c |A_c|**p flattened to [batch, H * W]
and divided by its L2 norm per example, q = Q / ||Q||_2 (tf.math.l2_normalize,
epsilon 1e-12, so an all-zero map stays zero). For pairs j = 1..n:

  at_loss = (1 / n) * sum_j (1 / B) * sum_b || q_s[j, b] - q_t[j, b] ||_2

i.e. the paper's (beta / 2) * sum_j ||q_s - q_t||_p with p = 2 and
beta / 2 = 1 / n, averaged over the batch. The mean over channels (the paper
sums) changes nothing after the normalisation. The authors' released code
instead uses the squared distance averaged over the H * W positions with
beta = 1000; this loss is not numerically the same as that one, so choose the
loss weight accordingly.
"""

import collections
import math
import numbers

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.losses import outputs
from distill_v1.models import layers


def _match_spatial(student, teacher, resize, scope_name):
  """Returns `student` with the teacher's spatial size, or raises ConfigError.

  Args:
    student: float32 tensor [batch, Hs, Ws, Cs].
    teacher: float32 tensor [batch, Ht, Wt, Ct].
    resize: bool, whether to resize the student bilinearly when sizes differ.
    scope_name: str, for messages.

  Returns:
    float32 tensor [batch, Ht, Wt, Cs].
  """
  student_hw = student.shape[1:3].as_list()
  teacher_hw = teacher.shape[1:3].as_list()
  known = None not in student_hw and None not in teacher_hw
  if known and student_hw == teacher_hw:
    return student
  if resize:
    size = teacher_hw if None not in teacher_hw else tf.shape(teacher)[1:3]
    return tf.image.resize(student, size, method="bilinear")
  if known:
    raise errors.ConfigError(
        "In scope %s, student feature %s has shape %s but teacher feature %s "
        "has shape %s; their heights and widths must match (pass resize=True "
        "to resize the student feature bilinearly)" %
        (scope_name, student.name, student.shape, teacher.name,
         teacher.shape))
  # Sizes known only at run time: fail there rather than broadcast silently.
  check = tf.debugging.assert_equal(
      tf.shape(student)[1:3], tf.shape(teacher)[1:3],
      message="In scope %s, the student and teacher features' heights and "
      "widths differ (pass resize=True to resize the student feature)" %
      scope_name)
  with tf.control_dependencies([check]):
    return tf.identity(student)


def hint_loss(student_feature, teacher_feature, scope="hint_adapter",
              resize=False, name=None):
  """FitNets hint loss through a learned adapter.

  Args:
    student_feature: float tensor [batch, H, W, Cs] or [batch, Cs]; Cs static.
    teacher_feature: float tensor of the same rank, [batch, H, W, Ct] or
      [batch, Ct]; Ct static. Put behind tf.stop_gradient here.
    scope: variable scope of the adapter's `kernel` ([1, 1, Cs, Ct] or
      [Cs, Ct]) and `bias` ([Ct], zeros initially).
    resize: for rank-4 features whose heights and widths differ, resize the
      student feature to the teacher's size (bilinear) instead of raising.
    name: name scope of the loss ops (default "hint_loss").

  Returns:
    LossOutput: `loss` = mean squared error between adapter(student) and
    teacher over every element, a float32 scalar; `extra` =
    {"hint_loss": loss}.

  Raises:
    ConfigError: ranks other than 2 or 4, ranks that differ, unknown channel
      counts, batch sizes that differ, or heights and widths that differ
      without resize=True (the message names both shapes).
  """
  with tf.compat.v1.name_scope(name, "hint_loss",
                               [student_feature, teacher_feature]) as ns:
    scope_name = ns.rstrip("/")
    student = tf.convert_to_tensor(student_feature)
    teacher = tf.convert_to_tensor(teacher_feature)
    student_rank = outputs.check_rank(student, (2, 4), scope_name)
    teacher_rank = outputs.check_rank(teacher, (2, 4), scope_name)
    if student_rank != teacher_rank:
      raise errors.ConfigError(
          "In scope %s, student feature %s has rank %d (shape %s) but teacher "
          "feature %s has rank %d (shape %s); they must have the same rank" %
          (scope_name, student.name, student_rank, student.shape,
           teacher.name, teacher_rank, teacher.shape))
    outputs.check_floating(student, scope_name)
    outputs.check_floating(teacher, scope_name)
    outputs.check_same_batch(student, teacher, scope_name)
    teacher_channels = outputs.static_dim(teacher, -1)
    if teacher_channels is None:
      raise errors.ConfigError(
          "For tensor %s in scope %s, the channel count (last dimension of "
          "shape %s) must be known when the graph is built" %
          (teacher.name, scope_name, teacher.shape))
    student = tf.cast(student, tf.float32)
    teacher = tf.stop_gradient(tf.cast(teacher, tf.float32),
                               name="teacher_feature")
    if student_rank == 4:
      student = _match_spatial(student, teacher, resize, scope_name)
      adapted = layers.conv2d(student, teacher_channels, 1, scope=scope)
    else:
      adapted = layers.dense(student, teacher_channels, scope=scope)
    loss = tf.reduce_mean(tf.math.squared_difference(adapted, teacher),
                          name="value")
    return outputs.LossOutput(
        loss=loss, extra=collections.OrderedDict([("hint_loss", loss)]))


def _validate_p(p):
  if isinstance(p, bool) or not isinstance(p, numbers.Real):
    raise errors.ConfigError("p=%r is not a number; expected a float >= 1" %
                             (p,))
  value = float(p)
  # For p < 1 the gradient of |A|**p is infinite at A = 0, which ReLU
  # features hit all the time.
  if not math.isfinite(value) or value < 1.0:
    raise errors.ConfigError(
        "p=%r is not the expected finite number >= 1 (the attention map is "
        "mean_c |A|**p)" % (p,))
  return value


def attention_map(feature, p=2):
  """The L2-normalised spatial attention map of a feature.

  Args:
    feature: float tensor [batch, H, W, C].
    p: float >= 1, the exponent.

  Returns:
    float32 tensor [batch, H * W]: mean_c |feature|**p flattened, divided by
    its L2 norm per example (all-zero rows stay zero).
  """
  p = _validate_p(p)
  feature = tf.cast(feature, tf.float32)
  if p == 2.0:
    powered = tf.square(feature)
  else:
    powered = tf.pow(tf.abs(feature), p)
  energy = tf.reduce_mean(powered, axis=-1)
  flat = tf.reshape(energy, [tf.shape(energy)[0], -1])
  return tf.math.l2_normalize(flat, axis=1, epsilon=1e-12)


def _safe_l2_norm(x):
  """Per-row L2 norm of [batch, n] with gradient 0, not NaN, at x = 0."""
  squared = tf.reduce_sum(tf.square(x), axis=1)
  positive = squared > 0.0
  safe = tf.where(positive, squared, tf.ones_like(squared))
  return tf.where(positive, tf.sqrt(safe), tf.zeros_like(squared))


def attention_transfer_loss(student_feats, teacher_feats, p=2, resize=False,
                            scope=None):
  """Attention transfer between pairs of student and teacher features.

  Args:
    student_feats: a float tensor [batch, H, W, Cs] or a list of them.
    teacher_feats: a float tensor [batch, H, W, Ct] or a list of them, paired
      with student_feats by position (channel counts may differ). Put behind
      tf.stop_gradient here.
    p: float >= 1, the exponent of the attention map (the paper uses 2).
    resize: resize each student feature bilinearly to its teacher's height
      and width when they differ, instead of raising.
    scope: name scope (default "attention_transfer_loss").

  Returns:
    LossOutput: `loss` = mean over pairs of the batch mean of
    ||q_s - q_t||_2 (see the module docstring), a float32 scalar in [0, 2];
    `extra` = {"attention_transfer_loss": loss} plus
    "attention_transfer_loss/pair_<j>" per pair when there are several.

  Raises:
    ConfigError: empty or different-length lists, ranks other than 4, bad p,
      batch sizes that differ, or heights and widths that differ without
      resize=True.
  """
  p = _validate_p(p)
  if not isinstance(student_feats, (list, tuple)):
    student_feats = [student_feats]
  if not isinstance(teacher_feats, (list, tuple)):
    teacher_feats = [teacher_feats]
  if not student_feats or len(student_feats) != len(teacher_feats):
    raise errors.ConfigError(
        "attention_transfer_loss needs one teacher feature per student "
        "feature; got %d student and %d teacher features" %
        (len(student_feats), len(teacher_feats)))
  with tf.compat.v1.name_scope(scope, "attention_transfer_loss",
                               list(student_feats) + list(teacher_feats)) as ns:
    scope_name = ns.rstrip("/")
    pair_losses = []
    for j, (student, teacher) in enumerate(zip(student_feats, teacher_feats)):
      with tf.compat.v1.name_scope("pair_%d" % j):
        student = tf.convert_to_tensor(student)
        teacher = tf.convert_to_tensor(teacher)
        outputs.check_rank(student, 4, scope_name)
        outputs.check_rank(teacher, 4, scope_name)
        outputs.check_floating(student, scope_name)
        outputs.check_floating(teacher, scope_name)
        outputs.check_same_batch(student, teacher, scope_name)
        student = tf.cast(student, tf.float32)
        teacher = tf.stop_gradient(tf.cast(teacher, tf.float32),
                                   name="teacher_feature")
        student = _match_spatial(student, teacher, resize, scope_name)
        distance = _safe_l2_norm(attention_map(student, p) -
                                 attention_map(teacher, p))
        pair_losses.append(tf.reduce_mean(distance, name="value"))
    if len(pair_losses) == 1:
      loss = tf.identity(pair_losses[0], name="value")
    else:
      loss = tf.math.divide(tf.add_n(pair_losses), float(len(pair_losses)),
                            name="value")
    extra = collections.OrderedDict([("attention_transfer_loss", loss)])
    if len(pair_losses) > 1:
      for j, pair_loss in enumerate(pair_losses):
        extra["attention_transfer_loss/pair_%d" % j] = pair_loss
    return outputs.LossOutput(loss=loss, extra=extra)
