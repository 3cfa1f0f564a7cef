"""Tests of distill_v1.evaluation.verify (and its fresh-process runner)."""

import gzip
import os

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.data import datasets
from distill_v1.evaluation import verify
from distill_v1.evaluation import verify_runner
from distill_v1.export import export_lib
from distill_v1.export import frozen_graph
from distill_v1.models import nets_factory
from tests import frozen_graph_test

# cnn_student on 8x8x1 images, 3 classes.
CNN_WEIGHTS = (3 * 3 * 1 * 16 + 16) + (3 * 3 * 16 * 32 + 32) + (2 * 2 * 32 *
                                                                  3 + 3)
CNN_MULTIPLY_ADDS = (8 * 8 * 16 * 3 * 3 * 1 + 4 * 4 * 32 * 3 * 3 * 16 +
                     2 * 2 * 32 * 3)


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory):
  return frozen_graph_test.train_synthetic(
      tmp_path_factory.mktemp("verify") / "train")


@pytest.fixture(scope="module")
def frozen(train_dir):
  return frozen_graph.freeze_checkpoint(
      os.path.join(train_dir, "model.ckpt-150"),
      nets_factory.get_network_fn("cnn_student"), (8, 8, 1), 3,
      scope="cnn_student")


def test_every_format_verified_in_a_fresh_process(train_dir, tmp_path):
  verifier = verify.Verifier(num_compare=40, latency_repeats=5, warmup=1)
  manifest = export_lib.export_checkpoint(train_dir, str(tmp_path / "out"),
                                          verifier=verifier)
  report = manifest["verification"]
  assert report is verifier.report
  # The runtimes ran in another process.
  assert report["process"]["pid"] != os.getpid()
  assert list(report["formats"]) == list(export_lib.FORMATS)
  runtimes = {k: v["runtime"] for k, v in report["formats"].items()}
  assert runtimes["frozen_graph"] == "tf.compat.v1.import_graph_def + Session"
  assert runtimes["saved_model"] == "tf.saved_model.load"
  assert runtimes["int8"] in ("ai_edge_litert.interpreter",
                              "tf.lite.Interpreter")
  assert report["num_test_examples"] == 90
  assert report["num_compare_examples"] == 40
  assert report["session"]["test_accuracy"] > 0.9
  for name, row in report["formats"].items():
    assert row["ok"], name
    path = os.path.join(str(tmp_path / "out"), row["file"])
    assert row["file_bytes"] == verify.file_bytes(path)[0]
    assert 0 < row["gzip_bytes"] < row["file_bytes"] * 1.1
    assert row["latency_ms_batch_1"] > 0
    tolerance = verify.TOLERANCES[name]
    assert abs(row["accuracy_delta_points"]) <= tolerance.accuracy_points
  assert report["formats"]["float32"]["relative_logit_error"] < 1e-5
  assert report["formats"]["int8"]["io"]["inputs"][0]["dtype"] == "int8"
  assert report["size"]["weights"] == CNN_WEIGHTS
  assert report["size"]["multiply_adds"] == CNN_MULTIPLY_ADDS
  table = verify.format_report(report)
  assert "session" in table and "model_int8.tflite" in table
  assert "{:,} weights".format(CNN_WEIGHTS) in table


def _fake_results(session, paths, shifts, accuracies=None):
  """Runner output whose logits are the session's plus `shifts[path]`."""
  formats = {}
  for path in paths:
    logits = np.asarray(session["compare_logits"]) + shifts.get(path, 0.0)
    formats[path] = {
        "error": None, "runtime": "fake",
        "test_accuracy": (accuracies or {}).get(
            path, session["test_accuracy"]),
        "compare_logits": logits.tolist(), "latency_ms_batch_1": 0.1}
  return {"formats": formats, "process": {"pid": 0}}


def _verifier_with_reference(train_dir, frozen):
  splits = datasets.load_dataset("npz:" + os.path.join(train_dir,
                                                       "data.npz"))
  verifier = verify.Verifier(num_compare=30, latency_repeats=2, warmup=0)
  with frozen_graph.frozen_session(frozen) as (sess, tensors):
    inference = frozen_graph.InferenceGraph(
        images=tensors["images"], logits=tensors["logits"],
        probabilities=tensors["probabilities"], classes=tensors["classes"],
        end_points={})
    verifier.reference(sess, inference, splits)
  return verifier


def test_divergence_beyond_tolerance_fails(train_dir, frozen, tmp_path,
                                           monkeypatch):
  verifier = _verifier_with_reference(train_dir, frozen)
  session = verifier.session
  assert session["compare_logits"].shape == (30, 3)
  files = {"float32": "model_float32.tflite", "int8": "model_int8.tflite"}
  for path in files.values():
    with open(str(tmp_path / path), "wb") as f:
      f.write(b"x" * 10)
  scale = np.abs(session["compare_logits"]).max()
  # float32 off by 1e-3 of the logit scale (tolerance 1e-4); int8 off by
  # 0.1 (tolerance 0.25) but 3 points less accurate (tolerance 1).
  results = _fake_results(session, files.values(),
                          {"model_float32.tflite": 1e-3 * scale,
                           "model_int8.tflite": 0.1 * scale},
                          {"model_int8.tflite":
                           session["test_accuracy"] - 0.03})
  monkeypatch.setattr(verify, "run_in_fresh_process",
                      lambda *args, **kwargs: results)
  with pytest.raises(errors.ExportError) as info:
    verifier.verify(str(tmp_path), files, frozen)
  message = str(info.value)
  assert "float32: logits differ from the session's" in message
  assert "int8: test accuracy" in message and "-3.00 points" in message
  assert "int8: logits" not in message
  rows = verifier.report["formats"]
  assert not rows["float32"]["ok"] and not rows["int8"]["ok"]
  assert rows["float32"]["relative_logit_error"] == pytest.approx(1e-3,
                                                                 rel=1e-3)


