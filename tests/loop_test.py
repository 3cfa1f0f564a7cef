"""Tests of distill_v1.training.loop on tiny learnable data.

The training split has 60 examples and the batch size is 16, so an epoch is
4 steps, the last one of 12 examples.
"""

import collections
import glob
import io
import json
import os
import re

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import nets_factory
from distill_v1 import checkpoints
from distill_v1.training import loop
from tests import testing_utils

v1 = tf.compat.v1

SPLITS = testing_utils.tiny_splits(num_train=60, num_test=32, size=8,
                                   num_classes=4)
STEPS_PER_EPOCH = 4


def _spec(model, splits=SPLITS):
  return {"model": model, "model_options": {},
          "num_classes": splits.num_classes,
          "image_shape": list(splits.image_shape),
          "class_names": list(splits.class_names), "dataset": "tiny"}


def _config(train_dir, **overrides):
  kwargs = dict(batch_size=16, learning_rate=0.1, log_every_steps=1,
                summary_every_steps=1, eval_batch_size=10)
  kwargs.update(overrides)
  return loop.TrainConfig(str(train_dir), **kwargs)


def _train(train_dir, model="cnn_student", splits=SPLITS, model_fn=None,
           stream=None, **overrides):
  """Runs loop.train; returns (metrics, the progress text)."""
  if model_fn is None:
    model_fn = loop.classifier_model_fn(nets_factory.get_network_fn(model),
                                        splits.num_classes, scope=model)
  stream = stream or io.StringIO()
  metrics = loop.train(model_fn, splits, _config(train_dir, **overrides),
                       _spec(model, splits), stream=stream)
  return metrics, stream.getvalue()


def _weights(path):
  """All variables of the checkpoint `path` (prefix or dir) by name."""
  reader = tf.train.load_checkpoint(checkpoints.resolve_checkpoint(str(path)))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def _assert_same_weights(actual, expected):
  assert sorted(actual) == sorted(expected)
  for name in expected:
    np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


def _saved_steps(train_dir):
  return sorted(checkpoints.step_of(p[:-len(".index")]) for p in glob.glob(
      os.path.join(str(train_dir), "model.ckpt-*.index")))


def _scalar_events(train_dir):
  """tag -> {step: value} over every event file of `train_dir`."""
  values = collections.defaultdict(dict)
  for path in glob.glob(os.path.join(str(train_dir), "events.out.tfevents.*")):
    for event in v1.train.summary_iterator(path):
      for value in event.summary.value:
        values[value.tag][event.step] = value.simple_value
  return values


def _progress_steps(text):
  return [int(s) for s in re.findall(r"step (\d+)/\d+", text)]


def _linear_model_fn(kernel_init, bias_init, data_loss_weight=1.0,
                     other_init=None):
  """A hand-made linear classifier on flattened 8x8 images.

  Variables: toy/kernel [64, 4] and toy/bias [4] (the var_list), and, if
  `other_init` is given, other/scale [] which scales the logits but is kept
  out of the var_list.
  """

  def model_fn(images, labels, is_training):
    del is_training
    with v1.variable_scope("toy", reuse=v1.AUTO_REUSE):
      kernel = v1.get_variable("kernel", initializer=kernel_init)
      bias = v1.get_variable("bias", initializer=bias_init)
    logits = tf.matmul(tf.reshape(images, [-1, 64]), kernel) + bias
    if other_init is not None:
      with v1.variable_scope("other", reuse=v1.AUTO_REUSE):
        scale = v1.get_variable("scale", initializer=other_init)
      logits = logits * scale
    xent = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits))
    return loop.ModelOutputs(
        loss=data_loss_weight * xent, logits=logits,
        scalars=collections.OrderedDict([("cross_entropy", xent)]),
        var_list=[kernel, bias])

  return model_fn


_KERNEL0 = np.random.RandomState(1).normal(size=(64, 4)).astype(np.float32)
_BIAS0 = np.array([0.5, -0.25, 1.0, 2.0], np.float32)


# ---------------------------------------------------------------- learning


