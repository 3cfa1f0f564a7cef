"""Tests of distill_v1.export.frozen_graph: freezing and batch norm folding."""

import os

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.export import frozen_graph
from distill_v1.models import layers
from distill_v1.models import nets_factory

v1 = tf.compat.v1


def save_checkpoint(tmp_path, network_fn, image_shape, num_classes, seed=0,
                    name="ckpt"):
  """Saves a checkpoint of `network_fn` with non-trivial batch-norm stats.

  Moving means, betas and biases are drawn from N(0, 0.3^2), moving
  variances and gammas from U(0.5, 2), so folding them is visible.

  Returns:
    The checkpoint prefix.
  """
  rng = np.random.RandomState(seed)
  folder = os.path.join(str(tmp_path), name)
  os.makedirs(folder, exist_ok=True)
  with tf.Graph().as_default():
    v1.set_random_seed(seed)
    images = v1.placeholder(tf.float32, [None] + list(image_shape))
    network_fn(images, num_classes, is_training=False)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      for variable in v1.global_variables():
        shape = variable.shape.as_list()
        if variable.op.name.endswith(("moving_mean", "beta", "bias")):
          variable.load(rng.normal(0, 0.3, size=shape).astype(np.float32),
                        sess)
        elif variable.op.name.endswith(("moving_variance", "gamma")):
          variable.load(rng.uniform(0.5, 2.0, size=shape).astype(np.float32),
                        sess)
      return v1.train.Saver().save(sess, os.path.join(folder, "model.ckpt"))


CLASS_NAMES = ("top", "middle", "bottom")


def synthetic_data(num_examples, seed, size=8):
  """Images [N, size, size] uint8 whose bright band (top, middle, bottom)
  is the class, plus noise; labels int64 [N]."""
  rng = np.random.RandomState(seed)
  labels = rng.randint(0, 3, size=num_examples).astype(np.int64)
  images = rng.uniform(0, 90, size=(num_examples, size, size))
  band = size // 3
  for i, label in enumerate(labels):
    images[i, label * band:(label + 1) * band] += 150
  return images.astype(np.uint8), labels


def train_synthetic(folder, model="cnn_student", model_options=None,
                    steps=150, learning_rate=0.3, size=8, seed=0):
  """Trains `model` on the synthetic bands task and writes a training dir.

  The folder gets `data.npz` (x_train, y_train, x_test, y_test,
  class_names), `model.ckpt-<steps>` and `model_spec.json`, as
  distill-v1-train would write them (batch norm statistics included), so
  exports have confident, input-dependent logits to compare.

  Returns:
    The training folder.
  """
  # pylint: disable=g-import-not-at-top
  from distill_v1 import checkpoints
  # pylint: enable=g-import-not-at-top
  folder = str(folder)
  os.makedirs(folder, exist_ok=True)
  x_train, y_train = synthetic_data(240, seed, size)
  x_test, y_test = synthetic_data(90, seed + 1, size)
  npz_path = os.path.join(folder, "data.npz")
  np.savez(npz_path, x_train=x_train, y_train=y_train, x_test=x_test,
           y_test=y_test, class_names=np.array(CLASS_NAMES))
  network_fn = nets_factory.get_network_fn(model, **(model_options or {}))
  with tf.Graph().as_default():
    v1.set_random_seed(seed)
    images = v1.placeholder(tf.float32, [None, size, size, 1])
    labels = v1.placeholder(tf.int64, [None])
    logits, _ = network_fn(images, 3, is_training=True)
    loss = v1.losses.sparse_softmax_cross_entropy(labels, logits)
    global_step = v1.train.get_or_create_global_step()
    with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
      train_op = v1.train.GradientDescentOptimizer(learning_rate).minimize(
          loss, global_step=global_step)
    x = x_train[..., np.newaxis].astype(np.float32) / 255.0
    rng = np.random.RandomState(seed)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      for _ in range(steps):
        index = rng.choice(len(x), 32, replace=False)
        sess.run(train_op, {images: x[index], labels: y_train[index]})
      v1.train.Saver().save(sess, os.path.join(folder, "model.ckpt"),
                            global_step=steps)
  checkpoints.write_model_spec(folder, {
      "model": model, "model_options": dict(model_options or {}),
      "num_classes": 3, "image_shape": [size, size, 1],
      "class_names": list(CLASS_NAMES), "dataset": "npz:" + npz_path})
  return folder


