"""Runs scripts/train.py: in-process for flag and input errors, and once as a
subprocess end to end on a tiny Fashion-MNIST-layout IDX folder."""

import json
import os
import subprocess
import sys

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from distill_v1.compat import tf
from distill_v1.data import datasets
from tests import conftest
from tests import testing_utils

FLAGS = flags.FLAGS
train = None


@pytest.fixture(autouse=True)
def _train_binary():
  """Imports scripts/train.py with only its own flags defined."""
  global train
  train = conftest.load_script("train")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """256 train and 64 test images of 28x28, 10 learnable classes."""
  folder, _ = testing_utils.write_fashion_mnist_idx(
      str(tmp_path_factory.mktemp("fashion_mnist")))
  return folder


def _run(argv):
  return conftest.run_binary("train", argv)


_error_line = conftest.error_line


def test_missing_train_dir(capsys, data_dir):
  code = _run(["--data_dir=" + data_dir])
  assert code == 1
  line = _error_line(capsys.readouterr().err)
  assert line.startswith("FATAL Flags parsing error: flag --train_dir=None")


@pytest.mark.parametrize("flag,message", [
    ("--epochs=0", "--epochs must be > 0"),
    ("--learning_rate=0", "--learning_rate must be > 0"),
    ("--batch_size=0", "--batch_size=0"),
    ("--optimizer=adagrad", "--optimizer"),
    ("--learning_rate_decay=linear", "--learning_rate_decay"),
])
def test_bad_flag_values(capsys, tmp_path, flag, message):
  train_dir = str(tmp_path / "run")
  code = _run(["--train_dir=" + train_dir, flag])
  assert code == 1
  line = _error_line(capsys.readouterr().err)
  assert line.startswith("FATAL Flags parsing error:")
  assert message in line
  assert not os.path.exists(train_dir)


@pytest.mark.parametrize("extra,code,message", [
    (["--dataset=cifar10"], 3,
     "train: error: unknown dataset 'cifar10'; expected one of "
     "fashion_mnist, mnist or npz:PATH"),
    (["--model=resnet_9000"], 3,
     "train: error: Unknown model 'resnet_9000'; known models: mlp_teacher, "
     "mlp_student, cnn_teacher, cnn_student, mobilenet_v1"),
    (["--model=cnn_student", "--width_multiplier=0.5"], 0, None),
])
def test_bad_dataset_or_model(capsys, tmp_path, data_dir, extra, code,
                              message):
  if code == 0:  # width_multiplier is ignored by the other networks
    extra = extra + ["--max_steps=1", "--batch_size=8"]
  train_dir = str(tmp_path / "run")
  assert _run(["--train_dir=" + train_dir, "--data_dir=" + data_dir] +
              extra) == code
  captured = capsys.readouterr()
  if code:
    assert _error_line(captured.err) == message
    assert not os.path.exists(train_dir)
  else:
    assert os.path.exists(os.path.join(train_dir, "metrics.json"))


def test_data_dir_without_data(capsys, tmp_path):
  empty = str(tmp_path / "empty")
  os.makedirs(empty)
  train_dir = str(tmp_path / "run")
  code = _run(["--train_dir=" + train_dir, "--data_dir=" + empty])
  assert code == 2  # DataError
  line = _error_line(capsys.readouterr().err)
  assert line.startswith("train: error: fashion_mnist not found in data_dir: "
                         "data_dir %s: no fashion_mnist files" % empty)
  assert "apt-get install dataset-fashion-mnist" in line
  assert not os.path.exists(train_dir)


def test_flags_reach_the_training_config(tmp_path):
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["train", "--train_dir=" + str(tmp_path), "--epochs=2.5",
           "--batch_size=32", "--learning_rate=0.01",
           "--learning_rate_decay=cosine", "--learning_rate_decay_rate=0.5",
           "--warmup_epochs=0.5", "--weight_decay=0.0004",
           "--optimizer=momentum", "--momentum=0.8", "--seed=7",
           "--save_every_steps=50", "--log_every_steps=5",
           "--summary_every_steps=6", "--eval_batch_size=250",
           "--max_steps=99", "--intra_op_threads=2", "--inter_op_threads=1",
           "--model=mobilenet_v1", "--width_multiplier=0.25",
           "--deterministic", "--divergence_factor=20",
           "--precision=bfloat16", "--xla", "--nofused_updates",
           "--nofast_gradients"])
    config = train.common_flags.training_config()
    options = train.common_flags.model_options()
  assert config._asdict() == dict(
      train_dir=str(tmp_path), epochs=2.5, batch_size=32,
      learning_rate=0.01, learning_rate_decay="cosine",
      learning_rate_decay_rate=0.5, decay_epochs=None, warmup_epochs=0.5,
      weight_decay=0.0004, optimizer="momentum", momentum=0.8, seed=7,
      save_every_steps=50, log_every_steps=5, summary_every_steps=6,
      eval_batch_size=250, max_to_keep=3, intra_op_threads=2,
      inter_op_threads=1, max_steps=99, deterministic=True,
      divergence_factor=20.0, precision="bfloat16", xla=True,
      fused_updates=False, fast_gradients=False)
  assert options == {"width_multiplier": 0.25}


