"""Tests of distill_v1.compression.pruning: schedule, contrib hparams, masks."""

import io
import os

import numpy as np
import pytest

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.compression import pruning
from distill_v1.models import layers
from distill_v1.models import nets_factory
from distill_v1.training import loop
from tests import testing_utils

v1 = tf.compat.v1

SPLITS = testing_utils.tiny_splits(num_train=64, num_test=32, size=8,
                                   num_classes=4)


# ----------------------------------------------------------------- schedule


def _hparams(**overrides):
  kwargs = dict(begin_step=10, end_step=110, frequency=10,
                initial_sparsity=0.1, target_sparsity=0.8,
                sparsity_function_begin_step=10,
                sparsity_function_end_step=110,
                sparsity_function_exponent=3.0)
  kwargs.update(overrides)
  return pruning.PruningHParams(**kwargs)


@pytest.mark.parametrize("step,expected", [
    (0, 0.1),  # before the curve: initial sparsity
    (10, 0.1),
    (35, 0.8 - 0.7 * 0.75 ** 3),  # p = 0.25
    (60, 0.8 - 0.7 * 0.5 ** 3),  # p = 0.5: 0.7125
    (110, 0.8),
    (1000, 0.8),  # after the curve: target sparsity
])
def test_sparsity_at_follows_the_formula(step, expected):
  assert pruning.sparsity_at(step, _hparams()) == pytest.approx(expected,
                                                                abs=1e-12)


def test_sparsity_at_linear_exponent():
  h = _hparams(sparsity_function_exponent=1.0, initial_sparsity=0.0)
  assert pruning.sparsity_at(35, h) == pytest.approx(0.2)


def test_graph_schedule_equals_python_schedule():
  h = _hparams()
  steps = [0, 5, 10, 11, 35, 60, 99, 110, 200]
  with tf.Graph().as_default():
    step = v1.placeholder(tf.int64, [])
    sparsity = pruning.sparsity_tensor(step, h)
    with v1.Session() as sess:
      got = [sess.run(sparsity, {step: s}) for s in steps]
  np.testing.assert_allclose(got, [pruning.sparsity_at(s, h) for s in steps],
                             rtol=0, atol=1e-12)


@pytest.mark.parametrize("begin,end,frequency,last_step,expected", [
    # contrib's rule: begin <= t <= end and last_update + frequency <= t,
    # with last_update starting at 0.
    (0, 40, 10, 60, [10, 20, 30, 40]),
    (5, 40, 10, 60, [10, 20, 30, 40]),
    (25, 60, 10, 80, [25, 35, 45, 55]),
    (0, -1, 25, 100, [25, 50, 75, 100]),  # -1: until training stops
    (3, 6, 1, 10, [3, 4, 5, 6]),
])
def test_update_steps(begin, end, frequency, last_step, expected):
  h = _hparams(begin_step=begin, end_step=end, frequency=frequency)
  assert pruning.update_steps(h, last_step) == expected


def test_mask_sparsity_after_uses_the_last_update():
  h = _hparams(begin_step=0, end_step=40, frequency=10,
               sparsity_function_begin_step=0, sparsity_function_end_step=40)
  assert pruning.mask_sparsity_after(9, h, 1000) == 0.0
  assert pruning.mask_sparsity_after(19, h, 1000) == pytest.approx(
      1 - pruning.kept_count(1000, pruning.sparsity_at(10, h)) / 1000.0)
  assert pruning.mask_sparsity_after(500, h, 1000) == pytest.approx(0.8)
  assert pruning.kept_count(10, 0.99) == 1  # never an empty kernel
  assert pruning.kept_count(10, 0.0) == 10


def test_gradual_pruning_hparams_span_the_window():
  h = pruning.gradual_pruning_hparams(0.9, begin_step=100, end_step=300,
                                      frequency=50, scope="net")
  assert (h.begin_step, h.end_step) == (100, 300)
  assert (h.sparsity_function_begin_step,
          h.sparsity_function_end_step) == (100, 300)
  assert pruning.update_steps(h, 400) == [100, 150, 200, 250, 300]
  assert pruning.sparsity_at(300, h) == pytest.approx(0.9)
  with pytest.raises(errors.ConfigError, match="end_pruning_step=100 must "
                     "be > begin_pruning_step=100"):
    pruning.gradual_pruning_hparams(0.9, begin_step=100, end_step=100)


