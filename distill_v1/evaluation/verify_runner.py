r"""Runs exported models in their real runtimes (and in a fresh process).

As a library, `load_exported_model(path)` opens any export with the runtime
a deployment would use:

  frozen GraphDef (.pb/.pbtxt)  checked by the safe loader's op allow-list,
                                then `tf.compat.v1.import_graph_def` into a
                                graph run by a `tf.compat.v1.Session`;
  SavedModel folder             checked by the safe loader, then
                                `tf.saved_model.load` and its
                                `serving_default` signature (eager);
  .tflite                       the LiteRT interpreter
                                (`ai_edge_litert.interpreter`) where
                                installed, else `tf.lite.Interpreter`;
                                int8 inputs are quantized and outputs
                                dequantized with the model's own parameters.

  model = verify_runner.load_exported_model("/tmp/export/model_int8.tflite")
  logits = model.predict(images)          # float32 [N, num_classes]

As a program it is the fresh process of `verify.py`: nothing the exporting
process built (graphs, sessions, converter state) can leak into what it
measures.

  python -m distill_v1.evaluation.verify_runner --export_dir=DIR \
      --inputs=inputs.npz --output=results.json \
      --files=frozen_graph.pb,saved_model/1,model_int8.tflite

`inputs.npz` holds `test_images` float32 [N, H, W, C], `test_labels` int64
[N] and `compare_images` float32 [M, H, W, C]. For each file the JSON output
has `runtime`, `test_accuracy`, `compare_logits` ([M, num_classes]),
`latency_ms_batch_1` (median of `--latency_repeats` timed single-image
calls after `--warmup` untimed ones), the model's input/output details, and
`error` (a one-line message, or null).
"""

import abc
import argparse
import json
import os
import sys
import time

import numpy as np

from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf
from distill_v1.export import frozen_graph
from distill_v1.export import saved_model as saved_model_lib
from distill_v1.export import tflite
from distill_v1.teachers import safe_loader

FROZEN_GRAPH = "frozen_graph"
SAVED_MODEL = "saved_model"
TFLITE = "tflite"
DEFAULT_BATCH_SIZE = 500


def _timings(fn, warmup, repeats):
  """Median and spread in milliseconds of `repeats` calls of fn()."""
  for _ in range(warmup):
    fn()
  times = np.empty([repeats], dtype=np.float64)
  for i in range(repeats):
    start = time.perf_counter()
    fn()
    times[i] = (time.perf_counter() - start) * 1000.0
  return {"median_ms": float(np.median(times)),
          "p10_ms": float(np.percentile(times, 10)),
          "p90_ms": float(np.percentile(times, 90))}


def _first_lines(error, count=3, limit=300):
  """The start of a TensorFlow error on one line, without its boilerplate."""
  lines = [line.strip() for line in str(error).splitlines()
           if line.strip() and line.strip() != "Graph execution error:"]
  text = " ".join(lines[:count])
  return text if len(text) <= limit else text[:limit - 3] + "..."


# The opt-in of the binaries that run exported models (predict).
UNSAFE_OPS_HINT = ("pass --allow_unsafe_ops (allow_unsafe_ops=True) if you "
                   "trust this file")


def _checked_graph(path, allow_unsafe_ops, **kwargs):
  """safe_loader.load_frozen_graph, its refusal naming this opt-in."""
  return safe_loader.load_frozen_graph(
      path, unsafe_policy=safe_loader.UnsafeOpsPolicy(
          bool(allow_unsafe_ops), "model file", UNSAFE_OPS_HINT), **kwargs)


