"""scripts/compress.py: bad flags refused up front, presets, flagfile, the binary.

The flag tests run the binary's `main` in-process (absl flags parsed as
`app.run` would); the slow test runs `scripts/compress.py` as a process on a
tiny Fashion-MNIST-layout IDX folder through every stage.
"""

import json
import os
import subprocess
import sys

from absl import app
from absl import flags
from absl.testing import flagsaver
import pytest

from distill_v1.data import datasets
from distill_v1.pipeline import compress_lib
from distill_v1.pipeline import report as report_lib
from tests import conftest
from tests import testing_utils

FLAGS = flags.FLAGS
ROOT = conftest.ROOT
compress = None


@pytest.fixture(autouse=True)
def _compress_binary():
  """Imports scripts/compress.py with only its own flags defined."""
  global compress
  compress = conftest.load_script("compress")


def _parse(argv):
  FLAGS.unparse_flags()
  return app.parse_flags_with_usage(["compress"] + argv)


def _run(argv):
  return conftest.run_binary("compress", argv)


_error_line = conftest.error_line


# ---------------------------------------------------------------------------
# Bad flag combinations: refused before any work.

_BAD = [
    (["--skip=teacher"], 3,
     "compress: error: --skip=teacher: only distill, prune, quantize, verify "
     "can be skipped"),
    (["--skip=prune,export"], 3,
     "compress: error: --skip=export: only distill, prune, quantize, verify "
     "can be skipped"),
    (["--teacher_checkpoint=/tmp/t", "--teacher_graph=/tmp/t.pb"], 3,
     "compress: error: give at most one of --teacher_checkpoint and "
     "--teacher_graph"),
    (["--alpha=2"], 3, "compress: error: --alpha must be in [0, 1], got 2.0"),
    (["--temperature=0"], 3,
     "compress: error: --temperature must be > 0, got 0.0"),
    (["--skip=", "--target_sparsity=0", "--structured_fraction=0"], 3,
     "compress: error: the prune stage needs --structured_fraction or "
     "--target_sparsity (or --skip=prune)"),
    (["--structured_fraction=1.0"], 3,
     "compress: error: --structured_fraction must be in [0, 1), got 1.0"),
    (["--distill_epochs=0"], 3,
     "compress: error: --distill_epochs must be > 0, got 0.0"),
    (["--formats=float32,tiff"], 3,
     "compress: error: formats float32,tiff: expected distinct names among"),
    (["--student_model=resnet50"], 3,
     "compress: error: Unknown model 'resnet50'; known models: mlp_teacher, "
     "mlp_student, cnn_teacher, cnn_student, mobilenet_v1"),
    (["--teacher_model=resnet50"], 3,
     "compress: error: Unknown model 'resnet50'"),
    (["--student_layer_widths=conv1=wide"], 3,
     "compress: error: --student_layer_widths=conv1=wide: expected "
     "LAYER=WIDTH pairs such as conv1=64,conv2=128"),
    (["--student_layer_widths=conv9=8"], 3,
     "compress: error: In scope cnn_student, layer_widths names unknown "
     "layer(s) conv9; the layers with a width are: conv1, conv2"),
    (["--student_layer_widths=conv1=0"], 3,
     "compress: error: In scope cnn_student, layer_widths['conv1']=0 is not "
     "a positive integer"),
    (["--student_model=mlp_student", "--student_layer_widths=conv1=8"], 3,
     "compress: error: In scope mlp_student, layer_widths names unknown "
     "layer(s) conv1"),
]


@pytest.mark.parametrize("extra,code,message", _BAD,
                         ids=[" ".join(b[0]) for b in _BAD])
def test_bad_flags_are_refused_before_any_work(capsys, monkeypatch, tmp_path,
                                               extra, code, message):

  def no_work(*args, **kwargs):
    raise AssertionError("work started: %r %r" % (args, kwargs))

  monkeypatch.setattr(datasets, "load_dataset", no_work)
  monkeypatch.setattr(compress_lib, "run", no_work)
  out = tmp_path / "out"
  argv = ["--output_dir=%s" % out, "--data_dir=%s" % (tmp_path / "nowhere")]
  assert _run(argv + extra) == code
  assert _error_line(capsys.readouterr().err).startswith(message)
  assert not out.exists()


