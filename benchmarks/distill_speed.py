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

import os
import shutil
import sys
import tempfile

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import bench_util
from distill_v1 import fileio
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_list("families", ["mlp", "cnn"], "Families to measure.")
flags.DEFINE_integer("repeats", 5, "Interleaved repeats.")
flags.DEFINE_string("runs_dir", "/work/runs", "Where the teachers are.")
flags.DEFINE_string("output_json", None, "Where results go.")

KINDS = (("ours", "alone"), ("ours", "online"), ("ours", "cached"),
         ("peer", "alone"), ("peer", "distill"))


def _ours(family, mode, scratch, max_steps=None):
  """examples/sec of our 2-epoch run of `family`'s student in `mode`."""
  model, rate = bench_util.STUDENTS[family]
  train_dir = tempfile.mkdtemp(dir=scratch)
  extra = []
  if mode != "alone":
    extra = bench_util.distill_flags(
        "%s_teacher" % family, "%s/%s_teacher" % (FLAGS.runs_dir, family),
        cache=("%s/%s_logits.npz" % (scratch, family)
               if mode == "cached" else None))
  if max_steps:
    extra.append("--max_steps=%d" % max_steps)
  bench_util.run_child(bench_util.train_command(
      "train" if mode == "alone" else "distill", model, train_dir, rate,
      extra=extra))
  result = None if max_steps else bench_util.second_epoch_rate(train_dir)
  shutil.rmtree(train_dir, ignore_errors=True)
  return result


def _peer(family, mode, scratch):
  """examples/sec of the peer's 2-epoch student or Distiller run."""
  out = os.path.join(scratch, "peer.json")
  phase = "student" if mode == "alone" else "distill"
  extra = []
  if phase == "distill":
    extra.append("--teacher_weights=%s/peer/%s_teacher.weights.h5" %
                 (FLAGS.runs_dir, family))
  bench_util.run_child(bench_util.peer_command(
      family, phase, out, learning_rate=bench_util.STUDENTS[family][1],
      extra=extra))
  return bench_util.peer_rate(bench_util.read_json(out), phase)


def _rows(family, scratch):
  """One interleave row per family: its five kinds, ours first."""
  def side(who, mode):
    fn = _ours if who == "ours" else _peer
    return ("%s_%s" % (who, mode),
            lambda repeat: {"examples_per_sec": fn(family, mode, scratch)})
  return [(family, [side(who, mode) for who, mode in KINDS])]


def main(argv):
  del argv
  scratch = tempfile.mkdtemp(prefix="distill_speed_")
  results = {"repeats": FLAGS.repeats, "families": {}}
  for family in FLAGS.families:
    # Fills the cache outside the timing.
    _ours(family, "cached", scratch, max_steps=1)
    samples, _ = bench_util.interleave(_rows(family, scratch), FLAGS.repeats)
    summary = {k: v["examples_per_sec"] for k, v in bench_util.aggregate(
        samples)[family].items()}
    ratio = lambda a, b: bench_util.ratio_of_medians(summary[a], summary[b])
    summary["ratios"] = {
        "train_vs_peer": ratio("ours_alone", "peer_alone"),
        "online_distill_vs_peer": ratio("ours_online", "peer_distill"),
        "cached_distill_vs_peer": ratio("ours_cached", "peer_distill"),
        "cached_epoch_cost_vs_alone": ratio("ours_alone", "ours_cached"),
    }
    results["families"][family] = summary
    print(summary["ratios"], flush=True)
    if FLAGS.output_json:
      fileio.write_json(FLAGS.output_json, results)
  shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
