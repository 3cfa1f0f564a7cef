"""Tests of distill_v1/training/distillation.py (the distillation model_fn),
alone in hand-built graphs and inside `loop.train`, online and cached."""

import hashlib
import io
import os

import numpy as np
import pytest

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.data import input_pipeline
from distill_v1.models import nets_factory
from distill_v1.teachers import checkpoint_teacher
from distill_v1.teachers import logits_cache
from distill_v1.training import distillation
from distill_v1.training import loop
from tests import checkpoint_teacher_test as ct
from tests import testing_utils

v1 = tf.compat.v1
SIZE = 8
NUM_CLASSES = 4
STUDENT = "cnn_student"


def _builder(prefix, model="cnn_student", scope="teacher",
             num_classes=NUM_CLASSES, captured=None):
  """fn(images) -> TeacherHandle; appends each handle to `captured`."""

  def build(images):
    handle = checkpoint_teacher.build_checkpoint_teacher(
        images, model, prefix, num_classes, scope=scope)
    if captured is not None:
      captured.append(handle)
    return handle

  return build


def _student_fn(captured=None):
  """cnn_student, remembering its end points in `captured`."""
  network_fn = nets_factory.get_network_fn(STUDENT)

  def student_fn(images, num_classes, is_training, scope):
    logits, end_points = network_fn(images, num_classes,
                                    is_training=is_training, scope=scope)
    if captured is not None:
      captured.append(end_points)
    return logits, end_points

  return student_fn


def _softmax(z):
  z = z - z.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(z):
  z = z - z.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _batch(n=24):
  splits = testing_utils.tiny_splits(num_train=n, num_test=4, size=SIZE,
                                     num_classes=NUM_CLASSES)
  return splits.train_images, splits.train_labels


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
  """A randomised cnn_student teacher: (prefix, dict name -> value)."""
  prefix, values, _ = ct.save_network(
      str(tmp_path_factory.mktemp("teacher")), seed=7)
  return prefix, values


def test_teacher_unchanged_student_trained(teacher):
  prefix, saved = teacher
  images, labels = _batch()
  with tf.Graph().as_default():
    v1.set_random_seed(0)
    model_fn = distillation.distillation_model_fn(
        _student_fn(), NUM_CLASSES, STUDENT, [_builder(prefix)],
        temperature=4.0, alpha=0.1)
    outputs = model_fn(tf.constant(images), tf.constant(labels), True)
    var_names = sorted(v.op.name for v in outputs.var_list)
    assert var_names == sorted(
        v.op.name for v in v1.get_collection(
            v1.GraphKeys.TRAINABLE_VARIABLES, scope=STUDENT + "/"))
    assert var_names and all(n.startswith(STUDENT + "/") for n in var_names)
    assert sorted(v.op.name for v in v1.trainable_variables()) == var_names
    frozen = list(outputs.frozen_vars)
    assert sorted(v.op.name for v in frozen) == sorted(
        "teacher/" + n for n in saved)
    assert all(g is None for g in tf.gradients(outputs.loss, frozen))
    train_op = v1.train.GradientDescentOptimizer(0.5).minimize(
        outputs.loss, var_list=outputs.var_list)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      outputs.init_fn(sess)
      teacher_before = sess.run(frozen)
      student_before = sess.run(outputs.var_list)
      losses = [sess.run([train_op, outputs.loss])[1] for _ in range(5)]
      teacher_after = sess.run(frozen)
      student_after = sess.run(outputs.var_list)
  for var, before, after in zip(frozen, teacher_before, teacher_after):
    assert np.array_equal(before, saved[var.op.name[len("teacher/"):]])
    assert np.array_equal(before, after), var.op.name
  changed = [not np.array_equal(b, a)
             for b, a in zip(student_before, student_after)]
  assert all(changed), list(zip(var_names, changed))
  assert losses[-1] < losses[0]