def test_missing_output_dir(capsys, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert _run(["--preset=quick"]) == 1
  assert _error_line(capsys.readouterr().err) == (
      "FATAL Flags parsing error: flag --output_dir=None: Flag --output_dir "
      "must have a value other than None.")
  assert os.listdir(str(tmp_path)) == []


def test_extra_arguments_are_refused(tmp_path):
  with pytest.raises(app.UsageError, match="unexpected arguments: runs/x"):
    with flagsaver.flagsaver():
      compress.main(_parse(["--output_dir=%s" % tmp_path]) + ["runs/x"])
  assert os.listdir(str(tmp_path)) == []


# ---------------------------------------------------------------------------
# Presets: documented values, every flag overrides.

# The values compress.py's --preset help and the README document.
QUICK = {"teacher_model": "cnn_teacher", "teacher_epochs": 3.0,
         "student_model": "cnn_student", "student_options": {},
         "distill_epochs": 8.0, "distill_learning_rate": 0.05,
         "distill_learning_rate_decay": "none", "distill_optimizer": "sgd",
         "distill_weight_decay": 0.0,
         "temperature": 4.0, "alpha": 0.1, "target_sparsity": 0.5,
         "structured_fraction": 0.0, "prune_epochs": 2.0,
         "latency_repeats": 100, "skip": (),
         "formats": ("frozen_graph", "saved_model", "float32",
                     "dynamic_range", "float16", "int8")}
FULL = dict(QUICK, teacher_epochs=30.0, student_model="cnn_teacher",
            student_options={"layer_widths": {"conv1": 16, "conv2": 32,
                                              "fc1": 128}},
            temperature=8.0, alpha=0.5, distill_epochs=30.0,
            distill_optimizer="momentum", distill_learning_rate=0.02,
            distill_learning_rate_decay="cosine", distill_weight_decay=5e-4,
            prune_epochs=4.0,
            latency_repeats=300)


def _config(argv):
  with flagsaver.flagsaver():
    _parse(argv)
    return compress.compress_config()


def _subset(config, expected):
  return {k: config[k] for k in expected}


@pytest.mark.parametrize("preset,expected", [("quick", QUICK),
                                             ("full", FULL)])
def test_presets_resolve_to_their_documented_values(tmp_path, preset,
                                                    expected):
  config = _config(["--preset=%s" % preset, "--output_dir=%s" % tmp_path])
  assert _subset(config, expected) == expected
  assert config["output_dir"] == str(tmp_path)
  assert set(config) == set(compress_lib.DEFAULTS)
  compress_lib.validate_config(config)  # A preset is a valid run.


def test_quick_is_the_default_preset(tmp_path):
  config = _config(["--output_dir=%s" % tmp_path])
  assert _subset(config, QUICK) == QUICK


def test_explicit_flags_override_the_preset(tmp_path):
  config = _config([
      "--preset=full", "--output_dir=%s" % tmp_path, "--distill_epochs=2",
      "--student_layer_widths=conv1=8", "--temperature=2",
      # Equal to the flag's default but not to the preset's: given, so it
      # wins.
      "--distill_learning_rate_decay=none", "--latency_repeats=200",
      "--skip=verify", "--formats=float32,int8"])
  expected = dict(FULL, distill_epochs=2.0,
                  student_options={"layer_widths": {"conv1": 8}},
                  temperature=2.0, distill_learning_rate_decay="none",
                  latency_repeats=200, skip=("verify",),
                  formats=("float32", "int8"))
  assert _subset(config, expected) == expected


@pytest.mark.parametrize("student", ["cnn_student", "mlp_student"])
def test_another_student_does_not_inherit_the_preset_widths(tmp_path,
                                                            student):
  config = _config(["--preset=full", "--output_dir=%s" % tmp_path,
                    "--student_model=%s" % student])
  assert config["student_model"] == student
  assert config["student_options"] == {}
  assert config["temperature"] == 8.0  # The rest of the preset still holds.
  compress_lib.validate_config(config)


def test_width_multiplier_for_a_mobilenet_student(tmp_path):
  config = _config(["--preset=full", "--output_dir=%s" % tmp_path,
                    "--student_model=mobilenet_v1",
                    "--student_width_multiplier=0.5"])
  assert config["student_options"] == {"width_multiplier": 0.5}
  compress_lib.validate_config(config)


def test_flagfile_with_preset_and_flags(tmp_path):
  flagfile = tmp_path / "job.flags"
  flagfile.write_text("--preset=full\n--output_dir=%s\n--distill_epochs=3\n"
                      "--student_layer_widths=conv1=16,conv2=16\n" %
                      (tmp_path / "out"))
  config = _config(["--flagfile=%s" % flagfile])
  expected = dict(FULL, distill_epochs=3.0,
                  student_options={"layer_widths": {"conv1": 16,
                                                    "conv2": 16}})
  assert _subset(config, expected) == expected
  assert config["output_dir"] == str(tmp_path / "out")
  # The command line after the flagfile still wins.
  config = _config(["--flagfile=%s" % flagfile, "--distill_epochs=5",
                    "--preset=quick"])
  expected = dict(QUICK, distill_epochs=5.0,
                  student_options={"layer_widths": {"conv1": 16,
                                                    "conv2": 16}})
  assert _subset(config, expected) == expected


def test_bad_flags_in_a_flagfile_are_refused(capsys, tmp_path):
  flagfile = tmp_path / "job.flags"
  out = tmp_path / "out"
  flagfile.write_text("--preset=quick\n--output_dir=%s\n--alpha=-0.5\n" % out)
  assert _run(["--flagfile=%s" % flagfile]) == 3
  assert _error_line(capsys.readouterr().err) == (
      "compress: error: --alpha must be in [0, 1], got -0.5")
  assert not out.exists()


# ---------------------------------------------------------------------------
# The binary end to end.


@pytest.mark.slow
def test_the_binary_runs_every_stage_on_a_tiny_idx_folder(tmp_path):
  data_dir, _ = testing_utils.write_fashion_mnist_idx(
      str(tmp_path / "data"), num_train=256, num_test=64, size=8,
      num_classes=4)
  out = tmp_path / "run"
  command = [
      sys.executable, os.path.join(ROOT, "scripts", "compress.py"),
      "--preset=quick", "--output_dir=%s" % out, "--data_dir=%s" % data_dir,
      "--batch_size=32", "--teacher_model=cnn_student", "--teacher_epochs=2",
      "--teacher_optimizer=sgd", "--teacher_learning_rate=0.1",
      "--teacher_learning_rate_decay=none", "--distill_epochs=2",
      "--distill_learning_rate=0.1", "--student_layer_widths=conv1=8,conv2=8",
      "--structured_fraction=0.5", "--target_sparsity=0.5",
      "--prune_epochs=1", "--latency_repeats=3"]
  done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                        timeout=900, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "Traceback" not in done.stderr
  for stage in ("teacher", "distill", "prune", "quantize", "export",
                "verify"):
    assert "== %s: start" % stage in done.stdout
    assert "== %s: done in" % stage in done.stdout
  assert "== report: %s" % (out / "report.md") in done.stdout
  data = json.loads((out / "report.json").read_text())
  assert [r["stage"] for r in data["stages"]] == [
      "teacher", "distilled", "pruned", "frozen_graph", "saved_model",
      "float32", "dynamic_range", "float16", "int8"]
  for row in data["stages"]:
    assert sorted(row) == sorted(report_lib.STAGE_KEYS)
    path = out / row["file"]
    assert path.exists(), row
    if path.is_file():
      assert row["file_bytes"] == os.path.getsize(str(path))
  # The exact flags and the resolved config are in the report.
  assert data["flags"]["preset"] == "quick"
  assert data["flags"]["distill_epochs"] == 2.0
  assert data["flags"]["student_layer_widths"] == "conv1=8,conv2=8"
  assert data["flags"]["resolved"]["student_options"] == {
      "layer_widths": {"conv1": 8, "conv2": 8}}
  assert data["flags"]["resolved"]["latency_repeats"] == 3
  assert data["versions"]["tensorflow"]
  # The binary prints the report it wrote, table included.
  table = report_lib.markdown_table(data["stages"])
  assert table in done.stdout
  assert table in (out / "report.md").read_text()
  # The verify stage read the files back in a fresh process.
  verify_state = json.loads((out / "verify" / "stage.json").read_text())
  assert verify_state["result"]["process"]["pid"] != os.getpid()
