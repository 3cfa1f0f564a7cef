"""Runs scripts/export.py in-process (flags parsed, main called)."""

import json
import os

from absl import flags
from absl.testing import flagsaver
import pytest

from tests import conftest
from tests import frozen_graph_test

FLAGS = flags.FLAGS
export = None


@pytest.fixture(autouse=True)
def _export_binary():
  """Imports scripts/export.py with only its own flags defined."""
  global export
  export = conftest.load_script("export")


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory):
  return frozen_graph_test.train_synthetic(
      tmp_path_factory.mktemp("export_script") / "train")


def _run(argv):
  """Parses `argv` into FLAGS and calls main; returns the exit code."""
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["export"] + argv)
    try:
      export.main(["export"])
    except SystemExit as e:
      return e.code
  return 0


def test_exports_into_the_default_folder_then_refuses_to_overwrite(
    train_dir, capsys):
  code = _run(["--checkpoint=" + train_dir, "--noverify",
               "--formats=frozen_graph,int8"])
  out = capsys.readouterr().out
  assert code == 0
  out_dir = os.path.join(train_dir, "export")
  assert sorted(os.listdir(out_dir)) == ["class_names.txt", "export.json",
                                         "frozen_graph.pb",
                                         "model_int8.tflite"]
  assert "exported %s" % os.path.join(train_dir, "model.ckpt-150") in out
  assert "int8 input images: int8 scale 0.00392157 zero point -128" in out
  assert "wrote %s" % os.path.join(out_dir, "export.json") in out

  code = _run(["--checkpoint=" + train_dir, "--noverify",
               "--formats=frozen_graph"])
  err = capsys.readouterr().err
  assert code == 6  # ExportError.exit_code
  lines = err.strip().splitlines()
  assert len(lines) == 1
  assert lines[0].startswith("export: error: export target(s) already exist "
                             "in %s: frozen_graph.pb" % out_dir)
  assert "--overwrite" in lines[0]

  code = _run(["--checkpoint=" + train_dir, "--noverify",
               "--formats=frozen_graph", "--overwrite"])
  assert code == 0
  with open(os.path.join(out_dir, "export.json")) as f:
    assert list(json.load(f)["files"]) == ["frozen_graph"]
  # The int8 file of the first run is left alone.
  assert os.path.exists(os.path.join(out_dir, "model_int8.tflite"))


def test_verified_export_prints_the_table(train_dir, tmp_path, capsys):
  out_dir = str(tmp_path / "verified")
  code = _run(["--checkpoint=" + train_dir, "--output_dir=" + out_dir,
               "--formats=saved_model,float32,int8", "--latency_repeats=3",
               "--num_compare_examples=20"])
  out = capsys.readouterr().out
  assert code == 0
  lines = out.splitlines()
  header = [l for l in lines if l.startswith("format")]
  assert header and "batch-1 ms" in header[0] and "gzip bytes" in header[0]
  assert any(l.startswith("session ") for l in lines)
  for name in ("saved_model/1", "model_float32.tflite", "model_int8.tflite"):
    assert any(name in l and "%" in l for l in lines), name
  assert any(l.startswith("size: ") and "multiply-adds" in l for l in lines)
  with open(os.path.join(out_dir, "export.json")) as f:
    manifest = json.load(f)
  assert manifest["verification"]["formats"]["int8"]["ok"]


def test_missing_checkpoint_is_one_line_error(tmp_path, capsys):
  missing = str(tmp_path / "nowhere")
  code = _run(["--checkpoint=" + missing, "--noverify"])
  err = capsys.readouterr().err
  assert code == 4  # CheckpointError.exit_code
  assert err.strip().splitlines() == [
      "export: error: checkpoint %s not found: give a checkpoint prefix "
      "(without .index) or a training directory" % missing]
  assert os.listdir(str(tmp_path)) == []


def test_validators_reject_bad_values():
  with flagsaver.flagsaver():
    with pytest.raises(flags.IllegalFlagValueError,
                       match="--formats must be 'all' or distinct names"):
      FLAGS(["export", "--checkpoint=x", "--formats=float32,int4"])
  with flagsaver.flagsaver():
    with pytest.raises(flags.IllegalFlagValueError,
                       match="--formats must be"):
      FLAGS(["export", "--checkpoint=x", "--formats=int8,int8"])
  with flagsaver.flagsaver():
    with pytest.raises(flags.IllegalFlagValueError):
      FLAGS(["export", "--checkpoint=x", "--num_calibration_examples=0"])