def test_training_lowers_the_loss_and_beats_chance(tmp_path):
  metrics, text = _train(tmp_path, epochs=3)
  losses = [h["test_loss"] for h in metrics["history"]]
  assert losses == sorted(losses, reverse=True) and losses[0] > losses[-1]
  assert metrics["test_accuracy"] >= 0.9  # chance is 0.25
  train_loss = _scalar_events(tmp_path)["loss"]
  assert sorted(train_loss) == list(range(1, 13))
  assert train_loss[12] < 0.8 * train_loss[1]
  assert "epoch 3/3 done: test accuracy" in text
  assert metrics["global_step"] == 12
  assert _weights(tmp_path)["global_step"] == 12


def test_weight_decay_shrinks_kernels_only(tmp_path):
  # No data loss: each SGD step multiplies the kernel by (1 - lr * wd) and
  # leaves the bias alone; the logged loss is wd * sum(kernel**2) / 2.
  lr, wd = 0.5, 0.1
  model_fn = _linear_model_fn(_KERNEL0, _BIAS0, data_loss_weight=0.0)
  _train(tmp_path, model="toy", model_fn=model_fn, epochs=2,
         learning_rate=lr, weight_decay=wd)
  weights = _weights(tmp_path)
  np.testing.assert_allclose(weights["toy/kernel"],
                             _KERNEL0 * (1 - lr * wd)**8, rtol=1e-5)
  np.testing.assert_array_equal(weights["toy/bias"], _BIAS0)
  logged = _scalar_events(tmp_path)["loss"]
  expected = [wd * 0.5 * np.sum(_KERNEL0.astype(np.float64)**2) *
              (1 - lr * wd)**(2 * (step - 1)) for step in range(1, 9)]
  np.testing.assert_allclose([logged[s] for s in range(1, 9)], expected,
                             rtol=1e-5)


def test_weight_decay_sums_l2_of_every_kernel_of_a_network(tmp_path):
  wd = 0.01
  _train(tmp_path, max_steps=1, weight_decay=wd, seed=5)
  events = _scalar_events(tmp_path)
  # The initial kernels: the initialisers are stateless functions of the
  # graph seed and the variable names.
  with tf.Graph().as_default():
    v1.set_random_seed(5)
    nets_factory.get_network_fn("cnn_student")(
        tf.zeros([1, 8, 8, 1]), SPLITS.num_classes)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      initial = {v.op.name: sess.run(v) for v in v1.global_variables()}
  kernels = sorted(n for n in initial if n.endswith("/kernel"))
  assert kernels == ["cnn_student/conv1/kernel", "cnn_student/conv2/kernel",
                     "cnn_student/logits/kernel"]
  l2 = sum(0.5 * np.sum(initial[n].astype(np.float64)**2) for n in kernels)
  np.testing.assert_allclose(events["loss"][1] - events["cross_entropy"][1],
                             wd * l2, rtol=1e-4)


def test_only_var_list_variables_change(tmp_path):
  model_fn = _linear_model_fn(_KERNEL0, _BIAS0, other_init=np.float32(1.5))
  _train(tmp_path, model="toy", model_fn=model_fn, epochs=1,
         weight_decay=0.01)
  weights = _weights(tmp_path)
  assert weights["other/scale"] == np.float32(1.5)
  assert np.abs(weights["toy/kernel"] - _KERNEL0).max() > 1e-3
  assert np.abs(weights["toy/bias"] - _BIAS0).max() > 1e-3


def test_frozen_vars_are_restored_by_init_fn_and_not_checkpointed(tmp_path):
  calls = []

  def model_fn(images, labels, is_training):
    outputs = _linear_model_fn(_KERNEL0, _BIAS0)(images, labels, is_training)
    with v1.variable_scope("teacher", reuse=v1.AUTO_REUSE):
      # No initializer runs for it: init_fn must set it.
      frozen = v1.get_variable("w", shape=[], trainable=False)
    logits = outputs.logits * frozen

    def init_fn(sess):
      calls.append(1)
      frozen.load(2.0, sess)

    return outputs._replace(logits=logits, frozen_vars=[frozen],
                            init_fn=init_fn)

  _train(tmp_path, model="toy", model_fn=model_fn, max_steps=2, epochs=1)
  _train(tmp_path, model="toy", model_fn=model_fn, epochs=1)
  assert len(calls) == 2
  assert "teacher/w" not in _weights(tmp_path)
  assert _weights(tmp_path)["global_step"] == 4


