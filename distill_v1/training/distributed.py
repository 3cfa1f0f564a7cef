"""The training loop on a TensorFlow cluster: parameter servers and workers.

Between-graph replication, as in TensorFlow 1's distributed guide: every
worker builds the graph of `loop.build_train_graph` under
`tf.compat.v1.train.replica_device_setter`, so the model's variables (and the
global step, and the optimizer's slots) live on the parameter servers while
the in-memory data, the input pipeline and a distillation teacher (whose
variables are LOCAL_VARIABLES on the worker, see
`teachers.checkpoint_teacher`) stay on the worker. Each worker trains through
a `tf.compat.v1.train.MonitoredSession` (the chief's comes from
`MonitoredTrainingSession`) until the shared global step reaches the run's
last step.

  * asynchronous by default: every worker applies its own gradients;
  * synchronous with `sync_replicas`: `SyncReplicasOptimizer` averages
    `replicas_to_aggregate` gradients per global step (stale ones are
    dropped); the first step waits until that many gradients arrived, so no
    worker is left out because it started late;
  * the chief (worker 0) initialises the variables or restores them from
    the latest checkpoint in `train_dir`, writes checkpoints and summaries,
    and at the end evaluates its final checkpoint in a single-process graph
    and writes `metrics.json`;
  * each worker shuffles the whole training set in its own order (seed +
    task index), and writes `worker_<i>.json` (its local steps, examples and
    examples/sec) into `train_dir`.

What is survived (a `MonitoredSession` re-creates its session after
`AbortedError`/`UnavailableError`; checked with asynchronous training):
  * a non-chief worker killed and restarted with the same flags rejoins at
    the current global step (the steps it was computing are lost);
  * the chief killed and restarted restores the latest checkpoint into the
    parameter servers and carries on; in asynchronous training the other
    workers keep training meanwhile, and the restore undoes their steps
    since that checkpoint;
  * a parameter server killed and restarted comes back empty: every worker
    re-creates its session, the chief's restores the latest checkpoint, the
    others wait until it has, then everyone continues from that checkpoint's
    global step (the steps after it are redone).
What is not: a parameter server or chief that stays down stops the run (the
other workers wait up to `max_wait_secs`); the exact batch sequence of an
uninterrupted run is not reproduced (workers race), unlike single-process
resumption; and a worker's `worker_<i>.json` counts only the steps of its
last process.
"""

import collections
import os
import time

import numpy as np

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf
from distill_v1.data import input_pipeline
from distill_v1.training import cluster as cluster_lib
from distill_v1.training import loop
from distill_v1.training import progress as progress_lib

# pylint: disable=protected-access

WORKER_FILENAME = "worker_%d.json"

_ClusterOptions = collections.namedtuple("ClusterOptions", [
    "sync_replicas", "replicas_to_aggregate", "save_checkpoint_secs",
    "session_wait_secs", "stop_grace_period_secs", "max_wait_secs"])


class ClusterOptions(_ClusterOptions):
  """How the workers train together.

  Fields: sync_replicas (bool, SyncReplicasOptimizer); replicas_to_aggregate
  (int >= 1 or None = the number of workers); save_checkpoint_secs (float,
  0 = every TrainConfig.save_every_steps global steps, or every epoch when
  that is 0 too); session_wait_secs (seconds between a worker's checks that
  the chief has initialised the model); stop_grace_period_secs (seconds
  threads get to stop at the end); max_wait_secs (how long a worker waits for
  the chief before giving up).
  """
  __slots__ = ()

  def __new__(cls, sync_replicas=False, replicas_to_aggregate=None,
              save_checkpoint_secs=0.0, session_wait_secs=1.0,
              stop_grace_period_secs=5.0, max_wait_secs=1800.0):
    return super(ClusterOptions, cls).__new__(
        cls, sync_replicas, replicas_to_aggregate, save_checkpoint_secs,
        session_wait_secs, stop_grace_period_secs, max_wait_secs)


