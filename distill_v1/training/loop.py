"""The one training loop: teachers, students and distillation share it.

The caller supplies a `model_fn(images, labels, is_training) -> ModelOutputs`
that builds the network (and, for distillation, the frozen teacher and the
soft-target loss); this module adds what every run needs:

  * graph-mode input over in-memory data (`distill_v1.data.input_pipeline`),
  * weight decay, a learning-rate schedule and an optimizer restricted to
    `ModelOutputs.var_list`,
  * `tf.compat.v1.train.Saver` checkpoints every `save_every_steps` and at
    each epoch end; rerunning with the same `train_dir` resumes from the latest
    checkpoint (global step, epoch and position inside the epoch continue),
  * TensorBoard summaries, progress lines with examples/sec and ETA,
  * test (and validation) accuracy at each epoch end and `metrics.json`.

Randomness: the graph seed is `TrainConfig.seed`; initialisers, dropout and
the shuffle order are stateless functions of (seed, variable name, step or
epoch), so a resumed run sees the same batches and dropout masks as an
uninterrupted one.
"""

import collections
import contextlib
import math
import os
import time

import numpy as np

from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf
from distill_v1.data import input_pipeline
from distill_v1.models import layers
from distill_v1 import checkpoints
from distill_v1.training import fast_gradients
from distill_v1.training import optimizers
from distill_v1.training import progress as progress_lib
from distill_v1.training import session_options

METRICS_FILENAME = "metrics.json"

ModelOutputs = collections.namedtuple("ModelOutputs", [
    "loss",  # float32 scalar: the loss to minimise (without weight decay).
    "logits",  # float32 [batch, num_classes]: the trained model's logits.
    # OrderedDict name -> float32 scalar, summarised; printed on progress
    # lines unless named `<group>/<part>` (except `<group>/total`).
    "scalars",
    "var_list",  # trainable variables the optimizer may change.
    "frozen_vars",  # variables not checkpointed (e.g. a teacher's); or [].
    "init_fn",  # callable(sess) restoring frozen_vars, or None.
    # Callables () -> op, called under a control dependency on the training
    # step so their ops run after the weight update (e.g. pruning masks).
    "after_step_fns",
])
ModelOutputs.__new__.__defaults__ = ((), None, ())

_TrainConfig = collections.namedtuple("TrainConfig", [
    "train_dir", "epochs", "batch_size", "learning_rate",
    "learning_rate_decay", "learning_rate_decay_rate", "decay_epochs",
    "warmup_epochs", "weight_decay", "optimizer", "momentum", "seed",
    "save_every_steps", "log_every_steps", "summary_every_steps",
    "eval_batch_size", "max_to_keep", "intra_op_threads", "inter_op_threads",
    "max_steps", "deterministic", "divergence_factor", "precision", "xla",
    "fused_updates", "fast_gradients"
])


