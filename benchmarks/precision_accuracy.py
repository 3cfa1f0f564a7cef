r"""What --precision=bfloat16 costs in accuracy and gains in speed.

Runs, for each case, the same command twice, once per precision, one after
the other (same seeds, same data), and records test accuracy and the median
examples/sec of the epochs after the first. Cases follow BENCHMARK.md's
recipes (students: plain SGD, 5 / 10 epochs) and a short teacher run; the
distillation case distills from the teacher trained in float32 by the
teacher case.

Usage:
  python benchmarks/precision_accuracy.py \
      --output_json=docs/benchmarks/precision.json
"""

import os
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import bench_util  # pylint: disable=g-import-not-at-top,wrong-import-position
from distill_v1 import fileio  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_list("cases", ["mlp_student", "cnn_student", "cnn_teacher",
                            "cnn_distill"], "Cases to run (see CASES).")
flags.DEFINE_list("precisions", ["float32", "bfloat16"], "Precisions.")
flags.DEFINE_string("scratch_dir", None, "Where the runs go (default: a "
                    "temporary directory).")
flags.DEFINE_string("output_json", None, "Where results go.")

# name -> (binary, flags). "{teacher}" is the float32 cnn_teacher run's dir.
CASES = {
    "mlp_student": ("train", ["--model=mlp_student", "--epochs=5",
                              "--learning_rate=0.1"]),
    "cnn_student": ("train", ["--model=cnn_student", "--epochs=10",
                              "--learning_rate=0.05"]),
    "cnn_teacher": ("train", ["--model=cnn_teacher", "--epochs=3",
                              "--optimizer=momentum", "--learning_rate=0.02",
                              "--weight_decay=5e-4"]),
    "cnn_distill": ("distill", ["--model=cnn_student", "--epochs=10",
                                "--learning_rate=0.05",
                                "--teacher_model=cnn_teacher",
                                "--teacher_checkpoint={teacher}",
                                "--temperature=8", "--alpha=0.5"]),
}


def _run(binary, args, train_dir, precision):
  command = [sys.executable, "scripts/%s.py" % binary,
             "--train_dir=" + train_dir, "--precision=" + precision,
             "--seed=1"] + list(bench_util.QUIET_TRAINING_FLAGS) + args
  bench_util.run_child(command)
  metrics = bench_util.read_json(os.path.join(train_dir, "metrics.json"))
  rates = [h["examples_per_sec"] for h in metrics["history"]]
  return {"command": bench_util.quote(command),
          "test_accuracy": metrics["test_accuracy"],
          "examples_per_sec": float(np.median(rates[1:] or rates)),
          "examples_per_sec_per_epoch": rates}


def main(argv):
  del argv
  scratch = FLAGS.scratch_dir or tempfile.mkdtemp(prefix="precision_")
  teacher = os.path.join(scratch, "cnn_teacher_float32")
  results = {"cases": {}}
  for case in FLAGS.cases:
    binary, args = CASES[case]
    if "{teacher}" in " ".join(args) and not os.path.isdir(teacher):
      raise app.UsageError("cnn_distill needs the cnn_teacher case first")
    row = {}
    for precision in FLAGS.precisions:
      row[precision] = _run(binary, [a.format(teacher=teacher) for a in args],
                            os.path.join(scratch, "%s_%s" % (case, precision)),
                            precision)
      print("%-12s %-8s test accuracy %.2f%%  %s ex/s" % (
          case, precision, 100 * row[precision]["test_accuracy"],
          format(int(row[precision]["examples_per_sec"]), ",")), flush=True)
    if set(row) >= {"float32", "bfloat16"}:
      row["accuracy_points_bf16_minus_f32"] = 100 * (
          row["bfloat16"]["test_accuracy"] - row["float32"]["test_accuracy"])
      row["speedup_bf16"] = (row["bfloat16"]["examples_per_sec"] /
                             row["float32"]["examples_per_sec"])
    results["cases"][case] = row
  if FLAGS.output_json:
    fileio.write_json(FLAGS.output_json, results)


if __name__ == "__main__":
  app.run(main)