def validate_options(options, role):
  """Raises ConfigError for options no cluster can use."""
  if options.replicas_to_aggregate is not None:
    if not options.sync_replicas:
      raise errors.ConfigError(
          "replicas_to_aggregate needs sync_replicas (asynchronous training "
          "aggregates nothing)")
    if options.replicas_to_aggregate < 1:
      raise errors.ConfigError("replicas_to_aggregate must be >= 1, got %r" %
                               options.replicas_to_aggregate)
  for name in ("save_checkpoint_secs", "session_wait_secs",
               "stop_grace_period_secs", "max_wait_secs"):
    if getattr(options, name) < 0:
      raise errors.ConfigError("%s must be >= 0, got %r" %
                               (name, getattr(options, name)))
  if role.job_name != "worker":
    raise errors.ConfigError("%s trains nothing: only workers run the "
                             "training loop" % role.device)


class _WorkerSessionCreator(tf.compat.v1.train.SessionCreator):
  """`WorkerSessionCreator` that checks for the chief every `wait_secs`.

  The stock one polls every 30 s, so a worker started a moment before the
  chief had initialised the model would miss most of a short run.
  """

  def __init__(self, scaffold, master, config, wait_secs, max_wait_secs):
    self._scaffold = scaffold
    self._master = master
    self._config = config
    self._wait_secs = wait_secs
    self._max_wait_secs = max_wait_secs

  def create_session(self):
    self._scaffold.finalize()
    manager = tf.compat.v1.train.SessionManager(
        local_init_op=self._scaffold.local_init_op,
        local_init_feed_dict=self._scaffold.local_init_feed_dict,
        ready_op=self._scaffold.ready_op,
        ready_for_local_init_op=self._scaffold.ready_for_local_init_op,
        graph=tf.compat.v1.get_default_graph(),
        recovery_wait_secs=self._wait_secs)
    return manager.wait_for_session(self._master, config=self._config,
                                    max_wait_secs=self._max_wait_secs)


class _InputHook(tf.compat.v1.train.SessionRunHook):
  """Starts this worker's epochs, also in a re-created (recovered) session.

  Counts the batches of the current epoch so the next epoch starts before
  the iterator runs dry.
  """

  def __init__(self, train_input, global_step, role, log):
    self._input = train_input
    self._global_step = global_step
    self._role = role
    self._log = log
    self._sessions = 0
    self.joined_step = None  # the global step of the first session.
    self.epoch = 0
    self.batches = 0

  def _start(self, session):
    input_pipeline.start_epoch(session, self._input, self.epoch)
    self.batches = 0

  def after_create_session(self, session, coord):
    del coord
    step = int(session.run(self._global_step))
    self._sessions += 1
    if self._sessions == 1:
      self.joined_step = step
    self._log.write("worker %d of %d %s at global step %d" % (
        self._role.task_index, self._role.num_workers,
        "joined" if self._sessions == 1 else
        "re-created its session (a task was restarted)", step))
    self.epoch = step // self._input.batches_per_epoch
    self._start(session)

  def batch_size(self, batch_size):
    """Examples in the next batch (only an epoch's last one is short)."""
    return min(batch_size,
               self._input.num_examples - self.batches * batch_size)

  def after_run(self, run_context, run_values):
    del run_values
    self.batches += 1
    if self.batches == self._input.batches_per_epoch:
      self.epoch += 1
      self._start(run_context.session)


