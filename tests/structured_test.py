"""Tests of distill_v1.compression.structured (and the nets' layer_widths)."""

import os

import numpy as np
import pytest

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf
from distill_v1.compression import pruning
from distill_v1.compression import structured
from distill_v1.evaluation import model_stats
from distill_v1.models import nets_factory

v1 = tf.compat.v1
NUM_CLASSES = 5


def _write_source(folder, model, options, image_shape, zero=None, seed=0):
  """Saves a randomly initialised network (random BN statistics too).

  Args:
    zero: None or dict layer name -> channels whose filter, bias and batch
      norm outputs are set to zero (and, for MobileNet, the channel of the
      following depthwise layer), so that the channel carries nothing.

  Returns:
    The checkpoint prefix.
  """
  network_fn = nets_factory.get_network_fn(model, **options)
  rng = np.random.RandomState(seed)
  with tf.Graph().as_default():
    v1.set_random_seed(seed)
    v1.train.get_or_create_global_step()
    network_fn(v1.placeholder(tf.float32, [None] + list(image_shape)),
               NUM_CLASSES, is_training=True, scope=model)
    variables = {v.op.name: v for v in v1.global_variables()}
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      values = sess.run(variables)
  for name, value in sorted(values.items()):
    base = name.rsplit("/", 1)[-1]
    if base in ("bias", "beta", "moving_mean"):
      values[name] = rng.uniform(-0.5, 0.5, value.shape).astype(np.float32)
    elif base in ("gamma", "moving_variance"):
      values[name] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
  for layer, channels in (zero or {}).items():
    scopes = [layer]
    if layer.endswith("_pointwise") or layer == "conv2d_0":
      index = 0 if layer == "conv2d_0" else int(layer.split("_")[1])
      scopes.append("conv2d_%d_depthwise" % (index + 1))
    for name, value in values.items():
      owner = name[len(model) + 1:].split("/")[0]
      if owner not in scopes:
        continue
      base = name.rsplit("/", 1)[-1]
      if base in ("kernel", "bias", "gamma", "beta"):
        value[..., channels] = 0
      elif base == "depthwise_kernel":
        value[:, :, channels, :] = 0
  spec = {
      "model": model, "model_options": options, "num_classes": NUM_CLASSES,
      "image_shape": list(image_shape),
      "class_names": ["c%d" % i for i in range(NUM_CLASSES)],
      "dataset": "random"}
  return pruning.write_checkpoint(folder, values, 0, spec)


def _logits(model, options, prefix, images):
  network_fn = nets_factory.get_network_fn(model, **options)
  with tf.Graph().as_default():
    logits, _ = network_fn(tf.constant(images), NUM_CLASSES,
                           is_training=False, scope=model)
    with v1.Session() as sess:
      checkpoints.restore_variables(sess, prefix,
                                    model_stats.scope_variables(model), model)
      return sess.run(logits)


def _images(image_shape, n=6):
  return np.random.RandomState(7).uniform(
      size=[n] + list(image_shape)).astype(np.float32)


CASES = [
    # model, options, image shape, channels zeroed per prunable layer
    ("cnn_student", {}, (12, 12, 1),
     {"conv1": [0, 3, 4, 6, 9, 11, 13, 15],
      "conv2": list(range(0, 32, 2))}),
    ("cnn_teacher", {}, (8, 8, 1),
     {"conv1": list(range(16)), "conv2": list(range(1, 64, 2)),
      "fc1": list(range(512, 1024))}),
    ("mlp_student", {}, (6, 6, 1),
     {"fc1": list(range(400)), "fc2": list(range(0, 800, 2))}),
    ("mobilenet_v1", {"width_multiplier": 0.25}, (8, 8, 3), None),
]


# MobileNet's graph takes seconds to build; its dead-channel case below covers
# the same slicing, so the identity case runs with the slow tests.
@pytest.mark.parametrize("model,options,image_shape,zero", CASES[:3] + [
    pytest.param(*CASES[3], marks=pytest.mark.slow)])
def test_nothing_removed_keeps_the_outputs(tmp_path, model, options,
                                           image_shape, zero):
  del zero
  prefix = _write_source(str(tmp_path / "source"), model, options,
                         image_shape)
  plan = structured.plan_structured_pruning(prefix, model, options, 0.0)
  assert all(len(g.keep) == g.channels for g in plan.groups)
  result = structured.apply_structured_pruning(plan, str(tmp_path / "out"))
  images = _images(image_shape)
  np.testing.assert_allclose(
      _logits(model, result.model_options, result.checkpoint, images),
      _logits(model, options, prefix, images), rtol=1e-5, atol=1e-5)
  assert result.params_after == result.params_before


