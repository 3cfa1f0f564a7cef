"""Tests for distill_v1.teachers.graph_teacher.

The model files come from safe_loader_test.build_artifacts: one tiny
cnn_student checkpoint exported every way a legacy teacher arrives.
"""

import collections
import os

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.teachers import graph_teacher
from tests import safe_loader_test as models

SIZE = models.SIZE


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
  return models.build_artifacts(
      str(tmp_path_factory.getbasetemp() / "models"))


def _teacher_logits(images, **kwargs):
  with tf.Graph().as_default():
    inputs = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 1])
    teacher = graph_teacher.build_graph_teacher(inputs, **kwargs)
    with tf.compat.v1.Session() as sess:
      teacher.init_fn(sess)
      return teacher, sess.run(teacher.logits, {inputs: images})


@pytest.mark.parametrize("key,kind", [
    ("frozen_pb", "frozen"), ("tf1_saved_model", "saved_model"),
    ("tf2_saved_model", "saved_model"), ("meta_prefix", "meta_checkpoint")])
def test_same_logits_as_the_checkpoint_teacher(artifacts, key, kind):
  images = models.test_images()
  teacher, logits = _teacher_logits(images, path=artifacts[key])
  np.testing.assert_allclose(
      logits, models.reference_logits(artifacts["meta_prefix"], images),
      rtol=1e-5, atol=1e-5)
  assert teacher.model == kind
  assert teacher.checkpoint == artifacts[key]
  assert teacher.variables == []
  assert list(teacher.end_points) == ["input", "logits"]
  assert teacher.logits.shape.as_list() == [None, models.NUM_CLASSES]
  assert teacher.logits.op.type == "StopGradient"


@pytest.mark.parametrize("key,scale,layout", [
    ("frozen_pb", 1.0, "nhwc"), ("tf2_saved_model", 1.0, "nhwc"),
    ("flat_pb", 255.0, "flat")])
def test_forward_in_an_input_pipeline(artifacts, key, scale, layout):
  """`forward` inside a tf.data map gives the checkpoint teacher's logits."""
  images = models.test_images()
  with tf.Graph().as_default():
    inputs = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 1])
    teacher = graph_teacher.build_graph_teacher(
        inputs, path=artifacts[key], input_scale=scale, input_layout=layout)
    dataset = tf.data.Dataset.from_tensors(images.astype(np.float32)).map(
        teacher.forward)
    piped = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    with tf.compat.v1.Session() as sess:
      teacher.init_fn(sess)
      logits = sess.run(piped)
  np.testing.assert_allclose(
      logits, models.reference_logits(artifacts["meta_prefix"], images),
      rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("key,scale,layout", [
    ("flat_pb", 255.0, "flat"), ("nchw_pb", 1.0, "nchw")])
def test_input_scale_and_layout(artifacts, key, scale, layout):
  images = models.test_images()
  _, logits = _teacher_logits(images, path=artifacts[key], input_scale=scale,
                              input_layout=layout)
  np.testing.assert_allclose(
      logits, models.reference_logits(artifacts["meta_prefix"], images),
      rtol=1e-5, atol=1e-5)


def test_adapt_images_against_numpy():
  images = models.test_images(batch=2)
  with tf.Graph().as_default():
    inputs = tf.constant(images)
    flat = graph_teacher.adapt_images(inputs, 255.0, "flat")
    nchw = graph_teacher.adapt_images(inputs, 1.0, "nchw")
    as_uint8 = graph_teacher.adapt_images(inputs, 255, "nhwc", tf.uint8)
    with tf.compat.v1.Session() as sess:
      flat, nchw, as_uint8 = sess.run([flat, nchw, as_uint8])
  np.testing.assert_allclose(flat, images.reshape(2, -1) * 255.0, rtol=1e-6)
  np.testing.assert_array_equal(nchw, images.transpose(0, 3, 1, 2))
  np.testing.assert_array_equal(as_uint8,
                                np.round(images * 255.0).astype(np.uint8))


def test_layout_that_does_not_fit_names_both_shapes(artifacts):
  with pytest.raises(errors.ConfigError,
                     match=r"input flat_pixels:0 has shape \[None, 64\], but "
                     r"the images adapted with input_layout='nhwc' and "
                     r"input_scale=1 have shape \[None, 8, 8, 1\]"):
    _teacher_logits(models.test_images(), path=artifacts["flat_pb"])


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(input_layout="hwc"), r"input_layout='hwc' is not one of nhwc, "
     r"nchw, flat"),
    (dict(input_scale=0.0), r"input_scale=0.0 is not a positive finite"),
    (dict(input_scale=float("nan")), r"input_scale=nan is not")])
def test_bad_adaptation_arguments(artifacts, kwargs, pattern):
  with pytest.raises(errors.ConfigError, match=pattern):
    _teacher_logits(models.test_images(), path=artifacts["frozen_pb"],
                    **kwargs)


def test_no_gradient_reaches_the_images_through_the_teacher(artifacts):
  with tf.Graph().as_default():
    inputs = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 1])
    teacher = graph_teacher.build_graph_teacher(inputs,
                                                artifacts["frozen_pb"])
    assert tf.gradients(tf.reduce_sum(teacher.logits), inputs) == [None]
    assert not tf.compat.v1.trainable_variables()
    assert not tf.compat.v1.global_variables()


def test_scope_names_the_imported_graph(artifacts):
  with tf.Graph().as_default() as graph:
    inputs = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 1])
    first = graph_teacher.build_graph_teacher(inputs, artifacts["frozen_pb"],
                                              scope="teacher_0")
    second = graph_teacher.build_graph_teacher(inputs,
                                               artifacts["tf2_saved_model"],
                                               scope="teacher_1")
    names = collections.Counter(op.name.split("/")[0]
                                for op in graph.get_operations())
  assert first.logits.name == "teacher_0/logits:0"
  assert second.logits.name == "teacher_1/logits:0"
  assert set(names) == {"Placeholder", "teacher_0", "teacher_1"}


def test_unsafe_graph_is_refused_and_never_run(artifacts):
  with pytest.raises(errors.UnsafeGraphError, match=r"op WriteFile .*"
                     r"--allow_unsafe_teacher_ops"):
    _teacher_logits(models.test_images(), path=artifacts["hostile_pb"])
  assert not os.path.exists(artifacts["target_pb"])


def test_output_name_is_passed_through(artifacts):
  _, probabilities = _teacher_logits(
      models.test_images(), path=artifacts["tf1_saved_model"],
      output_name="probabilities")
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