class _SyncReplicasHook(tf.compat.v1.train.SessionRunHook):
  """`SyncReplicasOptimizer.make_session_run_hook`, with a quiet end.

  The same local init, tokens and chief queue runner; the runner takes the
  cancellation of its pending step when the chief's session closes at the
  end for the clean stop it is (the stock runner reports it as an error
  with a traceback).
  """

  def __init__(self, optimizer, is_chief, num_tokens):
    self._runner = self._tokens = None
    self._ready = optimizer.ready_for_local_init_op
    if is_chief:
      self._init_op = optimizer.chief_init_op
      runner = optimizer.get_chief_queue_runner()
      self._runner = tf.compat.v1.train.QueueRunner(
          runner.queue, runner.enqueue_ops, close_op=runner.close_op,
          cancel_op=runner.cancel_op, queue_closed_exception_types=(
              tf.errors.OutOfRangeError, tf.errors.CancelledError))
      self._tokens = optimizer.get_init_tokens_op(num_tokens)
    else:
      self._init_op = optimizer.local_step_init_op

  def after_create_session(self, session, coord):
    missing = session.run(self._ready)
    if len(missing):
      raise errors.CheckpointError(
          "the model is not initialised on the parameter servers (%s): "
          "SyncReplicasOptimizer cannot start" %
          ", ".join(m.decode() for m in missing[:5]))
    session.run(self._init_op)
    if self._tokens is not None:
      session.run(self._tokens)
    if self._runner is not None:
      self._runner.create_threads(session, coord=coord, daemon=True,
                                  start=True)


def evaluate_checkpoint(model_fn, splits, prefix, batch_size):
  """Test (and validation) accuracy and loss of a checkpoint, in one process.

  Returns:
    OrderedDict: test_accuracy, test_loss (and validation_* when splits has
    a validation split).
  """
  graph = tf.Graph()
  with graph.as_default():
    # Creates the variables the towers reuse.
    model_fn(tf.compat.v1.placeholder(
        tf.float32, [None] + [int(d) for d in splits.image_shape]),
             tf.compat.v1.placeholder(tf.int64, [None]), False)
    towers = loop.build_eval_towers(model_fn, splits, batch_size)
    saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
    entry = collections.OrderedDict()
    with tf.compat.v1.Session(graph=graph) as sess:
      saver.restore(sess, prefix)
      for name, tower in towers:
        input_pipeline.initialize_data(sess, tower.input)
        entry[name + "_accuracy"], entry[name + "_loss"] = tower.evaluate(sess)
  return entry


def _data_feed(train_graph):
  feed = dict(train_graph.train_input.data_feed)
  for _, tower in train_graph.eval_towers:
    feed.update(tower.input.data_feed)
  return feed


