"""Tests of benchmarks/speed.py, its helpers (bench_util) and speed_report.py.

The fast tests check the statistics, the interleaving order, which rows
the flags select, the ratios and the report against hand-made numbers, and
the peak-RSS helper against a child of known size; the slow ones run
speed.py end to end on a tiny IDX data set. No test asserts a timing.
"""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from benchmarks import bench_util
from benchmarks import speed
from benchmarks import speed_report
from tests import testing_utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# Aggregation.


def test_summarize_gives_median_and_range():
  assert bench_util.summarize([3, 1, 2, 10]) == {
      "median": 2.5, "min": 1.0, "max": 10.0, "values": [3.0, 1.0, 2.0, 10.0]}


def test_ratio_is_of_medians_not_of_means():
  ours = bench_util.summarize([4.0, 6.0, 5.0, 100.0])  # median 5.5
  peer = bench_util.summarize([2.0, 2.0, 3.0])  # median 2
  assert bench_util.ratio_of_medians(ours, peer) == 2.75


def test_sustained_rate_is_later_epochs_examples_over_their_seconds():
  # 60,000 examples per epoch: 30 s at 2,000/s and 20 s at 3,000/s are
  # 120,000 examples in 50 s; the first (warm-up) epoch does not count.
  assert bench_util.sustained_rate([100.0, 2000.0, 3000.0]) == pytest.approx(
      2400.0)
  assert bench_util.sustained_rate([100.0, 5000.0]) == 5000.0
  with pytest.raises(ValueError, match=">= 2 epochs"):
    bench_util.sustained_rate([100.0])


def test_run_rate_and_peer_rate_read_every_epoch(tmp_path):
  with open(os.path.join(str(tmp_path), "metrics.json"), "w") as f:
    json.dump({"history": [{"examples_per_sec": r}
                           for r in (10.0, 2000.0, 3000.0)]}, f)
  assert bench_util.run_rate(str(tmp_path)) == pytest.approx(2400.0)
  peer = {"phases": {"student": {"examples_per_sec": [10.0, 1000.0, 3000.0]}}}
  assert bench_util.peer_rate(peer, "student") == pytest.approx(1500.0)


def test_mobilenet_rows_give_both_sides_the_same_width():
  assert bench_util.model_flags("mobilenet_v1") == ["--width_multiplier=0.5"]
  assert bench_util.model_flags("cnn_student") == []
  assert bench_util.learning_rate("mlp_teacher") == 0.1
  assert bench_util.learning_rate("cnn_student") == 0.05
  assert bench_util.PEER_PHASES["mobilenet_v1"] == ("mobilenet", "teacher")


def test_training_subset_holds_the_first_examples_exactly(tmp_path):
  from distill_v1.data import datasets  # pylint: disable=g-import-not-at-top
  data_dir, _ = testing_utils.write_fashion_mnist_idx(
      str(tmp_path / "data"), num_train=50, num_test=20)
  splits = datasets.load_dataset("fashion_mnist", data_dir=data_dir)
  folder = speed.write_training_subset(splits, 30, str(tmp_path / "subset"))
  subset = datasets.load_dataset("fashion_mnist", data_dir=folder)
  np.testing.assert_array_equal(subset.train_images, splits.train_images[:30])
  np.testing.assert_array_equal(subset.train_labels, splits.train_labels[:30])
  np.testing.assert_array_equal(subset.test_images, splits.test_images)
  np.testing.assert_array_equal(subset.test_labels, splits.test_labels)


def test_interleave_runs_every_row_before_the_next_repeat():
  calls, saved = [], []
  values = {("a", "ours"): [10, 30, 20], ("a", "peer"): [5, 6, 7],
            ("b", "ours"): [1, 2, 3]}

  def side(row, name):
    def run(repeat):
      calls.append((repeat, row, name))
      return {"rate": values[(row, name)][repeat]}
    return name, run

  rows = [("a", [side("a", "ours"), side("a", "peer")]),
          ("b", [side("b", "ours"), ("none", lambda repeat: None)])]
  samples, order = bench_util.interleave(
      rows, 3, log=None,
      after_repeat=lambda r, s, o: saved.append((r, len(s["a"]["ours"]),
                                                 len(o))))
  assert calls == [(r, row, name) for r in range(3)
                   for row, name in (("a", "ours"), ("a", "peer"),
                                     ("b", "ours"))]
  assert order[:4] == ["r1 a ours", "r1 a peer", "r1 b ours", "r1 b none"]
  assert order[4] == "r2 a ours" and len(order) == 12
  assert saved == [(0, 1, 4), (1, 2, 8), (2, 3, 12)]
  # A side returning None records nothing.
  assert "none" not in samples["b"]
  summary = bench_util.aggregate(samples)
  assert summary["a"]["ours"]["rate"] == {
      "median": 20.0, "min": 10.0, "max": 30.0, "values": [10.0, 30.0, 20.0]}
  assert summary["a"]["peer"]["rate"]["median"] == 6.0
  assert bench_util.ratio_of_medians(summary["a"]["ours"]["rate"],
                                     summary["a"]["peer"]["rate"]) == 20 / 6