def _mobilenet_zero():
  """Half the channels of every MobileNet-0.25 producer (all but logits)."""
  zero = {"conv2d_0": list(range(0, 8, 2))}
  depths = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
  for i, depth in enumerate(depths, start=1):
    channels = max(int(depth * 0.25), 8)
    zero["conv2d_%d_pointwise" % i] = list(range(1, channels, 2))
  return zero


@pytest.mark.parametrize("model,options,image_shape,zero", CASES)
def test_removing_dead_channels_keeps_the_outputs_and_shrinks(
    tmp_path, model, options, image_shape, zero):
  zero = zero or _mobilenet_zero()
  prefix = _write_source(str(tmp_path / "source"), model, options,
                         image_shape, zero=zero)
  plan = structured.plan_structured_pruning(prefix, model, options, 0.5)
  assert [g.name for g in plan.groups] == list(zero)
  for group in plan.groups:
    dead = set(zero[group.name])
    assert len(dead) == group.channels // 2
    np.testing.assert_array_equal(
        group.keep, [c for c in range(group.channels) if c not in dead])
  out_dir = str(tmp_path / "out")
  result = structured.apply_structured_pruning(plan, out_dir)
  widths = result.model_options["layer_widths"]
  assert widths == {g.name: g.channels // 2 for g in plan.groups}
  for key, value in options.items():
    assert result.model_options[key] == value
  # The folder is a complete training-directory-like checkpoint.
  assert checkpoints.resolve_checkpoint(out_dir) == result.checkpoint
  spec = checkpoints.read_model_spec(out_dir)
  assert spec["model_options"] == result.model_options
  assert spec["class_names"] == ["c%d" % i for i in range(NUM_CLASSES)]
  assert spec["structured_pruning"]["fraction"] == 0.5
  images = _images(image_shape)
  np.testing.assert_allclose(
      _logits(model, result.model_options, result.checkpoint, images),
      _logits(model, options, prefix, images), rtol=1e-4, atol=1e-4)
  shapes = checkpoints.stored_shapes(result.checkpoint)
  before = checkpoints.stored_shapes(prefix)
  first = plan.groups[0]
  assert shapes[first.kernel][-1] == before[first.kernel][-1] // 2
  assert result.params_after < result.params_before / 2.0
  assert "global_step" in shapes


def test_l1_scores_and_kept_channels_match_numpy(tmp_path):
  prefix = _write_source(str(tmp_path / "source"), "cnn_student", {},
                         (8, 8, 1), seed=3)
  reader = tf.train.load_checkpoint(prefix)
  conv1 = reader.get_tensor("cnn_student/conv1/kernel")
  conv2 = reader.get_tensor("cnn_student/conv2/kernel")
  plan = structured.plan_structured_pruning(prefix, "cnn_student", {}, 0.25)
  group1, group2 = plan.groups
  scores1 = np.abs(conv1).sum(axis=(0, 1, 2))
  np.testing.assert_allclose(group1.scores, scores1, rtol=1e-6)
  np.testing.assert_array_equal(group1.keep,
                                np.sort(np.argsort(-scores1)[:12]))
  # conv2 is scored over the input channels conv1 keeps (greedy).
  scores2 = np.abs(conv2[:, :, group1.keep, :]).sum(axis=(0, 1, 2))
  np.testing.assert_allclose(group2.scores, scores2, rtol=1e-6)
  np.testing.assert_array_equal(group2.keep,
                                np.sort(np.argsort(-scores2)[:24]))
  # The logits' rows follow flatten: position * 32 + channel.
  (axis, rows), = plan.slices["cnn_student/logits/kernel"]
  assert axis == 0
  np.testing.assert_array_equal(
      rows, (np.arange(4)[:, None] * 32 + group2.keep[None, :]).reshape(-1))
  assert structured.kept_channels(16, 0.25) == 12
  assert structured.kept_channels(3, 0.9) == 1


def test_half_the_filters_of_cnn_student_cut_flops_at_least_1_8x(tmp_path):
  prefix = _write_source(str(tmp_path / "source"), "cnn_student", {},
                         (28, 28, 1))
  plan = structured.plan_structured_pruning(prefix, "cnn_student", {}, 0.5)
  result = structured.apply_structured_pruning(plan, str(tmp_path / "out"))
  flops = [model_stats.flops_per_example(
      nets_factory.get_network_fn("cnn_student", **o), (28, 28, 1),
      NUM_CLASSES) for o in ({}, result.model_options)]
  # Measured 3.5x: conv2's multiply-adds fall to a quarter.
  assert flops[0] / float(flops[1]) >= 1.8
  assert result.channels == {"conv1": (16, 8), "conv2": (32, 16)}
  assert (result.params_before, result.params_after) == (
      (9 * 16 + 16) + (9 * 16 * 32 + 32) + (7 * 7 * 32 * 5 + 5),
      (9 * 8 + 8) + (9 * 8 * 16 + 16) + (7 * 7 * 16 * 5 + 5))


def test_masked_checkpoints_are_pruned_with_their_masks(tmp_path):
  folder = str(tmp_path / "source")
  prefix = _write_source(folder, "cnn_student", {}, (8, 8, 1))
  reader = tf.train.load_checkpoint(prefix)
  tensors = {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(
      prefix)}
  mask = np.ones_like(tensors["cnn_student/conv1/kernel"])
  mask[..., :8] = 0  # A magnitude-pruning mask that kills 8 filters.
  tensors["cnn_student/conv1/kernel_mask"] = mask
  masked_prefix = pruning.write_checkpoint(
      str(tmp_path / "masked"), tensors, 0,
      fileio.read_json(os.path.join(folder, "model_spec.json")))
  plan = structured.plan_structured_pruning(masked_prefix, "cnn_student", {},
                                            0.5)
  np.testing.assert_array_equal(plan.groups[0].keep, np.arange(8, 16))
  result = structured.apply_structured_pruning(plan, str(tmp_path / "out"))
  shapes = checkpoints.stored_shapes(result.checkpoint)
  assert not [n for n in shapes if n.endswith("_mask")]


def test_bad_arguments(tmp_path):
  prefix = _write_source(str(tmp_path / "source"), "cnn_student", {},
                         (8, 8, 1))
  with pytest.raises(errors.ConfigError, match=r"fraction=1.0 must be in "
                     r"\[0, 1\)"):
    structured.plan_structured_pruning(prefix, "cnn_student", {}, 1.0)
  with pytest.raises(errors.CheckpointError,
                     match=r"has no variable mlp_student/fc1/kernel"):
    structured.plan_structured_pruning(prefix, "mlp_student", {}, 0.5)
  with pytest.raises(errors.CheckpointError,
                     match=r"holds cnn_student/conv1/kernel with shape "
                     r"\[3, 3, 1, 16\].*expects \[3, 3, 1, 4\]"):
    structured.plan_structured_pruning(
        prefix, "cnn_student", {"layer_widths": {"conv1": 4}}, 0.5)


@pytest.mark.parametrize("model,widths,message", [
    ("cnn_student", {"fc1": 3}, r"layer_widths names unknown layer\(s\) fc1; "
     r"the layers with a width are: conv1, conv2"),
    ("cnn_teacher", {"conv1": 0}, r"layer_widths\['conv1'\]=0 is not a "
     r"positive integer"),
    ("mlp_student", {"fc2": 2.5}, r"layer_widths\['fc2'\]=2.5"),
    ("mobilenet_v1", {"conv2d_1_depthwise": 8},
     r"unknown layer\(s\) conv2d_1_depthwise; the layers with a width are: "
     r"conv2d_0, conv2d_1_pointwise, conv2d_2_pointwise"),
    ("mlp_teacher", [800], r"layer_widths=\[800\] is not a dict"),
])
def test_layer_widths_are_validated(model, widths, message):
  network_fn = nets_factory.get_network_fn(model, layer_widths=widths)
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError, match=message):
      network_fn(tf.zeros([1, 8, 8, 1]), 3)


def test_layer_widths_set_the_channels():
  with tf.Graph().as_default():
    _, end_points = nets_factory.get_network_fn(
        "mobilenet_v1", width_multiplier=0.5,
        layer_widths={"conv2d_0": 5, "conv2d_13_pointwise": 7})(
            tf.zeros([1, 8, 8, 1]), 3)
    assert end_points["conv2d_0"].shape[-1] == 5
    assert end_points["conv2d_1_depthwise"].shape[-1] == 5
    assert end_points["conv2d_1_pointwise"].shape[-1] == 32  # 64 * 0.5
    assert end_points["conv2d_13_pointwise"].shape[-1] == 7
    _, end_points = nets_factory.get_network_fn(
        "mlp_teacher", layer_widths={"fc2": 9})(tf.zeros([1, 8, 8, 1]), 3)
    assert end_points["fc1"].shape[-1] == 1200
    assert end_points["fc2"].shape[-1] == 9
