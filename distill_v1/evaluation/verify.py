"""Verification of exported files in their real runtimes, in a fresh process.

An export is only as good as what its runtime computes from the file on
disk. `Verifier` takes the figures of the TensorFlow session the export came
from (test accuracy, logits on a comparison batch, batch-1 latency), then
starts `python -m distill_v1.evaluation.verify_runner` - a new process that
shares nothing with the exporter - which opens every file with the runtime a
deployment uses (TFLite interpreter, `tf.saved_model.load`,
`tf.compat.v1.import_graph_def` in a session), scores the test split, runs
the comparison batch and times single-image calls. The results are compared
with the session's; a file beyond its tolerance fails the export
(ExportError), before anything is published.

  verifier = verify.Verifier()
  export_lib.export_checkpoint(prefix, out_dir, verifier=verifier)
  print(verify.format_report(verifier.report))

Tolerances (`TOLERANCES`), per format:
  accuracy_points   |test accuracy - session's| in percentage points:
                    0.1 for float exports, 1.0 for int8 weights
                    (dynamic_range, int8);
  max_logit_error   max |logits - session's| on the comparison batch, as a
                    fraction of the largest |logit| of the session there
                    (so it does not depend on the logits' scale);
  min_agreement     fraction of the batch with the same argmax.

The size line is honest about what compression buys: the number of weights
and how many are non-zero, their dense float32 bytes, multiply-adds per
example, and for each file its bytes and gzip bytes (zeros of magnitude
pruning only shrink the latter).
"""

import collections
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.export import frozen_graph

Tolerance = collections.namedtuple(
    "Tolerance", ["accuracy_points", "max_logit_error", "min_agreement"])

_FLOAT = Tolerance(accuracy_points=0.1, max_logit_error=1e-4,
                   min_agreement=0.99)
TOLERANCES = collections.OrderedDict([
    ("frozen_graph", _FLOAT),
    ("saved_model", _FLOAT),
    ("float32", _FLOAT),
    ("float16", Tolerance(accuracy_points=0.1, max_logit_error=2e-2,
                          min_agreement=0.98)),
    ("dynamic_range", Tolerance(accuracy_points=1.0, max_logit_error=0.1,
                                min_agreement=0.95)),
    ("int8", Tolerance(accuracy_points=1.0, max_logit_error=0.25,
                       min_agreement=0.95)),
])
DEFAULT_NUM_COMPARE = 200
DEFAULT_LATENCY_REPEATS = 100
DEFAULT_WARMUP = 10
DEFAULT_TIMEOUT_S = 1800
RUNNER_MODULE = "distill_v1.evaluation.verify_runner"


# ----------------------------------------------------------------------------
# Sizes.


def file_bytes(path):
  """(bytes, gzip bytes) of a file, or summed over a folder's files.

  gzip uses level 9, as `gzip -9` would; it stands for any general-purpose
  compression of a download or an app bundle.
  """
  paths = [path]
  if os.path.isdir(path):
    paths = [os.path.join(base, name) for base, _, names in os.walk(path)
             for name in sorted(names)]
  raw = compressed = 0
  for p in paths:
    with open(p, "rb") as f:
      data = f.read()
    raw += len(data)
    compressed += len(gzip.compress(data, compresslevel=9))
  return raw, compressed


def multiply_adds(graph_def, image_shape):
  """Multiply-adds of one example through a frozen graph.

  Counted for Conv2D (output elements x kh x kw x in_channels),
  DepthwiseConv2dNative (output elements x kh x kw) and MatMul
  (rows x inner x columns), with the input fed as [1, H, W, C].

  Args:
    graph_def: frozen GraphDef with an `images` input.
    image_shape: (H, W, C).

  Returns:
    int.
  """
  with tf.Graph().as_default() as graph:
    images = tf.compat.v1.placeholder(tf.float32, [1] + list(image_shape))
    tf.compat.v1.import_graph_def(
        graph_def, input_map={frozen_graph.INPUT_NAME + ":0": images},
        name="")
  total = 0
  for op in graph.get_operations():
    if op.type not in ("Conv2D", "DepthwiseConv2dNative", "MatMul"):
      continue
    out = op.outputs[0].shape
    kernel = op.inputs[1].shape
    if not out.is_fully_defined() or not kernel.is_fully_defined():
      continue
    out, kernel = out.as_list(), kernel.as_list()
    if op.type == "Conv2D":
      total += int(np.prod(out)) * kernel[0] * kernel[1] * kernel[2]
    elif op.type == "DepthwiseConv2dNative":
      total += int(np.prod(out)) * kernel[0] * kernel[1]
    else:
      inner = op.inputs[0].shape.as_list()[
          0 if op.get_attr("transpose_a") else 1]
      total += int(np.prod(out)) * inner
  return total


