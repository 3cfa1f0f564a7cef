"""Tests of distill_v1/training/bias_correction.py."""

import os

import numpy as np
import pytest

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import nets_factory
from distill_v1.training import bias_correction
from tests import checkpoint_teacher_test as ct
from tests import testing_utils

v1 = tf.compat.v1
NUM_CLASSES = 4


def _sample_labels(scores, rng):
  """One label per row drawn from softmax(scores)."""
  probs = np.exp(scores - scores.max(axis=1, keepdims=True))
  probs /= probs.sum(axis=1, keepdims=True)
  cumulative = np.cumsum(probs, axis=1)
  draws = rng.uniform(size=(len(scores), 1))
  return np.minimum((draws > cumulative).sum(axis=1), scores.shape[1] - 1)


def test_fit_offsets_recovers_a_known_offset():
  rng = np.random.RandomState(0)
  num_classes, shift = 5, 3.5
  scores = 2.0 * rng.standard_normal((3000, num_classes))
  labels = _sample_labels(scores, rng)
  logits = scores.copy()
  logits[:, 3] -= shift  # Class 3's logits came out too low.
  offsets = bias_correction.fit_offsets(logits, labels, num_classes)
  assert offsets.dtype == np.float32 and offsets.shape == (num_classes,)
  assert abs(float(offsets.mean())) < 1e-6
  expected = shift * (np.eye(num_classes)[3] - 1.0 / num_classes)
  np.testing.assert_allclose(offsets, expected, atol=0.15)
  # The optimum matches the mean predicted distribution to the label
  # frequencies (the gradient of the mean cross-entropy is zero).
  z = logits + offsets
  probs = np.exp(z - z.max(axis=1, keepdims=True))
  probs /= probs.sum(axis=1, keepdims=True)
  np.testing.assert_allclose(
      probs.mean(axis=0),
      np.bincount(labels, minlength=num_classes) / float(len(labels)),
      atol=1e-4)


def test_fit_offsets_leaves_calibrated_logits_alone():
  rng = np.random.RandomState(1)
  scores = 2.0 * rng.standard_normal((3000, 3))
  labels = _sample_labels(scores, rng)
  np.testing.assert_allclose(
      bias_correction.fit_offsets(scores + 7.0, labels, 3), np.zeros(3),
      atol=0.15)


@pytest.mark.parametrize("text,expected", [
    ("3:3.5", [0, 0, 0, 3.5]),
    ("0:1,2:-0.5", [1, 0, -0.5, 0]),
    (" 1:2 , ", [0, 2, 0, 0]),
    ("", [0, 0, 0, 0]),
])
def test_parse_offsets(text, expected):
  offsets = bias_correction.parse_offsets(text, NUM_CLASSES)
  assert offsets.dtype == np.float32
  np.testing.assert_array_equal(offsets, np.array(expected, np.float32))


@pytest.mark.parametrize("text,message", [
    ("3", r"--bias_correction=3: expected 'learn' or CLASS:OFFSET pairs"),
    ("x:1", r"--bias_correction=x:1: expected"),
    ("3:abc", r"--bias_correction=3:abc: expected"),
    ("3:1:2", r"--bias_correction=3:1:2: expected"),
    ("learnn", r"--bias_correction=learnn: expected"),
    ("4:1.0", r"--bias_correction: class 4 is outside \[0, 4\)"),
    ("-1:1.0", r"--bias_correction: class -1 is outside \[0, 4\)"),
])
def test_parse_offsets_rejects(text, message):
  with pytest.raises(errors.ConfigError, match=message):
    bias_correction.parse_offsets(text, NUM_CLASSES)


def _save_student_with_slots(train_dir, seed=0, step=12):
  """A cnn_student checkpoint with momentum slots, as training leaves it."""
  with tf.Graph().as_default():
    images = tf.constant(ct.random_images(n=4))
    logits, _ = nets_factory.get_network_fn("cnn_student")(
        images, NUM_CLASSES, scope="cnn_student")
    global_step = v1.train.get_or_create_global_step()
    train_op = v1.train.MomentumOptimizer(0.1, 0.9).minimize(
        tf.reduce_sum(logits), global_step=global_step)
    rng = np.random.RandomState(seed)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      sess.run(train_op)
      for var in v1.trainable_variables():
        value = 0.3 * rng.standard_normal(var.shape.as_list())
        var.load(value.astype(np.float32), sess)
      global_step.load(step, sess)
      prefix = v1.train.Saver().save(
          sess, os.path.join(train_dir, checkpoints.CHECKPOINT_BASENAME),
          global_step=step, write_meta_graph=False)
  return prefix


def _read(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(prefix)}


def _spec():
  return {"model": "cnn_student", "model_options": {},
          "num_classes": NUM_CLASSES, "image_shape": [8, 8, 1],
          "class_names": ["c%d" % i for i in range(NUM_CLASSES)],
          "dataset": "tiny"}


