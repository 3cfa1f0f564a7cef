r"""Evaluates a trained checkpoint: accuracy, loss, size, FLOPs and latency.

Rebuilds the network from `model_spec.json` beside the checkpoint, restores
it, scores the test split, prints a table (accuracies in percent) and writes
the figures as JSON (accuracies as fractions).

Usage:
  distill-v1-evaluate --checkpoint=/tmp/cnn_student
  distill-v1-evaluate --checkpoint=/tmp/cnn_student/model.ckpt-4690 \
      --output_json=/tmp/reports/cnn_student.json --latency_repeats=200

`--checkpoint` is a checkpoint prefix or a training directory (its latest
checkpoint is used). The JSON keys are: model, checkpoint, global_step,
test_accuracy, test_loss, params, flops_per_example (2 x multiply-adds of a
batch-1 inference pass), checkpoint_bytes, latency_ms (batch_1, batch_128:
median milliseconds per session run), per_class_accuracy, num_test_examples.

Bad input ends with one line `evaluate: error: ...` on stderr and the error's
exit code (2 data, 3 configuration, 4 checkpoint, 6 output file).
"""

from absl import app
from absl import flags

if __package__:
  from . import common_flags  # pylint: disable=g-import-not-at-top
else:
  import common_flags  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "checkpoint", None,
    "Checkpoint prefix (dir/model.ckpt-<step>) or training directory (its "
    "latest checkpoint is used).")
flags.DEFINE_string(
    "dataset", "fashion_mnist",
    "Data set whose test split is scored: fashion_mnist, mnist or npz:PATH. "
    "When the flag is not given, the data set recorded in model_spec.json is "
    "used (then this default).")
flags.DEFINE_string(
    "data_dir", None,
    "Folder with the data set files. Default: $DISTILL_V1_DATA, then "
    "/usr/share/datasets/fashion-mnist/, then the Keras cache, then a "
    "download.")
# --model (default: the spec's) and --width_multiplier, as in the trainers.
common_flags.define_model_flags(default_model=None)
flags.declare_key_flag("model")  # listed by --helpshort with the others
flags.declare_key_flag("width_multiplier")
flags.DEFINE_integer("batch_size", 500,
                     "Examples per session run of the accuracy pass.")
flags.DEFINE_string(
    "output_json", None,
    "Where the JSON results go (default: <checkpoint dir>/eval.json).")
# Same as distill_v1.evaluation.latency.DEFAULT_REPEATS (not imported here so
# that `--helpfull` does not need TensorFlow to start).
flags.DEFINE_integer(
    "latency_repeats", 50,
    "Timed runs per latency batch size (1 and 128); the median is reported.")

flags.mark_flag_as_required("checkpoint")
flags.register_validator("checkpoint", bool,
                         message="--checkpoint must not be empty")
flags.register_validator("batch_size", lambda value: value >= 1,
                         message="--batch_size must be >= 1")
flags.register_validator("latency_repeats", lambda value: value >= 1,
                         message="--latency_repeats must be >= 1")
flags.register_validator(
    "output_json", lambda value: value is None or bool(value.strip()),
    message="--output_json must not be empty (leave it out for the default)")


def evaluate():
  """Evaluates --checkpoint, prints the table and writes the JSON file."""
  # pylint: disable=g-import-not-at-top
  from distill_v1.evaluation import evaluate_lib
  # Explicit flags win; otherwise model_spec.json decides (a default
  # --dataset or --width_multiplier must not override what was trained).
  model_options = None
  if FLAGS["width_multiplier"].present:
    model_options = {"width_multiplier": FLAGS.width_multiplier}
  result = evaluate_lib.evaluate_checkpoint(
      FLAGS.checkpoint,
      model=FLAGS.model,
      model_options=model_options,
      batch_size=FLAGS.batch_size,
      latency_repeats=FLAGS.latency_repeats,
      dataset=FLAGS.dataset if FLAGS["dataset"].present else None,
      data_dir=FLAGS.data_dir)
  output_json = FLAGS.output_json or evaluate_lib.default_json_path(result)
  print(evaluate_lib.format_table(result))
  evaluate_lib.write_json(result, output_json)
  print("wrote %s" % output_json)
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  common_flags.run_guarded("evaluate", evaluate)


def run():
  """Console-script entry point (`distill-v1-evaluate`)."""
  app.run(main)


if __name__ == "__main__":
  run()
