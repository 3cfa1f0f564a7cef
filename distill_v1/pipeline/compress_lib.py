"""The main job: teacher -> distill -> prune -> quantize -> export -> verify.

Each stage reuses the library of its own module (the one training loop,
the distillation model_fn, the logits cache, pruning, export and
verification); this module only orders them, keeps each in its own folder
under `output_dir` (see `stages.run_stage`: a finished stage whose inputs did
not change is reused, an interrupted one resumes, a changed one is redone),
and collects one report row per model it produces:

  teacher    the teacher, as a float32 TFLite file (or its graph file);
  distilled  the student trained on the teacher's soft targets;
  pruned     the student after structured and/or magnitude pruning;
  float32, dynamic_range, float16, int8
             the final model in each exported format, each measured in a
             fresh process by its real runtime (the TFLite interpreter).
"""

import collections
import functools
import os
import platform
import time

import numpy as np

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.compression import pruning
from distill_v1.compression import structured
from distill_v1.evaluation import latency as latency_lib
from distill_v1.evaluation import verify
from distill_v1.export import export_lib
from distill_v1.export import tflite
from distill_v1.models import nets_factory
from distill_v1.pipeline import report as report_lib
from distill_v1.pipeline import stages
from distill_v1.teachers import checkpoint_teacher
from distill_v1.teachers import graph_teacher
from distill_v1.teachers import logits_cache
from distill_v1.training import distillation
from distill_v1.training import loop

STAGES = ("teacher", "distill", "prune", "quantize", "export", "verify")
SKIPPABLE = ("distill", "prune", "quantize", "verify")

# Every option of a run, with its default. Presets and flags fill it.
DEFAULTS = collections.OrderedDict([
    ("output_dir", None),
    ("dataset", "fashion_mnist"),
    ("data_dir", None),
    # Training examples held out for tuning: each training stage then
    # reports its validation accuracy (metrics.json); the report stays on
    # the test set.
    ("validation_size", 0),
    ("seed", 0),
    ("batch_size", 128),
    ("skip", ()),
    # Teacher: an existing checkpoint or graph, or trained here.
    ("teacher_model", "cnn_teacher"),
    ("teacher_checkpoint", None),
    ("teacher_graph", None),
    ("teacher_input", None),
    ("teacher_output", None),
    ("teacher_input_scale", 1.0),
    ("teacher_input_layout", "nhwc"),
    ("allow_unsafe_teacher_ops", False),
    ("teacher_epochs", 30.0),
    ("teacher_optimizer", "momentum"),
    ("teacher_learning_rate", 0.02),
    ("teacher_learning_rate_decay", "cosine"),
    ("teacher_weight_decay", 5e-4),
    # Student and distillation (the article's recipe: plain SGD).
    ("student_model", "cnn_student"),
    ("student_options", {}),
    ("distill_epochs", 10.0),
    ("distill_optimizer", "sgd"),
    ("distill_learning_rate", 0.05),
    ("distill_learning_rate_decay", "none"),
    ("distill_weight_decay", 0.0),
    ("temperature", 4.0),
    ("alpha", 0.1),
    ("cached_logits", True),
    # Pruning: structured (physically smaller) then magnitude (sparse).
    ("structured_fraction", 0.0),
    ("target_sparsity", 0.0),
    ("prune_epochs", 2.0),
    ("prune_learning_rate", 0.02),
    # Export and verification.
    ("formats", export_lib.FORMATS),
    ("num_calibration_examples", tflite.DEFAULT_CALIBRATION_EXAMPLES),
    ("latency_repeats", 200),
])


def make_config(**overrides):
  """A config dict: DEFAULTS updated by `overrides` (unknown keys refused)."""
  unknown = sorted(set(overrides) - set(DEFAULTS))
  if unknown:
    raise errors.ConfigError("unknown compress option(s): %s" %
                             ", ".join(unknown))
  config = collections.OrderedDict(DEFAULTS)
  config.update(overrides)
  return config