def test_within_tolerance_passes_and_load_errors_fail(train_dir, frozen,
                                                      tmp_path, monkeypatch):
  verifier = _verifier_with_reference(train_dir, frozen)
  files = {"float16": "model_float16.tflite"}
  with open(str(tmp_path / "model_float16.tflite"), "wb") as f:
    f.write(b"x")
  scale = np.abs(verifier.session["compare_logits"]).max()
  results = _fake_results(verifier.session, files.values(),
                          {"model_float16.tflite": 1e-3 * scale})
  monkeypatch.setattr(verify, "run_in_fresh_process",
                      lambda *args, **kwargs: results)
  report = verifier.verify(str(tmp_path), files, frozen)
  assert report["formats"]["float16"]["ok"]
  assert report["formats"]["float16"]["argmax_agreement"] == 1.0
  results["formats"]["model_float16.tflite"] = {"error": "DataError: bad"}
  with pytest.raises(errors.ExportError, match="float16: DataError: bad"):
    verifier.verify(str(tmp_path), files, frozen)


def test_verify_before_reference_is_refused(frozen, tmp_path):
  with pytest.raises(errors.ConfigError, match="reference must run"):
    verify.Verifier().verify(str(tmp_path), {}, frozen)


def test_failing_process_is_an_export_error(tmp_path):
  with pytest.raises(errors.ExportError,
                     match=r"verification process .* failed \(exit code"):
    verify.run_in_fresh_process(
        str(tmp_path), ["frozen_graph.pb"], np.zeros([1, 2, 2, 1]),
        np.zeros([1]), np.zeros([1, 2, 2, 1]), python="/bin/false")


def test_size_summary_counts_weights_and_multiply_adds(frozen):
  size = verify.size_summary(frozen)
  assert size["weights"] == CNN_WEIGHTS
  assert size["dense_bytes"] == 4 * CNN_WEIGHTS
  assert 0 < size["nonzero_weights"] <= CNN_WEIGHTS
  assert size["multiply_adds"] == CNN_MULTIPLY_ADDS


def test_file_bytes_of_files_and_folders(tmp_path):
  zeros = b"\0" * 10000
  folder = tmp_path / "model"
  os.makedirs(str(folder / "sub"))
  with open(str(folder / "a.bin"), "wb") as f:
    f.write(zeros)
  with open(str(folder / "sub" / "b.bin"), "wb") as f:
    f.write(b"abc")
  raw, packed = verify.file_bytes(str(folder / "a.bin"))
  assert raw == 10000 and packed == len(gzip.compress(zeros, 9))
  raw, packed = verify.file_bytes(str(folder))
  assert raw == 10003
  assert packed == len(gzip.compress(zeros, 9)) + len(gzip.compress(b"abc",
                                                                    9))


def test_runner_reports_a_broken_file_as_an_error(tmp_path):
  path = str(tmp_path / "model_float32.tflite")
  with open(path, "wb") as f:
    f.write(b"not a flatbuffer")
  result = verify_runner.run_file(path, np.zeros([2, 8, 8, 1], np.float32),
                                  np.zeros([2], np.int64),
                                  np.zeros([1, 8, 8, 1], np.float32), 0, 1)
  assert result["error"].startswith("cannot load TFLite model")


def test_every_runtime_reports_its_inputs_and_outputs(frozen, tmp_path):
  path = str(tmp_path / frozen_graph.FILENAME)
  frozen_graph.write_frozen_graph(frozen.graph_def, path)
  model = verify_runner.load_exported_model(path)
  try:
    details = model.details()
  finally:
    model.close()
  assert details == {
      "inputs": {"images:0": {"dtype": "float32", "shape": [None, 8, 8, 1]}},
      "outputs": {"logits:0": {"dtype": "float32", "shape": [None, 3]}}}


def test_latency_runs_the_requested_batch_size(frozen, tmp_path):
  path = str(tmp_path / frozen_graph.FILENAME)
  frozen_graph.write_frozen_graph(frozen.graph_def, path)
  model = verify_runner.load_exported_model(path)
  sizes = []
  run = model._run  # pylint: disable=protected-access

  def counted(images):
    sizes.append(len(images))
    return run(images)

  model._run = counted  # pylint: disable=protected-access
  try:
    images = np.zeros([6, 8, 8, 1], np.float32)
    timing = model.latency(images, warmup=1, repeats=3, batch_size=4)
    assert sizes == [4, 4, 4, 4]
    assert 0 < timing["p10_ms"] <= timing["median_ms"] <= timing["p90_ms"]
    sizes.clear()
    model.latency(images, warmup=0, repeats=2)  # batch 1 by default
    assert sizes == [1, 1]
    with pytest.raises(errors.ConfigError, match="batch 8 needs that many "
                       "images, got 6"):
      model.latency(images, batch_size=8)
  finally:
    model.close()