def test_aggregate_summarizes_each_numeric_leaf():
  samples = {"latency/m": {"ours": [
      {"batch_1": {"frozen_graph": {"median_us": 100.0, "p90_us": 120.0}},
       "note": "text", "flag": True},
      {"batch_1": {"frozen_graph": {"median_us": 300.0}}},
      {"batch_1": {"frozen_graph": {"median_us": 200.0, "p90_us": 260.0}}}]}}
  leaves = bench_util.aggregate(samples)["latency/m"]["ours"]
  assert sorted(leaves) == ["batch_1/frozen_graph/median_us",
                            "batch_1/frozen_graph/p90_us"]
  assert leaves["batch_1/frozen_graph/median_us"]["median"] == 200.0
  # A leaf missing in a repeat is summarized over the others.
  assert leaves["batch_1/frozen_graph/p90_us"]["values"] == [120.0, 260.0]


def _rows():
  """Aggregated rows as speed.py makes them, with round numbers."""
  s = lambda *v: bench_util.summarize(v)
  lat = lambda frozen, session: {
      "batch_1/frozen_graph/median_us": s(frozen),
      "batch_1/session/median_us": s(session)}
  return {
      "matmul": {"numpy": {"gflops": s(90, 100, 110)},
                 "tensorflow": {"gflops": s(190, 200, 210)}},
      "input": {"pipeline": {"examples_per_sec": s(400000, 500000),
                             "examples_per_sec_in_graph": s(2e6)}},
      "train/mlp_student": {
          "ours": {"examples_per_sec": s(40000, 50000, 60000),
                   "gflops": s(150)},
          "peer": {"examples_per_sec": s(25000), "gflops": s(75)}},
      "train/mlp_student/bfloat16": {
          "ours": {"examples_per_sec": s(100000), "gflops": s(300)},
          "peer": {"examples_per_sec": s(40000), "gflops": s(120)}},
      "distill/cnn": {"ours_online": {"examples_per_sec": s(6000)},
                      "ours_cached": {"examples_per_sec": s(20000)},
                      "peer": {"examples_per_sec": s(5000)}},
      "latency/cnn_student": {
          "ours": lat(500.0, 800.0),
          "peer": {"batch_1/keras_call/median_us": s(4000.0),
                   "batch_1/tf_function/median_us": s(750.0)}},
  }


def test_ratios_of_every_comparison():
  assert speed.ratios(_rows()) == {
      "train/mlp_student": {"ours/peer": 2.0},
      "train/mlp_student/bfloat16": {"ours/peer": 2.5,
                                     "ours/peer_float32": 4.0},
      "distill/cnn": {"ours_online/peer": 1.2, "ours_cached/peer": 4.0},
      "latency/cnn_student": {"batch_1/keras_call/frozen_graph": 8.0,
                              "batch_1/keras_call/session": 5.0,
                              "batch_1/tf_function/frozen_graph": 1.5},
  }


def test_ceiling_fractions_and_input_multiple():
  rows = _rows()
  assert speed.ceiling_fractions(rows) == {
      "train/mlp_student": {"ours": 0.75, "peer": 0.375},
      "train/mlp_student/bfloat16": {"ours": 1.5, "peer": 0.6}}
  # The fastest loop is the bfloat16 training row, 100,000 ex/s.
  assert speed.input_multiples(rows) == {
      "fastest_loop": {"row": "train/mlp_student/bfloat16", "side": "ours",
                       "examples_per_sec": 100000.0},
      "examples_per_sec": 4.5, "examples_per_sec_in_graph": 20.0}
  assert speed.ceiling_fractions({"train/x": {}}) == {}
  assert speed.input_multiples({"input": rows["input"]}) == {}