class TrainConfig(_TrainConfig):
  """Hyper-parameters and bookkeeping of one run (see `train`).

  Fields: train_dir (str); epochs (float > 0, may be fractional);
  batch_size (int); learning_rate (float); learning_rate_decay (one of
  optimizers.LEARNING_RATE_DECAYS); learning_rate_decay_rate (float);
  decay_epochs (float or None); warmup_epochs (float); weight_decay (float,
  multiplies `tf.nn.l2_loss` of every kernel in var_list); optimizer (one of
  optimizers.OPTIMIZERS); momentum (float); seed (int); save_every_steps
  (int, 0 = only at epoch ends); log_every_steps (int); summary_every_steps
  (int); eval_batch_size (int); max_to_keep (int); intra_op_threads and
  inter_op_threads (int, 0 = TensorFlow's choice); max_steps (int or None,
  stops earlier than `epochs`); deterministic (bool: also make every op
  deterministic with `tf.config.experimental.enable_op_determinism`, so an
  interrupted and resumed run ends with the same bits as an uninterrupted
  one); divergence_factor (float: stop when a step's loss exceeds this
  multiple of the median of the last DIVERGENCE_WINDOW losses, see
  `Divergence`; 0 = only NaN and Inf stop the run); precision ("float32"
  or "bfloat16": matmuls and convolutions in bfloat16, variables float32)
  and xla (bool, graph-level JIT), see `session_options`; fused_updates
  (bool: with "sgd", fold each kernel's MatMul gradient into its update,
  see `fused_sgd`); fast_gradients (bool: the model's Conv2D and MatMul
  backward passes as forward convolutions and untransposed MatMuls, see
  `fast_gradients`).
  """
  __slots__ = ()

  def __new__(cls, train_dir, epochs=1.0, batch_size=128, learning_rate=0.1,
              learning_rate_decay="none", learning_rate_decay_rate=0.1,
              decay_epochs=None, warmup_epochs=0.0, weight_decay=0.0,
              optimizer="sgd", momentum=0.9, seed=0, save_every_steps=0,
              log_every_steps=100, summary_every_steps=100,
              eval_batch_size=1000, max_to_keep=3, intra_op_threads=0,
              inter_op_threads=0, max_steps=None, deterministic=False,
              divergence_factor=50.0, precision="float32", xla=False,
              fused_updates=True, fast_gradients=True):
    return super(TrainConfig, cls).__new__(
        cls, train_dir, epochs, batch_size, learning_rate,
        learning_rate_decay, learning_rate_decay_rate, decay_epochs,
        warmup_epochs, weight_decay, optimizer, momentum, seed,
        save_every_steps, log_every_steps, summary_every_steps,
        eval_batch_size, max_to_keep, intra_op_threads, inter_op_threads,
        max_steps, deterministic, divergence_factor, precision, xla,
        fused_updates, fast_gradients)


