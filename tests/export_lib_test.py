"""Tests of distill_v1.export.export_lib: all formats, atomicity, refusal."""

import json
import os

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.export import export_lib
from distill_v1.export import tflite
from tests import frozen_graph_test

ALL_FILES = ["class_names.txt", "export.json", "frozen_graph.pb",
             "model_dynamic_range.tflite", "model_float16.tflite",
             "model_float32.tflite", "model_int8.tflite", "saved_model"]


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory):
  return frozen_graph_test.train_synthetic(
      tmp_path_factory.mktemp("export_lib") / "train")


def _listing(folder):
  """Every path under `folder`, relative, sorted."""
  out = []
  for base, dirs, files in os.walk(folder):
    for name in dirs + files:
      out.append(os.path.relpath(os.path.join(base, name), folder))
  return sorted(out)


def test_exports_every_format(train_dir, tmp_path):
  out_dir = str(tmp_path / "export")
  manifest = export_lib.export_checkpoint(train_dir, out_dir)
  assert sorted(os.listdir(out_dir)) == ALL_FILES
  assert sorted(os.listdir(os.path.join(out_dir, "saved_model"))) == ["1"]
  # The staging folder is gone: only the export sits in tmp_path, with the
  # permissions of a folder made by os.makedirs (not mkdtemp's 0700).
  assert os.listdir(str(tmp_path)) == ["export"]
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(out_dir).st_mode & 0o777 == 0o777 & ~umask
  with open(os.path.join(out_dir, "export.json")) as f:
    assert json.load(f) == json.loads(json.dumps(manifest))
  assert manifest["model"] == "cnn_student"
  assert manifest["checkpoint"].endswith("model.ckpt-150")
  assert manifest["image_shape"] == [8, 8, 1]
  assert manifest["class_names"] == list(frozen_graph_test.CLASS_NAMES)
  assert list(manifest["files"]) == list(export_lib.FORMATS)
  for name, entry in manifest["files"].items():
    path = os.path.join(out_dir, entry["path"])
    assert os.path.exists(path), name
    if os.path.isfile(path):
      assert os.path.getsize(path) == entry["bytes"]
  int8 = manifest["tflite"]["int8"]
  assert int8["inputs"][0]["dtype"] == "int8"
  assert int8["inputs"][0]["zero_point"] == -128
  assert manifest["verification"] is None
  with open(os.path.join(out_dir, "class_names.txt")) as f:
    assert f.read().split() == list(frozen_graph_test.CLASS_NAMES)


def test_existing_targets_are_refused_unless_overwrite(train_dir, tmp_path):
  out_dir = str(tmp_path / "export")
  os.makedirs(out_dir)
  with open(os.path.join(out_dir, "notes.txt"), "w") as f:
    f.write("mine")
  export_lib.export_checkpoint(train_dir, out_dir,
                               formats="frozen_graph,float32")
  before = os.path.getmtime(os.path.join(out_dir, "frozen_graph.pb"))
  with pytest.raises(errors.ExportError,
                     match=r"export target\(s\) already exist in .*export: "
                     r"frozen_graph.pb, class_names.txt, export.json; pass "
                     r"--overwrite"):
    export_lib.export_checkpoint(train_dir, out_dir,
                                 formats=["frozen_graph"])
  assert os.path.getmtime(os.path.join(out_dir, "frozen_graph.pb")) == before
  # A format not exported before: only the side files collide.
  with pytest.raises(errors.ExportError, match="class_names.txt"):
    export_lib.export_checkpoint(train_dir, out_dir, formats=["saved_model"])
  manifest = export_lib.export_checkpoint(
      train_dir, out_dir, formats=["frozen_graph", "saved_model"],
      overwrite=True)
  assert list(manifest["files"]) == ["frozen_graph", "saved_model"]
  assert sorted(os.listdir(out_dir)) == [
      "class_names.txt", "export.json", "frozen_graph.pb",
      "model_float32.tflite", "notes.txt", "saved_model"]
  with open(os.path.join(out_dir, "notes.txt")) as f:
    assert f.read() == "mine"
  assert os.listdir(str(tmp_path)) == ["export"]


def _fail_on_int8(real_convert):
  def convert(frozen, variant, **kwargs):
    if variant == "int8":
      raise errors.ExportError("injected failure converting int8")
    return real_convert(frozen, variant, **kwargs)
  return convert


def test_failure_midway_leaves_nothing_in_a_new_folder(train_dir, tmp_path,
                                                       monkeypatch):
  monkeypatch.setattr(tflite, "convert", _fail_on_int8(tflite.convert))
  out_dir = str(tmp_path / "export")
  with pytest.raises(errors.ExportError, match="injected failure"):
    export_lib.export_checkpoint(train_dir, out_dir)
  assert os.listdir(str(tmp_path)) == []


def test_failure_midway_keeps_an_existing_export(train_dir, tmp_path,
                                                 monkeypatch):
  out_dir = str(tmp_path / "export")
  export_lib.export_checkpoint(train_dir, out_dir,
                               formats="frozen_graph,int8")
  before = _listing(out_dir)
  with open(os.path.join(out_dir, "frozen_graph.pb"), "rb") as f:
    old_graph = f.read()
  monkeypatch.setattr(tflite, "convert", _fail_on_int8(tflite.convert))
  with pytest.raises(errors.ExportError, match="injected failure"):
    export_lib.export_checkpoint(train_dir, out_dir, overwrite=True)
  assert _listing(out_dir) == before
  with open(os.path.join(out_dir, "frozen_graph.pb"), "rb") as f:
    assert f.read() == old_graph
  assert os.listdir(str(tmp_path)) == ["export"]


