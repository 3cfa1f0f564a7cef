r"""Writes docs/benchmarks.md's tables from benchmarks/speed.py's JSON.

Usage:
  python benchmarks/speed_report.py --input_json=docs/benchmarks/speed.json \
      --output_md=docs/benchmarks.md

The tables (medians, ranges, ratios of medians, each target met or missed)
replace what lies between the BEGIN and END markers of --output_md, so the
analysis written around them stays; a file without the markers is written
whole.
"""

import json
import os
import sys

from absl import app
from absl import flags
import numpy as np

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

TARGETS = {"train": 1.25, "online": 1.25, "cached": 1.4, "mlp_ceiling": 0.75,
           "frozen_batch1": 2.0, "input": 10.0, "distill_rss_mb": 1500.0}


def _n(value):
  return format(int(round(value)), ",")


def _cell(summary):
  return "%s (%s-%s)" % (_n(summary["median"]), _n(summary["min"]),
                         _n(summary["max"]))


def _verdict(ok):
  return "met" if ok else "**missed**"


def train_table(results):
  """Rows of the training table and the checks they feed."""
  rates, flops = results["rates"], results.get("flops_per_example", {})
  ceiling = results.get("matmul_tensorflow", {}).get("gflops")
  lines = ["| model | ours ex/s | peer ex/s | ours / peer | target 1.25x | "
           "ours GFLOP/s | of TF matmul ceiling | bfloat16 ex/s | bfloat16 "
           "/ peer | peer mixed_bfloat16 ex/s | bfloat16 / peer "
           "mixed_bfloat16 |", "| --- | ---: | ---: | ---: | --- | ---: | "
           "---: | ---: | ---: | ---: | ---: |"]
  fastest = 0.0
  for model in sorted(flops):
    ours, peer = rates["train/%s/ours" % model], rates["train/%s/peer" % model]
    ratio = ours["median"] / peer["median"]
    gflops = 3.0 * flops[model] * ours["median"] / 1e9
    fraction = gflops / ceiling if ceiling else float("nan")
    fastest = max(fastest, ours["median"])
    bf16 = rates.get("train/%s/ours_bfloat16" % model)
    peer16 = rates.get("train/%s/peer_bfloat16" % model)
    lines.append("| `%s` | %s | %s | %.2fx | %s | %.1f | %.0f%%%s | %s | %s |"
                 " %s |"
                 % (model, _cell(ours), _cell(peer), ratio,
                    _verdict(ratio >= TARGETS["train"]), gflops,
                    100 * fraction,
                    (" (target 75%%: %s)" % _verdict(
                        fraction >= TARGETS["mlp_ceiling"])
                     if model.startswith("mlp") else ""),
                    _cell(bf16) if bf16 else "-",
                    "%.2fx" % (bf16["median"] / peer["median"]) if bf16
                    else "-", _pair(bf16, peer16)))
  return lines, fastest


def _pair(ours, peer):
  """`peer cell | ours / peer` cells, or dashes when either is missing."""
  if not ours or not peer:
    return "- | -"
  return "%s | %.2fx" % (_cell(peer), ours["median"] / peer["median"])


def distill_table(results):
  rates = results["rates"]
  families = sorted({k.split("/")[1] for k in rates
                     if k.startswith("distill/")})
  lines = ["| family | ours online | ours cached | peer Distiller | online / "
           "peer (target 1.25x) | cached / peer (target 1.4x) | online "
           "bfloat16 | bfloat16 / peer | peer mixed_bfloat16 | bfloat16 / "
           "peer mixed_bfloat16 |", "| --- | ---: | ---: | ---: | --- "
           "| --- | ---: | ---: | ---: | ---: |"]
  for family in families:
    get = lambda k, f=family: rates.get("distill/%s/%s" % (f, k))
    peer, online, cached = get("peer"), get("ours_online"), get("ours_cached")
    bf16 = get("ours_online_bfloat16")
    peer16 = get("peer_bfloat16")
    r_online = online["median"] / peer["median"]
    r_cached = cached["median"] / peer["median"]
    lines.append("| %s | %s | %s | %s | %.2fx %s | %.2fx %s | %s | %s | %s |"
                 % (
        family, _cell(online), _cell(cached), _cell(peer), r_online,
        _verdict(r_online >= TARGETS["online"]), r_cached,
        _verdict(r_cached >= TARGETS["cached"]),
        _cell(bf16) if bf16 else "-",
        "%.2fx" % (bf16["median"] / peer["median"]) if bf16 else "-",
        _pair(bf16, peer16)))
  return lines


def _median_over_repeats(repeats, path):
  values = []
  for entry in repeats:
    node = entry
    for key in path:
      node = node[key]
    values.append(node)
  return float(np.median(values)), min(values), max(values)


def latency_table(results):
  lines = ["| model | batch | ours session | ours frozen graph | TFLite "
           "float32 | TFLite int8 | peer `model(x)` | peer tf.function | "
           "peer model(x) / our frozen graph |", "| --- | ---: | ---: | ---: "
           "| ---: | ---: | ---: | ---: | --- |"]
  for model, row in sorted(results.get("latency", {}).items()):
    repeats = row["repeats"]
    for batch in ("batch_1", "batch_128"):
      cells = []
      for path in (("ours", batch, "session_us"),
                   ("ours", batch, "frozen_graph", "median_us"),
                   ("ours", batch, "tflite_float32", "median_us"),
                   ("ours", batch, "tflite_int8", "median_us"),
                   ("peer", batch, "keras_call_us"),
                   ("peer", batch, "tf_function_us")):
        cells.append(_median_over_repeats(repeats, path))
      ratio = cells[4][0] / cells[1][0]
      target = (" %s" % _verdict(ratio >= TARGETS["frozen_batch1"])
                if batch == "batch_1" else "")
      lines.append("| `%s` | %s | %s | %.2fx%s |" % (
          model, batch.split("_")[1],
          " | ".join("%s (%s-%s)" % (_n(m), _n(lo), _n(hi))
                     for m, lo, hi in cells), ratio, target))
  return lines


