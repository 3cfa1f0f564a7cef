"""Tests of distill_v1.export.tflite: conversion variants and the lint."""

import os

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.evaluation import verify_runner
from distill_v1.export import frozen_graph
from distill_v1.export import tflite
from distill_v1.models import nets_factory
from tests import frozen_graph_test

v1 = tf.compat.v1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A cnn_student trained on the synthetic bands task, frozen, with the
  session's logits on the test images."""
  folder = frozen_graph_test.train_synthetic(
      tmp_path_factory.mktemp("tflite") / "train")
  data = np.load(os.path.join(folder, "data.npz"))
  test_images = data["x_test"][..., np.newaxis].astype(np.float32) / 255.0
  train_images = data["x_train"][..., np.newaxis].astype(np.float32) / 255.0
  network_fn = nets_factory.get_network_fn("cnn_student")
  with frozen_graph.restored_inference_graph(
      os.path.join(folder, "model.ckpt-150"), network_fn, (8, 8, 1), 3,
      scope="cnn_student") as (sess, inference):
    logits = sess.run(inference.logits, {inference.images: test_images})
    frozen = frozen_graph.freeze_session(sess, inference)
  assert np.mean(np.argmax(logits, 1) == data["y_test"]) > 0.9
  return {"frozen": frozen, "logits": logits, "test_images": test_images,
          "calibration": tflite.calibration_images(train_images, 100),
          "folder": str(tmp_path_factory.mktemp("tflite_files"))}


def _run(trained, variant, name=None):
  data = tflite.convert(trained["frozen"], variant,
                        representative_images=trained["calibration"])
  path = os.path.join(trained["folder"], name or tflite.filename(variant))
  tflite.write_tflite(data, path, overwrite=True)
  model = verify_runner.load_exported_model(path)
  return model.predict(trained["test_images"]), data


@pytest.mark.parametrize("variant, relative_tolerance", [
    ("float32", 1e-5),
    ("float16", 1e-2),
    ("dynamic_range", 2e-2),
])
def test_float_io_variants_agree_with_the_session(trained, variant,
                                                  relative_tolerance):
  got, data = _run(trained, variant)
  expected = trained["logits"]
  scale = np.abs(expected).max()
  assert np.abs(got - expected).max() <= relative_tolerance * scale
  np.testing.assert_array_equal(np.argmax(got, 1), np.argmax(expected, 1))
  details = tflite.io_details(data)
  assert [d["dtype"] for d in details["inputs"]] == ["float32"]
  assert details["inputs"][0]["shape"] == [-1, 8, 8, 1]
  assert [(d["name"], d["dtype"]) for d in details["outputs"]] == [
      ("logits", "float32"), ("probabilities", "float32")]


def test_quantized_variants_are_smaller(trained):
  sizes = {v: len(tflite.convert(trained["frozen"], v,
                                 representative_images=trained["calibration"]))
           for v in tflite.VARIANTS}
  # 5,187 weights: fixed per-tensor overheads (names, shapes, quantization
  # parameters) keep the ratios above the ideal 0.5 and 0.25.
  assert sizes["float16"] < 0.65 * sizes["float32"]
  assert sizes["dynamic_range"] < 0.45 * sizes["float32"]
  assert sizes["int8"] < 0.45 * sizes["float32"]


def test_int8_model_has_int8_io_and_agrees_within_quantization_steps(trained):
  got, data = _run(trained, "int8")
  details = tflite.io_details(data)
  (image_input,) = details["inputs"]
  assert image_input["dtype"] == "int8"
  # Pixels in [0, 1] on the int8 grid: scale 1/255, zero point -128.
  assert image_input["scale"] == pytest.approx(1.0 / 255.0, rel=1e-3)
  assert image_input["zero_point"] == -128
  outputs = {d["name"]: d for d in details["outputs"]}
  assert outputs["logits"]["dtype"] == "int8"
  assert outputs["logits"]["scale"] > 0
  assert outputs["probabilities"]["dtype"] == "int8"
  assert outputs["probabilities"]["scale"] == pytest.approx(1.0 / 256.0)
  expected = trained["logits"]
  agreement = np.mean(np.argmax(got, 1) == np.argmax(expected, 1))
  assert agreement > 0.95
  steps = np.abs(got - expected).max() / outputs["logits"]["scale"]
  assert steps <= 6.0