def dense_bn_net(images, num_classes, is_training=False, scope=None):
  """flatten -> dense(6, bias) -> BN -> relu -> dense(no bias) -> BN.

  Rank-2 batch norm takes the unfused path (Mul and Add ops).
  """
  with v1.variable_scope(scope or "dense_bn"):
    net = layers.flatten(images)
    net = layers.dense(net, 6, scope="fc1")
    net = layers.batch_norm(net, is_training, scope="bn1")
    net = tf.nn.relu(net)
    net = layers.dense(net, num_classes, use_bias=False, scope="fc2")
    net = layers.batch_norm(net, is_training, scope="bn2")
  return net, {"fc2": net}


def conv_bias_bn_net(images, num_classes, is_training=False, scope=None):
  """conv with bias -> fused BN -> relu6 -> depthwise (bias) -> BN -> dense."""
  with v1.variable_scope(scope or "conv_bn"):
    net = layers.conv2d(images, 4, 3, scope="conv")
    net = tf.nn.relu6(layers.batch_norm(net, is_training, scope="bn1"))
    net = layers.depthwise_conv2d(net, 3, depth_multiplier=2, scope="dw")
    net = tf.nn.relu(layers.batch_norm(net, is_training, scope="bn2"))
    net = layers.dense(layers.flatten(net), num_classes, scope="logits")
  return net, {}


def session_and_frozen(prefix, network_fn, image_shape, num_classes, data,
                       **kwargs):
  """(session logits, frozen logits, FrozenModel) on `data`."""
  with frozen_graph.restored_inference_graph(
      prefix, network_fn, image_shape, num_classes, **kwargs) as (sess, inf):
    expected = sess.run(inf.logits, {inf.images: data})
    frozen = frozen_graph.freeze_session(sess, inf)
  with frozen_graph.frozen_session(frozen) as (sess, tensors):
    got = sess.run(tensors["logits"], {tensors["images"]: data})
  return expected, got, frozen


def _ops(graph_def):
  return sorted(set(n.op for n in graph_def.node))


@pytest.mark.parametrize("network_fn, image_shape, expected_folds", [
    (nets_factory.get_network_fn("mobilenet_v1", width_multiplier=0.25),
     (8, 8, 1), 27),
    (dense_bn_net, (4, 4, 1), 4),
    (conv_bias_bn_net, (6, 6, 2), 2),
])
def test_batch_norm_folding_keeps_outputs(tmp_path, network_fn, image_shape,
                                          expected_folds):
  prefix = save_checkpoint(tmp_path, network_fn, image_shape, 3)
  data = np.random.RandomState(1).uniform(
      size=[16] + list(image_shape)).astype(np.float32)
  expected, got, frozen = session_and_frozen(prefix, network_fn, image_shape,
                                             3, data)
  assert frozen.folded == expected_folds
  ops = _ops(frozen.graph_def)
  for op in ("FusedBatchNormV3", "Mul", "AddV2", "Rsqrt", "Sub"):
    assert op not in ops
  scale = max(1.0, np.abs(expected).max())
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)
  # The batch norm really moved the outputs: folding is not a no-op.
  assert np.abs(expected).max() > 0.1


def test_fold_batch_norms_on_a_hand_built_graph():
  """conv -> FusedBatchNormV3 with known numbers, against numpy."""
  rng = np.random.RandomState(0)
  kernel = rng.normal(size=[1, 1, 2, 3]).astype(np.float32)
  gamma, beta = np.float32([1.0, 2.0, 0.5]), np.float32([0.1, -0.2, 0.3])
  mean, variance = np.float32([0.5, -1.0, 2.0]), np.float32([4.0, 1.0, 0.25])
  x = rng.normal(size=[2, 3, 3, 2]).astype(np.float32)
  with tf.Graph().as_default() as graph:
    images = v1.placeholder(tf.float32, [None, 3, 3, 2], name="images")
    conv = tf.nn.conv2d(images, tf.constant(kernel), 1, "SAME")
    out, _, _ = v1.nn.fused_batch_norm(conv, gamma, beta, mean=mean,
                                       variance=variance, epsilon=1e-3,
                                       is_training=False)
    tf.identity(out, name="out")
  folded, count = frozen_graph.fold_batch_norms(graph.as_graph_def(),
                                                ["out"])
  assert count == 1
  assert "FusedBatchNormV3" not in _ops(folded)
  with tf.Graph().as_default() as g2:
    v1.import_graph_def(folded, name="")
    with v1.Session() as sess:
      got = sess.run("out:0", {"images:0": x})
  conv_np = np.einsum("nhwc,cd->nhwd", x, kernel[0, 0])
  want = (conv_np - mean) / np.sqrt(variance + 1e-3) * gamma + beta
  np.testing.assert_allclose(got, want, atol=1e-5)
  del g2


