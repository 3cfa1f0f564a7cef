"""The main job end to end on a tiny data set: every stage, the report, resume.

One module-level run goes through every stage (teacher, distill, prune with
structured thinning and magnitude pruning, quantize, export, verify); its
report.json, report.md, the files on disk and the TensorBoard summary must
agree with each other. Verification runs the real runtimes (TFLite
interpreter, SavedModel, GraphDef) in this process instead of a fresh one, to
save a TensorFlow start per export; tests/compress_script_test.py runs the
binary with the fresh processes. A second, lighter pipeline (float32 export
only) is interrupted inside
the distill stage and rerun (finished stages reused, the interrupted one
resumed from its checkpoint), then rerun with another temperature (the distill
stage and everything after it redone, the teacher reused).
"""

import collections
import contextlib
import io
import json
import os
import re

import numpy as np
import pytest

from distill_v1 import checkpoints
from distill_v1.compat import tf
from distill_v1.evaluation import verify
from distill_v1.evaluation import verify_runner
from distill_v1.pipeline import compress_lib
from distill_v1.pipeline import report as report_lib
from distill_v1.pipeline import stages
from distill_v1.training import loop
from tests import testing_utils

STAGE_FOLDERS = ("teacher", "distill", "prune", "quantize", "export",
                 "verify")
ROW_STAGES = ["teacher", "distilled", "pruned", "frozen_graph", "saved_model",
              "float32", "dynamic_range", "float16", "int8"]
STEPS_PER_EPOCH = 8  # 256 training examples in batches of 32.


def _splits():
  """256 train / 64 test images of 8x8, 4 learnable classes."""
  return testing_utils.tiny_splits(num_train=256, num_test=64, size=8,
                                   num_classes=4)


def _config(output_dir, **overrides):
  """Every stage on, each as small as it gets."""
  values = dict(
      output_dir=output_dir, dataset="tiny", batch_size=32,
      teacher_model="cnn_student", teacher_epochs=2.0,
      teacher_optimizer="sgd", teacher_learning_rate=0.1,
      teacher_learning_rate_decay="none", teacher_weight_decay=0.0,
      student_model="cnn_student",
      student_options={"layer_widths": {"conv1": 8, "conv2": 8}},
      distill_epochs=2.0, distill_learning_rate=0.1, temperature=4.0,
      alpha=0.1, structured_fraction=0.5, target_sparsity=0.5,
      prune_epochs=1.0, prune_learning_rate=0.05, latency_repeats=3,
      num_calibration_examples=32)
  values.update(overrides)
  return compress_lib.make_config(**values)


def _run(config, splits):
  """Runs the pipeline; returns (result, stage log lines, training output)."""
  lines = []
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    result = compress_lib.run(config, splits, log=lines.append)
  return result, lines, out.getvalue()


def _in_process_verification(export_dir, relative_paths, test_images,
                             test_labels, compare_images,
                             latency_repeats=verify.DEFAULT_LATENCY_REPEATS,
                             warmup=verify.DEFAULT_WARMUP, timeout=None,
                             python=None):
  """verify.run_in_fresh_process without the process (same runtime code)."""
  del timeout, python
  results = {}
  for path in relative_paths:
    results[path] = verify_runner.run_file(
        os.path.join(export_dir, path), np.asarray(test_images, np.float32),
        np.asarray(test_labels, np.int64),
        np.asarray(compare_images, np.float32), warmup, latency_repeats)
  return json.loads(json.dumps({"formats": results,
                                "process": {"pid": os.getpid()}}))


def _read(path, mode="r"):
  with open(path, mode) as f:
    return f.read()


def _counting(mp, calls):
  """Counts the calls of every stage function of the pipeline."""
  for name in STAGE_FOLDERS:
    original = getattr(compress_lib._Job, name)  # pylint: disable=protected-access

    def wrapper(self, *args, _name=name, _original=original):
      calls[_name] += 1
      return _original(self, *args)

    mp.setattr(compress_lib._Job, name, wrapper)  # pylint: disable=protected-access


