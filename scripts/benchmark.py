r"""Measures what this machine can do and how close training gets to it.

Usage:
  distill-v1-benchmark --what=matmul,input,train --epochs=3 \
      --output_json=benchmark.json

matmul: the float32 [128, 784] x [784, 1200] product in numpy and in a
TensorFlow session loop (GFLOP/s, medians). input: examples/sec of the
graph-mode input pipeline alone. train: examples/sec of training each
--models network through the training loop, with its useful GFLOP/s (3 x the
forward FLOPs per example) as a fraction of the TensorFlow matmul ceiling.
The side-by-side comparison with the Keras 3 peer lives in benchmarks/ of a
source checkout (it needs Keras, which the library never imports).
"""

from absl import app
from absl import flags

if __package__:
  from . import common_flags  # pylint: disable=g-import-not-at-top
else:
  import common_flags  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
WHAT = ("matmul", "input", "train")

flags.DEFINE_list("what", list(WHAT), "Measurements: %s." % ", ".join(WHAT))
flags.DEFINE_list("models", ["mlp_teacher", "mlp_student", "cnn_teacher",
                             "cnn_student"], "Networks timed by --what=train.")
common_flags.define_data_flags()
flags.DEFINE_float("epochs", 3.0, "Training epochs per model (>= 2).")
flags.DEFINE_integer("batch_size", 128, "Examples per step.", lower_bound=1)
flags.DEFINE_integer("repeats", 50, "Timed matmul runs.", lower_bound=1)
flags.DEFINE_string("output_json", None, "Where the results go.")
flags.register_validator("what", lambda v: bool(v) and set(v) <= set(WHAT),
                         message="--what takes matmul, input and/or train")
flags.register_validator("epochs", lambda v: v >= 2,
                         message="--epochs must be >= 2 (the first epoch is "
                         "warm-up)")


def benchmark():
  """Runs the measurements, prints them, writes the JSON."""
  # pylint: disable=g-import-not-at-top
  from distill_v1 import fileio
  from distill_v1.data import datasets
  from distill_v1.evaluation import speed
  from distill_v1.models import nets_factory
  # pylint: enable=g-import-not-at-top
  for model in FLAGS.models:
    nets_factory.get_network_fn(model)
  results = {}
  if "matmul" in FLAGS.what:
    for backend in ("numpy", "tensorflow"):
      results["matmul_" + backend] = speed.matmul_gflops(
          backend, repeats=FLAGS.repeats)
      print("matmul %-10s %7.1f GFLOP/s (median; %.1f-%.1f)" % (
          backend, results["matmul_" + backend]["gflops"],
          results["matmul_" + backend]["gflops_min"],
          results["matmul_" + backend]["gflops_max"]))
  splits = None
  if "input" in FLAGS.what or "train" in FLAGS.what:
    splits = datasets.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir,
                                   validation_size=FLAGS.validation_size)
  if "input" in FLAGS.what:
    results["input"] = speed.input_examples_per_sec(
        splits.train_images, splits.train_labels, FLAGS.batch_size)
    print("input pipeline alone: %s examples/sec one batch per sess.run, "
          "%s examples/sec drained in the graph" % (
              format(int(results["input"]["examples_per_sec"]), ","),
              format(int(results["input"]["examples_per_sec_in_graph"]),
                     ",")))
  if "train" in FLAGS.what:
    ceiling = results.get("matmul_tensorflow", {}).get("gflops")
    results["train"] = {}
    for model in FLAGS.models:
      row = speed.training_examples_per_sec(
          model, splits, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size)
      if ceiling:
        row["fraction_of_matmul_ceiling"] = row["training_gflops"] / ceiling
      results["train"][model] = row
      print("train %-12s %8s examples/sec  %6.1f GFLOP/s%s" % (
          model, format(int(row["examples_per_sec"]), ","),
          row["training_gflops"],
          "  (%.0f%% of the matmul ceiling)" %
          (100 * row["fraction_of_matmul_ceiling"]) if ceiling else ""))
  if FLAGS.output_json:
    fileio.write_json(FLAGS.output_json, results)
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
  common_flags.run_guarded("benchmark", benchmark)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
