r"""Training and distillation throughput beside the Keras 3 peer, interleaved.

For each family, each repeat runs, one after the other in the same process
tree: our student alone, our online distillation (teachers in the input
pipeline, the default), our online distillation with the teacher in the
training step (--noteacher_in_input), our cached distillation, the peer's
student alone and the peer's distillation (keras.io Distiller); --kinds
picks some of them.
Each run trains --epochs epochs (default 2); its figure is the sustained
examples/sec of the epochs after the first (the first includes graph building
and warm-up): their examples over their summed seconds. Medians and ranges over the
repeats go to the JSON; ratios are of medians measured in the same run.

Usage:
  python benchmarks/distill_speed.py --repeats=5 \
      --output_json=docs/benchmarks/distill_speed.json
  # Where the teacher runs, alone:
  python benchmarks/distill_speed.py --repeats=3 \
      --kinds=ours_online,ours_online_in_step \
      --output_json=docs/benchmarks/teacher_in_input.json
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
flags.DEFINE_integer("epochs", 2, "Epochs per run; the figure is the "
                     "sustained rate of the epochs after the first "
                     "(their examples over their seconds).", lower_bound=2)

KINDS = (("ours", "alone"), ("ours", "online"), ("ours", "online_in_step"),
         ("ours", "cached"), ("peer", "alone"), ("peer", "distill"))
flags.DEFINE_list("kinds", ["%s_%s" % k for k in KINDS],
                  "Runs of each repeat, some of: %s." %
                  ", ".join("%s_%s" % k for k in KINDS))
# Ratio name -> (numerator kind, denominator kind); computed when both ran.
RATIOS = {
    "train_vs_peer": ("ours_alone", "peer_alone"),
    "online_distill_vs_peer": ("ours_online", "peer_distill"),
    "online_in_step_distill_vs_peer": ("ours_online_in_step", "peer_distill"),
    "cached_distill_vs_peer": ("ours_cached", "peer_distill"),
    "cached_epoch_cost_vs_alone": ("ours_alone", "ours_cached"),
    "teacher_in_input_vs_in_step": ("ours_online", "ours_online_in_step"),
}


def _ours(family, mode, scratch, max_steps=None):
  """Sustained examples/sec of our run of `family`'s student in `mode`."""
  model = bench_util.STUDENTS[family]
  rate = bench_util.LEARNING_RATES[family]
  train_dir = tempfile.mkdtemp(dir=scratch)
  extra = []
  if mode != "alone":
    extra = bench_util.distill_flags(
        "%s_teacher" % family, "%s/%s_teacher" % (FLAGS.runs_dir, family),
        cache=("%s/%s_logits.npz" % (scratch, family)
               if mode == "cached" else None))
  if mode == "online_in_step":
    extra.append("--noteacher_in_input")
  if max_steps:
    extra.append("--max_steps=%d" % max_steps)
  bench_util.run_child(bench_util.train_command(
      "train" if mode == "alone" else "distill", model, train_dir, rate,
      epochs=FLAGS.epochs, extra=extra))
  result = None if max_steps else bench_util.run_rate(train_dir)
  shutil.rmtree(train_dir, ignore_errors=True)
  return result


def _peer(family, mode, scratch):
  """Sustained examples/sec of the peer's student or Distiller run."""
  out = os.path.join(scratch, "peer.json")
  phase = "student" if mode == "alone" else "distill"
  extra = []
  if phase == "distill":
    extra.append("--teacher_weights=%s/peer/%s_teacher.weights.h5" %
                 (FLAGS.runs_dir, family))
  bench_util.run_child(bench_util.peer_command(
      family, phase, out, epochs=FLAGS.epochs,
      learning_rate=bench_util.LEARNING_RATES[family], extra=extra))
  return bench_util.peer_rate(bench_util.read_json(out), phase)


def _rows(family, scratch):
  """One interleave row per family: its five kinds, ours first."""
  def side(who, mode):
    fn = _ours if who == "ours" else _peer
    return ("%s_%s" % (who, mode),
            lambda repeat: {"examples_per_sec": fn(family, mode, scratch)})
  return [(family, [side(who, mode) for who, mode in KINDS
                    if "%s_%s" % (who, mode) in FLAGS.kinds])]


def main(argv):
  del argv
  unknown = set(FLAGS.kinds) - set("%s_%s" % k for k in KINDS)
  if unknown:
    raise app.UsageError("unknown --kinds: %s" % ", ".join(sorted(unknown)))
  scratch = tempfile.mkdtemp(prefix="distill_speed_")
  results = {"repeats": FLAGS.repeats, "kinds": FLAGS.kinds,
             "load_average_before": os.getloadavg(), "families": {}}
  for family in FLAGS.families:
    if "ours_cached" in FLAGS.kinds:  # Fills the cache outside the timing.
      _ours(family, "cached", scratch, max_steps=1)
    samples, _ = bench_util.interleave(_rows(family, scratch), FLAGS.repeats)
    summary = {k: v["examples_per_sec"] for k, v in bench_util.aggregate(
        samples)[family].items()}
    summary["ratios"] = {
        name: bench_util.ratio_of_medians(summary[a], summary[b])
        for name, (a, b) in RATIOS.items() if a in summary and b in summary}
    results["families"][family] = summary
    print(summary["ratios"], flush=True)
    if FLAGS.output_json:
      fileio.write_json(FLAGS.output_json, results)
  shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
