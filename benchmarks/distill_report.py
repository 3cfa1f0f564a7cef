r"""Markdown tables of the distillation benchmark, ours beside the Keras peer.

Reads docs/benchmarks/distill_<family>.json (benchmarks/distill_benchmark.py)
and the peer's JSON files (benchmarks/peer_distill.sh) and prints the tables
of docs/results.md.

Usage:
  python benchmarks/distill_report.py --peer_dir=/work/runs/peer
"""

import json
import os

from absl import app
from absl import flags
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_string("peer_dir", "/work/runs/peer", "Peer JSON folder.")
flags.DEFINE_list("families", ["mlp", "cnn"], "Families.")


def _fmt(values):
  values = [100 * v for v in values]
  return "%.2f%% (%s; spread %.2f)" % (
      np.mean(values), ", ".join("%.2f" % v for v in values),
      (max(values) - min(values)) / 2)


def _rate(values):
  return "%s (%s-%s)" % (format(int(np.median(values)), ","),
                         format(int(min(values)), ","),
                         format(int(max(values)), ","))


def main(argv):
  del argv
  for family in FLAGS.families:
    path = os.path.join(ROOT, "docs", "benchmarks", "distill_%s.json" % family)
    with open(path) as f:
      ours = json.load(f)
    s = ours["summary"]
    peer = {"alone": [], "distill": [], "alone_rate": [], "distill_rate": [],
            "teacher": None}
    for seed in ours.get("seeds", [0, 1, 2]):
      p = os.path.join(FLAGS.peer_dir, "distill_%s_s%s.json" % (family, seed))
      if not os.path.exists(p):
        continue
      with open(p) as f:
        phases = json.load(f)["phases"]
      peer["teacher"] = phases["teacher"]["test_accuracy"]
      peer["alone"].append(phases["student"]["test_accuracy"])
      peer["distill"].append(phases["distill"]["test_accuracy"])
      peer["alone_rate"].append(phases["student"]["examples_per_sec_median"])
      peer["distill_rate"].append(
          phases["distill"]["examples_per_sec_median"])
    print("### %s family: T = %g, alpha = %g (chosen on the validation "
          "split)\n" % (family, ours["temperature"], ours["alpha"]))
    print("| run | test accuracy, mean (3 seeds; half-range) | "
          "examples/sec median (range) |")
    print("| --- | --- | --- |")
    print("| ours: student alone | %s | %s |" % (
        _fmt(s["student_alone"]["test_accuracy"]["values"]),
        _rate(s["student_alone"]["examples_per_sec"]["values"])))
    print("| ours: distilled (online) | %s | %s |" % (
        _fmt(s["distilled"]["test_accuracy"]["values"]),
        _rate(s["distilled"]["examples_per_sec"]["values"])))
    print("| ours: distilled (cached logits) | %s | %s |" % (
        _fmt(s["distilled_cached"]["test_accuracy"]["values"]),
        _rate(s["distilled_cached"]["examples_per_sec"]["values"])))
    if peer["alone"]:
      print("| Keras 3 peer: student alone | %s | %s |" % (
          _fmt(peer["alone"]), _rate(peer["alone_rate"])))
      print("| Keras 3 peer: distilled (Distiller) | %s | %s |" % (
          _fmt(peer["distill"]), _rate(peer["distill_rate"])))
    gain = 100 * (s["distilled"]["test_accuracy"]["mean"] -
                  s["student_alone"]["test_accuracy"]["mean"])
    line = "\nGain of distillation, ours: %+.2f points" % gain
    if peer["alone"]:
      line += "; peer: %+.2f points (peer teacher %.2f%%)" % (
          100 * (np.mean(peer["distill"]) - np.mean(peer["alone"])),
          100 * peer["teacher"])
    print(line + ".\n")
    print("Tuning runs (seed 0, validation split of 5,000):\n")
    print("| T | alpha | validation accuracy | test accuracy |")
    print("| --- | --- | --- | --- |")
    for run in ours["runs"]:
      if run["kind"] == "tune_student_alone":
        print("| (student alone) | - | %.2f%% | %.2f%% |" % (
            100 * run["validation_accuracy"], 100 * run["test_accuracy"]))
      elif run["kind"] == "tune_distilled":
        print("| %g | %g | %.2f%% | %.2f%% |" % (
            run["temperature"], run["alpha"],
            100 * run["validation_accuracy"], 100 * run["test_accuracy"]))
    print()


if __name__ == "__main__":
  app.run(main)
