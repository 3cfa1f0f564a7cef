r"""Training and distillation throughput beside the Keras 3 peer, interleaved.

For each family, each repeat runs, one after the other in the same process
tree: our student alone, our online distillation, our cached distillation,
the peer's student alone and the peer's distillation (keras.io Distiller).
Each run trains 2 epochs; its figure is the examples/sec of the second epoch
(the first includes graph building and warm-up). Medians and ranges over the
repeats go to the JSON; ratios are of medians measured in the same run.

Usage:
  python benchmarks/distill_speed.py --repeats=5 \
      --output_json=docs/benchmarks/distill_speed.json
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from distill_v1 import fileio  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_list("families", ["mlp", "cnn"], "Families to measure.")
flags.DEFINE_integer("repeats", 5, "Interleaved repeats.")
flags.DEFINE_string("runs_dir", "/work/runs", "Where the teachers are.")
flags.DEFINE_string("output_json", None, "Where results go.")

STUDENTS = {"mlp": ("mlp_student", 0.1), "cnn": ("cnn_student", 0.05)}


def _run(command):
  print("$ " + " ".join(shlex.quote(c) for c in command), flush=True)
  subprocess.run(command, cwd=ROOT, check=True, capture_output=True)


def _ours(family, mode, scratch):
  model, rate = STUDENTS[family]
  train_dir = tempfile.mkdtemp(dir=scratch)
  command = [sys.executable, "scripts/%s.py" % (
      "train" if mode == "alone" else "distill"),
             "--model=" + model, "--train_dir=" + train_dir, "--epochs=2",
             "--learning_rate=%g" % rate, "--log_every_steps=100000",
             "--save_every_steps=0"]
  if mode != "alone":
    command += ["--teacher_checkpoint=%s/%s_teacher" % (FLAGS.runs_dir,
                                                        family),
                "--temperature=8", "--alpha=0.5"]
  if mode == "cached":
    command.append("--teacher_logits_cache=%s/%s_logits.npz" % (scratch,
                                                                family))
  _run(command)
  with open(os.path.join(train_dir, "metrics.json")) as f:
    history = json.load(f)["history"]
  shutil.rmtree(train_dir, ignore_errors=True)
  return history[-1]["examples_per_sec"]


def _peer(family, mode, scratch):
  out = os.path.join(scratch, "peer.json")
  phase = "student" if mode == "alone" else "distill"
  command = [sys.executable, "benchmarks/keras_peer.py",
             "--family=" + family, "--phase=" + phase, "--epochs=2",
             "--temperature=8", "--alpha=0.5", "--output_json=" + out]
  if phase == "distill":
    command.append("--teacher_weights=%s/peer/%s_teacher.weights.h5" %
                   (FLAGS.runs_dir, family))
  _run(command)
  with open(out) as f:
    rates = json.load(f)["phases"][phase]["examples_per_sec"]
  return rates[-1]


def main(argv):
  del argv
  scratch = tempfile.mkdtemp(prefix="distill_speed_")
  kinds = [("ours", "alone"), ("ours", "online"), ("ours", "cached"),
           ("peer", "alone"), ("peer", "distill")]
  results = {"repeats": FLAGS.repeats, "families": {}}
  for family in FLAGS.families:
    if any(k == ("ours", "cached") for k in kinds):
      _ours(family, "cached", scratch)  # Fills the cache outside the timing.
    samples = {"%s_%s" % k: [] for k in kinds}
    for repeat in range(FLAGS.repeats):
      for who, mode in kinds:
        fn = _ours if who == "ours" else _peer
        rate = fn(family, mode, scratch)
        samples["%s_%s" % (who, mode)].append(rate)
        print("%s repeat %d %s %s: %s ex/s" % (family, repeat + 1, who, mode,
                                               format(int(rate), ",")),
              flush=True)
    summary = {k: {"median": float(np.median(v)), "min": float(min(v)),
                   "max": float(max(v)), "values": v}
               for k, v in samples.items()}
    med = lambda k: summary[k]["median"]
    summary["ratios"] = {
        "train_vs_peer": med("ours_alone") / med("peer_alone"),
        "online_distill_vs_peer": med("ours_online") / med("peer_distill"),
        "cached_distill_vs_peer": med("ours_cached") / med("peer_distill"),
        "cached_epoch_cost_vs_alone": med("ours_alone") / med("ours_cached"),
    }
    results["families"][family] = summary
    print(json.dumps(summary["ratios"], indent=1), flush=True)
    if FLAGS.output_json:
      fileio.write_json(FLAGS.output_json, results)
  shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
