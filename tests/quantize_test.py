"""Tests of distill_v1.compression.quantize: fake quantization in the graph,
its training, and the int8 TFLite model made from the trained ranges."""

import collections
import io
import os

import numpy as np
import pytest

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.compression import pruning
from distill_v1.compression import quantize
from distill_v1.evaluation import verify_runner
from distill_v1.export import export_lib
from distill_v1.export import frozen_graph
from distill_v1.export import tflite
from distill_v1.models import layers
from distill_v1.models import nets_factory
from distill_v1.training import loop
from tests import testing_utils

v1 = tf.compat.v1

MODEL = "cnn_student"
WIDTHS = {"conv1": 8, "conv2": 16}


def _network_fn():
  return nets_factory.get_network_fn(MODEL, layer_widths=WIDTHS)


def _spec(splits):
  return {"model": MODEL, "model_options": {"layer_widths": WIDTHS},
          "num_classes": splits.num_classes,
          "image_shape": list(splits.image_shape),
          "class_names": list(splits.class_names), "dataset": "tiny"}


def _range_names(graph=None):
  graph = graph or v1.get_default_graph()
  names = set()
  for v in graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES):
    name = v.op.name
    if name.endswith("_quant/min"):
      names.add(name[:-len("/min")])
  return names


# ----------------------------------------------------------------------------
# Weights.


def test_weights_lie_on_the_symmetric_8bit_grid_of_their_range():
  with tf.Graph().as_default():
    v1.set_random_seed(3)
    getter, state = quantize.make_weight_getter(
        quantize.QuantizeHParams(scope="net"))
    with v1.variable_scope("net", custom_getter=getter):
      x = v1.placeholder(tf.float32, [None, 5])
      y = layers.dense(x, 7, scope="fc")
    weight = state.weights["net/fc/kernel"]
    assert list(state.weights) == ["net/fc/kernel"]  # Not the bias.
    upstream = tf.constant(np.arange(35, dtype=np.float32).reshape(5, 7))
    grad = tf.gradients(tf.reduce_sum(weight.quantized * upstream),
                        weight.kernel)[0]
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      kernel, quantized, bound, g = sess.run(
          [weight.kernel, weight.quantized, weight.bound, grad])
      # The layer computes with the quantized kernel.
      x_value = np.ones([2, 5], np.float32)
      np.testing.assert_allclose(sess.run(y, {x: x_value}),
                                 x_value.dot(quantized), rtol=1e-6)
  assert bound == pytest.approx(np.abs(kernel).max())
  steps = quantized * 127.0 / bound
  np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
  assert np.abs(np.round(steps)).max() == 127  # The extreme is exact.
  # Rounding to the nearest grid point, and a straight-through gradient.
  assert np.abs(quantized - kernel).max() <= bound / 127.0 / 2 + 1e-6
  np.testing.assert_allclose(g, np.arange(35).reshape(5, 7))
  assert len(np.unique(quantized)) > 10


def test_masked_kernels_are_quantized_after_the_mask():
  hparams = pruning.gradual_pruning_hparams(0.5, 0, 10, scope="net")
  with tf.Graph().as_default():
    mask_getter, mask_state = pruning.make_mask_getter(hparams)
    quant_getter, state = quantize.make_weight_getter(
        quantize.QuantizeHParams(scope="net"))
    with v1.variable_scope("", custom_getter=mask_getter):
      with v1.variable_scope("net", custom_getter=quant_getter):
        layers.dense(v1.placeholder(tf.float32, [None, 4]), 6, scope="fc")
    mask = mask_state.kernels["net/fc/kernel"].mask
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      sess.run(mask.assign(np.tile([[1.0, 0.0]], [4, 3])))
      quantized = sess.run(state.weights["net/fc/kernel"].quantized)
  assert np.all(quantized[:, 1::2] == 0.0)
  assert np.all(quantized[:, ::2] != 0.0)


# ----------------------------------------------------------------------------
# Where the activations are quantized.


