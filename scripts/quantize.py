r"""Quantization-aware training of a trained model, then its int8 export.

Usage:
  # Fine-tune a trained cnn_student one epoch with 8-bit fake quantization,
  # then export every format (model_int8.tflite from the trained ranges):
  distill-v1-quantize --checkpoint=/tmp/cnn_student --train_dir=/tmp/cnn_qat

  distill-v1-quantize --checkpoint=/tmp/cnn_student --train_dir=/tmp/cnn_qat \
      --epochs=2 --learning_rate=0.005 --ema_decay=0.995 \
      --output_dir=/tmp/cnn_qat_export --formats=frozen_graph,int8

The architecture (model and options) comes from --checkpoint's
model_spec.json; the network starts from --checkpoint's weights on the first
run (a rerun with the same --train_dir resumes its own fine-tuned weights
and ranges). While fine-tuning, every kernel is fake-quantized to 8 bits on
the symmetric range of its own values, and layer inputs, activated outputs
and the logits to ranges that follow an exponential moving average of the
batch ranges (--ema_decay); distill_v1/compression/quantize.py explains the
details.

Then the QAT checkpoint is exported like distill-v1-export does (to
--output_dir, default <train_dir>/export): the inference graph holds the
same fake-quant ops with the trained ranges, and model_int8.tflite takes its
quantization parameters from them (int8 input: pixels [0, 1], scale 1/255,
zero point -128; int8 output: the logits' trained range). Every file is
verified in its real runtime against the QAT session (int8 within 1 point;
--noverify skips it; every format's logits may differ from the session's
by a quantization step or two, where float round-off meets a rounding
boundary). The float, QAT-session and int8 test accuracies and
the sizes are printed, and <train_dir>/quantize_report.json is written.

Bad input ends with one line `quantize: error: ...` on stderr and the
error's exit code (2 data, 3 configuration, 4 checkpoint, 6 export).
"""

from absl import app
from absl import flags

if __package__:
  from . import common_flags  # pylint: disable=g-import-not-at-top
else:
  import common_flags  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS

common_flags.define_training_flags(default_model=None,
                                   default_learning_rate=0.01)
# Fine-tuning, not training from scratch: one epoch unless told otherwise.
FLAGS.set_default("epochs", 1.0)
flags.DEFINE_string(
    "checkpoint", None,
    "The trained float model: a checkpoint prefix or a training directory "
    "(its latest checkpoint) with model_spec.json beside it.")
flags.DEFINE_float(
    "ema_decay", 0.99,
    "Decay of the moving averages of the activation ranges, in [0, 1): "
    "range <- range - (1 - ema_decay) * (range - batch range) after each "
    "step (the first step sets the batch range).")
flags.DEFINE_boolean("export", True,
                     "Export the QAT checkpoint after fine-tuning.")
common_flags.define_export_flags("<train_dir>/export")
flags.DEFINE_integer(
    "num_calibration_examples", 200,
    "Training images handed to the converter with the int8 conversion (the "
    "trained ranges decide the quantization; these only fill a range a "
    "tensor without fake quant lacks).", lower_bound=1)

flags.mark_flag_as_required("checkpoint")
flags.register_validator("checkpoint", bool,
                         message="--checkpoint must not be empty")
flags.register_validator("ema_decay", lambda v: 0.0 <= v < 1.0,
                         message="--ema_decay must be in [0, 1)")


def _bytes(n):
  return "{:,}".format(n)


