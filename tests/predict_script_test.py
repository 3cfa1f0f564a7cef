"""Runs scripts/predict.py in-process on PNG, IDX and npz images."""

import os

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from distill_v1.compat import tf
from distill_v1.data import idx
from distill_v1.export import export_lib
from tests import conftest
from tests import frozen_graph_test

FLAGS = flags.FLAGS
NAMES = frozen_graph_test.CLASS_NAMES
predict = None


@pytest.fixture(autouse=True)
def _predict_binary():
  global predict
  predict = conftest.load_script("predict")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """An export of the synthetic cnn_student and the test data."""
  folder = tmp_path_factory.mktemp("predict")
  train_dir = frozen_graph_test.train_synthetic(folder / "train")
  out_dir = str(folder / "export")
  export_lib.export_checkpoint(
      train_dir, out_dir, formats="frozen_graph,saved_model,float32,int8")
  data = np.load(os.path.join(train_dir, "data.npz"))
  return {"dir": out_dir, "npz": os.path.join(train_dir, "data.npz"),
          "x_test": data["x_test"], "y_test": data["y_test"],
          "folder": str(folder)}


def _run(argv):
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["predict"] + argv)
    try:
      predict.main(["predict"])
    except SystemExit as e:
      return e.code
  return 0


def _write_png(path, image):
  with open(path, "wb") as f:
    f.write(tf.io.encode_png(image).numpy())


def test_png_with_the_int8_tflite_model(exported, tmp_path, capsys):
  paths = []
  for i in range(3):
    path = str(tmp_path / ("image%d.png" % i))
    _write_png(path, exported["x_test"][i][..., np.newaxis])
    paths.append(path)
  # An RGB PNG is converted to the model's one channel by decode_png.
  rgb = str(tmp_path / "rgb.png")
  _write_png(rgb, np.repeat(exported["x_test"][3][..., np.newaxis], 3, -1))
  code = _run(["--model_file=" + os.path.join(exported["dir"],
                                              "model_int8.tflite"),
               "--images=" + ",".join(paths + [rgb])])
  out = capsys.readouterr().out.strip().splitlines()
  assert code == 0
  assert len(out) == 4
  for i, line in enumerate(out):
    name = "image%d.png" % i if i < 3 else "rgb.png"
    expected = NAMES[exported["y_test"][i]]
    assert line.startswith("%s[0]: %s " % (name, expected)), line
    assert line.endswith("%")


def test_idx_files_with_the_saved_model_and_labels(exported, tmp_path,
                                                   capsys):
  images = str(tmp_path / "t10k-images-idx3-ubyte.gz")
  labels = str(tmp_path / "t10k-labels-idx1-ubyte")
  idx.write_idx(images, exported["x_test"][:20])
  idx.write_idx(labels, exported["y_test"][:20].astype(np.uint8))
  code = _run(["--model_file=" + os.path.join(exported["dir"],
                                              "saved_model"),
               "--images=" + images, "--labels=" + labels, "--top_k=2",
               "--max_images=5"])
  out = capsys.readouterr().out.strip().splitlines()
  assert code == 0
  assert len(out) == 6
  for i, line in enumerate(out[:5]):
    prefix = "t10k-images-idx3-ubyte.gz[%d]: %s " % (
        i, NAMES[exported["y_test"][i]])
    assert line.startswith(prefix), line
    assert line.count("%") == 2  # top 2 classes
  assert out[5] == "accuracy: 100.00% (5 images, tf.saved_model.load)"


def test_npz_with_the_frozen_graph_and_custom_class_names(exported, tmp_path,
                                                          capsys):
  names = str(tmp_path / "names.txt")
  with open(names, "w") as f:
    f.write("alpha\nbeta\ngamma\n")
  code = _run(["--model_file=" + os.path.join(exported["dir"],
                                              "frozen_graph.pb"),
               "--images=" + exported["npz"], "--class_names=" + names,
               "--max_images=4"])
  out = capsys.readouterr().out.strip().splitlines()
  assert code == 0
  greek = ("alpha", "beta", "gamma")
  assert out == [
      line for line in out if line.startswith("data.npz[")]
  assert [line.split()[1] for line in out] == [
      greek[c] for c in exported["y_test"][:4]]


def test_float_npz_and_missing_class_names(exported, tmp_path, capsys):
  # A model file copied away from its export has no class names: class_<i>.
  lonely = str(tmp_path / "model.tflite")
  with open(os.path.join(exported["dir"], "model_float32.tflite"), "rb") as f:
    data = f.read()
  with open(lonely, "wb") as f:
    f.write(data)
  batch = str(tmp_path / "batch.npz")
  np.savez(batch, images=exported["x_test"][:2].astype(np.float32) / 255.0)
  code = _run(["--model_file=" + lonely, "--images=" + batch])
  out = capsys.readouterr().out.strip().splitlines()
  assert code == 0
  assert [line.split()[1] for line in out] == [
      "class_%d" % c for c in exported["y_test"][:2]]


def test_wrong_image_size_is_one_line_error(exported, tmp_path, capsys):
  path = str(tmp_path / "big.png")
  _write_png(path, np.zeros([10, 10, 1], np.uint8))
  code = _run(["--model_file=" + os.path.join(exported["dir"],
                                              "model_float32.tflite"),
               "--images=" + path])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2  # DataError.exit_code
  assert err == ["predict: error: %s holds images of shape [10, 10, 1]; the "
                 "model takes [8, 8, 1] (height, width, channels)" % path]


def test_missing_model_and_bad_pixels_are_one_line_errors(exported, tmp_path,
                                                          capsys):
  code = _run(["--model_file=" + str(tmp_path / "none.tflite"),
               "--images=" + exported["npz"]])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2
  assert err == ["predict: error: model file %s not found" %
                 str(tmp_path / "none.tflite")]
  bad = str(tmp_path / "bad.npz")
  np.savez(bad, x_test=np.full([1, 8, 8], 3.0, np.float32))
  code = _run(["--model_file=" + os.path.join(exported["dir"],
                                              "model_float32.tflite"),
               "--images=" + bad])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2
  assert len(err) == 1 and "expected [0, 1]" in err[0]