def validate_config(config):
  """Refuses bad values and combinations before any work starts."""
  if not config["output_dir"]:
    raise errors.ConfigError("--output_dir is required")
  bad = sorted(set(config["skip"]) - set(SKIPPABLE))
  if bad:
    raise errors.ConfigError(
        "--skip=%s: only %s can be skipped (the teacher and the export are "
        "what the job is for)" % (",".join(bad), ", ".join(SKIPPABLE)))
  if config["teacher_checkpoint"] and config["teacher_graph"]:
    raise errors.ConfigError(
        "give at most one of --teacher_checkpoint and --teacher_graph")
  if not config["temperature"] > 0:
    raise errors.ConfigError("--temperature must be > 0, got %r" %
                             config["temperature"])
  if not 0.0 <= config["alpha"] <= 1.0:
    raise errors.ConfigError("--alpha must be in [0, 1], got %r" %
                             config["alpha"])
  for key in ("structured_fraction", "target_sparsity"):
    if not 0.0 <= config[key] < 1.0:
      raise errors.ConfigError("--%s must be in [0, 1), got %r" %
                               (key, config[key]))
  if "prune" not in config["skip"] and not (config["structured_fraction"] or
                                            config["target_sparsity"]):
    raise errors.ConfigError(
        "the prune stage needs --structured_fraction or --target_sparsity "
        "(or --skip=prune)")
  if "distill" in config["skip"] and config["teacher_graph"]:
    raise errors.ConfigError(
        "--skip=distill trains the student alone; a --teacher_graph would "
        "then only be measured: drop one of them")
  for key in ("teacher_epochs", "distill_epochs", "prune_epochs"):
    if not config[key] > 0:
      raise errors.ConfigError("--%s must be > 0, got %r" %
                               (key, config[key]))
  export_lib.parse_formats(config["formats"])
  student_fn = nets_factory.get_network_fn(config["student_model"],
                                           **config["student_options"])
  # Options such as layer_widths are checked when the network is built:
  # build it once now, so that a bad width is refused before the teacher
  # trains (the widths do not depend on the image shape used here).
  with tf.Graph().as_default():
    student_fn(tf.compat.v1.placeholder(tf.float32, [None, 28, 28, 1]), 10)
  if not (config["teacher_checkpoint"] or config["teacher_graph"]):
    nets_factory.get_network_fn(config["teacher_model"])


def versions():
  """Versions that shaped the figures."""
  return {"python": platform.python_version(), "tensorflow": tf.__version__,
          "numpy": np.__version__, "machine": platform.machine(),
          "cores": os.cpu_count()}


