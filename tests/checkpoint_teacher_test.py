"""Tests of distill_v1/teachers/checkpoint_teacher.py on tiny saved networks."""

import os

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import nets_factory
from distill_v1.teachers import checkpoint_teacher
from distill_v1 import checkpoints

v1 = tf.compat.v1
SIZE = 8
NUM_CLASSES = 4


def save_network(train_dir, model="cnn_student", num_classes=NUM_CLASSES,
                 seed=0, step=1, size=SIZE, options=None, images=None,
                 scope=None):
  """Saves a randomised `model` as the training binary would.

  Every variable (biases too) gets random values so that a restore that
  missed one shows in the logits.

  Args:
    train_dir: folder of the checkpoint and model_spec.json.
    model: model-zoo name; its variables live under `scope or model`.
    num_classes: int.
    seed: seed of the values.
    step: global step of the checkpoint.
    size: image height and width.
    options: network options (written to model_spec.json).
    images: float32 [N, size, size, 1] to compute the logits on, or None.
    scope: variable scope (default: the model name, as the binary does).

  Returns:
    (checkpoint prefix, dict variable name -> value, logits [N, num_classes]
    on `images` or None).
  """
  options = options or {}
  os.makedirs(train_dir, exist_ok=True)
  rng = np.random.RandomState(seed)
  with tf.Graph().as_default():
    images_ph = v1.placeholder(tf.float32, [None, size, size, 1])
    logits, _ = nets_factory.get_network_fn(model, **options)(
        images_ph, num_classes, is_training=False, scope=scope or model)
    global_step = v1.train.get_or_create_global_step()
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      values = {}
      for var in v1.global_variables():
        if var is global_step:
          continue
        value = (0.3 * rng.standard_normal(var.shape.as_list())).astype(
            var.dtype.base_dtype.as_numpy_dtype)
        if var.op.name.endswith("moving_variance"):
          value = np.abs(value) + 0.5
        var.load(value, sess)
        values[var.op.name] = value
      global_step.load(step, sess)
      out = None if images is None else sess.run(logits, {images_ph: images})
      prefix = v1.train.Saver().save(
          sess, os.path.join(train_dir, checkpoints.CHECKPOINT_BASENAME),
          global_step=step, write_meta_graph=False)
  checkpoints.write_model_spec(train_dir, {
      "model": model, "model_options": options, "num_classes": num_classes,
      "image_shape": [size, size, 1],
      "class_names": ["c%d" % i for i in range(num_classes)],
      "dataset": "tiny"})
  return prefix, values, out


def random_images(n=6, size=SIZE, seed=1):
  return np.random.RandomState(seed).uniform(
      size=(n, size, size, 1)).astype(np.float32)


def teacher_logits(handles, images):
  """Builds nothing: restores `handles` and runs their logits on `images`."""
  with v1.Session() as sess:
    for handle in handles:
      handle.init_fn(sess)
    return sess.run([h.logits for h in handles], {
        v1.get_default_graph().get_tensor_by_name("images:0"): images})


def test_restored_teacher_gives_the_original_logits(tmp_path):
  images = random_images()
  train_dir = str(tmp_path / "teacher")
  prefix, _, expected = save_network(train_dir, images=images)
  with tf.Graph().as_default():
    images_ph = v1.placeholder(tf.float32, [None, SIZE, SIZE, 1],
                               name="images")
    handle = checkpoint_teacher.build_checkpoint_teacher(
        images_ph, "cnn_student", prefix, NUM_CLASSES)
    got, = teacher_logits([handle], images)
  assert handle.checkpoint == prefix and handle.model == "cnn_student"
  assert got.shape == (6, NUM_CLASSES)
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
  # A wrongly restored (freshly initialised) teacher would be far away.
  assert np.abs(expected).max() > 0.1


def test_teacher_is_frozen(tmp_path):
  prefix, values, _ = save_network(str(tmp_path / "teacher"))
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, SIZE, SIZE, 1])
    handle = checkpoint_teacher.build_checkpoint_teacher(
        images, "cnn_student", prefix, NUM_CLASSES)
    names = sorted(v.op.name for v in handle.variables)
    assert names == sorted("teacher/" + n for n in values)
    trainable = v1.trainable_variables()
    assert not trainable
    assert not v1.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES,
                                 scope="teacher")
    for var in handle.variables:
      assert not var.trainable, var.op.name
    # No gradient reaches the teacher's variables (nor its input) through its
    # logits, whatever is built on them.
    objective = tf.reduce_sum(tf.square(handle.logits)) + tf.reduce_sum(
        tf.nn.softmax(handle.logits / 4.0)[:, 0])
    grads = tf.gradients(objective, handle.variables + [images])
    assert all(g is None for g in grads), grads
    assert handle.logits.op.type in ("StopGradient", "Identity")
    assert list(handle.end_points)[-1] == "logits"


def test_checkpoint_of_another_architecture(tmp_path):
  # A cnn_teacher's variables saved under the name cnn_student: same names,
  # other shapes.
  prefix, _, _ = save_network(str(tmp_path / "other"), model="cnn_teacher",
                              scope="cnn_student")
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, SIZE, SIZE, 1])
    with pytest.raises(errors.CheckpointError) as info:
      checkpoint_teacher.build_checkpoint_teacher(
          images, "cnn_student", prefix, NUM_CLASSES,
          model_options={})
  message = str(info.value)
  assert prefix in message
  assert ("cnn_student/conv1/kernel has shape [5, 5, 1, 32] in the "
          "checkpoint but [3, 3, 1, 16] in the model") in message