def test_train_extras_arrive_with_their_examples(tmp_path):
  # Row i of the extra holds 10 * label_i + 0.5: a batch's rows must be the
  # rows of that batch's examples.
  code = SPLITS.train_labels.astype(np.float32) * 10 + 0.5
  seen = []
  base_fn = _linear_model_fn(_KERNEL0, _BIAS0)

  def model_fn(images, labels, is_training, extras=None):
    outputs = base_fn(images, labels, is_training)
    seen.append((is_training, None if extras is None else sorted(extras)))
    if extras is None:
      return outputs
    mismatch = tf.reduce_max(tf.abs(
        extras["code"] - (tf.cast(labels, tf.float32) * 10 + 0.5)))
    scalars = collections.OrderedDict(outputs.scalars)
    scalars["mismatch"] = mismatch
    return outputs._replace(scalars=scalars)

  metrics = loop.train(model_fn, SPLITS, _config(tmp_path, epochs=2),
                       _spec("toy"), stream=io.StringIO(),
                       train_extras={"code": code})
  assert metrics["global_step"] == 8
  assert seen == [(True, ["code"]), (False, None)]
  mismatch = _scalar_events(tmp_path)["mismatch"]
  assert sorted(mismatch) == list(range(1, 9))
  assert max(mismatch.values()) == 0.0
  # The extras are input data, not model state.
  assert not any("code" in name for name in _weights(tmp_path))


# ---------------------------------------------------------------- resume


def test_interrupted_run_resumes_at_the_saved_step(tmp_path):
  first, first_text = _train(tmp_path, epochs=3, max_steps=6)
  assert first["global_step"] == 6
  assert _progress_steps(first_text) == [1, 2, 3, 4, 5, 6]
  assert _saved_steps(tmp_path) == [4, 6]
  metrics, text = _train(tmp_path, epochs=3)
  assert "resuming from %s (step 6, epoch 1)" % os.path.join(
      str(tmp_path), "model.ckpt-6") in text
  # Nothing retrained: the second run took steps 7..12 only.
  assert _progress_steps(text) == [7, 8, 9, 10, 11, 12]
  assert metrics["global_step"] == 12
  assert _weights(tmp_path)["global_step"] == 12
  # Epoch 1 kept as it was; the partial epoch 2 of the first run replaced.
  history = metrics["history"]
  assert [h["epoch"] for h in history] == [1, 2, 3]
  assert [h["global_step"] for h in history] == [4, 8, 12]
  assert history[0] == first["history"][0]
  # Both runs' summaries are kept (the resumed run has its own event file).
  assert sorted(_scalar_events(tmp_path)["loss"]) == list(range(1, 13))


class _InterruptingStream(io.StringIO):
  """A progress stream that raises KeyboardInterrupt on a given line."""

  def __init__(self, marker):
    super(_InterruptingStream, self).__init__()
    self.marker = marker

  def write(self, text):
    if self.marker in text:
      raise KeyboardInterrupt()
    return super(_InterruptingStream, self).write(text)


_EQUIVALENCE = dict(model="mlp_teacher", optimizer="momentum",
                    learning_rate=0.05)  # dropout and optimizer slots


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
  """2 epochs without interruption; its weights at step 8."""
  train_dir = tmp_path_factory.mktemp("straight")
  metrics, _ = _train(train_dir, epochs=2, **_EQUIVALENCE)
  return metrics, _weights(train_dir)


def test_resume_after_one_epoch_gives_the_same_weights(tmp_path,
                                                       straight_run):
  _train(tmp_path, epochs=1, **_EQUIVALENCE)
  assert _saved_steps(tmp_path) == [4]
  metrics, _ = _train(tmp_path, epochs=2, **_EQUIVALENCE)
  # Bit-for-bit: the input order and dropout masks depend on (seed, epoch,
  # step) only, and the momentum slots are in the checkpoint.
  _assert_same_weights(_weights(tmp_path), straight_run[1])
  assert metrics["test_loss"] == straight_run[0]["test_loss"]


def test_resume_after_a_crash_mid_epoch_gives_the_same_weights(
    tmp_path, straight_run):
  # Saved at step 5 (save_every_steps), interrupted (Ctrl-C) after step 6:
  # the loop saves step 6 on its way out.
  with pytest.raises(KeyboardInterrupt):
    _train(tmp_path, epochs=2, save_every_steps=5,
           stream=_InterruptingStream("step 6/8"), **_EQUIVALENCE)
  assert _saved_steps(tmp_path) == [4, 5, 6]
  _, text = _train(tmp_path, epochs=2, save_every_steps=5, **_EQUIVALENCE)
  assert "(step 6, epoch 1)" in text
  assert _progress_steps(text) == [7, 8]
  _assert_same_weights(_weights(tmp_path), straight_run[1])


