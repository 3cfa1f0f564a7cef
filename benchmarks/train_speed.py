r"""Training examples/sec of each reference model (docs/results.md).

Trains each model with the student recipe (plain SGD, batch 128) for a few
epochs through the train binary and reports the median examples/sec of the
epochs after the first (the first includes graph warm-up), as BENCHMARK.md's
protocol asks. Run it on an otherwise idle machine.

Usage:
  python benchmarks/train_speed.py --epochs=3 \
      --output_json=docs/benchmarks/train_speed.json
"""

import os
import shutil
import sys
import tempfile

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import bench_util
from distill_v1 import fileio
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["mlp_teacher", "mlp_student", "cnn_teacher",
                             "cnn_student"], "Models to time.")
flags.DEFINE_integer("epochs", 3, "Epochs per model (>= 2).")
flags.DEFINE_string("output_json", None, "Where results go.")
flags.DEFINE_bool("with_peer", True,
                  "Also time the Keras 3 peer (benchmarks/keras_peer.py) on "
                  "the same model, right after ours, in the same run.")

LEARNING_RATE = 0.05  # Every model, ours and the peer's.


def _time_peer(model):
  """The peer's figures for `model` (examples/sec, accuracy, peak RSS MB)."""
  family, phase = bench_util.PEER_PHASES[model]
  out = tempfile.mktemp(prefix="peer_%s_" % model, suffix=".json")
  command = bench_util.peer_command(family, phase, out, epochs=FLAGS.epochs,
                                    learning_rate=LEARNING_RATE,
                                    extra=bench_util.model_flags(model))
  rss = bench_util.run_child(command)
  result = bench_util.read_json(out)["phases"][phase]
  os.remove(out)
  return {"examples_per_sec_median": result["examples_per_sec_median"],
          "examples_per_sec_per_epoch": result["examples_per_sec"],
          "test_accuracy": result["test_accuracy"],
          "peak_rss_mb": rss, "command": bench_util.quote(command)}


def main(argv):
  del argv
  results = {"epochs": FLAGS.epochs, "models": {}}
  for model in FLAGS.models:
    train_dir = tempfile.mkdtemp(prefix="speed_%s_" % model)
    rss = bench_util.run_child(bench_util.train_command(
        "train", model, train_dir, LEARNING_RATE, epochs=FLAGS.epochs,
        extra=bench_util.model_flags(model)))
    metrics = bench_util.read_json(os.path.join(train_dir, "metrics.json"))
    shutil.rmtree(train_dir, ignore_errors=True)
    rates = [h["examples_per_sec"] for h in metrics["history"]]
    results["models"][model] = {
        "examples_per_sec_median": metrics["examples_per_sec"],
        "examples_per_sec_per_epoch": rates,
        "epoch_seconds": [h["epoch_seconds"] for h in metrics["history"]],
        "test_accuracy": metrics["test_accuracy"],
        "peak_rss_mb": rss,
    }
    print("%-12s %8s ex/s (epochs: %s)" % (
        model, format(int(metrics["examples_per_sec"]), ","),
        ", ".join(format(int(r), ",") for r in rates)), flush=True)
    if FLAGS.with_peer and model in bench_util.PEER_PHASES:
      peer = _time_peer(model)
      ours = results["models"][model]
      ours["peer"] = peer
      ours["ratio_vs_peer"] = (ours["examples_per_sec_median"] /
                               peer["examples_per_sec_median"])
      print("%-12s %8s ex/s Keras 3 peer; ratio %.2fx" % (
          "", format(int(peer["examples_per_sec_median"]), ","),
          ours["ratio_vs_peer"]), flush=True)
  if FLAGS.output_json:
    fileio.write_json(FLAGS.output_json, results)


if __name__ == "__main__":
  app.run(main)
