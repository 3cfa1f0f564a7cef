"""TFLite conversion of a frozen inference graph, after a lint that names
what would break it.

  problems = tflite.lint_graph_def(frozen.graph_def)      # [] when clean
  data = tflite.convert(frozen, "int8",
                        representative_images=tflite.calibration_images(
                            splits.train_images, 200))
  tflite.write_tflite(data, "/tmp/export/model_int8.tflite")

Conversion uses `tf.compat.v1.lite.TFLiteConverter.from_session` on a
session holding the frozen graph, so the converter sees exactly the graph the
frozen export holds (batch norm already folded). The models take `images`
[1, H, W, C] (batch resizable in the interpreter) and return `logits` and
`probabilities` [1, num_classes]; `classes` is left out (an argmax is one
line in any app, and int64 does not quantize).

Variants (file `model_<variant>.tflite`):
  float32        no optimization.
  dynamic_range  `optimizations=[DEFAULT]` without data: weights stored as
                 int8 and dequantized (or used by hybrid kernels) at run time;
                 input and output stay float32.
  float16        `optimizations=[DEFAULT]`, `supported_types=[float16]`:
                 weights stored as float16; float32 input and output.
  int8           full integer quantization: `optimizations=[DEFAULT]`, a
                 `representative_dataset` of training images calibrating
                 every activation range, `supported_ops=[TFLITE_BUILTINS_INT8]`
                 (conversion fails rather than leave a float op), and
                 `inference_input_type = inference_output_type = tf.int8`.
                 The input is `q = round(x / scale) + zero_point`; its range
                 is the whole [0, 1] (scale 1/255, zero point -128) whatever
                 the calibration sample; outputs are dequantized with their
                 own scale and zero point.

A graph that already holds fake-quant ops (quantization-aware training) is
converted the same way; the caller may adjust the converter through
`configure(converter)` (e.g. `inference_type` and `quantized_input_stats`).

The lint runs first and refuses, naming the nodes: fake-quant ops whose
ranges are not constants or are empty, ops TFLite has no builtin kernel for
(`TFLITE_BUILTIN_OPS` lists the TensorFlow ops the converter lowers to
builtins), and what training leaves behind (variables, assignments,
initializers, pruning masks, batch norm in training mode, extra
placeholders; see frozen_graph.training_leftovers).
"""

import collections
import re
import warnings

import numpy as np

from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf
from distill_v1.export import frozen_graph

FLOAT32 = "float32"
DYNAMIC_RANGE = "dynamic_range"
FLOAT16 = "float16"
INT8 = "int8"
VARIANTS = (FLOAT32, DYNAMIC_RANGE, FLOAT16, INT8)
TFLITE_OUTPUTS = (frozen_graph.LOGITS, frozen_graph.PROBABILITIES)
DEFAULT_CALIBRATION_EXAMPLES = 200
# Pixels of every export's input (DESIGN.md, Interfaces).
INPUT_RANGE = (0.0, 1.0)

