"""The report: rows, deltas, markdown, JSON keys, chart and summaries."""

import json
import os

from distill_v1.compat import tf
from distill_v1.pipeline import report


def _rows():
  return [
      report.stage_row("teacher", "cnn_teacher", 3274634, 27844106,
                       "/x/model_float32.tflite", 13102748, 0.9291, 0.80),
      report.stage_row("int8", "cnn_student", 20490, 1234567,
                       "/x/model_int8.tflite", 26248, 0.8850, 0.02),
  ]


def test_finish_rows_computes_deltas_against_the_first_row():
  rows = report.finish_rows(_rows())
  assert rows[0]["accuracy_delta_vs_teacher"] == 0.0
  assert abs(rows[1]["accuracy_delta_vs_teacher"] - (0.8850 - 0.9291)) < 1e-12
  assert abs(rows[1]["speedup_vs_teacher"] - 40.0) < 1e-9
  assert tuple(rows[1].keys()) == report.STAGE_KEYS


def test_markdown_table_formats_people_units():
  text = report.markdown_table(report.finish_rows(_rows()))
  assert "| int8 | cnn_student | 20,490 | 1.23 M | `/x/model_int8.tflite` | " \
         "25.6 KB | 88.50% | -4.41 pt | 0.020 ms | 40.0x |" in text
  assert "12.50 MB" in text


def test_write_report_files_agree(tmp_path):
  paths = report.write_report(str(tmp_path), _rows(), {"preset": "quick"},
                              {"tensorflow": tf.__version__}, "quick run",
                              notes=["student: cnn_student"])
  with open(paths["json"]) as f:
    data = json.load(f)
  assert [s["stage"] for s in data["stages"]] == ["teacher", "int8"]
  assert data["flags"] == {"preset": "quick"}
  assert data["versions"]["tensorflow"] == tf.__version__
  with open(paths["markdown"]) as f:
    markdown = f.read()
  assert "88.50%" in markdown and "student: cnn_student" in markdown
  if paths["chart"]:
    with open(paths["chart"], "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "report.png" in markdown
  else:
    assert "install matplotlib" in markdown
  events = tf.io.gfile.glob(os.path.join(str(tmp_path), "tensorboard",
                                         "events.*"))
  tags = set()
  for event in tf.compat.v1.train.summary_iterator(events[0]):
    tags.update(v.tag for v in event.summary.value)
  assert "report/text" in tags
  assert ("report/accuracy_vs_size" in tags) == bool(paths["chart"])


def test_without_matplotlib_the_report_says_how_to_get_the_chart(
    tmp_path, monkeypatch):
  monkeypatch.setattr(report, "chart_png", lambda rows, title: None)
  paths = report.write_report(str(tmp_path), _rows(), {}, {}, "t")
  assert paths["chart"] is None
  with open(paths["markdown"]) as f:
    assert "install matplotlib" in f.read()