# -------------------------------------------------- contrib's hparams string


def test_empty_string_gives_contrib_defaults():
  h = pruning.parse_pruning_hparams("")
  assert h == pruning.PruningHParams()
  assert (h.name, h.begin_step, h.end_step, h.frequency, h.initial_sparsity,
          h.target_sparsity, h.sparsity_function_begin_step,
          h.sparsity_function_end_step, h.sparsity_function_exponent) == (
              "model_pruning", 0, -1, 10, 0.0, 0.5, 0, 100, 3.0)


def test_contrib_string_is_accepted_as_is():
  text = ("name=cnn_pruning, begin_pruning_step=1000,end_pruning_step=20000,"
          "pruning_frequency=100,initial_sparsity=0.05,target_sparsity=0.9,"
          "sparsity_function_begin_step=1000,"
          "sparsity_function_end_step=15000,sparsity_function_exponent=2,"
          "threshold_decay=0.0,nbins=256,block_height=1,block_width=1,"
          "block_pooling_function=AVG,use_tpu=false,weight_sparsity_map=[],"
          "block_dims_map=[''],do_not_prune=[logits,fc2]")
  base = pruning.PruningHParams(scope="cnn_student", min_kernel_size=7)
  h = pruning.parse_pruning_hparams(text.replace("['']", "[]"), base)
  assert h == pruning.PruningHParams(
      name="cnn_pruning", begin_step=1000, end_step=20000, frequency=100,
      initial_sparsity=0.05, target_sparsity=0.9,
      sparsity_function_begin_step=1000, sparsity_function_end_step=15000,
      sparsity_function_exponent=2.0, scope="cnn_student", min_kernel_size=7,
      do_not_prune=("logits", "fc2"))


def test_keys_left_out_take_contrib_defaults_not_the_base_values():
  base = pruning.PruningHParams(target_sparsity=0.9, frequency=3,
                                scope="net")
  h = pruning.parse_pruning_hparams("begin_pruning_step=5", base)
  assert (h.target_sparsity, h.frequency, h.scope) == (0.5, 10, "net")


@pytest.mark.parametrize("text,key", [
    ("block_height=2", "block_height=2"),
    ("block_width=4", "block_width=4"),
    ("weight_sparsity_map=[conv1:0.9,conv2/kernel:0.8]",
     "weight_sparsity_map"),
    ("block_dims_map=[dense1:4x4]", "block_dims_map"),
    ("use_tpu=true", "use_tpu=True"),
    ("threshold_decay=0.9", "threshold_decay=0.9"),
    ("nbins=100", "nbins=100"),
    ("block_pooling_function=MIN", "block_pooling_function=MIN"),
])
def test_unimplemented_keys_are_refused_by_name(text, key):
  with pytest.raises(errors.ConfigError,
                     match=r"^--pruning_hparams: %s.* is not supported "
                     r"\(contrib's default is" % key.replace("[", r"\[")):
    pruning.parse_pruning_hparams(text, source="--pruning_hparams")


def test_unknown_key_is_refused_by_name():
  with pytest.raises(errors.ConfigError,
                     match=r"unknown key 'prune_option'; "
                     r"tf.contrib.model_pruning's keys are: name, "
                     r"begin_pruning_step"):
    pruning.parse_pruning_hparams("target_sparsity=0.5,prune_option=weight")


@pytest.mark.parametrize("text,message", [
    ("begin_pruning_step=1.5", r"begin_pruning_step='1.5' is not a valid int"),
    ("target_sparsity=high", r"target_sparsity='high' is not a valid float"),
    ("target_sparsity=1.0", r"target_sparsity=1.0 must be in \[0, 1\)"),
    ("begin_pruning_step=100,end_pruning_step=50",
     r"end_pruning_step=50 must be > begin_pruning_step=100"),
    ("sparsity_function_begin_step=10,sparsity_function_end_step=10",
     r"sparsity_function_end_step=10 must be > "
     r"sparsity_function_begin_step=10"),
    ("pruning_frequency=0", r"pruning_frequency=0 must be >= 1"),
    ("target_sparsity=0.5,target_sparsity=0.6",
     r"key 'target_sparsity' is given twice"),
    ("target_sparsity", r"cannot parse 'target_sparsity' at character 0"),
    ("use_tpu=maybe", r"use_tpu='maybe' is not a valid bool"),
])
def test_bad_values_are_refused(text, message):
  with pytest.raises(errors.ConfigError, match=message):
    pruning.parse_pruning_hparams(text)


