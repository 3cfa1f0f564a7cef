"""The report of the main job: what each stage cost and gained.

Writes `report.json` (keys of DESIGN.md's Interfaces table), `report.md` (a
table for people: accuracies in percent, sizes in KB/MB) and, when matplotlib
is installed, `report.png` (accuracy against file size on a log axis, one
point per stage, batch-1 latency as labels). The table and the chart also go
to TensorBoard as text and image summaries.
"""

import collections
import io
import os

from distill_v1 import fileio
from distill_v1.compat import tf

STAGE_KEYS = ("stage", "model", "params", "flops_per_example", "file",
              "file_bytes", "test_accuracy", "accuracy_delta_vs_teacher",
              "latency_ms_batch_1", "speedup_vs_teacher")
CHART_HINT = ("(no chart: install matplotlib, e.g. `pip install "
              "'distill_v1[viz]'`, and rerun to get report.png)")


def stage_row(stage, model, params, flops_per_example, file, file_bytes,
              test_accuracy, latency_ms_batch_1):
  """One row of the report; the deltas are filled in by `finish_rows`."""
  return collections.OrderedDict([
      ("stage", stage), ("model", model), ("params", params),
      ("flops_per_example", flops_per_example), ("file", file),
      ("file_bytes", file_bytes), ("test_accuracy", test_accuracy),
      ("accuracy_delta_vs_teacher", None),
      ("latency_ms_batch_1", latency_ms_batch_1),
      ("speedup_vs_teacher", None)])


def finish_rows(rows):
  """Fills accuracy_delta_vs_teacher and speedup_vs_teacher from row 0."""
  if not rows:
    return rows
  teacher = rows[0]
  for row in rows:
    if row["test_accuracy"] is not None and (
        teacher["test_accuracy"] is not None):
      row["accuracy_delta_vs_teacher"] = (row["test_accuracy"] -
                                          teacher["test_accuracy"])
    if row["latency_ms_batch_1"] and teacher["latency_ms_batch_1"]:
      row["speedup_vs_teacher"] = (teacher["latency_ms_batch_1"] /
                                   row["latency_ms_batch_1"])
  return rows


def _size(num_bytes):
  if num_bytes is None:
    return "-"
  if num_bytes >= 1 << 20:
    return "%.2f MB" % (num_bytes / float(1 << 20))
  return "%.1f KB" % (num_bytes / 1024.0)


def _num(value, fmt):
  return "-" if value is None else fmt % value


def markdown_table(rows):
  """The report table as Markdown (accuracies in percent)."""
  lines = ["| stage | model | parameters | FLOPs / example | file | size | "
           "test accuracy | vs teacher | batch-1 latency | speed-up |",
           "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | "
           "---: |"]
  for row in rows:
    lines.append("| %s | %s | %s | %s | `%s` | %s | %s | %s | %s | %s |" % (
        row["stage"], row["model"],
        "-" if row["params"] is None else format(row["params"], ","),
        "-" if row["flops_per_example"] is None else
        "%.2f M" % (row["flops_per_example"] / 1e6),
        row["file"] or "-", _size(row["file_bytes"]),
        _num(None if row["test_accuracy"] is None else
             100 * row["test_accuracy"], "%.2f%%"),
        _num(None if row["accuracy_delta_vs_teacher"] is None else
             100 * row["accuracy_delta_vs_teacher"], "%+.2f pt"),
        _num(row["latency_ms_batch_1"], "%.3f ms"),
        _num(row["speedup_vs_teacher"], "%.1fx")))
  return "\n".join(lines)


def chart_png(rows, title):
  """PNG bytes of accuracy vs size, or None without matplotlib."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  points = [r for r in rows if r["file_bytes"] and r["test_accuracy"]]
  figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=100)
  for row in points:
    x, y = row["file_bytes"] / 1024.0, 100 * row["test_accuracy"]
    axes.scatter([x], [y], s=40)
    label = row["stage"]
    if row["latency_ms_batch_1"]:
      label += "\n%.3f ms" % row["latency_ms_batch_1"]
    axes.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4),
                  fontsize=8)
  axes.set_xscale("log")
  axes.set_xlabel("file size (KB, log scale)")
  axes.set_ylabel("test accuracy (%)")
  axes.set_title(title)
  axes.grid(True, which="both", alpha=0.3)
  figure.tight_layout()
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png")
  pyplot.close(figure)
  return buffer.getvalue()


def _tensorboard(folder, markdown, png):
  """Writes the table (text) and the chart (image) as summaries.

  Built from Summary protos, so it works without the tensorboard package
  (which TensorFlow 2.21 does not install; viewing needs it).
  """
  v1 = tf.compat.v1
  text_value = v1.Summary.Value(
      tag="report/text",
      metadata=v1.SummaryMetadata(
          plugin_data=v1.SummaryMetadata.PluginData(plugin_name="text")),
      tensor=tf.make_tensor_proto(markdown))
  values = [text_value]
  if png is not None:
    width = int.from_bytes(png[16:20], "big")  # The PNG IHDR chunk.
    height = int.from_bytes(png[20:24], "big")
    values.append(v1.Summary.Value(
        tag="report/accuracy_vs_size",
        image=v1.Summary.Image(encoded_image_string=png, height=height,
                               width=width, colorspace=4)))
  with tf.Graph().as_default():
    writer = v1.summary.FileWriter(folder)
    writer.add_summary(v1.Summary(value=values), 0)
    writer.close()


def write_report(output_dir, rows, flags_used, versions, title, notes=()):
  """Writes report.json, report.md, report.png and TensorBoard summaries.

  Args:
    output_dir: folder of the report.
    rows: list of dicts with STAGE_KEYS (see `stage_row`, `finish_rows`).
    flags_used: dict of the exact flags of the run.
    versions: dict of package versions.
    title: one line naming the run.
    notes: lines added under the table (e.g. the chosen student).

  Returns:
    dict of the paths written (json, markdown, chart or None).
  """
  rows = finish_rows([collections.OrderedDict(r) for r in rows])
  report = collections.OrderedDict([("title", title), ("stages", rows),
                                    ("flags", flags_used),
                                    ("versions", versions),
                                    ("notes", list(notes))])
  json_path = os.path.join(output_dir, "report.json")
  fileio.write_json(json_path, report)
  table = markdown_table(rows)
  png = chart_png(rows, title)
  chart_path = None
  lines = ["# %s" % title, "", table, ""]
  lines += ["- %s" % n for n in notes]
  if png is not None:
    chart_path = os.path.join(output_dir, "report.png")
    fileio.write_bytes(chart_path, png)
    lines += ["", "![accuracy vs size](report.png)"]
  else:
    lines += ["", CHART_HINT]
  lines += ["", "Versions: %s" % ", ".join(
      "%s %s" % kv for kv in sorted(versions.items())), ""]
  markdown_path = os.path.join(output_dir, "report.md")
  fileio.write_text(markdown_path, "\n".join(lines))
  _tensorboard(os.path.join(output_dir, "tensorboard"), table, png)
  return {"json": json_path, "markdown": markdown_path, "chart": chart_path}
