"""Tests of conftest.load_script's flag isolation between binaries."""

from absl import flags
import pytest

from tests import conftest


def test_a_failed_import_leaves_no_flags_behind():
  # A flag of scripts/benchmark.py's name, defined elsewhere first, makes
  # its import fail half-way (after --dataset and friends are defined).
  flags.DEFINE_integer("repeats", 1, "Clashes with scripts/benchmark.py.",
                       module_name="tests.clashing_module")
  try:
    with pytest.raises(flags.DuplicateFlagError):
      conftest.load_script("benchmark")
    assert "dataset" not in flags.FLAGS
  finally:
    conftest.forget_module("tests.clashing_module")
  # The next binary loads: nothing of the failed import is left to clash.
  distill = conftest.load_script("distill")
  assert "dataset" in flags.FLAGS
  assert distill.FLAGS is flags.FLAGS


def test_flag_defining_module_forgets_its_flags():
  with conftest.flag_defining_module(
      "benchmarks.session_options_speed") as module:
    assert "repeats" in flags.FLAGS
    assert module.parse_option("0/0")["intra_op_threads"] == 0
  assert "repeats" not in flags.FLAGS
  conftest.load_script("benchmark")  # Defines its own --repeats.
  assert flags.FLAGS["repeats"].help != "Round-robin repeats."
