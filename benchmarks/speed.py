r"""Issue 7's one speed benchmark: every path beside the Keras 3 peer.

One command, one run, one process tree, the same machine and data for every
row (`--what` picks the rows):

  matmul    the float32 [128, 784] x [784, 1200] ceiling in GFLOP/s, numpy
            and a TF session loop (distill_v1.evaluation.speed).
  input     the graph-mode input pipeline alone, examples/sec (one batch per
            sess.run, and an epoch drained in the graph), and its multiple of
            the fastest training loop of the run (target >= 10x).
  train     examples/sec of a scripts/train.py run of each --models model
            beside benchmarks/keras_peer.py's phase for it, and each
            loop's useful GFLOP/s (3 x forward FLOPs per example, as
            model_stats.flops_per_example counts them) as a fraction of the
            TF matmul ceiling.
  distill   online and cached distillation of each --families student from
            its teacher (scripts/distill.py, T=8, alpha=0.5) beside the
            peer's keras.io Distiller, examples/sec.
  latency   microseconds per call at batch 1 and 128 (median, p10, p90) of
            each trained model: our session on the train row's checkpoint, its
            frozen graph in a session, TFLite float32 and int8 (all from
            scripts/export.py), beside the peer's model(x, training=False),
            tf.function and TFLite files (float32, dynamic range, int8; made
            once, timed every repeat by the same code as ours). Needs the
            train rows' checkpoints, so it runs them too.

A training or distillation figure is the sustained examples/sec of the
epochs after the first of an --epochs run (default 3; the first includes
graph building and warm-up): their examples over their seconds, on both
sides (bench_util.sustained_rate). The peer's model.fit epochs alternate
fast and slow (docs/benchmarks.md), so a single epoch would catch one or the
other. Batch 128, plain SGD at the family's learning rate
(bench_util.LEARNING_RATES); mobilenet_v1 at width 0.5 on both sides
(bench_util.MODEL_OPTIONS). With --precisions=float32,bfloat16
the --bfloat16_rows also run with our --precision=bfloat16 beside the peer
under Keras' mixed_bfloat16 policy.

Every row runs --repeats times, INTERLEAVED: repeat r runs every row, ours
then the peer's, before repeat r+1 starts (the JSON's `order` lists it).
Medians, min/max and ratios of medians go to --output_json after every
repeat; benchmarks/speed_report.py turns the JSON into docs/benchmarks.md.
Every child's peak RSS (MB = 10**6 bytes) is its own ru_maxrss, from os.wait4
in a small launcher (bench_util.run_child), reported per binary.

Teachers: `--runs_dir/<family>_teacher` (ours) and
`--runs_dir/peer/<family>_teacher.weights.h5` (the peer's). Missing ones are
made in a scratch folder for speed only (ours 20 steps, the peer's 1 epoch;
throughput does not depend on the weights' values), and the JSON's
`teachers` says which.

Usage (from the checkout's root; about 40 minutes on 2 cores for all rows):
  python benchmarks/speed.py --output_json=docs/benchmarks/speed.json
  python benchmarks/speed_report.py     # writes docs/benchmarks.md
  # A quick look at one path:
  python benchmarks/speed.py --repeats=1 --what=latency --models=cnn_student \
      --output_json=/tmp/speed.json
"""

import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import bench_util
from distill_v1 import fileio
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
WHAT = ("matmul", "input", "train", "distill", "latency")
PRECISIONS = ("float32", "bfloat16")
MODES = ("online", "cached")
LATENCY_BATCHES = (1, 128)
# Our exports timed by the latency rows: runtime -> file of scripts/export.py.
OUR_FILES = (("frozen_graph", "frozen_graph.pb"),
             ("tflite_float32", "model_float32.tflite"),
             ("tflite_int8", "model_int8.tflite"))
PEER_TFLITE = ("float32", "dynamic_range", "int8")
SPEED_ONLY_TEACHER_STEPS = 20


