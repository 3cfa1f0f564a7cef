"""Flags shared by the training binaries, and the error boundary of a binary.

Defines the common flags of DESIGN.md's Interfaces table (`--model --dataset
--data_dir --train_dir --epochs --batch_size --learning_rate
--learning_rate_decay --weight_decay --optimizer --seed --save_every_steps
--validation_size`) plus session and logging flags, with validators. A binary
calls `define_training_flags()` at import time and `training_config()` in
`main`.
"""

import os
import signal
import sys

from absl import flags

from distill_v1 import errors

FLAGS = flags.FLAGS

# Kept in step with distill_v1.training.optimizers (not imported here so that
# `--helpfull` does not need TensorFlow to start).
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
LEARNING_RATE_DECAYS = ("none", "exponential", "piecewise", "cosine")


# Kept in step with distill_v1.training.session_options.PRECISIONS.
PRECISIONS = ("float32", "bfloat16")
XLA_CPU_FLAG = "--tf_xla_cpu_global_jit"

# Kept in step with distill_v1.export.export_lib.FORMATS (not imported here
# so that `--helpfull` does not need TensorFlow to start).
EXPORT_FORMATS = ("frozen_graph", "saved_model", "float32", "dynamic_range",
                  "float16", "int8")


def define_export_flags(default_folder):
  """Flags of a binary that exports and verifies the exports.

  Args:
    default_folder: words naming the default --output_dir, e.g.
      "<checkpoint dir>/export".
  """
  flags.DEFINE_string(
      "output_dir", None,
      "Folder the exports go to (default: %s)." % default_folder)
  flags.DEFINE_list(
      "formats", ["all"],
      "Comma-separated export formats: all, or some of %s." %
      ", ".join(EXPORT_FORMATS))
  flags.DEFINE_boolean("overwrite", False,
                       "Replace existing export files instead of refusing.")
  flags.DEFINE_boolean(
      "verify", True,
      "Read every exported file back in a fresh process with its real "
      "runtime and compare it with the session it was exported from (fails "
      "the export beyond tolerance).")
  flags.DEFINE_integer(
      "num_compare_examples", 200,
      "Test images whose logits are compared between the session and each "
      "file.", lower_bound=1)
  flags.DEFINE_integer(
      "max_test_examples", None,
      "Score only the first N test images in verification (default: all).",
      lower_bound=1)
  flags.DEFINE_integer("latency_repeats", 100,
                       "Timed single-image calls per format in "
                       "verification; the median is reported.", lower_bound=1)
  flags.register_validator(
      "formats",
      lambda value: value == ["all"] or (
          bool(value) and all(f in EXPORT_FORMATS for f in value) and
          len(set(value)) == len(value)),
      message="--formats must be 'all' or distinct names among %s" %
      ", ".join(EXPORT_FORMATS))
  flags.register_validator(
      "output_dir", lambda value: value is None or bool(value.strip()),
      message="--output_dir must not be empty (leave it out for the "
      "default)")


def define_data_flags():
  flags.DEFINE_string(
      "dataset", "fashion_mnist",
      "Data set: fashion_mnist, mnist, or npz:PATH (arrays x_train, y_train, "
      "x_test, y_test; any image shape and class count).")
  flags.DEFINE_string(
      "data_dir", None,
      "Folder with the IDX files. Default: $DISTILL_V1_DATA, then "
      "/usr/share/datasets/fashion-mnist/ (Debian package "
      "dataset-fashion-mnist), then the Keras cache, then a download.")
  flags.DEFINE_integer(
      "validation_size", 0,
      "Training examples held out (seeded by --seed) as a validation split "
      "for tuning; never tune on the test set.", lower_bound=0)


def define_model_flags(default_model=None):
  flags.DEFINE_string(
      "model", default_model,
      "Network from the model zoo: mlp_teacher, mlp_student, cnn_teacher, "
      "cnn_student, mobilenet_v1.")
  flags.DEFINE_float(
      "width_multiplier", 1.0,
      "mobilenet_v1 only: channel width multiplier (1.0, 0.75, 0.5, 0.25).",
      lower_bound=0.01)


