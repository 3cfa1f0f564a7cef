"""Tests of distill_v1.fileio: atomic writes and JSON reading."""

import errno
import json
import os
import re

import pytest

from distill_v1 import errors
from distill_v1 import fileio


def _write_old(path, text="old contents\n"):
  with open(path, "w") as f:
    f.write(text)


def _read(path):
  with open(path) as f:
    return f.read()


def test_write_json_is_sorted_indented_and_leaves_no_temp(tmp_path):
  path = str(tmp_path / "metrics.json")
  fileio.write_json(path, {"b": 1, "a": [1.5, "x"]})
  assert _read(path) == ('{\n  "a": [\n    1.5,\n    "x"\n  ],\n  "b": 1\n}\n')
  assert fileio.read_json(path) == {"a": [1.5, "x"], "b": 1}
  assert os.listdir(str(tmp_path)) == ["metrics.json"]


def test_write_bytes_and_text_replace_existing_file(tmp_path):
  path = str(tmp_path / "blob.bin")
  _write_old(path)
  fileio.write_bytes(path, b"\x00\x01\xff")
  with open(path, "rb") as f:
    assert f.read() == b"\x00\x01\xff"
  fileio.write_text(path, u"caf\u00e9")
  with open(path, "rb") as f:
    assert f.read() == u"caf\u00e9".encode("utf-8")
  assert os.listdir(str(tmp_path)) == ["blob.bin"]


def test_write_creates_missing_folders(tmp_path):
  path = str(tmp_path / "a" / "b" / "spec.json")
  fileio.write_json(path, [1])
  assert json.loads(_read(path)) == [1]


def test_failed_rename_keeps_old_file_and_names_path(tmp_path, monkeypatch):
  path = str(tmp_path / "metrics.json")
  _write_old(path)

  def failing_replace(src, dst):
    raise OSError(errno.EACCES, "Permission denied")

  monkeypatch.setattr(fileio.os, "replace", failing_replace)
  with pytest.raises(errors.ExportError,
                     match="cannot write %s: Permission denied" %
                     re.escape(path)):
    fileio.write_json(path, {"new": True})
  assert _read(path) == "old contents\n"
  assert os.listdir(str(tmp_path)) == ["metrics.json"]


def test_failed_write_keeps_old_file_and_names_path(tmp_path, monkeypatch):
  path = str(tmp_path / "model.tflite")
  _write_old(path)

  def failing_fsync(fd):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(fileio.os, "fsync", failing_fsync)
  with pytest.raises(errors.ExportError) as info:
    fileio.write_bytes(path, b"x" * 1000)
  assert str(info.value) == "cannot write %s: No space left on device" % path
  assert _read(path) == "old contents\n"
  assert os.listdir(str(tmp_path)) == ["model.tflite"]


def test_error_inside_atomic_path_removes_temp_and_propagates(tmp_path):
  path = str(tmp_path / "cache.npz")
  _write_old(path)
  with pytest.raises(ValueError, match="boom"):
    with fileio.atomic_path(path) as tmp:
      assert os.path.dirname(tmp) == str(tmp_path)
      assert tmp != path
      with open(tmp, "w") as f:
        f.write("half")
      raise ValueError("boom")
  assert _read(path) == "old contents\n"
  assert os.listdir(str(tmp_path)) == ["cache.npz"]


def test_oserror_inside_atomic_path_becomes_export_error(tmp_path):
  path = str(tmp_path / "frozen_graph.pb")
  with pytest.raises(errors.ExportError, match=re.escape(path)):
    with fileio.atomic_path(path) as tmp:
      with open(tmp, "w") as f:
        f.write("half")
      raise OSError(errno.EIO, "Input/output error")
  assert os.listdir(str(tmp_path)) == []


def test_uncreatable_folder_is_export_error(tmp_path):
  blocker = str(tmp_path / "file")
  _write_old(blocker)
  path = os.path.join(blocker, "sub", "x.json")
  with pytest.raises(errors.ExportError, match="cannot write %s" %
                     re.escape(path)):
    fileio.write_json(path, {})
  assert _read(blocker) == "old contents\n"


def test_read_json_errors_name_the_file(tmp_path):
  missing = str(tmp_path / "missing.json")
  with pytest.raises(errors.DataError,
                     match="cannot read %s" % re.escape(missing)):
    fileio.read_json(missing)
  bad = str(tmp_path / "bad.json")
  _write_old(bad, "{not json")
  with pytest.raises(errors.DataError,
                     match="%s is not valid JSON" % re.escape(bad)):
    fileio.read_json(bad)


def test_written_files_get_the_umask_permissions(tmp_path):
  old_umask = os.umask(0o022)
  try:
    path = str(tmp_path / "report.json")
    fileio.write_json(path, {})
  finally:
    os.umask(old_umask)
  # As open() would create it, not mkstemp's 0600.
  assert os.stat(path).st_mode & 0o777 == 0o644


def test_read_json_or_none(tmp_path):
  path = str(tmp_path / "m.json")
  assert fileio.read_json_or_none(path) is None
  fileio.write_json(path, {"a": 1})
  assert fileio.read_json_or_none(path) == {"a": 1}
  with open(path, "w") as f:
    f.write("{truncated")
  assert fileio.read_json_or_none(path) is None