def test_in_process_run_writes_spec_and_metrics(capsys, tmp_path, data_dir):
  train_dir = str(tmp_path / "run")
  code = _run(["--train_dir=" + train_dir, "--data_dir=" + data_dir,
               "--model=mlp_student", "--batch_size=64", "--epochs=1",
               "--validation_size=64", "--seed=3"])
  out = capsys.readouterr().out
  assert code == 0
  # 256 - 64 validation examples = 3 steps of 64.
  assert "final test accuracy" in out and "(step 3)" in out
  with open(os.path.join(train_dir, "model_spec.json")) as f:
    spec = json.load(f)
  assert spec == {
      "model": "mlp_student", "model_options": {}, "num_classes": 10,
      "image_shape": [28, 28, 1],
      "class_names": list(datasets.FASHION_MNIST_CLASS_NAMES),
      "dataset": "fashion_mnist"}
  with open(os.path.join(train_dir, "metrics.json")) as f:
    metrics = json.load(f)
  assert metrics["global_step"] == 3
  assert metrics["model"] == "mlp_student"
  assert metrics["validation_accuracy"] is not None
  assert os.path.exists(os.path.join(train_dir, "model.ckpt-3.index"))


def test_end_to_end_subprocess(tmp_path, data_dir):
  train_dir = str(tmp_path / "run")
  env = dict(os.environ)
  env.pop("DISTILL_V1_DATA", None)
  result = subprocess.run(
      [sys.executable, "scripts/train.py", "--data_dir=" + data_dir,
       "--train_dir=" + train_dir, "--model=cnn_student", "--epochs=1",
       "--batch_size=32", "--learning_rate=0.1", "--log_every_steps=4"],
      cwd=conftest.ROOT, env=env, capture_output=True, text=True,
      timeout=120)
  assert result.returncode == 0, result.stderr
  assert "Traceback" not in result.stderr
  assert "epoch 1/1 step 4/8" in result.stdout
  assert "final test accuracy" in result.stdout
  assert os.path.exists(os.path.join(train_dir, "model.ckpt-8.index"))
  with open(os.path.join(train_dir, "checkpoint")) as f:
    assert 'model_checkpoint_path: "model.ckpt-8"' in f.read()
  with open(os.path.join(train_dir, "metrics.json")) as f:
    metrics = json.load(f)
  assert metrics["model"] == "cnn_student"
  assert metrics["global_step"] == 8 and metrics["epoch"] == 1
  assert 0.0 <= metrics["test_accuracy"] <= 1.0
  assert len(metrics["history"]) == 1

  help_result = subprocess.run(
      [sys.executable, "scripts/train.py", "--helpfull"], cwd=conftest.ROOT,
      capture_output=True, text=True, timeout=60)
  # absl's help flags exit with status 1 after printing the usage.
  assert "Traceback" not in help_result.stderr
  assert help_result.stdout.startswith("Trains a model-zoo network")
  for flag in ("model", "dataset", "data_dir", "train_dir", "epochs",
               "batch_size", "learning_rate", "learning_rate_decay",
               "weight_decay", "optimizer", "seed", "save_every_steps",
               "validation_size", "max_steps", "flagfile"):
    assert "--%s" % flag in help_result.stdout, flag


def test_prune_flags_zero_the_scheduled_fraction_and_strip_the_masks(
    capsys, tmp_path, data_dir):
  train_dir = str(tmp_path / "pruned")
  # 256 examples in batches of 32: 8 steps an epoch, 3 epochs = 24 steps;
  # masks update every 2 steps from step 0 to step 12 (the end step).
  code = _run(["--train_dir=" + train_dir, "--data_dir=" + data_dir,
               "--model=cnn_student", "--batch_size=32", "--epochs=3",
               "--learning_rate=0.05", "--prune_target_sparsity=0.75",
               "--prune_end_step=12", "--prune_frequency=2"])
  out = capsys.readouterr().out
  assert code == 0, out
  assert "pruned: 75.0% of the masked weights are zero" in out
  stripped = os.path.join(train_dir, "stripped")
  prefix = tf.train.latest_checkpoint(stripped)
  names = [n for n, _ in tf.train.list_variables(prefix)]
  assert not [n for n in names if "mask" in n or "threshold" in n]
  reader = tf.train.load_checkpoint(prefix)
  for name in ("cnn_student/conv2/kernel", "cnn_student/logits/kernel"):
    kernel = reader.get_tensor(name)
    np.testing.assert_allclose(np.mean(kernel == 0), 0.75, atol=0.01)


def test_pruning_hparams_string_excludes_the_schedule_flags(capsys, tmp_path,
                                                            data_dir):
  code = _run(["--train_dir=" + str(tmp_path / "x"), "--data_dir=" + data_dir,
               "--pruning_hparams=target_sparsity=0.5",
               "--prune_end_step=10"])
  assert code != 0
  assert "--pruning_hparams replaces --prune_end_step" in _error_line(
      capsys.readouterr().err)
  assert not os.path.exists(str(tmp_path / "x"))