class ExportedModel(abc.ABC):
  """An exported model opened with its runtime (one subclass per runtime).

  Attributes:
    kind: "frozen_graph", "saved_model" or "tflite".
    path: the file or folder.
    runtime: the API that runs it, e.g. "tf.saved_model.load".
    image_shape: (H, W, C), or None if the file does not say.
    num_classes: int or None.
  """

  kind = None
  runtime = None

  def __init__(self, path):
    self.path = path
    self.image_shape = None
    self.num_classes = None

  @abc.abstractmethod
  def _run(self, images):
    """Logits [n, num_classes] of one chunk of float32 images."""

  def predict(self, images, batch_size=DEFAULT_BATCH_SIZE):
    """Logits float32 [N, num_classes] for float32 images [N, H, W, C]."""
    images = np.asarray(images, dtype=np.float32)
    if self.image_shape is not None and tuple(images.shape[1:]) != tuple(
        self.image_shape):
      raise errors.DataError(
          "images have shape %s but model %s takes [N, %s]" %
          (list(images.shape), self.path,
           ", ".join(str(d) for d in self.image_shape)))
    try:
      chunks = [self._run(images[start:start + batch_size])
                for start in range(0, len(images), batch_size)]
    except (tf.errors.OpError, ValueError, RuntimeError) as e:
      # A file that loads can still fail to run (a PyFunc let in by the
      # opt-in whose Python callback does not exist here, bad constants).
      raise errors.DataError("model %s failed to run: %s" % (
          self.path, _first_lines(e))) from None
    return np.concatenate(chunks, axis=0).astype(np.float32)

  def latency(self, images, warmup=10, repeats=100, batch_size=1):
    """Timings (ms per call) of the whole call on `batch_size` images.

    The call is feed, run and fetch of the first `batch_size` of `images`
    (float32 [N, H, W, C], N >= batch_size); {median_ms, p10_ms, p90_ms}.
    """
    images = np.asarray(images, dtype=np.float32)[:batch_size]
    if len(images) != batch_size:
      raise errors.ConfigError("latency at batch %d needs that many images, "
                               "got %d" % (batch_size, len(images)))
    return _timings(lambda: self._run(images), warmup, repeats)

  @abc.abstractmethod
  def details(self):
    """The model's input and output names, dtypes and shapes."""

  def close(self):
    """Releases the runtime; a no-op for runtimes that hold no session."""


class FrozenGraphModel(ExportedModel):
  """A frozen GraphDef run by `tf.compat.v1.Session`."""

  kind = FROZEN_GRAPH
  runtime = "tf.compat.v1.import_graph_def + Session"

  def __init__(self, path, input_name=None, output_name=None,
               allow_unsafe_ops=False):
    super(FrozenGraphModel, self).__init__(path)
    loaded = _checked_graph(path, allow_unsafe_ops, input_name=input_name,
                            output_names=output_name)
    self._graph = tf.Graph()
    with self._graph.as_default():
      tf.compat.v1.import_graph_def(loaded.graph_def, name="")
    self._images = self._graph.get_tensor_by_name(loaded.input_name)
    self._logits = self._graph.get_tensor_by_name(loaded.output_name)
    self._graph.finalize()
    self._sess = tf.compat.v1.Session(graph=self._graph)
    if loaded.input_shape and len(loaded.input_shape) == 4 and all(
        loaded.input_shape[1:]):
      self.image_shape = tuple(loaded.input_shape[1:])
    self.num_classes = loaded.num_classes

  def _run(self, images):
    return self._sess.run(self._logits, feed_dict={self._images: images})

  def details(self):
    describe = lambda t: {"dtype": t.dtype.name,
                          "shape": (t.shape.as_list()
                                    if t.shape.rank is not None else None)}
    return {"inputs": {self._images.name: describe(self._images)},
            "outputs": {self._logits.name: describe(self._logits)}}

  def close(self):
    self._sess.close()