# TensorFlow ops the converter turns into TFLite builtin ops (without the
# Select TF ops fallback), as of TensorFlow 2.21: each was converted from a
# session graph holding it; Atan, Tan, Erf, MatrixInverse and DenseBincount,
# for example, are not. Extend the set (after checking) when a model needs
# more: an op missing here is refused before conversion.
TFLITE_BUILTIN_OPS = frozenset([
    # Graph plumbing.
    "Const", "Placeholder", "PlaceholderWithDefault", "Identity", "IdentityN",
    "NoOp", "StopGradient", "Snapshot", "EnsureShape",
    # Neural-network ops.
    "Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "Conv3D",
    "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum",
    "BiasAdd", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
    "MaxPool", "AvgPool", "Relu", "Relu6", "LeakyRelu", "Elu", "Selu",
    "Tanh", "Sigmoid", "Softmax", "LogSoftmax", "Softplus", "Softsign",
    "LRN", "FakeQuantWithMinMaxArgs",
    "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel",
    # Element-wise math.
    "Add", "AddV2", "AddN", "Sub", "Mul", "Div", "RealDiv", "DivNoNan",
    "FloorDiv", "FloorMod", "Maximum", "Minimum", "Pow", "SquaredDifference",
    "Neg", "Abs", "Sign", "Reciprocal", "Square", "Sqrt", "Rsqrt", "Exp",
    "Expm1", "Log", "Log1p", "Floor", "Ceil", "Round", "Sin", "Cos",
    "Lgamma", "Cast", "Equal", "NotEqual", "Less", "LessEqual", "Greater",
    "GreaterEqual", "LogicalAnd", "LogicalOr", "LogicalNot", "Select",
    "SelectV2", "IsNan", "ClipByValue", "ZerosLike", "OnesLike",
    # Reductions.
    "Mean", "Sum", "Max", "Min", "Prod", "Any", "All", "ArgMax", "ArgMin",
    "Cumsum", "TopKV2",
    # Shapes and arrays.
    "Shape", "Rank", "Size", "Reshape", "Squeeze", "ExpandDims", "Concat",
    "ConcatV2", "Pack", "Unpack", "Split", "SplitV", "Transpose", "Pad",
    "PadV2", "MirrorPad", "Tile", "BroadcastTo", "BroadcastArgs",
    "StridedSlice", "Slice", "Gather", "GatherV2", "GatherNd", "ScatterNd",
    "ReverseV2", "ReverseSequence", "Fill", "Range", "OneHot", "Where",
    "SpaceToBatchND", "BatchToSpaceND", "SpaceToDepth", "DepthToSpace",
    "ResizeBilinear", "ResizeNearestNeighbor", "MatrixDiag", "MatrixDiagV2",
    "MatrixDiagV3", "MatrixSetDiag", "MatrixSetDiagV2", "MatrixSetDiagV3",
    "SegmentSum", "UnsortedSegmentSum", "UnsortedSegmentMax",
    "UnsortedSegmentMin", "UnsortedSegmentProd", "Unique",
])

_FAKE_QUANT_VARS = ("FakeQuantWithMinMaxVars",
                    "FakeQuantWithMinMaxVarsPerChannel")

LintProblem = collections.namedtuple("LintProblem", ["node", "op", "reason"])


def filename(variant):
  """`model_<variant>.tflite`."""
  check_variant(variant)
  return "model_%s.tflite" % variant


def check_variant(variant):
  if variant not in VARIANTS:
    raise errors.ConfigError("TFLite variant %r is not one of %s" %
                             (variant, ", ".join(VARIANTS)))
  return variant


# ----------------------------------------------------------------------------
# Lint.


def _fake_quant_problems(node, nodes):
  """Why a fake-quant node's range is unusable, or None."""
  if node.op == "FakeQuantWithMinMaxArgs":
    low = node.attr["min"].f if "min" in node.attr else -6.0
    high = node.attr["max"].f if "max" in node.attr else 6.0
    if not low < high:
      return "fake-quant range [%g, %g] is empty" % (low, high)
    return None
  refs = [r for r in node.input if not r.startswith("^")]
  values = []
  for ref, what in zip(refs[1:3], ("min", "max")):
    name = ref.lstrip("^").split(":")[0]
    producer = nodes.get(name)
    # A frozen variable is read through Identity nodes until they are
    # stripped; the value is the constant behind them.
    while producer is not None and producer.op in ("Identity", "Snapshot"):
      name = producer.input[0].split(":")[0]
      producer = nodes.get(name)
    if producer is None or producer.op != "Const":
      return ("fake-quant %s comes from %s (%s), not a constant: the range "
              "is unknown until run time (freeze or calibrate the ranges "
              "first)" % (what, name,
                          producer.op if producer is not None else "missing"))
    values.append(tf.make_ndarray(producer.attr["value"].tensor))
  low, high = np.asarray(values[0]), np.asarray(values[1])
  if low.shape != high.shape or np.any(low >= high):
    return ("fake-quant range min %s, max %s is empty (ranges never "
            "trained or calibrated)" % (np.round(low, 6).tolist(),
                                        np.round(high, 6).tolist()))
  return None


