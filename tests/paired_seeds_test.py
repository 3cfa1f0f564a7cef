"""Tests of benchmarks/paired_seeds.py, the paired non-inferiority test."""

import json
import math

import numpy as np
import pytest

from benchmarks import paired_seeds


@pytest.mark.parametrize("df, expected", [
    (1, 6.313752), (4, 2.131847), (9, 1.833113), (19, 1.729133),
    (29, 1.699127)])
def test_t_quantile_matches_the_tables(df, expected):
  assert paired_seeds.student_t_quantile(0.95, df) == pytest.approx(
      expected, abs=2e-6)


def test_t_quantile_at_97_5_percent():
  assert paired_seeds.student_t_quantile(0.975, 9) == pytest.approx(
      2.262157, abs=2e-6)


def test_t_cdf_is_symmetric_and_matches_the_closed_form_for_one_df():
  # df = 1 is the Cauchy distribution: 1/2 + atan(x) / pi.
  for x in (-3.0, -0.5, 0.0, 0.7, 40.0):
    assert paired_seeds.student_t_cdf(x, 1) == pytest.approx(
        0.5 + math.atan(x) / math.pi, abs=1e-9)
  assert paired_seeds.student_t_cdf(-2.0, 3) == pytest.approx(
      1 - paired_seeds.student_t_cdf(2.0, 3), abs=1e-12)


def test_bad_arguments_are_refused():
  with pytest.raises(ValueError, match="df"):
    paired_seeds.student_t_cdf(1.0, 0)
  with pytest.raises(ValueError, match="p must be"):
    paired_seeds.student_t_quantile(0.3, 5)
  with pytest.raises(ValueError, match="at least 2 paired seeds"):
    paired_seeds.non_inferiority({"0": 0.9}, {"0": 0.9, "1": 0.8}, 0.3)


def test_non_inferiority_against_a_numpy_reference():
  ours = {"0": 0.8964, "1": 0.8920, "2": 0.8927, "3": 0.8882, "7": 0.5}
  peer = {"0": 0.8926, "1": 0.8937, "2": 0.8943, "3": 0.8978}
  result = paired_seeds.non_inferiority(ours, peer, margin=0.3)
  d = np.array([0.38, -0.17, -0.16, -0.96])
  assert result["seeds"] == [0, 1, 2, 3]  # seed 7 has no pair
  np.testing.assert_allclose(result["differences"], d, atol=1e-9)
  assert result["mean_difference"] == pytest.approx(d.mean())
  assert result["sd_difference"] == pytest.approx(d.std(ddof=1))
  lower = d.mean() - 2.353363 * d.std(ddof=1) / 2  # t_{0.95, 3}, sqrt(4)
  assert result["lower_bound"] == pytest.approx(lower, abs=1e-5)
  assert (result["wins"], result["ties"], result["losses"]) == (1, 0, 3)
  assert not result["non_inferior"]
  # The same differences with a wide margin pass.
  assert paired_seeds.non_inferiority(ours, peer, margin=2.0)["non_inferior"]


def test_a_tight_small_difference_is_non_inferior():
  ours = {str(s): 0.890 + 0.001 * (s % 3) for s in range(20)}
  peer = {s: a + 0.0005 for s, a in ours.items()}  # 0.05 points better
  result = paired_seeds.non_inferiority(ours, peer, margin=0.3)
  assert result["mean_difference"] == pytest.approx(-0.05)
  assert result["non_inferior"]
  assert not paired_seeds.non_inferiority(ours, peer, 0.04)["non_inferior"]


def test_reads_every_json_layout(tmp_path):
  files = {
      "peer_run.json": {"seed": 3, "phases": {"distill": {
          "test_accuracy": 0.81}}},
      "peer_collected.json": {"seeds": {"4": {"distill": {
          "test_accuracy": 0.82}}}},
      "ours_seeds.json": {"seeds": {"5": {"test_accuracy": 0.83}}},
      "ours_runs.json": {"runs": [
          {"kind": "student_alone", "seed": "6", "test_accuracy": 0.7},
          {"kind": "distilled", "seed": "6", "test_accuracy": 0.84}]},
  }
  found = {}
  for name, data in files.items():
    (tmp_path / name).write_text(json.dumps(data))
    found.update(paired_seeds.read_accuracies(str(tmp_path / name)))
  assert found == {"3": 0.81, "4": 0.82, "5": 0.83, "6": 0.84}
  # Neither an empty file nor a peer run stopped after its teacher phase
  # holds a distilled accuracy.
  for name, data in (("empty.json", {}), ("teacher_only.json", {
      "seed": 7, "phases": {"teacher": {"test_accuracy": 0.92}}})):
    (tmp_path / name).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no distilled test accuracy"):
      paired_seeds.read_accuracies(str(tmp_path / name))


def test_one_seed_with_two_accuracies_is_refused(tmp_path):
  for name, accuracy in (("a.json", 0.8), ("b.json", 0.9)):
    (tmp_path / name).write_text(json.dumps(
        {"seeds": {"1": {"test_accuracy": accuracy}}}))
  with pytest.raises(ValueError, match="seed 1 has two accuracies"):
    paired_seeds._read_all([str(tmp_path / "a.json"),
                            str(tmp_path / "b.json")])