class SavedModelModel(ExportedModel):
  """A SavedModel's `serving_default` signature, via `tf.saved_model.load`."""

  kind = SAVED_MODEL
  runtime = "tf.saved_model.load"

  def __init__(self, path, allow_unsafe_ops=False):
    super(SavedModelModel, self).__init__(path)
    # The allow-list check runs before anything of the file executes.
    _checked_graph(path, allow_unsafe_ops)
    try:
      self._loaded = tf.saved_model.load(path)
      signature = self._loaded.signatures[saved_model_lib.SIGNATURE_KEY]
    except (tf.errors.OpError, ValueError, KeyError, OSError) as e:
      raise errors.DataError("cannot load SavedModel %s: %s" % (
          path, " ".join(str(e).split()))) from None
    _, specs = signature.structured_input_signature
    if len(specs) != 1:
      raise errors.DataError(
          "SavedModel %s: signature %s has inputs %s, expected one" %
          (path, saved_model_lib.SIGNATURE_KEY, ", ".join(sorted(specs))))
    self._input_key, spec = list(specs.items())[0]
    self._signature = signature
    self._spec = spec
    outputs = signature.structured_outputs
    self._output_key = (frozen_graph.LOGITS if frozen_graph.LOGITS in outputs
                        else sorted(outputs)[0])
    shape = spec.shape.as_list() if spec.shape.rank is not None else None
    if shape and len(shape) == 4 and all(shape[1:]):
      self.image_shape = tuple(shape[1:])
    logits_shape = outputs[self._output_key].shape
    if logits_shape.rank == 2:
      self.num_classes = logits_shape[-1]
    self.class_names = saved_model_lib.read_class_names(path)

  def _run(self, images):
    result = self._signature(**{self._input_key: tf.constant(images)})
    return result[self._output_key].numpy()

  def details(self):
    outputs = self._signature.structured_outputs
    return {
        "signature": saved_model_lib.SIGNATURE_KEY,
        "inputs": {self._input_key: {"dtype": self._spec.dtype.name,
                                     "shape": self._spec.shape.as_list()}},
        "outputs": {k: {"dtype": v.dtype.name, "shape": v.shape.as_list()}
                    for k, v in sorted(outputs.items())},
    }


class TFLiteModel(ExportedModel):
  """A .tflite file run by the LiteRT / TFLite interpreter."""

  kind = TFLITE

  def __init__(self, path):
    super(TFLiteModel, self).__init__(path)
    try:
      self._interpreter, self.runtime = tflite.make_interpreter(
          model_path=path)
      self._interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
      raise errors.DataError("cannot load TFLite model %s: %s" % (
          path, " ".join(str(e).split()))) from None
    inputs = self._interpreter.get_input_details()
    if len(inputs) != 1:
      raise errors.DataError("TFLite model %s has %d inputs, expected one" %
                             (path, len(inputs)))
    self._input = inputs[0]
    outputs = self._interpreter.get_output_details()
    by_name = {d["name"]: d for d in outputs}
    self._output = by_name.get(frozen_graph.LOGITS, outputs[0])
    shape = list(self._input["shape"])
    if len(shape) == 4:
      self.image_shape = tuple(int(d) for d in shape[1:])
    self.num_classes = int(self._output["shape"][-1])
    self._batch = int(shape[0]) if shape else None
    with open(path, "rb") as f:
      self._details = tflite.io_details(f.read())

  def _resize(self, batch):
    if batch != self._batch:
      self._interpreter.resize_tensor_input(
          self._input["index"], [batch] + list(self.image_shape))
      self._interpreter.allocate_tensors()
      self._batch = batch

  def _run(self, images):
    self._resize(len(images))
    dtype = np.dtype(self._input["dtype"])
    if dtype.kind in "iu":
      scale, zero_point = self._input["quantization"]
      info = np.iinfo(dtype)
      images = np.clip(np.round(images / scale) + zero_point, info.min,
                       info.max).astype(dtype)
    self._interpreter.set_tensor(self._input["index"], images)
    self._interpreter.invoke()
    out = self._interpreter.get_tensor(self._output["index"])
    if np.dtype(self._output["dtype"]).kind in "iu":
      scale, zero_point = self._output["quantization"]
      out = (out.astype(np.float32) - zero_point) * scale
    return out

  def details(self):
    return self._details


