"""Tests of distill_v1.evaluation.evaluate_lib on a hand-made training dir."""

import json
import os

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.data import datasets
from distill_v1.evaluation import evaluate_lib
from distill_v1.models import nets_factory
from distill_v1 import checkpoints

v1 = tf.compat.v1

IMAGE_SHAPE = (8, 8, 1)
NUM_CLASSES = 3
CLASS_NAMES = ("cat", "dog", "bird")
NUM_TEST = 23  # not a multiple of the batch size used below


def _np_conv_same(x, kernel, bias):
  """[N, H, W, C] * [3, 3, C, F], stride 1, SAME padding, + bias."""
  kh, kw = kernel.shape[:2]
  padded = np.pad(x, [(0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)])
  out = np.zeros(x.shape[:3] + (kernel.shape[3],))
  for i in range(kh):
    for j in range(kw):
      patch = padded[:, i:i + x.shape[1], j:j + x.shape[2], :]
      out += np.einsum("nhwc,cf->nhwf", patch, kernel[i, j])
  return out + bias


def _np_max_pool2(x):
  n, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2, :]
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def np_cnn_student(images, w):
  """numpy forward pass of cnn_student from its variable values `w`."""
  net = np.maximum(_np_conv_same(images, w["cnn_student/conv1/kernel"],
                                 w["cnn_student/conv1/bias"]), 0)
  net = _np_max_pool2(net)
  net = np.maximum(_np_conv_same(net, w["cnn_student/conv2/kernel"],
                                 w["cnn_student/conv2/bias"]), 0)
  net = _np_max_pool2(net)
  net = net.reshape(net.shape[0], -1)
  return net @ w["cnn_student/logits/kernel"] + w["cnn_student/logits/bias"]


def _splits(seed=0, num_test=NUM_TEST):
  rng = np.random.RandomState(seed)
  test_images = rng.uniform(size=(num_test,) + IMAGE_SHAPE).astype(np.float32)
  test_labels = rng.randint(0, NUM_CLASSES, size=num_test).astype(np.int64)
  train_images = rng.uniform(size=(4,) + IMAGE_SHAPE).astype(np.float32)
  train_labels = rng.randint(0, NUM_CLASSES, size=4).astype(np.int64)
  return datasets.DataSplits(
      name="tiny", train_images=train_images, train_labels=train_labels,
      validation_images=train_images[:0], validation_labels=train_labels[:0],
      test_images=test_images, test_labels=test_labels,
      num_classes=NUM_CLASSES, class_names=CLASS_NAMES,
      image_shape=IMAGE_SHAPE)


def write_train_dir(train_dir, model="cnn_student", step=0,
                    image_shape=IMAGE_SHAPE, spec_model=None):
  """Writes model.ckpt-<step>, `checkpoint` and model_spec.json.

  Returns:
    (prefix, {variable name: value}) with random (not initial) values, so the
    restore is seen to take effect.
  """
  os.makedirs(train_dir, exist_ok=True)
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None] + list(image_shape))
    nets_factory.get_network_fn(model)(images, NUM_CLASSES, scope=model)
    global_step = v1.train.get_or_create_global_step()
    rng = np.random.RandomState(7)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      values = {}
      for v in v1.global_variables():
        if v.op.name == "global_step":
          continue
        value = rng.normal(scale=0.5, size=v.shape.as_list()).astype(
            np.float32)
        v.load(value, sess)
        values[v.op.name] = value
      global_step.load(step, sess)
      prefix = v1.train.Saver().save(
          sess, os.path.join(train_dir, checkpoints.CHECKPOINT_BASENAME),
          global_step=step)
  checkpoints.write_model_spec(train_dir, {
      "model": spec_model or model,
      "model_options": {},
      "num_classes": NUM_CLASSES,
      "image_shape": list(IMAGE_SHAPE),
      "class_names": list(CLASS_NAMES),
      "dataset": "tiny",
  })
  return prefix, values