def define_flags():
  """Defines the flags (only when run as a script: tests import the module)."""
  flags.DEFINE_list("what", list(WHAT), "Rows to measure: some of %s." %
                    ", ".join(WHAT))
  flags.DEFINE_list("models", sorted(bench_util.PEER_PHASES),
                    "Models of the train and latency rows.")
  flags.DEFINE_list("latency_models", None, "If set, only these of --models "
                    "get latency rows (e.g. a model new since the last "
                    "full run); default: all of --models.")
  flags.DEFINE_list("families", sorted(bench_util.STUDENTS),
                    "Families of the distill rows (teacher -> student).")
  flags.DEFINE_list("precisions", ["float32"], "float32, and bfloat16 to "
                    "add --bfloat16_rows run with our --precision=bfloat16 "
                    "beside the peer's --mixed_precision=bfloat16.")
  flags.DEFINE_list("bfloat16_rows", ["mlp_teacher", "cnn_teacher", "online"],
                    "Rows that also run in bfloat16 when --precisions has "
                    "it: model names (train rows), online and/or cached "
                    "(distill rows).")
  flags.DEFINE_integer("repeats", 5, "Interleaved repeats of every row.",
                       lower_bound=1)
  flags.DEFINE_integer(
      "train_examples", None, "If set, every run trains on the first N "
      "training examples of --dataset (IDX files written to the scratch "
      "folder, test split whole), so that 5 repeats of a slow model fit in "
      "a session; examples/sec does not depend on how many there are.",
      lower_bound=1)
  flags.DEFINE_integer("epochs", 3, "Epochs of every training and "
                       "distillation run; the figure is the sustained rate "
                       "of the epochs after the first.", lower_bound=2)
  flags.DEFINE_integer("latency_repeats", 200, "Timed calls per latency "
                       "figure (after 10 untimed ones).", lower_bound=1)
  flags.DEFINE_string("runs_dir", "/work/runs", "Where the teachers are "
                      "(module docstring).")
  flags.DEFINE_string("dataset", "fashion_mnist", "Data set of every run.")
  flags.DEFINE_string("data_dir", None, "Folder with the data set files.")
  flags.DEFINE_string("output_json", "docs/benchmarks/speed.json",
                      "Where the results go (rewritten after each repeat).")
  flags.register_validator(
      "latency_models", lambda v: v is None or set(v) <= set(
          bench_util.PEER_PHASES),
      message="--latency_models takes some of %s" % ", ".join(
          sorted(bench_util.PEER_PHASES)))
  choices = {"what": WHAT, "models": tuple(bench_util.PEER_PHASES),
             "families": tuple(bench_util.STUDENTS), "precisions": PRECISIONS}
  for name, allowed in choices.items():
    flags.register_validator(
        name, lambda v, allowed=allowed: bool(v) and set(v) <= set(allowed),
        message="--%s takes some of %s" % (name, ", ".join(allowed)))


def log(line):
  print(line, flush=True)


# ---------------------------------------------------------------------------
# The machine.