def test_output_transform_sees_inputs_and_activated_outputs():
  calls = []

  def record(tensor, name):
    calls.append((v1.get_variable_scope().name, name))
    return tf.identity(tensor)

  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, 8, 8, 3])
    with layers.output_transform(record):
      net = layers.conv2d(images, 4, 3, activation=tf.nn.relu, scope="c1")
      net = layers.conv2d(net, 4, 3, use_bias=False, scope="c2")
      net = layers.batch_norm(net, True, activation=tf.nn.relu6, scope="bn")
      net = layers.batch_norm(net, False, scope="bn_plain")
      net = layers.depthwise_conv2d(net, 3, scope="dw")
      net = layers.flatten(net)
      with layers.output_transform(None):
        layers.dense(net, 2, activation=tf.nn.relu, scope="off")
      layers.dense(net, 2, scope="fc")
    layers.dense(net, 2, activation=tf.nn.relu, scope="outside")
  assert calls == [("c1", "input"), ("c1", "output"), ("c2", "input"),
                   ("bn", "output"), ("dw", "input"), ("fc", "input")]


def test_layer_inputs_with_a_range_are_not_quantized_again():
  splits = testing_utils.tiny_splits(size=8)
  hparams = quantize.QuantizeHParams(scope=MODEL)
  model_fn = quantize.wrap_model_fn(
      loop.classifier_model_fn(_network_fn(), 4, MODEL), hparams)
  with tf.Graph().as_default() as graph:
    images = v1.placeholder(tf.float32, [None, 8, 8, 1])
    labels = v1.placeholder(tf.int64, [None])
    model_fn(images, labels, True)
    # conv2 reads conv1's quantized output through max pooling, the logits
    # layer conv2's through pooling and a reshape, conv1 the quantized
    # pixels: only activated outputs and the logits get ranges.
    assert _range_names() == {MODEL + "/conv1/output_quant",
                              MODEL + "/conv2/output_quant",
                              MODEL + "/logits_quant"}
    assert sorted(model_fn.quantize_state().weights) == [
        MODEL + "/conv1/kernel", MODEL + "/conv2/kernel",
        MODEL + "/logits/kernel"]
    # The pixels are quantized to [0, 1] in 255 steps.
    pixels = [op for op in graph.get_operations()
              if op.type == "FakeQuantWithMinMaxArgs"]
    assert len(pixels) == 1
    assert (pixels[0].get_attr("min"), pixels[0].get_attr("max")) == (0.0,
                                                                      1.0)


def test_inputs_after_unquantized_activations_get_a_range():
  """conv -> batch norm -> relu6 outside any layer -> conv (MobileNet)."""
  hparams = quantize.QuantizeHParams(scope="net")

  def model_fn(images, labels, is_training):
    with v1.variable_scope("net"):
      net = layers.conv2d(images, 4, 3, use_bias=False, scope="conv1")
      net = tf.nn.relu6(layers.batch_norm(net, is_training, scope="bn1"))
      net = tf.reduce_mean(net, axis=[1, 2])
      logits = layers.dense(net, 3, scope="logits")
    return loop.ModelOutputs(loss=tf.reduce_mean(logits), logits=logits,
                             scalars={}, var_list=v1.trainable_variables())

  with tf.Graph().as_default() as graph:
    images = v1.placeholder(tf.float32, [None, 6, 6, 1])
    quantize.wrap_model_fn(model_fn, hparams)(images, None, True)
    assert _range_names() == {"net/logits/input_quant", "net/logits_quant"}
    # No fake quant between the convolution and its batch norm.
    bn = [op for op in graph.get_operations()
          if op.type.startswith("FusedBatchNorm")][0]
    assert bn.inputs[0].op.type == "Conv2D"


def test_only_the_scope_is_quantized():
  hparams = quantize.QuantizeHParams(scope="student")

  def model_fn(images, labels, is_training):
    teacher, _ = _network_fn()(images, 4, scope="teacher")
    student, _ = _network_fn()(images, 4, scope="student")
    loss = tf.reduce_mean(tf.square(student - tf.stop_gradient(teacher)))
    return loop.ModelOutputs(
        loss=loss, logits=student, scalars={},
        var_list=v1.trainable_variables(scope="student/"))

  with tf.Graph().as_default():
    images = v1.placeholder(tf.float32, [None, 8, 8, 1])
    wrapped = quantize.wrap_model_fn(model_fn, hparams)
    wrapped(images, None, True)
    names = _range_names()
    assert names and all(n.startswith("student/") for n in names)
    assert all(n.startswith("student/") for n in wrapped.quantize_state()
               .weights)