# ---------------------------------------------------------------------------
# Peak RSS of children.


def test_run_child_reports_the_child_peak_rss_not_the_parent():
  # The parent holds 600 MB more than the child will; a child forked from
  # it directly would report at least that.
  ballast = np.ones(600 * 2**20 // 8)
  mb = bench_util.run_child(
      [sys.executable, "-c", "import numpy as np; "
       "a = np.ones(200 * 2**20 // 8); print(a.sum())"], log=None)
  assert 150 < mb < 400, mb
  del ballast


def test_run_child_raises_with_the_child_stderr():
  with pytest.raises(RuntimeError, match="exited 3:\nboom"):
    bench_util.run_child([sys.executable, "-c", "import sys; "
                          "sys.stderr.write('boom\\n'); sys.exit(3)"],
                         log=None)


def test_peak_rss_per_label_and_per_binary():
  rss = bench_util.PeakRss(log=None)
  rss.samples = {"distill.py cnn online": [900.0, 1100.0],
                 "distill.py cnn cached": [700.0],
                 "train.py mlp_student": [800.0]}
  assert rss.per_binary() == {"distill.py": 1100.0, "train.py": 800.0}
  assert rss.summary()["distill.py cnn online"]["median"] == 1000.0


# ---------------------------------------------------------------------------
# The report.


def _results():
  s = lambda *v: bench_util.summarize(v)
  lat = lambda m, p10, p90: {"median_us": s(m), "p10_us": s(p10),
                             "p90_us": s(p90)}
  return {
      "command": "python benchmarks/speed.py --repeats=3",
      "machine": {"cpu": "Test CPU", "cores": 2, "logical_cpus": 2,
                  "bfloat16_units": ["amx_bf16"]},
      "tensorflow_version": "2.21.0", "keras_version": "3.15.1",
      "load_average_before": [0.5, 0.25, 0.125],
      "load_average_after": [1.5, 1.0, 0.5], "repeats": 3, "repeats_done": 3,
      "seconds": 1234.4, "temperature": 8.0, "alpha": 0.5,
      "latency_batches": [1],
      "teachers": {"cnn": {"ours_made_for_speed_only": True,
                           "peer_made_for_speed_only": False}},
      "rows": {
          "matmul": {"numpy": {"gflops": s(90, 100, 110)},
                     "tensorflow": {"gflops": s(190, 200, 210)}},
          "input": {"pipeline": {"examples_per_sec": s(400000, 500000),
                                 "examples_per_sec_in_graph": s(900000)}},
          "train/mlp_teacher": {
              "ours": {"examples_per_sec": s(9000, 10000, 11000),
                       "gflops": s(140)},
              "peer": {"examples_per_sec": s(8000), "gflops": s(120)}},
          "train/mlp_student": {
              "ours": {"examples_per_sec": s(50000), "gflops": s(150)},
              "peer": {"examples_per_sec": s(25000), "gflops": s(75)}},
          "distill/cnn": {"ours_online": {"examples_per_sec": s(6000)},
                          "ours_cached": {"examples_per_sec": s(20000)},
                          "peer": {"examples_per_sec": s(5000)}},
          "latency/cnn_student": {
              "ours": {"batch_1/frozen_graph/" + k: v for k, v in lat(
                  500, 450, 600).items()},
              "peer": {"batch_1/keras_call/" + k: v for k, v in lat(
                  900, 800, 1000).items()}},
      },
      "ratios": {"train/mlp_teacher": {"ours/peer": 1.25},
                 "train/mlp_student": {"ours/peer": 2.0},
                 "distill/cnn": {"ours_online/peer": 1.2,
                                 "ours_cached/peer": 4.0},
                 "latency/cnn_student": {
                     "batch_1/keras_call/frozen_graph": 1.8}},
      "fraction_of_matmul_ceiling": {
          "train/mlp_teacher": {"ours": 0.7, "peer": 0.6},
          "train/mlp_student": {"ours": 0.75, "peer": 0.375}},
      "input_multiple_of_fastest_loop": {
          "fastest_loop": {"row": "train/mlp_student", "side": "ours",
                           "examples_per_sec": 50000.0},
          "examples_per_sec": 9.0, "examples_per_sec_in_graph": 18.0},
      "peak_rss_mb": {"distill.py cnn online": s(1100, 1600),
                      "distill.py cnn cached": s(900),
                      "train.py mlp_student": s(800)},
      "peak_rss_mb_per_binary": {"distill.py": 1600.0, "train.py": 800.0},
      "export_bytes": {"cnn_student": {"tflite_float32": 84884,
                                       "tflite_int8": 25400}},
      "peer_tflite": {"cnn_student": {"float32": {"bytes": 85736}}},
  }


def test_report_lists_every_target_with_its_verdict():
  text = speed_report.render(_results())
  for line in (
      # 1.25 >= 1.25 is met; the threshold is inclusive.
      "| training `mlp_teacher`: ours / peer examples/sec >= 1.25x | 1.25x "
      "| met |",
      "| training `mlp_student`: ours / peer examples/sec >= 1.25x | 2.00x "
      "| met |",
      "| online distillation cnn: ours / peer Distiller >= 1.25x | 1.20x | "
      "**missed** |",
      "| cached distillation cnn: ours / peer Distiller >= 1.40x | 4.00x | "
      "met |",
      "| training `mlp_teacher`: >= 75% of the TF matmul ceiling | 70% | "
      "**missed** |",
      "| training `mlp_student`: >= 75% of the TF matmul ceiling | 75% | "
      "met |",
      "| `cnn_student` batch 1: frozen graph >= 2x faster than the peer's "
      "`model(x, training=False)` | 1.80x | **missed** |",
      "| input pipeline alone (epoch drained in the graph) >= 10x the "
      "fastest training loop | 18.0x | met |",
      "| input pipeline alone (one batch per sess.run) >= 10x the fastest "
      "training loop | 9.0x | **missed** |",
      # The worst distill.py cnn run counts: 1,600 MB.
      "| peak RSS of scripts/distill.py, cnn family (every run) < 1,500 MB "
      "| 1,600 MB | **missed** |"):
    assert line in text, line
  assert text.count("| met |") + text.count("| **missed** |") == 10


def test_report_tables_hold_medians_ranges_and_ratios():
  text = speed_report.render(_results())
  for line in (
      "Command: `python benchmarks/speed.py --repeats=3`. Machine: Test CPU, "
      "2 cores (2 logical CPUs), bfloat16 units: amx_bf16. TensorFlow "
      "2.21.0, Keras 3.15.1 (peer). Load average (1/5/15 min) before "
      "0.50/0.25/0.12, after 1.50/1.00/0.50. 3 of 3 interleaved repeats in "
      "1,234 s.",
      "Teachers made for speed only in this run (20 steps for ours, 1 epoch "
      "for the peer's; throughput does not depend on the weights' values): "
      "ours cnn.",
      "| numpy | 100.0 (90.0-110.0) |",
      "| tensorflow | 200.0 (190.0-210.0) |",
      "| `mlp_teacher` | float32 | 10,000 (9,000-11,000) | 8,000 "
      "(8,000-8,000) | 1.25x | - | 140.0 | 70% | 120.0 | 60% |",
      "| one batch per sess.run | 450,000 (400,000-500,000) | 9.0x |",
      "| epoch drained in the graph | 900,000 (900,000-900,000) | 18.0x |",
      "Fastest training loop of the run: train/mlp_student, ours, 50,000 "
      "examples/sec.",
      "| cnn | float32 | 6,000 (6,000-6,000) | 20,000 (20,000-20,000) | "
      "5,000 (5,000-5,000) | 1.20x | 4.00x | - | - |",
      "| `cnn_student` | 1 | - | 500 (450-600) | - | - | 900 (800-1,000) | "
      "- | - | - | - |",
      "| `cnn_student` | 1 | 1.80x | - | - | - | - |",
      "| `cnn_student` | 84,884 | 25,400 | 85,736 | - | - |",
      "| distill.py | 1,600 |",
      "| distill.py cnn online | 1,350 (1,100-1,600) |",
      # Repeat by repeat; the peer has one repeat, so one ratio: 9,000 / 8,000.
      "| train `mlp_teacher` float32 | 1.12 | 1.12x |",
      "| online distill cnn float32 / peer Distiller | 1.20 | 1.20x |"):
    assert line in text, line


def test_splice_of_a_second_section_leaves_the_first_alone():
  first = speed_report.splice("", "run one\n")
  both = speed_report.splice(first, "run two\n", section="train")
  begin, end = speed_report.markers("train")
  assert "%s\nrun two\n%s\n" % (begin, end) in both
  assert "%s\nrun one\n%s\n" % (speed_report.BEGIN, speed_report.END) in both
  again = speed_report.splice(both, "run three\n", section="train")
  assert "run two" not in again and "run one" in again
  assert again.count(begin) == 1


def test_splice_keeps_the_analysis_and_adds_the_why_section_once():
  document = ("intro\n%s\nold table\n%s\n## Why targets are missed\n\n"
              "Because.\n" % (speed_report.BEGIN, speed_report.END))
  assert speed_report.splice(document, "new\n") == (
      "intro\n%s\nnew\n%s\n## Why targets are missed\n\nBecause.\n" % (
          speed_report.BEGIN, speed_report.END))
  fresh = speed_report.splice("", "new\n")
  assert fresh.startswith("# Speed: every path beside the Keras 3 peer")
  assert "%s\nnew\n%s\n" % (speed_report.BEGIN, speed_report.END) in fresh
  assert fresh.endswith("## Why targets are missed\n\n%s\n" %
                        speed_report.WHY_PLACEHOLDER)
  # Splicing again keeps one section.
  again = speed_report.splice(fresh, "newer\n")
  assert again.count("## Why targets are missed") == 1 and "newer" in again
  kept = speed_report.splice("my notes\n", "t\n")
  assert kept.startswith("my notes\n\n%s\nt\n%s\n" % (speed_report.BEGIN,
                                                      speed_report.END))


# ---------------------------------------------------------------------------
# Which rows run (built in-process, none of them run).


def _row_names(monkeypatch, **flag_values):
  values = dict(what=list(speed.WHAT), models=["cnn_student"],
                latency_models=None, families=["cnn"],
                precisions=["float32"], bfloat16_rows=[])
  values.update(flag_values)
  monkeypatch.setattr(speed, "FLAGS", types.SimpleNamespace(**values))
  bench = speed.Bench("/nonexistent", [], latency_repeats=1)
  flops = {m: 1.0 for m in values["models"]}
  teachers = {f: None for f in values["families"]}
  return [name for name, _ in speed.rows_to_run(bench, None, teachers,
                                                flops)]


def test_rows_to_run_gives_latency_rows_only_to_latency_models(monkeypatch):
  assert _row_names(monkeypatch, what=["train", "latency"],
                    models=["mobilenet_v1", "cnn_student"],
                    latency_models=["mobilenet_v1"]) == [
                        "train/mobilenet_v1", "latency/mobilenet_v1",
                        "train/cnn_student"]
  assert _row_names(monkeypatch, what=["train", "latency"],
                    models=["mobilenet_v1", "cnn_student"]) == [
                        "train/mobilenet_v1", "latency/mobilenet_v1",
                        "train/cnn_student", "latency/cnn_student"]
  assert _row_names(monkeypatch, what=["train"],
                    models=["mlp_student"]) == ["train/mlp_student"]


def test_rows_to_run_adds_bfloat16_rows_only_when_asked(monkeypatch):
  assert _row_names(monkeypatch, what=["distill"], families=["cnn"]) == [
      "distill/cnn"]
  assert _row_names(
      monkeypatch, what=["train", "distill"], models=["cnn_student"],
      families=["cnn"], precisions=["float32", "bfloat16"],
      bfloat16_rows=["cnn_student", "online"]) == [
          "train/cnn_student", "train/cnn_student/bfloat16", "distill/cnn",
          "distill/cnn/bfloat16"]


# ---------------------------------------------------------------------------
# End to end.


@pytest.mark.slow
def test_speed_py_end_to_end_on_a_tiny_idx_data_set(tmp_path):
  data_dir, _ = testing_utils.write_fashion_mnist_idx(
      str(tmp_path / "data"), num_train=256, num_test=128)
  bf16 = bool(speed.machine()["bfloat16_units"])
  out = tmp_path / "speed.json"
  command = [sys.executable, "benchmarks/speed.py", "--repeats=1",
             "--models=cnn_student", "--families=cnn", "--latency_repeats=3",
             "--runs_dir=" + str(tmp_path / "no_teachers"),
             "--data_dir=" + data_dir, "--output_json=" + str(out)]
  if bf16:  # Our binaries refuse bfloat16 without the CPU units.
    command += ["--precisions=float32,bfloat16",
                "--bfloat16_rows=cnn_student,online"]
  run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                       check=False, timeout=1200)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  results = json.loads(out.read_text())
  rows = ["matmul", "input", "train/cnn_student", "latency/cnn_student",
          "distill/cnn"]
  if bf16:
    rows += ["train/cnn_student/bfloat16", "distill/cnn/bfloat16"]
  assert sorted(results["rows"]) == sorted(rows)
  assert results["repeats_done"] == 1
  assert results["order"][:5] == [
      "r1 matmul numpy", "r1 matmul tensorflow", "r1 input pipeline",
      "r1 train/cnn_student ours", "r1 train/cnn_student peer"]
  for row in rows:
    if row.startswith(("train/", "distill/")):
      for side in results["rows"][row].values():
        assert side["examples_per_sec"]["median"] > 0
  assert set(results["rows"]["distill/cnn"]) == {"ours_online",
                                                 "ours_cached", "peer"}
  latency = results["rows"]["latency/cnn_student"]
  for side, runtimes in (("ours", speed_report.OUR_RUNTIMES),
                         ("peer", speed_report.PEER_RUNTIMES)):
    for batch in (1, 128):
      for runtime, _ in runtimes:
        for stat in ("median_us", "p10_us", "p90_us"):
          key = "batch_%d/%s/%s" % (batch, runtime, stat)
          assert latency[side][key]["median"] > 0, (side, key)
  assert "batch_1/keras_call/frozen_graph" in results["ratios"][
      "latency/cnn_student"]
  assert results["teachers"]["cnn"]["ours_made_for_speed_only"]
  assert results["teachers"]["cnn"]["peer_made_for_speed_only"]
  assert results["fraction_of_matmul_ceiling"]["train/cnn_student"]["ours"] > 0
  assert results["input_multiple_of_fastest_loop"]["examples_per_sec"] > 0
  for label in ("train.py cnn_student", "keras_peer.py cnn_student",
                "export.py cnn_student", "distill.py cnn online",
                "distill.py cnn cached", "keras_peer.py cnn distill"):
    assert 50 < results["peak_rss_mb"][label]["max"] < 4000, label
  text = speed_report.render(results)
  assert text.count("| met |") + text.count("| **missed** |") == 7