def size_summary(frozen):
  """Weights, non-zero weights, dense float32 bytes and multiply-adds.

  Weights are the float constants of the frozen graph (kernels and biases,
  with batch norm folded in).

  Args:
    frozen: frozen_graph.FrozenModel.

  Returns:
    {"weights", "nonzero_weights", "dense_bytes", "multiply_adds"}.
  """
  weights = nonzero = 0
  for node in frozen.graph_def.node:
    if node.op != "Const":
      continue
    if node.attr["dtype"].type not in (tf.float32.as_datatype_enum,
                                       tf.float16.as_datatype_enum):
      continue
    value = tf.make_ndarray(node.attr["value"].tensor)
    weights += value.size
    nonzero += int(np.count_nonzero(value))
  return {"weights": int(weights), "nonzero_weights": int(nonzero),
          "dense_bytes": int(4 * weights),
          "multiply_adds": multiply_adds(frozen.graph_def,
                                         frozen.image_shape)}


# ----------------------------------------------------------------------------
# The session's own figures.


def session_reference(sess, images, logits, test_images, test_labels,
                      compare_images, batch_size=500,
                      warmup=DEFAULT_WARMUP,
                      latency_repeats=DEFAULT_LATENCY_REPEATS):
  """Accuracy, comparison logits and batch-1 latency of a TF session.

  Args:
    sess: session with the model restored.
    images: float32 [None, H, W, C] placeholder.
    logits: float32 [None, num_classes].
    test_images, test_labels: the test split.
    compare_images: float32 [M, H, W, C].
    batch_size: examples per run for accuracy.
    warmup, latency_repeats: untimed and timed single-image runs.

  Returns:
    {"test_accuracy", "compare_logits" (np.ndarray [M, K]),
     "latency_ms_batch_1"}.
  """
  chunks = [sess.run(logits, {images: test_images[s:s + batch_size]})
            for s in range(0, len(test_images), batch_size)]
  predictions = np.argmax(np.concatenate(chunks), axis=1)
  compare_logits = sess.run(logits, {images: compare_images})
  one = test_images[:1]
  for _ in range(warmup):
    sess.run(logits, {images: one})
  times = []
  for _ in range(latency_repeats):
    start = time.perf_counter()
    sess.run(logits, {images: one})
    times.append((time.perf_counter() - start) * 1000.0)
  return {"test_accuracy": float(np.mean(predictions == test_labels)),
          "compare_logits": np.asarray(compare_logits, np.float32),
          "latency_ms_batch_1": float(np.median(times))}


# ----------------------------------------------------------------------------
# The fresh process.


def _package_root():
  # distill_v1/evaluation/verify.py -> the folder holding distill_v1/.
  return os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))