def _soft_loss_numpy(teacher_logits, student_logits, temperature, scale):
  targets = np.mean([_softmax(z / temperature) for z in teacher_logits],
                    axis=0)
  loss = np.mean(-np.sum(targets * _log_softmax(student_logits / temperature),
                         axis=1))
  return loss * (temperature ** 2 if scale else 1.0)


@pytest.mark.parametrize("alpha,scale", [(0.3, True), (0.0, False)])
def test_ensemble_soft_loss_is_mean_of_softened_distributions(
    tmp_path, alpha, scale):
  prefix_a, _, _ = ct.save_network(str(tmp_path / "a"), seed=3)
  prefix_b, _, _ = ct.save_network(str(tmp_path / "b"), model="mlp_student",
                                   seed=4)
  images, labels = _batch()
  temperature = 2.0
  captured = []
  with tf.Graph().as_default():
    model_fn = distillation.distillation_model_fn(
        _student_fn(), NUM_CLASSES, STUDENT,
        [_builder(prefix_a, scope="teacher_0", captured=captured),
         _builder(prefix_b, model="mlp_student", scope="teacher_1",
                  captured=captured)],
        temperature=temperature, alpha=alpha, scale_soft_loss=scale)
    outputs = model_fn(tf.constant(images), tf.constant(labels), True)
    assert len(captured) == 2
    assert len(outputs.frozen_vars) == (len(captured[0].variables) +
                                        len(captured[1].variables))
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      outputs.init_fn(sess)
      (z_a, z_b, z_s, loss, hard, soft) = sess.run(
          [captured[0].logits, captured[1].logits, outputs.logits,
           outputs.loss, outputs.scalars["hard_loss"],
           outputs.scalars["soft_loss"]])
  expected_soft = _soft_loss_numpy([z_a, z_b], z_s, temperature, scale)
  expected_hard = np.mean(-_log_softmax(z_s)[np.arange(len(labels)), labels])
  np.testing.assert_allclose(soft, expected_soft, rtol=1e-5)
  np.testing.assert_allclose(hard, expected_hard, rtol=1e-5)
  np.testing.assert_allclose(
      loss, alpha * expected_hard + (1 - alpha) * expected_soft, rtol=1e-5)
  # The alternatives the test must tell apart from the mean of softened
  # distributions: softening the mean logits, or one teacher alone.
  for wrong in ([(z_a + z_b) / 2], [z_a], [z_b]):
    assert abs(_soft_loss_numpy(wrong, z_s, temperature, scale) -
               expected_soft) > 1e-3 * abs(expected_soft)


def test_teacher_with_another_class_count(tmp_path):
  prefix, _, _ = ct.save_network(str(tmp_path / "three"), num_classes=3)
  images, labels = _batch()
  with tf.Graph().as_default():
    model_fn = distillation.distillation_model_fn(
        _student_fn(), NUM_CLASSES, STUDENT,
        [_builder(prefix, num_classes=3)], temperature=4.0)
    with pytest.raises(errors.ConfigError,
                       match=r"teacher cnn_student \(.*model.ckpt-1\) has 3 "
                       r"classes, the student has 4"):
      model_fn(tf.constant(images), tf.constant(labels), True)
  with tf.Graph().as_default():
    model_fn = distillation.distillation_model_fn(
        _student_fn(), NUM_CLASSES, STUDENT, None, temperature=4.0)
    cached = tf.zeros([len(labels), 1, 3])
    with pytest.raises(errors.ConfigError,
                       match=r"teacher logits cache has 3 classes, the "
                       r"student has 4"):
      model_fn(tf.constant(images), tf.constant(labels), True,
               extras={distillation.CACHED_LOGITS_KEY: cached})