def test_bad_hparams_and_an_empty_scope_are_refused():
  with pytest.raises(errors.ConfigError, match=r"ema_decay=1\.0 is not in "
                     r"\[0, 1\)"):
    quantize.wrap_model_fn(lambda *a: None,
                           quantize.QuantizeHParams(ema_decay=1.0))
  with pytest.raises(errors.ConfigError, match="scope=3 is not a string"):
    quantize.validate_hparams(quantize.QuantizeHParams(scope=3))
  model_fn = quantize.wrap_model_fn(
      loop.classifier_model_fn(_network_fn(), 4, MODEL),
      quantize.QuantizeHParams(scope="student"))
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError,
                       match=r"quantization scope 'student' matched no "
                       r"kernel; the graph's kernels are: "
                       r"cnn_student/conv1/kernel, "):
      model_fn(v1.placeholder(tf.float32, [None, 8, 8, 1]),
               v1.placeholder(tf.int64, [None]), True)


# ----------------------------------------------------------------------------
# Moving-average ranges.


def test_ranges_follow_the_moving_average_and_stay_fixed_at_inference():
  decay = 0.9
  hparams = quantize.QuantizeHParams(scope=MODEL, ema_decay=decay)
  model_fn = quantize.wrap_model_fn(
      loop.classifier_model_fn(_network_fn(), 4, MODEL), hparams)
  splits = testing_utils.tiny_splits(num_train=64, size=8)
  with tf.Graph().as_default():
    v1.set_random_seed(1)
    images = v1.placeholder(tf.float32, [None, 8, 8, 1])
    labels = v1.placeholder(tf.int64, [None])
    global_step = v1.train.get_or_create_global_step()
    outputs = model_fn(images, labels, True)
    train_op = v1.train.GradientDescentOptimizer(0.1).minimize(
        outputs.loss, global_step=global_step, var_list=outputs.var_list)
    with tf.control_dependencies([train_op]):
      step = tf.group(*[fn() for fn in outputs.after_step_fns])
    with v1.variable_scope(v1.get_variable_scope(), reuse=True):
      eval_logits = model_fn(images, labels, False).logits
    state = model_fn.quantize_state()
    ranges = list(state.ranges.values())
    assert len(ranges) == 3
    # What each fake quant sees, before it rounds.
    raw = [r.quantized.op.inputs[0] for r in ranges]
    variables = [(r.min, r.max) for r in ranges]
    assert "quant_range/conv1/output/max" in outputs.scalars
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      assert sess.run(variables) == [(0.0, 0.0)] * 3
      expected = None
      for start in (0, 16, 32):
        feed = {images: splits.train_images[start:start + 16],
                labels: splits.train_labels[start:start + 16]}
        values, _ = sess.run([raw, step], feed)
        batch = [(min(v.min(), 0.0), max(v.max(), 0.0)) for v in values]
        if expected is None:
          expected = batch  # The first step takes the batch range.
        else:
          expected = [(lo - (1 - decay) * (lo - b_lo),
                       hi - (1 - decay) * (hi - b_hi))
                      for (lo, hi), (b_lo, b_hi) in zip(expected, batch)]
        np.testing.assert_allclose(sess.run(variables), expected, rtol=1e-5,
                                   atol=1e-6)
      assert expected[0][1] > 0  # ReLU outputs: [0, max].
      assert expected[2][0] < 0 < expected[2][1]  # Logits.
      trained = sess.run(variables)
      for start in (0, 16):
        sess.run(eval_logits, {images: splits.test_images[start:start + 16]})
      assert sess.run(variables) == trained
      # Inference quantizes the logits to their range's 255 steps (on a
      # grid shifted so that 0 is one of them).
      logits = sess.run(eval_logits, {images: splits.test_images[:16]})
      low, high = trained[2]
      steps = logits * 255.0 / (high - low)
      np.testing.assert_allclose(steps, np.round(steps), atol=2e-2)
      assert len(np.unique(np.round(steps))) > 10


# ----------------------------------------------------------------------------
# Fine-tuning, export and int8 conversion.


def _noisy_splits(sigma=0.6):
  """Learnable 12x12 images of 9 classes under Gaussian pixel noise, so the
  float model makes mistakes (about 89% test accuracy) that quantization
  could add to."""
  splits = testing_utils.tiny_splits(num_train=576, num_test=360, size=12,
                                     num_classes=9)
  rng = np.random.RandomState(0)

  def noisy(images):
    return np.clip(images + rng.normal(0.0, sigma, images.shape), 0.0,
                   1.0).astype(np.float32)

  return splits._replace(train_images=noisy(splits.train_images),
                         test_images=noisy(splits.test_images))


