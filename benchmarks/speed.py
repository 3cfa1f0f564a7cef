r"""Every training, distillation and inference path beside the Keras 3 peer.

One command, one run, the same machine and data for every row:

  matmul    the float32 [128, 784] x [784, 1200] ceiling, numpy and TF.
  input     the graph-mode input pipeline alone (one batch per sess.run, and
            an epoch drained in the graph), as a multiple of the fastest
            training loop of the run.
  train     examples/sec of training each model with scripts/train.py
            beside benchmarks/keras_peer.py's phase for it, and the loop's
            useful GFLOP/s (3 x forward FLOPs per example) as a fraction of
            the TF matmul ceiling.
  distill   online and cached distillation (scripts/distill.py, T=8,
            alpha=0.5) beside the peer's Distiller, per family.
  latency   batch-1 and batch-128 inference of each trained model: our
            session on the checkpoint, the frozen graph in a session, TFLite
            float32 and int8, beside the peer's `model(x, training=False)`
            and tf.function (and its TFLite files, first repeat only).

Each row runs `--repeats` times, interleaved: repeat r runs every row, ours
then the peer's, before repeat r+1 starts. A training or distillation figure
is the second epoch's examples/sec of a 2-epoch run (the first includes graph
building and warm-up). Every child's peak RSS comes from os.wait4 in a small launcher process
(see run_child). Medians,
ranges and ratios of medians go to --output_json; benchmarks/speed_report.py
turns that into docs/benchmarks.md.

Teachers: `--runs_dir/<family>_teacher` (ours) and
`--runs_dir/peer/<family>_teacher.weights.h5` (the peer's); missing ones are
made for speed only (20 steps, 1 epoch), since throughput does not depend on
the weights' values, and the JSON says so.

Usage:
  python benchmarks/speed.py --output_json=docs/benchmarks/speed.json
  python benchmarks/speed_report.py    # docs/benchmarks.md
"""

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from distill_v1 import fileio
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
WHAT = ("matmul", "input", "train", "distill", "latency")


def define_flags():
  """Defines the flags (only when run as a script)."""
  flags.DEFINE_list("what", list(WHAT), "Measurements: %s." % ", ".join(WHAT))
  flags.DEFINE_list("models", ["mlp_teacher", "mlp_student", "cnn_teacher",
                               "cnn_student"], "Models of train and latency.")
  flags.DEFINE_list("families", ["mlp", "cnn"], "Families of distill.")
  flags.DEFINE_list("precisions", ["float32"], "Our precisions (float32, "
                    "bfloat16); the peer always runs float32.")
  flags.DEFINE_list("bfloat16_rows", ["mlp_teacher", "cnn_teacher", "online"],
                    "Which rows also run in bfloat16 when --precisions has it: "
                    "model names, and `online` for online distillation.")
  flags.DEFINE_bool("peer_bfloat16", True, "Beside each bfloat16 row, also "
                    "run the peer under Keras' mixed_bfloat16 policy.")
  flags.DEFINE_integer("repeats", 5, "Interleaved repeats.", lower_bound=1)
  flags.DEFINE_integer("latency_repeats", 200, "Timed calls per latency.",
                       lower_bound=1)
  flags.DEFINE_string("runs_dir", "/work/runs", "Where the teachers are.")
  flags.DEFINE_string("dataset", "fashion_mnist", "Data set of every run.")
  flags.DEFINE_string("data_dir", None, "Folder with the data set files.")
  flags.DEFINE_string("output_json", None, "Where the results go.")


# model -> (family, keras_peer phase); students' learning rates of
# BENCHMARK.md, used for every training row (speed does not depend on them).
PEER_PHASES = {"mlp_teacher": ("mlp", "teacher"),
               "mlp_student": ("mlp", "student"),
               "cnn_teacher": ("cnn", "teacher"),
               "cnn_student": ("cnn", "student")}