def steps_of_run(num_examples, batch_size, epochs):
  """Training steps of `epochs` passes over `num_examples` (>= 1).

  An epoch is ceil(num_examples / batch_size) steps; fractional epochs round
  to the nearest step.
  """
  steps_per_epoch = -(-int(num_examples) // int(batch_size))
  return max(int(round(epochs * steps_per_epoch)), 1)


def validate_config(config):
  """Raises ConfigError for values no run can use."""
  if not config.train_dir:
    raise errors.ConfigError("train_dir must be given")
  if not (config.epochs > 0 and math.isfinite(config.epochs)):
    raise errors.ConfigError("epochs must be > 0, got %r" % config.epochs)
  if config.batch_size < 1:
    raise errors.ConfigError("batch_size must be >= 1, got %r" %
                             config.batch_size)
  if not config.weight_decay >= 0 or not math.isfinite(config.weight_decay):
    raise errors.ConfigError("weight_decay must be >= 0, got %r" %
                             config.weight_decay)
  if not config.warmup_epochs >= 0 or not math.isfinite(
      config.warmup_epochs):
    raise errors.ConfigError("warmup_epochs must be >= 0, got %r" %
                             config.warmup_epochs)
  if config.eval_batch_size < 1:
    raise errors.ConfigError("eval_batch_size must be >= 1, got %r" %
                             config.eval_batch_size)
  optimizers.check_schedule(config.learning_rate, config.learning_rate_decay,
                            config.learning_rate_decay_rate)
  optimizers.check_optimizer(config.optimizer, config.momentum)
  if config.save_every_steps < 0:
    raise errors.ConfigError("save_every_steps must be >= 0, got %r" %
                             config.save_every_steps)
  if config.max_steps is not None and config.max_steps < 1:
    raise errors.ConfigError("max_steps must be >= 1, got %r" %
                             config.max_steps)
  if config.max_to_keep < 2:
    raise errors.ConfigError(
        "max_to_keep must be >= 2 (a damaged latest checkpoint falls back to "
        "the previous one), got %r" % config.max_to_keep)
  if not (config.divergence_factor == 0 or (
      config.divergence_factor > 1 and
      math.isfinite(config.divergence_factor))):
    raise errors.ConfigError(
        "divergence_factor must be 0 (off) or > 1, got %r" %
        config.divergence_factor)
  session_options.check_precision(config.precision)


# Losses whose median the divergence check compares a step's loss with, and
# how many it needs first; a median below the floor counts as the floor, so
# a nearly perfect fit does not turn an ordinary bad batch into a divergence.
DIVERGENCE_WINDOW = 100
DIVERGENCE_MIN_STEPS = 10
DIVERGENCE_MEDIAN_FLOOR = 0.1


class Divergence(object):
  """Tells a diverging or non-finite loss from an ordinary one.

  A loss is bad when it is NaN or Inf, or (with factor > 0) above
  `factor * max(median of the last DIVERGENCE_WINDOW losses,
  DIVERGENCE_MEDIAN_FLOOR)` once DIVERGENCE_MIN_STEPS losses were seen.
  """

  def __init__(self, factor):
    self.factor = factor
    self._recent = collections.deque(maxlen=DIVERGENCE_WINDOW)

  def check(self, loss):
    """None if `loss` is fine (and remembered), else why it is not."""
    if not math.isfinite(loss):
      return "loss became %s" % loss
    # The limit is at least factor * DIVERGENCE_MEDIAN_FLOOR, so a loss
    # under that needs no median (11 us a step otherwise).
    if (self.factor and len(self._recent) >= DIVERGENCE_MIN_STEPS and
        loss > self.factor * DIVERGENCE_MEDIAN_FLOOR):
      median = float(np.median(self._recent))
      limit = self.factor * max(median, DIVERGENCE_MEDIAN_FLOOR)
      if loss > limit:
        return ("loss diverged to %.6g, above %g x the median %.6g of the "
                "last %d steps" % (loss, self.factor, median,
                                   len(self._recent)))
    self._recent.append(loss)
    return None


def _last_good_checkpoint(train_dir, saver, bad_step):
  """The newest checkpoint older than the weights that gave a bad loss.

  The loss of step `bad_step` is computed from the weights saved as step
  `bad_step - 1`, so a checkpoint of that step is itself suspect: the
  `checkpoint` file is pointed back at the one before (whose weights gave a
  finite, ordinary loss), so rerunning resumes from it. Nothing is deleted.

  Returns:
    The checkpoint prefix, or None when no good one was saved.
  """
  kept = list(saver.last_checkpoints)
  good = [p for p in kept if (checkpoints.step_of(p) or 0) < bad_step - 1]
  if good and len(good) < len(kept):
    # Relative entries, as the Saver writes them (save_relative_paths).
    tf.compat.v1.train.update_checkpoint_state(
        train_dir, os.path.basename(good[-1]),
        [os.path.basename(p) for p in good])
  return good[-1] if good else None


def classifier_model_fn(network_fn, num_classes, scope):
  """A model_fn that trains `network_fn` alone on the true labels.

  Args:
    network_fn: fn(images, num_classes, is_training, scope) -> (logits,
      end_points), e.g. from `nets_factory.get_network_fn`.
    num_classes: int.
    scope: variable scope of the network (its checkpoint names start with it).

  Returns:
    fn(images, labels, is_training) -> ModelOutputs; the loss is the mean
    softmax cross-entropy on the labels.
  """

  def model_fn(images, labels, is_training):
    logits, _ = network_fn(images, num_classes, is_training=is_training,
                           scope=scope)
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits))
    var_list = tf.compat.v1.get_collection(
        tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES, scope=scope + "/")
    return ModelOutputs(
        loss=loss, logits=logits,
        scalars=collections.OrderedDict([("cross_entropy", loss)]),
        var_list=var_list)

  return model_fn


def _kernel_l2(var_list):
  kernels = [v for v in var_list
             if v.op.name.rsplit("/", 1)[-1] in layers.KERNEL_NAMES]
  if not kernels:
    return tf.constant(0.0)
  return tf.add_n([tf.nn.l2_loss(k) for k in kernels])


def _session_config(config):
  return session_options.config_proto(
      config.intra_op_threads, config.inter_op_threads, config.precision,
      config.xla, allow_soft_placement=True)


def _scalar_summary(tag, value):
  return tf.compat.v1.Summary(
      value=[tf.compat.v1.Summary.Value(tag=tag, simple_value=float(value))])