def test_int8_runs_with_raw_interpreter_and_quantized_input(trained):
  data = tflite.convert(trained["frozen"], "int8",
                        representative_images=trained["calibration"])
  interpreter, _ = tflite.make_interpreter(model_content=data)
  interpreter.allocate_tensors()
  (input_detail,) = interpreter.get_input_details()
  scale, zero_point = input_detail["quantization"]
  image = trained["test_images"][:1]
  interpreter.set_tensor(input_detail["index"], np.clip(
      np.round(image / scale) + zero_point, -128, 127).astype(np.int8))
  interpreter.invoke()
  logits_detail = [d for d in interpreter.get_output_details()
                   if d["name"] == "logits"][0]
  raw = interpreter.get_tensor(logits_detail["index"])
  assert raw.dtype == np.int8
  out_scale, out_zero = logits_detail["quantization"]
  logits = (raw.astype(np.float32) - out_zero) * out_scale
  assert np.argmax(logits) == np.argmax(trained["logits"][0])


def test_int8_needs_representative_images(trained):
  with pytest.raises(errors.ConfigError, match="representative images"):
    tflite.convert(trained["frozen"], "int8")
  with pytest.raises(errors.DataError, match=r"expected \[N, 8, 8, 1\]"):
    tflite.convert(trained["frozen"], "int8",
                   representative_images=np.zeros([2, 4, 4, 1], np.float32))


def test_unknown_variant_is_refused(trained):
  with pytest.raises(errors.ConfigError, match="'int4' is not one of"):
    tflite.convert(trained["frozen"], "int4")


def test_calibration_images_are_a_seeded_sample():
  images = np.arange(50, dtype=np.float32).reshape(50, 1, 1, 1)
  first = tflite.calibration_images(images, 10, seed=3)
  again = tflite.calibration_images(images, 10, seed=3)
  other = tflite.calibration_images(images, 10, seed=4)
  np.testing.assert_array_equal(first, again)
  assert first.shape == (10, 1, 1, 1)
  assert len(np.unique(first)) == 10
  assert not np.array_equal(first, other)
  assert tflite.calibration_images(images, 500).shape == (50, 1, 1, 1)


def _frozen_with(build):
  """A FrozenModel whose graph is `build(images) -> logits` [batch, 2]."""
  with tf.Graph().as_default() as graph:
    images = v1.placeholder(tf.float32, [None, 2, 2, 1], name="images")
    logits = tf.identity(build(tf.reshape(images, [-1, 4])), name="logits")
    tf.nn.softmax(logits, name="probabilities")
    tf.argmax(logits, 1, name="classes")
  return frozen_graph.FrozenModel(
      graph_def=graph.as_graph_def(), input_name="images:0",
      output_names={n: n + ":0" for n in frozen_graph.OUTPUT_NAMES},
      image_shape=(2, 2, 1), num_classes=2, folded=0)


def test_lint_names_an_unsupported_op_before_the_converter(trained,
                                                           monkeypatch):
  frozen = _frozen_with(
      lambda x: tf.matmul(tf.atan(x), tf.ones([4, 2]), name="dense"))
  problems = tflite.lint_graph_def(frozen.graph_def)
  assert [(p.op, p.node) for p in problems] == [("Atan", "Atan")]
  assert "no TFLite builtin" in problems[0].reason

  def converter_must_not_run(*args):
    raise AssertionError("the converter ran despite the lint")

  monkeypatch.setattr(tf.compat.v1.lite.TFLiteConverter, "from_session",
                      converter_must_not_run)
  with pytest.raises(errors.ExportError,
                     match=r"cannot be converted to TFLite: op Atan has no "
                     r"TFLite builtin kernel .*: Atan \(Atan\)"):
    tflite.convert(frozen, "float32")
  del trained