LEARNING_RATES = {"mlp": 0.1, "cnn": 0.05}
STUDENTS = {"mlp": "mlp_student", "cnn": "cnn_student"}
TEMPERATURE, ALPHA = 8.0, 0.5


def summarize(values):
  """{median, min, max, values} of a list of numbers."""
  values = [float(v) for v in values]
  return {"median": float(np.median(values)), "min": min(values),
          "max": max(values), "values": values}


# Started by run_child: forks `argv[2:]`, waits, and writes the child's
# ru_maxrss (kilobytes) to the file argv[1]. On Linux a child's ru_maxrss
# includes the memory of the process it was forked from (the kernel keeps
# the old address space's high-water mark at exec), so the real child is
# forked from this small fresh interpreter, not from the benchmark process
# that holds TensorFlow and the data.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
  f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(command):
  """Runs `command` in ROOT; returns its peak RSS in MB.

  Raises:
    RuntimeError: the child failed (its stderr's last lines included).
  """
  print("$ " + " ".join(shlex.quote(c) for c in command), flush=True)
  with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile(
      "r", suffix=".maxrss") as maxrss:
    code = subprocess.call([sys.executable, "-c", _LAUNCHER, maxrss.name] +
                           list(command), cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=err)
    if code != 0:
      err.seek(0)
      tail = err.read().decode("utf-8", "replace").strip().splitlines()[-5:]
      raise RuntimeError("%s exited %d:\n%s" % (command[1], code,
                                                 "\n".join(tail)))
    return int(maxrss.read()) / 1024.0  # Linux reports kilobytes.


def _data_flags():
  out = ["--dataset=" + FLAGS.dataset]
  if FLAGS.data_dir:
    out.append("--data_dir=" + FLAGS.data_dir)
  return out


def _second_epoch_rate(train_dir):
  with open(os.path.join(train_dir, "metrics.json")) as f:
    history = json.load(f)["history"]
  return history[-1]["examples_per_sec"]


def ours_train(model, train_dir, precision="float32", teacher=None,
               cache=None, max_steps=None):
  """Trains (or distills into) `model` for 2 epochs; (examples/sec, RSS MB).

  With max_steps (e.g. to fill a logits cache) the rate is None.
  """
  family = model.split("_")[0]
  command = [sys.executable, "scripts/%s.py" % (
      "distill" if teacher else "train"), "--model=" + model,
             "--train_dir=" + train_dir, "--epochs=2",
             "--learning_rate=%g" % LEARNING_RATES[family],
             "--log_every_steps=100000", "--save_every_steps=0",
             "--precision=" + precision] + _data_flags()
  if teacher:
    command += ["--teacher_model=" + teacher[0],
                "--teacher_checkpoint=" + teacher[1],
                "--temperature=%g" % TEMPERATURE, "--alpha=%g" % ALPHA]
  if cache:
    command.append("--teacher_logits_cache=" + cache)
  if max_steps:
    command.append("--max_steps=%d" % max_steps)
  rss = run_child(command)
  return None if max_steps else _second_epoch_rate(train_dir), rss


def peer_run(family, phase, out, teacher_weights=None, inference=False,
             tflite=False, epochs=2, save_teacher=None, bfloat16=False):
  """Runs keras_peer.py; (its JSON, peak RSS MB)."""
  command = [sys.executable, "benchmarks/keras_peer.py", "--family=" + family,
             "--phase=" + phase, "--epochs=%d" % epochs, "--optimizer=sgd",
             "--learning_rate=%g" % LEARNING_RATES[family],
             "--temperature=%g" % TEMPERATURE, "--alpha=%g" % ALPHA,
             "--output_json=" + out,
             "--latency_repeats=%d" % FLAGS.latency_repeats]
  if teacher_weights:
    command.append("--teacher_weights=" + teacher_weights)
  if save_teacher:
    command.append("--save_teacher_weights=" + save_teacher)
  if bfloat16:
    command.append("--mixed_precision=bfloat16")
  if inference:
    command.append("--inference")
  if tflite:
    command.append("--tflite")
  rss = run_child(command)
  with open(out) as f:
    return json.load(f), rss