def define_training_flags(default_model=None, default_learning_rate=0.1):
  """Defines every flag of a training binary."""
  define_model_flags(default_model)
  define_data_flags()
  flags.DEFINE_string(
      "train_dir", None,
      "Where checkpoints, summaries, model_spec.json and metrics.json go. "
      "Rerunning with the same train_dir resumes from its latest checkpoint.")
  flags.DEFINE_float("epochs", 5.0,
                     "Passes over the training set (may be fractional).",
                     lower_bound=0.0)
  flags.DEFINE_integer("batch_size", 128, "Examples per training step.",
                       lower_bound=1)
  flags.DEFINE_float("learning_rate", default_learning_rate,
                     "Initial learning rate.", lower_bound=0.0)
  flags.DEFINE_enum(
      "learning_rate_decay", "none", LEARNING_RATE_DECAYS,
      "Schedule: none (constant), exponential (to rate * decay_rate at the "
      "end), piecewise (x decay_rate at 50% and 75% of the run), cosine (to "
      "0).")
  flags.DEFINE_float("learning_rate_decay_rate", 0.1,
                     "Factor of the exponential and piecewise schedules.",
                     lower_bound=0.0, upper_bound=1.0)
  flags.DEFINE_float("warmup_epochs", 0.0,
                     "Linear learning-rate warm-up, in epochs.",
                     lower_bound=0.0)
  flags.DEFINE_float(
      "weight_decay", 0.0,
      "L2 weight decay: adds weight_decay * sum(tf.nn.l2_loss(kernel)).",
      lower_bound=0.0)
  flags.DEFINE_enum(
      "optimizer", "sgd", OPTIMIZERS,
      "sgd = tf.compat.v1.train.GradientDescentOptimizer (the article's); "
      "momentum = MomentumOptimizer; adam; rmsprop.")
  flags.DEFINE_float("momentum", 0.9, "Momentum of momentum and rmsprop.",
                     lower_bound=0.0, upper_bound=0.999)
  flags.DEFINE_bool(
      "fused_updates", True,
      "With --optimizer=sgd: update each kernel whose gradient is one MatMul "
      "as W + x^T @ (-lr * dy) in one expression instead of writing the "
      "gradient out first (the same update up to float rounding; 4% faster "
      "steps on mlp_student, 6% on mlp_teacher). --nofused_updates uses "
      "GradientDescentOptimizer's own update for every variable.")
  flags.DEFINE_bool(
      "fast_gradients", True,
      "Compute the backward pass of stride-1 SAME convolutions (odd kernels) "
      "as forward convolutions and that of each MatMul without dy @ W^T "
      "(the same gradients up to float rounding; on a 2-core AVX2 CPU "
      "training steps of cnn_teacher were 1.42x and of cnn_student 1.31x "
      "as fast, docs/benchmarks.md). --nofast_gradients uses TensorFlow's "
      "own Conv2DBackpropInput/Filter and MatMul gradients.")
  flags.DEFINE_integer(
      "seed", 0,
      "Seed of initialisation, shuffle order and dropout (all stateless).")
  flags.DEFINE_integer(
      "save_every_steps", 500,
      "Checkpoint every N steps (and at each epoch end); 0 = epoch ends only.",
      lower_bound=0)
  flags.DEFINE_integer("log_every_steps", 100,
                       "A progress line every N steps.", lower_bound=1)
  flags.DEFINE_integer("summary_every_steps", 100,
                       "TensorBoard summaries every N steps.", lower_bound=1)
  flags.DEFINE_integer("eval_batch_size", 1000,
                       "Batch size of the epoch-end evaluation.",
                       lower_bound=1)
  flags.DEFINE_integer("max_steps", None,
                       "Stop at this global step even before --epochs.",
                       lower_bound=1)
  flags.DEFINE_integer(
      "intra_op_threads", 0,
      "Threads inside one op (0 = TensorFlow's choice: all cores).",
      lower_bound=0)
  flags.DEFINE_integer(
      "inter_op_threads", 0,
      "Ops run in parallel (0 = TensorFlow's choice).", lower_bound=0)
  flags.DEFINE_enum(
      "precision", "float32", PRECISIONS,
      "Arithmetic of matmuls and convolutions. float32 (default), or "
      "bfloat16: Grappler's oneDNN auto-mixed-precision rewrite runs them in "
      "bfloat16 on the CPU's AMX / AVX512_BF16 units while variables, "
      "updates and losses stay float32 (refused on a CPU without them). "
      "Measured about 2x faster for the teachers on an AMX CPU, at a cost in "
      "accuracy given in docs/benchmarks.md.")
  flags.DEFINE_boolean(
      "xla", False,
      "Graph-level XLA JIT (global_jit_level ON_1; the binary sets "
      "TF_XLA_FLAGS=--tf_xla_cpu_global_jit before importing TensorFlow, "
      "without which CPU ignores it). Off by default: it measured slower on "
      "every reference model (docs/benchmarks.md).")
  flags.DEFINE_boolean(
      "deterministic", False,
      "Bit-exact runs: also make every TensorFlow op deterministic "
      "(tf.config.experimental.enable_op_determinism). Shuffling and "
      "dropout are always stateless functions of --seed and the step, and a "
      "resumed run skips the batches already seen; with this flag a run "
      "killed at any moment and rerun with the same command ends with "
      "exactly the weights of an uninterrupted run. May be slower.")
  flags.DEFINE_float(
      "divergence_factor", 50.0,
      "Stop (keeping the last good checkpoint) when a step's loss exceeds "
      "this multiple of the median loss of the last 100 steps (a median "
      "below 0.1 counts as 0.1); 0 = only a NaN or Inf loss stops the run.",
      lower_bound=0.0)
  flags.mark_flag_as_required("train_dir")
  flags.register_validator(
      "divergence_factor", lambda v: v == 0 or v > 1,
      message="--divergence_factor must be 0 (off) or > 1")
  flags.register_validator("epochs", lambda v: v > 0,
                           message="--epochs must be > 0")
  flags.register_validator("learning_rate", lambda v: v > 0,
                           message="--learning_rate must be > 0")