def test_kernel_shared_by_two_readers_is_not_folded():
  with tf.Graph().as_default() as graph:
    images = v1.placeholder(tf.float32, [None, 2], name="images")
    kernel = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    product = tf.matmul(images, kernel)
    scaled = product * tf.constant([2.0, 3.0])
    tf.identity(scaled + product, name="out")  # product read twice
  folded, count = frozen_graph.fold_batch_norms(graph.as_graph_def(),
                                                ["out"])
  assert count == 0
  assert "Mul" in _ops(folded)


def test_scales_that_are_not_per_channel_are_not_folded():
  with tf.Graph().as_default() as graph:
    images = v1.placeholder(tf.float32, [None, 2], name="images")
    product = tf.matmul(images, tf.constant([[1.0, 2.0], [3.0, 4.0]]))
    # Broadcasting to rank 3 changes the shape; [2, 2] is not per channel.
    tf.identity(product * tf.constant([[[2.0]]]), name="rank3")
    product2 = tf.matmul(images, tf.constant([[1.0, 2.0], [3.0, 4.0]]))
    tf.identity(product2 + tf.constant([[1.0, 2.0], [3.0, 4.0]]),
                name="matrix")
  folded, count = frozen_graph.fold_batch_norms(graph.as_graph_def(),
                                                ["rank3", "matrix"])
  assert count == 0
  assert sorted(n.op for n in folded.node if n.op in ("Mul", "AddV2")) == [
      "AddV2", "Mul"]
  del images


def test_frozen_graph_has_no_training_nodes_and_same_outputs(tmp_path):
  network_fn = nets_factory.get_network_fn("cnn_student")
  prefix = save_checkpoint(tmp_path, network_fn, (8, 8, 1), 4)
  data = np.random.RandomState(2).uniform(size=[5, 8, 8, 1]).astype(
      np.float32)
  expected, got, frozen = session_and_frozen(prefix, network_fn, (8, 8, 1),
                                             4, data)
  np.testing.assert_array_equal(got, expected)
  assert frozen_graph.training_leftovers(frozen.graph_def) == []
  names = [n.name for n in frozen.graph_def.node]
  assert not any("Initializer" in n or "save" in n.split("/")[0] or
                 "Assign" in n for n in names)
  ops = _ops(frozen.graph_def)
  for op in ("VarHandleOp", "ReadVariableOp", "VariableV2", "Assign",
             "AssignVariableOp", "NoOp", "RestoreV2"):
    assert op not in ops
  assert [n.name for n in frozen.graph_def.node if n.op == "Placeholder"] == [
      "images"]
  assert frozen.input_name == "images:0"
  assert list(frozen.output_names) == ["logits", "probabilities", "classes"]
  assert frozen.image_shape == (8, 8, 1) and frozen.num_classes == 4
  with frozen_graph.frozen_session(frozen) as (sess, tensors):
    probabilities, classes = sess.run(
        [tensors["probabilities"], tensors["classes"]],
        {tensors["images"]: data})
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(classes, np.argmax(expected, axis=1))
  assert classes.dtype == np.int64


def test_custom_getter_mask_folds_into_the_kernel(tmp_path):
  """A pruning-style getter (kernel * mask variable) leaves no mask node."""
  network_fn = nets_factory.get_network_fn("mlp_student")

  def masking_getter(getter, name, *args, **kwargs):
    variable = getter(name, *args, **kwargs)
    if not name.endswith("/kernel"):
      return variable
    mask = getter(name[:-len("kernel")] + "mask", shape=variable.shape,
                  initializer=v1.ones_initializer(), trainable=False)
    return variable * mask

  folder = os.path.join(str(tmp_path), "masked")
  os.makedirs(folder)
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, 4, 4, 1])
    with v1.variable_scope(v1.get_variable_scope(),
                           custom_getter=masking_getter):
      network_fn(images, 3)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      masks = [v for v in v1.global_variables() if v.op.name.endswith("mask")]
      assert len(masks) == 3
      for mask in masks:  # Zero every other weight.
        value = np.ones(mask.shape.as_list(), np.float32)
        value.flat[::2] = 0.0
        mask.load(value, sess)
      prefix = v1.train.Saver().save(sess, os.path.join(folder, "model.ckpt"))
  data = np.random.RandomState(0).uniform(size=[3, 4, 4, 1]).astype(
      np.float32)
  expected, got, frozen = session_and_frozen(
      prefix, network_fn, (4, 4, 1), 3, data, custom_getter=masking_getter)
  np.testing.assert_allclose(got, expected, atol=1e-5)
  assert not [n.name for n in frozen.graph_def.node if "mask" in n.name]
  nodes = {n.name: n for n in frozen.graph_def.node}
  kernels = [tf.make_ndarray(nodes[n.input[1]].attr["value"].tensor)
             for n in frozen.graph_def.node if n.op == "MatMul"]
  assert len(kernels) == 3
  assert all(np.all(k.flat[::2] == 0) and np.all(k.flat[1::2] != 0)
             for k in kernels)