def run_in_fresh_process(export_dir, relative_paths, test_images, test_labels,
                         compare_images,
                         latency_repeats=DEFAULT_LATENCY_REPEATS,
                         warmup=DEFAULT_WARMUP, timeout=DEFAULT_TIMEOUT_S,
                         python=None):
  """Runs verify_runner in a new Python process on the given files.

  Args:
    export_dir: folder the paths are relative to.
    relative_paths: list of files/folders to open.
    test_images, test_labels, compare_images: as in `session_reference`.
    latency_repeats, warmup: single-image calls timed and untimed.
    timeout: seconds before the process is killed.
    python: interpreter; default: this one (sys.executable).

  Returns:
    The runner's JSON: {"formats": {path: result}, "process": {...}}.

  Raises:
    ExportError: the process fails or times out.
  """
  scratch = tempfile.mkdtemp(prefix="distill_v1_verify_")
  try:
    inputs = os.path.join(scratch, "inputs.npz")
    output = os.path.join(scratch, "results.json")
    np.savez(inputs, test_images=np.asarray(test_images, np.float32),
             test_labels=np.asarray(test_labels, np.int64),
             compare_images=np.asarray(compare_images, np.float32))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [_package_root()] + [p for p in [env.get("PYTHONPATH")] if p])
    command = [python or sys.executable, "-m", RUNNER_MODULE,
               "--export_dir=" + export_dir, "--inputs=" + inputs,
               "--output=" + output, "--files=" + ",".join(relative_paths),
               "--latency_repeats=%d" % latency_repeats,
               "--warmup=%d" % warmup]
    try:
      done = subprocess.run(command, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
      raise errors.ExportError(
          "verification of %s did not finish within %d s" %
          (export_dir, timeout)) from None
    if done.returncode != 0 or not os.path.isfile(output):
      lines = [l for l in done.stderr.splitlines() if l.strip()]
      raise errors.ExportError(
          "verification process for %s failed (exit code %d): %s" %
          (export_dir, done.returncode, lines[-1] if lines else "no output"))
    with open(output, "r", encoding="utf-8") as f:
      return json.load(f)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


# ----------------------------------------------------------------------------
# Comparison.


def compare(format_name, result, reference, tolerance=None):
  """Checks one runner result against the session reference.

  Args:
    format_name: a key of TOLERANCES.
    result: the runner's result for the file.
    reference: `session_reference` output.
    tolerance: Tolerance; default TOLERANCES[format_name].

  Returns:
    (row dict, list of failure strings).
  """
  tolerance = tolerance or TOLERANCES[format_name]
  row = collections.OrderedDict([("format", format_name)])
  if result.get("error"):
    row["error"] = result["error"]
    return row, ["%s: %s" % (format_name, result["error"])]
  ref_logits = np.asarray(reference["compare_logits"], np.float64)
  logits = np.asarray(result["compare_logits"], np.float64)
  failures = []
  if logits.shape != ref_logits.shape:
    return row, ["%s: logits have shape %s, the session's %s" % (
        format_name, list(logits.shape), list(ref_logits.shape))]
  scale = max(float(np.max(np.abs(ref_logits))), 1e-12)
  max_error = float(np.max(np.abs(logits - ref_logits)))
  agreement = float(np.mean(np.argmax(logits, 1) == np.argmax(ref_logits, 1)))
  delta_points = 100.0 * (result["test_accuracy"] -
                          reference["test_accuracy"])
  row.update([
      ("runtime", result.get("runtime")),
      ("test_accuracy", result["test_accuracy"]),
      ("accuracy_delta_points", delta_points),
      ("latency_ms_batch_1", result.get("latency_ms_batch_1")),
      ("max_logit_error", max_error),
      ("relative_logit_error", max_error / scale),
      ("argmax_agreement", agreement),
      ("tolerance", tolerance._asdict()),
  ])
  if abs(delta_points) > tolerance.accuracy_points + 1e-9:
    failures.append(
        "%s: test accuracy %.2f%% is %+.2f points from the session's %.2f%% "
        "(tolerance %.1f)" % (format_name, 100.0 * result["test_accuracy"],
                              delta_points,
                              100.0 * reference["test_accuracy"],
                              tolerance.accuracy_points))
  if max_error / scale > tolerance.max_logit_error:
    failures.append(
        "%s: logits differ from the session's by up to %.3g (%.2g of the "
        "largest logit %.3g; tolerance %.2g)" %
        (format_name, max_error, max_error / scale, scale,
         tolerance.max_logit_error))
  if agreement < tolerance.min_agreement:
    failures.append(
        "%s: the predicted class agrees with the session's on %.1f%% of the "
        "comparison batch (tolerance %.1f%%)" %
        (format_name, 100.0 * agreement, 100.0 * tolerance.min_agreement))
  row["ok"] = not failures
  return row, failures


class Verifier(object):
  """Verifies an export: the session's figures first, then the files'.

  `export_lib.export_checkpoint` calls `reference(...)` while the restored
  session is open and `verify(...)` after writing the files to its staging
  folder; `report` holds the last result.
  """

  def __init__(self, num_compare=DEFAULT_NUM_COMPARE,
               latency_repeats=DEFAULT_LATENCY_REPEATS,
               warmup=DEFAULT_WARMUP, max_test_examples=None,
               tolerances=None, timeout=DEFAULT_TIMEOUT_S, python=None):
    """Args:
      num_compare: test images in the comparison batch (the first ones).
      latency_repeats, warmup: timed and untimed single-image calls.
      max_test_examples: score only the first N test images (None: all).
      tolerances: dict format -> Tolerance overriding TOLERANCES.
      timeout: seconds for the fresh process.
      python: interpreter of the fresh process (default sys.executable).
    """
    if num_compare < 1 or latency_repeats < 1 or warmup < 0:
      raise errors.ConfigError(
          "num_compare=%r and latency_repeats=%r must be >= 1, warmup=%r "
          ">= 0" % (num_compare, latency_repeats, warmup))
    self.num_compare = num_compare
    self.latency_repeats = latency_repeats
    self.warmup = warmup
    self.max_test_examples = max_test_examples
    self.tolerances = dict(TOLERANCES)
    self.tolerances.update(tolerances or {})
    self.timeout = timeout
    self.python = python
    self.session = None
    self.report = None
    self._test = None

  def reference(self, sess, inference, splits):
    """Records the session's accuracy, comparison logits and latency.

    Args:
      sess: the restored session.
      inference: frozen_graph.InferenceGraph in it.
      splits: datasets.DataSplits (its test split is used).
    """
    test_images = np.asarray(splits.test_images, np.float32)
    test_labels = np.asarray(splits.test_labels, np.int64)
    if self.max_test_examples:
      test_images = test_images[:self.max_test_examples]
      test_labels = test_labels[:self.max_test_examples]
    if not len(test_images):
      raise errors.DataError("data set %s has no test images to verify the "
                             "export on" % splits.name)
    compare_images = test_images[:self.num_compare]
    self._test = (test_images, test_labels, compare_images)
    self.session = session_reference(
        sess, inference.images, inference.logits, test_images, test_labels,
        compare_images, warmup=self.warmup,
        latency_repeats=self.latency_repeats)

  def verify(self, export_dir, files, frozen):
    """Runs the files in a fresh process and compares them.

    Args:
      export_dir: folder holding the files.
      files: OrderedDict format -> path relative to export_dir.
      frozen: the FrozenModel the files were made from (for sizes).

    Returns:
      The report (also in `self.report`): {"session", "size", "formats",
      "num_test_examples", "num_compare_examples", "process"}.

    Raises:
      ExportError: a file failed to load or is beyond tolerance (every
        failure is named); ConfigError: `reference` was not called.
    """
    if self.session is None:
      raise errors.ConfigError("Verifier.reference must run before verify")
    test_images, test_labels, compare_images = self._test
    paths = list(files.values())
    results = run_in_fresh_process(
        export_dir, paths, test_images, test_labels, compare_images,
        latency_repeats=self.latency_repeats, warmup=self.warmup,
        timeout=self.timeout, python=self.python)
    rows = collections.OrderedDict()
    failures = []
    for format_name, path in files.items():
      row, problems = compare(format_name, results["formats"][path],
                              self.session, self.tolerances[format_name])
      row["file"] = path
      row["file_bytes"], row["gzip_bytes"] = file_bytes(
          os.path.join(export_dir, path))
      details = results["formats"][path].get("details")
      if details:
        row["io"] = details
      rows[format_name] = row
      failures.extend(problems)
    self.report = {
        "session": {
            "test_accuracy": self.session["test_accuracy"],
            "latency_ms_batch_1": self.session["latency_ms_batch_1"],
            "runtime": "tf.compat.v1.Session (checkpoint graph)",
        },
        "size": size_summary(frozen),
        "formats": rows,
        "num_test_examples": int(len(test_images)),
        "num_compare_examples": int(len(compare_images)),
        "process": results.get("process"),
    }
    if failures:
      raise errors.ExportError(
          "export verification failed: %s" % "; ".join(failures))
    return self.report


def format_report(report):
  """The verification report as a table for people (percent, ms, bytes)."""
  session = report["session"]
  header = ("format", "file", "bytes", "gzip bytes", "accuracy", "delta",
            "batch-1 ms", "max|dlogit|", "agree")
  rows = [header, ("session", "(checkpoint)", "", "",
                   "%.2f%%" % (100 * session["test_accuracy"]), "",
                   "%.3f" % session["latency_ms_batch_1"], "", "")]
  for name, row in report["formats"].items():
    if row.get("error"):
      rows.append((name, row.get("file", ""), "", "", "error", "", "", "",
                   ""))
      continue
    rows.append((
        name, row["file"], "{:,}".format(row["file_bytes"]),
        "{:,}".format(row["gzip_bytes"]),
        "%.2f%%" % (100 * row["test_accuracy"]),
        "%+.2f" % row["accuracy_delta_points"],
        "%.3f" % row["latency_ms_batch_1"],
        "%.2g" % row["max_logit_error"],
        "%.1f%%" % (100 * row["argmax_agreement"])))
  widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
  lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(r, widths))).rstrip()
           for r in rows]
  size = report["size"]
  zeros = 1.0 - size["nonzero_weights"] / float(max(size["weights"], 1))
  lines.append("")
  lines.append(
      "size: %s weights (%s non-zero, %.1f%% zeros), %s bytes dense float32, "
      "%s multiply-adds per example; accuracy on %s test examples, latency "
      "is the median of single-image calls" % (
          "{:,}".format(size["weights"]),
          "{:,}".format(size["nonzero_weights"]), 100 * zeros,
          "{:,}".format(size["dense_bytes"]),
          "{:,}".format(size["multiply_adds"]),
          "{:,}".format(report["num_test_examples"])))
  return "\n".join(lines)