@pytest.mark.slow
def test_speed_py_mobilenet_rows_on_a_tiny_idx_data_set(tmp_path):
  from distill_v1.evaluation import model_stats  # pylint: disable=g-import-not-at-top
  from distill_v1.models import nets_factory  # pylint: disable=g-import-not-at-top
  data_dir, _ = testing_utils.write_fashion_mnist_idx(
      str(tmp_path / "data"), num_train=256, num_test=64)
  out = tmp_path / "speed.json"
  run = subprocess.run(
      [sys.executable, "benchmarks/speed.py", "--repeats=1", "--epochs=2",
       "--what=train,latency", "--models=mobilenet_v1",
       "--latency_repeats=3",
       "--train_examples=200",
       "--data_dir=" + data_dir,
       "--output_json=" + str(out)],
      cwd=ROOT, capture_output=True, text=True, check=False, timeout=900)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  results = json.loads(out.read_text())
  sides = results["rows"]["train/mobilenet_v1"]
  assert sides["ours"]["examples_per_sec"]["median"] > 0
  assert sides["peer"]["examples_per_sec"]["median"] > 0
  assert results["epochs"] == 2 and results["train_examples"] == 200
  # (Which models get latency rows is tested in-process above.)
  assert sorted(results["rows"]) == ["latency/mobilenet_v1",
                                     "train/mobilenet_v1"]
  latency = results["rows"]["latency/mobilenet_v1"]
  for side, runtime in (("ours", "frozen_graph"), ("ours", "tflite_int8"),
                        ("peer", "keras_call"), ("peer", "tflite_int8")):
    assert latency[side]["batch_1/%s/median_us" % runtime]["median"] > 0

  def flops(width):
    return model_stats.flops_per_example(
        nets_factory.get_network_fn("mobilenet_v1", width_multiplier=width),
        (28, 28, 1), 10)

  assert results["flops_per_example"]["mobilenet_v1"] == flops(0.5)
  assert flops(0.5) < 0.5 * flops(1.0)