# Schedule flags of gradual magnitude pruning, named `<prefix><key>`: the
# prune binary uses no prefix, train and distill use `prune_`.
PRUNING_SCHEDULE_KEYS = ("target_sparsity", "initial_sparsity", "begin_step",
                         "end_step", "frequency", "sparsity_exponent")


def _pruning_flag(prefix, key):
  if key == "frequency" and not prefix:
    return "pruning_frequency"
  return prefix + key


def define_pruning_flags(prefix="prune_"):
  """Flags of gradual magnitude pruning (Zhu & Gupta 2017) and contrib's string.

  Args:
    prefix: "prune_" on the training binaries (`--prune_target_sparsity`),
      "" on the prune binary (`--target_sparsity`).
  """
  name = lambda key: _pruning_flag(prefix, key)
  flags.DEFINE_float(
      name("target_sparsity"), None,
      "Magnitude pruning: fraction of each kernel's weights set to zero at "
      "the end of the schedule, in [0, 1). Unset: no magnitude pruning.")
  flags.DEFINE_float(name("initial_sparsity"), 0.0,
                     "Sparsity at the schedule's begin step, in [0, 1).")
  flags.DEFINE_integer(name("begin_step"), 0,
                       "Step at which pruning masks start to change.",
                       lower_bound=0)
  flags.DEFINE_integer(
      name("end_step"), None,
      "Step at which the schedule reaches the target sparsity and masks stop "
      "changing. Default: two thirds of the run, rounded to a multiple of "
      "the frequency, leaving the last third to recover.")
  flags.DEFINE_integer(name("frequency"), 10,
                       "Steps between two mask updates.", lower_bound=1)
  flags.DEFINE_float(
      name("sparsity_exponent"), 3.0,
      "Exponent of the sparsity schedule: 3 = Zhu & Gupta's cubic, "
      "1 = linear.")
  flags.DEFINE_integer(
      name("min_kernel_size"), 0,
      "Kernels with fewer weights are not magnitude-pruned (e.g. 1000 keeps "
      "MobileNet's small depthwise kernels dense).", lower_bound=0)
  flags.DEFINE_string(
      "pruning_hparams", None,
      "tf.contrib.model_pruning's hparams string, accepted as is (e.g. "
      "begin_pruning_step=0,end_pruning_step=1000,pruning_frequency=10,"
      "target_sparsity=0.9,sparsity_function_end_step=1000); keys keep "
      "contrib's meaning and defaults, unsupported values are refused by "
      "name (docs/pruning.md). Replaces the --%s* schedule flags." %
      (prefix or ""))
  flags.register_validator(
      name("target_sparsity"), lambda v: v is None or 0.0 <= v < 1.0,
      message="--%s must be in [0, 1)" % name("target_sparsity"))
  flags.register_validator(
      name("initial_sparsity"), lambda v: 0.0 <= v < 1.0,
      message="--%s must be in [0, 1)" % name("initial_sparsity"))
  flags.register_validator(
      name("sparsity_exponent"), lambda v: v > 0,
      message="--%s must be > 0" % name("sparsity_exponent"))


