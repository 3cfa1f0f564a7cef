"""Every entry point that runs a model file refuses hostile ops by name.

The hostile files come from safe_loader_test.build_artifacts: a tiny
cnn_student (8x8x1 images, 4 classes) whose logits also depend on WriteFile
(directly, hidden in a tf.function body, or in a TF2 SavedModel's serving
function) or on PyFunc. Entry points: the distill binary's --teacher_graph,
the verification runner (what `export` and `compress` verify with) and the
predict binary. Each must refuse with the op named, one stderr line and
exit code 5, before the file could write anything; each loads the file with
its opt-in flag. (`evaluate` reads checkpoints only: data, not code.)
"""

import os
import re

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.evaluation import verify_runner
from tests import conftest
from tests import safe_loader_test as models

# (artifact key, op named in the refusal, where it is found).
HOSTILE = [
    ("hostile_pb", "WriteFile", "node 'evil/write'"),
    ("hostile_function", "WriteFile", "in function '__inference_leak"),
    ("hostile_pyfunc", "PyFunc", "node '"),
    ("hostile_tf2", "WriteFile", "in function '__inference_serve"),
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
  return models.build_artifacts(
      str(tmp_path_factory.getbasetemp() / "models"))


@pytest.fixture(scope="module")
def images_npz(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("images") / "images.npz")
  np.savez(path, x_test=np.random.RandomState(0).randint(
      0, 256, [3, models.SIZE, models.SIZE]).astype(np.uint8))
  return path


def _assert_refused(err, op, where, flag):
  line = conftest.error_line(err)
  assert "op %s (" % op in line and where in line, line
  assert "not on the allow-list of pure tensor ops" in line
  assert "pass %s " % flag in line


def _target(artifacts, key):
  return artifacts.get("target_" + key[len("hostile_"):])


@pytest.mark.parametrize("key,op,where", HOSTILE)
def test_predict_refuses_and_opts_in(artifacts, images_npz, key, op, where,
                                     capsys):
  argv = ["--model_file=" + artifacts[key], "--images=" + images_npz]
  code = conftest.run_binary("predict", argv)
  assert code == errors.UnsafeGraphError.exit_code
  out, err = capsys.readouterr()
  _assert_refused(err, op, where, "--allow_unsafe_ops")
  target = _target(artifacts, key)
  assert not (target and os.path.exists(target))
  code = conftest.run_binary("predict", argv + ["--allow_unsafe_ops"])
  out, err = capsys.readouterr()
  if op == "PyFunc" and code != 0:
    # Loaded, but its Python callback lives only in the process (and graph)
    # that made it: one clear line when it is gone.
    assert code == errors.DataError.exit_code
    assert re.match(r"predict: error: model .* failed to run: .*PyFunc",
                    conftest.error_line(err))
    return
  assert code == 0, err
  assert len([l for l in out.splitlines() if "images.npz[" in l]) == 3, out
  _assert_it_ran(target)


def _assert_it_ran(target):
  """With the opt-in the hostile op really runs (the refusal mattered)."""
  if target:
    assert os.path.exists(target)
    os.remove(target)


@pytest.mark.parametrize("key,op,where", HOSTILE)
def test_verification_runtime_refuses_and_opts_in(artifacts, key, op, where):
  target = _target(artifacts, key)
  with pytest.raises(errors.UnsafeGraphError,
                     match=r"^model file .*: op %s \(.*%s.*; pass "
                     r"--allow_unsafe_ops " % (op, re.escape(where))):
    verify_runner.load_exported_model(artifacts[key])
  result = verify_runner.run_file(
      artifacts[key], np.zeros([2, 8, 8, 1], np.float32),
      np.zeros([2], np.int64), np.zeros([1, 8, 8, 1], np.float32),
      warmup=0, latency_repeats=1)
  assert "op %s (" % op in result["error"]
  assert not (target and os.path.exists(target))
  model = verify_runner.load_exported_model(artifacts[key],
                                            allow_unsafe_ops=True)
  try:
    logits = model.predict(np.zeros([2, 8, 8, 1], np.float32))
  except errors.DataError as e:
    assert op == "PyFunc" and re.search(r"failed to run: .*PyFunc", str(e))
    return
  assert logits.shape == (2, models.NUM_CLASSES)
  model.close()
  _assert_it_ran(target)


@pytest.fixture(scope="module")
def dataset_npz(tmp_path_factory):
  rng = np.random.RandomState(0)
  path = str(tmp_path_factory.mktemp("data") / "tiny.npz")
  images = lambda n: rng.randint(0, 256, [n, models.SIZE, models.SIZE]
                                 ).astype(np.uint8)
  np.savez(path, x_train=images(16), y_train=np.arange(16) % 4,
           x_test=images(8), y_test=np.arange(8) % 4)
  return path


@pytest.mark.parametrize("key,op,where", HOSTILE)
def test_distill_teacher_graph_refuses(artifacts, dataset_npz, tmp_path, key,
                                       op, where, capsys):
  train_dir = tmp_path / "run"
  argv = ["--teacher_graph=" + artifacts[key], "--train_dir=" + str(train_dir),
          "--dataset=npz:" + dataset_npz, "--model=mlp_student",
          "--batch_size=8", "--epochs=1"]
  code = conftest.run_binary("distill", argv)
  _, err = capsys.readouterr()
  assert code == errors.UnsafeGraphError.exit_code, err
  _assert_refused(err, op, where, "--allow_unsafe_teacher_ops")
  assert not list(train_dir.glob("model.ckpt-*"))
  target = _target(artifacts, key)
  assert not (target and os.path.exists(target))
  if op == "PyFunc":
    return  # Its callback may be gone; predict and verify cover the opt-in.
  assert conftest.run_binary("distill",
                             argv + ["--allow_unsafe_teacher_ops"]) == 0
  _assert_it_ran(target)


@pytest.fixture(scope="module")
def flex_tflite(tmp_path_factory):
  """A .tflite whose only op is a Select-TF (Flex) WriteFile."""
  from distill_v1.compat import tf  # pylint: disable=g-import-not-at-top
  folder = tmp_path_factory.mktemp("flex")
  target = str(folder / "pwned_flex.txt")

  @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32)])
  def leak(images):
    tf.io.write_file(target, "pwned")
    return tf.reshape(images, [1, 64])[:, :4] * 2.0

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [leak.get_concrete_function()], leak)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                         tf.lite.OpsSet.SELECT_TF_OPS]
  path = str(folder / "flex.tflite")
  with open(path, "wb") as f:
    f.write(converter.convert())
  return path, target


def test_tflite_flex_ops_are_not_run(flex_tflite, images_npz, capsys):
  # No Flex delegate is linked: TF ops inside a .tflite cannot run (what
  # SECURITY.md promises for TFLite files).
  path, target = flex_tflite
  with pytest.raises(errors.DataError, match=r"cannot load TFLite model .*"
                     r"FlexWriteFile"):
    verify_runner.load_exported_model(path)
  code = conftest.run_binary("predict", ["--model_file=" + path,
                                         "--images=" + images_npz,
                                         "--allow_unsafe_ops"])
  _, err = capsys.readouterr()
  assert code == errors.DataError.exit_code
  assert "FlexWriteFile" in conftest.error_line(err)
  assert not os.path.exists(target)
