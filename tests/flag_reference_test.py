"""docs/flags.md is generated from the binaries' flags and kept current."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_flag_reference_is_current():
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tools", "flag_reference.py"),
       "--check"], capture_output=True, text=True, check=False, cwd=ROOT)
  assert result.returncode == 0, result.stderr[-2000:]


def test_flag_reference_lists_every_binary_and_common_flag():
  with open(os.path.join(ROOT, "docs", "flags.md"), encoding="utf-8") as f:
    text = f.read()
  for name in ("train", "distill", "evaluate"):
    assert "## distill-v1-%s" % name in text
  for flag in ("model", "dataset", "data_dir", "train_dir", "epochs",
               "batch_size", "learning_rate", "learning_rate_decay",
               "weight_decay", "optimizer", "seed", "save_every_steps",
               "validation_size", "teacher_checkpoint", "temperature",
               "alpha", "teacher_logits_cache", "omit_classes",
               "bias_correction"):
    assert "`--%s`" % flag in text, flag