class _EvalTower(object):
  """Inference-mode logits over one split, sharing the trained variables."""

  def __init__(self, model_fn, images, labels, batch_size, name,
               device=None):
    with _on_device(device):
      self.input = input_pipeline.in_memory_input(
          images, labels, batch_size, shuffle=False, name=name)
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(),
                                     reuse=True):
      outputs = model_fn(self.input.images, self.input.labels, False)
    labels = self.input.labels
    self.correct = tf.reduce_sum(tf.cast(
        tf.equal(tf.argmax(outputs.logits, 1), labels), tf.int64))
    self.loss_sum = tf.reduce_sum(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=outputs.logits))

  def evaluate(self, sess):
    """Returns (accuracy fraction, mean cross-entropy) over the whole split."""
    input_pipeline.start_epoch(sess, self.input)
    correct, loss_sum = 0, 0.0
    while True:
      try:
        c, l = sess.run([self.correct, self.loss_sum])
      except tf.errors.OutOfRangeError:
        break
      correct += int(c)
      loss_sum += float(l)
    n = self.input.num_examples
    return correct / float(n), loss_sum / float(n)


def prepare_train_dir(config, model_spec=None):
  """Validates config and creates its train_dir.

  Args:
    config: TrainConfig.
    model_spec: the run's model spec, or None not to check it against the
      train_dir's (a worker that does not own the directory).

  Raises:
    ConfigError: a bad config, a train_dir that cannot be created, or one
      holding another model's run.
  """
  validate_config(config)
  try:
    os.makedirs(config.train_dir, exist_ok=True)
  except OSError as e:
    raise errors.ConfigError("cannot create train_dir %s: %s" %
                             (config.train_dir, e.strerror or e)) from None
  if model_spec is not None:
    _check_spec(config.train_dir, model_spec)


def _check_spec(train_dir, model_spec):
  """Refuses to resume a train_dir that holds another model's run."""
  path = os.path.join(train_dir, checkpoints.MODEL_SPEC_FILENAME)
  if not os.path.exists(path):
    return
  old = checkpoints.read_model_spec(train_dir)
  for key in ("model", "model_options", "num_classes", "image_shape"):
    if old.get(key) != model_spec.get(key) and (
        checkpoints.latest_checkpoint(train_dir) is not None):
      raise errors.ConfigError(
          "train_dir %s holds a run with %s=%r, not %r: use another "
          "--train_dir or delete it" %
          (train_dir, key, old.get(key), model_spec.get(key)))


TrainGraph = collections.namedtuple("TrainGraph", [
    "global_step",  # int64 scalar variable.
    "train_input",  # input_pipeline.InputHandles of the training split.
    "steps_per_epoch",  # int, batches of one pass over the training split.
    "schedule_steps",  # int, steps the learning-rate schedule spans.
    "total_steps",  # int, the global step the run stops at.
    "outputs",  # ModelOutputs of the training call of model_fn.
    "train_op",  # op: one optimizer step (and the after-step ops).
    "scalars",  # OrderedDict name -> float32 scalar, loss first.
    "summary_op",  # merged summary of the scalars.
    "saved_vars",  # variables the checkpoints hold.
    "eval_towers",  # [(split name, _EvalTower)]: test, then validation.
    "window",  # ScalarWindow, or None when not asked for.
])

ScalarWindow = collections.namedtuple("ScalarWindow", [
    "sums",  # float32 [len(scalars) + 1]: sums of the scalars, then steps.
    "reset",  # op: zeroes the sums (run after fetching them).
])


def _scalar_window(scalars):
  """In-graph running sums of the scalars, added to by every training step.

  The progress lines print window means; keeping the sums in the graph lets a
  step fetch only its loss instead of every scalar.

  Returns:
    (ScalarWindow, op adding this step's scalars and 1 to the sums).
  """
  with tf.compat.v1.variable_scope("scalar_window"):
    sums = tf.compat.v1.get_variable(
        "sums", [len(scalars) + 1], tf.float32,
        initializer=tf.compat.v1.zeros_initializer(), trainable=False,
        collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES],
        use_resource=True)
    values = tf.stack([tf.cast(v, tf.float32) for v in scalars.values()] +
                      [tf.constant(1.0)])
    add = sums.assign_add(values, read_value=False)
    reset = sums.assign(tf.zeros_like(values), read_value=False)
  return ScalarWindow(sums=sums.read_value(), reset=reset), add


