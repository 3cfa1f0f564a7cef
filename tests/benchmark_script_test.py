"""scripts/benchmark.py in-process: flags, output, errors."""

import json

from absl import flags
from absl.testing import flagsaver
import pytest

from tests import conftest

FLAGS = flags.FLAGS
benchmark = None


@pytest.fixture(autouse=True)
def _benchmark_binary():
  global benchmark
  benchmark = conftest.load_script("benchmark")


def _run(argv):
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    try:
      FLAGS(["benchmark"] + argv)
      benchmark.main(["benchmark"])
    except SystemExit as e:
      return e.code
  return 0


def test_matmul_only_writes_json(tmp_path, capsys):
  out = str(tmp_path / "b.json")
  assert _run(["--what=matmul", "--repeats=2", "--output_json=" + out]) == 0
  with open(out) as f:
    results = json.load(f)
  assert set(results) == {"matmul_numpy", "matmul_tensorflow"}
  assert "GFLOP/s" in capsys.readouterr().out


def test_unknown_model_is_one_line_error(capsys):
  code = _run(["--what=train", "--models=resnet"])
  assert code == 3
  err = capsys.readouterr().err
  assert "Traceback" not in err and "unknown" in err.lower()


def test_bad_what_is_refused():
  with pytest.raises(flags.IllegalFlagValueError, match="--what takes"):
    FLAGS(["benchmark", "--what=gpu"])