@pytest.fixture(scope="module")
def qat(tmp_path_factory):
  """A float cnn_student (narrow) on noisy learnable images, fine-tuned with
  fake quantization and exported as float32 and int8."""
  root = tmp_path_factory.mktemp("quantize")
  splits = _noisy_splits()
  float_dir, qat_dir = str(root / "float"), str(root / "qat")
  float_metrics = loop.train(
      loop.classifier_model_fn(_network_fn(), 9, MODEL), splits,
      loop.TrainConfig(float_dir, epochs=6, batch_size=32, learning_rate=0.1,
                       log_every_steps=1000), _spec(splits),
      stream=io.StringIO())
  hparams = quantize.QuantizeHParams(scope=MODEL, ema_decay=0.9)
  model_fn = quantize.wrap_model_fn(
      loop.classifier_model_fn(_network_fn(), 9, MODEL), hparams)
  model_fn = pruning.init_from_checkpoint(model_fn, float_dir, MODEL)
  qat_metrics = loop.train(
      model_fn, splits,
      loop.TrainConfig(qat_dir, epochs=1, batch_size=32, learning_rate=0.02,
                       log_every_steps=1000), _spec(splits),
      stream=io.StringIO())
  hooks = quantize.inference_hooks(hparams)
  export_dir = str(root / "export")
  manifest = export_lib.export_checkpoint(
      qat_dir, export_dir, formats=["float32", "int8"],
      network_fn=hooks.wrap_network_fn(_network_fn()), scope=MODEL,
      custom_getter=hooks.custom_getter, graph_hook=hooks.graph_hook,
      configure_converter=hooks.configure_converter, splits=splits,
      num_calibration_examples=50)
  with frozen_graph.restored_inference_graph(
      v1.train.latest_checkpoint(qat_dir), hooks.wrap_network_fn(
          _network_fn()), (12, 12, 1), 9, scope=MODEL,
      custom_getter=hooks.custom_getter, graph_hook=hooks.graph_hook) as (
          sess, inference):
    session_logits = sess.run(inference.logits,
                              {inference.images: splits.test_images})
  reader = tf.train.load_checkpoint(qat_dir)
  return {"splits": splits, "float": float_metrics, "qat": qat_metrics,
          "qat_dir": qat_dir, "float_dir": float_dir, "hooks": hooks,
          "export_dir": export_dir, "manifest": manifest,
          "session_logits": session_logits, "reader": reader}


def _accuracy(logits, labels):
  return float(np.mean(np.argmax(logits, 1) == labels))


def test_qat_fine_tuning_keeps_the_float_accuracy(qat):
  splits = qat["splits"]
  float_accuracy = qat["float"]["test_accuracy"]
  assert 0.8 <= float_accuracy < 1.0  # Learned, with room to lose.
  assert qat["qat"]["test_accuracy"] >= float_accuracy - 0.02
  # The exported QAT session is the model the loop evaluated.
  assert _accuracy(qat["session_logits"], splits.test_labels) == (
      pytest.approx(qat["qat"]["test_accuracy"]))


def test_int8_tflite_has_int8_weights_and_trained_io_ranges(qat):
  path = os.path.join(qat["export_dir"], "model_int8.tflite")
  interpreter, _ = tflite.make_interpreter(model_path=path)
  interpreter.allocate_tensors()
  details = interpreter.get_tensor_details()
  # Kernels as TFLite stores them: [out, kh, kw, in] and [out, in].
  kernel_shapes = {(8, 3, 3, 1), (16, 3, 3, 8), (9, 3 * 3 * 16)}
  kernels = [d for d in details if tuple(d["shape"]) in kernel_shapes]
  assert len(kernels) == 3
  assert all(d["dtype"] == np.int8 for d in kernels), kernels
  assert all(len(d["quantization_parameters"]["scales"]) for d in kernels)
  # Nothing is computed in float.
  floats = [d["name"] for d in details if d["dtype"] == np.float32]
  assert not floats

  (image,) = interpreter.get_input_details()
  assert image["dtype"] == np.int8
  assert image["quantization"] == (pytest.approx(1 / 255.0), -128)
  outputs = {d["name"]: d for d in interpreter.get_output_details()}
  logits = outputs["logits"]
  assert logits["dtype"] == np.int8
  low = qat["reader"].get_tensor(MODEL + "/logits_quant/min")
  high = qat["reader"].get_tensor(MODEL + "/logits_quant/max")
  scale, zero_point = logits["quantization"]
  assert scale == pytest.approx((high - low) / 255.0, rel=1e-4)
  assert zero_point == int(np.round(-128 - low / scale))
  # The manifest records the same.
  io_details = qat["manifest"]["tflite"]["int8"]
  assert io_details["inputs"][0]["dtype"] == "int8"
  assert io_details["outputs"][0]["scale"] == pytest.approx(scale)


