r"""Prunes a trained model and fine-tunes it: magnitude and/or structured.

Usage:
  # Gradual magnitude pruning to 80% sparsity while fine-tuning 2 epochs:
  distill-v1-prune --checkpoint=/tmp/cnn_student --train_dir=/tmp/cnn_p80 \
      --target_sparsity=0.8 --epochs=2 --learning_rate=0.05

  # The same schedule in tf.contrib.model_pruning's hparams format:
  distill-v1-prune --checkpoint=/tmp/cnn_student --train_dir=/tmp/cnn_p80 \
      --pruning_hparams=begin_pruning_step=0,end_pruning_step=600,\
pruning_frequency=10,target_sparsity=0.8,sparsity_function_end_step=600

  # Remove half the filters (L1 norm), fine-tune distilling from the original:
  distill-v1-prune --checkpoint=/tmp/cnn_student --train_dir=/tmp/cnn_s50 \
      --structured_fraction=0.5 --distill_from_original --epochs=3

The architecture (model and options) comes from --checkpoint's
model_spec.json; the network is initialised from --checkpoint on the first
run (a rerun with the same --train_dir resumes its own fine-tuned weights and
masks). Magnitude pruning follows Zhu & Gupta's cubic schedule from
--initial_sparsity at --begin_step to --target_sparsity at --end_step, masks
updated every --pruning_frequency steps (steps count from the start of this
fine-tuning run). Structured pruning first writes a physically narrower copy
to <train_dir>/structured_init/ and fine-tunes that.

At the end the masks are folded into the kernels in <train_dir>/stripped/
(a plain checkpoint any binary restores), per-layer sparsity and accuracy
before and after are printed, and <train_dir>/prune_report.json is written.
Measure latency with distill-v1-evaluate --checkpoint=<train_dir>/stripped.
"""

from absl import app
from absl import flags

if __package__:
  from . import common_flags  # pylint: disable=g-import-not-at-top
else:
  import common_flags  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS

common_flags.define_training_flags(default_model=None,
                                   default_learning_rate=0.05)
flags.DEFINE_string(
    "checkpoint", None,
    "The trained model to prune: a checkpoint prefix or a training directory "
    "(its latest checkpoint) with model_spec.json beside it.")
common_flags.define_pruning_flags(prefix="")
flags.DEFINE_float(
    "structured_fraction", 0.0,
    "Structured pruning: fraction of the filters / units / channels removed "
    "from every layer but the logits, lowest L1 norm first, in [0, 1).")
flags.DEFINE_bool(
    "distill_from_original", False,
    "Fine-tune by distillation with the unpruned --checkpoint as teacher "
    "(--temperature, --alpha) instead of the labels alone.")
flags.DEFINE_float("temperature", 4.0,
                   "With --distill_from_original: softmax temperature T > 0.")
flags.DEFINE_float(
    "alpha", 0.1,
    "With --distill_from_original: weight of the hard-label loss in [0, 1].")

flags.mark_flag_as_required("checkpoint")
flags.register_validator("structured_fraction", lambda v: 0.0 <= v < 1.0,
                         message="--structured_fraction must be in [0, 1)")
flags.register_validator("temperature", lambda t: t > 0,
                         message="--temperature must be > 0")
flags.register_validator("alpha", lambda a: 0.0 <= a <= 1.0,
                         message="--alpha must be in [0, 1]")

def measure(prefix, model, options, splits):
  """Test accuracy, trainable parameters and FLOPs of a plain checkpoint."""
  from distill_v1.evaluation import evaluate_lib  # pylint: disable=g-import-not-at-top
  result = evaluate_lib.evaluate_checkpoint(
      prefix, splits=splits, model=model, model_options=options,
      batch_size=FLAGS.eval_batch_size, latency_batch_sizes=())
  return {"checkpoint": prefix, "test_accuracy": result["test_accuracy"],
          "params": result["params"],
          "flops_per_example": result["flops_per_example"]}


def _line(label, m):
  return "%-26s test accuracy %6.2f%%  params %s  FLOPs %s" % (
      label, 100 * m["test_accuracy"], format(m["params"], ","),
      format(m["flops_per_example"], ","))


