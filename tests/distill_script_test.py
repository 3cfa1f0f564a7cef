"""Runs scripts/distill.py in-process: flag and input errors, end to end on a
tiny IDX folder (online, resumed, cached) and the Hinton MNIST flagfiles."""

import json
import os

from absl import flags
import numpy as np
import pytest

from distill_v1 import checkpoints
from distill_v1.compat import tf
from distill_v1.data import datasets
from tests import conftest
from tests import testing_utils

FLAGS = flags.FLAGS
distill = None


@pytest.fixture(autouse=True)
def _distill_binary():
  """Imports scripts/distill.py with only its own flags defined."""
  global distill
  distill = conftest.load_script("distill")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """256 train and 64 test images of 28x28, 10 learnable classes (IDX)."""
  folder, _ = testing_utils.write_fashion_mnist_idx(
      str(tmp_path_factory.mktemp("idx")))
  return folder


def _run_binary(name, argv):
  return conftest.run_binary(name, argv)


def _run(argv):
  return _run_binary("distill", argv)


_error_line = conftest.error_line


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, data_dir):
  """A cnn_student teacher trained by scripts/train.py for one epoch."""
  train_dir = str(tmp_path_factory.mktemp("teacher"))
  code = _run_binary("train", [
      "--train_dir=" + train_dir, "--data_dir=" + data_dir,
      "--model=cnn_student", "--epochs=1", "--batch_size=64",
      "--learning_rate=0.2", "--seed=2"])
  assert code == 0
  return train_dir


FLAG_ERRORS = [
    ([], "--teacher_checkpoint (one or more, comma-separated)"),
    (["--teacher_checkpoint=t", "--temperature=0"],
     "flag --temperature=0.0: --temperature must be > 0"),
    (["--teacher_checkpoint=t", "--alpha=1.5"],
     "flag --alpha=1.5: --alpha must be in [0, 1]"),
    (["--teacher_checkpoint=a,b", "--teacher_model=cnn_teacher"],
     "--teacher_model and --teacher_checkpoint must list the same number of "
     "teachers"),
    (["--teacher_checkpoint=t", "--bias_correction=learn"],
     "--bias_correction=learn fits the offsets on the validation split: give "
     "--validation_size > 0"),
]


@pytest.mark.parametrize("argv,message", FLAG_ERRORS)
def test_flag_errors(capsys, tmp_path, argv, message):
  train_dir = str(tmp_path / "run")
  assert _run(["--train_dir=" + train_dir] + argv) == 1
  line = _error_line(capsys.readouterr().err)
  assert line.startswith("FATAL Flags parsing error:")
  assert message in line
  assert not os.path.exists(train_dir)


TEACHER = ["--teacher_model=cnn_student", "--teacher_checkpoint=@TEACHER@"]
INPUT_ERRORS = [
    (["--hint_end_points=conv2:conv2"], 3,
     "--hint_end_points and --hint_weight > 0 go together"),
    (["--attention_weight=2"], 3,
     "--attention_end_points and --attention_weight > 0 go together"),
    (["--hint_end_points=conv2", "--hint_weight=1"], 3,
     "--hint_end_points=conv2: expected STUDENT_END_POINT:TEACHER_END_POINT"),
    (["--attention_end_points=conv1:conv1", "--attention_weight=1",
      "--teacher_logits_cache=@CACHE@"], 3,
     "feature distillation needs the teacher's features: drop "
     "--teacher_logits_cache"),
    (["--hint_end_points=conv9:conv2", "--hint_weight=1"], 3,
     "the student has no end point 'conv9'; it has: conv1, pool1, conv2, "
     "pool2, flatten, logits"),
    (["--omit_classes=three"], 3,
     "--omit_classes takes integer labels, got three"),
    (["--omit_classes=10"], 3,
     "--omit_classes=10: each class must be in [0, 10) and at least one "
     "class must remain"),
    (["--omit_classes=" + ",".join(str(c) for c in range(10))], 3,
     "at least one class must remain"),
    (["--bias_correction=3:abc", "--validation_size=16"], 3,
     "--bias_correction=3:abc: expected 'learn' or CLASS:OFFSET pairs"),
    (["--bias_correction=12:1", "--validation_size=16"], 3,
     "--bias_correction: class 12 is outside [0, 10)"),
    (["--teacher_model=cnn_teacher"], 4,
     "cnn_teacher/conv1/kernel [5, 5, 1, 32] is missing"),
    (["--teacher_checkpoint=@NOWHERE@"], 4, "checkpoint @NOWHERE@ not found"),
    (["--teacher_model=resnet"], 3, "Unknown model 'resnet'"),
    (["--dataset=cifar10"], 3, "unknown dataset 'cifar10'"),
]