def _lscpu():
  """lscpu's `key: value` lines as a dict ({} without lscpu)."""
  try:
    text = subprocess.run(["lscpu"], capture_output=True, text=True,
                          check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    return {}
  return dict((k.strip(), v.strip()) for k, _, v in (
      line.partition(":") for line in text.splitlines()) if v)


def machine():
  """CPU model, logical CPUs, cores and bfloat16 units of this machine."""
  info = _lscpu()
  cpu_flags = set(info.get("Flags", "").split())
  cores = None
  if info.get("Core(s) per socket", "").isdigit() and info.get(
      "Socket(s)", "").isdigit():
    cores = int(info["Core(s) per socket"]) * int(info["Socket(s)"])
  return {"cpu": info.get("Model name", platform.processor()),
          "logical_cpus": os.cpu_count(), "cores": cores,
          "bfloat16_units": sorted(cpu_flags & {"avx512_bf16", "amx_bf16"}),
          "python": platform.python_version()}


# ---------------------------------------------------------------------------
# What every side of a run shares.


class Bench(object):
  """Scratch folder, data flags, children's RSS and the peer's outputs.

  Attributes:
    scratch: folder of every run's files (removed at the end).
    data_flags: --dataset/--data_dir for every child (ours and the peer's).
    rss: bench_util.PeakRss of every child.
    peer_outputs: (model, repeat) -> the peer's JSON of that train row,
      read by the latency row after it.
    peer_tflite: model -> {variant: path} of the peer's TFLite files.
    peer_tflite_info: model -> the peer's own TFLite figures (bytes,
      accuracy, batch-1 invoke us over the test split).
    export_bytes: model -> {runtime: bytes} of our exports.
    keras_version: of the peer.
  """

  def __init__(self, scratch, data_flags, latency_repeats):
    self.scratch = scratch
    self.data_flags = list(data_flags)
    self.latency_repeats = latency_repeats
    self.rss = bench_util.PeakRss(log)
    self.peer_outputs = {}
    self.peer_tflite = {}
    self.peer_tflite_info = {}
    self.export_bytes = {}
    self.keras_version = None

  def path(self, *parts):
    return os.path.join(self.scratch, *parts)

  def ours(self, label, binary, model, train_dir, precision, extra=()):
    """An --epochs run of scripts/<binary>.py; its sustained ex/s."""
    self.rss.run(label, bench_util.train_command(
        binary, model, train_dir, bench_util.learning_rate(model),
        epochs=FLAGS.epochs,
        extra=["--precision=" + precision] + bench_util.model_flags(model) +
        self.data_flags + list(extra)))
    return bench_util.run_rate(train_dir)

  def peer(self, label, model, phase, extra=(), epochs=None):
    """A keras_peer.py run of `model`'s family (--epochs runs); its JSON."""
    out = self.path("peer.json")
    self.rss.run(label, bench_util.peer_command(
        bench_util.PEER_PHASES[model][0], phase, out,
        epochs=epochs or FLAGS.epochs,
        learning_rate=bench_util.learning_rate(model),
        extra=bench_util.model_flags(model) + self.data_flags + list(extra)))
    result = bench_util.read_json(out)
    self.keras_version = result.get("keras_version")
    return result


def _suffix(precision):
  return "" if precision == "float32" else " " + precision


def _peer_precision_flags(precision):
  return [] if precision == "float32" else ["--mixed_precision=" + precision]


# ---------------------------------------------------------------------------
# Rows: each is (name, [(side, fn(repeat) -> nested dict of numbers)]).


def matmul_row():
  """The machine's ceiling, numpy then TF: {"gflops": median GFLOP/s}."""
  from distill_v1.evaluation import speed  # pylint: disable=g-import-not-at-top

  def side(backend):
    def run(repeat):
      del repeat
      result = speed.matmul_gflops(backend)
      return {"gflops": result["gflops"],
              "max_abs_error": result["max_abs_error"]}
    return backend, run

  return "matmul", [side("numpy"), side("tensorflow")]


def input_row(splits):
  """The input pipeline alone: examples/sec per sess.run and in the graph."""
  from distill_v1.evaluation import speed  # pylint: disable=g-import-not-at-top

  def run(repeat):
    del repeat
    result = speed.input_examples_per_sec(splits.train_images,
                                          splits.train_labels)
    return {k: result[k] for k in ("examples_per_sec",
                                   "examples_per_sec_in_graph")}

  return "input", [("pipeline", run)]


def train_dir_of(bench, model, precision, repeat):
  return bench.path("train_%s_%s_%d" % (model, precision, repeat))


def train_row(bench, model, precision, flops, keep_for_latency):
  """Our scripts/train.py and the peer's phase for `model`: ex/s, GFLOP/s.

  With keep_for_latency, our checkpoint stays for the latency row and the
  peer also times inference (and, in repeat 0, converts to TFLite).
  """
  _, phase = bench_util.PEER_PHASES[model]
  name = "train/%s%s" % (model, "" if precision == "float32" else
                         "/" + precision)

  def figures(rate):
    return {"examples_per_sec": rate, "gflops": 3.0 * flops * rate / 1e9}

  def ours(repeat):
    train_dir = train_dir_of(bench, model, precision, repeat)
    rate = bench.ours("train.py %s%s" % (model, _suffix(precision)), "train",
                      model, train_dir, precision)
    if not keep_for_latency:
      shutil.rmtree(train_dir, ignore_errors=True)
    return figures(rate)

  def peer(repeat):
    extra = _peer_precision_flags(precision)
    if keep_for_latency:
      extra += ["--inference", "--latency_repeats=%d" % bench.latency_repeats]
      if repeat == 0:
        extra += ["--tflite", "--tflite_dir=" + bench.path("peer_tflite")]
    result = bench.peer("keras_peer.py %s%s" % (model, _suffix(precision)),
                        model, phase, extra)
    if keep_for_latency:
      bench.peer_outputs[(model, repeat)] = result
    return figures(bench_util.peer_rate(result, phase))

  return name, [("ours", ours), ("peer", peer)]


def _us(stats_ms):
  """{median_us, p10_us, p90_us} from a {median_ms, p10_ms, p90_ms} dict."""
  return {k.replace("_ms", "_us"): 1e3 * stats_ms[k]
          for k in ("median_ms", "p10_ms", "p90_ms")}


def _batch_key(batch):
  return "batch_%d" % batch


def time_exported(path, repeats):
  """{batch_<b>: {median_us, p10_us, p90_us}} of an exported file's calls.

  The file runs in its real runtime (verify_runner: a session for a frozen
  graph, the TFLite interpreter for .tflite); a call is feed, run and fetch
  of random images in [0, 1], as our session's and the peer's figures.
  """
  # pylint: disable=g-import-not-at-top
  from distill_v1.evaluation import latency
  from distill_v1.evaluation import verify_runner
  # pylint: enable=g-import-not-at-top
  model = verify_runner.load_exported_model(path)
  try:
    images = latency.random_images(model.image_shape, max(LATENCY_BATCHES))
    return {_batch_key(b): _us(model.latency(images, repeats=repeats,
                                             batch_size=b))
            for b in LATENCY_BATCHES}
  finally:
    model.close()


def time_session(model, train_dir, repeats):
  """{batch_<b>: {median_us, ...}} of our session on the restored checkpoint."""
  # pylint: disable=g-import-not-at-top
  from distill_v1 import checkpoints
  from distill_v1.evaluation import latency
  from distill_v1.models import nets_factory
  # pylint: enable=g-import-not-at-top
  spec = checkpoints.read_model_spec(train_dir)
  stats = latency.latency_stats(
      nets_factory.get_network_fn(model, **spec["model_options"]),
      checkpoints.resolve_checkpoint(train_dir), spec["image_shape"],
      spec["num_classes"], batch_sizes=LATENCY_BATCHES, repeats=repeats,
      scope=model)
  return {key: _us(value) for key, value in stats.items()}


def _by_batch(per_runtime):
  """{runtime: {batch: x}} -> {batch: {runtime: x}}."""
  out = {}
  for runtime, batches in per_runtime.items():
    for batch, value in batches.items():
      out.setdefault(batch, {})[runtime] = value
  return out


def latency_row(bench, model):
  """Latency of `model` trained by this repeat's train row, ours and peer's."""

  def ours(repeat):
    train_dir = train_dir_of(bench, model, "float32", repeat)
    export_dir = bench.path("export_%s_%d" % (model, repeat))
    # --noverify: the files are only timed here, and a 2-epoch (or tiny
    # test) model can miss the int8 agreement tolerance of verification.
    bench.rss.run("export.py %s" % model, [
        sys.executable, "scripts/export.py", "--checkpoint=" + train_dir,
        "--output_dir=" + export_dir, "--formats=frozen_graph,float32,int8",
        "--noverify"] + bench.data_flags)
    per_runtime = {"session": time_session(model, train_dir,
                                           bench.latency_repeats)}
    for runtime, filename in OUR_FILES:
      path = os.path.join(export_dir, filename)
      per_runtime[runtime] = time_exported(path, bench.latency_repeats)
      bench.export_bytes.setdefault(model, {})[runtime] = os.path.getsize(
          path)
    shutil.rmtree(train_dir, ignore_errors=True)
    shutil.rmtree(export_dir, ignore_errors=True)
    return _by_batch(per_runtime)

  def peer(repeat):
    result = bench.peer_outputs.pop((model, repeat))
    if repeat == 0:
      info = result["tflite"][model]
      bench.peer_tflite[model] = {v: info[v]["path"] for v in PEER_TFLITE}
      bench.peer_tflite_info[model] = {
          v: {k: x for k, x in info[v].items() if k != "path"}
          for v in PEER_TFLITE}
    per_runtime = {}
    for call in ("keras_call", "tf_function"):
      per_runtime[call] = {
          _batch_key(b): {
              "median_us": result["inference"][model][_batch_key(b)][
                  call + "_us"],
              "p10_us": result["inference"][model][_batch_key(b)][
                  call + "_p10_us"],
              "p90_us": result["inference"][model][_batch_key(b)][
                  call + "_p90_us"]} for b in LATENCY_BATCHES}
    for variant, path in sorted(bench.peer_tflite[model].items()):
      per_runtime["tflite_" + variant] = time_exported(path,
                                                       bench.latency_repeats)
    return _by_batch(per_runtime)

  return "latency/" + model, [("ours", ours), ("peer", peer)]


def distill_row(bench, family, teacher, precision, modes):
  """Our online/cached distillation and the peer's Distiller: ex/s."""
  student = bench_util.STUDENTS[family]
  name = "distill/%s%s" % (family, "" if precision == "float32" else
                           "/" + precision)

  def ours(mode):
    def run(repeat):
      train_dir = bench.path("distill_%s_%s_%s_%d" % (family, mode,
                                                      precision, repeat))
      cache = bench.path(family + "_logits.npz") if mode == "cached" else None
      rate = bench.ours(
          "distill.py %s %s%s" % (family, mode, _suffix(precision)),
          "distill", student, train_dir, precision,
          bench_util.distill_flags(family + "_teacher", teacher["ours"],
                                   cache=cache))
      shutil.rmtree(train_dir, ignore_errors=True)
      return {"examples_per_sec": rate}
    return "ours_" + mode, run

  def peer(repeat):
    del repeat
    result = bench.peer(
        "keras_peer.py %s distill%s" % (family, _suffix(precision)), student,
        "distill", ["--teacher_weights=" + teacher["peer"]] +
        _peer_precision_flags(precision))
    return {"examples_per_sec": bench_util.peer_rate(result, "distill")}

  return name, [ours(mode) for mode in modes] + [("peer", peer)]


def rows_to_run(bench, splits, teachers, flops):
  """The rows of --what, in the order every repeat runs them."""
  what, bf16 = set(FLAGS.what), "bfloat16" in FLAGS.precisions
  rows = []
  if "matmul" in what:
    rows.append(matmul_row())
  if "input" in what:
    rows.append(input_row(splits))
  if what & {"train", "latency"}:
    for model in FLAGS.models:
      timed = "latency" in what and (FLAGS.latency_models is None or
                                     model in FLAGS.latency_models)
      rows.append(train_row(bench, model, "float32", flops[model],
                            keep_for_latency=timed))
      if timed:
        rows.append(latency_row(bench, model))
      if bf16 and model in FLAGS.bfloat16_rows:
        rows.append(train_row(bench, model, "bfloat16", flops[model], False))
  if "distill" in what:
    for family in FLAGS.families:
      rows.append(distill_row(bench, family, teachers[family], "float32",
                              MODES))
      modes = [m for m in MODES if m in FLAGS.bfloat16_rows]
      if bf16 and modes:
        rows.append(distill_row(bench, family, teachers[family], "bfloat16",
                                modes))
  return rows


# ---------------------------------------------------------------------------
# Before the repeats: teachers and caches.


def find_or_make_teachers(bench):
  """{family: {ours, peer, ours_made_for_speed_only, peer_made_...}}."""
  out = {}
  for family in FLAGS.families:
    teacher = family + "_teacher"
    entry = {"ours": os.path.join(FLAGS.runs_dir, teacher),
             "peer": os.path.join(FLAGS.runs_dir, "peer",
                                  teacher + ".weights.h5"),
             "ours_made_for_speed_only": False,
             "peer_made_for_speed_only": False}
    if not os.path.exists(os.path.join(entry["ours"], "checkpoint")):
      entry.update(ours=bench.path(teacher), ours_made_for_speed_only=True)
      bench.rss.run("train.py %s (speed-only teacher)" % teacher,
                    bench_util.train_command(
                        "train", teacher, entry["ours"],
                        bench_util.learning_rate(teacher),
                        extra=["--max_steps=%d" % SPEED_ONLY_TEACHER_STEPS] +
                        bench.data_flags))
    if not os.path.isfile(entry["peer"]):
      entry.update(peer=bench.path("peer_%s.weights.h5" % teacher),
                   peer_made_for_speed_only=True)
      bench.peer("keras_peer.py %s (speed-only teacher)" % teacher, teacher,
                 "teacher", ["--save_teacher_weights=" + entry["peer"]],
                 epochs=1)
    out[family] = entry
  return out


def fill_logits_caches(bench, teachers):
  """Computes each family's teacher logits cache outside the timing."""
  for family in FLAGS.families:
    train_dir = bench.path("fill_" + family)
    bench.rss.run("distill.py %s cache fill" % family, bench_util.train_command(
        "distill", bench_util.STUDENTS[family], train_dir,
        bench_util.LEARNING_RATES[family],
        extra=bench_util.distill_flags(
            family + "_teacher", teachers[family]["ours"],
            cache=bench.path(family + "_logits.npz")) + ["--max_steps=1"] +
        bench.data_flags))
    shutil.rmtree(train_dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# After each repeat: medians and what follows from them.


def ratios(rows):
  """Ratios of medians of the summarized rows (ours / peer; speed-ups).

  Returns:
    {row: {"<a>/<b>": ratio}}. Throughput rows: ours / peer examples/sec
    (and a bfloat16 row also over the float32 peer). Latency rows: "speed-up"
    <batch>/<peer runtime>/<our runtime> = peer median / our median.
  """
  out = {}
  rate = lambda row, side: rows[row][side]["examples_per_sec"]
  for row, sides in rows.items():
    kind = row.split("/")[0]
    if kind in ("train", "distill") and "peer" in sides:
      out[row] = {"%s/peer" % side: bench_util.ratio_of_medians(
          rate(row, side), rate(row, "peer")) for side in sides
                  if side != "peer"}
      base = "/".join(row.split("/")[:2])
      if base != row and base in rows:
        out[row].update({"%s/peer_float32" % side: bench_util.ratio_of_medians(
            rate(row, side), rate(base, "peer")) for side in sides
                         if side != "peer"})
    elif kind == "latency" and {"ours", "peer"} <= set(sides):
      out[row] = {}
      for batch in LATENCY_BATCHES:
        key = _batch_key(batch)
        for peer_rt, our_rt in (("keras_call", "frozen_graph"),
                                ("keras_call", "session"),
                                ("tf_function", "frozen_graph"),
                                ("tflite_float32", "tflite_float32"),
                                ("tflite_int8", "tflite_int8")):
          peer = sides["peer"].get("%s/%s/median_us" % (key, peer_rt))
          ours = sides["ours"].get("%s/%s/median_us" % (key, our_rt))
          if peer and ours:
            out[row]["%s/%s/%s" % (key, peer_rt, our_rt)] = (
                bench_util.ratio_of_medians(peer, ours))
  return out


def ceiling_fractions(rows):
  """{train row: {side: median GFLOP/s / median TF matmul GFLOP/s}}."""
  if "matmul" not in rows:
    return {}
  ceiling = rows["matmul"]["tensorflow"]["gflops"]["median"]
  return {row: {side: v["gflops"]["median"] / ceiling
                for side, v in sides.items()}
          for row, sides in rows.items() if row.startswith("train/")}


def input_multiples(rows):
  """The input pipeline's examples/sec over the fastest training loop's."""
  loops = [(v["examples_per_sec"]["median"], row, side)
           for row, sides in rows.items()
           if row.startswith(("train/", "distill/"))
           for side, v in sides.items()]
  if "input" not in rows or not loops:
    return {}
  fastest, row, side = max(loops)
  pipeline = rows["input"]["pipeline"]
  return {"fastest_loop": {"row": row, "side": side,
                           "examples_per_sec": fastest},
          "examples_per_sec": pipeline["examples_per_sec"]["median"] /
                              fastest,
          "examples_per_sec_in_graph":
              pipeline["examples_per_sec_in_graph"]["median"] / fastest}


def summarize_run(samples, order, repeats_done, bench):
  """The JSON's measured part, from interleave's samples so far."""
  rows = bench_util.aggregate(samples)
  return {
      "repeats_done": repeats_done, "order": order, "rows": rows,
      "ratios": ratios(rows), "fraction_of_matmul_ceiling":
          ceiling_fractions(rows), "input_multiple_of_fastest_loop":
              input_multiples(rows),
      "peak_rss_mb": bench.rss.summary(),
      "peak_rss_mb_per_binary": bench.rss.per_binary(),
      "benchmark_process_peak_rss_mb": resource.getrusage(
          resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
      "export_bytes": bench.export_bytes,
      "peer_tflite": bench.peer_tflite_info,
      "keras_version": bench.keras_version,
      "load_average_after": list(os.getloadavg()),
  }


def write_training_subset(splits, num_examples, folder):
  """IDX files of the first `num_examples` training examples of `splits`.

  Args:
    splits: a DataSplits with float32 images [N, H, W, 1] in [0, 1] that are
      uint8 / 255 (as every IDX data set is loaded).
    num_examples: training examples to keep (the test split is kept whole).
    folder: created; gets the four gzip IDX files a --data_dir holds.

  Returns:
    folder.
  """
  # pylint: disable=g-import-not-at-top
  import numpy as np
  from distill_v1.data import idx
  # pylint: enable=g-import-not-at-top
  os.makedirs(folder)
  for prefix, images, labels in (
      ("train", splits.train_images[:num_examples],
       splits.train_labels[:num_examples]),
      ("t10k", splits.test_images, splits.test_labels)):
    idx.write_idx(os.path.join(folder, prefix + "-images-idx3-ubyte.gz"),
                  np.round(images[..., 0] * 255.0).astype(np.uint8))
    idx.write_idx(os.path.join(folder, prefix + "-labels-idx1-ubyte.gz"),
                  labels.astype(np.uint8))
  return folder


def _header():
  """What the run is: command, machine, versions, flags, load before."""
  from distill_v1.compat import tf  # pylint: disable=g-import-not-at-top
  return {
      "command": bench_util.quote(
          ["python", os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] +
          sys.argv[1:]),
      "python_executable": sys.executable,
      "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
      "machine": machine(), "tensorflow_version": tf.__version__,
      "load_average_before": list(os.getloadavg()),
      "repeats": FLAGS.repeats, "epochs": FLAGS.epochs,
      "train_examples": FLAGS.train_examples, "what": FLAGS.what,
      "models": FLAGS.models, "latency_models": FLAGS.latency_models,
      "model_options": bench_util.MODEL_OPTIONS,
      "families": FLAGS.families, "precisions": FLAGS.precisions,
      "bfloat16_rows": FLAGS.bfloat16_rows,
      "latency_repeats": FLAGS.latency_repeats,
      "latency_batches": list(LATENCY_BATCHES),
      "dataset": FLAGS.dataset, "data_dir": FLAGS.data_dir,
      "temperature": bench_util.TEMPERATURE, "alpha": bench_util.ALPHA,
  }


def _flops(models, splits):
  """{model: forward FLOPs per example} (2 per multiply-add)."""
  # pylint: disable=g-import-not-at-top
  from distill_v1.evaluation import model_stats
  from distill_v1.models import nets_factory
  # pylint: enable=g-import-not-at-top
  return {m: model_stats.flops_per_example(
      lambda images, num_classes, is_training, m=m:
      nets_factory.get_network_fn(m, **bench_util.MODEL_OPTIONS.get(m, {}))(
          images, num_classes, is_training=is_training, scope=m),
      splits.image_shape, splits.num_classes) for m in models}


def main(argv):
  del argv
  from distill_v1.data import datasets  # pylint: disable=g-import-not-at-top
  results = _header()
  data_flags = ["--dataset=" + FLAGS.dataset] + (
      ["--data_dir=" + FLAGS.data_dir] if FLAGS.data_dir else [])
  scratch = tempfile.mkdtemp(prefix="distill_v1_speed_")
  start = time.perf_counter()
  try:
    bench = Bench(scratch, data_flags, FLAGS.latency_repeats)
    splits = datasets.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir)
    if FLAGS.train_examples:
      subset_dir = write_training_subset(splits, FLAGS.train_examples,
                                         bench.path("data"))
      bench.data_flags = ["--dataset=" + FLAGS.dataset,
                          "--data_dir=" + subset_dir]
      splits = splits._replace(
          train_images=splits.train_images[:FLAGS.train_examples],
          train_labels=splits.train_labels[:FLAGS.train_examples])
    results["flops_per_example"] = _flops(FLAGS.models, splits)
    teachers = {}
    if "distill" in FLAGS.what:
      teachers = find_or_make_teachers(bench)
      fill_logits_caches(bench, teachers)
    results["teachers"] = teachers

    def save(repeat, samples, order):
      results.update(summarize_run(samples, order, repeat + 1, bench))
      results["seconds"] = time.perf_counter() - start
      fileio.write_json(FLAGS.output_json, results)
      log("wrote %s after repeat %d" % (FLAGS.output_json, repeat + 1))

    bench_util.interleave(rows_to_run(bench, splits, teachers,
                                      results["flops_per_example"]),
                          FLAGS.repeats, log=log, after_repeat=save)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
  define_flags()
  app.run(main)
