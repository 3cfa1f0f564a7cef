"""Tests of distill_v1.evaluation.model_stats against hand counts."""

import glob
import os

import numpy as np
import pytest

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.evaluation import model_stats

v1 = tf.compat.v1


def _dense(inputs, units, use_bias=True, scope="dense"):
  with v1.variable_scope(scope):
    kernel = v1.get_variable(
        "kernel", [inputs.shape[-1], units],
        initializer=v1.glorot_uniform_initializer())
    outputs = tf.matmul(inputs, kernel)
    if use_bias:
      bias = v1.get_variable("bias", [units],
                             initializer=v1.zeros_initializer())
      outputs = tf.nn.bias_add(outputs, bias)
  return outputs


def dense_net(images, num_classes, is_training=False, scope=None,
              use_bias=True):
  """Flatten -> dense(num_classes): 2 * D * K FLOPs (+ K for the bias)."""
  del is_training
  with v1.variable_scope(scope or "dense_net"):
    flat = tf.reshape(images, [-1, int(np.prod(images.shape[1:]))])
    logits = _dense(flat, num_classes, use_bias=use_bias)
    # An end point off the logits path must not be counted.
    probabilities = tf.nn.softmax(logits)
  return logits, {"probabilities": probabilities}


def conv_net(images, num_classes, is_training=False, scope=None, filters=4):
  """conv 3x3 SAME + bias + ReLU -> max-pool 2 -> flatten -> dense."""
  del is_training
  with v1.variable_scope(scope or "conv_net"):
    with v1.variable_scope("conv"):
      kernel = v1.get_variable(
          "kernel", [3, 3, images.shape[-1], filters],
          initializer=v1.glorot_uniform_initializer())
      bias = v1.get_variable("bias", [filters],
                             initializer=v1.zeros_initializer())
      net = tf.nn.relu(tf.nn.bias_add(
          tf.nn.conv2d(images, kernel, [1, 1, 1, 1], "SAME"), bias))
    net = tf.nn.max_pool2d(net, 2, 2, "VALID")
    net = tf.reshape(net, [-1, int(np.prod(net.shape[1:]))])
    logits = _dense(net, num_classes)
  return logits, {}


def test_dense_flops_match_hand_count():
  flops = model_stats.flops_per_example(dense_net, (28, 28, 1), 10)
  # MatMul: one multiply and one add per weight; BiasAdd: one add per logit.
  # The initializer (about as many random-uniform ops as weights) and the
  # softmax end point would add more if they were counted.
  assert flops == 2 * 784 * 10 + 10


def test_dense_flops_without_bias():
  def net(images, num_classes, is_training=False):
    return dense_net(images, num_classes, is_training, use_bias=False)

  assert model_stats.flops_per_example(net, (28, 28, 1), 10) == 2 * 784 * 10


@pytest.mark.parametrize("height,width,channels", [(8, 8, 1), (16, 12, 2)])
def test_conv_flops_match_hand_count(height, width, channels):
  flops = model_stats.flops_per_example(conv_net, (height, width, channels), 3)
  outputs = height * width * 4
  conv = 2 * outputs * (3 * 3 * channels)  # 2 x multiply-adds per output
  bias = outputs  # one add per conv output; ReLU counts 0
  pooled = outputs // 4
  pool = (2 * 2) * pooled  # window area x outputs
  dense = 2 * pooled * 3 + 3
  assert flops == conv + bias + pool + dense


def test_flops_rejects_bad_image_shape():
  with pytest.raises(errors.ConfigError, match=r"image_shape .*\(height"):
    model_stats.flops_per_example(dense_net, (28, 28), 10)