def test_resume_after_a_hard_kill_mid_epoch_gives_the_same_weights(
    tmp_path, straight_run):
  # Saved at step 5, killed after step 6 with no chance to save (SIGKILL):
  # emulated by deleting what the interrupt handler saved.
  with pytest.raises(KeyboardInterrupt):
    _train(tmp_path, epochs=2, save_every_steps=5,
           stream=_InterruptingStream("step 6/8"), **_EQUIVALENCE)
  state = tf.train.get_checkpoint_state(str(tmp_path))
  for path in tf.io.gfile.glob(str(tmp_path / "model.ckpt-6*")):
    os.remove(path)
  tf.compat.v1.train.update_checkpoint_state(
      str(tmp_path), str(tmp_path / "model.ckpt-5"),
      [p for p in state.all_model_checkpoint_paths if not p.endswith("-6")])
  _, text = _train(tmp_path, epochs=2, save_every_steps=5, **_EQUIVALENCE)
  assert "(step 5, epoch 1)" in text
  assert _progress_steps(text) == [6, 7, 8]  # step 6 is taken again
  _assert_same_weights(_weights(tmp_path), straight_run[1])


def test_resume_mid_epoch_keeps_the_learning_rate_schedule(tmp_path):
  # The schedule follows --epochs; max_steps only stops the run earlier.
  config = dict(_EQUIVALENCE, learning_rate_decay="cosine", epochs=2)
  _train(tmp_path / "straight", **config)
  _train(tmp_path / "resumed", max_steps=5, **config)
  assert _saved_steps(tmp_path / "resumed") == [4, 5]
  _train(tmp_path / "resumed", **config)
  _assert_same_weights(_weights(tmp_path / "resumed"),
                       _weights(tmp_path / "straight"))
  rates = _scalar_events(tmp_path / "resumed")["learning_rate"]
  np.testing.assert_allclose(
      [rates[s] for s in range(1, 9)],
      [0.05 * 0.5 * (1 + np.cos(np.pi * (s - 1) / 8.0)) for s in range(1, 9)],
      rtol=1e-5, atol=1e-9)


def test_same_seed_same_result_other_seed_differs(tmp_path, straight_run):
  metrics, _ = _train(tmp_path / "again", epochs=2, **_EQUIVALENCE)
  _assert_same_weights(_weights(tmp_path / "again"), straight_run[1])
  assert metrics["history"][-1]["test_loss"] == (
      straight_run[0]["history"][-1]["test_loss"])
  _train(tmp_path / "other", epochs=2, seed=1, **_EQUIVALENCE)
  other = _weights(tmp_path / "other")
  kernel = "mlp_teacher/logits/kernel"
  assert not np.allclose(other[kernel], straight_run[1][kernel])


def test_rerunning_a_finished_run_does_nothing(tmp_path):
  first, _ = _train(tmp_path, epochs=1)
  metrics_path = os.path.join(str(tmp_path), "metrics.json")
  with open(metrics_path, "rb") as f:
    before = f.read()
  mtime = os.stat(metrics_path).st_mtime_ns
  weights = _weights(tmp_path)
  again, text = _train(tmp_path, epochs=1)
  assert "is already trained to step 4 of 4; nothing to do" in text
  assert _progress_steps(text) == []
  assert os.stat(metrics_path).st_mtime_ns == mtime
  with open(metrics_path, "rb") as f:
    assert f.read() == before
  assert again == json.loads(before.decode("utf-8"))
  assert again["test_accuracy"] == first["test_accuracy"]
  assert _saved_steps(tmp_path) == [4]
  _assert_same_weights(_weights(tmp_path), weights)
  # A lost metrics.json is rebuilt by evaluating the last checkpoint.
  os.remove(metrics_path)
  rebuilt, _ = _train(tmp_path, epochs=1)
  assert rebuilt["global_step"] == 4
  assert [h["epoch"] for h in rebuilt["history"]] == [1]
  assert rebuilt["test_accuracy"] == first["test_accuracy"]
  assert rebuilt["test_loss"] == pytest.approx(first["test_loss"], rel=1e-6)
  assert os.path.exists(metrics_path)


