"""A teacher from the model zoo, restored from its own checkpoint.

The teacher is built in its own variable scope (`teacher/<model>` for one
teacher, `teacher_<i>/<model>` in an ensemble) with every variable created
non-trainable, its logits behind `tf.stop_gradient`, and restored from the
checkpoint written by the training binary (whose names start with `<model>/`).
It therefore never appears in an optimizer's `var_list` and is never written
into the student's checkpoints.
"""

import collections
import contextlib

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import nets_factory
from distill_v1 import checkpoints

TeacherHandle = collections.namedtuple("TeacherHandle", [
    "logits",  # float32 [batch, num_classes], behind tf.stop_gradient.
    "end_points",  # OrderedDict of the teacher's intermediate tensors.
    "variables",  # the teacher's variables (all non-trainable).
    "init_fn",  # callable(sess): restores the variables from the checkpoint.
    "checkpoint",  # resolved checkpoint prefix.
    "model",  # model-zoo name.
    # callable(images) -> float32 logits [batch, num_classes]: the same
    # frozen teacher on other images, reading (never creating) its variables;
    # e.g. inside an input pipeline's map function. None if not offered.
    "forward",
])
TeacherHandle.__new__.__defaults__ = (None,)


def _non_trainable_getter(getter, *args, **kwargs):
  kwargs["trainable"] = False
  return getter(*args, **kwargs)


def _local_getter(getter, *args, **kwargs):
  """Non-trainable and in LOCAL_VARIABLES: not a parameter server's to hold."""
  kwargs["trainable"] = False
  kwargs["collections"] = [tf.compat.v1.GraphKeys.LOCAL_VARIABLES]
  return getter(*args, **kwargs)


def build_checkpoint_teacher(images, model, checkpoint, num_classes,
                             model_options=None, scope="teacher",
                             local_device=None):
  """Builds a frozen model-zoo teacher on `images`.

  Args:
    images: float32 [batch, H, W, C] in [0, 1].
    model: model-zoo name, e.g. "cnn_teacher".
    checkpoint: checkpoint prefix or training directory.
    num_classes: int; must match the checkpoint.
    model_options: dict of network options (e.g. width_multiplier); by default
      those in the checkpoint directory's model_spec.json, if any.
    scope: outer variable scope, e.g. "teacher" or "teacher_1".
    local_device: e.g. "/job:worker/task:1" on a cluster: the teacher is
      built on that device with its variables in LOCAL_VARIABLES (so
      `replica_device_setter` leaves them on the worker and the chief's Saver
      does not own them), initialised from the checkpoint by their own
      initializers, i.e. by the local init op of every worker's session.

  Returns:
    TeacherHandle.

  Raises:
    ConfigError: unknown model.
    CheckpointError: missing checkpoint, one of another architecture, or
      one whose model_spec.json says it predicts another number of classes.
  """
  prefix = checkpoints.resolve_checkpoint(checkpoint)
  try:
    spec = checkpoints.read_model_spec(prefix)
  except errors.CheckpointError:
    spec = None
  if spec is not None and spec["num_classes"] != num_classes:
    raise errors.CheckpointError(
        "teacher %s was trained on %d classes (its model_spec.json), the "
        "student's data set has %d: distil on the teacher's data set" %
        (prefix, spec["num_classes"], num_classes))
  if model_options is None:
    model_options = (spec["model_options"] if spec and spec["model"] == model
                     else {})
  network_fn = nets_factory.get_network_fn(model, **model_options)
  with tf.device(local_device) if local_device else contextlib.nullcontext():
    with tf.compat.v1.variable_scope(
        scope, custom_getter=_local_getter if local_device else
        _non_trainable_getter) as teacher_scope:
      outer = teacher_scope.name
      logits, end_points = network_fn(images, num_classes, is_training=False,
                                      scope=model)

  def forward(other_images):
    with tf.compat.v1.variable_scope(teacher_scope, reuse=True):
      other_logits, _ = network_fn(other_images, num_classes,
                                   is_training=False, scope=model)
    return other_logits

  variables = tf.compat.v1.get_collection(
      tf.compat.v1.GraphKeys.LOCAL_VARIABLES if local_device else
      tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, scope=outer + "/")
  var_map = {v.op.name[len(outer) + 1:]: v for v in variables}
  checkpoints.check_fits(prefix, var_map, model_name=model)
  if local_device:
    # The initializers read the checkpoint: whatever initialises the local
    # variables (a MonitoredSession's local init op) restores the teacher.
    tf.compat.v1.train.init_from_checkpoint(prefix, var_map)
    init_op = tf.compat.v1.variables_initializer(variables)
    init_fn = lambda sess: sess.run(init_op)
  else:
    saver = tf.compat.v1.train.Saver(var_map)

    def init_fn(sess):
      saver.restore(sess, prefix)

  return TeacherHandle(logits=tf.stop_gradient(logits), end_points=end_points,
                       variables=variables, init_fn=init_fn,
                       checkpoint=prefix, model=model,
                       forward=None if local_device else forward)
