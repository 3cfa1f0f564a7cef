"""Resumable stages: reuse when unchanged, resume when interrupted, redo when stale."""

import json
import os

import pytest

from distill_v1.pipeline import stages


class _Counter(object):
  """A stage function that counts its runs and can fail once."""

  def __init__(self, fail_first=False):
    self.calls = 0
    self.fail_first = fail_first

  def __call__(self, folder):
    self.calls += 1
    with open(os.path.join(folder, "work_%d.txt" % self.calls), "w") as f:
      f.write("x")
    if self.fail_first and self.calls == 1:
      raise KeyboardInterrupt()
    return {"value": 42, "files": sorted(os.listdir(folder))}


def test_fingerprint_ignores_key_order_and_sees_values():
  assert stages.fingerprint({"a": 1, "b": 2}) == stages.fingerprint(
      {"b": 2, "a": 1})
  assert stages.fingerprint({"a": 1}) != stages.fingerprint({"a": 2})


def test_complete_stage_is_reused(tmp_path):
  fn = _Counter()
  first = stages.run_stage(str(tmp_path), "distill", {"T": 4}, fn,
                           log=lambda _: None)
  second = stages.run_stage(str(tmp_path), "distill", {"T": 4}, fn,
                            log=lambda _: None)
  assert fn.calls == 1
  assert not first.reused and second.reused
  assert second.result == first.result


def test_interrupted_stage_resumes_in_the_same_folder(tmp_path):
  fn = _Counter(fail_first=True)
  with pytest.raises(KeyboardInterrupt):
    stages.run_stage(str(tmp_path), "distill", {"T": 4}, fn,
                     log=lambda _: None)
  state = stages.read_state(str(tmp_path / "distill"))
  assert state["complete"] is False
  lines = []
  result = stages.run_stage(str(tmp_path), "distill", {"T": 4}, fn,
                            log=lines.append)
  assert fn.calls == 2
  # The first run's files are still there: a training stage resumes.
  assert result.result["files"] == ["stage.json", "work_1.txt", "work_2.txt"]
  assert any("resuming" in line for line in lines)


def test_changed_inputs_redo_the_stage_from_a_clean_folder(tmp_path):
  fn = _Counter()
  stages.run_stage(str(tmp_path), "distill", {"T": 4}, fn, log=lambda _: None)
  lines = []
  result = stages.run_stage(str(tmp_path), "distill", {"T": 8}, fn,
                            log=lines.append)
  assert fn.calls == 2 and not result.reused
  assert result.result["files"] == ["stage.json", "work_2.txt"]
  assert any("inputs changed" in line for line in lines)
  with open(tmp_path / "distill" / "stage.json") as f:
    assert json.load(f)["inputs"] == {"T": 8}


def test_unknown_files_are_cleared(tmp_path):
  folder = tmp_path / "distill"
  folder.mkdir()
  (folder / "stray.txt").write_text("?")
  result = stages.run_stage(str(tmp_path), "distill", {"T": 4}, _Counter(),
                            log=lambda _: None)
  assert "stray.txt" not in result.result["files"]