# ------------------------------------------------------------ masks in graph


def _dense_net(getter, images, units=(6, 3)):
  """Two dense layers under a variable scope carrying `getter`."""
  with v1.variable_scope("net", custom_getter=getter):
    hidden = layers.dense(images, units[0], activation=tf.nn.relu,
                          scope="fc1")
    return layers.dense(hidden, units[1], scope="logits")


def _numpy_mask(kernel, sparsity):
  flat = np.abs(kernel).reshape(-1)
  keep = pruning.kept_count(flat.size, sparsity)
  order = np.argsort(-flat, kind="stable")
  mask = np.zeros(flat.size, np.float32)
  mask[order[:keep]] = 1.0
  return mask.reshape(kernel.shape), flat[order[keep - 1]]


def test_masked_weights_stay_zero_and_follow_the_schedule():
  h = pruning.gradual_pruning_hparams(0.75, begin_step=0, end_step=6,
                                      frequency=2, scope="net")
  x = np.random.RandomState(0).normal(size=[16, 10]).astype(np.float32)
  y = np.random.RandomState(1).randint(0, 3, size=[16])
  with tf.Graph().as_default():
    v1.set_random_seed(1)
    global_step = v1.train.get_or_create_global_step()
    getter, state = pruning.make_mask_getter(h)
    logits = _dense_net(getter, tf.constant(x))
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.constant(y), logits=logits))
    train_op = v1.train.GradientDescentOptimizer(0.5).minimize(
        loss, global_step=global_step, var_list=v1.trainable_variables())
    with tf.control_dependencies([train_op]):
      step_op = pruning.mask_update_op(state, global_step, h)
    assert list(state.kernels) == ["net/fc1/kernel", "net/logits/kernel"]
    for pruned in state.kernels.values():
      assert pruned.mask.op.name == pruned.name + "_mask"
      assert pruned.threshold.op.name == pruned.name + "_threshold"
      assert pruned.mask not in v1.trainable_variables()
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      frozen = {}
      for step in range(1, 11):
        sess.run(step_op)
        for pruned in state.kernels.values():
          kernel, mask, threshold = sess.run(
              [pruned.kernel, pruned.mask, pruned.threshold])
          expected = pruning.mask_sparsity_after(step, h, kernel.size)
          effective = kernel * mask
          assert np.mean(effective == 0) == pytest.approx(expected)
          if step in pruning.update_steps(h, step):
            want_mask, want_threshold = _numpy_mask(
                kernel, pruning.sparsity_at(step, h))
            np.testing.assert_array_equal(mask, want_mask)
            assert threshold == want_threshold
          # Pruned weights get no gradient: their stored values stay put.
          previous = frozen.get(pruned.name)
          if previous is not None:
            still_pruned = (previous[1] == 0) & (mask == 0)
            np.testing.assert_array_equal(kernel[still_pruned],
                                          previous[0][still_pruned])
          frozen[pruned.name] = (kernel, mask)
      assert sess.run(global_step) == 10
      last, = [v for v in v1.global_variables()
               if v.op.name == "model_pruning/last_mask_update_step"]
      assert sess.run(last) == 6


def test_filters_scope_do_not_prune_and_min_kernel_size():
  h = pruning.PruningHParams(scope="net", do_not_prune=("logits",),
                             min_kernel_size=0)
  with tf.Graph().as_default():
    getter, state = pruning.make_mask_getter(h)
    with v1.variable_scope("", custom_getter=getter):
      nets_factory.get_network_fn("cnn_student")(tf.zeros([1, 8, 8, 1]), 4,
                                                 scope="net")
      nets_factory.get_network_fn("cnn_student")(tf.zeros([1, 8, 8, 1]), 4,
                                                 scope="other")
    assert list(state.kernels) == ["net/conv1/kernel", "net/conv2/kernel"]
  h = pruning.PruningHParams(scope="net/", min_kernel_size=200)
  with tf.Graph().as_default():
    getter, state = pruning.make_mask_getter(h)
    with v1.variable_scope("", custom_getter=getter):
      nets_factory.get_network_fn("cnn_student")(tf.zeros([1, 8, 8, 1]), 4,
                                                 scope="net")
    # conv1 has 3*3*1*16 = 144 weights.
    assert list(state.kernels) == ["net/conv2/kernel", "net/logits/kernel"]


