"""Every row of docs/errors.md: one bad input, one stderr line, one exit code.

The cases are `tests/errors_table.CASES`. Each runs a binary's `main`
in-process and checks: the exit code, the one stderr line against the
documented message (`…` matching what varies), no traceback, and that no
file was left half-written (no temporary file anywhere under the case's
folder or the shared inputs, every new JSON file parses, every new
checkpoint is whole, and the outputs the case names are absent). Write
failures are injected (CI runs as root): "disk_full" makes `os.fsync` fail
with ENOSPC, "read_only" makes `os.replace` fail with EROFS.
"""

import collections
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests import conftest
from tests import errors_table
from tests import testing_utils

World = collections.namedtuple("World", ["data", "run", "mobile", "teacher4",
                                         "hostile", "frozen", "tmp"])
# Hidden names are what the atomic writers stage in (".name.XXXX.tmp",
# ".out.export-XXXX"); the Saver stages in "*_temp*" folders.
_TEMPORARY = re.compile(r"(^\.|\.tmp|_temp|tempstate)", re.I)


def _train(argv):
  code = conftest.run_binary("train", argv + ["--batch_size=64", "--epochs=1",
                                              "--log_every_steps=1000"])
  assert code == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  from tests import safe_loader_test  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("world")
  data, _ = testing_utils.write_fashion_mnist_idx(str(root / "data"),
                                                  num_train=128, num_test=32)
  run, mobile, teacher4 = (str(root / n) for n in ("run", "mobile", "t4"))
  _train(["--data_dir=" + data, "--train_dir=" + run, "--model=mlp_student"])
  _train(["--data_dir=" + data, "--train_dir=" + mobile,
          "--model=mobilenet_v1", "--width_multiplier=0.25"])
  npz = str(root / "four.npz")
  labels = np.arange(128) % 4
  np.savez(npz, x_train=testing_utils.learnable_images(labels, 28, 4),
           y_train=labels,
           x_test=testing_utils.learnable_images(labels[:32], 28, 4),
           y_test=labels[:32])
  _train(["--dataset=npz:" + npz, "--train_dir=" + teacher4,
          "--model=mlp_student"])
  models = safe_loader_test.build_artifacts(str(root / "models"))
  return World(data=data, run=run, mobile=mobile, teacher4=teacher4,
               hostile=models["hostile_pb"], frozen=models["frozen_pb"],
               tmp=None)


def _snapshot(folders):
  files = {}
  for folder in folders:
    for parent, _, names in os.walk(folder):
      for name in names:
        path = os.path.join(parent, name)
        stat = os.stat(path)
        files[path] = (stat.st_size, stat.st_mtime_ns)
  return files


def _assert_nothing_half_written(folders, before):
  # pylint: disable=g-import-not-at-top
  from distill_v1 import checkpoints
  # pylint: enable=g-import-not-at-top
  after = _snapshot(folders)
  leftovers = [p for p in after if _TEMPORARY.search(os.path.basename(p))]
  assert not leftovers, leftovers
  for folder in folders:
    for parent, dirs, _ in os.walk(folder):
      assert not [d for d in dirs if _TEMPORARY.search(d)], parent
  changed = [p for p in after if before.get(p) != after[p]]
  for path in changed:
    if path.endswith(".json"):
      with open(path, encoding="utf-8") as f:
        json.load(f)
    if path.endswith(".index"):
      assert checkpoints.checkpoint_problem(path[:-len(".index")]) is None


def _inject(monkeypatch, name):
  code, text = errors_table.INJECTIONS[name]

  def fail(*args, **kwargs):
    del args, kwargs
    raise OSError(code, text)

  monkeypatch.setattr(os, "fsync" if name == "disk_full" else "replace",
                      fail)


@pytest.mark.parametrize("case", errors_table.CASES,
                         ids=[c.name for c in errors_table.CASES])
def test_bad_input(case, world, tmp_path, monkeypatch, capsys):
  w = world._replace(tmp=str(tmp_path))
  extra = case.setup(w) if case.setup else {}
  shared = [w.data, w.run, w.mobile, w.teacher4]
  before = _snapshot([str(tmp_path)] + shared)
  argv = case.argv(w, extra)
  with monkeypatch.context() as patch:
    if case.inject:
      _inject(patch, case.inject)
    code = conftest.run_binary(case.binary, argv)
  _, err = capsys.readouterr()
  line = conftest.error_line(err)  # One line, no traceback.
  assert re.match(errors_table.message_pattern(case.message), line), line
  assert code == case.exit_code, line
  _assert_nothing_half_written([str(tmp_path)] + shared, before)
  assert _snapshot(shared) == {p: before[p] for p in _snapshot(shared)}
  for path in (case.absent(w, extra) if case.absent else []):
    assert not os.path.exists(path), path


def test_every_exit_code_is_documented_and_used():
  # pylint: disable=g-import-not-at-top
  from distill_v1 import errors
  # pylint: enable=g-import-not-at-top
  codes = {cls.exit_code for cls in vars(errors).values()
           if isinstance(cls, type) and issubclass(cls, errors.DistillError)
           and cls is not errors.DistillError}
  assert codes | {1} == set(errors_table.EXIT_CODES)
  assert {c.exit_code for c in errors_table.CASES} == set(
      errors_table.EXIT_CODES)


def test_message_patterns():
  pattern = errors_table.message_pattern("a: … (x) …")
  assert re.match(pattern, "a: /tmp/f (x) 3")
  assert not re.match(pattern, "a: /tmp/f (y) 3")
  assert not re.match(pattern, "b a: (x) 3")


def test_errors_doc_is_current():
  result = subprocess.run(
      [sys.executable, os.path.join(conftest.ROOT, "tools",
                                    "errors_reference.py"), "--check"],
      capture_output=True, text=True, check=False, cwd=conftest.ROOT)
  assert result.returncode == 0, result.stdout + result.stderr