def test_int8_tflite_agrees_with_the_qat_session(qat):
  splits = qat["splits"]
  model = verify_runner.load_exported_model(
      os.path.join(qat["export_dir"], "model_int8.tflite"))
  logits = model.predict(splits.test_images)
  expected = qat["session_logits"]
  agreement = np.mean(np.argmax(logits, 1) == np.argmax(expected, 1))
  assert agreement >= 0.95
  delta = _accuracy(logits, splits.test_labels) - _accuracy(
      expected, splits.test_labels)
  assert abs(delta) <= 0.01
  # Within a few output steps: the same ranges, rounded the same way.
  scale = model.details()["outputs"][0]["scale"]
  assert np.abs(logits - expected).max() <= 4 * scale


def test_float_tflite_of_the_qat_graph_computes_what_the_session_does(qat):
  model = verify_runner.load_exported_model(
      os.path.join(qat["export_dir"], "model_float32.tflite"))
  logits = model.predict(qat["splits"].test_images[:100])
  expected = qat["session_logits"][:100]
  assert np.abs(logits - expected).max() <= 1e-4 * np.abs(expected).max()


def test_export_needs_the_trained_ranges(qat, tmp_path):
  hooks = quantize.inference_hooks(quantize.QuantizeHParams(scope=MODEL))
  with pytest.raises(errors.CheckpointError,
                     match=r"cnn_student/conv1/output_quant/max \[\] is "
                     r"missing from the checkpoint"):
    export_lib.export_checkpoint(
        qat["float_dir"], str(tmp_path / "out"), formats=["frozen_graph"],
        network_fn=hooks.wrap_network_fn(_network_fn()), scope=MODEL,
        custom_getter=hooks.custom_getter, graph_hook=hooks.graph_hook)
  assert not os.path.exists(str(tmp_path / "out"))


def test_lint_names_fake_quant_ops_without_ranges(qat, tmp_path):
  splits = qat["splits"]
  hparams = quantize.QuantizeHParams(scope=MODEL)
  # A QAT checkpoint saved before any training step: every range is [0, 0].
  untrained = str(tmp_path / "untrained")
  with tf.Graph().as_default():
    model_fn = quantize.wrap_model_fn(
        loop.classifier_model_fn(_network_fn(), 9, MODEL), hparams)
    model_fn(v1.placeholder(tf.float32, [None, 12, 12, 1]),
             v1.placeholder(tf.int64, [None]), True)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      v1.train.Saver().save(sess, os.path.join(untrained, "model.ckpt"),
                            global_step=0)
  checkpoints.write_model_spec(untrained, _spec(splits))
  hooks = quantize.inference_hooks(hparams)
  with pytest.raises(errors.ExportError) as raised:
    export_lib.export_checkpoint(
        untrained, str(tmp_path / "out"), formats=["int8"],
        network_fn=hooks.wrap_network_fn(_network_fn()), scope=MODEL,
        custom_getter=hooks.custom_getter, graph_hook=hooks.graph_hook,
        configure_converter=hooks.configure_converter, splits=splits)
  message = str(raised.value)
  assert "cannot be converted to TFLite" in message
  assert ("cnn_student/conv1/output_quant/fake_quant "
          "(FakeQuantWithMinMaxVars)") in message
  assert "fake-quant range min 0.0, max 0.0 is empty" in message
  assert not os.path.exists(str(tmp_path / "out"))

  # A training graph computes ranges from the batch: unknown to a converter.
  with tf.Graph().as_default() as graph:
    model_fn = quantize.wrap_model_fn(
        loop.classifier_model_fn(_network_fn(), 9, MODEL), hparams)
    outputs = model_fn(v1.placeholder(tf.float32, [None, 12, 12, 1],
                                      name="images"),
                       v1.placeholder(tf.int64, [None]), True)
    tf.identity(outputs.logits, name="logits")
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      graph_def = v1.graph_util.convert_variables_to_constants(
          sess, graph.as_graph_def(), ["logits"])
  problems = collections.defaultdict(list)
  for problem in tflite.lint_graph_def(graph_def):
    problems[problem.node].append(problem.reason)
  reasons = problems["cnn_student/conv1/output_quant/fake_quant"]
  assert reasons and "not a constant" in reasons[0]