def test_write_corrected_checkpoint_adds_exactly_the_offsets(tmp_path):
  prefix = _save_student_with_slots(str(tmp_path / "student"))
  offsets = np.array([0.0, -1.25, 3.5, 0.5], np.float32)
  out_dir = str(tmp_path / "corrected")
  new_prefix = bias_correction.write_corrected_checkpoint(
      prefix, "cnn_student", offsets, out_dir, dict(_spec(), note="x"))
  assert new_prefix == os.path.join(out_dir, "model.ckpt-12")
  assert checkpoints.resolve_checkpoint(out_dir) == new_prefix
  assert checkpoints.read_model_spec(out_dir)["note"] == "x"
  old, new = _read(prefix), _read(new_prefix)
  assert any(n.endswith("/Momentum") for n in old)  # Slots were there.
  assert sorted(new) == sorted(old)
  bias = "cnn_student/logits/bias"
  np.testing.assert_array_equal(new[bias], old[bias] + offsets)
  assert new[bias].dtype == np.float32
  for name in old:
    if name != bias:
      np.testing.assert_array_equal(new[name], old[name], err_msg=name)
  # The corrected network's logits are the old ones plus the offsets.
  images = ct.random_images(n=5, seed=9)
  network_fn = nets_factory.get_network_fn("cnn_student")
  before = bias_correction.network_logits(network_fn, NUM_CLASSES,
                                          "cnn_student", prefix, images)
  after = bias_correction.network_logits(network_fn, NUM_CLASSES,
                                         "cnn_student", new_prefix, images)
  np.testing.assert_allclose(after, before + offsets, rtol=1e-5, atol=1e-5)


def test_write_corrected_checkpoint_errors(tmp_path):
  prefix = _save_student_with_slots(str(tmp_path / "student"))
  with pytest.raises(errors.CheckpointError,
                     match=r"has no mlp_student/logits/bias to correct "
                     r"\(variables ending in /bias: cnn_student/conv1/bias, "):
    bias_correction.write_corrected_checkpoint(
        prefix, "mlp_student", np.zeros(4, np.float32),
        str(tmp_path / "out"), _spec())
  with pytest.raises(errors.ConfigError, match=r"has shape \(4,\), the "
                     r"offsets \(3,\)"):
    bias_correction.write_corrected_checkpoint(
        prefix, "cnn_student", np.zeros(3, np.float32),
        str(tmp_path / "out3"), _spec())


def test_per_class_accuracy():
  logits = np.array([[2, 1, 0], [0, 3, 1], [5, 0, 0], [0, 0, 1]], np.float32)
  labels = np.array([0, 1, 1, 0])
  got = bias_correction.per_class_accuracy(logits, labels, 3)
  np.testing.assert_array_equal(got[:2], [0.5, 0.5])
  assert np.isnan(got[2])


def test_correct_with_given_and_learned_offsets(tmp_path):
  splits = testing_utils.tiny_splits(num_train=8, num_test=40,
                                     num_validation=40, size=8,
                                     num_classes=NUM_CLASSES)
  prefix = _save_student_with_slots(str(tmp_path / "student"))
  network_fn = nets_factory.get_network_fn("cnn_student")
  test_logits = bias_correction.network_logits(
      network_fn, NUM_CLASSES, "cnn_student", prefix, splits.test_images)

  report = bias_correction.correct(
      network_fn, NUM_CLASSES, "cnn_student", prefix, splits, "1:1000",
      str(tmp_path / "given"), _spec())
  assert report["offsets"] == [0.0, 1000.0, 0.0, 0.0]
  labels = splits.test_labels
  assert report["test_accuracy_before"] == pytest.approx(
      np.mean(np.argmax(test_logits, 1) == labels))
  # A huge offset makes every prediction class 1.
  assert report["per_class_accuracy_after"] == [0.0, 1.0, 0.0, 0.0]
  assert report["test_accuracy_after"] == pytest.approx(np.mean(labels == 1))
  assert report["per_class_accuracy_before"] == pytest.approx(list(
      bias_correction.per_class_accuracy(test_logits, labels, NUM_CLASSES)))
  assert report["checkpoint"].startswith(str(tmp_path / "given"))

  learned = bias_correction.correct(
      network_fn, NUM_CLASSES, "cnn_student", prefix, splits, "learn",
      str(tmp_path / "learned"), _spec())
  val_logits = bias_correction.network_logits(
      network_fn, NUM_CLASSES, "cnn_student", prefix,
      splits.validation_images)
  np.testing.assert_allclose(
      learned["offsets"],
      bias_correction.fit_offsets(val_logits, splits.validation_labels,
                                  NUM_CLASSES), rtol=1e-6, atol=1e-6)

  no_validation = splits._replace(
      validation_images=splits.validation_images[:0],
      validation_labels=splits.validation_labels[:0])
  with pytest.raises(errors.ConfigError, match=r"--validation_size > 0"):
    bias_correction.correct(network_fn, NUM_CLASSES, "cnn_student", prefix,
                            no_validation, "learn", str(tmp_path / "none"),
                            _spec())
  assert not os.path.exists(str(tmp_path / "none"))