def peer_tflite_table(results):
  lines = ["| model | variant | bytes | batch-1 invoke us, median (p90) | "
           "test accuracy |", "| --- | --- | ---: | ---: | ---: |"]
  for model, row in sorted(results.get("latency", {}).items()):
    for variant in ("float32", "dynamic_range", "int8"):
      entry = row.get("peer_tflite", {}).get(variant)
      if entry:
        lines.append("| `%s` | %s | %s | %s (%s) | %.2f%% |" % (
            model, variant, _n(entry["bytes"]),
            _n(entry["latency_us_median"]), _n(entry["latency_us_p90"]),
            100 * entry["test_accuracy"]))
  return lines


def rss_table(results):
  lines = ["| binary and run | peak RSS MB, median (range) |", "| --- | ---: |"]
  for name, summary in sorted(results.get("peak_rss_mb", {}).items()):
    check = ""
    if name.startswith("distill.py cnn"):
      check = " (target < 1,500: %s)" % _verdict(
          summary["max"] < TARGETS["distill_rss_mb"])
    lines.append("| %s | %s%s |" % (name, _cell(summary), check))
  return lines


def render(results, source="docs/benchmarks/speed.json"):
  """The markdown text of every table, from the JSON at `source`."""
  out = ["<!-- generated by benchmarks/speed_report.py from %s -->" %
         source, ""]
  machine = results.get("machine", {})
  out.append("Run: `%s`; %s, %s cores, TensorFlow %s; load average before "
             "%s, after %s; %d interleaved repeats; microseconds and "
             "examples/sec are medians (ranges) over the repeats." % (
                 results.get("command", "?"), machine.get("cpu", "?"),
                 machine.get("cores", "?"),
                 results.get("tensorflow_version", "?"),
                 "/".join("%.2f" % x for x in results.get(
                     "load_average_before", [])),
                 "/".join("%.2f" % x for x in results.get(
                     "load_average_after", [])), results.get("repeats", 0)))
  if results.get("teachers_made_for_speed_only"):
    out.append("")
    out.append("Teachers of %s were made for speed only (20 steps; "
               "throughput does not depend on the weights' values)." %
               ", ".join(results["teachers_made_for_speed_only"]))
  fastest = 0.0
  if "matmul_tensorflow" in results:
    out += ["", "### Matmul ceiling ([128, 784] x [784, 1200] float32)", "",
            "| backend | GFLOP/s median (range) |", "| --- | ---: |"]
    for backend in ("numpy", "tensorflow"):
      r = results["matmul_" + backend]
      out.append("| %s | %.1f (%.1f-%.1f) |" % (backend, r["gflops"],
                                                 r["gflops_min"],
                                                 r["gflops_max"]))
  if any(k.startswith("train/") for k in results.get("rates", {})):
    lines, fastest = train_table(results)
    out += ["", "### Training", ""] + lines
  if "input" in results:
    r = results["input"]
    out += ["", "### Input pipeline alone", "",
            "| measure | examples/sec | multiple of the fastest training "
            "loop |", "| --- | ---: | --- |"]
    for key, label in (("examples_per_sec", "one batch per sess.run"),
                       ("examples_per_sec_in_graph", "epoch drained in the "
                        "graph")):
      multiple = r[key] / fastest if fastest else float("nan")
      out.append("| %s | %s | %.1fx (target 10x: %s) |" % (
          label, _n(r[key]), multiple,
          _verdict(multiple >= TARGETS["input"])))
  if any(k.startswith("distill/") for k in results.get("rates", {})):
    out += ["", "### Distillation (T = 8, alpha = 0.5)", ""]
    out += distill_table(results)
  if results.get("latency"):
    out += ["", "### Inference latency (microseconds per call)", ""]
    out += latency_table(results)
    out += ["", "The peer's TFLite files (first repeat; its interpreter, "
            "batch 1 over the test split):", ""]
    out += peer_tflite_table(results)
  if results.get("peak_rss_mb"):
    out += ["", "### Peak memory of each child process", ""]
    out += rss_table(results)
  return "\n".join(out) + "\n"


BEGIN = "<!-- BEGIN speed_report tables -->"
END = "<!-- END speed_report tables -->"


def splice(document, tables):
  """`document` with the text between BEGIN and END replaced by `tables`."""
  if BEGIN not in document or END not in document:
    return BEGIN + "\n" + tables + END + "\n"
  head, rest = document.split(BEGIN, 1)
  _, tail = rest.split(END, 1)
  return head + BEGIN + "\n" + tables + END + tail


def main(argv):
  del argv
  with open(FLAGS.input_json) as f:
    results = json.load(f)
  document = ""
  if os.path.exists(FLAGS.output_md):
    with open(FLAGS.output_md) as f:
      document = f.read()
  fileio.write_text(FLAGS.output_md,
                    splice(document, render(results, FLAGS.input_json)))
  print("wrote %s" % FLAGS.output_md)


if __name__ == "__main__":
  define_flags()
  app.run(main)