@pytest.mark.parametrize("extra,code,message", INPUT_ERRORS)
def test_input_errors(capsys, tmp_path, data_dir, teacher_dir, extra, code,
                      message):
  train_dir = str(tmp_path / "run")
  nowhere = str(tmp_path / "nowhere" / "model.ckpt-1")
  cache = str(tmp_path / "cache.npz")

  def fill(text):
    return (text.replace("@TEACHER@", teacher_dir)
            .replace("@NOWHERE@", nowhere).replace("@CACHE@", cache))

  argv = [fill(a) for a in TEACHER + extra]
  assert _run(["--train_dir=" + train_dir, "--data_dir=" + data_dir,
               "--epochs=1", "--batch_size=64"] + argv) == code
  line = _error_line(capsys.readouterr().err)
  assert line.startswith("distill: error: ")
  assert fill(message) in line
  # Nothing half-written: no train_dir, no cache, no teacher change.
  assert not os.path.exists(train_dir)
  assert not os.path.exists(cache)
  assert not os.path.exists(os.path.dirname(nowhere))


def _checkpoint_values(train_dir):
  prefix = checkpoints.resolve_checkpoint(train_dir)
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name)
          for name, _ in tf.train.list_variables(prefix)}


def _read_json(path):
  with open(path) as f:
    return json.load(f)


DISTILL = ["--model=mlp_student", "--epochs=1", "--batch_size=64",
           "--learning_rate=0.1", "--temperature=4", "--alpha=0.1",
           "--seed=1"]


@pytest.fixture(scope="module")
def online_dir(tmp_path_factory, data_dir, teacher_dir):
  """A student distilled online for one epoch."""
  train_dir = str(tmp_path_factory.mktemp("student"))
  assert _run(DISTILL + ["--train_dir=" + train_dir, "--data_dir=" + data_dir,
                         "--teacher_checkpoint=" + teacher_dir]) == 0
  return train_dir


def test_distills_end_to_end_and_resumes(capsys, online_dir, data_dir,
                                         teacher_dir):
  metrics = _read_json(os.path.join(online_dir, "metrics.json"))
  assert metrics["model"] == "mlp_student"
  assert metrics["global_step"] == 4 and metrics["epoch"] == 1
  assert 0.0 <= metrics["test_accuracy"] <= 1.0
  spec = _read_json(os.path.join(online_dir, "model_spec.json"))
  assert spec["model"] == "mlp_student"
  assert spec["distilled_from"] == ["cnn_student:" + teacher_dir]
  assert spec["temperature"] == 4.0 and spec["alpha"] == 0.1
  values = _checkpoint_values(online_dir)
  assert not [n for n in values if n.startswith("teacher")], sorted(values)
  assert "mlp_student/logits/kernel" in values

  files = sorted(os.listdir(online_dir))
  capsys.readouterr()
  assert _run(DISTILL + ["--train_dir=" + online_dir, "--data_dir=" + data_dir,
                         "--teacher_checkpoint=" + teacher_dir]) == 0
  out = capsys.readouterr().out
  assert "is already trained to step 4 of 4; nothing to do" in out
  assert "final test accuracy" in out
  again = _checkpoint_values(online_dir)
  for name in values:
    np.testing.assert_array_equal(again[name], values[name])
  new_files = sorted(os.listdir(online_dir))
  # Only a new (empty) event file may appear.
  assert [f for f in new_files if f not in files and
          not f.startswith("events.")] == []
  assert _read_json(os.path.join(online_dir, "metrics.json")) == metrics