def quantize_model():
  """Fine-tunes --checkpoint with fake quantization and exports it."""
  # pylint: disable=g-import-not-at-top
  import collections
  import os
  from distill_v1 import checkpoints
  from distill_v1 import errors
  from distill_v1 import fileio
  from distill_v1.compression import pruning
  from distill_v1.compression import quantize
  from distill_v1.data import datasets
  from distill_v1.evaluation import evaluate_lib
  from distill_v1.evaluation import verify
  from distill_v1.export import export_lib
  from distill_v1.models import nets_factory
  from distill_v1.training import loop
  # pylint: enable=g-import-not-at-top
  config = common_flags.training_config()
  loop.validate_config(config)
  source, model, options, source_spec = common_flags.fine_tune_source(
      "quantization")
  out_dir = FLAGS.output_dir or os.path.join(FLAGS.train_dir, "export")
  formats = export_lib.parse_formats(FLAGS.formats)
  if FLAGS.export and not FLAGS.overwrite:
    # Refused before fine-tuning rather than after it.
    existing = export_lib.existing_targets(out_dir, formats)
    if existing:
      raise errors.ExportError(
          "export target(s) already exist in %s: %s; pass --overwrite or "
          "another --output_dir" % (out_dir, ", ".join(existing)))
  splits = datasets.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir,
                                 validation_size=FLAGS.validation_size,
                                 seed=FLAGS.seed)
  common_flags.check_source_fits_data(source_spec, splits)

  hparams = quantize.validate_hparams(
      quantize.QuantizeHParams(scope=model, ema_decay=FLAGS.ema_decay),
      source="--ema_decay")
  network_fn = nets_factory.get_network_fn(model, **options)
  report = collections.OrderedDict([("model", model), ("source", source)])
  report["float_test_accuracy"] = evaluate_lib.evaluate_checkpoint(
      source, splits=splits, model=model, model_options=options,
      batch_size=FLAGS.eval_batch_size,
      latency_batch_sizes=())["test_accuracy"]
  print("source (%s)  float test accuracy %.2f%%" %
        (model, 100 * report["float_test_accuracy"]))

  fresh = checkpoints.latest_checkpoint(FLAGS.train_dir) is None
  model_fn = quantize.wrap_model_fn(
      loop.classifier_model_fn(network_fn, splits.num_classes, scope=model),
      hparams)
  if fresh:
    model_fn = pruning.init_from_checkpoint(model_fn, source, model)
  spec = checkpoints.make_model_spec(
      model, options, splits, FLAGS.dataset, quantized_from=source,
      quantization=quantize.hparams_dict(hparams))
  print("quantization-aware training: 8-bit weights (symmetric, per kernel) "
        "and activations (moving-average ranges, decay %g), scope %s" %
        (hparams.ema_decay, model))
  metrics = loop.train(model_fn, splits, config, spec)
  report["qat_test_accuracy"] = metrics["test_accuracy"]
  report["global_step"] = metrics["global_step"]
  print("QAT fine-tuned (session)  test accuracy %.2f%% (%+.2f points vs "
        "float)" % (100 * metrics["test_accuracy"],
                    100 * (metrics["test_accuracy"] -
                           report["float_test_accuracy"])))

  if FLAGS.export:
    hooks = quantize.inference_hooks(hparams)
    verifier = None
    if FLAGS.verify:
      # Fake quant turns float round-off into whole quantization steps now
      # and then: the logits of every format may differ from the session's
      # by a step or two (accuracy and argmax agreement keep their bounds).
      tolerances = dict(
          (name, tolerance._replace(max_logit_error=max(
              tolerance.max_logit_error,
              quantize.FLOAT_EXPORT_LOGIT_TOLERANCE)))
          for name, tolerance in verify.TOLERANCES.items())
      verifier = verify.Verifier(num_compare=FLAGS.num_compare_examples,
                                 latency_repeats=FLAGS.latency_repeats,
                                 max_test_examples=FLAGS.max_test_examples,
                                 tolerances=tolerances)
    manifest = export_lib.export_checkpoint(
        FLAGS.train_dir, out_dir, formats=formats, overwrite=FLAGS.overwrite,
        model=model, model_options=options,
        network_fn=hooks.wrap_network_fn(network_fn), scope=model,
        custom_getter=hooks.custom_getter, graph_hook=hooks.graph_hook,
        configure_converter=hooks.configure_converter, splits=splits,
        num_calibration_examples=FLAGS.num_calibration_examples,
        seed=FLAGS.seed, verifier=verifier)
    report["export"] = collections.OrderedDict([
        ("output_dir", manifest["output_dir"]),
        ("files", manifest["files"]),
        ("tflite", manifest["tflite"]),
    ])
    if verifier is not None:
      print(verify.format_report(manifest["verification"]))
      report["export"]["verification"] = collections.OrderedDict(
          (name, collections.OrderedDict(
              (k, row.get(k)) for k in ("test_accuracy",
                                        "accuracy_delta_points",
                                        "argmax_agreement",
                                        "max_logit_error", "file_bytes",
                                        "gzip_bytes")))
          for name, row in manifest["verification"]["formats"].items())
    else:
      for name, entry in manifest["files"].items():
        print("%-14s %-28s %12s bytes" % (name, entry["path"],
                                          _bytes(entry["bytes"])))
    int8 = manifest["tflite"].get("int8")
    if int8:
      for kind in ("inputs", "outputs"):
        for detail in int8[kind]:
          print("int8 %s %s: %s scale %.6g zero point %d" % (
              kind[:-1], detail["name"], detail["dtype"], detail["scale"],
              detail["zero_point"]))
      line = "model_int8.tflite  %s bytes" % _bytes(
          manifest["files"]["int8"]["bytes"])
      if "float32" in manifest["files"]:
        line += " (float32 TFLite %s bytes)" % _bytes(
            manifest["files"]["float32"]["bytes"])
      if verifier is not None:
        row = manifest["verification"]["formats"]["int8"]
        line += ", test accuracy %.2f%% (%+.2f points vs the QAT session)" % (
            100 * row["test_accuracy"], row["accuracy_delta_points"])
      print(line)
  path = os.path.join(FLAGS.train_dir, "quantize_report.json")
  fileio.write_json(path, report)
  print("report in %s" % path)
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  common_flags.run_guarded("quantize", quantize_model)


def run():
  """Console-script entry point (`distill-v1-quantize`)."""
  app.run(main)


if __name__ == "__main__":
  run()