def test_bad_arguments(teacher):
  prefix, _ = teacher
  student_fn = _student_fn()
  with pytest.raises(errors.ConfigError, match=r"temperature"):
    distillation.distillation_model_fn(student_fn, NUM_CLASSES, STUDENT,
                                       [_builder(prefix)], temperature=0.0)
  with pytest.raises(errors.ConfigError, match=r"alpha=1.5"):
    distillation.distillation_model_fn(student_fn, NUM_CLASSES, STUDENT,
                                       [_builder(prefix)], temperature=4.0,
                                       alpha=1.5)
  with pytest.raises(errors.ConfigError, match=r"at least one teacher"):
    distillation.distillation_model_fn(student_fn, NUM_CLASSES, STUDENT, [],
                                       temperature=4.0)
  term = distillation.FeatureTerm("hint", [("conv2", "conv2")], 1.0)
  with pytest.raises(errors.ConfigError, match=r"exactly one teacher"):
    distillation.distillation_model_fn(student_fn, NUM_CLASSES, STUDENT, None,
                                       temperature=4.0, feature_terms=[term])
  for bad in (term._replace(kind="gram"), term._replace(weight=0.0)):
    with pytest.raises(errors.ConfigError, match=r"kind must be one of hint, "
                       r"attention and weight > 0"):
      distillation.distillation_model_fn(
          student_fn, NUM_CLASSES, STUDENT, [_builder(prefix)],
          temperature=4.0, feature_terms=[bad])
  images, labels = _batch()
  with tf.Graph().as_default():
    model_fn = distillation.distillation_model_fn(
        student_fn, NUM_CLASSES, STUDENT, None, temperature=4.0)
    with pytest.raises(errors.ConfigError, match=r"extras\['teacher_logits'"):
      model_fn(tf.constant(images), tf.constant(labels), True)


def test_inference_mode_builds_only_the_student(teacher):
  prefix, _ = teacher
  images, labels = _batch()
  with tf.Graph().as_default():
    model_fn = distillation.distillation_model_fn(
        _student_fn(), NUM_CLASSES, STUDENT, [_builder(prefix)],
        temperature=4.0)
    outputs = model_fn(tf.constant(images), tf.constant(labels), False)
    assert not [v for v in v1.global_variables()
                if not v.op.name.startswith(STUDENT + "/")]
    assert outputs.init_fn is None and not outputs.frozen_vars


def _config(train_dir, **kwargs):
  defaults = dict(epochs=2, batch_size=32, learning_rate=0.2, seed=5,
                  log_every_steps=1000, summary_every_steps=1000)
  defaults.update(kwargs)
  return loop.TrainConfig(train_dir, **defaults)


def _spec():
  return {"model": STUDENT, "model_options": {}, "num_classes": NUM_CLASSES,
          "image_shape": [SIZE, SIZE, 1],
          "class_names": ["c%d" % i for i in range(NUM_CLASSES)],
          "dataset": "tiny"}


def _checkpoint_values(train_dir):
  prefix = checkpoints.resolve_checkpoint(train_dir)
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name)
          for name, _ in tf.train.list_variables(prefix)}


def _file_digest(prefix):
  digest = hashlib.sha256()
  folder = os.path.dirname(prefix)
  for name in sorted(os.listdir(folder)):
    if name.startswith(os.path.basename(prefix) + "."):
      with open(os.path.join(folder, name), "rb") as f:
        digest.update(f.read())
  return digest.hexdigest()


@pytest.fixture(scope="module")
def splits():
  return testing_utils.tiny_splits(num_train=256, num_test=64, size=SIZE,
                                   num_classes=NUM_CLASSES)


@pytest.fixture(scope="module")
def online_run(tmp_path_factory, teacher, splits):
  """An online distillation run through loop.train: (train_dir, metrics)."""
  prefix, _ = teacher
  digest = _file_digest(prefix)
  train_dir = str(tmp_path_factory.mktemp("online"))
  model_fn = distillation.distillation_model_fn(
      _student_fn(), NUM_CLASSES, STUDENT, [_builder(prefix)],
      temperature=4.0, alpha=0.1)
  metrics = loop.train(model_fn, splits, _config(train_dir), _spec(),
                       stream=io.StringIO())
  assert _file_digest(prefix) == digest  # The teacher's files are untouched.
  return train_dir, metrics