def resolve_model_path(path):
  """(kind, path) of an exported model; a `saved_model` base folder resolves
  to its highest numbered version.

  Raises:
    DataError: nothing loadable at `path`.
  """
  if os.path.isdir(path):
    for name in ("saved_model.pb", "saved_model.pbtxt"):
      if os.path.isfile(os.path.join(path, name)):
        return SAVED_MODEL, path
    versions = [d for d in os.listdir(path) if d.isdigit() and os.path.isfile(
        os.path.join(path, d, "saved_model.pb"))]
    if versions:
      return SAVED_MODEL, os.path.join(path, max(versions, key=int))
    raise errors.DataError(
        "folder %s holds no SavedModel (saved_model.pb, or numbered version "
        "folders with one)" % path)
  if not os.path.isfile(path):
    raise errors.DataError("model file %s not found" % path)
  if path.endswith(".tflite"):
    return TFLITE, path
  if path.endswith((".pb", ".pbtxt")):
    return FROZEN_GRAPH, path
  raise errors.DataError(
      "cannot tell the format of %s: expected a .tflite file, a frozen "
      "GraphDef (.pb, .pbtxt) or a SavedModel folder" % path)


def load_exported_model(path, allow_unsafe_ops=False):
  """Opens an exported model with its real runtime.

  Args:
    path: a `.tflite` file, a frozen GraphDef `.pb`/`.pbtxt`, or a SavedModel
      folder (a version folder, or the base holding numbered versions).
    allow_unsafe_ops: load graphs with ops outside the safe loader's
      allow-list (only for files you trust).

  Returns:
    An ExportedModel.

  Raises:
    DataError: missing or unreadable file.
    UnsafeGraphError: a graph holds ops outside the allow-list.
  """
  kind, path = resolve_model_path(path)
  if kind == TFLITE:
    return TFLiteModel(path)
  if kind == SAVED_MODEL:
    return SavedModelModel(path, allow_unsafe_ops=allow_unsafe_ops)
  return FrozenGraphModel(path, allow_unsafe_ops=allow_unsafe_ops)


def run_file(path, test_images, test_labels, compare_images, warmup,
             latency_repeats, batch_size=DEFAULT_BATCH_SIZE):
  """Loads one export and measures it; errors become the `error` field."""
  result = {"error": None}
  try:
    model = load_exported_model(path)
  except errors.DistillError as e:
    result["error"] = str(e)
    return result
  try:
    result["runtime"] = model.runtime
    result["kind"] = model.kind
    logits = model.predict(test_images, batch_size)
    predictions = np.argmax(logits, axis=1)
    result["test_accuracy"] = float(np.mean(predictions == test_labels))
    result["compare_logits"] = model.predict(compare_images,
                                             batch_size).tolist()
    timing = model.latency(test_images[:1], warmup=warmup,
                           repeats=latency_repeats)
    result["latency_ms_batch_1"] = timing["median_ms"]
    result["latency_spread_ms"] = [timing["p10_ms"], timing["p90_ms"]]
    result["details"] = model.details()
  except (errors.DistillError, tf.errors.OpError, ValueError,
          RuntimeError) as e:
    result["error"] = "%s: %s" % (type(e).__name__, " ".join(
        str(e).split())[:500])
  finally:
    model.close()
  return result


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--export_dir", required=True)
  parser.add_argument("--inputs", required=True)
  parser.add_argument("--output", required=True)
  parser.add_argument("--files", required=True,
                      help="comma-separated paths relative to --export_dir")
  parser.add_argument("--latency_repeats", type=int, default=100)
  parser.add_argument("--warmup", type=int, default=10)
  args = parser.parse_args(argv)
  with np.load(args.inputs, allow_pickle=False) as inputs:
    test_images = inputs["test_images"]
    test_labels = inputs["test_labels"]
    compare_images = inputs["compare_images"]
  results = {}
  for name in [f for f in args.files.split(",") if f]:
    results[name] = run_file(os.path.join(args.export_dir, name), test_images,
                             test_labels, compare_images, args.warmup,
                             args.latency_repeats)
  runtime = {"python": sys.version.split()[0], "tensorflow": tf.__version__,
             "pid": os.getpid()}
  fileio.write_text(args.output, json.dumps(
      {"formats": results, "process": runtime}) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