def lint_graph_def(graph_def, input_names=(frozen_graph.INPUT_NAME,),
                   supported_ops=TFLITE_BUILTIN_OPS):
  """What in `graph_def` would break (or spoil) a TFLite conversion.

  Args:
    graph_def: the frozen GraphDef to convert.
    input_names: the model's input placeholders.
    supported_ops: op types the converter maps to TFLite builtins.

  Returns:
    A list of LintProblem(node, op, reason), in graph order; empty if clean.
  """
  nodes = {n.name: n for n in graph_def.node}
  problems = [LintProblem(*p) for p in frozen_graph.training_leftovers(
      graph_def, input_names)]
  flagged = set(p.node for p in problems)
  for node in graph_def.node:
    if node.name in flagged:
      continue
    if node.op in _FAKE_QUANT_VARS or node.op == "FakeQuantWithMinMaxArgs":
      reason = _fake_quant_problems(node, nodes)
      if reason:
        problems.append(LintProblem(node.name, node.op, reason))
        continue
    if node.op not in supported_ops:
      problems.append(LintProblem(
          node.name, node.op,
          "op %s has no TFLite builtin kernel (it would need the Select TF "
          "ops runtime)" % node.op))
  return problems


def check_convertible(graph_def, source="the graph"):
  """Raises ExportError naming every lint problem of `graph_def`."""
  problems = lint_graph_def(graph_def)
  if problems:
    raise errors.ExportError(
        "%s cannot be converted to TFLite: %s" %
        (source, frozen_graph.describe_problems(
            [tuple(p) for p in problems])))


# ----------------------------------------------------------------------------
# Conversion.


def calibration_images(train_images, num_examples=DEFAULT_CALIBRATION_EXAMPLES,
                       seed=0):
  """A seeded random sample of training images for int8 calibration.

  Args:
    train_images: float32 [N, H, W, C] in [0, 1].
    num_examples: how many (all of them if N is smaller).
    seed: sampling seed.

  Returns:
    float32 [min(N, num_examples), H, W, C].

  Raises:
    DataError: no training images.
  """
  train_images = np.asarray(train_images, dtype=np.float32)
  if train_images.ndim != 4 or not len(train_images):
    raise errors.DataError(
        "calibration needs training images [N, H, W, C], got shape %s" %
        (train_images.shape,))
  rng = np.random.RandomState(seed)
  count = min(int(num_examples), len(train_images))
  index = np.sort(rng.choice(len(train_images), size=count, replace=False))
  return train_images[index]


def _representative_dataset(images):
  """The converter's calibration generator, one image per step.

  The input's quantization is calibrated like any activation, from the
  smallest and largest value seen; a copy of the first image gets one pixel
  at 0 and one at 1, so the int8 input covers the whole contract range
  INPUT_RANGE even when the calibration images never reach its ends (a
  darker sample would otherwise clip the brightest pixels). One pixel
  barely moves the ranges of later layers.
  """
  low, high = INPUT_RANGE
  first = np.array(images[:1], dtype=np.float32)
  first.flat[0] = low
  first.flat[-1] = high

  def generate():
    yield [first]
    for i in range(1, len(images)):
      yield [images[i:i + 1]]
  return generate


def _converter_error(variant, error):
  """One-line description of a converter failure, with the ops it named."""
  text = str(error)
  select = re.findall(r"TF Select ops: ([^\n]+)", text)
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  first = lines[0] if lines else type(error).__name__
  detail = "; ops without TFLite builtins: %s" % select[0] if select else ""
  return errors.ExportError("TFLite %s conversion failed: %s%s" %
                            (variant, first[:300], detail))


