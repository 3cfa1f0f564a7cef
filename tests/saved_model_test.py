"""Tests of distill_v1.export.saved_model: signature, assets, atomic writes."""

import os

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.export import saved_model
from distill_v1.models import nets_factory
from distill_v1.teachers import safe_loader
from tests import frozen_graph_test


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  """A frozen mobilenet_v1 (width 0.25, 8x8) with non-trivial batch norm
  statistics, and its session logits on a batch."""
  network_fn = nets_factory.get_network_fn("mobilenet_v1",
                                           width_multiplier=0.25)
  prefix = frozen_graph_test.save_checkpoint(
      tmp_path_factory.mktemp("saved_model"), network_fn, (8, 8, 1), 3)
  data = np.random.RandomState(0).uniform(size=[6, 8, 8, 1]).astype(
      np.float32)
  expected, _, frozen = frozen_graph_test.session_and_frozen(
      prefix, network_fn, (8, 8, 1), 3, data)
  return {"frozen": frozen, "data": data, "logits": expected}


def test_signature_names_dtypes_shapes_and_outputs(model, tmp_path):
  path = saved_model.version_dir(str(tmp_path / "saved_model"))
  assert path.endswith(os.path.join("saved_model", "1"))
  size = saved_model.write_saved_model(model["frozen"], path,
                                       ["a", "b", "c"])
  assert size == saved_model.folder_bytes(path)
  assert sorted(os.listdir(path)) == ["assets", "saved_model.pb",
                                      "variables"]
  loaded = tf.saved_model.load(path)
  assert list(loaded.signatures) == ["serving_default"]
  signature = loaded.signatures["serving_default"]
  _, inputs = signature.structured_input_signature
  assert list(inputs) == ["images"]
  assert inputs["images"].dtype == tf.float32
  assert inputs["images"].shape.as_list() == [None, 8, 8, 1]
  outputs = signature.structured_outputs
  assert sorted(outputs) == ["classes", "logits", "probabilities"]
  assert outputs["logits"].dtype == tf.float32
  assert outputs["logits"].shape.as_list() == [None, 3]
  assert outputs["probabilities"].shape.as_list() == [None, 3]
  assert outputs["classes"].dtype == tf.int64
  assert outputs["classes"].shape.as_list() == [None]
  result = signature(images=tf.constant(model["data"]))
  scale = max(1.0, np.abs(model["logits"]).max())
  np.testing.assert_allclose(result["logits"].numpy(), model["logits"],
                             atol=1e-5 * scale)
  np.testing.assert_allclose(result["probabilities"].numpy().sum(1), 1.0,
                             rtol=1e-5)
  np.testing.assert_array_equal(result["classes"].numpy(),
                                np.argmax(model["logits"], 1))


def test_class_names_are_an_asset(model, tmp_path):
  path = str(tmp_path / "saved_model" / "1")
  saved_model.write_saved_model(model["frozen"], path,
                                ["T-shirt/top", "Trouser", "Pullover"])
  with open(os.path.join(path, "assets", "class_names.txt")) as f:
    assert f.read() == "T-shirt/top\nTrouser\nPullover\n"
  assert saved_model.read_class_names(path) == ["T-shirt/top", "Trouser",
                                                "Pullover"]
  loaded = tf.saved_model.load(path)
  asset_files = [os.path.basename(a.asset_path.numpy().decode())
                 for a in loaded.asset_paths]
  assert asset_files == ["class_names.txt"]


def test_the_safe_loader_accepts_it(model, tmp_path):
  path = str(tmp_path / "saved_model" / "1")
  saved_model.write_saved_model(model["frozen"], path, ["a", "b", "c"])
  loaded = safe_loader.load_frozen_graph(path)
  assert loaded.kind == safe_loader.SAVED_MODEL
  assert loaded.input_name == "images:0"
  assert loaded.output_name == "logits:0"
  assert loaded.input_shape == [None, 8, 8, 1]


def test_existing_version_is_refused_then_overwritten(model, tmp_path):
  path = str(tmp_path / "saved_model" / "1")
  saved_model.write_saved_model(model["frozen"], path, ["a", "b", "c"])
  with pytest.raises(errors.ExportError,
                     match=r"export target .*saved_model/1 already exists; "
                     r"pass --overwrite"):
    saved_model.write_saved_model(model["frozen"], path, ["x", "y", "z"])
  assert saved_model.read_class_names(path) == ["a", "b", "c"]
  saved_model.write_saved_model(model["frozen"], path, ["x", "y", "z"],
                                overwrite=True)
  assert saved_model.read_class_names(path) == ["x", "y", "z"]
  # No temporary or replaced folders are left beside the version.
  assert os.listdir(str(tmp_path / "saved_model")) == ["1"]


def test_failure_while_writing_leaves_nothing(model, tmp_path, monkeypatch):
  def failing_save(self, *args, **kwargs):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(tf.compat.v1.saved_model.Builder, "save", failing_save)
  base = tmp_path / "out" / "saved_model"
  with pytest.raises(errors.ExportError,
                     match="cannot write SavedModel .*No space left"):
    saved_model.write_saved_model(model["frozen"], str(base / "1"),
                                  ["a", "b", "c"])
  assert os.listdir(str(tmp_path)) == []


def test_failure_on_overwrite_keeps_the_old_version(model, tmp_path,
                                                    monkeypatch):
  path = str(tmp_path / "saved_model" / "1")
  saved_model.write_saved_model(model["frozen"], path, ["a", "b", "c"])

  def failing_save(self, *args, **kwargs):
    raise OSError(5, "Input/output error")

  monkeypatch.setattr(tf.compat.v1.saved_model.Builder, "save", failing_save)
  with pytest.raises(errors.ExportError):
    saved_model.write_saved_model(model["frozen"], path, ["x", "y", "z"],
                                  overwrite=True)
  assert saved_model.read_class_names(path) == ["a", "b", "c"]
  assert os.listdir(str(tmp_path / "saved_model")) == ["1"]


def test_bad_arguments(model, tmp_path):
  with pytest.raises(errors.ConfigError, match="2 class names for a model "
                     "with 3 classes"):
    saved_model.write_saved_model(model["frozen"], str(tmp_path / "1"),
                                  ["a", "b"])
  with pytest.raises(errors.ConfigError, match="line break"):
    saved_model.write_saved_model(model["frozen"], str(tmp_path / "1"),
                                  ["a", "b\nc", "d"])
  with pytest.raises(errors.ConfigError, match="positive integer"):
    saved_model.version_dir(str(tmp_path), 0)
  assert not os.path.exists(str(tmp_path / "1"))
