r"""The distillation benchmark of docs/results.md (BENCHMARK.md's protocol).

For one family (mlp or cnn) and its trained teacher:
  1. tuning: T and alpha chosen by the distilled student's accuracy on a
     validation split held out from the training set (never the test set);
  2. comparison: the student alone and the distilled student (chosen T and
     alpha, the student recipe: plain SGD, same seeds and initialisation),
     test accuracy over several seeds; online and cached distillation
     examples/sec.
Every run is a subprocess of the project's own binaries; the exact commands
are stored in the output JSON and printed.

Usage:
  python benchmarks/distill_benchmark.py --family=cnn \
      --teacher_checkpoint=/work/runs/cnn_teacher --runs_dir=/work/runs/bench \
      --output_json=docs/benchmarks/distill_cnn.json
"""

import itertools
import json
import os
import shlex
import subprocess
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from distill_v1 import fileio  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
KINDS = ("student_alone", "distilled", "distilled_cached")

# The student recipe of BENCHMARK.md.
RECIPES = {
    "mlp": {"model": "mlp_student", "learning_rate": 0.1, "epochs": 5},
    "cnn": {"model": "cnn_student", "learning_rate": 0.05, "epochs": 10},
}

flags.DEFINE_enum("family", "cnn", sorted(RECIPES), "Model family.")
flags.DEFINE_string("teacher_checkpoint", None, "The family's teacher.")
flags.DEFINE_string("runs_dir", "/work/runs/bench",
                    "Where the benchmark's train dirs go.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Student seeds.")
flags.DEFINE_list("temperatures", ["2", "4", "8"], "T values tried.")
flags.DEFINE_list("alphas", ["0.1", "0.5"], "alpha values tried.")
flags.DEFINE_integer("validation_size", 5000,
                     "Training examples held out for tuning.")
flags.DEFINE_string("temperature", None,
                    "Skip tuning and use this T (with --alpha).")
flags.DEFINE_string("alpha", None, "Skip tuning and use this alpha.")
flags.DEFINE_bool("tune_cached", False, "Tune with cached teacher logits "
                  "(--teacher_logits_cache over the training set less the "
                  "validation split): the same loss, without running the "
                  "teacher in every tuning run.")
flags.DEFINE_list("kinds", list(KINDS), "Runs of the comparison, per seed: "
                  "%s. An empty --seeds runs only the tuning." %
                  ", ".join(KINDS))
flags.DEFINE_string("output_json", None, "Where results go.")
flags.DEFINE_string("python", sys.executable, "Interpreter of the binaries.")
flags.mark_flag_as_required("teacher_checkpoint")
flags.register_validator("kinds", lambda v: set(v) <= set(KINDS),
                         message="--kinds takes %s" % ", ".join(KINDS))


def _run(binary, args):
  """Runs scripts/<binary>.py; returns (metrics dict, command, seconds)."""
  command = [FLAGS.python, os.path.join("scripts", binary + ".py")] + args
  text = " ".join(shlex.quote(c) for c in command)
  print("$ " + text, flush=True)
  start = time.time()
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          check=False)
  seconds = time.time() - start
  if result.returncode != 0:
    sys.stderr.write(result.stdout[-2000:] + result.stderr[-4000:])
    raise SystemExit("benchmark: %s failed" % binary)
  train_dir = [a for a in args if a.startswith("--train_dir=")][0].split(
      "=", 1)[1]
  with open(os.path.join(train_dir, "metrics.json")) as f:
    metrics = json.load(f)
  print("   -> test %.2f%%  validation %s  %s ex/s  (%.0f s)" % (
      100 * metrics["test_accuracy"],
      "-" if metrics.get("validation_accuracy") is None else
      "%.2f%%" % (100 * metrics["validation_accuracy"]),
      format(int(metrics["examples_per_sec"]), ","), seconds), flush=True)
  return metrics, text, seconds


def _student_args(recipe, train_dir, seed, validation_size):
  return ["--model=%s" % recipe["model"], "--train_dir=%s" % train_dir,
          "--epochs=%s" % recipe["epochs"],
          "--learning_rate=%s" % recipe["learning_rate"], "--optimizer=sgd",
          "--seed=%s" % seed, "--validation_size=%d" % validation_size,
          "--log_every_steps=100000", "--save_every_steps=0"]