def magnitude_pruning_hparams(scope, total_steps, prefix="prune_"):
  """PruningHParams from the pruning flags, or None when pruning is off.

  Args:
    scope: variable scope of the pruned network (its kernels only).
    total_steps: steps of the whole run (for the default end step).
    prefix: as given to `define_pruning_flags`.

  Raises:
    ConfigError: contrib's string together with schedule flags, or an end
      step not after the begin step.
  """
  # pylint: disable=g-import-not-at-top
  from distill_v1.compression import pruning
  # pylint: enable=g-import-not-at-top
  name = lambda key: _pruning_flag(prefix, key)
  value = lambda key: getattr(FLAGS, name(key))
  min_kernel_size = value("min_kernel_size")
  if FLAGS.pruning_hparams is not None:
    given = ["--" + name(k) for k in PRUNING_SCHEDULE_KEYS
             if FLAGS[name(k)].present]
    if given:
      raise errors.ConfigError(
          "--pruning_hparams replaces %s: give one or the other" %
          ", ".join(given))
    return pruning.parse_pruning_hparams(
        FLAGS.pruning_hparams,
        pruning.PruningHParams(scope=scope, min_kernel_size=min_kernel_size),
        source="--pruning_hparams")
  if not value("target_sparsity"):
    return None
  begin, end, frequency = (value("begin_step"), value("end_step"),
                           value("frequency"))
  if end is None:
    end = pruning.default_end_step(total_steps, begin, frequency)
  elif end <= begin:
    raise errors.ConfigError("--%s=%d must be > --%s=%d" %
                             (name("end_step"), end, name("begin_step"),
                              begin))
  return pruning.gradual_pruning_hparams(
      target_sparsity=value("target_sparsity"), begin_step=begin,
      end_step=end, frequency=frequency,
      initial_sparsity=value("initial_sparsity"),
      exponent=value("sparsity_exponent"), scope=scope,
      min_kernel_size=min_kernel_size)


def with_pruning(model_fn, splits):
  """Wraps model_fn with masks when --prune_* asks for it.

  Returns:
    (model_fn, PruningHParams or None).
  """
  from distill_v1.training import loop  # pylint: disable=g-import-not-at-top
  hparams = magnitude_pruning_hparams(
      FLAGS.model, loop.steps_of_run(len(splits.train_labels),
                                     FLAGS.batch_size, FLAGS.epochs))
  if hparams is None:
    return model_fn, None
  from distill_v1.compression import pruning  # pylint: disable=g-import-not-at-top
  return pruning.wrap_model_fn(model_fn, hparams), hparams