def test_loop_train_saves_only_the_student(online_run):
  train_dir, metrics = online_run
  assert metrics["global_step"] == 16  # 2 epochs of 256 / 32.
  assert os.path.exists(os.path.join(train_dir, loop.METRICS_FILENAME))
  names = sorted(_checkpoint_values(train_dir))
  assert not [n for n in names if n.startswith("teacher")], names
  assert "cnn_student/conv1/kernel" in names and "global_step" in names
  assert all(n.startswith(STUDENT + "/") or n == "global_step"
             for n in names), names


def test_cached_distillation_matches_online(tmp_path, teacher, splits,
                                            online_run, capsys):
  prefix, _ = teacher
  online_dir, online_metrics = online_run
  logits = logits_cache.compute_logits([_builder(prefix)],
                                       splits.train_images)
  assert logits.shape == (1, 256, NUM_CLASSES)
  model_fn = distillation.distillation_model_fn(
      _student_fn(), NUM_CLASSES, STUDENT, None, temperature=4.0, alpha=0.1)
  cached_dir = str(tmp_path / "cached")
  metrics = loop.train(
      model_fn, splits, _config(cached_dir), _spec(), stream=io.StringIO(),
      train_extras={distillation.CACHED_LOGITS_KEY: logits.transpose(1, 0, 2)})
  online = _checkpoint_values(online_dir)
  cached = _checkpoint_values(cached_dir)
  assert sorted(online) == sorted(cached)
  assert metrics["global_step"] == online_metrics["global_step"]
  max_diff = max(float(np.max(np.abs(online[n] - cached[n]))) for n in online)
  with capsys.disabled():
    print("\ncached vs online distillation: max |student weight difference| "
          "after %d steps = %.3g" % (metrics["global_step"], max_diff))
  for name in online:
    np.testing.assert_allclose(cached[name], online[name], rtol=1e-5,
                               atol=1e-6, err_msg=name)
  # Training moved the weights far more than the tolerance.
  initial = _initial_student_values(splits)
  moved = max(float(np.max(np.abs(online[n] - initial[n]))) for n in initial)
  assert moved > 1e-2
  assert metrics["test_accuracy"] == pytest.approx(
      online_metrics["test_accuracy"])


def test_teachers_in_input_match_online(tmp_path, teacher, splits,
                                        online_run):
  """The teacher run in the input pipeline trains the same student."""
  prefix, _ = teacher
  online_dir, online_metrics = online_run
  teachers, extras = distillation.teacher_extras([_builder(prefix)])
  model_fn = distillation.distillation_model_fn(
      _student_fn(), NUM_CLASSES, STUDENT, teachers, temperature=4.0,
      alpha=0.1)
  in_input_dir = str(tmp_path / "in_input")
  metrics = loop.train(model_fn, splits, _config(in_input_dir), _spec(),
                       stream=io.StringIO(), train_extras=extras)
  online = _checkpoint_values(online_dir)
  in_input = _checkpoint_values(in_input_dir)
  assert sorted(online) == sorted(in_input)
  assert not [n for n in in_input if n.startswith("teacher")]
  assert metrics["global_step"] == online_metrics["global_step"]
  for name in online:
    np.testing.assert_allclose(in_input[name], online[name], rtol=1e-5,
                               atol=1e-6, err_msg=name)
  # The student moved, so equal weights mean the teacher's logits were used.
  initial = _initial_student_values(splits)
  assert max(float(np.max(np.abs(online[n] - initial[n])))
             for n in initial) > 1e-2