def _summary(values):
  values = sorted(values)
  mean = sum(values) / len(values)
  spread = (max(values) - min(values)) / 2 if len(values) > 1 else 0.0
  return {"mean": mean, "min": values[0], "max": values[-1],
          "half_range": spread, "values": values}


def main(argv):
  del argv
  recipe = RECIPES[FLAGS.family]
  base = os.path.join(FLAGS.runs_dir, FLAGS.family)
  teacher = "--teacher_checkpoint=%s" % FLAGS.teacher_checkpoint
  results = {"family": FLAGS.family, "recipe": recipe,
             "teacher_checkpoint": FLAGS.teacher_checkpoint, "runs": []}

  def record(kind, metrics, command, seconds, **extra):
    entry = {"kind": kind, "command": command, "seconds": seconds,
             "test_accuracy": metrics["test_accuracy"],
             "validation_accuracy": metrics.get("validation_accuracy"),
             "examples_per_sec": metrics["examples_per_sec"]}
    entry.update(extra)
    results["runs"].append(entry)
    return entry

  # 1. Tuning on the validation split (seed 0).
  if FLAGS.temperature and FLAGS.alpha:
    best = (float(FLAGS.temperature), float(FLAGS.alpha))
  else:
    scores = {}
    args = _student_args(recipe, os.path.join(base, "tune_alone"), 0,
                         FLAGS.validation_size)
    metrics, command, seconds = _run("train", args)
    record("tune_student_alone", metrics, command, seconds)
    for t, a in itertools.product(FLAGS.temperatures, FLAGS.alphas):
      train_dir = os.path.join(base, "tune_T%s_a%s" % (t, a))
      args = _student_args(recipe, train_dir, 0, FLAGS.validation_size) + [
          teacher, "--temperature=%s" % t, "--alpha=%s" % a]
      if FLAGS.tune_cached:
        args.append("--teacher_logits_cache=%s" % os.path.join(
            base, "teacher_logits_val%d.npz" % FLAGS.validation_size))
      metrics, command, seconds = _run("distill", args)
      record("tune_distilled", metrics, command, seconds, temperature=float(t),
             alpha=float(a))
      scores[(float(t), float(a))] = metrics["validation_accuracy"]
    best = max(scores, key=scores.get)
  results["temperature"], results["alpha"] = best
  print("chosen on the validation split: T = %g, alpha = %g" % best,
        flush=True)

  # 2. Comparison on the full training set, several seeds.
  distill_args = [teacher, "--temperature=%g" % best[0],
                  "--alpha=%g" % best[1]]
  comparison = {  # kind: (binary, train_dir prefix, extra flags)
      "student_alone": ("train", "alone", []),
      "distilled": ("distill", "distilled", distill_args),
      "distilled_cached": ("distill", "cached", distill_args + [
          "--teacher_logits_cache=%s" %
          os.path.join(base, "teacher_logits.npz")]),
  }
  runs = {kind: [] for kind in KINDS if kind in FLAGS.kinds}
  for seed in FLAGS.seeds:
    for kind, kind_runs in runs.items():
      binary, prefix, extra = comparison[kind]
      train_dir = os.path.join(base, "%s_s%s" % (prefix, seed))
      args = _student_args(recipe, train_dir, seed, 0) + extra
      kind_runs.append(record(kind, *_run(binary, args), seed=seed))
  results["summary"] = {
      kind: {"test_accuracy": _summary([r["test_accuracy"] for r in rs]),
             "examples_per_sec": _summary([r["examples_per_sec"]
                                           for r in rs])}
      for kind, rs in runs.items() if rs}
  summary = results["summary"]
  if "distilled" in summary and "student_alone" in summary:
    gain = (summary["distilled"]["test_accuracy"]["mean"] -
            summary["student_alone"]["test_accuracy"]["mean"])
    results["gain_points"] = 100 * gain
    print("student alone %.2f%%, distilled %.2f%% (gain %+.2f points)" % (
        100 * summary["student_alone"]["test_accuracy"]["mean"],
        100 * summary["distilled"]["test_accuracy"]["mean"], 100 * gain))
  for kind, entry in summary.items():
    print("%s: mean test accuracy %.2f%% over %d seeds" % (
        kind, 100 * entry["test_accuracy"]["mean"],
        len(entry["test_accuracy"]["values"])))
  if FLAGS.output_json:
    fileio.write_json(FLAGS.output_json, results)


if __name__ == "__main__":
  app.run(main)