def _on_device(device):
  return tf.device(device) if device else contextlib.nullcontext()


def build_eval_towers(model_fn, splits, batch_size, device=None):
  """[(split name, _EvalTower)]: test, and validation when there is one.

  The towers reuse the variables model_fn created before; `device` holds
  their in-memory data.
  """
  towers = [("test", _EvalTower(model_fn, splits.test_images,
                                splits.test_labels, batch_size, "test",
                                device))]
  if len(splits.validation_labels):
    towers.append(("validation", _EvalTower(
        model_fn, splits.validation_images, splits.validation_labels,
        batch_size, "validation", device)))
  return towers


def build_train_graph(model_fn, splits, config, train_extras=None,
                      input_seed=None, input_device=None,
                      wrap_optimizer=None, scalar_window=False):
  """Builds the training graph of `train` in the default graph.

  Args:
    model_fn, splits, config, train_extras: as in `train`.
    input_seed: shuffle seed of the training split (default config.seed).
    input_device: device of the in-memory data and its pipeline (e.g. a
      worker's own device under `replica_device_setter`); None = default.
    wrap_optimizer: optional fn(optimizer) -> optimizer, e.g. to make it a
      `SyncReplicasOptimizer`.
    scalar_window: also keep the scalars' running sums in the graph (see
      `ScalarWindow`), updated by `train_op`.

  Returns:
    TrainGraph.

  Raises:
    ConfigError: a model without trainable variables.
  """
  global_step = tf.compat.v1.train.get_or_create_global_step()
  with _on_device(input_device):
    train_input = input_pipeline.in_memory_input(
        splits.train_images, splits.train_labels, config.batch_size,
        shuffle=True,
        seed=config.seed if input_seed is None else input_seed,
        name="train", extras=train_extras)
  steps_per_epoch = train_input.batches_per_epoch
  # The learning-rate schedule spans `epochs`; max_steps only stops the
  # run earlier, so a run stopped there and resumed sees the same rates as
  # an uninterrupted one.
  schedule_steps = steps_of_run(train_input.num_examples,
                                config.batch_size, config.epochs)
  total_steps = schedule_steps
  if config.max_steps is not None:
    total_steps = max(min(total_steps, config.max_steps), 1)

  with fast_gradients.scope(config.fast_gradients):
    if train_extras:
      outputs = model_fn(train_input.images, train_input.labels, True,
                         extras=train_input.extras)
    else:
      outputs = model_fn(train_input.images, train_input.labels, True)
  if not outputs.var_list:
    raise errors.ConfigError("the model has no trainable variables")
  loss = outputs.loss
  if config.weight_decay > 0:
    loss = loss + config.weight_decay * _kernel_l2(outputs.var_list)
  accuracy = tf.reduce_mean(tf.cast(
      tf.equal(tf.argmax(outputs.logits, 1), train_input.labels),
      tf.float32))
  learning_rate = optimizers.learning_rate_schedule(
      config.learning_rate, config.learning_rate_decay, global_step,
      schedule_steps, steps_per_epoch,
      decay_rate=config.learning_rate_decay_rate,
      decay_epochs=config.decay_epochs,
      warmup_steps=int(config.warmup_epochs * steps_per_epoch))
  optimizer = optimizers.make_optimizer(config.optimizer, learning_rate,
                                        config.momentum,
                                        fused=config.fused_updates)
  if wrap_optimizer is not None:
    optimizer = wrap_optimizer(optimizer)
  update_ops = tf.compat.v1.get_collection(
      tf.compat.v1.GraphKeys.UPDATE_OPS)
  with tf.control_dependencies(update_ops):
    train_op = optimizer.minimize(loss, global_step=global_step,
                                  var_list=outputs.var_list)
  if outputs.after_step_fns:
    with tf.control_dependencies([train_op]):
      train_op = tf.group(*[fn() for fn in outputs.after_step_fns],
                          name="after_step")

  eval_towers = build_eval_towers(model_fn, splits, config.eval_batch_size,
                                  input_device)

  scalars = collections.OrderedDict([("loss", loss), ("accuracy", accuracy),
                                     ("learning_rate", learning_rate)])
  for name, tensor in outputs.scalars.items():
    scalars.setdefault(name, tensor)
  with tf.compat.v1.name_scope("summaries"):
    # The raw op keeps each tag exactly `k` ("loss", not "summaries/loss"
    # or "learning_rate_1" as tf.compat.v1.summary.scalar's name scopes
    # would make it), beside the evaluation's "test/accuracy".
    summary_op = tf.compat.v1.summary.merge(
        [tf.raw_ops.ScalarSummary(tags=k, values=v)
         for k, v in scalars.items()])
  window = None
  if scalar_window:
    window, add_to_window = _scalar_window(scalars)
    train_op = tf.group(train_op, add_to_window, name="train_and_window")
  frozen = set(v.op.name for v in outputs.frozen_vars)
  saved_vars = [v for v in tf.compat.v1.global_variables()
                if v.op.name not in frozen]
  return TrainGraph(global_step, train_input, steps_per_epoch, schedule_steps,
                    total_steps, outputs, train_op, scalars, summary_op,
                    saved_vars, eval_towers, window)


