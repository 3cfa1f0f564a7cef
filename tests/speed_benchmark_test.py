"""Tests of benchmarks/speed.py's helpers and benchmarks/speed_report.py."""

import sys

import numpy as np
import pytest

from benchmarks import speed
from benchmarks import speed_report


def test_summarize_gives_median_and_range():
  assert speed.summarize([3, 1, 2, 10]) == {
      "median": 2.5, "min": 1.0, "max": 10.0, "values": [3.0, 1.0, 2.0, 10.0]}


def test_run_child_reports_the_child_peak_rss_not_the_parent():
  # The parent holds 600 MB more than the child will; a child forked from
  # it directly would report at least that.
  ballast = np.ones(600 * 2**20 // 8)
  mb = speed.run_child([sys.executable, "-c",
                        "import numpy as np; a = np.ones(200 * 2**20 // 8); "
                        "print(a.sum())"])
  assert 190 < mb < 400, mb
  del ballast


def test_run_child_raises_with_the_child_stderr():
  with pytest.raises(RuntimeError, match="exited 3:\nboom"):
    speed.run_child([sys.executable, "-c",
                     "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"])


def _results():
  rate = lambda v: speed.summarize([v, v * 0.9, v * 1.1])
  rep = lambda frozen, keras: {
      "ours": {b: {"session_us": 100.0,
                   "frozen_graph": {"median_us": frozen},
                   "tflite_float32": {"median_us": 20.0},
                   "tflite_int8": {"median_us": 30.0}}
               for b in ("batch_1", "batch_128")},
      "peer": {b: {"keras_call_us": keras, "tf_function_us": 500.0}
               for b in ("batch_1", "batch_128")}}
  return {
      "command": "speed.py", "machine": {"cpu": "x", "cores": 2},
      "tensorflow_version": "2.21.0", "load_average_before": [0.1, 0, 0],
      "load_average_after": [0.2, 0, 0], "repeats": 3,
      "matmul_numpy": {"gflops": 100.0, "gflops_min": 90.0,
                       "gflops_max": 110.0},
      "matmul_tensorflow": {"gflops": 200.0, "gflops_min": 190.0,
                            "gflops_max": 210.0},
      "input": {"examples_per_sec": 900000.0,
                "examples_per_sec_in_graph": 1000000.0},
      "flops_per_example": {"mlp_student": 1e6, "cnn_teacher": 1e7},
      "rates": {"train/mlp_student/ours": rate(50000.0),
                "train/mlp_student/peer": rate(25000.0),
                "train/cnn_teacher/ours": rate(3000.0),
                "train/cnn_teacher/peer": rate(2500.0),
                "train/cnn_teacher/ours_bfloat16": rate(6000.0),
                "train/cnn_teacher/peer_bfloat16": rate(4000.0),
                "distill/cnn/ours_online": rate(6000.0),
                "distill/cnn/ours_cached": rate(20000.0),
                "distill/cnn/peer": rate(5000.0)},
      "latency": {"cnn_student": {"repeats": [rep(400.0, 4000.0),
                                              rep(500.0, 5000.0),
                                              rep(600.0, 900.0)]}},
      "peak_rss_mb": {"distill.py cnn online": speed.summarize([1100, 1600])},
  }


def test_report_tables_hold_the_ratios_and_verdicts():
  text = speed_report.render(_results())
  # 50000 / 25000 = 2.00x met; 3 x 1e6 x 50000 = 150 GFLOP/s = 75% of 200.
  assert ("| `mlp_student` | 50,000 (45,000-55,000) | 25,000 (22,500-27,500) "
          "| 2.00x | met | 150.0 | 75% (target 75%: met) | - | - | - | - |") in text
  # 3000 / 2500 = 1.20x missed; bfloat16 6000 / 2500 = 2.40x.
  assert ("| `cnn_teacher` | 3,000 (2,700-3,300) | 2,500 (2,250-2,750) | "
          "1.20x | **missed** | 90.0 | 45% | 6,000 (5,400-6,600) | 2.40x | "
          "4,000 (3,600-4,400) | 1.50x |") in text
  assert "| cnn | 6,000 (5,400-6,600) | 20,000 (18,000-22,000) | 5,000 " \
         "(4,500-5,500) | 1.20x **missed** | 4.00x met | - | - | - | - |" in text
  # Medians over the repeats: frozen 500, model(x) 4000 -> 8.00x.
  assert "| `cnn_student` | 1 | 100 (100-100) | 500 (400-600) |" in text
  assert "| 4,000 (900-5,000) | 500 (500-500) | 8.00x met |" in text
  # 1,000,000 / 50,000 = 20x; 900,000 / 50,000 = 18x.
  assert "| epoch drained in the graph | 1,000,000 | 20.0x (target 10x: met)" \
         in text
  assert "| one batch per sess.run | 900,000 | 18.0x" in text
  # The worst of the repeats counts for the memory target.
  assert ("| distill.py cnn online | 1,350 (1,100-1,600) (target < 1,500: "
          "**missed**) |") in text


def test_splice_keeps_the_text_around_the_markers():
  document = "intro\n%s\nold table\n%s\nanalysis\n" % (speed_report.BEGIN,
                                                      speed_report.END)
  assert speed_report.splice(document, "new\n") == (
      "intro\n%s\nnew\n%s\nanalysis\n" % (speed_report.BEGIN,
                                          speed_report.END))
  assert speed_report.splice("no markers", "new\n") == "%s\nnew\n%s\n" % (
      speed_report.BEGIN, speed_report.END)
