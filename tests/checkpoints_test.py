"""Tests of distill_v1.checkpoints: paths and model_spec.json."""

import json
import os
import re

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1 import checkpoints

v1 = tf.compat.v1

SPEC = {
    "model": "cnn_student",
    "model_options": {},
    "num_classes": 10,
    "image_shape": [28, 28, 1],
    "class_names": ["c%d" % i for i in range(10)],
    "dataset": "fashion_mnist",
}


def _save(train_dir, steps):
  """Saves `model.ckpt-<step>` for each step; returns the prefixes."""
  prefixes = []
  with tf.Graph().as_default():
    w = v1.get_variable("w", initializer=np.zeros([2], np.float32))
    saver = v1.train.Saver(max_to_keep=10)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      for step in steps:
        w.load(np.full([2], step, np.float32), sess)
        prefixes.append(saver.save(
            sess, os.path.join(train_dir, checkpoints.CHECKPOINT_BASENAME),
            global_step=step))
  return prefixes


def test_resolve_directory_gives_latest_and_prefix_gives_itself(tmp_path):
  train_dir = str(tmp_path)
  first, last = _save(train_dir, [5, 7])
  assert first == os.path.join(train_dir, "model.ckpt-5")
  assert checkpoints.resolve_checkpoint(train_dir) == last
  assert checkpoints.resolve_checkpoint(first) == first
  assert checkpoints.latest_checkpoint(train_dir) == last
  assert checkpoints.checkpoint_exists(first)
  assert not checkpoints.checkpoint_exists(first + ".index")
  reader = tf.train.load_checkpoint(checkpoints.resolve_checkpoint(first))
  np.testing.assert_array_equal(reader.get_tensor("w"), [5.0, 5.0])


def test_resolve_missing_prefix(tmp_path):
  missing = str(tmp_path / "model.ckpt-3")
  with pytest.raises(errors.CheckpointError,
                     match=r"checkpoint %s not found: give a checkpoint prefix"
                     % re.escape(missing)):
    checkpoints.resolve_checkpoint(missing)


def test_resolve_index_file_is_not_a_prefix(tmp_path):
  (prefix,) = _save(str(tmp_path), [2])
  with pytest.raises(errors.CheckpointError, match=r"\(without \.index\)"):
    checkpoints.resolve_checkpoint(prefix + ".index")


def test_resolve_empty_directory(tmp_path):
  with pytest.raises(errors.CheckpointError,
                     match=r"directory %s holds no checkpoint" %
                     re.escape(str(tmp_path))):
    checkpoints.resolve_checkpoint(str(tmp_path))
  assert checkpoints.latest_checkpoint(str(tmp_path)) is None
  assert checkpoints.latest_checkpoint(str(tmp_path / "nowhere")) is None


def test_resolve_directory_whose_files_were_deleted(tmp_path):
  (prefix,) = _save(str(tmp_path), [4])
  os.remove(prefix + ".index")
  with pytest.raises(errors.CheckpointError, match=r"holds no checkpoint"):
    checkpoints.resolve_checkpoint(str(tmp_path))
  assert checkpoints.latest_checkpoint(str(tmp_path)) is None


def test_resolve_nothing_given():
  with pytest.raises(errors.CheckpointError, match=r"no checkpoint given"):
    checkpoints.resolve_checkpoint("")


@pytest.mark.parametrize("prefix,step", [
    ("/a/model.ckpt-100", 100),
    ("model.ckpt-0", 0),
    ("/a/model.ckpt", None),
    ("/a-b/model.ckpt-x", None),
])
def test_step_of(prefix, step):
  assert checkpoints.step_of(prefix) == step


def test_stored_global_step_is_the_variable_not_the_name(tmp_path):
  # As on an asynchronous cluster: named at step 5, another worker stepped
  # twice before the variables were written.
  with tf.Graph().as_default():
    step = v1.train.get_or_create_global_step()
    v1.get_variable("w", initializer=np.zeros([2], np.float32))
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      sess.run(step.assign(7))
      prefix = v1.train.Saver().save(sess, str(tmp_path / "model.ckpt-5"))
  assert checkpoints.step_of(prefix) == 5
  assert checkpoints.stored_global_step(prefix) == 7


def test_stored_global_step_falls_back_to_the_name(tmp_path):
  prefix = _save(str(tmp_path), [3])[0]  # holds only `w`
  assert checkpoints.stored_global_step(prefix) == 3
  assert checkpoints.stored_global_step(str(tmp_path / "missing")) is None


def test_model_spec_round_trip(tmp_path):
  checkpoints.write_model_spec(str(tmp_path), SPEC)
  assert checkpoints.read_model_spec(str(tmp_path)) == SPEC
  # A checkpoint prefix inside the directory finds the same file.
  prefix = os.path.join(str(tmp_path), "model.ckpt-9")
  assert checkpoints.read_model_spec(prefix) == SPEC
  assert os.listdir(str(tmp_path)) == [checkpoints.MODEL_SPEC_FILENAME]


def test_write_model_spec_missing_keys(tmp_path):
  spec = dict(SPEC)
  del spec["image_shape"]
  del spec["dataset"]
  with pytest.raises(errors.ConfigError,
                     match=r"model spec lacks keys image_shape, dataset"):
    checkpoints.write_model_spec(str(tmp_path), spec)
  assert os.listdir(str(tmp_path)) == []


def test_read_model_spec_missing_file(tmp_path):
  path = os.path.join(str(tmp_path), "model_spec.json")
  with pytest.raises(errors.CheckpointError,
                     match=r"%s not found: pass --model" % re.escape(path)):
    checkpoints.read_model_spec(str(tmp_path))


def test_read_model_spec_missing_keys(tmp_path):
  path = os.path.join(str(tmp_path), "model_spec.json")
  with open(path, "w") as f:
    json.dump({"model": "cnn_student", "num_classes": 10}, f)
  with pytest.raises(errors.CheckpointError,
                     match=r"%s lacks keys model_options, image_shape, "
                     r"class_names, dataset" % re.escape(path)):
    checkpoints.read_model_spec(str(tmp_path))


def test_read_model_spec_bad_json(tmp_path):
  path = os.path.join(str(tmp_path), "model_spec.json")
  with open(path, "w") as f:
    f.write("{")
  with pytest.raises(errors.CheckpointError,
                     match=r"%s is not valid JSON" % re.escape(path)):
    checkpoints.read_model_spec(str(tmp_path))