def train(model_fn, splits, config, model_spec, role, server_target,
          options=None, stream=None, train_extras=None):
  """Trains on a cluster as worker `role.task_index`; see the module doc.

  Args:
    model_fn, splits, config, model_spec, stream, train_extras: as in
      `loop.train`, except that `ModelOutputs.init_fn` is not called: the
      frozen variables (a distillation teacher's) must be worker-local
      LOCAL_VARIABLES initialised by their own initializers, as
      `checkpoint_teacher.build_checkpoint_teacher(local_device=...)`
      builds them.
    role: cluster.ClusterRole of a worker.
    server_target: this worker's `tf.distribute.Server(...).target`.
    options: ClusterOptions.

  Returns:
    The chief: the dict written to `metrics.json` (as `loop.train`'s, plus
    `cluster`). Other workers: the dict written to `worker_<i>.json`.

  Raises:
    ConfigError, DataError, CheckpointError: bad configuration or inputs.
  """
  options = options or ClusterOptions()
  validate_options(options, role)
  loop.prepare_train_dir(config, model_spec if role.is_chief else None)
  train_dir = config.train_dir
  log = progress_lib.Progress(0, config.batch_size, stream=stream)
  replicas = options.replicas_to_aggregate or role.num_workers
  sync = []

  def wrap_optimizer(optimizer):
    sync.append(tf.compat.v1.train.SyncReplicasOptimizer(
        optimizer, replicas_to_aggregate=replicas,
        total_num_replicas=role.num_workers))
    return sync[0]

  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.set_random_seed(config.seed)
    with tf.compat.v1.device(cluster_lib.replica_device_setter(role)):
      g = loop.build_train_graph(
          model_fn, splits, config, train_extras=train_extras,
          input_seed=config.seed + 7919 * role.task_index,
          input_device=role.device,
          wrap_optimizer=wrap_optimizer if options.sync_replicas else None)
    log.total_steps = g.total_steps
    local = set(v.op.name for v in tf.compat.v1.local_variables())
    shared = [v.op.name for v in g.outputs.frozen_vars
              if v.op.name not in local]
    if shared:
      # The chief would never initialise them: every worker would wait.
      raise errors.ConfigError(
          "frozen variables must be worker-local on a cluster (build the "
          "teacher with local_device=%r): %s" %
          (role.device, ", ".join(shared[:3])))
    with tf.control_dependencies([g.train_op]):
      # The global step after this worker's update (or later workers').
      step_after = tf.identity(g.global_step.read_value())
    input_hook = _InputHook(g.train_input, g.global_step, role, log)
    hooks = [tf.compat.v1.train.StopAtStepHook(last_step=g.total_steps),
             input_hook]
    end_tokens = None
    if sync:
      # No tokens at the start: the first step waits for `replicas`
      # gradients, so the chief cannot run ahead of late workers.
      hooks.append(_SyncReplicasHook(
          sync[0], role.is_chief, max(replicas - role.num_workers, 0)))
      if role.is_chief:
        # At the end: a token for each worker still waiting for one.
        end_tokens = sync[0].get_init_tokens_op(role.num_workers)
    saver = tf.compat.v1.train.Saver(g.saved_vars,
                                     max_to_keep=config.max_to_keep,
                                     save_relative_paths=True)
    scaffold = tf.compat.v1.train.Scaffold(
        init_op=tf.compat.v1.variables_initializer(g.saved_vars),
        local_init_op=tf.group(tf.compat.v1.local_variables_initializer(),
                               tf.compat.v1.tables_initializer()),
        local_init_feed_dict=_data_feed(g), summary_op=g.summary_op,
        saver=saver)
    session_config = cluster_lib.session_config(
        role, config.intra_op_threads, config.inter_op_threads,
        config.precision, config.xla)
    if role.is_chief:
      checkpoints.write_model_spec(train_dir, model_spec)
      every = {"save_checkpoint_secs": options.save_checkpoint_secs} if (
          options.save_checkpoint_secs) else {
              "save_checkpoint_steps": config.save_every_steps or
                                       g.steps_per_epoch}
      session = tf.compat.v1.train.MonitoredTrainingSession(
          master=server_target, is_chief=True, checkpoint_dir=train_dir,
          scaffold=scaffold, hooks=hooks, config=session_config,
          save_summaries_steps=config.summary_every_steps,
          log_step_count_steps=config.log_every_steps,
          stop_grace_period_secs=options.stop_grace_period_secs,
          max_wait_secs=options.max_wait_secs, **every)
    else:
      session = tf.compat.v1.train.MonitoredSession(
          session_creator=_WorkerSessionCreator(
              scaffold, server_target, session_config,
              options.session_wait_secs, options.max_wait_secs),
          hooks=hooks, stop_grace_period_secs=options.stop_grace_period_secs)
    report = _run(session, g, step_after, input_hook, config, role, log,
                  saver, end_tokens, replicas if sync else None)

  report.update(sync_replicas=bool(options.sync_replicas),
                replicas_to_aggregate=replicas if sync else None)
  fileio.write_json(os.path.join(train_dir, WORKER_FILENAME % role.task_index),
                    report)
  if not role.is_chief:
    log.write("worker %d done: %d local steps, %s ex/s; global step %d" % (
        role.task_index, report["local_steps"],
        format(int(report["examples_per_sec"]), ","),
        report["last_global_step"]))
    return report
  return _final_metrics(model_fn, splits, config, model_spec, role, report,
                        log)


def _raw(session, fn):
  """Runs fn(raw session) without triggering the hooks."""
  # run_step_fn insists on the argument's name.
  return session.run_step_fn(
      lambda step_context: fn(step_context.session))