def test_graph_hook_changes_the_logits(tmp_path):
  network_fn = nets_factory.get_network_fn("mlp_student")
  prefix = save_checkpoint(tmp_path, network_fn, (4, 4, 1), 3)
  data = np.random.RandomState(0).uniform(size=[2, 4, 4, 1]).astype(
      np.float32)
  plain, _, _ = session_and_frozen(prefix, network_fn, (4, 4, 1), 3, data)
  hooked, frozen_hooked, _ = session_and_frozen(
      prefix, network_fn, (4, 4, 1), 3, data,
      graph_hook=lambda logits, end_points: logits * 2.0)
  np.testing.assert_allclose(hooked, 2.0 * plain, rtol=1e-6)
  np.testing.assert_allclose(frozen_hooked, hooked, rtol=1e-5, atol=1e-6)


def test_training_leftovers_names_each_kind():
  with tf.Graph().as_default() as graph:
    images = v1.placeholder(tf.float32, [None, 2], name="images")
    v1.placeholder(tf.bool, [], name="is_training")
    weights = v1.get_variable("w", [2, 2])
    mask = v1.get_variable("layer/mask", [2, 2], trainable=False)
    v1.assign(weights, tf.ones([2, 2]), name="assign_w")
    tf.identity(tf.matmul(images, weights * mask), name="logits")
  problems = frozen_graph.training_leftovers(graph.as_graph_def())
  by_node = {name: reason for name, _, reason in problems}
  assert "variable" in by_node["w"]
  assert "assign" in by_node["assign_w"]
  assert "mask" in by_node["layer/mask"]
  assert "placeholder" in by_node["is_training"]
  assert any("initializer" in r for r in by_node.values())
  with pytest.raises(errors.ExportError, match=r"training-only nodes: .*w "
                     r"\(VarHandleOp\)"):
    frozen_graph.check_frozen(graph.as_graph_def(), output_names=["logits"])


def test_missing_variable_names_it(tmp_path):
  network_fn = nets_factory.get_network_fn("cnn_student")
  prefix = save_checkpoint(tmp_path, network_fn, (8, 8, 1), 4)
  with pytest.raises(errors.CheckpointError,
                     match=r"cnn_student/logits/kernel has shape \[128, 4\] "
                     r"in the checkpoint but \[128, 5\]"):
    with frozen_graph.restored_inference_graph(prefix, network_fn, (8, 8, 1),
                                               5):
      pass


def test_write_frozen_graph_refuses_existing_and_overwrites(tmp_path):
  with tf.Graph().as_default() as graph:
    tf.constant(1.0, name="c")
  path = str(tmp_path / "frozen_graph.pb")
  size = frozen_graph.write_frozen_graph(graph.as_graph_def(), path)
  assert os.path.getsize(path) == size
  with pytest.raises(errors.ExportError,
                     match="export target .*frozen_graph.pb already exists"):
    frozen_graph.write_frozen_graph(graph.as_graph_def(), path)
  frozen_graph.write_frozen_graph(graph.as_graph_def(), path, overwrite=True)
  assert sorted(os.listdir(str(tmp_path))) == ["frozen_graph.pb"]


def test_bad_logits_shape_is_a_config_error():
  def bad_net(images, num_classes, is_training=False, scope=None):
    del num_classes, is_training, scope
    return tf.reshape(images, [-1]), {}

  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError, match=r"expected float \[batch, "
                       r"3\]"):
      frozen_graph.build_inference_graph(bad_net, (2, 2, 1), 3)