def teachers(scratch):
  """{family: (our checkpoint dir, peer weights, made_for_speed_only)}."""
  out = {}
  for family in FLAGS.families:
    ours = os.path.join(FLAGS.runs_dir, "%s_teacher" % family)
    peer = os.path.join(FLAGS.runs_dir, "peer",
                        "%s_teacher.weights.h5" % family)
    made = False
    if not os.path.exists(os.path.join(ours, "checkpoint")):
      ours = os.path.join(scratch, "%s_teacher" % family)
      run_child([sys.executable, "scripts/train.py",
                 "--model=%s_teacher" % family, "--train_dir=" + ours,
                 "--max_steps=20"] + _data_flags())
      made = True
    if not os.path.isfile(peer):
      peer = os.path.join(scratch, "peer_%s_teacher.weights.h5" % family)
      peer_run(family, "teacher", os.path.join(scratch, "t.json"), epochs=1,
               save_teacher=peer)
      made = True
    out[family] = (ours, peer, made)
  return out


def _time_tflite(path, batch_size, repeats):
  """Median and p10/p90 microseconds of one TFLite invoke at a batch size."""
  # pylint: disable=g-import-not-at-top
  from distill_v1.evaluation import latency
  from distill_v1.export import tflite
  # pylint: enable=g-import-not-at-top
  interpreter, _ = tflite.make_interpreter(model_path=path)
  detail = interpreter.get_input_details()[0]
  shape = [batch_size] + list(detail["shape"][1:])
  interpreter.resize_tensor_input(detail["index"], shape)
  interpreter.allocate_tensors()
  detail = interpreter.get_input_details()[0]
  images = latency.random_images(shape[1:], batch_size)
  if detail["dtype"] == np.int8:
    scale, zero = detail["quantization"]
    images = np.clip(np.round(images / scale + zero), -128, 127).astype(
        np.int8)
  times = []
  for i in range(repeats + 10):
    interpreter.set_tensor(detail["index"], images)
    start = time.perf_counter()
    interpreter.invoke()
    if i >= 10:
      times.append((time.perf_counter() - start) * 1e6)
  return _percentiles(times)


def _percentiles(times_us):
  return {"median_us": float(np.median(times_us)),
          "p10_us": float(np.percentile(times_us, 10)),
          "p90_us": float(np.percentile(times_us, 90))}


def _time_frozen(path, batch_size, repeats):
  """Median and p10/p90 microseconds of sess.run on a frozen graph."""
  # pylint: disable=g-import-not-at-top
  from distill_v1.compat import tf
  from distill_v1.evaluation import latency
  # pylint: enable=g-import-not-at-top
  graph_def = tf.compat.v1.GraphDef()
  with open(path, "rb") as f:
    graph_def.ParseFromString(f.read())
  with tf.Graph().as_default() as graph:
    tf.compat.v1.import_graph_def(graph_def, name="")
    images = graph.get_tensor_by_name("images:0")
    logits = graph.get_tensor_by_name("logits:0")
    with tf.compat.v1.Session(graph=graph) as sess:
      result = latency.measure_latency(sess, logits, images, batch_size,
                                       repeats=repeats)
  return {"median_us": 1e3 * result["median_ms"],
          "p10_us": 1e3 * result["p10_ms"], "p90_us": 1e3 * result["p90_ms"]}


