r"""The lightweighting benchmark of docs/results.md (issue 4, item 6).

For the distilled `cnn_student` and for `mobilenet_v1` at width 0.5 (trained
with BENCHMARK.md's teacher recipe), through the project's own binaries, each
run a subprocess whose exact command is stored in the output JSON:

  1. the dense model: `scripts/evaluate.py` (parameters, FLOPs, session
     latency) and `scripts/export.py --formats=all` verified in a fresh
     process (every TFLite variant: bytes, gzip bytes, accuracy, batch-1
     latency in the real interpreter);
  2. magnitude pruning to each --sparsities value with `scripts/prune.py
     --target_sparsity` (Zhu & Gupta's cubic schedule while fine-tuning
     --fine_tune_epochs), then `scripts/export.py
     --formats=frozen_graph,float32` of the stripped checkpoint: accuracy and
     gzip bytes of the float32 TFLite file and the frozen graph (the zeros
     of magnitude pruning only shrink under compression);
  3. structured pruning with `scripts/prune.py --structured_fraction`
     (fine-tuned on the labels, and with --distill_from_original), then
     evaluate (parameters, FLOPs, latency) and export --formats=all;
  4. the issue's targets checked against the figures (`targets`).

Layout under --runs_dir: <key>/ is the dense model's training directory
(`cnn_student`: a copy of --cnn_source's latest checkpoint;
`mobilenet_v1_w05`: trained here), <key>_bench/ holds every pruning run,
export and evaluation of it. A step whose result file (metrics.json,
prune_report.json, export.json, eval JSON) exists is reused on a rerun, its
command still recorded; delete a folder to measure that step again. An
unfinished MobileNet training is resumed by the same command.

Usage (about 45-60 minutes on a busy 2-core machine, most of it MobileNet):
  .venv/bin/python benchmarks/lightweight_benchmark.py \
      --cnn_source=/work/runs/bench/cnn/distilled_s0 --runs_dir=/work/runs/lw \
      --output_json=docs/benchmarks/lightweight.json

The peer (Model Optimization Toolkit, Keras TFLite) runs in its own venv:
  bash benchmarks/setup_peer_venv.sh /work/peer-venv
  /work/peer-venv/bin/python benchmarks/mot_peer.py \
      --output_json=/work/runs/lw/mot_peer.json
and --peer_json=/work/runs/lw/mot_peer.json folds its figures into this
file's JSON (and its Markdown tables).
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from distill_v1 import fileio  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

MODELS = ("cnn_student", "mobilenet_v1")
TFLITE_VARIANTS = ("float32", "dynamic_range", "float16", "int8")

flags.DEFINE_list("models", list(MODELS), "Models to benchmark.")
flags.DEFINE_string(
    "cnn_source", "/work/runs/bench/cnn/distilled_s0",
    "Training directory of the distilled cnn_student (copied, never "
    "modified).")
flags.DEFINE_integer(
    "cnn_source_epochs", 10,
    "Epochs --cnn_source must have finished (the student recipe's 10): a "
    "run still in progress is refused rather than copied half-trained.")
flags.DEFINE_string("runs_dir", "/work/runs/lw",
                    "Where every checkpoint and export of the benchmark goes.")
flags.DEFINE_float("mobilenet_width", 0.5, "mobilenet_v1 width multiplier.")
flags.DEFINE_integer("mobilenet_epochs", 15,
                     "Epochs of mobilenet_v1 with the teacher recipe.")
flags.DEFINE_list("sparsities", ["0.5", "0.8", "0.9"],
                  "Magnitude-pruning target sparsities.")
flags.DEFINE_list(
    "mobilenet_keep_dense", ["depthwise_kernel", "conv2d_0/"],
    "An extra mobilenet_v1 magnitude run per --mobilenet_keep_dense_"
    "sparsities value that leaves kernels whose names contain one of these "
    "dense (contrib's do_not_prune, through --pruning_hparams): the 3x3 "
    "depthwise kernels (9 weights per channel) and the stem.")
flags.DEFINE_list("mobilenet_keep_dense_sparsities", ["0.8"],
                  "Target sparsities of the keep-dense runs (empty: none).")
flags.DEFINE_float("fine_tune_epochs", 2.0,
                   "Fine-tuning epochs of every pruning run.")
flags.DEFINE_float("structured_fraction", 0.5,
                   "Fraction of the channels structured pruning removes.")
flags.DEFINE_list(
    "structured_modes", ["labels", "distill"],
    "Fine-tuning of the structured model: labels and/or distill "
    "(--distill_from_original).")
flags.DEFINE_list(
    "mobilenet_structured_modes", ["distill"],
    "structured_modes for mobilenet_v1 (its fine-tuning is the expensive "
    "part).")
flags.DEFINE_string("peer_json", None,
                    "benchmarks/mot_peer.py's JSON, folded into the output.")
flags.DEFINE_string("output_json", None, "Where the results go.")
flags.DEFINE_string("python", sys.executable, "Interpreter of the binaries.")
flags.DEFINE_bool(
    "markdown_only", False,
    "Run nothing: print --output_json's results as the Markdown tables of "
    "docs/results.md.")

# Fine-tuning recipes of the pruning runs. cnn_student keeps the student
# recipe (plain SGD, 0.05; T and alpha as chosen for the cnn family on the
# validation split by the distillation benchmark); mobilenet_v1 continues
# its teacher recipe at a tenth of the learning rate.
FINE_TUNE = {
    "cnn_student": ["--optimizer=sgd", "--learning_rate=0.05"],
    "mobilenet_v1": ["--optimizer=momentum", "--learning_rate=0.002",
                     "--learning_rate_decay=cosine", "--weight_decay=5e-4"],
}
DISTILL = {
    "cnn_student": ["--temperature=8", "--alpha=0.5"],
    "mobilenet_v1": ["--temperature=4", "--alpha=0.1"],
}


def _quote(command):
  return " ".join(shlex.quote(c) for c in command)


class Runner(object):
  """Runs the binaries, logging each command; reuses finished steps."""

  def __init__(self, python):
    self.python = python
    self.commands = []

  def run(self, binary, args, result_file, log_file, reuse=True):
    """Runs scripts/<binary>.py unless `result_file` exists; returns its JSON.

    Args:
      binary: train, prune, evaluate or export.
      args: its flags.
      result_file: the JSON the step leaves behind when it succeeded.
      log_file: where its stdout and stderr go.
      reuse: False runs the binary even when `result_file` exists (a
        training run to resume).

    Returns:
      (parsed result_file, record dict with command, seconds, reused):
      seconds of a reused step are those of the run that produced it
      (<log_file>.seconds.json), when known.
    """
    command = [self.python, os.path.join("scripts", binary + ".py")] + args
    record = {"command": _quote(command), "log": log_file}
    timing_file = log_file + ".seconds.json"
    if reuse and os.path.exists(result_file):
      seconds = None
      if os.path.exists(timing_file):
        with open(timing_file) as f:
          seconds = json.load(f).get("seconds")
      record.update(seconds=seconds, reused=True)
      print("(reused) $ " + record["command"], flush=True)
    else:
      print("$ " + record["command"], flush=True)
      start = time.time()
      os.makedirs(os.path.dirname(log_file), exist_ok=True)
      with open(log_file, "w") as log:
        result = subprocess.run(command, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, check=False)
      record.update(seconds=round(time.time() - start, 1), reused=False)
      if result.returncode != 0:
        with open(log_file) as log:
          sys.stderr.write(log.read()[-4000:])
        raise SystemExit("lightweight_benchmark: %s failed (exit %d); log %s"
                         % (binary, result.returncode, log_file))
      # The step's wall time, kept for the reruns that reuse its result.
      fileio.write_json(timing_file, {"command": record["command"],
                                      "seconds": record["seconds"]})
      print("   (%.0f s)" % record["seconds"], flush=True)
    self.commands.append(record)
    with open(result_file) as f:
      return json.load(f), record


def _copy_checkpoint(source_dir, target_dir):
  """Copies the latest checkpoint of `source_dir` (never modifying it)."""
  if os.path.exists(os.path.join(target_dir, "checkpoint")):
    return
  with open(os.path.join(source_dir, "checkpoint")) as f:
    first = f.readline()
  prefix = first.split(":", 1)[1].strip().strip('"')
  name = os.path.basename(prefix)
  staging = target_dir + ".partial"
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  for entry in os.listdir(source_dir):
    if entry.startswith(name + ".") or entry in ("model_spec.json",
                                                 "metrics.json"):
      shutil.copy2(os.path.join(source_dir, entry), staging)
  with open(os.path.join(staging, "checkpoint"), "w") as f:
    f.write('model_checkpoint_path: "%s"\n' % os.path.join(target_dir, name))
    f.write('all_model_checkpoint_paths: "%s"\n' %
            os.path.join(target_dir, name))
  os.rename(staging, target_dir)


def _export_summary(manifest):
  """Per-format bytes, gzip bytes, accuracy, latency from export.json."""
  verification = manifest["verification"]
  formats = {}
  for name, row in verification["formats"].items():
    formats[name] = {k: row.get(k) for k in (
        "file", "file_bytes", "gzip_bytes", "test_accuracy",
        "accuracy_delta_points", "latency_ms_batch_1", "max_logit_error",
        "argmax_agreement")}
  return {"session": verification["session"], "size": verification["size"],
          "formats": formats,
          "num_test_examples": verification["num_test_examples"]}


def _export(runner, checkpoint, out_dir, formats):
  args = ["--checkpoint=%s" % checkpoint, "--output_dir=%s" % out_dir,
          "--formats=%s" % formats, "--overwrite"]
  manifest, record = runner.run("export", args,
                                os.path.join(out_dir, "export.json"),
                                out_dir + ".log")
  summary = _export_summary(manifest)
  summary["record"] = record
  return summary


def _evaluate(runner, checkpoint, out_json):
  args = ["--checkpoint=%s" % checkpoint, "--output_json=%s" % out_json,
          "--latency_repeats=200"]
  result, record = runner.run("evaluate", args, out_json,
                              out_json[:-len(".json")] + ".log")
  keep = ("test_accuracy", "params", "flops_per_example", "checkpoint_bytes",
          "latency_ms")
  summary = {k: result.get(k) for k in keep}
  summary["record"] = record
  return summary


def model_key(model):
  if model == "mobilenet_v1":
    return "mobilenet_v1_w" + ("%g" % FLAGS.mobilenet_width).replace(".", "")
  return model


def source_checkpoint(runner, model):
  """The dense model's training directory (copied or trained), and facts."""
  target = os.path.join(FLAGS.runs_dir, model_key(model))
  if model == "cnn_student":
    if not os.path.exists(os.path.join(target, "checkpoint")):
      with open(os.path.join(FLAGS.cnn_source, "metrics.json")) as f:
        epoch = json.load(f).get("epoch", 0)
      if epoch < FLAGS.cnn_source_epochs:
        raise SystemExit(
            "lightweight_benchmark: --cnn_source=%s has finished %s of %d "
            "epochs; wait for its run to end" %
            (FLAGS.cnn_source, epoch, FLAGS.cnn_source_epochs))
    _copy_checkpoint(FLAGS.cnn_source, target)
    with open(os.path.join(target, "metrics.json")) as f:
      metrics = json.load(f)
    return target, {"copied_from": FLAGS.cnn_source,
                    "test_accuracy": metrics["test_accuracy"],
                    "global_step": metrics["global_step"]}
  args = ["--model=mobilenet_v1",
          "--width_multiplier=%g" % FLAGS.mobilenet_width,
          "--optimizer=momentum", "--learning_rate=0.02",
          "--learning_rate_decay=cosine", "--weight_decay=5e-4",
          "--epochs=%d" % FLAGS.mobilenet_epochs, "--train_dir=%s" % target]
  metrics_file = os.path.join(target, "metrics.json")
  done = False
  if os.path.exists(metrics_file):
    with open(metrics_file) as f:
      done = json.load(f).get("epoch", 0) >= FLAGS.mobilenet_epochs
  # metrics.json is rewritten every epoch: only a finished run is reused, an
  # interrupted one resumes from its latest checkpoint.
  metrics, record = runner.run("train", args, metrics_file,
                               target + ".train.log", reuse=done)
  history = metrics.get("history", [])
  epoch_seconds = sorted(h["epoch_seconds"] for h in history[1:]
                         if h.get("epoch_seconds"))
  return target, {
      "test_accuracy": metrics["test_accuracy"],
      "epochs": FLAGS.mobilenet_epochs,
      "global_step": metrics["global_step"],
      "examples_per_sec": metrics.get("examples_per_sec"),
      "median_epoch_seconds": (epoch_seconds[len(epoch_seconds) // 2]
                               if epoch_seconds else None),
      "test_accuracy_by_epoch": [round(100 * h["test_accuracy"], 2)
                                 for h in history],
      "record": record}


def benchmark_model(runner, model):
  """Every measurement of one model; returns its dict."""
  os.makedirs(FLAGS.runs_dir, exist_ok=True)
  source, training = source_checkpoint(runner, model)
  base = source + "_bench"
  os.makedirs(base, exist_ok=True)
  result = {"source": source, "training": training}
  result["dense"] = {
      "evaluate": _evaluate(runner, source,
                            os.path.join(base, "eval_dense.json")),
      "export": _export(runner, source, os.path.join(base, "export_dense"),
                        "all")}
  fine_tune = FINE_TUNE[model] + ["--epochs=%g" % FLAGS.fine_tune_epochs]
  result["fine_tune_flags"] = fine_tune

  result["magnitude"] = []
  runs = [(sparsity, None) for sparsity in FLAGS.sparsities]
  if model == "mobilenet_v1" and FLAGS.mobilenet_keep_dense:
    runs += [(sparsity, FLAGS.mobilenet_keep_dense)
             for sparsity in FLAGS.mobilenet_keep_dense_sparsities]
  for sparsity, keep_dense in runs:
    train_dir = os.path.join(base, "magnitude_p%d%s" % (
        round(100 * float(sparsity)), "_keep_dense" if keep_dense else ""))
    if keep_dense:
      # The schedule prune.py derives from --target_sparsity (end step at
      # two thirds of the run, a multiple of the 10-step frequency), spelt
      # in contrib's format, which also carries do_not_prune.
      steps = -(-60000 // 128) * FLAGS.fine_tune_epochs
      end = max(int(round(2.0 * steps / 3.0 / 10)), 1) * 10
      schedule = ["--pruning_hparams=begin_pruning_step=0,end_pruning_step="
                  "%d,pruning_frequency=10,target_sparsity=%s,"
                  "sparsity_function_end_step=%d,do_not_prune=[%s]" % (
                      end, sparsity, end, ",".join(keep_dense))]
    else:
      schedule = ["--target_sparsity=%s" % sparsity]
    args = ["--checkpoint=%s" % source,
            "--train_dir=%s" % train_dir] + schedule + fine_tune
    report, record = runner.run("prune", args,
                                os.path.join(train_dir, "prune_report.json"),
                                train_dir + ".log")
    stripped = os.path.join(train_dir, "stripped")
    entry = {"target_sparsity": float(sparsity), "keep_dense": keep_dense,
             "accuracy_before": report["before"]["test_accuracy"],
             "accuracy_after": report["after"]["test_accuracy"],
             "sparsity": report["after"]["sparsity"],
             "nonzero_weights": report["after"]["nonzero_weights"],
             "masked_weights": report["after"]["masked_weights"],
             "end_step": (report["flags"]["pruning_hparams"] or {}).get(
                 "end_step"),
             "global_step": report["global_step"], "record": record,
             "export": _export(runner, stripped,
                               os.path.join(train_dir, "export"),
                               "frozen_graph,float32")}
    result["magnitude"].append(entry)

  result["structured"] = []
  modes = (FLAGS.mobilenet_structured_modes if model == "mobilenet_v1" else
           FLAGS.structured_modes)
  for mode in modes:
    train_dir = os.path.join(base, "structured_%d_%s" % (
        round(100 * FLAGS.structured_fraction), mode))
    args = ["--checkpoint=%s" % source, "--train_dir=%s" % train_dir,
            "--structured_fraction=%g" % FLAGS.structured_fraction
           ] + fine_tune
    if mode == "distill":
      args += ["--distill_from_original"] + DISTILL[model]
    report, record = runner.run("prune", args,
                                os.path.join(train_dir, "prune_report.json"),
                                train_dir + ".log")
    stripped = os.path.join(train_dir, "stripped")
    entry = {"mode": mode, "fraction": FLAGS.structured_fraction,
             "accuracy_before": report["before"]["test_accuracy"],
             "accuracy_no_tuning": (report.get("structured") or {}).get(
                 "test_accuracy"),
             "accuracy_after": report["after"]["test_accuracy"],
             "params_before": report["before"]["params"],
             "params_after": report["after"]["params"],
             "flops_before": report["before"]["flops_per_example"],
             "flops_after": report["after"]["flops_per_example"],
             "channels": (report.get("structured") or {}).get("channels"),
             "record": record,
             "evaluate": _evaluate(runner, stripped,
                                   os.path.join(train_dir,
                                                "eval_stripped.json")),
             "export": _export(runner, stripped,
                               os.path.join(train_dir, "export"), "all")}
    result["structured"].append(entry)
  result["targets"] = check_targets(result)
  return result


def check_targets(result):
  """The issue's targets, each with its figures and whether it was met."""
  targets = {}
  before = result["dense"]["export"]["session"]["test_accuracy"]
  for entry in result["magnitude"]:
    if abs(entry["target_sparsity"] - 0.8) < 1e-9:
      cost = 100 * (entry["accuracy_before"] - entry["accuracy_after"])
      key = "sparsity_80_costs_at_most_1_point"
      if entry.get("keep_dense"):
        key += "_keep_dense"
      targets[key] = {
          "accuracy_before": entry["accuracy_before"],
          "accuracy_after": entry["accuracy_after"],
          "cost_points": cost, "met": cost <= 1.0}
  formats = result["dense"]["export"]["formats"]
  params = result["dense"]["evaluate"]["params"]
  if "float32" in formats and "int8" in formats:
    ratio = formats["float32"]["file_bytes"] / float(
        formats["int8"]["file_bytes"])
    needed = 3.8 if params > 1000000 else 3.2
    drop = 100 * (formats["float32"]["test_accuracy"] -
                  formats["int8"]["test_accuracy"])
    drop_session = 100 * (before - formats["int8"]["test_accuracy"])
    targets["int8_tflite_smaller"] = {
        "params": params, "float32_bytes": formats["float32"]["file_bytes"],
        "int8_bytes": formats["int8"]["file_bytes"], "ratio": ratio,
        "needed": needed, "met": ratio >= needed}
    targets["int8_within_half_a_point"] = {
        "float32_tflite_accuracy": formats["float32"]["test_accuracy"],
        "int8_tflite_accuracy": formats["int8"]["test_accuracy"],
        "session_accuracy": before, "drop_points_vs_float32": drop,
        "drop_points_vs_session": drop_session,
        "met": abs(drop) <= 0.5 and abs(drop_session) <= 0.5}
  for entry in result["structured"]:
    ratio = entry["flops_before"] / float(entry["flops_after"])
    targets["structured_flops_%s" % entry["mode"]] = {
        "flops_before": entry["flops_before"],
        "flops_after": entry["flops_after"], "ratio": ratio, "needed": 1.8,
        "met": ratio >= 1.8}
  return targets


def _print_summary(model, result):
  print("== %s" % model)
  dense = result["dense"]
  print("dense: accuracy %.2f%%, %s params, %s FLOPs" % (
      100 * dense["export"]["session"]["test_accuracy"],
      format(dense["evaluate"]["params"], ","),
      format(dense["evaluate"]["flops_per_example"], ",")))
  for name, row in dense["export"]["formats"].items():
    print("  %-14s %10s bytes  gzip %10s  %.2f%%  %.3f ms" % (
        name, format(row["file_bytes"], ","), format(row["gzip_bytes"], ","),
        100 * row["test_accuracy"], row["latency_ms_batch_1"]))
  for entry in result["magnitude"]:
    tfl = entry["export"]["formats"]["float32"]
    print("magnitude %.0f%%: %.2f%% -> %.2f%%, float32 TFLite gzip %s" % (
        100 * entry["target_sparsity"], 100 * entry["accuracy_before"],
        100 * entry["accuracy_after"], format(tfl["gzip_bytes"], ",")))
  for entry in result["structured"]:
    print("structured %.0f%% (%s): %.2f%% -> %.2f%%, params %s -> %s, FLOPs "
          "%s -> %s" % (
              100 * entry["fraction"], entry["mode"],
              100 * entry["accuracy_before"], 100 * entry["accuracy_after"],
              format(entry["params_before"], ","),
              format(entry["params_after"], ","),
              format(entry["flops_before"], ","),
              format(entry["flops_after"], ",")))
  for name, target in result["targets"].items():
    print("target %-36s %s" % (name, "met" if target["met"] else "NOT met"))


EXPORT_ORDER = ("frozen_graph", "saved_model") + TFLITE_VARIANTS


def _target_rank(name):
  for rank, prefix in enumerate(("sparsity_80", "int8_tflite_smaller",
                                 "int8_within", "structured_flops")):
    if name.startswith(prefix):
      return (rank, name)
  return (len(name), name)


def _n(value):
  return format(int(value), ",")


def _pct(value):
  return "%.2f" % (100 * value)


def markdown(report):
  """docs/results.md's tables from the benchmark's JSON."""
  lines = []
  add = lines.append
  models = report["models"]
  add("TFLite and the other export formats of the dense models (verified in "
      "a fresh process; accuracy on the 10,000 test images, latency the "
      "median of single-image calls):")
  add("")
  add("| model | format | bytes | gzip bytes | test accuracy % | delta vs "
      "session (points) | batch-1 ms |")
  add("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
  for model, result in models.items():
    export = result["dense"]["export"]
    add("| %s | session (checkpoint) | | | %s | | %.3f |" % (
        model, _pct(export["session"]["test_accuracy"]),
        export["session"]["latency_ms_batch_1"]))
    for name in EXPORT_ORDER:
      row = export["formats"].get(name)
      if row is None:
        continue
      add("| %s | %s | %s | %s | %s | %+.2f | %.3f |" % (
          model, row["file"], _n(row["file_bytes"]), _n(row["gzip_bytes"]),
          _pct(row["test_accuracy"]), row["accuracy_delta_points"],
          row["latency_ms_batch_1"]))
  add("")
  add("Magnitude pruning (stripped checkpoint exported; gzip -9 of the "
      "float32 TFLite file and of the frozen graph, dense -> pruned):")
  add("")
  add("| model | target | sparsity of the pruned kernels | non-zero / all "
      "weights | test accuracy % before -> after | delta (points) | float32 "
      "TFLite gzip bytes | frozen graph gzip bytes |")
  add("| --- | --- | ---: | ---: | --- | ---: | --- | --- |")
  for model, result in models.items():
    dense = result["dense"]["export"]["formats"]
    for entry in result["magnitude"]:
      pruned = entry["export"]["formats"]
      size = entry["export"]["size"]
      add("| %s | %.0f%%%s | %.1f%% | %s / %s | %s -> %s | %+.2f | %s -> %s "
          "(%.2fx) | %s -> %s (%.2fx) |" % (
              model, 100 * entry["target_sparsity"],
              (" (%s dense)" % ", ".join("`%s`" % k for k in
                                         entry["keep_dense"])
               if entry.get("keep_dense") else ""),
              100 * entry["sparsity"], _n(size["nonzero_weights"]),
              _n(size["weights"]),
              _pct(entry["accuracy_before"]), _pct(entry["accuracy_after"]),
              100 * (entry["accuracy_after"] - entry["accuracy_before"]),
              _n(dense["float32"]["gzip_bytes"]),
              _n(pruned["float32"]["gzip_bytes"]),
              dense["float32"]["gzip_bytes"] /
              float(pruned["float32"]["gzip_bytes"]),
              _n(dense["frozen_graph"]["gzip_bytes"]),
              _n(pruned["frozen_graph"]["gzip_bytes"]),
              dense["frozen_graph"]["gzip_bytes"] /
              float(pruned["frozen_graph"]["gzip_bytes"])))
  add("")
  add("Structured pruning (a physically narrower network; session latency "
      "from `scripts/evaluate.py`, TFLite latency from the export's "
      "verification):")
  add("")
  add("| model | fine-tuning | parameters | FLOPs per example | test accuracy "
      "% (before -> no tuning -> tuned) | session batch-1 ms | session "
      "batch-128 ms | float32 TFLite bytes, batch-1 ms | int8 TFLite bytes, "
      "accuracy % |")
  add("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
  for model, result in models.items():
    dense_eval = result["dense"]["evaluate"]
    dense = result["dense"]["export"]["formats"]
    for entry in result["structured"]:
      formats = entry["export"]["formats"]
      add("| %s | %s | %s -> %s (%.2fx) | %s -> %s (%.2fx) | %s -> %s -> %s "
          "| %.3f -> %.3f | %.2f -> %.2f | %s, %.3f -> %s, %.3f | %s -> %s, "
          "%s |" % (
              model, {"labels": "labels",
                      "distill": "distilled from the unpruned model"}[
                          entry["mode"]],
              _n(entry["params_before"]), _n(entry["params_after"]),
              entry["params_before"] / float(entry["params_after"]),
              _n(entry["flops_before"]), _n(entry["flops_after"]),
              entry["flops_before"] / float(entry["flops_after"]),
              _pct(entry["accuracy_before"]),
              _pct(entry["accuracy_no_tuning"]),
              _pct(entry["accuracy_after"]),
              dense_eval["latency_ms"]["batch_1"],
              entry["evaluate"]["latency_ms"]["batch_1"],
              dense_eval["latency_ms"]["batch_128"],
              entry["evaluate"]["latency_ms"]["batch_128"],
              _n(dense["float32"]["file_bytes"]),
              dense["float32"]["latency_ms_batch_1"],
              _n(formats["float32"]["file_bytes"]),
              formats["float32"]["latency_ms_batch_1"],
              _n(dense["int8"]["file_bytes"]),
              _n(formats["int8"]["file_bytes"]),
              _pct(formats["int8"]["test_accuracy"])))
  add("")
  add("Targets:")
  add("")
  add("| model | target | figures | met |")
  add("| --- | --- | --- | --- |")
  for model, result in models.items():
    for name, t in sorted(result["targets"].items(),
                          key=lambda item: _target_rank(item[0])):
      if name.startswith("sparsity_80"):
        text = ("80% sparsity costs <= 1 point" +
                (" (depthwise kernels and stem kept dense)"
                 if name.endswith("_keep_dense") else ""),
                "%s -> %s (%+.2f points)" % (
                    _pct(t["accuracy_before"]), _pct(t["accuracy_after"]),
                    -t["cost_points"]))
      elif name == "int8_tflite_smaller":
        text = ("int8 TFLite >= %.1fx smaller than float32 (%s parameters)" %
                (t["needed"], _n(t["params"])),
                "%s / %s bytes = %.2fx" % (_n(t["float32_bytes"]),
                                           _n(t["int8_bytes"]), t["ratio"]))
      elif name == "int8_within_half_a_point":
        text = ("int8 within 0.5 points",
                "float32 TFLite %s, int8 %s, session %s (%+.2f points vs "
                "float32)" % (_pct(t["float32_tflite_accuracy"]),
                              _pct(t["int8_tflite_accuracy"]),
                              _pct(t["session_accuracy"]),
                              -t["drop_points_vs_float32"]))
      else:
        text = ("50%% structured: >= 1.8x fewer FLOPs (%s)" %
                name.rsplit("_", 1)[-1],
                "%s -> %s = %.2fx" % (_n(t["flops_before"]),
                                      _n(t["flops_after"]), t["ratio"]))
      add("| %s | %s | %s | %s |" % (model, text[0], text[1],
                                     "yes" if t["met"] else "**no**"))
  peer = report.get("peer")
  if peer:
    add("")
    add("Peer, Model Optimization Toolkit %s on tf-keras %s / TensorFlow %s "
        "(same machine; gzip -9 of the .h5 saved without optimizer, as the "
        "MOT guide measures, and of the float32 TFLite file):" % (
            peer["versions"]["tensorflow_model_optimization"],
            peer["versions"]["tf_keras"], peer["versions"]["tensorflow"]))
    add("")
    add("| model | target | kernel sparsity | test accuracy % before -> "
        "after | .h5 gzip bytes dense -> pruned | float32 TFLite gzip bytes "
        "dense -> pruned |")
    add("| --- | ---: | ---: | --- | --- | --- |")
    for model, result in peer["models"].items():
      dense = result["dense"]
      for entry in result["pruning"]:
        add("| %s | %.1f | %.1f%% | %s -> %s | %s -> %s | %s -> %s |" % (
            model, entry["target_sparsity"], 100 * entry["kernel_sparsity"],
            _pct(dense["test_accuracy"]), _pct(entry["test_accuracy"]),
            _n(dense["h5_gzip_bytes"]), _n(entry["h5_gzip_bytes"]),
            _n(dense["tflite_float32_gzip_bytes"]),
            _n(entry["tflite_float32_gzip_bytes"])))
    add("")
    add("Peer, `TFLiteConverter.from_keras_model` of the dense tf-keras "
        "models (bytes / test accuracy % / median batch-1 invoke µs):")
    add("")
    add("| model | float32 | dynamic range | full int8 | float32 / int8 "
        "bytes |")
    add("| --- | --- | --- | --- | ---: |")
    for model, result in peer["models"].items():
      t = result.get("tflite")
      if not t:
        continue
      cells = ["%s / %s / %.0f" % (_n(t[m]["bytes"]),
                                   _pct(t[m]["test_accuracy"]),
                                   t[m]["latency_us_median"])
               for m in ("float32", "dynamic_range", "int8")]
      add("| %s | %s | %.2fx |" % (
          model, " | ".join(cells),
          t["float32"]["bytes"] / float(t["int8"]["bytes"])))
  return "\n".join(lines)


def main(argv):
  del argv
  if FLAGS.markdown_only:
    with open(FLAGS.output_json) as f:
      print(markdown(json.load(f)))
    return
  for model in FLAGS.models:
    if model not in MODELS:
      raise app.UsageError("--models: %s is not one of %s" %
                           (model, ", ".join(MODELS)))
  runner = Runner(FLAGS.python)
  start = time.time()
  report = {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_average_at_start": list(os.getloadavg()),
            "cpu_count": os.cpu_count(),
            "flags": {k: FLAGS[k].value for k in (
                "models", "cnn_source", "runs_dir", "mobilenet_width",
                "mobilenet_epochs", "sparsities", "fine_tune_epochs",
                "structured_fraction", "structured_modes",
                "mobilenet_structured_modes")},
            "models": {}}
  for model in FLAGS.models:
    report["models"][model] = benchmark_model(runner, model)
    report["seconds"] = round(time.time() - start, 1)
    report["commands"] = runner.commands
    if FLAGS.output_json:
      fileio.write_json(FLAGS.output_json, report)
  if FLAGS.peer_json:
    with open(FLAGS.peer_json) as f:
      report["peer"] = json.load(f)
  report["load_average_at_end"] = list(os.getloadavg())
  report["seconds"] = round(time.time() - start, 1)
  report["commands"] = runner.commands
  if FLAGS.output_json:
    fileio.write_json(FLAGS.output_json, report)
  for model in FLAGS.models:
    _print_summary(model, report["models"][model])


if __name__ == "__main__":
  app.run(main)