def _model_fn(model="cnn_student", teacher=False):
  network_fn = nets_factory.get_network_fn(model)
  base = loop.classifier_model_fn(network_fn, SPLITS.num_classes, model)
  if not teacher:
    return base

  def with_teacher(images, labels, is_training):
    outputs = base(images, labels, is_training)
    if is_training:
      with v1.variable_scope("teacher"):
        teacher_logits, _ = network_fn(images, SPLITS.num_classes,
                                       scope=model)
      outputs = outputs._replace(
          loss=outputs.loss + 0.0 * tf.reduce_sum(teacher_logits))
    return outputs

  return with_teacher


def test_eval_tower_sees_masks_and_teacher_is_not_masked():
  h = pruning.PruningHParams(scope="cnn_student")
  model_fn = pruning.wrap_model_fn(_model_fn(teacher=True), h)
  x, y = SPLITS.test_images[:4], SPLITS.test_labels[:4]
  with tf.Graph().as_default():
    v1.train.get_or_create_global_step()
    train_outputs = model_fn(tf.constant(x), tf.constant(y), True)
    state = model_fn.pruning_state()
    count = len(v1.global_variables())
    with v1.variable_scope(v1.get_variable_scope(), reuse=True):
      eval_outputs = model_fn(tf.constant(x), tf.constant(y), False)
    assert len(v1.global_variables()) == count  # no second set of masks
    assert model_fn.pruning_state() is state
    names = [v.op.name for v in v1.global_variables()]
    assert not [n for n in names if n.startswith("teacher/") and
                ("_mask" in n or "_threshold" in n)]
    assert list(state.kernels) == ["cnn_student/conv1/kernel",
                                   "cnn_student/conv2/kernel",
                                   "cnn_student/logits/kernel"]
    assert list(train_outputs.scalars)[-5:] == [
        "sparsity/schedule", "sparsity/total", "sparsity/conv1",
        "sparsity/conv2", "sparsity/logits"]
    assert len(train_outputs.after_step_fns) == 1
    assert eval_outputs.after_step_fns == ()
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      rng = np.random.RandomState(0)
      masks = {}
      for name, pruned in state.kernels.items():
        masks[name] = (rng.uniform(size=pruned.mask.shape.as_list()) <
                       0.5).astype(np.float32)
        pruned.mask.load(masks[name], sess)
      got_eval, got_train = sess.run([eval_outputs.logits,
                                      train_outputs.logits])
      scalars = sess.run(train_outputs.scalars)
      weights = {n: sess.run(p.kernel) for n, p in state.kernels.items()}
      variables = {v.op.name: v for v in v1.global_variables()}
      biases = {n: sess.run(variables[n.replace("kernel", "bias")])
                for n in state.kernels}
  np.testing.assert_allclose(got_eval, got_train, rtol=1e-6, atol=1e-6)

  # numpy reference of cnn_student with masked kernels.
  def conv_relu(inputs, name):
    kernel = weights[name] * masks[name]
    padded = np.pad(inputs, [(0, 0), (1, 1), (1, 1), (0, 0)])
    out = np.zeros(inputs.shape[:3] + (kernel.shape[-1],), np.float64)
    for i in range(3):
      for j in range(3):
        out += np.einsum("nhwc,cd->nhwd",
                         padded[:, i:i + inputs.shape[1],
                                j:j + inputs.shape[2]], kernel[i, j])
    return np.maximum(out + biases[name], 0)

  def pool(inputs):
    n, hh, ww, c = inputs.shape
    return inputs.reshape(n, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))

  net = pool(conv_relu(x.astype(np.float64), "cnn_student/conv1/kernel"))
  net = pool(conv_relu(net, "cnn_student/conv2/kernel"))
  name = "cnn_student/logits/kernel"
  want = (net.reshape(len(x), -1) @ (weights[name] * masks[name]) +
          biases[name])
  np.testing.assert_allclose(got_eval, want, rtol=1e-4, atol=1e-4)
  sizes = {n: m.size for n, m in masks.items()}
  zeros = {n: float(np.sum(m == 0)) for n, m in masks.items()}
  assert scalars["sparsity/total"] == pytest.approx(
      sum(zeros.values()) / sum(sizes.values()), abs=1e-6)
  assert scalars["sparsity/conv2"] == pytest.approx(
      zeros["cnn_student/conv2/kernel"] / sizes["cnn_student/conv2/kernel"],
      abs=1e-6)