def test_train_dir_of_another_model_is_refused(tmp_path):
  _train(tmp_path, epochs=1)
  listing = sorted(os.listdir(str(tmp_path)))
  with open(os.path.join(str(tmp_path), "model_spec.json")) as f:
    spec = f.read()
  with pytest.raises(errors.ConfigError,
                     match=r"train_dir %s holds a run with model='cnn_student',"
                     r" not 'mlp_student'" % re.escape(str(tmp_path))):
    _train(tmp_path, model="mlp_student", epochs=1)
  assert sorted(os.listdir(str(tmp_path))) == listing
  with open(os.path.join(str(tmp_path), "model_spec.json")) as f:
    assert f.read() == spec


def test_moved_train_dir_still_resumes(tmp_path):
  _train(tmp_path / "old", epochs=2, max_steps=3)
  os.rename(str(tmp_path / "old"), str(tmp_path / "new"))
  # The `checkpoint` file names its checkpoints relative to the folder.
  assert checkpoints.resolve_checkpoint(str(tmp_path / "new")) == os.path.join(
      str(tmp_path / "new"), "model.ckpt-3")
  metrics, text = _train(tmp_path / "new", epochs=2)
  assert "(step 3, epoch 0)" in text
  assert _progress_steps(text) == [4, 5, 6, 7, 8]
  assert metrics["global_step"] == 8


def test_max_to_keep_counts_checkpoints_of_earlier_runs(tmp_path):
  _train(tmp_path, epochs=2, max_steps=3, save_every_steps=1, max_to_keep=2)
  assert _saved_steps(tmp_path) == [2, 3]
  _train(tmp_path, epochs=2, save_every_steps=1, max_to_keep=2)
  assert _saved_steps(tmp_path) == [7, 8]
  state = tf.train.get_checkpoint_state(str(tmp_path))
  assert [checkpoints.step_of(p) for p in state.all_model_checkpoint_paths] == [
      7, 8]


# ---------------------------------------------------------------- outputs


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory):
  """cnn_student, 2 epochs, with a validation split of 12 examples."""
  splits = testing_utils.tiny_splits(num_train=60, num_test=32, size=8,
                                     num_classes=4, num_validation=12)
  train_dir = tmp_path_factory.mktemp("validated")
  metrics, text = _train(train_dir, splits=splits, epochs=2)
  return train_dir, splits, metrics, text


def test_metrics_json_keys(validated_run):
  train_dir, _, metrics, _ = validated_run
  with open(os.path.join(str(train_dir), "metrics.json")) as f:
    on_disk = json.load(f)
  assert on_disk == json.loads(json.dumps(metrics))
  for key in ("model", "global_step", "epoch", "test_accuracy", "test_loss",
              "examples_per_sec", "history", "validation_accuracy"):
    assert key in on_disk, key
  assert on_disk["model"] == "cnn_student"
  assert on_disk["global_step"] == 8
  assert on_disk["epoch"] == 2
  assert 0.0 <= on_disk["validation_accuracy"] <= 1.0
  assert on_disk["examples_per_sec"] > 0
  assert [h["epoch"] for h in on_disk["history"]] == [1, 2]
  assert [h["global_step"] for h in on_disk["history"]] == [4, 8]
  for entry in on_disk["history"]:
    for key in ("epoch", "global_step", "test_accuracy", "test_loss",
                "examples_per_sec", "validation_accuracy", "validation_loss"):
      assert key in entry, key
  last = on_disk["history"][-1]
  assert on_disk["test_accuracy"] == last["test_accuracy"]
  assert on_disk["test_loss"] == last["test_loss"]
  # The second epoch's rate (the first includes warm-up).
  assert on_disk["examples_per_sec"] == last["examples_per_sec"]
  with open(os.path.join(str(train_dir), "model_spec.json")) as f:
    assert json.load(f) == _spec("cnn_student")


def _numpy_scores(train_dir, images, labels):
  """(accuracy, mean cross-entropy) of the latest checkpoint, numpy side."""
  with tf.Graph().as_default():
    inputs = v1.placeholder(tf.float32, [None, 8, 8, 1])
    logits, _ = nets_factory.get_network_fn("cnn_student")(inputs, 4)
    saver = v1.train.Saver(v1.trainable_variables())
    with v1.Session() as sess:
      saver.restore(sess, checkpoints.resolve_checkpoint(str(train_dir)))
      z = sess.run(logits, {inputs: images}).astype(np.float64)
  m = z.max(axis=1, keepdims=True)
  log_softmax = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
  xent = -log_softmax[np.arange(len(labels)), labels].mean()
  return float(np.mean(z.argmax(axis=1) == labels)), xent