def _run(session, g, step_after, input_hook, config, role, log, saver,
         end_tokens, replicas_per_step):
  """The worker's step loop; returns its report (see `train`)."""
  names = list(g.scalars.keys())
  tensors = [g.scalars[k] for k in names]
  window = collections.defaultdict(float)
  window_steps, local_steps, examples, train_time = 0, 0, 0, 0.0
  first_step = step = None
  num_epochs = -(-g.total_steps // g.steps_per_epoch)
  with session:
    try:
      first_step = step = input_hook.joined_step
      log.restart_window()
      while not session.should_stop():
        batch = input_hook.batch_size(config.batch_size)
        t0 = time.time()
        values, step = session.run([tensors, step_after])
        step = int(step)
        train_time += time.time() - t0
        local_steps += 1
        examples += batch
        log.add_examples(batch)
        if not np.isfinite(values[0]):
          raise errors.ConfigError(
              "loss became %s at global step %d on %s. Lower "
              "--learning_rate." % (values[0], step, role.device))
        for name, value in zip(names, values):
          window[name] += float(value)
        window_steps += 1
        if local_steps % config.log_every_steps == 0:
          epoch_text = "worker %d epoch %d/%d" % (
              role.task_index, min(step // g.steps_per_epoch + 1, num_epochs),
              num_epochs)
          log.write(log.line(step, epoch_text, [
              (k, window[k] / window_steps) for k in names
              if loop._printed(k)]))
          window.clear()
          window_steps = 0
      if end_tokens is not None:
        _raw(session, lambda s: s.run(end_tokens))
    except KeyboardInterrupt:
      if role.is_chief:
        # The hooks save only at a normal end; keep what was trained.
        saved = _raw(session, lambda s: saver.save(
            s, os.path.join(config.train_dir, checkpoints.CHECKPOINT_BASENAME),
            global_step=g.global_step))
        log.write("interrupted; saved %s" % saved)
      raise
  # Each global step is one worker's batch, or `replicas` of them in sync.
  per_step = config.batch_size * (
      replicas_per_step if replicas_per_step else 1)
  global_rate = ((step - first_step) * per_step / train_time
                 if train_time and step is not None else 0.0)
  return collections.OrderedDict([
      ("task_index", role.task_index),
      ("is_chief", role.is_chief),
      ("local_steps", local_steps),
      ("examples", examples),
      ("examples_per_sec", examples / train_time if train_time else 0.0),
      ("train_seconds", train_time),
      ("first_global_step", first_step),
      ("last_global_step", step),
      ("cluster_examples_per_sec", global_rate),
  ])


def _final_metrics(model_fn, splits, config, model_spec, role, report, log):
  """The chief evaluates its final checkpoint and writes metrics.json."""
  prefix = checkpoints.latest_checkpoint(config.train_dir)
  if prefix is None:
    raise errors.CheckpointError("the chief wrote no checkpoint into %s" %
                                 config.train_dir)
  # Not the name's step: on an asynchronous cluster another worker may have
  # stepped between the chief reading the step and writing the weights.
  step = checkpoints.stored_global_step(prefix)
  steps_per_epoch = loop.steps_of_run(len(splits.train_labels),
                                      config.batch_size, 1)
  entry = collections.OrderedDict([
      ("epoch", -(-step // steps_per_epoch)),
      ("global_step", step),
      ("examples_per_sec", report["examples_per_sec"])])
  entry.update(evaluate_checkpoint(model_fn, splits, prefix,
                                   config.eval_batch_size))
  metrics = loop._metrics_from_history(model_spec["model"], step, [entry])
  metrics["cluster"] = collections.OrderedDict([
      ("ps_hosts", list(role.ps_hosts)),
      ("worker_hosts", list(role.worker_hosts)),
      ("sync_replicas", report["sync_replicas"]),
      ("replicas_to_aggregate", report["replicas_to_aggregate"]),
      ("examples_per_sec", report["cluster_examples_per_sec"]),
      ("checkpoint", os.path.basename(prefix))])
  fileio.write_json(os.path.join(config.train_dir, loop.METRICS_FILENAME),
                    metrics)
  text = "chief: final checkpoint %s: test accuracy %.2f%%  test loss %.4f" % (
      os.path.basename(prefix), 100 * entry["test_accuracy"],
      entry["test_loss"])
  if "validation_accuracy" in entry:
    text += "  validation accuracy %.2f%%" % (
        100 * entry["validation_accuracy"])
  log.write(text)
  return metrics
