"""Runs scripts/prune.py in-process on a tiny Fashion-MNIST-layout folder."""

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
from distill_v1.evaluation import model_stats
from distill_v1.models import nets_factory
from tests import conftest
from tests import testing_utils

FLAGS = flags.FLAGS
prune = None


@pytest.fixture(autouse=True)
def _prune_binary():
  """Imports scripts/prune.py with only its own flags defined."""
  global prune
  prune = conftest.load_script("prune")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """256 train and 64 test images of 16x16, 10 learnable classes."""
  folder, _ = testing_utils.write_fashion_mnist_idx(
      str(tmp_path_factory.mktemp("fashion_mnist")), size=16)
  return folder


@pytest.fixture(scope="module")
def source(data_dir, tmp_path_factory):
  """A cnn_student trained for 16 steps: the model to prune."""
  return testing_utils.train_source_model(
      str(tmp_path_factory.mktemp("source")), data_dir, epochs=2)


def _run(argv):
  return conftest.run_binary("prune", argv)


_error_line = conftest.error_line


def _tensors(path):
  prefix = checkpoints.resolve_checkpoint(str(path))
  reader = tf.train.load_checkpoint(prefix)
  return {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(prefix)}


def _common(data_dir, source, train_dir):
  return ["--checkpoint=" + source, "--train_dir=" + train_dir,
          "--data_dir=" + data_dir, "--batch_size=32", "--eval_batch_size=64",
          "--log_every_steps=4", "--save_every_steps=0"]


@pytest.mark.parametrize("extra,code,message", [
    ([], 3, "prune: error: nothing to prune: give --target_sparsity > 0, "
     "--pruning_hparams or --structured_fraction > 0"),
    (["--pruning_hparams=target_sparsity=0.5", "--target_sparsity=0.5"], 3,
     "prune: error: --pruning_hparams replaces --target_sparsity: give one "
     "or the other"),
    (["--pruning_hparams=block_height=4,target_sparsity=0.5"], 3,
     "prune: error: --pruning_hparams: block_height=4 is not supported "
     "(contrib's default is 1): only element-wise masks (1x1 blocks) are "
     "implemented"),
    (["--pruning_hparams=prune_option=first_order_gradient"], 3,
     "prune: error: --pruning_hparams: unknown key 'prune_option'; "
     "tf.contrib.model_pruning's keys are: name, begin_pruning_step, "),
    (["--target_sparsity=0.5", "--model=mlp_student"], 3,
     "prune: error: --model=mlp_student, but --checkpoint="),
    (["--target_sparsity=0.5", "--begin_step=8", "--end_step=8"], 3,
     "prune: error: --end_step=8 must be > --begin_step=8"),
    (["--target_sparsity=1.0"], 1,
     "FATAL Flags parsing error: flag --target_sparsity=1.0: "
     "--target_sparsity must be in [0, 1)"),
    (["--structured_fraction=-0.1"], 1,
     "FATAL Flags parsing error: flag --structured_fraction=-0.1: "
     "--structured_fraction must be in [0, 1)"),
])
def test_bad_flags_fail_with_one_line(capsys, tmp_path, data_dir, source,
                                      extra, code, message):
  train_dir = str(tmp_path / "run")
  assert _run(_common(data_dir, source, train_dir) + extra) == code
  assert _error_line(capsys.readouterr().err).startswith(message)
  assert not os.path.exists(os.path.join(train_dir, "model_spec.json"))


def test_missing_checkpoint(capsys, tmp_path, data_dir):
  code = _run(_common(data_dir, str(tmp_path / "nowhere"),
                      str(tmp_path / "run")) + ["--target_sparsity=0.5"])
  assert code == 4  # CheckpointError
  assert _error_line(capsys.readouterr().err).startswith(
      "prune: error: checkpoint %s not found" % (tmp_path / "nowhere"))


@pytest.fixture(scope="module")
def magnitude_runs(data_dir, source, tmp_path_factory):
  """A 16-step run to 50% sparsity, and the same run stopped at 8 and
  resumed (each with --epochs=2: 8 steps an epoch)."""
  root = tmp_path_factory.mktemp("magnitude")
  outputs = {}
  flags_ = ["--target_sparsity=0.5", "--end_step=6", "--pruning_frequency=2",
            "--learning_rate=0.05", "--epochs=2"]
  whole = str(root / "whole")
  resumed = str(root / "resumed")
  global prune
  prune = conftest.load_script("prune")  # Module fixtures run before autouse.
  for name, runs in (("whole", [[]]),
                     ("resumed", [["--max_steps=8"], []])):
    train_dir = whole if name == "whole" else resumed
    for extra in runs:
      out = io.StringIO()
      with contextlib.redirect_stdout(out):
        assert _run(_common(data_dir, source, train_dir) + flags_ +
                    extra) == 0
      outputs.setdefault(name, []).append(out.getvalue())
  return whole, resumed, outputs


