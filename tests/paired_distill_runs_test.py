"""Tests of benchmarks/paired_distill_runs.sh: which runs it starts.

The binaries are replaced by a recorder (PY), so this checks the loop's
order, its command lines and that a finished seed is skipped, without
training anything.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(tmp_path, seeds):
  log = tmp_path / "calls.txt"
  recorder = tmp_path / "py"
  # `-c` (the script's finished check) runs the real interpreter; anything
  # else is a binary whose arguments are recorded.
  recorder.write_text(
      "#!/bin/sh\n"
      'if [ "$1" = "-c" ]; then exec %s "$@"; fi\n'
      'echo "$@" >> %s\n' % (sys.executable, log))
  recorder.chmod(0o755)
  env = dict(os.environ, RUNS=str(tmp_path / "runs"), PY=str(recorder),
             SEEDS=seeds, T="4", ALPHA="0.3", FAMILY="cnn")
  out = subprocess.run(["sh", os.path.join(ROOT, "benchmarks",
                                           "paired_distill_runs.sh")],
                       cwd=ROOT, env=env, check=True, capture_output=True,
                       text=True).stdout
  calls = log.read_text().splitlines() if log.exists() else []
  return out, calls


def test_runs_ours_then_the_peer_per_seed(tmp_path):
  _, calls = _run(tmp_path, "10 11")
  assert [c.split()[0] for c in calls] == [
      "benchmarks/distill_benchmark.py", "benchmarks/keras_peer.py"] * 2
  assert "--seeds=10" in calls[0] and "--seed=10" in calls[1]
  assert "--seeds=11" in calls[2] and "--seed=11" in calls[3]
  runs = str(tmp_path / "runs")
  assert ("--teacher_checkpoint=%s/cnn_teacher" % runs) in calls[0]
  assert "--temperature=4" in calls[0] and "--alpha=0.3" in calls[0]
  assert "--kinds=distilled" in calls[0]
  assert ("--output_json=%s/cmp_T4_a0.3/ours_s10.json" % runs) in calls[0]
  assert "--phase=distill" in calls[1] and "--temperature=4" in calls[1]
  assert ("--output_json=%s/peer/distill_cnn_T4_a0.3_s10.json" % runs
          in calls[1])


def test_a_finished_side_is_skipped_and_an_unfinished_one_is_rerun(tmp_path):
  runs = tmp_path / "runs"
  (runs / "cmp_T4_a0.3").mkdir(parents=True)
  (runs / "peer").mkdir()
  (runs / "cmp_T4_a0.3" / "ours_s10.json").write_text(json.dumps(
      {"runs": [{"kind": "distilled", "seed": "10", "test_accuracy": 0.89}]}))
  # The peer writes its JSON after the teacher phase too: not finished yet.
  (runs / "peer" / "distill_cnn_T4_a0.3_s10.json").write_text(json.dumps(
      {"seed": 10, "phases": {"teacher": {"test_accuracy": 0.92}}}))
  (runs / "cmp_T4_a0.3" / "ours_s11.json").write_text(json.dumps(
      {"runs": [{"kind": "distilled", "seed": "11", "test_accuracy": 0.89}]}))
  (runs / "peer" / "distill_cnn_T4_a0.3_s11.json").write_text(json.dumps(
      {"seed": 11, "phases": {"distill": {"test_accuracy": 0.89}}}))
  out, calls = _run(tmp_path, "10 11")
  assert len(calls) == 1
  assert calls[0].startswith("benchmarks/keras_peer.py") and (
      "--seed=10" in calls[0])
  assert "seed 10, ours: done" in out and "seed 11, peer: done" in out
