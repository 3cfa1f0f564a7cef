r"""Writes docs/benchmarks.md's speed tables from benchmarks/speed.py's JSON.

Usage:
  python benchmarks/speed_report.py --input_json=docs/benchmarks/speed.json \
      --output_md=docs/benchmarks.md

The tables (every issue-7 target with met or missed, then medians, ranges
over the repeats and ratios of medians per path, the machine, the versions
and the exact command) replace what lies between the BEGIN and END markers
of --output_md, so the analysis written around them stays. A file without
the markers gets them appended; a document without a "Why targets are
missed" section gets one with a placeholder paragraph to fill.

Units: examples/sec, GFLOP/s, microseconds per call (the whole call: feed,
run, fetch), MB = 10**6 bytes.
"""

import json
import os
import statistics
import sys

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from distill_v1 import fileio  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


def define_flags():
  """Defines the flags (only when run as a script)."""
  flags.DEFINE_string("input_json", "docs/benchmarks/speed.json",
                      "benchmarks/speed.py's output.")
  flags.DEFINE_string("output_md", "docs/benchmarks.md",
                      "Where the tables go (between BEGIN and END).")
  flags.DEFINE_string("section", "tables", "Name of the marked block the "
                      "tables replace (markers(section)), so that a second "
                      "run's JSON (e.g. only --what=matmul,train) gets a "
                      "block of its own beside the first.")


# Issue 7's targets (medians of the same run).
TRAIN_VS_PEER = 1.25
ONLINE_VS_PEER = 1.25
CACHED_VS_PEER = 1.4
MLP_CEILING_FRACTION = 0.75
FROZEN_BATCH1_SPEEDUP = 2.0
INPUT_MULTIPLE = 10.0
CNN_DISTILL_RSS_MB = 1500.0


def markers(section="tables"):
  """(BEGIN, END) comment lines around the block named `section`."""
  return ("<!-- BEGIN speed_report %s -->" % section,
          "<!-- END speed_report %s -->" % section)


BEGIN, END = markers()
WHY_HEADING = "## Why targets are missed"
WHY_PLACEHOLDER = (
    "(To be written after the run: for each target marked missed above, "
    "what was measured to find out why -- profiles, "
    "`tf.compat.v1.RunMetadata` traces --, what was tried, and what bounds "
    "it.)")
OUR_RUNTIMES = (("session", "ours session"),
                ("frozen_graph", "ours frozen graph"),
                ("tflite_float32", "ours TFLite float32"),
                ("tflite_int8", "ours TFLite int8"))
PEER_RUNTIMES = (("keras_call", "peer `model(x)`"),
                 ("tf_function", "peer tf.function"),
                 ("tflite_float32", "peer TFLite float32"),
                 ("tflite_dynamic_range", "peer TFLite dynamic range"),
                 ("tflite_int8", "peer TFLite int8"))
LATENCY_RATIOS = (("keras_call/frozen_graph", "`model(x)` / frozen graph"),
                  ("keras_call/session", "`model(x)` / session"),
                  ("tf_function/frozen_graph", "tf.function / frozen graph"),
                  ("tflite_float32/tflite_float32", "TFLite float32"),
                  ("tflite_int8/tflite_int8", "TFLite int8"))


def _n(value):
  """An integer with thousands separators."""
  return format(int(round(value)), ",")


def _cell(summary):
  """`median (min-max)` of a bench_util.summarize dict, as integers."""
  return "%s (%s-%s)" % (_n(summary["median"]), _n(summary["min"]),
                         _n(summary["max"]))


def _x(ratio):
  return "-" if ratio is None else "%.2fx" % ratio


def _verdict(ok):
  return "met" if ok else "**missed**"