def test_cached_distillation_writes_then_reuses_the_cache(
    capsys, tmp_path, online_dir, data_dir, teacher_dir):
  cache = str(tmp_path / "teacher_logits.npz")
  common = DISTILL + ["--data_dir=" + data_dir,
                      "--teacher_checkpoint=" + teacher_dir,
                      "--teacher_logits_cache=" + cache]
  first, second = str(tmp_path / "first"), str(tmp_path / "second")
  capsys.readouterr()
  assert _run(common + ["--train_dir=" + first]) == 0
  out = capsys.readouterr().out
  assert "teacher logits: computed 1 teachers x 256 examples into %s" % (
      cache) in out
  assert os.path.exists(cache)
  mtime = os.path.getmtime(cache)
  assert _run(common + ["--train_dir=" + second]) == 0
  out = capsys.readouterr().out
  assert "teacher logits: reusing %s (1 teachers x 256 examples)" % (
      cache) in out
  assert os.path.getmtime(cache) == mtime
  # Cached and online distillation train the same student.
  online = _checkpoint_values(online_dir)
  for train_dir in (first, second):
    cached = _checkpoint_values(train_dir)
    assert sorted(cached) == sorted(online)
    for name in online:
      np.testing.assert_allclose(cached[name], online[name], rtol=1e-5,
                                 atol=1e-6, err_msg=name)


def test_stale_cache_is_refused(capsys, tmp_path, data_dir, teacher_dir):
  cache = str(tmp_path / "teacher_logits.npz")
  common = DISTILL + ["--data_dir=" + data_dir,
                      "--teacher_checkpoint=" + teacher_dir,
                      "--teacher_logits_cache=" + cache, "--max_steps=1"]
  assert _run(common + ["--train_dir=" + str(tmp_path / "a")]) == 0
  capsys.readouterr()
  # Other training data (a validation split taken out): the cache is stale.
  train_dir = str(tmp_path / "b")
  assert _run(common + ["--train_dir=" + train_dir,
                        "--validation_size=32"]) == 2
  line = _error_line(capsys.readouterr().err)
  assert line.startswith("distill: error: teacher logits cache %s is stale"
                         % cache)
  assert not os.path.exists(train_dir)


def test_hinton_flagfiles(capsys, tmp_path, monkeypatch):
  # The flagfiles name each other relative to the project root.
  monkeypatch.chdir(conftest.ROOT)
  runs = os.path.join(conftest.ROOT, "runs", "hinton_mnist")
  runs_existed = os.path.exists(runs)
  mnist_dir, _ = testing_utils.write_fashion_mnist_idx(
      str(tmp_path / "mnist"), num_train=320, num_test=100, seed=4)
  teacher = str(tmp_path / "teacher")
  student = str(tmp_path / "omit3")
  assert _run_binary("train", [
      "--flagfile=flagfiles/hinton_mnist_teacher.flags",
      "--data_dir=" + mnist_dir, "--train_dir=" + teacher, "--epochs=1"]) == 0
  teacher_spec = _read_json(os.path.join(teacher, "model_spec.json"))
  assert teacher_spec["model"] == "mlp_teacher"
  assert teacher_spec["dataset"] == "mnist"
  assert teacher_spec["class_names"] == [str(c) for c in range(10)]
  capsys.readouterr()
  assert _run_binary("distill", [
      "--flagfile=flagfiles/hinton_mnist_omit3.flags",
      "--data_dir=" + mnist_dir, "--train_dir=" + student,
      "--teacher_checkpoint=" + teacher, "--validation_size=64",
      "--epochs=1"]) == 0
  out = capsys.readouterr().out
  splits = datasets.load_dataset("mnist", data_dir=mnist_dir,
                                 validation_size=64, seed=1)
  remain = int(np.sum(splits.train_labels != 3))
  assert 0 < remain < 256
  assert "omitting classes 3: %d of 256 training examples remain" % (
      remain) in out
  spec = _read_json(os.path.join(student, "model_spec.json"))
  assert spec["model"] == "mlp_student"
  assert spec["temperature"] == 20.0 and spec["omitted_classes"] == [3]
  report = _read_json(os.path.join(student, "bias_correction.json"))
  for key in ("per_class_accuracy_before", "per_class_accuracy_after",
              "offsets"):
    assert len(report[key]) == 10, key
  assert all(a is None or 0.0 <= a <= 1.0
             for a in report["per_class_accuracy_before"] +
             report["per_class_accuracy_after"])
  assert 0.0 <= report["test_accuracy_before"] <= 1.0
  assert 0.0 <= report["test_accuracy_after"] <= 1.0
  assert abs(sum(report["offsets"])) < 1e-4
  assert report["checkpoint"].startswith(
      os.path.join(student, "bias_corrected", "model.ckpt-"))
  assert checkpoints.resolve_checkpoint(
      os.path.join(student, "bias_corrected")) == report["checkpoint"]
  assert "bias correction (learn): test accuracy" in out
  assert os.path.exists(os.path.join(student, "metrics.json"))
  assert os.path.exists(runs) == runs_existed
