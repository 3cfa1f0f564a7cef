"""Runs scripts/quantize.py in-process on a tiny Fashion-MNIST-layout folder."""

import contextlib
import io
import json
import os

from absl import flags
import numpy as np
import pytest

from distill_v1 import checkpoints
from distill_v1.compat import tf
from distill_v1.compression import pruning
from distill_v1.data import datasets
from distill_v1.evaluation import verify_runner
from tests import conftest
from tests import testing_utils

FLAGS = flags.FLAGS
quantize = None


@pytest.fixture(autouse=True)
def _quantize_binary():
  """Imports scripts/quantize.py with only its own flags defined."""
  global quantize
  quantize = conftest.load_script("quantize")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """256 train and 64 test images of 16x16, 10 learnable classes."""
  folder, _ = testing_utils.write_fashion_mnist_idx(
      str(tmp_path_factory.mktemp("fashion_mnist")), size=16)
  return folder


@pytest.fixture(scope="module")
def source(data_dir, tmp_path_factory):
  """A cnn_student trained for 24 steps: the float model to quantize."""
  return testing_utils.train_source_model(
      str(tmp_path_factory.mktemp("source")), data_dir, epochs=3)


def _run(argv):
  return conftest.run_binary("quantize", argv)


_error_line = conftest.error_line


def _common(data_dir, source, train_dir):
  return ["--checkpoint=" + source, "--train_dir=" + train_dir,
          "--data_dir=" + data_dir, "--batch_size=32", "--eval_batch_size=64",
          "--log_every_steps=4", "--save_every_steps=0"]


@pytest.fixture(scope="module")
def run(data_dir, source, tmp_path_factory):
  """One QAT run of 2 epochs (16 steps) with every export, not verified."""
  global quantize
  quantize = conftest.load_script("quantize")  # Module fixtures run first.
  train_dir = str(tmp_path_factory.mktemp("qat"))
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    code = _run(_common(data_dir, source, train_dir) +
                ["--epochs=2", "--learning_rate=0.02", "--noverify",
                 "--num_calibration_examples=32"])
  assert code == 0, out.getvalue()
  return train_dir, out.getvalue()


def test_quantize_end_to_end(run, data_dir, source):
  train_dir, text = run
  assert "source (cnn_student)  float test accuracy" in text
  assert "QAT fine-tuned (session)  test accuracy" in text
  assert "int8 input images: int8 scale 0.00392157 zero point -128" in text
  assert "int8 output logits: int8 scale" in text
  report = json.load(open(os.path.join(train_dir, "quantize_report.json")))
  assert report["model"] == "cnn_student"
  assert report["global_step"] == 16
  assert report["float_test_accuracy"] > 0.5
  assert report["qat_test_accuracy"] >= report["float_test_accuracy"] - 0.05
  export_dir = os.path.join(train_dir, "export")
  assert report["export"]["output_dir"] == export_dir
  for name in ("frozen_graph.pb", "saved_model/1/saved_model.pb",
               "model_float32.tflite", "model_dynamic_range.tflite",
               "model_float16.tflite", "model_int8.tflite", "export.json"):
    assert os.path.exists(os.path.join(export_dir, name)), name
  int8 = report["export"]["tflite"]["int8"]
  assert int8["inputs"][0]["dtype"] == "int8"
  assert [o["dtype"] for o in int8["outputs"]] == ["int8", "int8"]
  sizes = {k: v["bytes"] for k, v in report["export"]["files"].items()}
  assert sizes["int8"] * 2.5 < sizes["float32"]

  # The checkpoint holds the trained ranges; the spec says where it came
  # from.
  names = dict(tf.train.list_variables(train_dir))
  assert "cnn_student/conv1/output_quant/max" in names
  assert "cnn_student/logits_quant/min" in names
  spec = checkpoints.read_model_spec(train_dir)
  assert spec["quantized_from"] == checkpoints.resolve_checkpoint(source)
  assert spec["quantization"]["num_bits"] == 8

  # The int8 file scores like the QAT session on the test split.
  splits = datasets.load_dataset("fashion_mnist", data_dir=data_dir)
  model = verify_runner.load_exported_model(
      os.path.join(export_dir, "model_int8.tflite"))
  accuracy = np.mean(np.argmax(model.predict(splits.test_images), 1) ==
                     splits.test_labels)
  assert abs(accuracy - report["qat_test_accuracy"]) <= 0.02