def train(model_fn, splits, config, model_spec, stream=None,
          train_extras=None):
  """Trains (or resumes training) and evaluates at each epoch end.

  Args:
    model_fn: fn(images, labels, is_training) -> ModelOutputs. Called once
      with is_training=True and, with variable reuse, once per evaluated split
      with is_training=False.
    splits: `distill_v1.data.datasets.DataSplits`.
    config: TrainConfig.
    model_spec: dict written to `model_spec.json` (see
      `checkpoints.MODEL_SPEC_KEYS`).
    stream: where progress lines go (default stdout).
    train_extras: optional dict name -> array [num_train, ...] of
      per-example values (e.g. cached teacher logits). When given, the
      training call is `model_fn(images, labels, True, extras=...)` with the
      batch's rows as tensors.

  Returns:
    The dict written to `metrics.json`: model, global_step, epoch,
    test_accuracy, test_loss, examples_per_sec (median over the epochs
    after the first of each epoch's examples over the wall time of its
    steps), validation_accuracy (or None), history.

  Raises:
    ConfigError, DataError, CheckpointError: bad configuration or inputs
      (CheckpointError also when every checkpoint to resume from is
      damaged; a damaged latest one only gives a warning line).
    DivergenceError: the loss became NaN or Inf, or diverged (see
      `Divergence`); the `checkpoint` file then names the last good
      checkpoint.
  """
  prepare_train_dir(config, model_spec)
  if config.deterministic:
    # Process-wide and one-way: TensorFlow has no public switch back.
    tf.config.experimental.enable_op_determinism()
  train_dir = config.train_dir
  log = progress_lib.Progress(0, config.batch_size, stream=stream)

  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.set_random_seed(config.seed)
    g = build_train_graph(model_fn, splits, config, train_extras=train_extras,
                          scalar_window=True)
    (global_step, train_input, steps_per_epoch, total_steps, outputs,
     train_op, scalars, summary_op, saved_vars, eval_towers, window) = (
         g.global_step, g.train_input, g.steps_per_epoch, g.total_steps,
         g.outputs, g.train_op, g.scalars, g.summary_op, g.saved_vars,
         g.eval_towers, g.window)
    log.total_steps = total_steps
    saver = tf.compat.v1.train.Saver(saved_vars,
                                     max_to_keep=config.max_to_keep,
                                     save_relative_paths=True)
    init_op = tf.compat.v1.variables_initializer(saved_vars)
    graph.finalize()

  with graph.as_default():
    prefix = os.path.join(train_dir, checkpoints.CHECKPOINT_BASENAME)
    # Event files are named by the second they are opened in; the suffix
    # keeps a resumed run from truncating an earlier run's file.
    writer = tf.compat.v1.summary.FileWriter(
        train_dir, graph=graph, filename_suffix="." + os.urandom(4).hex())
    try:
      with tf.compat.v1.Session(graph=graph,
                                config=_session_config(config)) as sess:
        latest, damaged = checkpoints.latest_usable_checkpoint(train_dir)
        for bad, problem in damaged:
          log.write("warning: checkpoint %s is damaged (%s); %s" % (
              bad, problem, "using the previous one" if latest else
              "no older one is left"))
        if damaged and not latest:
          raise errors.CheckpointError(
              "no usable checkpoint in %s: %s is damaged (%s); delete the "
              "model.ckpt-* files and the `checkpoint` file to start again" %
              (train_dir, damaged[0][0], damaged[0][1]))
        if latest:
          # Keeps max_to_keep counting the checkpoints of earlier processes.
          saver.recover_last_checkpoints(
              checkpoints.listed_checkpoints(train_dir))
          try:
            saver.restore(sess, latest)
          except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
            raise errors.CheckpointError(
                "cannot resume from %s: %s" %
                (latest, str(e).split("\n")[0])) from None
        else:
          sess.run(init_op)
        if outputs.init_fn is not None:
          outputs.init_fn(sess)
        for handles in [train_input] + [t.input for _, t in eval_towers]:
          input_pipeline.initialize_data(sess, handles)
        checkpoints.write_model_spec(train_dir, model_spec)

        step = int(sess.run(global_step))
        start_epoch = step // steps_per_epoch
        metrics = fileio.read_json_or_none(
            os.path.join(train_dir, METRICS_FILENAME))
        # Epochs after the checkpoint's are retrained, so their entries go.
        history = [h for h in (metrics or {}).get("history", [])
                   if h.get("epoch", 0) <= start_epoch]
        if latest:
          log.write("resuming from %s (step %d, epoch %d)" %
                    (latest, step, start_epoch))
        if step >= total_steps:
          log.write("%s is already trained to step %d of %d; nothing to do" %
                    (train_dir, step, total_steps))
        num_epochs = int(math.ceil(total_steps / float(steps_per_epoch)))
        scalar_names = list(scalars.keys())
        # Each step fetches only its loss (for the divergence check); the
        # other scalars are summed in the graph and fetched per progress line.
        # Callables skip sess.run's per-call fetch parsing (4% of an
        # mlp_student step, docs/benchmarks.md).
        loss_tensor = scalars["loss"]
        run_step = sess.make_callable([train_op, loss_tensor])
        run_step_with_summary = sess.make_callable(
            [train_op, loss_tensor, summary_op])
        divergence = Divergence(config.divergence_factor)

        try:
          while step < total_steps:
            epoch = step // steps_per_epoch
            epoch_end = min((epoch + 1) * steps_per_epoch, total_steps)
            input_pipeline.start_epoch(sess, train_input, epoch,
                                       step - epoch * steps_per_epoch)
            sess.run(window.reset)
            epoch_text = "epoch %d/%d" % (epoch + 1, num_epochs)
            log.restart_window()
            # examples/sec is of the wall time of the epoch's steps, Python
            # between them included (evaluation and the epoch-end
            # checkpoint not).
            epoch_start_time, epoch_examples = time.time(), 0
            while step < epoch_end:
              want_summary = (config.summary_every_steps > 0 and
                              (step + 1) % config.summary_every_steps == 0)
              results = (run_step_with_summary() if want_summary else
                         run_step())
              # Only an epoch's last batch is short.
              batch = min(config.batch_size, train_input.num_examples -
                          (step - epoch * steps_per_epoch) * config.batch_size)
              step += 1
              epoch_examples += batch
              log.add_examples(batch)
              problem = divergence.check(float(results[1]))
              if problem:
                good = _last_good_checkpoint(train_dir, saver, step)
                raise errors.DivergenceError(
                    "%s at step %d; stopped. The last good checkpoint is %s. "
                    "Lower --learning_rate (or raise --warmup_epochs)." %
                    (problem, step, "%s (kept; rerunning resumes from it)" %
                     good if good else "none (none was saved before it)"))
              if want_summary:
                writer.add_summary(results[2], step)
              if config.log_every_steps > 0 and step % config.log_every_steps == 0:
                rate = log.examples_per_sec()
                writer.add_summary(_scalar_summary("examples_per_sec", rate), step)
                sums = sess.run(window.sums)
                sess.run(window.reset)
                means = sums[:-1] / max(sums[-1], 1.0)
                log.write(log.line(step, epoch_text, [
                    (k, float(m)) for k, m in zip(scalar_names, means)
                    if _printed(k)]))
              if (config.save_every_steps and step % config.save_every_steps == 0
                  and step < epoch_end):
                saver.save(sess, prefix, global_step=step)
            train_time = time.time() - epoch_start_time
            examples_per_sec = epoch_examples / train_time if train_time else 0.0
            saver.save(sess, prefix, global_step=step)
            entry = collections.OrderedDict([
                ("epoch", epoch + 1), ("global_step", step),
                ("examples_per_sec", examples_per_sec),
                ("epoch_seconds", time.time() - epoch_start_time)])
            for name, tower in eval_towers:
              acc, xent = tower.evaluate(sess)
              entry[name + "_accuracy"] = acc
              entry[name + "_loss"] = xent
              writer.add_summary(_scalar_summary(name + "/accuracy", acc), step)
              writer.add_summary(_scalar_summary(name + "/loss", xent), step)
            writer.add_summary(
                _scalar_summary("examples_per_sec_epoch", examples_per_sec), step)
            writer.flush()
            history = [h for h in history if h["epoch"] != epoch + 1] + [entry]
            text = "%s done: test accuracy %.2f%%  test loss %.4f" % (
                epoch_text, 100 * entry["test_accuracy"], entry["test_loss"])
            if "validation_accuracy" in entry:
              text += "  validation accuracy %.2f%%" % (
                  100 * entry["validation_accuracy"])
            text += "  %s ex/s" % format(int(examples_per_sec), ",")
            log.write(text)
            metrics = _metrics_from_history(model_spec["model"], step, history)
            fileio.write_json(os.path.join(train_dir, METRICS_FILENAME), metrics)
        except KeyboardInterrupt:
          # Ctrl-C or SIGTERM (the binaries turn it into KeyboardInterrupt):
          # keep everything trained so far, then stop.
          step = int(sess.run(global_step))
          saved = saver.save(sess, prefix, global_step=step)
          log.write("interrupted at step %d; saved %s (rerun the same "
                    "command to resume)" % (step, saved))
          raise
        if metrics is None:
          # Finished earlier but metrics.json was lost: evaluate once.
          entry = collections.OrderedDict([
              ("epoch", int(math.ceil(step / float(steps_per_epoch)))),
              ("global_step", step), ("examples_per_sec", 0.0)])
          for name, tower in eval_towers:
            entry[name + "_accuracy"], entry[name + "_loss"] = tower.evaluate(sess)
          metrics = _metrics_from_history(model_spec["model"], step, [entry])
          fileio.write_json(os.path.join(train_dir, METRICS_FILENAME), metrics)
    finally:
      writer.close()
  return metrics


def _printed(scalar_name):
  """Progress lines show `loss`, `sparsity/total`, not `sparsity/conv1`.

  Scalars named `<group>/<part>` (per-layer figures) go to TensorBoard only,
  so a deep network does not make the progress line unreadable.
  """
  return "/" not in scalar_name or scalar_name.endswith("/total")


def _metrics_from_history(model_name, step, history):
  last = history[-1]
  # Throughput of the first epoch includes graph warm-up; quote the median of
  # the later ones when there are any.
  rates = [h["examples_per_sec"] for h in history if h["examples_per_sec"]]
  steady = rates[1:] if len(rates) > 1 else rates
  return collections.OrderedDict([
      ("model", model_name),
      ("global_step", step),
      ("epoch", last["epoch"]),
      ("test_accuracy", last["test_accuracy"]),
      ("test_loss", last["test_loss"]),
      ("validation_accuracy", last.get("validation_accuracy")),
      ("examples_per_sec", float(np.median(steady)) if steady else 0.0),
      ("history", history),
  ])