def test_scope_matching_nothing_is_refused():
  model_fn = pruning.wrap_model_fn(_model_fn(),
                                   pruning.PruningHParams(scope="student"))
  with tf.Graph().as_default():
    v1.train.get_or_create_global_step()
    with pytest.raises(errors.ConfigError,
                       match=r"pruning scope 'student' matched no kernel.*"
                       r"kernels are: cnn_student/conv1/kernel, "):
      model_fn(tf.zeros([2, 8, 8, 1]), tf.zeros([2], tf.int64), True)


# --------------------------------------------- the loop: resume and stripping


def _config(train_dir, **overrides):
  kwargs = dict(epochs=3, batch_size=16, learning_rate=0.1, log_every_steps=4,
                summary_every_steps=4, eval_batch_size=16)
  kwargs.update(overrides)
  return loop.TrainConfig(str(train_dir), **kwargs)


def _spec():
  return {"model": "cnn_student", "model_options": {},
          "num_classes": SPLITS.num_classes,
          "image_shape": list(SPLITS.image_shape),
          "class_names": list(SPLITS.class_names), "dataset": "tiny"}


_HPARAMS = pruning.gradual_pruning_hparams(0.75, begin_step=0, end_step=8,
                                           frequency=2, scope="cnn_student")


def _train(train_dir, **overrides):
  model_fn = pruning.wrap_model_fn(_model_fn(), _HPARAMS)
  return loop.train(model_fn, SPLITS, _config(train_dir, **overrides),
                    _spec(), stream=io.StringIO())


