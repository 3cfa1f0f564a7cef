"""Runs scripts/evaluate.py in-process (flags parsed, main called)."""

import json
import os

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from distill_v1.compat import tf
from distill_v1.models import nets_factory
from distill_v1 import checkpoints
from tests import conftest

FLAGS = flags.FLAGS
v1 = tf.compat.v1
evaluate = None


@pytest.fixture(autouse=True)
def _evaluate_binary():
  """Imports scripts/evaluate.py with only its own flags defined."""
  global evaluate
  evaluate = conftest.load_script("evaluate")


def _run(argv):
  """Parses `argv` into FLAGS and calls main; returns the exit code."""
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["evaluate"] + argv)
    try:
      evaluate.main(["evaluate"])
    except SystemExit as e:
      return e.code
  return 0


def _write_train_dir(tmp_path):
  """A cnn_student checkpoint on 6x6 images, 2 classes, with an npz data set."""
  rng = np.random.RandomState(0)
  npz_path = str(tmp_path / "tiny.npz")
  np.savez(npz_path,
           x_train=rng.randint(0, 256, size=(4, 6, 6)).astype(np.uint8),
           y_train=np.array([0, 1, 0, 1]),
           x_test=rng.randint(0, 256, size=(7, 6, 6)).astype(np.uint8),
           y_test=np.array([0, 1, 1, 0, 1, 0, 1]),
           class_names=np.array(["left", "right"]))
  train_dir = str(tmp_path / "train")
  os.makedirs(train_dir)
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, 6, 6, 1])
    nets_factory.get_network_fn("cnn_student")(images, 2)
    global_step = v1.train.get_or_create_global_step()
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      global_step.load(3, sess)
      v1.train.Saver().save(sess, os.path.join(train_dir, "model.ckpt"),
                            global_step=3)
  checkpoints.write_model_spec(train_dir, {
      "model": "cnn_student", "model_options": {}, "num_classes": 2,
      "image_shape": [6, 6, 1], "class_names": ["left", "right"],
      "dataset": "npz:" + npz_path})
  return train_dir


def test_missing_checkpoint_is_one_line_error(tmp_path, capsys):
  missing = str(tmp_path / "nowhere" / "model.ckpt-1")
  code = _run(["--checkpoint=" + missing])
  captured = capsys.readouterr()
  assert code == 4  # CheckpointError.exit_code
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1
  assert lines[0].startswith("evaluate: error: checkpoint %s not found" %
                             missing)
  assert "Traceback" not in captured.err
  assert not os.path.exists(str(tmp_path / "nowhere"))


def test_unknown_model_is_one_line_error(tmp_path, capsys):
  train_dir = _write_train_dir(tmp_path)
  code = _run(["--checkpoint=" + train_dir, "--model=resnet_9000"])
  err = capsys.readouterr().err
  assert code == 3  # ConfigError.exit_code
  assert len(err.strip().splitlines()) == 1
  assert "evaluate: error: Unknown model 'resnet_9000'" in err
  assert not os.path.exists(os.path.join(train_dir, "eval.json"))


def test_evaluates_train_dir_and_writes_json(tmp_path, capsys):
  train_dir = _write_train_dir(tmp_path)
  code = _run(["--checkpoint=" + train_dir, "--latency_repeats=1",
               "--batch_size=3"])
  out = capsys.readouterr().out
  assert code == 0
  assert "test accuracy" in out and "right" in out
  with open(os.path.join(train_dir, "eval.json")) as f:
    result = json.load(f)
  assert result["global_step"] == 3
  assert result["num_test_examples"] == 7
  assert list(result["per_class_accuracy"]) == ["left", "right"]
  assert result["params"] == 160 + 4640 + (1 * 1 * 32) * 2 + 2


def test_validators_reject_bad_values():
  with flagsaver.flagsaver():
    with pytest.raises(Exception, match=r"--batch_size must be >= 1"):
      FLAGS(["evaluate", "--checkpoint=x", "--batch_size=0"])