def test_teachers_in_input_logits_equal_the_teachers(teacher):
  """The pipeline's logits equal a separately restored teacher's, per batch."""
  prefix, _ = teacher
  images, labels = _batch(24)
  with tf.Graph().as_default():
    teachers, extras = distillation.teacher_extras(
        [_builder(prefix), _builder(prefix, scope="teacher_1")])
    handles = input_pipeline.in_memory_input(images, labels, batch_size=10,
                                             shuffle=True, seed=3,
                                             extras=extras)
    fed = v1.placeholder(tf.float32, [None, SIZE, SIZE, 1])
    reference = _builder(prefix, scope="reference")(fed)
    with v1.Session() as sess:
      for handle in teachers.handles + [reference]:
        handle.init_fn(sess)
      input_pipeline.initialize_data(sess, handles)
      input_pipeline.start_epoch(sess, handles, epoch=1)
      seen = []
      for _ in range(handles.batches_per_epoch):
        batch, piped = sess.run(
            [handles.images, handles.extras[distillation.CACHED_LOGITS_KEY]])
        assert piped.shape == (len(batch), 2, NUM_CLASSES)
        expected = sess.run(reference.logits, {fed: batch})
        np.testing.assert_allclose(piped[:, 0], expected, rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_allclose(piped[:, 1], expected, rtol=1e-5,
                                   atol=1e-5)
        seen.append(len(batch))
  assert seen == [10, 10, 4]
  assert float(np.std(expected)) > 1e-3  # Not trivially equal logits.


def test_feature_terms_refuse_teachers_in_input(teacher):
  prefix, _ = teacher
  teachers, _ = distillation.teacher_extras([_builder(prefix)])
  with pytest.raises(errors.ConfigError, match="input pipeline"):
    distillation.distillation_model_fn(
        _student_fn(), NUM_CLASSES, STUDENT, teachers, temperature=4.0,
        feature_terms=[distillation.FeatureTerm(
            "hint", [("conv1", "conv1")], 1.0)])


def _initial_student_values(splits):
  with tf.Graph().as_default():
    v1.set_random_seed(5)
    nets_factory.get_network_fn(STUDENT)(
        tf.constant(splits.train_images[:2]), NUM_CLASSES, scope=STUDENT)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      return {v.op.name: sess.run(v) for v in v1.global_variables()}


@pytest.fixture(scope="module")
def cnn_teacher(tmp_path_factory):
  prefix, _, _ = ct.save_network(str(tmp_path_factory.mktemp("cnn_teacher")),
                                 model="cnn_teacher", seed=11)
  return prefix


def _attention_numpy(feature):
  energy = np.mean(np.square(feature), axis=-1).reshape(len(feature), -1)
  norm = np.sqrt(np.sum(np.square(energy), axis=1, keepdims=True))
  return energy / np.maximum(norm, 1e-12)


def test_feature_terms_add_adapters_and_losses(cnn_teacher):
  images, labels = _batch()
  students, teachers = [], []
  terms = [
      distillation.FeatureTerm("hint", [("conv2", "conv2")], 0.5),
      distillation.FeatureTerm("attention",
                               [("conv1", "conv1"), ("conv2", "conv2")], 2.0),
  ]
  with tf.Graph().as_default():
    model_fn = distillation.distillation_model_fn(
        _student_fn(students), NUM_CLASSES, STUDENT,
        [_builder(cnn_teacher, model="cnn_teacher", captured=teachers)],
        temperature=4.0, alpha=0.1, feature_terms=terms)
    outputs = model_fn(tf.constant(images), tf.constant(labels), True)
    adapters = [v for v in outputs.var_list
                if v.op.name.startswith(distillation.ADAPTER_SCOPE + "/")]
    assert sorted(v.op.name for v in adapters) == [
        "feature_adapters/hint_0/bias", "feature_adapters/hint_0/kernel"]
    assert adapters[0].trainable and adapters[1].trainable
    kernel = [v for v in adapters if v.op.name.endswith("kernel")][0]
    bias = [v for v in adapters if v.op.name.endswith("bias")][0]
    assert kernel.shape.as_list() == [1, 1, 32, 64]
    student_vars = [v for v in outputs.var_list if v not in adapters]
    assert all(v.op.name.startswith(STUDENT + "/") for v in student_vars)
    assert not set(outputs.var_list) & set(outputs.frozen_vars)
    assert list(outputs.scalars)[-2:] == ["hint_loss", "attention_loss"]
    train_op = v1.train.GradientDescentOptimizer(0.1).minimize(
        outputs.loss, var_list=outputs.var_list)
    s_points, t_points = students[0], teachers[0].end_points
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      outputs.init_fn(sess)
      fetched = sess.run({
          "loss": outputs.loss, "scalars": dict(outputs.scalars),
          "s1": s_points["conv1"], "s2": s_points["conv2"],
          "t1": t_points["conv1"], "t2": t_points["conv2"],
          "kernel": kernel, "bias": bias})
      sess.run(train_op)
      kernel_after = sess.run(kernel)
  scalars = fetched["scalars"]
  adapted = fetched["s2"] @ fetched["kernel"][0, 0] + fetched["bias"]
  expected_hint = 0.5 * np.mean(np.square(adapted - fetched["t2"]))
  expected_attention = 2.0 * np.mean([
      np.mean(np.linalg.norm(_attention_numpy(fetched[s]) -
                             _attention_numpy(fetched[t]), axis=1))
      for s, t in (("s1", "t1"), ("s2", "t2"))])
  np.testing.assert_allclose(scalars["hint_loss"], expected_hint, rtol=1e-4)
  np.testing.assert_allclose(scalars["attention_loss"], expected_attention,
                             rtol=1e-4)
  base = 0.1 * scalars["hard_loss"] + 0.9 * scalars["soft_loss"]
  np.testing.assert_allclose(
      fetched["loss"], base + expected_hint + expected_attention, rtol=1e-5)
  assert not np.array_equal(kernel_after, fetched["kernel"])  # Trained.


def test_feature_terms_in_loop_train(tmp_path, cnn_teacher, splits):
  terms = [distillation.FeatureTerm("hint", [("pool1", "pool1")], 1.0)]
  model_fn = distillation.distillation_model_fn(
      _student_fn(), NUM_CLASSES, STUDENT,
      [_builder(cnn_teacher, model="cnn_teacher")], temperature=4.0,
      feature_terms=terms)
  train_dir = str(tmp_path / "hint")
  metrics = loop.train(model_fn, splits, _config(train_dir, max_steps=2),
                       _spec(), stream=io.StringIO())
  assert metrics["global_step"] == 2
  names = sorted(_checkpoint_values(train_dir))
  assert "feature_adapters/hint_0/kernel" in names
  assert not [n for n in names if n.startswith("teacher")]


@pytest.mark.parametrize("pair,role,available", [
    (("conv9", "conv2"), "student",
     "conv1, pool1, conv2, pool2, flatten, logits"),
    (("conv2", "fc9"), "teacher",
     "conv1, pool1, conv2, pool2, flatten, fc1, dropout1, logits"),
])
def test_unknown_end_point_lists_the_available_ones(cnn_teacher, pair, role,
                                                    available):
  images, labels = _batch()
  with tf.Graph().as_default():
    model_fn = distillation.distillation_model_fn(
        _student_fn(), NUM_CLASSES, STUDENT,
        [_builder(cnn_teacher, model="cnn_teacher")], temperature=4.0,
        feature_terms=[distillation.FeatureTerm("hint", [pair], 1.0)])
    with pytest.raises(errors.ConfigError) as info:
      model_fn(tf.constant(images), tf.constant(labels), True)
  bad = pair[0] if role == "student" else pair[1]
  assert str(info.value) == "the %s has no end point %r; it has: %s" % (
      role, bad, available)
