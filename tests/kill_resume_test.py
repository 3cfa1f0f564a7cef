"""SIGKILL, SIGTERM and SIGINT the train and distill binaries, rerun them,
compare the bits with an uninterrupted run.

The driver is benchmarks/kill_resume.py (which writes the figures of
docs/reliability.md with more trials); here two kill trials of
training (one during start-up, one during training), one of distillation
(during training; the start-up kill is tested on training only) and one run
per signal.
"""

import os
import random
import re
import signal

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
  rng = random.Random(0)
  plans = [kill_resume.kill_plan(rng, trial, 48) for trial in range(4)]
  assert plans[0][0][0] is None
  assert all(1 <= after < 48 for plan in plans[1:] for after, _ in plan[:1])
  assert len(plans[3]) == 2


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  work = str(tmp_path_factory.mktemp("kill"))
  data = kill_resume.write_data(os.path.join(work, "data"))
  reference = os.path.join(work, "train_reference")
  kill_resume.run_to_end(kill_resume.command("train", reference, data),
                         reference + ".log")
  return work, data, reference


def _assert_bit_identical(report):
  assert report["variables"] > 0
  assert report["kill_points"] >= 1, report
  assert [r["differing"] for r in report["results"]] == [
      []] * report["trials"], report


@pytest.mark.slow
def test_killed_training_resumes_bit_identically(world):
  work, data, reference = world
  _assert_bit_identical(kill_resume.run_trials(
      "train", 2, work, data, reference, seed=1, log=lambda _: None))


@pytest.mark.slow
def test_killed_distillation_resumes_bit_identically(world):
  work, data, teacher = world
  extra = ("--teacher_checkpoint=" + teacher,)
  reference = os.path.join(work, "distill_reference")
  kill_resume.run_to_end(kill_resume.command("distill", reference, data,
                                             extra), reference + ".log")
  _assert_bit_identical(kill_resume.run_trials(
      "distill", 1, work, data, reference, seed=2, extra=extra,
      log=lambda _: None, first_trial=1))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_a_checkpoint_and_exit_cleanly(world, signum):
  work, data, reference = world
  train_dir = os.path.join(work, "signal_%d" % signum)
  cmd = kill_resume.command("train", train_dir, data)
  log = train_dir + ".log"
  result = kill_resume.run_and_kill(cmd, train_dir, 6, 0.1, log,
                                    signum=signum)
  assert result["killed"] and result["returncode"] == 130, result
  with open(log, encoding="utf-8") as f:
    text = f.read()
  assert "Traceback" not in text
  assert text.rstrip().endswith("train: interrupted"), text[-500:]
  saved = re.search(r"interrupted at step (\d+); saved (\S+) \(rerun the "
                    r"same command to resume\)", text)
  assert saved, text[-1000:]
  assert kill_resume.saved_step(train_dir) == int(saved.group(1))
  kill_resume.run_to_end(cmd, log)
  assert kill_resume.differences(kill_resume.final_weights(train_dir),
                                 kill_resume.final_weights(reference)) == []