def prune_model():
  """Prunes --checkpoint into --train_dir; returns the report dict."""
  # pylint: disable=g-import-not-at-top
  import collections
  import functools
  import math
  import os
  from distill_v1 import checkpoints
  from distill_v1 import errors
  from distill_v1 import fileio
  from distill_v1.compression import pruning
  from distill_v1.compression import structured
  from distill_v1.data import datasets
  from distill_v1.models import nets_factory
  from distill_v1.teachers import checkpoint_teacher
  from distill_v1.training import distillation
  from distill_v1.training import loop
  # pylint: enable=g-import-not-at-top
  config = common_flags.training_config()
  loop.validate_config(config)
  source, model, options, source_spec = common_flags.fine_tune_source(
      "pruning")
  splits = datasets.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir,
                                 validation_size=FLAGS.validation_size,
                                 seed=FLAGS.seed)
  common_flags.check_source_fits_data(source_spec, splits)
  total_steps = loop.steps_of_run(len(splits.train_labels),
                                  config.batch_size, config.epochs)
  if config.max_steps:
    total_steps = min(total_steps, config.max_steps)
  hparams = common_flags.magnitude_pruning_hparams(model, total_steps,
                                                   prefix="")
  if hparams is None and not FLAGS.structured_fraction:
    raise errors.ConfigError(
        "nothing to prune: give --target_sparsity > 0, --pruning_hparams or "
        "--structured_fraction > 0")

  fresh = checkpoints.latest_checkpoint(FLAGS.train_dir) is None
  report = collections.OrderedDict([("model", model), ("source", source)])
  report["before"] = measure(source, model, options, splits)
  print(_line("source (%s)" % model, report["before"]))

  init_prefix, new_options = source, options
  if FLAGS.structured_fraction:
    plan = structured.plan_structured_pruning(
        source, model, options, FLAGS.structured_fraction,
        image_shape=splits.image_shape, num_classes=splits.num_classes)
    new_options = plan.new_model_options
    init_dir = os.path.join(FLAGS.train_dir, "structured_init")
    if fresh:
      init_prefix = structured.apply_structured_pruning(
          plan, init_dir).checkpoint
      report["structured"] = measure(init_prefix, model, new_options, splits)
      report["structured"]["channels"] = collections.OrderedDict(
          (g.name, [g.channels, int(len(g.keep))]) for g in plan.groups)
      print(_line("structured %g%% (no tuning)" %
                  (100 * FLAGS.structured_fraction), report["structured"]))
      print("  channels: " + ", ".join(
          "%s %d->%d" % (k, v[0], v[1])
          for k, v in report["structured"]["channels"].items()))

  student_fn = nets_factory.get_network_fn(model, **new_options)
  if FLAGS.distill_from_original:
    teacher = functools.partial(
        checkpoint_teacher.build_checkpoint_teacher, model=model,
        checkpoint=source, num_classes=splits.num_classes,
        model_options=options, scope="teacher")
    model_fn = distillation.distillation_model_fn(
        student_fn, splits.num_classes, model, [teacher],
        temperature=FLAGS.temperature, alpha=FLAGS.alpha)
  else:
    model_fn = loop.classifier_model_fn(student_fn, splits.num_classes,
                                        scope=model)
  if hparams is not None:
    model_fn = pruning.wrap_model_fn(model_fn, hparams)
  if fresh:
    model_fn = pruning.init_from_checkpoint(model_fn, init_prefix, model)
  spec = checkpoints.make_model_spec(
      model, new_options, splits, FLAGS.dataset, pruned_from=source,
      pruning_hparams=(pruning.hparams_dict(hparams)
                       if hparams is not None else None),
      structured_fraction=FLAGS.structured_fraction)
  if FLAGS.distill_from_original:
    spec.update(distilled_from=["%s:%s" % (model, source)],
                temperature=FLAGS.temperature, alpha=FLAGS.alpha)
  if hparams is not None:
    print("magnitude pruning: sparsity %.2f -> %.2f over steps %d-%d (curve "
          "%d-%d, exponent %g), masks every %d steps, scope %s" %
          (hparams.initial_sparsity, hparams.target_sparsity,
           hparams.begin_step, hparams.end_step,
           hparams.sparsity_function_begin_step,
           hparams.sparsity_function_end_step,
           hparams.sparsity_function_exponent, hparams.frequency,
           hparams.scope))
  metrics = loop.train(model_fn, splits, config, spec)

  stripped = pruning.strip_masks(FLAGS.train_dir,
                                 os.path.join(FLAGS.train_dir, "stripped"),
                                 scope=model)
  report["after"] = measure(stripped.checkpoint, model, new_options, splits)
  report["after"]["nonzero_weights"] = stripped.nonzero_weights
  report["after"]["masked_weights"] = stripped.total_weights
  report["after"]["sparsity"] = stripped.total_sparsity
  report["sparsity"] = collections.OrderedDict(
      (k, v) for k, v in stripped.sparsity.items())
  report["global_step"] = metrics["global_step"]
  report["flags"] = {
      "structured_fraction": FLAGS.structured_fraction,
      "pruning_hparams": spec["pruning_hparams"],
      "distill_from_original": FLAGS.distill_from_original,
  }
  fileio.write_json(os.path.join(FLAGS.train_dir, "prune_report.json"), report)

  if stripped.sparsity:
    print("%-40s %10s %10s %9s" % ("kernel", "weights", "non-zero",
                                   "sparsity"))
    reader_shapes = pruning.checkpoint_shapes(stripped.checkpoint)
    for name, fraction in stripped.sparsity.items():
      size = int(math.prod(reader_shapes[name]))
      print("%-40s %10s %10s %8.2f%%" % (
          name, format(size, ","), format(int(round(size * (1 - fraction))),
                                          ","), 100 * fraction))
    print("%-40s %10s %10s %8.2f%%" % (
        "total", format(stripped.total_weights, ","),
        format(stripped.nonzero_weights, ","), 100 * stripped.total_sparsity))
  print(_line("pruned + fine-tuned", report["after"]))
  print("test accuracy %.2f%% -> %.2f%% (%+.2f points); stripped checkpoint "
        "%s; report in %s" % (
            100 * report["before"]["test_accuracy"],
            100 * report["after"]["test_accuracy"],
            100 * (report["after"]["test_accuracy"] -
                   report["before"]["test_accuracy"]),
            stripped.checkpoint,
            os.path.join(FLAGS.train_dir, "prune_report.json")))
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  common_flags.run_guarded("prune", prune_model)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