def ours_latency(model, train_dir, scratch):
  """Our latencies of a trained model; (dict, export binary's RSS MB)."""
  # pylint: disable=g-import-not-at-top
  from distill_v1 import checkpoints
  from distill_v1.evaluation import latency
  from distill_v1.models import nets_factory
  # pylint: enable=g-import-not-at-top
  export_dir = os.path.join(scratch, "export_" + model)
  shutil.rmtree(export_dir, ignore_errors=True)
  rss = run_child([sys.executable, "scripts/export.py",
                   "--checkpoint=" + train_dir, "--output_dir=" + export_dir,
                   "--formats=frozen_graph,float32,int8"] + _data_flags())
  spec = checkpoints.read_model_spec(train_dir)
  out = {}
  for batch in (1, 128):
    key = "batch_%d" % batch
    session = latency.latency_ms(
        nets_factory.get_network_fn(model),
        checkpoints.resolve_checkpoint(train_dir), spec["image_shape"],
        spec["num_classes"], batch_sizes=(batch,),
        repeats=FLAGS.latency_repeats, scope=model)
    out[key] = {
        "session_us": 1e3 * session[key],
        "frozen_graph": _time_frozen(os.path.join(
            export_dir, "frozen_graph.pb"), batch, FLAGS.latency_repeats),
        "tflite_float32": _time_tflite(os.path.join(
            export_dir, "model_float32.tflite"), batch,
                                       FLAGS.latency_repeats),
        "tflite_int8": _time_tflite(os.path.join(
            export_dir, "model_int8.tflite"), batch, FLAGS.latency_repeats),
    }
  return out, rss


def _machine():
  model = ""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          model = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return {"cpu": model, "cores": os.cpu_count(),
          "python": platform.python_version()}


def _add(samples, key, value):
  samples.setdefault(key, []).append(value)