def strip_pruning_masks(hparams):
  """After a pruned run: writes <train_dir>/stripped (kernel * mask, no masks)."""
  if hparams is None:
    return None
  # pylint: disable=g-import-not-at-top
  import os
  from distill_v1.compression import pruning
  # pylint: enable=g-import-not-at-top
  result = pruning.strip_masks(FLAGS.train_dir,
                               os.path.join(FLAGS.train_dir, "stripped"),
                               scope=FLAGS.model)
  print("pruned: %.1f%% of the masked weights are zero (%s of %s kept); "
        "plain checkpoint without masks: %s" % (
            100 * result.total_sparsity, format(result.nonzero_weights, ","),
            format(result.total_weights, ","), result.checkpoint))
  return result


def fine_tune_source(purpose):
  """The --checkpoint a fine-tuning binary starts from, and its architecture.

  The network is rebuilt from the checkpoint's model_spec.json, so --model
  (if given) must agree and --width_multiplier must not be given; a
  checkpoint that still holds pruning masks is refused (its stripped/ copy is
  the plain network).

  Args:
    purpose: e.g. "pruning", named in the error messages.

  Returns:
    (checkpoint prefix, model name, model options, spec).

  Raises:
    ConfigError, CheckpointError: as described.
  """
  # pylint: disable=g-import-not-at-top
  from distill_v1 import checkpoints
  from distill_v1.compression import pruning
  # pylint: enable=g-import-not-at-top
  prefix = checkpoints.resolve_checkpoint(FLAGS.checkpoint)
  try:
    spec = checkpoints.read_model_spec(prefix)
  except errors.CheckpointError as e:
    raise errors.ConfigError(
        "--checkpoint=%s: %s; %s rebuilds the network from it" %
        (FLAGS.checkpoint, e, purpose)) from None
  if FLAGS.model and FLAGS.model != spec["model"]:
    raise errors.ConfigError(
        "--model=%s, but --checkpoint=%s holds %s (drop --model)" %
        (FLAGS.model, FLAGS.checkpoint, spec["model"]))
  if FLAGS["width_multiplier"].present:
    raise errors.ConfigError(
        "--width_multiplier: the architecture comes from --checkpoint's "
        "model_spec.json (%s)" % (spec["model_options"],))
  masked = pruning.checkpoint_masks(prefix)
  if masked:
    raise errors.ConfigError(
        "--checkpoint=%s holds pruning masks (%s): point it at the stripped/ "
        "folder of that run" % (FLAGS.checkpoint, ", ".join(masked)))
  return prefix, spec["model"], dict(spec["model_options"] or {}), spec


def check_source_fits_data(source_spec, splits):
  """Refuses a --checkpoint trained on other classes or image shapes."""
  image_shape = [int(d) for d in splits.image_shape]
  if (source_spec["num_classes"] != splits.num_classes or
      list(source_spec["image_shape"]) != image_shape):
    raise errors.ConfigError(
        "--checkpoint=%s was trained on %d classes of %s images, --dataset=%s "
        "has %d classes of %s" %
        (FLAGS.checkpoint, source_spec["num_classes"],
         source_spec["image_shape"], FLAGS.dataset, splits.num_classes,
         image_shape))


def model_options():
  """Options forwarded to `nets_factory.get_network_fn` for --model."""
  if FLAGS.model == "mobilenet_v1":
    return {"width_multiplier": FLAGS.width_multiplier}
  return {}


def model_spec(splits, **extra):
  """The model_spec.json of a run of --model on `splits` (plus `extra`)."""
  from distill_v1 import checkpoints  # pylint: disable=g-import-not-at-top
  return checkpoints.make_model_spec(FLAGS.model, model_options(), splits,
                                     FLAGS.dataset, **extra)


def print_final(metrics):
  """The last line of a training binary."""
  print("final test accuracy %.2f%% (step %d); metrics in %s/metrics.json" %
        (100 * metrics["test_accuracy"], metrics["global_step"],
         FLAGS.train_dir))