def test_converter_failure_is_one_export_error_naming_the_op():
  frozen = _frozen_with(lambda x: tf.matmul(tf.atan(x), tf.ones([4, 2])))
  with pytest.raises(errors.ExportError) as info:
    tflite.convert(frozen, "float32", lint=False)
  message = str(info.value)
  assert message.startswith("TFLite float32 conversion failed")
  assert "ops without TFLite builtins: Atan" in message
  assert "\n" not in message


def test_lint_names_leftover_mask_and_assign_nodes():
  with tf.Graph().as_default() as graph:
    images = v1.placeholder(tf.float32, [None, 2, 2, 1], name="images")
    kernel = v1.get_variable("dense/kernel", [4, 2])
    mask = tf.constant(np.ones([4, 2], np.float32), name="dense/mask")
    v1.assign(kernel, kernel * mask, name="dense/mask_update")
    logits = tf.matmul(tf.reshape(images, [-1, 4]), kernel * mask)
    tf.identity(logits, name="logits")
  problems = tflite.lint_graph_def(graph.as_graph_def())
  by_node = {p.node: (p.op, p.reason) for p in problems}
  assert by_node["dense/mask"][0] == "Const"
  assert "pruning mask" in by_node["dense/mask"][1]
  assert by_node["dense/kernel"][0] == "VarHandleOp"
  assert "variable" in by_node["dense/kernel"][1]
  assert "mask" in by_node["dense/mask_update"][1]
  assert any(p.op == "AssignVariableOp" for p in problems)
  assert any("initializer" in p.reason for p in problems)
  with pytest.raises(errors.ExportError, match=r"pruning mask .*dense/mask "
                     r"\(Const\)"):
    tflite.check_convertible(graph.as_graph_def())


def test_lint_names_fake_quant_without_ranges():
  with tf.Graph().as_default() as graph:
    images = v1.placeholder(tf.float32, [None, 2, 2, 1], name="images")
    flat = tf.reshape(images, [-1, 4])
    # Range computed at run time from the batch: unknown when converting.
    dynamic = tf.quantization.fake_quant_with_min_max_vars(
        flat, tf.reduce_min(flat), tf.reduce_max(flat), name="fq_dynamic")
    # Ranges never trained: an empty interval.
    empty = tf.quantization.fake_quant_with_min_max_vars(
        dynamic, tf.constant(0.0), tf.constant(0.0), name="fq_empty")
    # A frozen range variable, still read through an Identity: fine.
    good = tf.quantization.fake_quant_with_min_max_vars(
        empty, tf.identity(tf.constant(-1.0)), tf.constant(1.0),
        name="fq_good")
    tf.identity(good, name="logits")
  problems = {p.node: p.reason for p in tflite.lint_graph_def(
      graph.as_graph_def())}
  assert set(problems) == {"fq_dynamic", "fq_empty"}
  assert "not a constant" in problems["fq_dynamic"]
  assert "Min" in problems["fq_dynamic"]
  assert "empty" in problems["fq_empty"]


def test_clean_frozen_graph_passes_the_lint(trained):
  assert tflite.lint_graph_def(trained["frozen"].graph_def) == []


def test_write_tflite_refuses_existing(tmp_path):
  path = str(tmp_path / "model_float32.tflite")
  tflite.write_tflite(b"abc", path)
  with pytest.raises(errors.ExportError, match="already exists"):
    tflite.write_tflite(b"def", path)
  tflite.write_tflite(b"def", path, overwrite=True)
  with open(path, "rb") as f:
    assert f.read() == b"def"
  assert os.listdir(str(tmp_path)) == ["model_float32.tflite"]