# ---------------------------------------------------------------------------
# 1. Every stage, and a report whose files agree.


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("full") / "run")
  config = _config(out)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(verify, "run_in_fresh_process", _in_process_verification)
    result, lines, output = _run(config, _splits())
  with open(os.path.join(out, "report.json")) as f:
    data = json.load(f)
  return {"out": out, "config": config, "result": result, "lines": lines,
          "output": output, "json": data,
          "markdown": _read(os.path.join(out, "report.md"))}


def test_every_stage_ran_and_finished(full_run):
  out, lines = full_run["out"], full_run["lines"]
  for name in STAGE_FOLDERS:
    state = stages.read_state(os.path.join(out, name))
    assert state["complete"] is True, name
    assert "== %s: done in" % name in "\n".join(lines)
  assert full_run["json"]["stages"][0]["stage"] == "teacher"
  assert [r["stage"] for r in full_run["json"]["stages"]] == ROW_STAGES
  # The final line names the report files.
  assert lines[-1].startswith("== report: %s" % os.path.join(out,
                                                              "report.md"))
  # Training progress went to stdout: the teacher, distill and prune runs.
  assert full_run["output"].count("epoch 2/2 done") == 2
  assert "epoch 1/1 done" in full_run["output"]


def test_report_rows_have_the_interface_keys(full_run):
  for row in full_run["json"]["stages"]:
    # report.json is written with sorted keys: the set is the contract.
    assert sorted(row) == sorted(report_lib.STAGE_KEYS)
    assert 0.0 <= row["test_accuracy"] <= 1.0
    assert row["latency_ms_batch_1"] > 0
    assert row["file_bytes"] > 0


def test_report_rows_match_the_files_on_disk(full_run):
  out = full_run["out"]
  for row in full_run["json"]["stages"]:
    # Relative to output_dir, and its size is the file's (or folder's).
    assert not os.path.isabs(row["file"]), row
    path = os.path.join(out, row["file"])
    if os.path.isdir(path):
      size = sum(os.path.getsize(os.path.join(base, name))
                 for base, _, names in os.walk(path) for name in names)
    else:
      size = os.path.getsize(path)
    assert row["file_bytes"] == size, row
  files = {r["stage"]: r["file"] for r in full_run["json"]["stages"]}
  assert files["teacher"] == os.path.join("teacher", "export",
                                          "model_float32.tflite")
  assert files["distilled"] == os.path.join("distill", "export",
                                            "model_float32.tflite")
  assert files["pruned"] == os.path.join("prune", "export",
                                         "model_float32.tflite")
  assert files["frozen_graph"] == os.path.join("export", "frozen_graph.pb")
  assert files["saved_model"] == os.path.join("export", "saved_model", "1")
  for variant in ("float32", "dynamic_range", "float16", "int8"):
    assert files[variant] == os.path.join("export",
                                          "model_%s.tflite" % variant)


def test_export_folder_holds_every_format(full_run):
  folder = os.path.join(full_run["out"], "export")
  assert os.path.isfile(os.path.join(folder, "frozen_graph.pb"))
  assert os.path.isfile(os.path.join(folder, "saved_model", "1",
                                     "saved_model.pb"))
  for variant in ("float32", "dynamic_range", "float16", "int8"):
    assert os.path.getsize(os.path.join(
        folder, "model_%s.tflite" % variant)) > 0
  manifest = json.loads(_read(os.path.join(folder, "export.json")))
  assert manifest["model_options"] == {"layer_widths": {"conv1": 4,
                                                        "conv2": 4}}