def test_converter_settings_for_int8_only():

  class Converter(object):
    inference_type = tf.float32
    quantized_input_stats = None

  converter = Converter()
  quantize.configure_converter(converter, "float16")
  assert converter.inference_type == tf.float32
  quantize.configure_converter(converter, "int8")
  assert converter.inference_type == tf.int8
  assert converter.quantized_input_stats == {"images": (-128.0, 255.0)}
  assert quantize.quantized_input_stats((-1.0, 1.0)) == (0.0, 127.5)


def _bn_net(images, num_classes, is_training=False, scope=None):
  """Batch norm after bias-free convolutions, activations inside and outside
  the layers, a global mean: the patterns of MobileNet."""
  with v1.variable_scope(scope or "bn_net", values=[images]):
    net = layers.conv2d(images, 8, 3, use_bias=False, scope="conv1")
    net = layers.batch_norm(net, is_training, decay=0.9,
                            activation=tf.nn.relu, scope="bn1")
    net = layers.max_pool2d(net, 2)
    net = layers.conv2d(net, 16, 3, use_bias=False, scope="conv2")
    net = tf.nn.relu6(layers.batch_norm(net, is_training, decay=0.9,
                                        scope="bn2"))
    net = layers.depthwise_conv2d(net, 3, use_bias=False, scope="dw")
    net = layers.batch_norm(net, is_training, decay=0.9,
                            activation=tf.nn.relu6, scope="bn3")
    net = tf.reduce_mean(net, axis=[1, 2])
    logits = layers.dense(net, num_classes, scope="logits")
  return logits, {}


def test_batch_norm_networks_fold_and_convert(tmp_path):
  splits = _noisy_splits(sigma=0.3)
  spec = dict(_spec(splits), model="bn_net", model_options={})
  float_dir, qat_dir = str(tmp_path / "float"), str(tmp_path / "qat")
  float_metrics = loop.train(
      loop.classifier_model_fn(_bn_net, 9, "bn_net"), splits,
      loop.TrainConfig(float_dir, epochs=6, batch_size=32, learning_rate=0.1,
                       optimizer="momentum", log_every_steps=1000), spec,
      stream=io.StringIO())
  hparams = quantize.QuantizeHParams(scope="bn_net", ema_decay=0.9)
  model_fn = pruning.init_from_checkpoint(quantize.wrap_model_fn(
      loop.classifier_model_fn(_bn_net, 9, "bn_net"), hparams), float_dir,
                                          "bn_net")
  qat_metrics = loop.train(
      model_fn, splits,
      loop.TrainConfig(qat_dir, epochs=2, batch_size=32, learning_rate=0.02,
                       optimizer="momentum", log_every_steps=1000), spec,
      stream=io.StringIO())
  assert float_metrics["test_accuracy"] >= 0.8
  assert qat_metrics["test_accuracy"] >= float_metrics["test_accuracy"] - 0.03
  hooks = quantize.inference_hooks(hparams)
  export_dir = str(tmp_path / "export")
  manifest = export_lib.export_checkpoint(
      qat_dir, export_dir, formats=["frozen_graph", "int8"],
      network_fn=hooks.wrap_network_fn(_bn_net), scope="bn_net",
      custom_getter=hooks.custom_getter, graph_hook=hooks.graph_hook,
      configure_converter=hooks.configure_converter, splits=splits,
      num_calibration_examples=50)
  # The three batch norms folded into their (fake-quantized) kernels.
  assert manifest["folded_batch_norms"] == 3
  with frozen_graph.restored_inference_graph(
      v1.train.latest_checkpoint(qat_dir), hooks.wrap_network_fn(_bn_net),
      (12, 12, 1), 9, scope="bn_net", custom_getter=hooks.custom_getter,
      graph_hook=hooks.graph_hook) as (sess, inference):
    expected = sess.run(inference.logits,
                        {inference.images: splits.test_images})
  model = verify_runner.load_exported_model(
      os.path.join(export_dir, "model_int8.tflite"))
  logits = model.predict(splits.test_images)
  interpreter, _ = tflite.make_interpreter(
      model_path=os.path.join(export_dir, "model_int8.tflite"))
  assert not [d["name"] for d in interpreter.get_tensor_details()
              if d["dtype"] == np.float32]
  assert np.mean(np.argmax(logits, 1) == np.argmax(expected, 1)) >= 0.95
  assert abs(_accuracy(logits, splits.test_labels) -
             _accuracy(expected, splits.test_labels)) <= 0.01