def main(argv):
  del argv
  # pylint: disable=g-import-not-at-top
  from distill_v1.compat import tf
  from distill_v1.data import datasets
  from distill_v1.evaluation import model_stats
  from distill_v1.evaluation import speed
  from distill_v1.models import nets_factory
  # pylint: enable=g-import-not-at-top
  scratch = tempfile.mkdtemp(prefix="distill_v1_speed_")
  results = {"command": " ".join([os.path.basename(sys.argv[0])] +
                                 sys.argv[1:]),
             "machine": _machine(), "tensorflow_version": tf.__version__,
             "load_average_before": list(os.getloadavg()),
             "repeats": FLAGS.repeats, "what": FLAGS.what}
  if "matmul" in FLAGS.what:
    for backend in ("numpy", "tensorflow"):
      results["matmul_" + backend] = speed.matmul_gflops(backend)
      print("matmul %s: %.1f GFLOP/s" % (
          backend, results["matmul_" + backend]["gflops"]), flush=True)
  splits = datasets.load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir)
  if "input" in FLAGS.what:
    results["input"] = speed.input_examples_per_sec(splits.train_images,
                                                    splits.train_labels)
  teacher_of = {}
  if "distill" in FLAGS.what:
    teacher_of = teachers(scratch)
    results["teachers_made_for_speed_only"] = sorted(
        f for f, t in teacher_of.items() if t[2])
    for family in FLAGS.families:  # Fills the caches outside the timing.
      ours_train(STUDENTS[family], os.path.join(scratch, "fill_" + family),
                 teacher=("%s_teacher" % family, teacher_of[family][0]),
                 cache=os.path.join(scratch, family + "_logits.npz"),
                 max_steps=1)
  samples, rss = {}, {}
  latency_rows = {}
  for repeat in range(FLAGS.repeats):
    print("--- repeat %d of %d" % (repeat + 1, FLAGS.repeats), flush=True)
    if "train" in FLAGS.what or "latency" in FLAGS.what:
      for model in FLAGS.models:
        family, phase = PEER_PHASES[model]
        train_dir = os.path.join(scratch, "train_%s_%d" % (model, repeat))
        rate, mb = ours_train(model, train_dir)
        _add(samples, "train/%s/ours" % model, rate)
        _add(rss, "train.py %s" % model, mb)
        if "bfloat16" in FLAGS.precisions and model in FLAGS.bfloat16_rows:
          rate16, _ = ours_train(model, train_dir + "_bf16", "bfloat16")
          _add(samples, "train/%s/ours_bfloat16" % model, rate16)
          if FLAGS.peer_bfloat16:
            peer16, _ = peer_run(family, phase,
                                 os.path.join(scratch, "p16.json"),
                                 bfloat16=True)
            _add(samples, "train/%s/peer_bfloat16" % model,
                 peer16["phases"][phase]["examples_per_sec"][-1])
        want_latency = "latency" in FLAGS.what
        peer, mb = peer_run(family, phase, os.path.join(scratch, "p.json"),
                            inference=want_latency,
                            tflite=want_latency and repeat == 0)
        _add(samples, "train/%s/peer" % model,
             peer["phases"][phase]["examples_per_sec"][-1])
        _add(rss, "keras_peer.py %s" % model, mb)
        if want_latency:
          ours, mb = ours_latency(model, train_dir, scratch)
          _add(rss, "export.py %s" % model, mb)
          peer_model = [k for k in peer["inference"]][0]
          row = latency_rows.setdefault(model, {"repeats": []})
          row["repeats"].append({"ours": ours,
                                 "peer": peer["inference"][peer_model]})
          if peer.get("tflite"):
            row["peer_tflite"] = peer["tflite"][peer_model]
        shutil.rmtree(train_dir + "_bf16", ignore_errors=True)
    if "distill" in FLAGS.what:
      for family in FLAGS.families:
        student = STUDENTS[family]
        teacher = ("%s_teacher" % family, teacher_of[family][0])
        base = os.path.join(scratch, "distill_%s_%d" % (family, repeat))
        rate, mb = ours_train(student, base + "_online", teacher=teacher)
        _add(samples, "distill/%s/ours_online" % family, rate)
        _add(rss, "distill.py %s online" % family, mb)
        if "bfloat16" in FLAGS.precisions and "online" in FLAGS.bfloat16_rows:
          rate, _ = ours_train(student, base + "_online16", "bfloat16",
                               teacher=teacher)
          _add(samples, "distill/%s/ours_online_bfloat16" % family, rate)
          if FLAGS.peer_bfloat16:
            peer16, _ = peer_run(family, "distill",
                                 os.path.join(scratch, "p16.json"),
                                 teacher_weights=teacher_of[family][1],
                                 bfloat16=True)
            _add(samples, "distill/%s/peer_bfloat16" % family,
                 peer16["phases"]["distill"]["examples_per_sec"][-1])
        rate, mb = ours_train(student, base + "_cached", teacher=teacher,
                              cache=os.path.join(scratch,
                                                 family + "_logits.npz"))
        _add(samples, "distill/%s/ours_cached" % family, rate)
        _add(rss, "distill.py %s cached" % family, mb)
        peer, mb = peer_run(family, "distill", os.path.join(scratch, "p.json"),
                            teacher_weights=teacher_of[family][1])
        _add(samples, "distill/%s/peer" % family,
             peer["phases"]["distill"]["examples_per_sec"][-1])
        _add(rss, "keras_peer.py %s distill" % family, mb)
        for suffix in ("_online", "_online16", "_cached"):
          shutil.rmtree(base + suffix, ignore_errors=True)
    results["rates"] = {k: summarize(v) for k, v in samples.items()}
    results["peak_rss_mb"] = {k: summarize(v) for k, v in rss.items()}
    results["latency"] = latency_rows
    if "train" in FLAGS.what:
      results["flops_per_example"] = {
          m: model_stats.flops_per_example(
              lambda images, num_classes, is_training, m=m:
              nets_factory.get_network_fn(m)(images, num_classes,
                                             is_training=is_training,
                                             scope=m),
              splits.image_shape, splits.num_classes)
          for m in FLAGS.models}
    results["load_average_after"] = list(os.getloadavg())
    if FLAGS.output_json:
      fileio.write_json(FLAGS.output_json, results)
  shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
  define_flags()
  app.run(main)
