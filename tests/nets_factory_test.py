"""Tests for distill_v1.models.nets_factory."""

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import nets_factory


def test_network_names():
  assert nets_factory.network_names() == [
      "mlp_teacher", "mlp_student", "cnn_teacher", "cnn_student",
      "mobilenet_v1"]


def test_unknown_name_lists_known_names():
  with pytest.raises(errors.ConfigError,
                     match=r"Unknown model 'resnet'.*known models: "
                     r"mlp_teacher, mlp_student, cnn_teacher, cnn_student, "
                     r"mobilenet_v1"):
    nets_factory.get_network_fn("resnet")


def test_unknown_option_is_refused():
  with pytest.raises(errors.ConfigError,
                     match=r"'cnn_student' has no option\(s\) width_multiplier"
                     r".*options are: layer_widths"):
    nets_factory.get_network_fn("cnn_student", width_multiplier=0.5)
  with pytest.raises(errors.ConfigError,
                     match=r"no option\(s\) depth_multiplier; its options "
                     r"are: width_multiplier, dropout_rate, min_depth"):
    nets_factory.get_network_fn("mobilenet_v1", depth_multiplier=0.5)


def test_network_options():
  assert dict(nets_factory.network_options("mlp_teacher")) == {
      "dropout_rate": 0.5, "layer_widths": None}
  assert dict(nets_factory.network_options("mlp_student")) == {
      "layer_widths": None}
  assert nets_factory.network_options("mobilenet_v1")["width_multiplier"] == 1.0


@pytest.mark.parametrize("name", ["mlp_teacher", "mlp_student", "cnn_teacher",
                                  "cnn_student", "mobilenet_v1"])
def test_every_network_builds_under_its_name(name):
  x = np.random.RandomState(0).uniform(size=[2, 28, 28, 1]).astype(np.float32)
  network_fn = nets_factory.get_network_fn(name)
  with tf.Graph().as_default():
    logits, end_points = network_fn(tf.constant(x), 10, is_training=True)
    names = [v.name for v in tf.compat.v1.global_variables()]
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      got = sess.run(logits)
  assert all(n.startswith(name + "/") for n in names)
  assert got.shape == (2, 10)
  assert end_points["logits"] is logits


def test_options_and_scope_are_forwarded():
  network_fn = nets_factory.get_network_fn("mobilenet_v1",
                                           width_multiplier=0.5)
  with tf.Graph().as_default():
    _, end_points = network_fn(tf.zeros([1, 28, 28, 1]), 4, scope="small")
    names = [v.name for v in tf.compat.v1.global_variables()]
  assert end_points["conv2d_13_pointwise"].shape[-1] == 512
  assert names[0] == "small/conv2d_0/kernel:0"


def test_same_seed_same_initial_logits_across_graphs():
  x = np.random.RandomState(0).uniform(size=[2, 28, 28, 1]).astype(np.float32)

  def initial_logits(seed):
    with tf.Graph().as_default():
      tf.compat.v1.set_random_seed(seed)
      logits, _ = nets_factory.get_network_fn("cnn_student")(tf.constant(x),
                                                             10)
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        return sess.run(logits)

  np.testing.assert_array_equal(initial_logits(1), initial_logits(1))
  assert not np.allclose(initial_logits(1), initial_logits(2))