def training_config():
  """A `distill_v1.training.loop.TrainConfig` from the flags."""
  from distill_v1.training import loop  # pylint: disable=g-import-not-at-top
  return loop.TrainConfig(
      train_dir=FLAGS.train_dir, epochs=FLAGS.epochs,
      batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
      learning_rate_decay=FLAGS.learning_rate_decay,
      learning_rate_decay_rate=FLAGS.learning_rate_decay_rate,
      warmup_epochs=FLAGS.warmup_epochs, weight_decay=FLAGS.weight_decay,
      optimizer=FLAGS.optimizer, momentum=FLAGS.momentum, seed=FLAGS.seed,
      save_every_steps=FLAGS.save_every_steps,
      log_every_steps=FLAGS.log_every_steps,
      summary_every_steps=FLAGS.summary_every_steps,
      eval_batch_size=FLAGS.eval_batch_size,
      intra_op_threads=FLAGS.intra_op_threads,
      inter_op_threads=FLAGS.inter_op_threads, max_steps=FLAGS.max_steps,
      deterministic=FLAGS.deterministic,
      divergence_factor=FLAGS.divergence_factor, precision=FLAGS.precision,
      xla=FLAGS.xla, fused_updates=FLAGS.fused_updates,
      fast_gradients=FLAGS.fast_gradients)


def xla_environment(environ=None):
  """Adds XLA_CPU_FLAG to TF_XLA_FLAGS; False if TensorFlow is already in.

  On CPU, graph-level XLA acts only when the flag is set before TensorFlow is
  imported, so this runs before the binary's first TensorFlow import.
  """
  environ = os.environ if environ is None else environ
  current = environ.get("TF_XLA_FLAGS", "").split()
  if XLA_CPU_FLAG in current:
    return True
  environ["TF_XLA_FLAGS"] = " ".join(current + [XLA_CPU_FLAG])
  return "tensorflow" not in sys.modules


def _prepare_xla():
  """With --xla, sets TF_XLA_FLAGS before the binary imports TensorFlow."""
  if "xla" in FLAGS and FLAGS.xla and not xla_environment():
    sys.stderr.write("warning: TensorFlow was imported before --xla could "
                     "set TF_XLA_FLAGS=%s; XLA may not act on CPU\n" %
                     XLA_CPU_FLAG)


def run_guarded(binary_name, fn):
  """Runs fn(); a DistillError becomes one line on stderr and its exit code.

  Args:
    binary_name: e.g. "train", printed as the line's prefix.
    fn: callable with no arguments.

  Returns:
    fn's result.
  """

  def on_sigterm(signum, frame):
    del signum, frame
    raise KeyboardInterrupt()

  # SIGTERM (a scheduler stopping the job) behaves like Ctrl-C: the training
  # loop saves a checkpoint before the process ends.
  previous = signal.signal(signal.SIGTERM, on_sigterm)
  try:
    _prepare_xla()
    return fn()
  except errors.DistillError as e:
    sys.stderr.write("%s: error: %s\n" % (binary_name, e))
    sys.stderr.flush()
    sys.exit(e.exit_code)
  except KeyboardInterrupt:
    sys.stderr.write("%s: interrupted\n" % binary_name)
    sys.exit(130)
  finally:
    signal.signal(signal.SIGTERM, previous)