def convert(frozen, variant, representative_images=None, configure=None,
            lint=True):
  """Converts a frozen inference graph to a TFLite flatbuffer.

  Args:
    frozen: frozen_graph.FrozenModel.
    variant: one of VARIANTS.
    representative_images: float32 [N, H, W, C] calibration images
      (`calibration_images`); required for int8.
    configure: optional `fn(converter)` called last, to change the converter
      (e.g. for a fake-quantized graph).
    lint: run `check_convertible` first.

  Returns:
    The model as bytes.

  Raises:
    ExportError: the lint finds a problem, or the converter fails.
    ConfigError: unknown variant, or int8 without calibration images.
  """
  check_variant(variant)
  if lint:
    check_convertible(frozen.graph_def, "the frozen graph")
  if variant == INT8:
    if representative_images is None or not len(representative_images):
      raise errors.ConfigError(
          "int8 conversion needs representative images to calibrate the "
          "activation ranges (training images, see calibration_images)")
    representative_images = np.asarray(representative_images, np.float32)
    expected = tuple(frozen.image_shape)
    if tuple(representative_images.shape[1:]) != expected:
      raise errors.DataError(
          "representative images have shape %s, expected [N, %s]" %
          (list(representative_images.shape),
           ", ".join(str(d) for d in expected)))
  with frozen_graph.frozen_session(frozen) as (sess, tensors):
    converter = tf.compat.v1.lite.TFLiteConverter.from_session(
        sess, [tensors[frozen_graph.INPUT_NAME]],
        [tensors[name] for name in TFLITE_OUTPUTS])
    if variant != FLOAT32:
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == FLOAT16:
      converter.target_spec.supported_types = [tf.float16]
    if variant == INT8:
      converter.representative_dataset = _representative_dataset(
          representative_images)
      converter.target_spec.supported_ops = [
          tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
      converter.inference_input_type = tf.int8
      converter.inference_output_type = tf.int8
    if configure is not None:
      configure(converter)
    try:
      return converter.convert()
    except Exception as e:  # pylint: disable=broad-except
      # The converter raises ConverterError, ValueError or RuntimeError
      # with pages of MLIR diagnostics; a binary prints one line.
      raise _converter_error(variant, e) from None


def write_tflite(data, path, overwrite=False):
  """Writes a TFLite flatbuffer to `path` atomically.

  Returns:
    The number of bytes written.

  Raises:
    ExportError: `path` exists and not `overwrite`, or it cannot be written.
  """
  frozen_graph.refuse_existing(path, overwrite)
  fileio.write_bytes(path, data)
  return len(data)


def interpreter_class():
  """The TFLite interpreter class and where it comes from.

  Returns:
    (class, name): `ai_edge_litert.interpreter.Interpreter` (the LiteRT
    package) where installed, else `tf.lite.Interpreter`.
  """
  try:
    # pylint: disable=g-import-not-at-top
    from ai_edge_litert import interpreter as litert
    return litert.Interpreter, "ai_edge_litert.interpreter"
  except ImportError:
    return tf.lite.Interpreter, "tf.lite.Interpreter"


def make_interpreter(model_path=None, model_content=None):
  """A TFLite interpreter on a file or bytes (see `interpreter_class`).

  Returns:
    (interpreter, runtime name).
  """
  interpreter_cls, name = interpreter_class()
  with warnings.catch_warnings():
    # tf.lite.Interpreter warns on every construction that LiteRT replaces
    # it; interpreter_class already prefers LiteRT when it is installed.
    warnings.filterwarnings("ignore", message=".*is deprecated.*",
                            category=UserWarning)
    if model_path is not None:
      interpreter = interpreter_cls(model_path=model_path)
    else:
      interpreter = interpreter_cls(model_content=model_content)
  return interpreter, name


def io_details(data):
  """Input and output dtypes, shapes and quantization of a TFLite model.

  Args:
    data: the model bytes.

  Returns:
    {"inputs": [...], "outputs": [...]}, each entry {"name", "dtype",
    "shape" (batch -1 where resizable), "scale", "zero_point"}; scale 0.0
    means not quantized.
  """
  interpreter, _ = make_interpreter(model_content=data)

  def describe(detail):
    scale, zero_point = detail["quantization"]
    shape = detail.get("shape_signature")
    if shape is None or not len(shape):
      shape = detail["shape"]
    return {"name": detail["name"], "dtype": np.dtype(detail["dtype"]).name,
            "shape": [int(d) for d in shape], "scale": float(scale),
            "zero_point": int(zero_point)}

  return {"inputs": [describe(d) for d in interpreter.get_input_details()],
          "outputs": [describe(d) for d in interpreter.get_output_details()]}