def _fast(**kwargs):
  kwargs.setdefault("latency_repeats", 2)
  kwargs.setdefault("latency_warmup", 1)
  return kwargs


def test_evaluate_checkpoint_matches_numpy(tmp_path):
  train_dir = str(tmp_path / "train")
  prefix, values = write_train_dir(train_dir, step=12)
  splits = _splits()
  np_logits = np_cnn_student(splits.test_images.astype(np.float64), values)
  np_predictions = np.argmax(np_logits, axis=1)
  # Make the accuracy informative (neither 0 nor 1): relabel half the
  # examples with the numpy prediction.
  labels = splits.test_labels.copy()
  labels[::2] = np_predictions[::2]
  splits = splits._replace(test_labels=labels)
  shifted = np_logits - np_logits.max(axis=1, keepdims=True)
  np_loss = np.mean(np.log(np.exp(shifted).sum(axis=1)) -
                    shifted[np.arange(NUM_TEST), labels])

  result = evaluate_lib.evaluate_checkpoint(train_dir, splits=splits,
                                            batch_size=5, **_fast())

  assert tuple(result) == evaluate_lib.RESULT_KEYS
  assert result["model"] == "cnn_student"
  assert result["checkpoint"] == os.path.abspath(prefix)
  assert result["global_step"] == 12
  assert result["num_test_examples"] == NUM_TEST
  assert result["test_accuracy"] == pytest.approx(
      np.mean(np_predictions == labels))
  assert 0 < result["test_accuracy"] < 1
  assert result["test_loss"] == pytest.approx(np_loss, rel=1e-4)
  for c, name in enumerate(CLASS_NAMES):
    mask = labels == c
    expected = np.mean(np_predictions[mask] == c) if mask.any() else None
    assert result["per_class_accuracy"][name] == pytest.approx(expected)
  assert list(result["per_class_accuracy"]) == list(CLASS_NAMES)
  # conv1 3*3*1*16+16, conv2 3*3*16*32+32, logits (2*2*32)*3+3.
  assert result["params"] == 160 + 4640 + 387
  flops = (2 * 64 * 9 * 16 + 64 * 16 + 4 * 16 * 16 +  # conv1, bias, pool1
           2 * 16 * 144 * 32 + 16 * 32 + 4 * 4 * 32 +  # conv2, bias, pool2
           2 * 128 * 3 + 3)  # logits
  assert result["flops_per_example"] == flops
  assert result["checkpoint_bytes"] == os.path.getsize(
      prefix + ".index") + os.path.getsize(prefix + ".data-00000-of-00001")
  assert sorted(result["latency_ms"]) == ["batch_1", "batch_128"]
  assert all(ms > 0 for ms in result["latency_ms"].values())


def test_prefix_and_directory_agree_and_latest_is_used(tmp_path):
  train_dir = str(tmp_path / "train")
  write_train_dir(train_dir, step=1)
  prefix, _ = write_train_dir(train_dir, step=5)
  splits = _splits()
  by_dir = evaluate_lib.evaluate_checkpoint(train_dir, splits=splits,
                                            **_fast())
  by_prefix = evaluate_lib.evaluate_checkpoint(prefix, splits=splits,
                                               **_fast())
  assert by_dir["checkpoint"] == by_prefix["checkpoint"] == os.path.abspath(
      prefix)
  assert by_dir["test_accuracy"] == by_prefix["test_accuracy"]


def test_other_architecture_names_the_variables(tmp_path):
  # Trained on 3-channel images, but the spec says 1 channel.
  train_dir = str(tmp_path / "train")
  write_train_dir(train_dir, image_shape=(8, 8, 3))
  with pytest.raises(
      errors.CheckpointError,
      match=r"does not fit model cnn_student.*cnn_student/conv1/kernel has "
      r"shape \[3, 3, 3, 16\] in the checkpoint but \[3, 3, 1, 16\] in the "
      r"model"):
    evaluate_lib.evaluate_checkpoint(train_dir, splits=_splits(), **_fast())