def define_cluster_flags():
  """Flags of TensorFlow 1's between-graph replication (ps + workers)."""
  flags.DEFINE_list(
      "ps_hosts", [],
      "Cluster: comma-separated host:port of the parameter servers. With "
      "--worker_hosts and --job_name the binary runs as one task of a "
      "cluster (alternatively, set the TF_CONFIG environment variable).")
  flags.DEFINE_list("worker_hosts", [],
                    "Cluster: comma-separated host:port of the workers; "
                    "worker 0 is the chief.")
  flags.DEFINE_string(
      "job_name", None,
      "Cluster: this task's job, ps (serves variables until killed) or "
      "worker (trains).")
  flags.DEFINE_integer("task_index", None,
                       "Cluster: this task's index in its job (default 0).")
  flags.DEFINE_bool(
      "sync_replicas", False,
      "Cluster: synchronous training (SyncReplicasOptimizer averages "
      "--replicas_to_aggregate gradients per step) instead of asynchronous.")
  flags.DEFINE_integer(
      "replicas_to_aggregate", None,
      "Cluster, with --sync_replicas: gradients averaged per global step "
      "(default: the number of workers).", lower_bound=1)
  flags.DEFINE_float(
      "save_checkpoint_secs", 0.0,
      "Cluster: the chief checkpoints every N seconds (0 = every "
      "--save_every_steps global steps, or every epoch when that is 0).",
      lower_bound=0.0)
  flags.DEFINE_float(
      "session_wait_secs", 1.0,
      "Cluster: seconds between a worker's checks that the chief has "
      "initialised (or restored) the model.", lower_bound=0.0)
  flags.DEFINE_float(
      "stop_grace_period_secs", 5.0,
      "Cluster: seconds a worker's threads get to stop at the end.",
      lower_bound=0.0)
  flags.DEFINE_float(
      "max_wait_secs", 1800.0,
      "Cluster: how long a worker waits for the parameter servers and the "
      "chief before giving up.", lower_bound=0.0)


def cluster_role():
  """This process's `cluster.ClusterRole` (flags, else TF_CONFIG), or None."""
  from distill_v1.training import cluster  # pylint: disable=g-import-not-at-top
  role = cluster.role_from_args(FLAGS.ps_hosts, FLAGS.worker_hosts,
                                FLAGS.job_name, FLAGS.task_index)
  if role is None:
    cluster_only = [name for name in (
        "sync_replicas", "replicas_to_aggregate", "save_checkpoint_secs")
                    if FLAGS[name].present]
    if cluster_only:
      raise errors.ConfigError(
          "%s: only for a cluster; give --ps_hosts, --worker_hosts and "
          "--job_name (or TF_CONFIG)" %
          ", ".join("--" + n for n in cluster_only))
  return role


def serve_if_parameter_server(role):
  """On a parameter server: serves the variables until killed; returns True."""
  if role is None or role.job_name != "ps":
    return False
  from distill_v1.training import cluster  # pylint: disable=g-import-not-at-top
  server = cluster.start_server(role)
  print("parameter server %s serving on %s (stop it with SIGTERM)" %
        (role.device, role.ps_hosts[role.task_index]), flush=True)
  server.join()
  return True


def refuse_in_cluster(role, names):
  """Refuses flags the cluster loop does not support (by name)."""
  given = [n for n in names if FLAGS[n].present]
  if role is not None and given:
    raise errors.ConfigError(
        "%s: not supported in a cluster (train in one process)" %
        ", ".join("--" + n for n in given))


def train_on_role(role, model_fn, splits, config, spec, train_extras=None):
  """loop.train, or distributed.train as this cluster worker.

  Returns:
    metrics.json's dict; None on a worker other than the chief.
  """
  # pylint: disable=g-import-not-at-top
  from distill_v1.training import cluster
  from distill_v1.training import distributed
  from distill_v1.training import loop
  # pylint: enable=g-import-not-at-top
  if role is None:
    return loop.train(model_fn, splits, config, spec,
                      train_extras=train_extras)
  options = distributed.ClusterOptions(
      sync_replicas=FLAGS.sync_replicas,
      replicas_to_aggregate=FLAGS.replicas_to_aggregate,
      save_checkpoint_secs=FLAGS.save_checkpoint_secs,
      session_wait_secs=FLAGS.session_wait_secs,
      stop_grace_period_secs=FLAGS.stop_grace_period_secs,
      max_wait_secs=FLAGS.max_wait_secs)
  distributed.validate_options(options, role)
  server = cluster.start_server(role)
  metrics = distributed.train(model_fn, splits, config, spec, role,
                              server.target, options,
                              train_extras=train_extras)
  return metrics if role.is_chief else None