def test_test_and_validation_scores_match_numpy(validated_run):
  train_dir, splits, metrics, text = validated_run
  accuracy, xent = _numpy_scores(train_dir, splits.test_images,
                                 splits.test_labels)
  assert metrics["test_accuracy"] == accuracy
  assert metrics["test_loss"] == pytest.approx(xent, rel=1e-5)
  accuracy, _ = _numpy_scores(train_dir, splits.validation_images,
                              splits.validation_labels)
  assert metrics["validation_accuracy"] == accuracy
  assert ("test accuracy %.2f%%" % (100 * metrics["test_accuracy"])) in text


def test_tensorboard_events(validated_run):
  train_dir, _, metrics, _ = validated_run
  assert glob.glob(os.path.join(str(train_dir), "events.out.tfevents.*"))
  events = _scalar_events(train_dir)
  for tag in ("loss", "accuracy", "learning_rate", "cross_entropy",
              "test/accuracy", "test/loss", "validation/accuracy",
              "examples_per_sec"):
    assert tag in events, (tag, sorted(events))
  assert sorted(events["loss"]) == list(range(1, 9))
  np.testing.assert_allclose(list(events["learning_rate"].values()), 0.1)
  assert sorted(events["test/accuracy"]) == [4, 8]
  assert events["test/accuracy"][8] == pytest.approx(metrics["test_accuracy"])


# ---------------------------------------------------------------- errors


def test_nan_loss_stops_with_the_step(tmp_path):
  with pytest.raises(errors.DivergenceError,
                     match=r"loss became (nan|inf|-inf) at step (\d+); "
                     r"stopped\. .*Lower --learning_rate") as info:
    _train(tmp_path, epochs=2, learning_rate=1e30)
  step = int(re.search(r"at step (\d+)", str(info.value)).group(1))
  assert 1 <= step <= 8
  # The loss of step s comes from the weights saved as step s - 1.
  if step <= STEPS_PER_EPOCH + 1:
    assert "The last good checkpoint is none" in str(info.value)
  else:
    assert "The last good checkpoint is %s (kept" % os.path.join(
        str(tmp_path), "model.ckpt-4") in str(info.value)


def _jumping_loss_model_fn(jump_step, factor):
  """cnn_student whose loss is multiplied by `factor` from `jump_step` on."""
  base = loop.classifier_model_fn(nets_factory.get_network_fn("cnn_student"),
                                  SPLITS.num_classes, scope="cnn_student")

  def model_fn(images, labels, is_training):
    outputs = base(images, labels, is_training)
    jumped = tf.cast(v1.train.get_or_create_global_step() >= jump_step,
                     tf.float32)
    return outputs._replace(loss=outputs.loss * (1.0 + (factor - 1.0) *
                                                 jumped))

  return model_fn


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  # Weights of step 12 give the loss of step 13, 1000 times the usual: the
  # checkpoint of step 12 is suspect, 11 is the last good one.
  with pytest.raises(errors.DivergenceError,
                     match=r"^loss diverged to [0-9.e+]+, above 50 x the "
                     r"median [0-9.]+ of the last 12 steps at step 13; "
                     r"stopped\. The last good checkpoint is (.*)model.ckpt-11 "
                     r"\(kept; rerunning resumes from it\)") :
    _train(tmp_path, epochs=5, save_every_steps=1, max_to_keep=5,
           learning_rate=0.01, model_fn=_jumping_loss_model_fn(12, 1000.0))
  assert _saved_steps(tmp_path) == [8, 9, 10, 11, 12]
  assert checkpoints.latest_checkpoint(str(tmp_path)).endswith("-11")
  # Off: the same run goes on.
  metrics, _ = _train(tmp_path / "off", epochs=4, divergence_factor=0,
                      learning_rate=0.01,
                      model_fn=_jumping_loss_model_fn(12, 1000.0))
  assert metrics["global_step"] == 16