def test_magnitude_pruning_end_to_end(magnitude_runs, source):
  whole, _, outputs = magnitude_runs
  text = outputs["whole"][0]
  assert "magnitude pruning: sparsity 0.00 -> 0.50 over steps 0-6" in text
  assert "cnn_student/conv2/kernel" in text
  assert "test accuracy" in text
  report = json.load(open(os.path.join(whole, "prune_report.json")))
  assert report["model"] == "cnn_student"
  assert report["global_step"] == 16
  assert set(report["sparsity"]) == {"cnn_student/conv1/kernel",
                                     "cnn_student/conv2/kernel",
                                     "cnn_student/logits/kernel"}
  for fraction in report["sparsity"].values():
    assert fraction == pytest.approx(0.5, abs=0.01)
  assert 0.0 <= report["before"]["test_accuracy"] <= 1.0
  assert report["after"]["params"] == report["before"]["params"] == 20490 - (
      7 * 7 * 32 * 10 + 10) + (4 * 4 * 32 * 10 + 10)
  # The stripped folder is a plain checkpoint of the same network.
  stripped = _tensors(os.path.join(whole, "stripped"))
  assert not [n for n in stripped if "_mask" in n or "_threshold" in n]
  spec = checkpoints.read_model_spec(os.path.join(whole, "stripped"))
  assert spec["model"] == "cnn_student" and spec["model_options"] == {}
  assert spec["pruning_hparams"]["target_sparsity"] == 0.5
  kernel = stripped["cnn_student/conv2/kernel"]
  assert np.mean(kernel == 0) == pytest.approx(0.5, abs=0.01)
  # Fine-tuning started from the source's weights: the kept ones moved
  # little from them.
  original = _tensors(source)["cnn_student/conv2/kernel"]
  kept = kernel != 0
  assert np.abs(kernel[kept] - original[kept]).mean() < 0.1 * np.abs(
      original).mean()


def test_a_resumed_prune_run_keeps_its_own_weights(magnitude_runs):
  whole, resumed, outputs = magnitude_runs
  assert "resuming from" in outputs["resumed"][1]
  final, uninterrupted = _tensors(resumed), _tensors(whole)
  assert final["global_step"] == 16
  for name, value in uninterrupted.items():
    np.testing.assert_allclose(final[name], value, rtol=1e-5, atol=1e-6,
                               err_msg=name)


def test_a_masked_checkpoint_is_refused_as_source(capsys, magnitude_runs,
                                                  data_dir, tmp_path):
  whole, _, _ = magnitude_runs
  code = _run(_common(data_dir, whole, str(tmp_path / "again")) +
              ["--target_sparsity=0.8"])
  assert code == 3
  line = _error_line(capsys.readouterr().err)
  assert line.startswith("prune: error: --checkpoint=%s holds pruning masks "
                         "(cnn_student/conv1/kernel" % whole)
  assert line.endswith("point it at the stripped/ folder of that run")


def test_contrib_hparams_string(tmp_path, data_dir, source, capsys):
  train_dir = str(tmp_path / "contrib")
  assert _run(_common(data_dir, source, train_dir) + [
      "--epochs=1", "--pruning_hparams=begin_pruning_step=2,"
      "end_pruning_step=6,pruning_frequency=2,target_sparsity=0.75,"
      "sparsity_function_begin_step=2,sparsity_function_end_step=6,"
      "threshold_decay=0.0,nbins=256"]) == 0
  capsys.readouterr()
  masks = _tensors(train_dir)
  assert masks["model_pruning/last_mask_update_step"] == 6
  for name in ("conv1", "conv2", "logits"):
    mask = masks["cnn_student/%s/kernel_mask" % name]
    assert np.mean(mask == 0) == pytest.approx(0.75, abs=0.01)


def test_structured_pruning_with_distillation(tmp_path, data_dir, source,
                                              capsys):
  train_dir = str(tmp_path / "structured")
  assert _run(_common(data_dir, source, train_dir) + [
      "--structured_fraction=0.5", "--distill_from_original", "--epochs=1",
      "--learning_rate=0.02"]) == 0
  text = capsys.readouterr().out
  assert "channels: conv1 16->8, conv2 32->16" in text
  report = json.load(open(os.path.join(train_dir, "prune_report.json")))
  assert report["structured"]["channels"] == {"conv1": [16, 8],
                                              "conv2": [32, 16]}
  assert report["after"]["params"] < report["before"]["params"] / 2
  assert (report["before"]["flops_per_example"] /
          report["after"]["flops_per_example"]) >= 1.8
  spec = checkpoints.read_model_spec(train_dir)
  assert spec["model_options"] == {"layer_widths": {"conv1": 8, "conv2": 16}}
  assert spec["distilled_from"] == [
      "cnn_student:" + checkpoints.resolve_checkpoint(source)]
  stripped = os.path.join(train_dir, "stripped")
  network_fn = nets_factory.get_network_fn("cnn_student",
                                           **spec["model_options"])
  with tf.Graph().as_default():
    network_fn(tf.zeros([1, 16, 16, 1]), 10)
    with tf.compat.v1.Session() as sess:
      checkpoints.restore_variables(
          sess, checkpoints.resolve_checkpoint(stripped),
          model_stats.scope_variables("cnn_student"), "cnn_student")
  # The teacher is not saved with the student.
  assert not [n for n in _tensors(train_dir) if n.startswith("teacher/")]
  assert not pruning.checkpoint_masks(train_dir)