def _tensors(path):
  prefix = checkpoints.resolve_checkpoint(str(path))
  reader = tf.train.load_checkpoint(prefix)
  return {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(prefix)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A 12-step pruning run, and the same run stopped at 6 and resumed."""
  root = tmp_path_factory.mktemp("pruning_runs")
  whole, resumed = root / "whole", root / "resumed"
  _train(whole)
  _train(resumed, max_steps=6)
  halfway = _tensors(resumed)
  _train(resumed)
  return whole, resumed, halfway


def test_masks_are_checkpointed_and_a_resumed_run_continues(trained):
  whole, resumed, halfway = trained
  assert halfway["model_pruning/last_mask_update_step"] == 6
  for name in ("conv1", "conv2", "logits"):
    kernel = "cnn_student/%s/kernel" % name
    mask = halfway[kernel + "_mask"]
    assert np.mean(mask == 0) == pytest.approx(
        pruning.mask_sparsity_after(6, _HPARAMS, mask.size))
    assert halfway[kernel + "_threshold"] > 0
  final, uninterrupted = _tensors(resumed), _tensors(whole)
  assert final["global_step"] == 12
  assert final["model_pruning/last_mask_update_step"] == 8
  assert sorted(final) == sorted(uninterrupted)
  for name, value in uninterrupted.items():
    np.testing.assert_allclose(final[name], value, rtol=1e-5, atol=1e-6,
                               err_msg=name)
  for name in ("conv1", "conv2", "logits"):
    mask = final["cnn_student/%s/kernel_mask" % name]
    assert np.mean(mask == 0) == pytest.approx(0.75)


def _logits(prefix, images, masked):
  """cnn_student's logits from `prefix`, masked or plain."""
  with tf.Graph().as_default():
    if masked:
      getter, _ = pruning.make_mask_getter(_HPARAMS)
      with v1.variable_scope("", custom_getter=getter):
        logits, _ = nets_factory.get_network_fn("cnn_student")(
            tf.constant(images), SPLITS.num_classes)
    else:
      logits, _ = nets_factory.get_network_fn("cnn_student")(
          tf.constant(images), SPLITS.num_classes)
    with v1.Session() as sess:
      v1.train.Saver().restore(sess, prefix)
      return sess.run(logits)


def test_strip_masks_gives_a_plain_checkpoint_with_the_same_outputs(
    trained, tmp_path):
  whole, _, _ = trained
  out_dir = tmp_path / "stripped"
  result = pruning.strip_masks(str(whole), str(out_dir), scope="cnn_student")
  assert result.checkpoint == str(out_dir / "model.ckpt-12")
  assert checkpoints.resolve_checkpoint(str(out_dir)) == result.checkpoint
  stripped = _tensors(out_dir)
  assert sorted(stripped) == [
      "cnn_student/conv1/bias", "cnn_student/conv1/kernel",
      "cnn_student/conv2/bias", "cnn_student/conv2/kernel",
      "cnn_student/logits/bias", "cnn_student/logits/kernel", "global_step"]
  assert list(result.sparsity) == ["cnn_student/conv1/kernel",
                                   "cnn_student/conv2/kernel",
                                   "cnn_student/logits/kernel"]
  source = _tensors(whole)
  for name, fraction in result.sparsity.items():
    np.testing.assert_array_equal(stripped[name],
                                  source[name] * source[name + "_mask"])
    assert fraction == pytest.approx(0.75, abs=0.01)
  assert result.total_weights == 144 + 4608 + 512
  assert result.nonzero_weights == sum(
      np.count_nonzero(stripped[n]) for n in result.sparsity)
  spec = checkpoints.read_model_spec(str(out_dir))
  assert spec["model"] == "cnn_student"
  assert spec["stripped_from"].endswith("model.ckpt-12")
  images = SPLITS.test_images
  np.testing.assert_allclose(
      _logits(result.checkpoint, images, masked=False),
      _logits(checkpoints.resolve_checkpoint(str(whole)), images,
              masked=True), rtol=1e-6, atol=1e-6)
  assert pruning.checkpoint_masks(str(whole))
  assert not pruning.checkpoint_masks(str(out_dir))
  # Nothing half-written beside it.
  assert sorted(os.listdir(str(tmp_path))) == ["stripped"]


def test_strip_masks_replaces_an_old_folder_and_refuses_missing_input(
    trained, tmp_path):
  whole, _, _ = trained
  out_dir = tmp_path / "stripped"
  os.makedirs(str(out_dir))
  (out_dir / "stale.txt").write_text("old")
  pruning.strip_masks(str(whole), str(out_dir), scope="cnn_student")
  assert "stale.txt" not in os.listdir(str(out_dir))
  with pytest.raises(errors.CheckpointError, match="empty_dir_missing not "
                     "found"):
    pruning.strip_masks(str(tmp_path / "empty_dir_missing"), str(out_dir))


def test_init_from_checkpoint_only_on_a_fresh_start(trained, tmp_path):
  whole, _, _ = trained
  source = _tensors(whole)

  def fine_tune(run, max_steps):
    model_fn = pruning.init_from_checkpoint(_model_fn(), str(whole),
                                            "cnn_student")
    loop.train(model_fn, SPLITS, _config(run, learning_rate=0.05,
                                         max_steps=max_steps),
               _spec(), stream=io.StringIO())
    return _tensors(run)

  kernel = "cnn_student/conv2/kernel"
  first = fine_tune(tmp_path / "resumed", 1)
  # The run starts from the source's stored (unmasked) values.
  assert 0 < np.abs(first[kernel] - source[kernel]).max() < 0.05
  assert "cnn_student/conv2/kernel_mask" not in first
  resumed = fine_tune(tmp_path / "resumed", 2)
  uninterrupted = fine_tune(tmp_path / "uninterrupted", 2)
  # Resumed from its own step-1 weights, not re-initialised from the source.
  assert resumed["global_step"] == 2
  for name, value in uninterrupted.items():
    np.testing.assert_allclose(resumed[name], value, rtol=1e-6, atol=1e-7,
                               err_msg=name)