def test_existing_export_is_refused_before_training(run, data_dir, source,
                                                    capsys):
  train_dir, _ = run
  step_before = checkpoints.step_of(checkpoints.latest_checkpoint(train_dir))
  assert _run(_common(data_dir, source, train_dir) +
              ["--epochs=3", "--noverify"]) == 6
  assert _error_line(capsys.readouterr().err).startswith(
      "quantize: error: export target(s) already exist in %s" %
      os.path.join(train_dir, "export"))
  assert checkpoints.step_of(
      checkpoints.latest_checkpoint(train_dir)) == step_before


@pytest.mark.slow
def test_quantize_with_verification(data_dir, source, tmp_path):
  train_dir = str(tmp_path / "qat")
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    code = _run(_common(data_dir, source, train_dir) +
                ["--epochs=1", "--formats=float32,int8",
                 "--latency_repeats=3", "--num_compare_examples=64"])
  text = out.getvalue()
  assert code == 0, text
  assert "test accuracy" in text and "vs the QAT session" in text
  report = json.load(open(os.path.join(train_dir, "quantize_report.json")))
  rows = report["export"]["verification"]
  assert abs(rows["int8"]["accuracy_delta_points"]) <= 1.0
  assert rows["int8"]["argmax_agreement"] >= 0.95
  assert rows["float32"]["argmax_agreement"] == 1.0


def _masked_copy(source, folder):
  prefix = checkpoints.resolve_checkpoint(source)
  reader = tf.train.load_checkpoint(prefix)
  tensors = {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(
      prefix)}
  tensors["cnn_student/conv1/kernel_mask"] = np.ones_like(
      tensors["cnn_student/conv1/kernel"])
  pruning.write_checkpoint(folder, tensors, 24,
                           checkpoints.read_model_spec(source))
  return folder


@pytest.mark.parametrize("extra,code,message", [
    (["--model=mlp_student"], 3,
     "quantize: error: --model=mlp_student, but --checkpoint="),
    (["--width_multiplier=0.5"], 3,
     "quantize: error: --width_multiplier: the architecture comes from "
     "--checkpoint's model_spec.json"),
    (["--ema_decay=1.0"], 1,
     "FATAL Flags parsing error: flag --ema_decay=1.0: --ema_decay must be "
     "in [0, 1)"),
    (["--formats=int8,int9"], 1,
     "FATAL Flags parsing error: flag --formats=['int8', 'int9']: --formats "
     "must be 'all' or distinct names among"),
    (["--output_dir="], 1,
     "FATAL Flags parsing error: flag --output_dir=: --output_dir must not "
     "be empty"),
    (["--epochs=0"], 1,
     "FATAL Flags parsing error: flag --epochs=0.0: --epochs must be > 0"),
])
def test_bad_flags_fail_with_one_line(capsys, tmp_path, data_dir, source,
                                      extra, code, message):
  train_dir = str(tmp_path / "run")
  assert _run(_common(data_dir, source, train_dir) + extra) == code
  assert _error_line(capsys.readouterr().err).startswith(message)
  assert not os.path.exists(os.path.join(train_dir, "model_spec.json"))


def test_missing_and_masked_checkpoints(capsys, tmp_path, data_dir, source):
  nowhere = str(tmp_path / "nowhere")
  assert _run(_common(data_dir, nowhere, str(tmp_path / "a"))) == 4
  assert _error_line(capsys.readouterr().err).startswith(
      "quantize: error: checkpoint %s not found" % nowhere)
  masked = _masked_copy(source, str(tmp_path / "masked"))
  assert _run(_common(data_dir, masked, str(tmp_path / "b"))) == 3
  assert _error_line(capsys.readouterr().err).startswith(
      "quantize: error: --checkpoint=%s holds pruning masks "
      "(cnn_student/conv1/kernel): point it at the stripped/ folder" %
      masked)
  assert not os.path.exists(str(tmp_path / "b"))
