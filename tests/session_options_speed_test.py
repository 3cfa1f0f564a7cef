"""Tests of benchmarks/session_options_speed.py's option parsing.

The timings themselves are benchmarks (docs/benchmarks.md), never asserted.
"""

import os

import pytest

from tests import conftest


@pytest.fixture(scope="module")
def session_options_speed():
  # Imported here, not at collection: its flags (--repeats, ...) would clash
  # with scripts/benchmark.py's for every later test.
  with conftest.flag_defining_module(
      "benchmarks.session_options_speed") as module:
    yield module


def _option(**changes):
  option = dict(intra_op_threads=0, inter_op_threads=0, xla=False,
                precision="float32", fused_updates=True, callable=True,
                teacher_in_input=False, fast_gradients=True)
  option.update(changes)
  return option


@pytest.mark.parametrize("text, expected", [
    ("0/0", _option()),
    ("2/1/xla", _option(intra_op_threads=2, inter_op_threads=1, xla=True)),
    ("1/2/bfloat16", _option(intra_op_threads=1, inter_op_threads=2,
                             precision="bfloat16")),
    ("0/0/sessrun/nofused", _option(fused_updates=False, callable=False)),
    ("0/0/ininput", _option(teacher_in_input=True)),
    ("0/0/nofused", _option(fused_updates=False)),
    ("0/0/native", _option(fast_gradients=False)),
])
def test_parse_option(session_options_speed, text, expected):
  assert session_options_speed.parse_option(text) == expected


def test_parse_option_refuses_a_non_number_thread_count(
    session_options_speed):
  with pytest.raises(ValueError):
    session_options_speed.parse_option("two/1")


def test_importing_the_module_leaves_the_global_jit_off(
    session_options_speed):
  del session_options_speed  # Imported by the fixture.
  # Only running the file as a script sets the flag (before TensorFlow is
  # imported); this test process imported it in the fixture.
  assert "--tf_xla_cpu_global_jit" not in os.environ.get("TF_XLA_FLAGS", "")
