"""SIGKILL the train and distill binaries, rerun them, compare the bits.

The driver is benchmarks/kill_resume.py (which writes the figures of
docs/reliability.md with more trials); here two trials per binary.
"""

import numpy as np
import pytest

from benchmarks import kill_resume


def test_differences_sees_one_ulp_and_missing_names():
  a = {"w": np.zeros([3], np.float32), "b": np.ones([2], np.float32)}
  b = {"w": a["w"].copy(), "b": a["b"].copy()}
  assert kill_resume.differences(a, b) == []
  b["w"][1] = np.nextafter(np.float32(0), np.float32(1))
  assert kill_resume.differences(a, b) == ["w"]
  del b["b"]
  assert kill_resume.differences(a, b) == ["b", "w"]


def test_kill_plan_starts_with_a_start_up_kill():
  import random  # pylint: disable=g-import-not-at-top
  rng = random.Random(0)
  plans = [kill_resume.kill_plan(rng, trial, 48) for trial in range(4)]
  assert plans[0][0][0] is None
  assert all(1 <= after < 48 for plan in plans[1:] for after, _ in plan[:1])
  assert len(plans[3]) == 2


@pytest.mark.slow
def test_killed_runs_resume_bit_identically(tmp_path):
  report = kill_resume.run_all(str(tmp_path), trials=2, seed=1,
                               log=lambda _: None)
  for entry in report["binaries"]:
    assert entry["variables"] > 0
    assert entry["kill_points"] >= 1, entry
    assert [r["differing"] for r in entry["results"]] == [[], []], entry