def test_pruning_shrank_and_sparsified_the_student(full_run):
  rows = {r["stage"]: r for r in full_run["json"]["stages"]}
  # Structured thinning at 0.5 halves conv1 and conv2 (8 -> 4 filters):
  # 3*3*1*4+4 + 3*3*4*4+4 + (2*2*4)*4+4 weights on 8x8 images.
  assert rows["distilled"]["params"] == (9 * 8 + 8) + (9 * 8 * 8 + 8) + (
      2 * 2 * 8 * 4 + 4)
  assert rows["pruned"]["params"] == (9 * 4 + 4) + (9 * 4 * 4 + 4) + (
      2 * 2 * 4 * 4 + 4)
  assert rows["pruned"]["flops_per_example"] < rows["distilled"][
      "flops_per_example"]
  for stage in ROW_STAGES[3:]:
    assert rows[stage]["params"] == rows["pruned"]["params"]
  # Magnitude pruning: about half of each stripped kernel is zero.
  prefix = checkpoints.resolve_checkpoint(
      os.path.join(full_run["out"], "prune", "stripped"))
  kernel = tf.train.load_checkpoint(prefix).get_tensor(
      "cnn_student/conv2/kernel")
  assert np.mean(kernel == 0) == pytest.approx(0.5, abs=0.05)
  assert any(n.startswith("magnitude: ") for n in full_run["json"]["notes"])
  assert any(n.startswith("structured: ") for n in full_run["json"]["notes"])


def test_deltas_and_speedups_follow_from_the_rows(full_run):
  rows = full_run["json"]["stages"]
  teacher = rows[0]
  assert teacher["accuracy_delta_vs_teacher"] == 0.0
  assert teacher["speedup_vs_teacher"] == pytest.approx(1.0)
  for row in rows:
    assert row["accuracy_delta_vs_teacher"] == pytest.approx(
        row["test_accuracy"] - teacher["test_accuracy"], abs=1e-12)
    assert row["speedup_vs_teacher"] == pytest.approx(
        teacher["latency_ms_batch_1"] / row["latency_ms_batch_1"])


def _size_text(num_bytes):
  if num_bytes >= 1 << 20:
    return "%.2f MB" % (num_bytes / float(1 << 20))
  return "%.1f KB" % (num_bytes / 1024.0)


def test_markdown_table_agrees_with_report_json(full_run):
  lines = [l for l in full_run["markdown"].splitlines()
           if l.startswith("| ") and not l.startswith(("| stage ",
                                                       "| --- "))]
  rows = full_run["json"]["stages"]
  assert len(lines) == len(rows)
  for line, row in zip(lines, rows):
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[0] == row["stage"] and cells[1] == row["model"]
    assert cells[2] == format(row["params"], ",")
    assert cells[3] == "%.2f M" % (row["flops_per_example"] / 1e6)
    assert cells[4] == "`%s`" % row["file"]
    assert cells[5] == _size_text(row["file_bytes"])
    assert cells[6] == "%.2f%%" % (100 * row["test_accuracy"])
    assert cells[7] == "%+.2f pt" % (100 * row["accuracy_delta_vs_teacher"])
    assert cells[8] == "%.3f ms" % row["latency_ms_batch_1"]
    assert cells[9] == "%.1fx" % row["speedup_vs_teacher"]
  assert full_run["markdown"].startswith(
      "# %s\n" % full_run["json"]["title"])
  assert ("cnn_student -> cnn_student (conv1=8, conv2=8) on tiny" in
          full_run["json"]["title"])


def test_report_json_has_flags_versions_and_notes(full_run):
  data = full_run["json"]
  # Without flags_used, the report records the config of the run.
  assert data["flags"]["temperature"] == 4.0
  assert data["flags"]["structured_fraction"] == 0.5
  assert data["flags"]["student_options"] == {
      "layer_widths": {"conv1": 8, "conv2": 8}}
  assert data["versions"]["tensorflow"] == tf.__version__
  assert data["versions"]["numpy"] == np.__version__
  assert "python" in data["versions"]
  assert any(n.startswith("quantization: post-training") for n in
             data["notes"])
  for note in data["notes"]:
    assert "- %s" % note in full_run["markdown"]