class _Job(object):
  """One run of the pipeline (state shared by the stage functions)."""

  def __init__(self, config, splits, log):
    self.config = config
    self.splits = splits
    self.log = log
    self.rows = []
    self.outputs = collections.OrderedDict()

  # ---------------------------------------------------------------- helpers

  def _spec(self, model, options, **extra):
    return checkpoints.make_model_spec(model, options, self.splits,
                                       self.config["dataset"], **extra)

  def _train_config(self, train_dir, epochs, optimizer, learning_rate,
                    decay="none", weight_decay=0.0):
    return loop.TrainConfig(
        train_dir=train_dir, epochs=epochs,
        batch_size=self.config["batch_size"], learning_rate=learning_rate,
        learning_rate_decay=decay, weight_decay=weight_decay,
        optimizer=optimizer, seed=self.config["seed"], save_every_steps=500,
        log_every_steps=200, summary_every_steps=100)

  def _verifier(self):
    return verify.Verifier(latency_repeats=self.config["latency_repeats"])

  def _export(self, prefix, out_dir, formats, model, options):
    """Exports with verification in a fresh process; returns the manifest."""
    return export_lib.export_checkpoint(
        prefix, out_dir, formats=formats, overwrite=True, model=model,
        model_options=options, splits=self.splits,
        num_calibration_examples=self.config["num_calibration_examples"],
        seed=self.config["seed"], verifier=self._verifier())

  @staticmethod
  def _row_from_manifest(stage, model, manifest, fmt):
    check = manifest["verification"]
    row = check["formats"][fmt]
    return report_lib.stage_row(
        stage, model, int(check["size"]["weights"]),
        2 * int(check["size"]["multiply_adds"]),
        os.path.join(manifest["output_dir"], row["file"]),
        int(row["file_bytes"]), float(row["test_accuracy"]),
        float(row["latency_ms_batch_1"]))

  def _teacher_builders(self, teacher):
    """fn(images) -> TeacherHandle, for the teacher stage's result."""
    if teacher["kind"] == "graph":
      c = self.config
      return [functools.partial(
          graph_teacher.build_graph_teacher, path=teacher["path"],
          input_name=c["teacher_input"], output_name=c["teacher_output"],
          input_scale=c["teacher_input_scale"],
          input_layout=c["teacher_input_layout"],
          allow_unsafe_ops=c["allow_unsafe_teacher_ops"])]
    return [functools.partial(
        checkpoint_teacher.build_checkpoint_teacher, model=teacher["model"],
        checkpoint=teacher["checkpoint"],
        num_classes=self.splits.num_classes, scope="teacher")]

  # ----------------------------------------------------------------- stages

  def teacher(self, folder):
    """Trains the teacher (or takes the given one) and measures it."""
    c = self.config
    if c["teacher_graph"]:
      return self._measure_graph_teacher(folder)
    model = c["teacher_model"]
    if c["teacher_checkpoint"]:
      prefix = checkpoints.resolve_checkpoint(c["teacher_checkpoint"])
      try:
        model = checkpoints.read_model_spec(prefix)["model"]
      except errors.CheckpointError:
        pass
      options = {}
    else:
      options = {}
      network_fn = nets_factory.get_network_fn(model)
      train_dir = os.path.join(folder, "train")
      loop.train(
          loop.classifier_model_fn(network_fn, self.splits.num_classes,
                                   scope=model),
          self.splits,
          self._train_config(train_dir, c["teacher_epochs"],
                             c["teacher_optimizer"],
                             c["teacher_learning_rate"],
                             c["teacher_learning_rate_decay"],
                             c["teacher_weight_decay"]),
          self._spec(model, options))
      prefix = checkpoints.resolve_checkpoint(train_dir)
    manifest = self._export(prefix, os.path.join(folder, "export"),
                            [tflite.FLOAT32], model, options)
    row = self._row_from_manifest("teacher", model, manifest, tflite.FLOAT32)
    return {"kind": "checkpoint", "model": model, "checkpoint": prefix,
            "row": row}

  def _measure_graph_teacher(self, folder):
    """A legacy teacher: accuracy and batch-1 latency of its graph file."""
    del folder
    c = self.config
    images = np.asarray(self.splits.test_images, np.float32)
    graph = tf.Graph()
    with graph.as_default():
      images_ph = tf.compat.v1.placeholder(
          tf.float32, [None] + list(images.shape[1:]), name="images")
      handle = self._teacher_builders(
          {"kind": "graph", "path": c["teacher_graph"]})[0](images_ph)
      with tf.compat.v1.Session(graph=graph) as sess:
        logits = np.concatenate([
            sess.run(handle.logits, {images_ph: images[i:i + 1000]})
            for i in range(0, len(images), 1000)])
        timing = latency_lib.measure_latency(
            sess, handle.logits, images_ph, 1,
            repeats=c["latency_repeats"])
    accuracy = float(np.mean(np.argmax(logits, 1) == self.splits.test_labels))
    path = c["teacher_graph"]
    size = (sum(os.path.getsize(os.path.join(b, f))
                for b, _, fs in os.walk(path) for f in fs)
            if os.path.isdir(path) else os.path.getsize(path))
    row = report_lib.stage_row("teacher", handle.model, None, None, path,
                               int(size), accuracy, timing["median_ms"])
    return {"kind": "graph", "model": handle.model, "path": path,
            "row": row}

  def _distillation_fn(self, teacher, student_fn, scope):
    """(model_fn, train_extras) distilling `teacher` into the student."""
    c = self.config
    builders = self._teacher_builders(teacher)
    extras = None
    if c["cached_logits"]:
      source = teacher.get("checkpoint") or teacher.get("path")
      path = os.path.join(c["output_dir"], "teacher", "teacher_logits.npz")
      # The pipeline owns this cache: a stale one is replaced, not used.
      logits = logits_cache.get_or_compute(
          path, builders, [(teacher["model"], source)],
          self.splits.train_images, self.splits.train_labels, log=self.log,
          replace_stale=True)
      extras = {distillation.CACHED_LOGITS_KEY: logits.transpose(1, 0, 2)}
      builders = None
    model_fn = distillation.distillation_model_fn(
        student_fn, self.splits.num_classes, scope, builders,
        temperature=c["temperature"], alpha=c["alpha"])
    return model_fn, extras

  def distill(self, folder, teacher):
    """Distills the teacher into the student (or trains it alone)."""
    c = self.config
    model, options = c["student_model"], dict(c["student_options"])
    student_fn = nets_factory.get_network_fn(model, **options)
    train_dir = os.path.join(folder, "train")
    if "distill" in c["skip"]:
      model_fn, extras = loop.classifier_model_fn(
          student_fn, self.splits.num_classes, scope=model), None
      stage = "student"
    else:
      model_fn, extras = self._distillation_fn(teacher, student_fn, model)
      stage = "distilled"
    metrics = loop.train(model_fn, self.splits,
               self._train_config(train_dir, c["distill_epochs"],
                                  c["distill_optimizer"],
                                  c["distill_learning_rate"],
                                  c["distill_learning_rate_decay"],
                                  c["distill_weight_decay"]),
               self._spec(model, options, temperature=c["temperature"],
                          alpha=c["alpha"]),
               train_extras=extras)
    prefix = checkpoints.resolve_checkpoint(train_dir)
    manifest = self._export(prefix, os.path.join(folder, "export"),
                            [tflite.FLOAT32], model, options)
    result = {"model": model, "model_options": options,
              "checkpoint": prefix,
              "row": self._row_from_manifest(stage, model, manifest,
                                             tflite.FLOAT32)}
    if metrics.get("validation_accuracy") is not None:
      # What a recipe is chosen by (--validation_size), never the test set.
      result["validation_accuracy"] = float(metrics["validation_accuracy"])
      self.log("[distill] validation accuracy %.2f%% (%d held-out training "
               "examples)" % (100 * result["validation_accuracy"],
                              len(self.splits.validation_labels)))
    return result

  def prune(self, folder, teacher, student):
    """Structured thinning, then magnitude pruning while distilling."""
    c = self.config
    model, options = student["model"], dict(student["model_options"])
    source = student["checkpoint"]
    notes = []
    if c["structured_fraction"]:
      plan = structured.plan_structured_pruning(
          source, model, options, c["structured_fraction"],
          image_shape=self.splits.image_shape,
          num_classes=self.splits.num_classes)
      thin = structured.apply_structured_pruning(
          plan, os.path.join(folder, "structured"),
          model_spec=self._spec(model, options))
      options, source = dict(thin.model_options), thin.checkpoint
      notes.append("structured: %s -> %s parameters" % (
          format(thin.params_before, ","), format(thin.params_after, ",")))
    student_fn = nets_factory.get_network_fn(model, **options)
    train_dir = os.path.join(folder, "train")
    if "distill" in c["skip"]:
      model_fn, extras = loop.classifier_model_fn(
          student_fn, self.splits.num_classes, scope=model), None
    else:
      model_fn, extras = self._distillation_fn(teacher, student_fn, model)
    model_fn = pruning.init_from_checkpoint(model_fn, source, model)
    steps = loop.steps_of_run(len(self.splits.train_labels),
                              c["batch_size"], c["prune_epochs"])
    hparams = None
    if c["target_sparsity"]:
      # Masks change every 10 steps, more often in a short run, so that the
      # target is reached within the run (at two thirds, leaving the rest to
      # recover) instead of after its last step.
      frequency = min(10, max(1, steps // 3))
      hparams = pruning.gradual_pruning_hparams(
          target_sparsity=c["target_sparsity"], begin_step=0,
          end_step=pruning.default_end_step(steps, 0, frequency),
          frequency=frequency, scope=model)
      model_fn = pruning.wrap_model_fn(model_fn, hparams)
    loop.train(model_fn, self.splits,
               self._train_config(train_dir, c["prune_epochs"], "sgd",
                                  c["prune_learning_rate"]),
               self._spec(model, options), train_extras=extras)
    prefix = checkpoints.resolve_checkpoint(train_dir)
    if hparams is not None:
      stripped = pruning.strip_masks(prefix, os.path.join(folder, "stripped"),
                                     scope=model)
      prefix = stripped.checkpoint
      notes.append("magnitude: %.1f%% of the weights are zero" %
                   (100 * stripped.total_sparsity))
    manifest = self._export(prefix, os.path.join(folder, "export"),
                            [tflite.FLOAT32], model, options)
    return {"model": model, "model_options": options, "checkpoint": prefix,
            "notes": notes,
            "row": self._row_from_manifest("pruned", model, manifest,
                                           tflite.FLOAT32)}

  def quantize(self, folder, student):
    """Post-training quantization happens at export (int8 calibrated on
    training images); this stage passes the model on and says so."""
    del folder
    return dict(student, quantization="post-training (calibrated on %d "
                "training images)" % self.config["num_calibration_examples"])

  def export(self, folder, student):
    """Every format of the final model, verified before it is published."""
    manifest = self._export(student["checkpoint"], folder,
                            self.config["formats"], student["model"],
                            student["model_options"])
    return {"model": student["model"], "manifest": manifest,
            "files": {k: v["path"] for k, v in manifest["files"].items()}}

  def verify(self, folder, exported):
    """Reads the published files back in a fresh process (real runtimes)."""
    del folder
    manifest = exported["manifest"]
    out_dir = manifest["output_dir"]
    files = collections.OrderedDict(
        (fmt, path) for fmt, path in exported["files"].items())
    results = verify.run_in_fresh_process(
        out_dir, list(files.values()), self.splits.test_images,
        self.splits.test_labels, self.splits.test_images[:200],
        latency_repeats=self.config["latency_repeats"])
    size = manifest["verification"]["size"]
    rows = []
    for fmt, path in files.items():
      result = results["formats"][path]
      if result.get("error"):
        raise errors.ExportError("verification of %s failed: %s" %
                                 (path, result["error"]))
      full = os.path.join(out_dir, path)
      rows.append(report_lib.stage_row(
          fmt, exported["model"], int(size["weights"]),
          2 * int(size["multiply_adds"]), full, verify.file_bytes(full)[0],
          float(result["test_accuracy"]),
          float(result["latency_ms_batch_1"])))
    return {"rows": rows, "process": results.get("process")}


def _stage_inputs(config, keys, upstream):
  inputs = {k: config[k] for k in keys}
  if "skip" in inputs:
    # Only --skip=distill changes what a training stage computes; adding
    # --skip=verify to a finished run must not redo the training.
    inputs["skip"] = [s for s in config["skip"] if s == "distill"]
  inputs["upstream"] = [u.fingerprint for u in upstream]
  inputs["dataset"] = config["dataset"]
  if config["validation_size"]:
    # Added only when set, so runs made before the option keep their
    # fingerprints.
    inputs["validation_size"] = config["validation_size"]
  inputs["seed"] = config["seed"]
  inputs["batch_size"] = config["batch_size"]
  return inputs


def run(config, splits, log=print, flags_used=None):
  """Runs the pipeline; returns the report paths and rows.

  Args:
    config: from `make_config` (validated here).
    splits: datasets.DataSplits.
    log: fn(str) for the stage lines.
    flags_used: dict of the binary's flags for report.json.

  Returns:
    dict: "report" (paths), "rows", "stages" (StageResults).
  """
  validate_config(config)
  out = config["output_dir"]
  os.makedirs(out, exist_ok=True)
  job = _Job(config, splits, log)
  done = collections.OrderedDict()
  start = time.time()

  def stage(name, keys, upstream, fn):
    log("== %s: start" % name)
    result = stages.run_stage(out, name, _stage_inputs(config, keys,
                                                       upstream), fn, log=log)
    row = result.result.get("row")
    headline = ""
    if row:
      headline = ": %s %.2f%%, %s" % (
          row["model"], 100 * row["test_accuracy"],
          report_lib.markdown_table([row]).split("\n")[-1].split("|")[6]
          .strip())
    log("== %s: %s in %.0f s%s" % (name, "reused" if result.reused else
                                    "done", result.seconds, headline))
    done[name] = result
    return result

  teacher = stage("teacher", [
      "teacher_model", "teacher_checkpoint", "teacher_graph",
      "teacher_input", "teacher_output", "teacher_input_scale",
      "teacher_input_layout", "teacher_epochs", "teacher_optimizer",
      "teacher_learning_rate", "teacher_learning_rate_decay",
      "teacher_weight_decay", "latency_repeats"], [], job.teacher)
  job.rows.append(teacher.result["row"])
  student = stage("distill", [
      "student_model", "student_options", "distill_epochs",
      "distill_optimizer", "distill_learning_rate",
      "distill_learning_rate_decay", "distill_weight_decay", "temperature",
      "alpha", "cached_logits", "skip"], [teacher],
                  lambda f: job.distill(f, teacher.result))
  job.rows.append(student.result["row"])
  final = student
  if "prune" not in config["skip"]:
    final = stage("prune", [
        "structured_fraction", "target_sparsity", "prune_epochs",
        "prune_learning_rate", "temperature", "alpha", "cached_logits",
        "skip"], [teacher, student],
                  lambda f: job.prune(f, teacher.result, student.result))
    job.rows.append(final.result["row"])
  if "quantize" not in config["skip"]:
    final = stage("quantize", ["num_calibration_examples"], [final],
                  lambda f, r=final.result: job.quantize(f, r))
  exported = stage("export", ["formats", "num_calibration_examples"],
                   [final], lambda f, r=final.result: job.export(f, r))
  if "verify" not in config["skip"]:
    checked = stage("verify", ["latency_repeats"], [exported],
                    lambda f: job.verify(f, exported.result))
    job.rows.extend(checked.result["rows"])
  notes = ["student: %s %s" % (config["student_model"],
                               config["student_options"] or ""),
           "teacher: %s" % (teacher.result.get("checkpoint") or
                            teacher.result.get("path"))]
  if "validation_accuracy" in student.result:
    notes.append("distilled student's validation accuracy: %.2f%% (%d "
                 "training examples held out)" % (
                     100 * student.result["validation_accuracy"],
                     config["validation_size"]))
  notes += (final.result.get("notes") or [])
  if "quantization" in final.result:
    notes.append("quantization: %s" % final.result["quantization"])
  options = config["student_options"]
  student_name = config["student_model"] + (
      " (%s)" % ", ".join("%s=%s" % kv for kv in sorted(
          (options.get("layer_widths") or {}).items())) if options.get(
              "layer_widths") else "")
  title = "distill_v1 compress: %s -> %s on %s" % (
      teacher.result["model"], student_name, config["dataset"])
  for row in job.rows:  # Paths relative to the output folder read better.
    if row["file"] and row["file"].startswith(os.path.abspath(out) + os.sep):
      row["file"] = os.path.relpath(row["file"], os.path.abspath(out))
  job.rows = report_lib.finish_rows(job.rows)
  paths = report_lib.write_report(out, job.rows, flags_used or dict(config),
                                  versions(), title, notes=notes)
  log("== report: %s, %s%s (total %.0f s)" % (
      paths["markdown"], paths["json"],
      ", " + paths["chart"] if paths["chart"] else "", time.time() - start))
  return {"report": paths, "rows": job.rows, "stages": done}