def test_checkpoint_missing_variables(tmp_path):
  prefix, _, _ = save_network(str(tmp_path / "mlp"), model="mlp_student")
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, SIZE, SIZE, 1])
    with pytest.raises(errors.CheckpointError,
                       match=r"cnn_student/conv1/bias \[16\] is missing"):
      checkpoint_teacher.build_checkpoint_teacher(
          images, "cnn_student", prefix, NUM_CLASSES)


def test_other_class_count_is_a_checkpoint_error(tmp_path):
  prefix, _, _ = save_network(str(tmp_path / "t"), num_classes=3)

  def build_teacher():
    with tf.Graph().as_default():
      images = v1.placeholder(tf.float32, [None, SIZE, SIZE, 1])
      checkpoint_teacher.build_checkpoint_teacher(
          images, "cnn_student", prefix, NUM_CLASSES)

  with pytest.raises(errors.CheckpointError,
                     match=r"teacher .* was trained on 3 classes \(its "
                     r"model_spec.json\), the student's data set has 4"):
    build_teacher()
  # Without a model_spec.json the shapes tell.
  os.remove(str(tmp_path / "t" / "model_spec.json"))
  with pytest.raises(errors.CheckpointError,
                     match=r"cnn_student/logits/bias has shape \[3\] in the "
                     r"checkpoint but \[4\] in the model"):
    build_teacher()


def test_missing_checkpoint(tmp_path):
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, SIZE, SIZE, 1])
    with pytest.raises(errors.CheckpointError, match=r"holds no checkpoint"):
      checkpoint_teacher.build_checkpoint_teacher(
          images, "cnn_student", str(tmp_path), NUM_CLASSES)


def test_directory_resolves_to_latest_checkpoint(tmp_path):
  images = random_images()
  train_dir = str(tmp_path / "teacher")
  save_network(train_dir, seed=1, step=5, images=images)
  latest, _, expected = save_network(train_dir, seed=2, step=9, images=images)
  with tf.Graph().as_default():
    images_ph = v1.placeholder(tf.float32, [None, SIZE, SIZE, 1],
                               name="images")
    handle = checkpoint_teacher.build_checkpoint_teacher(
        images_ph, "cnn_student", train_dir, NUM_CLASSES)
    got, = teacher_logits([handle], images)
  assert handle.checkpoint == latest
  assert latest.endswith("model.ckpt-9")
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_model_options_come_from_model_spec(tmp_path):
  images = random_images(n=3)
  train_dir = str(tmp_path / "mobilenet")
  _, _, expected = save_network(train_dir, model="mobilenet_v1",
                                options={"width_multiplier": 0.25},
                                images=images)
  with tf.Graph().as_default():
    images_ph = v1.placeholder(tf.float32, [None, SIZE, SIZE, 1],
                               name="images")
    handle = checkpoint_teacher.build_checkpoint_teacher(
        images_ph, "mobilenet_v1", train_dir, NUM_CLASSES)
    got, = teacher_logits([handle], images)
    # Batch norm's moving averages are restored too, and stay frozen.
    assert any(v.op.name.endswith("moving_mean") for v in handle.variables)
    assert not v1.trainable_variables()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_ensemble_scopes_coexist(tmp_path):
  images = random_images()
  prefix_a, values_a, expected_a = save_network(str(tmp_path / "a"), seed=3,
                                                images=images)
  prefix_b, _, expected_b = save_network(
      str(tmp_path / "b"), model="mlp_student", seed=4, images=images)
  with tf.Graph().as_default():
    images_ph = v1.placeholder(tf.float32, [None, SIZE, SIZE, 1],
                               name="images")
    first = checkpoint_teacher.build_checkpoint_teacher(
        images_ph, "cnn_student", prefix_a, NUM_CLASSES, scope="teacher_0")
    second = checkpoint_teacher.build_checkpoint_teacher(
        images_ph, "mlp_student", prefix_b, NUM_CLASSES, scope="teacher_1")
    got_a, got_b = teacher_logits([first, second], images)
    assert sorted(v.op.name for v in first.variables) == sorted(
        "teacher_0/" + n for n in values_a)
    assert all(v.op.name.startswith("teacher_1/mlp_student/")
               for v in second.variables)
    assert not set(first.variables) & set(second.variables)
    assert not v1.trainable_variables()
  np.testing.assert_allclose(got_a, expected_a, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(got_b, expected_b, rtol=1e-6, atol=1e-6)
  assert not np.allclose(got_a, got_b)


def test_worker_local_teacher_restores_through_local_variables_initializer(
    tmp_path):
  images = random_images()
  prefix, values, expected = save_network(str(tmp_path / "teacher"),
                                          images=images)
  with tf.Graph().as_default():
    images_ph = v1.placeholder(tf.float32, [None, SIZE, SIZE, 1],
                               name="images")
    handle = checkpoint_teacher.build_checkpoint_teacher(
        images_ph, "cnn_student", prefix, NUM_CLASSES,
        local_device="/job:localhost/replica:0/task:0")
    # Neither a parameter server's (global) nor trained.
    assert not v1.global_variables() and not v1.trainable_variables()
    assert sorted(v.op.name for v in v1.local_variables()) == sorted(
        "teacher/" + n for n in values)
    assert all(v.device == "/job:localhost/replica:0/task:0"
               for v in handle.variables)
    with v1.Session() as sess:
      # What a MonitoredSession's local init op runs, and nothing else.
      sess.run(v1.local_variables_initializer())
      got = sess.run(handle.logits, {images_ph: images})
      np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    with v1.Session() as sess:
      handle.init_fn(sess)  # The single-process path works the same.
      np.testing.assert_allclose(sess.run(handle.logits, {images_ph: images}),
                                 expected, rtol=1e-6, atol=1e-6)