def test_chart_and_tensorboard_summaries(full_run):
  out = full_run["out"]
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top,unused-import
    has_matplotlib = True
  except ImportError:
    has_matplotlib = False
  chart = os.path.join(out, "report.png")
  assert os.path.isfile(chart) == has_matplotlib
  if has_matplotlib:
    assert _read(chart, "rb")[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![accuracy vs size](report.png)" in full_run["markdown"]
    assert full_run["result"]["report"]["chart"] == chart
  else:
    assert report_lib.CHART_HINT in full_run["markdown"]
  events = tf.io.gfile.glob(os.path.join(out, "tensorboard", "events.*"))
  assert len(events) == 1
  texts = {}
  for event in tf.compat.v1.train.summary_iterator(events[0]):
    for value in event.summary.value:
      if value.tag == "report/text":
        texts[value.tag] = tf.make_ndarray(value.tensor).item().decode()
      else:
        texts[value.tag] = None
  assert ("report/accuracy_vs_size" in texts) == has_matplotlib
  table = texts["report/text"]
  assert table == report_lib.markdown_table(full_run["json"]["stages"])
  assert table in full_run["markdown"]


# ---------------------------------------------------------------------------
# 2. and 3. Interrupted and rerun; stale flags redo the rest.

INTERRUPT_AT = 4  # Steps of the distill stage before the interruption.


def _light_config(output_dir, **overrides):
  return _config(output_dir, formats=("float32",), **overrides)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
  """The pipeline interrupted in the distill stage, then rerun."""
  out = str(tmp_path_factory.mktemp("resume") / "run")
  splits = _splits()
  real_train = loop.train
  snapshot = {"out": out}
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(verify, "run_in_fresh_process", _in_process_verification)

    def interrupted_train(model_fn, splits_, config, spec, **kwargs):
      if config.train_dir == os.path.join(out, "distill", "train"):
        # Ctrl-C right after the first checkpoint.
        real_train(model_fn, splits_, config._replace(max_steps=INTERRUPT_AT),
                   spec, **kwargs)
        raise KeyboardInterrupt()
      return real_train(model_fn, splits_, config, spec, **kwargs)

    first_calls = collections.Counter()
    with pytest.MonkeyPatch.context() as inner:
      inner.setattr(loop, "train", interrupted_train)
      _counting(inner, first_calls)
      with pytest.raises(KeyboardInterrupt):
        _run(_light_config(out), splits)
    snapshot["first_calls"] = first_calls
    snapshot["distill_state"] = stages.read_state(os.path.join(out,
                                                               "distill"))
    snapshot["distill_checkpoint"] = checkpoints.latest_checkpoint(
        os.path.join(out, "distill", "train"))
    teacher_json = os.path.join(out, "teacher", stages.STATE_FILENAME)
    snapshot["teacher_before"] = (_read(teacher_json),
                                  os.stat(teacher_json).st_mtime_ns)
    snapshot["folders_after_interrupt"] = sorted(os.listdir(out))

    calls = collections.Counter()
    resumed_from = []

    def recording_train(model_fn, splits_, config, spec, **kwargs):
      resumed_from.append((config.train_dir,
                           checkpoints.latest_checkpoint(config.train_dir)))
      return real_train(model_fn, splits_, config, spec, **kwargs)

    with pytest.MonkeyPatch.context() as inner:
      inner.setattr(loop, "train", recording_train)
      _counting(inner, calls)
      result, lines, output = _run(_light_config(out), splits)
    snapshot.update(calls=calls, resumed_from=resumed_from, result=result,
                    lines=lines, output=output,
                    teacher_after=(_read(teacher_json),
                                   os.stat(teacher_json).st_mtime_ns))
    state = tf.train.get_checkpoint_state(os.path.join(out, "distill",
                                                       "train"))
    snapshot["distill_checkpoints"] = [
        os.path.basename(p) for p in state.all_model_checkpoint_paths]
    snapshot["states"] = {n: stages.read_state(os.path.join(out, n))
                          for n in STAGE_FOLDERS}
  return snapshot


def test_interrupted_stage_is_left_incomplete_with_its_checkpoint(
    resumed_run):
  assert resumed_run["first_calls"] == {"teacher": 1, "distill": 1}
  assert resumed_run["distill_state"]["complete"] is False
  assert resumed_run["distill_checkpoint"].endswith(
      "model.ckpt-%d" % INTERRUPT_AT)
  # Nothing after the interrupted stage was started.
  assert resumed_run["folders_after_interrupt"] == ["distill", "teacher"]


def test_rerun_reuses_finished_stages_and_resumes_the_interrupted_one(
    resumed_run):
  out = resumed_run["out"]
  # The teacher stage: not called, its stage.json not rewritten.
  assert resumed_run["calls"]["teacher"] == 0
  assert resumed_run["teacher_after"] == resumed_run["teacher_before"]
  assert "[teacher] up to date, reusing %s" % os.path.join(
      out, "teacher") in resumed_run["lines"]
  assert "[distill] resuming an interrupted run" in resumed_run["lines"]
  # The teacher's cached logits were reused, not recomputed.
  assert any(l.startswith("teacher logits: reusing")
             for l in resumed_run["lines"])
  for name in STAGE_FOLDERS[1:]:
    assert resumed_run["calls"][name] == 1, name
    assert resumed_run["states"][name]["complete"] is True
  # The distill run continued from its checkpoint to the end of its 2 epochs.
  distill_dir = os.path.join(out, "distill", "train")
  first = resumed_run["resumed_from"][0]
  assert first[0] == distill_dir
  assert first[1] == os.path.join(distill_dir, "model.ckpt-%d" % INTERRUPT_AT)
  assert re.search(r"resuming from \S*model\.ckpt-%d \(step %d, epoch 0\)" %
                   (INTERRUPT_AT, INTERRUPT_AT), resumed_run["output"])
  assert resumed_run["distill_checkpoints"] == [
      "model.ckpt-%d" % INTERRUPT_AT, "model.ckpt-%d" % STEPS_PER_EPOCH,
      "model.ckpt-%d" % (2 * STEPS_PER_EPOCH)]
  final = tf.train.load_checkpoint(os.path.join(
      distill_dir, "model.ckpt-%d" % (2 * STEPS_PER_EPOCH)))
  assert final.get_tensor("global_step") == 2 * STEPS_PER_EPOCH


def test_resumed_distillation_matches_the_uninterrupted_one(resumed_run,
                                                            full_run):
  # Same teacher and student recipe as full_run (only the export formats
  # differ, which the distill stage does not depend on).
  assert (resumed_run["states"]["distill"]["fingerprint"] ==
          stages.read_state(os.path.join(full_run["out"],
                                         "distill"))["fingerprint"])
  resumed = tf.train.load_checkpoint(checkpoints.resolve_checkpoint(
      os.path.join(resumed_run["out"], "distill", "train")))
  whole = tf.train.load_checkpoint(checkpoints.resolve_checkpoint(
      os.path.join(full_run["out"], "distill", "train")))
  for name in ("cnn_student/conv1/kernel", "cnn_student/conv2/kernel",
               "cnn_student/logits/kernel"):
    np.testing.assert_allclose(resumed.get_tensor(name),
                               whole.get_tensor(name), rtol=1e-4, atol=1e-5,
                               err_msg=name)


@pytest.fixture(scope="module")
def stale_run(resumed_run):
  """The finished light run, rerun with another distillation temperature."""
  out = resumed_run["out"]
  teacher_json = os.path.join(out, "teacher", stages.STATE_FILENAME)
  before = {n: stages.read_state(os.path.join(out, n)) for n in STAGE_FOLDERS}
  teacher_before = (_read(teacher_json), os.stat(teacher_json).st_mtime_ns)
  calls = collections.Counter()
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(verify, "run_in_fresh_process", _in_process_verification)
    _counting(mp, calls)
    result, lines, output = _run(_light_config(out, temperature=2.0),
                                 _splits())
  after = {n: stages.read_state(os.path.join(out, n)) for n in STAGE_FOLDERS}
  return {"out": out, "before": before, "after": after, "calls": calls,
          "lines": lines, "output": output, "result": result,
          "teacher_before": teacher_before,
          "teacher_after": (_read(teacher_json),
                            os.stat(teacher_json).st_mtime_ns),
          "distill_files": sorted(os.listdir(os.path.join(
              out, "distill", "train"))),
          "distill_spec": checkpoints.read_model_spec(
              os.path.join(out, "distill", "train")),
          "json": json.loads(_read(os.path.join(out, "report.json")))}


def test_changed_flag_redoes_its_stage_and_every_later_one(stale_run):
  assert stale_run["calls"]["teacher"] == 0
  assert stale_run["teacher_after"] == stale_run["teacher_before"]
  for name in STAGE_FOLDERS[1:]:
    assert stale_run["calls"][name] == 1, name
    assert stale_run["after"][name]["complete"] is True
    assert (stale_run["after"][name]["fingerprint"] !=
            stale_run["before"][name]["fingerprint"]), name
    assert ("[%s] inputs changed since the last run: redoing the stage" %
            name) in stale_run["lines"]
  assert stale_run["after"]["distill"]["inputs"]["temperature"] == 2.0
  # Redone from scratch: the old run's checkpoints are gone.
  assert "model.ckpt-%d.index" % INTERRUPT_AT not in stale_run["distill_files"]
  assert "resuming from" not in stale_run["output"]
  assert stale_run["distill_spec"]["temperature"] == 2.0
  # The teacher's cached logits do not depend on T: reused.
  assert any(l.startswith("teacher logits: reusing")
             for l in stale_run["lines"])
  assert [r["stage"] for r in stale_run["json"]["stages"]] == [
      "teacher", "distilled", "pruned", "float32"]


def test_skipping_verify_later_does_not_redo_the_training(stale_run):
  """Only --skip=distill changes what the training stages compute."""
  out = stale_run["out"]
  calls = collections.Counter()
  with pytest.MonkeyPatch.context() as mp:
    _counting(mp, calls)
    _, lines, _ = _run(_light_config(out, temperature=2.0, skip=("verify",)),
                       _splits())
  assert sum(calls.values()) == 0, calls
  for name in STAGE_FOLDERS[:-1]:
    assert "[%s] up to date, reusing %s" % (
        name, os.path.join(out, name)) in lines
  data = json.loads(_read(os.path.join(out, "report.json")))
  assert [r["stage"] for r in data["stages"]] == ["teacher", "distilled",
                                                 "pruned"]


# ---------------------------------------------------------------------------
# 4. --validation_size: a recipe is chosen on held-out training examples.


def test_validation_split_is_reported_and_fingerprinted(tmp_path):
  splits = testing_utils.tiny_splits(num_train=256, num_test=64, size=8,
                                     num_classes=4, num_validation=64)
  out = str(tmp_path / "run")
  config = _light_config(out, validation_size=64, skip=("prune", "verify"))
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(verify, "run_in_fresh_process", _in_process_verification)
    _, lines, _ = _run(config, splits)
  with open(os.path.join(out, "distill", "train", "metrics.json")) as f:
    expected = json.load(f)["validation_accuracy"]
  assert expected is not None
  assert ("[distill] validation accuracy %.2f%% (64 held-out training "
          "examples)" % (100 * expected)) in lines
  state = stages.read_state(os.path.join(out, "distill"))
  assert state["inputs"]["validation_size"] == 64
  with open(os.path.join(out, "report.json")) as f:
    notes = json.load(f)["notes"]
  assert any(n.startswith("distilled student's validation accuracy: %.2f%%"
                          % (100 * expected)) for n in notes), notes


def test_no_validation_split_keeps_the_old_fingerprint_inputs():
  config = _config("/nonexistent")
  inputs = compress_lib._stage_inputs(config, ["temperature"], [])  # pylint: disable=protected-access
  assert "validation_size" not in inputs
  inputs = compress_lib._stage_inputs(  # pylint: disable=protected-access
      compress_lib.make_config(**dict(config, validation_size=10)),
      ["temperature"], [])
  assert inputs["validation_size"] == 10