def test_divergence_rule():
  check = loop.Divergence(50.0).check
  for _ in range(loop.DIVERGENCE_MIN_STEPS - 1):
    assert check(1.0) is None
  assert check(1000.0) is None  # Too few losses yet to judge.
  assert check(49.0) is None  # median 1.0
  assert "diverged to 51, above 50 x the median 1" in check(51.0)
  floor = loop.Divergence(50.0)
  for _ in range(20):
    floor.check(0.001)
  assert floor.check(4.9) is None  # the median counts as 0.1
  assert floor.check(5.1) is not None
  assert check(float("nan")) == "loss became nan"
  assert check(float("inf")) == "loss became inf"
  assert loop.Divergence(0).check(1e30) is None


def _damage(prefix, how):
  data = prefix + ".data-00000-of-00001"
  if how == "truncated":
    with open(data, "r+b") as f:
      f.truncate(os.path.getsize(data) // 2)
  elif how == "missing":
    os.remove(data)
  elif how == "flipped":
    raw = bytearray(open(data, "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    with open(data, "wb") as f:
      f.write(bytes(raw))
  else:
    os.remove(prefix + ".index")


@pytest.mark.parametrize("how", ["truncated", "missing", "flipped", "index"])
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(
    tmp_path, straight_run, how):
  _train(tmp_path, epochs=2, max_steps=6, save_every_steps=5, **_EQUIVALENCE)
  assert _saved_steps(tmp_path) == [4, 5, 6]
  latest = str(tmp_path / "model.ckpt-6")
  _damage(latest, how)
  assert checkpoints.checkpoint_problem(latest)
  assert checkpoints.checkpoint_problem(str(tmp_path / "model.ckpt-5")) is None
  _, text = _train(tmp_path, epochs=2, save_every_steps=5, **_EQUIVALENCE)
  assert re.search(r"warning: checkpoint %s is damaged \(.+\); using the "
                   r"previous one" % re.escape(latest), text), text
  assert "resuming from %s (step 5, epoch 1)" % tmp_path.joinpath(
      "model.ckpt-5") in text
  assert _progress_steps(text) == [6, 7, 8]
  _assert_same_weights(_weights(tmp_path), straight_run[1])


def test_every_checkpoint_damaged_is_an_error(tmp_path):
  _train(tmp_path, epochs=1, max_steps=2, save_every_steps=1)
  for step in _saved_steps(tmp_path):
    _damage(str(tmp_path / ("model.ckpt-%d" % step)), "truncated")
  with pytest.raises(errors.CheckpointError,
                     match=r"no usable checkpoint in .*: .*model.ckpt-2 is "
                     r"damaged .*delete the model.ckpt-\* files"):
    _train(tmp_path, epochs=1)


@pytest.mark.parametrize("overrides,pattern", [
    (dict(epochs=0), r"epochs must be > 0, got 0"),
    (dict(batch_size=0), r"batch_size must be >= 1, got 0"),
    (dict(weight_decay=-1.0), r"weight_decay must be >= 0"),
    (dict(save_every_steps=-1), r"save_every_steps must be >= 0"),
    (dict(max_steps=0), r"max_steps must be >= 1"),
    (dict(max_to_keep=1), r"max_to_keep must be >= 2"),
    (dict(divergence_factor=0.5), r"divergence_factor must be 0 \(off\) or > 1"),
])
def test_bad_config_is_refused_before_writing(tmp_path, overrides, pattern):
  train_dir = tmp_path / "run"
  with pytest.raises(errors.ConfigError, match=pattern):
    _train(train_dir, **overrides)
  assert not os.path.exists(str(train_dir))


def test_progress_lines_print_window_means_of_the_per_step_scalars(tmp_path):
  # Summaries every step record each step's loss and accuracy; a progress
  # line every 2 steps prints the means the graph summed since the last line.
  _, text = _train(tmp_path, epochs=2, log_every_steps=2,
                   summary_every_steps=1)
  events = _scalar_events(tmp_path)
  lines = re.findall(r"step (\d+)/8\s+loss ([0-9.]+)\s+accuracy ([0-9.]+)",
                     text)
  assert [int(s) for s, _, _ in lines] == [2, 4, 6, 8]
  for step, loss, accuracy in lines:
    step = int(step)
    for tag, printed in (("loss", loss), ("accuracy", accuracy)):
      want = np.mean([events[tag][k] for k in (step - 1, step)])
      assert abs(float(printed) - want) < 1e-4, (step, tag, printed, want)