def test_model_override_without_its_variables(tmp_path):
  train_dir = str(tmp_path / "train")
  write_train_dir(train_dir)
  with pytest.raises(
      errors.CheckpointError,
      match=r"mlp_student/.*kernel .* is missing from the checkpoint.*"
      r"holds variables under: cnn_student, global_step"):
    evaluate_lib.evaluate_checkpoint(train_dir, splits=_splits(),
                                     model="mlp_student", **_fast())


def test_missing_checkpoint_and_missing_spec(tmp_path):
  with pytest.raises(errors.CheckpointError, match=r"holds no checkpoint"):
    evaluate_lib.evaluate_checkpoint(str(tmp_path), splits=_splits())
  train_dir = str(tmp_path / "train")
  write_train_dir(train_dir)
  os.remove(os.path.join(train_dir, checkpoints.MODEL_SPEC_FILENAME))
  with pytest.raises(errors.CheckpointError, match=r"model_spec.json"):
    evaluate_lib.evaluate_checkpoint(train_dir, splits=_splits())
  # With the model given, the spec is not needed.
  result = evaluate_lib.evaluate_checkpoint(
      train_dir, splits=_splits(), model="cnn_student", **_fast())
  assert result["model"] == "cnn_student"


def test_data_that_does_not_fit_the_spec(tmp_path):
  train_dir = str(tmp_path / "train")
  write_train_dir(train_dir)
  splits = _splits()._replace(num_classes=4, class_names=CLASS_NAMES + ("x",))
  with pytest.raises(errors.DataError, match=r"has 3 classes .* tiny has 4"):
    evaluate_lib.evaluate_checkpoint(train_dir, splits=splits, **_fast())


def _result():
  return {
      "model": "cnn_student",
      "checkpoint": "/tmp/t/model.ckpt-4690",
      "global_step": 4690,
      "test_accuracy": 0.88614,
      "test_loss": 0.3312,
      "params": 20490,
      "flops_per_example": 1234567,
      "checkpoint_bytes": 252187,
      "latency_ms": {"batch_128": 3.4, "batch_1": 0.21},
      "per_class_accuracy": {"T-shirt/top": 0.852, "Trouser": None},
      "num_test_examples": 10000,
  }


def test_format_table():
  text = evaluate_lib.format_table(_result())
  assert "88.61% (10,000 examples)" in text
  assert "20,490" in text
  assert "1.235 M" in text
  assert "246.3 KB (252,187 bytes)" in text
  assert "(global step 4690)" in text
  lines = text.splitlines()
  latency_lines = [l for l in lines if l.startswith("latency")]
  assert latency_lines[0].split() == ["latency", "batch", "1", "0.210", "ms"]
  assert latency_lines[1].split() == ["latency", "batch", "128", "3.400",
                                      "ms"]
  assert lines[-2].split() == ["T-shirt/top", "85.20%"]
  assert lines[-1].split() == ["Trouser", "n/a"]
  big = dict(_result(), checkpoint_bytes=13103500)
  assert "12.50 MB" in evaluate_lib.format_table(big)


def test_write_json_is_strict_and_atomic(tmp_path):
  path = str(tmp_path / "out" / "eval.json")
  result = dict(_result(), test_loss=float("nan"),
                test_accuracy=np.float32(0.5), params=np.int64(20490))
  evaluate_lib.write_json(result, path)
  with open(path) as f:
    text = f.read()
  assert "NaN" not in text
  loaded = json.loads(text)
  assert loaded["test_loss"] is None
  assert loaded["test_accuracy"] == 0.5 and loaded["params"] == 20490
  assert list(loaded) == list(_result())
  assert os.listdir(str(tmp_path / "out")) == ["eval.json"]  # no temp left
  assert evaluate_lib.default_json_path(_result()) == "/tmp/t/eval.json"