def test_failure_while_publishing_rolls_back(train_dir, tmp_path,
                                             monkeypatch):
  out_dir = str(tmp_path / "export")
  export_lib.export_checkpoint(train_dir, out_dir,
                               formats="frozen_graph,saved_model")
  before = _listing(out_dir)
  with open(os.path.join(out_dir, "export.json")) as f:
    old_manifest = f.read()
  real_rename = os.rename
  calls = []

  def flaky_rename(source, target):
    calls.append(target)
    # Let the first entries move, then fail (a full disk, a lost mount).
    if len(calls) == 5:
      raise OSError(5, "Input/output error")
    return real_rename(source, target)

  monkeypatch.setattr(os, "rename", flaky_rename)
  with pytest.raises(errors.ExportError,
                     match="cannot move the export into .*Input/output"):
    export_lib.export_checkpoint(train_dir, out_dir,
                                 formats="frozen_graph,saved_model",
                                 overwrite=True)
  monkeypatch.undo()
  assert _listing(out_dir) == before
  with open(os.path.join(out_dir, "export.json")) as f:
    assert f.read() == old_manifest
  assert os.listdir(str(tmp_path)) == ["export"]


class _RecordingVerifier(object):
  """Records what export_lib hands a verifier; optionally fails."""

  def __init__(self, fail=False):
    self.fail = fail
    self.calls = []

  def reference(self, sess, inference, splits):
    logits = sess.run(inference.logits,
                      {inference.images: splits.test_images[:4]})
    self.calls.append(("reference", logits.shape, splits.name))

  def verify(self, export_dir, files, frozen):
    self.calls.append(("verify", sorted(os.listdir(export_dir)),
                       dict(files), frozen.num_classes))
    if self.fail:
      raise errors.ExportError("injected divergence")
    return {"ok": True}


def test_verifier_runs_before_publishing(train_dir, tmp_path):
  verifier = _RecordingVerifier()
  out_dir = str(tmp_path / "export")
  manifest = export_lib.export_checkpoint(
      train_dir, out_dir, formats="frozen_graph,float32", verifier=verifier)
  assert verifier.calls[0] == ("reference", (4, 3),
                               "npz:" + os.path.join(train_dir, "data.npz"))
  step, listing, files, num_classes = verifier.calls[1]
  assert step == "verify" and num_classes == 3
  assert listing == ["class_names.txt", "frozen_graph.pb",
                     "model_float32.tflite"]
  assert files == {"frozen_graph": "frozen_graph.pb",
                   "float32": "model_float32.tflite"}
  assert manifest["verification"] == {"ok": True}

  failing = _RecordingVerifier(fail=True)
  other = str(tmp_path / "other")
  with pytest.raises(errors.ExportError, match="injected divergence"):
    export_lib.export_checkpoint(train_dir, other, formats="float32",
                                 verifier=failing)
  assert sorted(os.listdir(str(tmp_path))) == ["export"]


def test_hooks_reach_the_graph_and_the_converter(train_dir, tmp_path):
  configured = []

  def configure(converter, variant):
    configured.append((variant, type(converter).__name__))

  manifest = export_lib.export_checkpoint(
      train_dir, str(tmp_path / "export"), formats="frozen_graph,float16",
      graph_hook=lambda logits, end_points: logits * 0.0,
      configure_converter=configure)
  assert configured == [("float16", "TFLiteConverter")]
  graph_def = tf.compat.v1.GraphDef()
  with open(os.path.join(str(tmp_path / "export"), "frozen_graph.pb"),
            "rb") as f:
    graph_def.ParseFromString(f.read())
  with tf.Graph().as_default() as graph:
    tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session() as sess:
      logits = sess.run("logits:0", {"images:0": np.ones([2, 8, 8, 1],
                                                         np.float32)})
  np.testing.assert_array_equal(logits, np.zeros([2, 3]))
  assert manifest["files"]["float16"]["path"] == "model_float16.tflite"
  del graph


def test_bad_arguments(train_dir, tmp_path):
  with pytest.raises(errors.ConfigError, match="formats int4: expected"):
    export_lib.export_checkpoint(train_dir, str(tmp_path / "x"),
                                 formats="int4")
  with pytest.raises(errors.CheckpointError, match="not found"):
    export_lib.export_checkpoint(str(tmp_path / "nothing"),
                                 str(tmp_path / "x"))
  with open(str(tmp_path / "file"), "w") as f:
    f.write("")
  with pytest.raises(errors.ExportError, match="is a file"):
    export_lib.export_checkpoint(train_dir, str(tmp_path / "file"))
  assert export_lib.parse_formats("all") == list(export_lib.FORMATS)
  assert export_lib.parse_formats("int8,frozen_graph") == ["frozen_graph",
                                                           "int8"]
  assert sorted(os.listdir(str(tmp_path))) == ["file"]