def test_count_params_and_trainable_params():
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, 8, 8, 1])
    conv_net(images, 3, scope="net")
    conv_net(images, 3, scope="net_1")  # must not be counted under "net"
    with v1.variable_scope("net"):
      v1.get_variable("moving_mean", [7], trainable=False)
    expected = (3 * 3 * 1 * 4 + 4) + (64 * 3 + 3)
    assert model_stats.trainable_params("net") == expected
    assert model_stats.count_params(
        model_stats.scope_variables("net")) == expected + 7
    assert model_stats.trainable_params() == 2 * expected
    assert [v.op.name for v in model_stats.scope_variables("net")] == [
        "net/conv/kernel", "net/conv/bias", "net/dense/kernel",
        "net/dense/bias", "net/moving_mean"
    ]


def _save_conv_net(prefix, filters=4, scope="net"):
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, 8, 8, 1])
    conv_net(images, 3, scope=scope, filters=filters)
    step = v1.train.get_or_create_global_step()
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      sess.run(step.assign(7))
      path = v1.train.Saver().save(sess, prefix)
      values = {v.op.name: sess.run(v) for v in v1.global_variables()}
  return path, values


def test_checkpoint_bytes_is_index_plus_data(tmp_path):
  prefix, _ = _save_conv_net(str(tmp_path / "model.ckpt"))
  data_files = glob.glob(prefix + ".data-*")
  assert data_files
  assert os.path.exists(prefix + ".meta")  # present but not counted
  expected = os.path.getsize(prefix + ".index") + sum(
      os.path.getsize(p) for p in data_files)
  assert model_stats.checkpoint_bytes(prefix) == expected


def test_checkpoint_bytes_missing(tmp_path):
  with pytest.raises(errors.CheckpointError, match=r"nothing\.ckpt"):
    model_stats.checkpoint_bytes(str(tmp_path / "nothing.ckpt"))


def test_restore_variables_restores_values(tmp_path):
  prefix, values = _save_conv_net(str(tmp_path / "model.ckpt"))
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, 8, 8, 1])
    conv_net(images, 3, scope="net")
    variables = model_stats.scope_variables("net")
    with v1.Session() as sess:
      checkpoints.restore_variables(sess, prefix, variables, "net")
      for v in variables:
        np.testing.assert_array_equal(sess.run(v), values[v.op.name])


def test_restore_names_mismatched_shapes(tmp_path):
  prefix, _ = _save_conv_net(str(tmp_path / "model.ckpt"), filters=4)
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, 8, 8, 1])
    conv_net(images, 3, scope="net", filters=5)
    variables = model_stats.scope_variables("net")
    problems = checkpoints.mismatches(prefix, variables)
    assert problems == [
        "net/conv/kernel has shape [3, 3, 1, 4] in the checkpoint but "
        "[3, 3, 1, 5] in the model",
        "net/conv/bias has shape [4] in the checkpoint but [5] in the model",
        "net/dense/kernel has shape [64, 3] in the checkpoint but [80, 3] in "
        "the model",
    ]
    with v1.Session() as sess:
      with pytest.raises(errors.CheckpointError,
                         match=r"does not fit model net .*net/conv/kernel has "
                         r"shape \[3, 3, 1, 4\] in the checkpoint but "
                         r"\[3, 3, 1, 5\]"):
        checkpoints.restore_variables(sess, prefix, variables, "net")


def test_restore_names_missing_variables_and_stored_scopes(tmp_path):
  prefix, _ = _save_conv_net(str(tmp_path / "model.ckpt"), scope="teacher")
  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, 8, 8, 1])
    conv_net(images, 3, scope="student")
    with v1.Session() as sess:
      with pytest.raises(
          errors.CheckpointError,
          match=r"student/conv/kernel \[3, 3, 1, 4\] is missing from the "
          r"checkpoint.*holds variables under: global_step, teacher"):
        checkpoints.restore_variables(
            sess, prefix, model_stats.scope_variables("student"), "student")


def test_checkpoint_shapes_of_garbage_file(tmp_path):
  prefix = str(tmp_path / "bad.ckpt")
  with open(prefix + ".index", "wb") as f:
    f.write(b"not a checkpoint")
  with pytest.raises(errors.CheckpointError, match=r"cannot read checkpoint"):
    checkpoints.stored_shapes(prefix)