def _table(header, rows):
  """Markdown lines of a table; numbers right-aligned except column 1."""
  lines = ["| " + " | ".join(header) + " |",
           "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
  return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _rows_of(results, kind):
  """(name, precision, sides) of the rows `kind/...`, in sorted order."""
  out = []
  for name, sides in sorted(results.get("rows", {}).items()):
    parts = name.split("/")
    if parts[0] == kind:
      out.append((name, parts[1], parts[2] if len(parts) > 2 else "float32",
                  sides))
  return out


# ---------------------------------------------------------------------------
# Targets.


def targets(results):
  """Every target the run can judge: [(what, measured text, met)]."""
  out = []
  ratios = results.get("ratios", {})
  for name, model, precision, _ in _rows_of(results, "train"):
    ratio = ratios.get(name, {}).get("ours/peer")
    if precision == "float32" and ratio is not None:
      out.append(("training `%s`: ours / peer examples/sec >= %.2fx" % (
          model, TRAIN_VS_PEER), _x(ratio), ratio >= TRAIN_VS_PEER))
  for name, family, precision, _ in _rows_of(results, "distill"):
    for mode, threshold in (("online", ONLINE_VS_PEER),
                            ("cached", CACHED_VS_PEER)):
      ratio = ratios.get(name, {}).get("ours_%s/peer" % mode)
      if precision == "float32" and ratio is not None:
        out.append(("%s distillation %s: ours / peer Distiller >= %.2fx" % (
            mode, family, threshold), _x(ratio), ratio >= threshold))
  fractions = results.get("fraction_of_matmul_ceiling", {})
  for name, model, precision, _ in _rows_of(results, "train"):
    fraction = fractions.get(name, {}).get("ours")
    if model.startswith("mlp") and precision == "float32" and (
        fraction is not None):
      out.append(("training `%s`: >= %.0f%% of the TF matmul ceiling" % (
          model, 100 * MLP_CEILING_FRACTION), "%.0f%%" % (100 * fraction),
                  fraction >= MLP_CEILING_FRACTION))
  for name, model, _, _ in _rows_of(results, "latency"):
    ratio = ratios.get(name, {}).get("batch_1/keras_call/frozen_graph")
    if ratio is not None:
      out.append(("`%s` batch 1: frozen graph >= %.0fx faster than the "
                  "peer's `model(x, training=False)`" % (
                      model, FROZEN_BATCH1_SPEEDUP), _x(ratio),
                  ratio >= FROZEN_BATCH1_SPEEDUP))
  multiples = results.get("input_multiple_of_fastest_loop", {})
  for key, label in (("examples_per_sec_in_graph", "epoch drained in the "
                      "graph"), ("examples_per_sec", "one batch per "
                                 "sess.run")):
    if key in multiples:
      out.append(("input pipeline alone (%s) >= %.0fx the fastest training "
                  "loop" % (label, INPUT_MULTIPLE), "%.1fx" % multiples[key],
                  multiples[key] >= INPUT_MULTIPLE))
  cnn_distill = [s["max"] for label, s in results.get(
      "peak_rss_mb", {}).items() if label.startswith("distill.py cnn ")]
  if cnn_distill:
    out.append(("peak RSS of scripts/distill.py, cnn family (every run) < "
                "%s MB" % _n(CNN_DISTILL_RSS_MB), "%s MB" % _n(max(
                    cnn_distill)), max(cnn_distill) < CNN_DISTILL_RSS_MB))
  return out


def targets_table(results):
  return _table(["target", "measured (medians)", "verdict"],
                [[what, measured, _verdict(ok)]
                 for what, measured, ok in targets(results)])


# ---------------------------------------------------------------------------
# Tables per path.


def matmul_table(results):
  sides = results["rows"]["matmul"]
  return _table(["backend", "GFLOP/s, median (min-max)"],
                [[backend, "%.1f (%.1f-%.1f)" % (
                    s["gflops"]["median"], s["gflops"]["min"],
                    s["gflops"]["max"])]
                 for backend, s in sorted(sides.items())])


def _fraction(results, name, side):
  value = results.get("fraction_of_matmul_ceiling", {}).get(name, {}).get(
      side)
  return "-" if value is None else "%.0f%%" % (100 * value)


def train_table(results):
  ratios = results.get("ratios", {})
  rows = []
  for name, model, precision, sides in _rows_of(results, "train"):
    ours, peer = sides["ours"], sides["peer"]
    rows.append([
        "`%s`" % model, precision, _cell(ours["examples_per_sec"]),
        _cell(peer["examples_per_sec"]),
        _x(ratios.get(name, {}).get("ours/peer")),
        _x(ratios.get(name, {}).get("ours/peer_float32")),
        "%.1f" % ours["gflops"]["median"], _fraction(results, name, "ours"),
        "%.1f" % peer["gflops"]["median"], _fraction(results, name, "peer")])
  return _table(["model", "precision", "ours ex/s", "peer ex/s",
                 "ours / peer", "ours / float32 peer", "ours GFLOP/s",
                 "of TF ceiling", "peer GFLOP/s", "of TF ceiling"], rows)


def input_table(results):
  pipeline = results["rows"]["input"]["pipeline"]
  multiples = results.get("input_multiple_of_fastest_loop", {})
  rows = []
  for key, label in (("examples_per_sec", "one batch per sess.run"),
                     ("examples_per_sec_in_graph", "epoch drained in the "
                      "graph")):
    rows.append([label, _cell(pipeline[key]),
                 "%.1fx" % multiples[key] if key in multiples else "-"])
  table = _table(["measure", "examples/sec", "multiple of the fastest "
                  "training loop"], rows)
  fastest = multiples.get("fastest_loop")
  if fastest:
    table += ["", "Fastest training loop of the run: %s, %s, %s examples/sec."
              % (fastest["row"], fastest["side"],
                 _n(fastest["examples_per_sec"]))]
  return table


def distill_table(results):
  ratios = results.get("ratios", {})
  rows = []
  for name, family, precision, sides in _rows_of(results, "distill"):
    get = lambda side, s=sides: (_cell(s[side]["examples_per_sec"])
                                 if side in s else "-")
    ratio = lambda key, n=name: _x(ratios.get(n, {}).get(key))
    rows.append([family, precision, get("ours_online"), get("ours_cached"),
                 get("peer"), ratio("ours_online/peer"),
                 ratio("ours_cached/peer"), ratio("ours_online/peer_float32"),
                 ratio("ours_cached/peer_float32")])
  return _table(["family", "precision", "ours online", "ours cached",
                 "peer Distiller", "online / peer", "cached / peer",
                 "online / float32 peer", "cached / float32 peer"], rows)


def _per_repeat(numerator, denominator):
  """Ratios of two summaries' values, repeat by repeat (same order)."""
  return [a / b for a, b in zip(numerator["values"], denominator["values"])
          if b]


def per_repeat_table(results):
  """Ours / peer examples/sec within each repeat, and their median."""
  pairs = []
  for _, model, precision, sides in _rows_of(results, "train"):
    pairs.append(("train `%s` %s" % (model, precision), sides["ours"],
                  sides["peer"]))
  for _, family, precision, sides in _rows_of(results, "distill"):
    for mode in ("online", "cached"):
      if "ours_" + mode in sides and "peer" in sides:
        pairs.append(("%s distill %s %s / peer Distiller" % (
            mode, family, precision), sides["ours_" + mode], sides["peer"]))
  rows = []
  for label, ours, peer in pairs:
    ratios = _per_repeat(ours["examples_per_sec"], peer["examples_per_sec"])
    if ratios:
      rows.append([label, " ".join("%.2f" % r for r in ratios),
                   "%.2fx" % statistics.median(ratios)])
  return _table(["row", "ours / peer, repeat 1, 2, ...", "median of the "
                 "per-repeat ratios"], rows)


def _latency_cell(leaves, batch, runtime):
  """`median (p10-p90)` microseconds, or - when not measured."""
  prefix = "%s/%s/" % (batch, runtime)
  if prefix + "median_us" not in leaves:
    return "-"
  return "%s (%s-%s)" % tuple(_n(leaves[prefix + k]["median"])
                              for k in ("median_us", "p10_us", "p90_us"))


def latency_table(results):
  rows = []
  for _, model, _, sides in _rows_of(results, "latency"):
    for batch in results.get("latency_batches", [1, 128]):
      key = "batch_%d" % batch
      rows.append(["`%s`" % model, str(batch)] + [
          _latency_cell(sides.get("ours", {}), key, r)
          for r, _ in OUR_RUNTIMES] + [
              _latency_cell(sides.get("peer", {}), key, r)
              for r, _ in PEER_RUNTIMES])
  return _table(["model", "batch"] + [label for _, label in OUR_RUNTIMES] +
                [label for _, label in PEER_RUNTIMES], rows)


def latency_ratio_table(results):
  rows = []
  for name, model, _, _ in _rows_of(results, "latency"):
    row_ratios = results.get("ratios", {}).get(name, {})
    for batch in results.get("latency_batches", [1, 128]):
      rows.append(["`%s`" % model, str(batch)] + [
          _x(row_ratios.get("batch_%d/%s" % (batch, key)))
          for key, _ in LATENCY_RATIOS])
  return _table(["model", "batch"] + [label for _, label in LATENCY_RATIOS],
                rows)


def size_table(results):
  ours_bytes = results.get("export_bytes", {})
  peer = results.get("peer_tflite", {})
  rows = []
  for model in sorted(set(ours_bytes) | set(peer)):
    get = lambda d, k: _n(d[k]) if k in d else "-"
    rows.append(["`%s`" % model,
                 get(ours_bytes.get(model, {}), "tflite_float32"),
                 get(ours_bytes.get(model, {}), "tflite_int8")] + [
                     get(peer.get(model, {}).get(v, {}), "bytes")
                     for v in ("float32", "dynamic_range", "int8")])
  return _table(["model", "ours float32", "ours int8", "peer float32",
                 "peer dynamic range", "peer int8"], rows)


def rss_tables(results):
  per_binary = _table(["binary", "peak RSS MB, max over its runs"], [
      [binary, _n(mb)]
      for binary, mb in sorted(results.get("peak_rss_mb_per_binary",
                                           {}).items())])
  per_run = _table(["run", "peak RSS MB, median (min-max)"], [
      [label, _cell(s)]
      for label, s in sorted(results.get("peak_rss_mb", {}).items())])
  return per_binary + [""] + per_run


# ---------------------------------------------------------------------------
# The document.


def _loads(values):
  return "/".join("%.2f" % v for v in values) if values else "?"


def run_line(results):
  """The paragraph naming the command, machine, versions and load."""
  machine = results.get("machine", {})
  return (
      "Command: `%s`. Machine: %s, %s cores (%s logical CPUs), bfloat16 "
      "units: %s. TensorFlow %s, Keras %s (peer). Load average (1/5/15 min) "
      "before %s, after %s. %s of %s interleaved repeats in %s s." % (
          results.get("command", "?"), machine.get("cpu", "?"),
          machine.get("cores", "?"), machine.get("logical_cpus", "?"),
          ", ".join(machine.get("bfloat16_units", [])) or "none",
          results.get("tensorflow_version", "?"),
          results.get("keras_version") or "?",
          _loads(results.get("load_average_before")),
          _loads(results.get("load_average_after")),
          results.get("repeats_done", "?"), results.get("repeats", "?"),
          _n(results.get("seconds", 0))))


def teachers_line(results):
  made = ["%s %s" % (who, family)
          for family, t in sorted(results.get("teachers", {}).items())
          for who in ("ours", "peer") if t.get(who + "_made_for_speed_only")]
  if not made:
    return None
  return ("Teachers made for speed only in this run (20 steps for ours, 1 "
          "epoch for the peer's; throughput does not depend on the weights' "
          "values): %s." % ", ".join(made))


def _rate_words(epochs):
  """What a run's figure is, for the section titles."""
  if epochs <= 2:
    return "second epoch"
  return "sustained rate of epochs 2-%d" % epochs


def render(results, source="docs/benchmarks/speed.json"):
  """The markdown of every table, from the JSON at `source`."""
  out = ["<!-- generated by benchmarks/speed_report.py from %s -->" % source,
         "", run_line(results)]
  line = teachers_line(results)
  if line:
    out += ["", line]
  out += ["", "Figures are medians over the repeats (min-max over the "
          "repeats in brackets; for latency, the 10th-90th percentiles of "
          "the calls, medians over the repeats). Ratios are of medians.",
          "", "### Targets", ""] + targets_table(results)
  rows = results.get("rows", {})
  sections = (
      ("matmul" in rows, "Matmul ceiling ([128, 784] x [784, 1200] float32)",
       matmul_table),
      (_rows_of(results, "train"), "Training (examples/sec, %d-epoch runs, "
       "%s; GFLOP/s = 3 x forward FLOPs per example x ex/s)" % (
           results.get("epochs", 2), _rate_words(results.get("epochs", 2))),
       train_table),
      ("input" in rows, "Input pipeline alone", input_table),
      (_rows_of(results, "distill"), "Distillation (examples/sec, %s, "
       "T = %g, alpha = %g)" % (_rate_words(results.get("epochs", 2)),
                                results.get("temperature", 8),
                                results.get("alpha", 0.5)), distill_table),
      (_rows_of(results, "train") or _rows_of(results, "distill"),
       "Per-repeat ratios (each repeat's ours / peer on its own)",
       per_repeat_table),
      (_rows_of(results, "latency"), "Inference latency (microseconds per "
       "call, median (p10-p90))", latency_table),
      (_rows_of(results, "latency"), "Latency ratios (peer median / our "
       "median: above 1, ours is faster)", latency_ratio_table),
      (results.get("export_bytes") or results.get("peer_tflite"),
       "TFLite file sizes (bytes)", size_table),
      (results.get("peak_rss_mb"), "Peak RSS of every child process",
       rss_tables),
  )
  for present, title, table in sections:
    if present:
      out += ["", "### " + title, ""] + table(results)
  return "\n".join(out) + "\n"


def splice(document, tables, section="tables"):
  """`document` with the text between `section`'s markers replaced by `tables`.

  Markers missing: they and the tables are appended. A "Why targets are
  missed" section missing: it is appended with a placeholder paragraph.
  """
  begin, end = markers(section)
  if begin in document and end in document:
    head, rest = document.split(begin, 1)
    _, tail = rest.split(end, 1)
    document = head + begin + "\n" + tables + end + tail
  else:
    document = (document.rstrip("\n") + "\n\n" if document.strip() else
                "# Speed: every path beside the Keras 3 peer (issue 7)\n\n")
    document += begin + "\n" + tables + end + "\n"
  if WHY_HEADING not in document:
    document = document.rstrip("\n") + "\n\n%s\n\n%s\n" % (WHY_HEADING,
                                                          WHY_PLACEHOLDER)
  return document


def main(argv):
  del argv
  with open(FLAGS.input_json) as f:
    results = json.load(f)
  document = ""
  if os.path.exists(FLAGS.output_md):
    with open(FLAGS.output_md) as f:
      document = f.read()
  fileio.write_text(FLAGS.output_md,
                    splice(document, render(results, FLAGS.input_json),
                           FLAGS.section))
  print("wrote %s" % FLAGS.output_md)


if __name__ == "__main__":
  define_flags()
  app.run(main)
