"""The one place that turns a model file into a frozen GraphDef, safely.

A checkpoint (`.index` + `.data`) holds only tensors: restoring it into a
graph we built is reading data. A GraphDef, a SavedModel or a `.meta` graph is
a program: running it runs whatever ops its author put in, and TensorFlow has
ops that write and delete files, read any file the process can read, talk to
the network or call back into Python. So before anything from such a file
runs, this module walks the graph from the requested output back through data
and control inputs (and into the body of every function a reachable node
calls) and refuses any op type outside `ALLOWED_OPS`, a list of pure tensor
math, array, neural-network and control-flow ops. See SECURITY.md.

  frozen = safe_loader.load_frozen_graph("teacher/frozen_graph.pb")
  logits = safe_loader.import_frozen_graph(frozen, images, name="teacher")

Three kinds of file are understood:
  * a frozen GraphDef, binary `.pb` or text `.pbtxt` ("frozen");
  * a SavedModel directory, written by TF1's `SavedModelBuilder` or TF2's
    `tf.saved_model.save` ("saved_model");
  * a TF1 checkpoint with its `.meta` graph: a prefix whose `.meta` file
    exists, the `.meta` file itself, or a directory with a `checkpoint` file
    ("meta_checkpoint").

The file's own save/restore ops and init ops never run. TF1 graphs (meta
checkpoints and TF1 SavedModels) are pruned to the nodes the output needs,
checked, imported into an isolated graph and restored by restore ops this
module builds itself, then frozen with
`tf.compat.v1.graph_util.convert_variables_to_constants`. A TF2 SavedModel is
checked as a proto (every function of its library but the save/restore pair
the exporter adds) before `tf.saved_model.load` is allowed to execute any of
it. Every frozen result is checked again before it is returned.
"""

import collections
import importlib
import logging
import os
import re
import threading

from google.protobuf import message as protobuf_message
from google.protobuf import text_format

from distill_v1 import errors
from distill_v1.compat import tf

_logger = logging.getLogger(__name__)

FrozenGraph = collections.namedtuple("FrozenGraph", [
    "graph_def",  # tf.compat.v1.GraphDef: constants only, checked.
    "input_name",  # tensor name of the input, e.g. "images:0".
    "output_name",  # tensor name of the output (logits), e.g. "logits:0".
    "input_shape",  # list of ints or None (unknown), e.g. [None, 28, 28, 1].
    "num_classes",  # int, the output's last dimension, or None if unknown.
    "source",  # the path given to load_frozen_graph.
    "kind",  # "frozen", "saved_model" or "meta_checkpoint".
])

FROZEN = "frozen"
SAVED_MODEL = "saved_model"
META_CHECKPOINT = "meta_checkpoint"

UNSAFE_FLAG_HINT = ("pass --allow_unsafe_teacher_ops (allow_unsafe_ops=True) "
                    "if you trust this file")

# Ops that compute tensors from tensors and nothing else: no files, network,
# Python, queues, readers, lookup tables or summaries. Function-call and
# functional control-flow ops are here because the bodies they call are
# checked with the same list.
ALLOWED_OPS = frozenset([
    # Graph plumbing.
    "Const", "Placeholder", "PlaceholderWithDefault", "Identity", "IdentityN",
    "NoOp", "StopGradient", "PreventGradient", "Snapshot", "EnsureShape",
    "CheckNumerics", "CheckNumericsV2", "Assert",
    # Element-wise math.
    "Add", "AddV2", "AddN", "Sub", "Mul", "MulNoNan", "Div", "DivNoNan",
    "RealDiv", "FloorDiv", "FloorMod", "TruncateDiv", "TruncateMod", "Mod",
    "Maximum", "Minimum", "Pow", "SquaredDifference", "Neg", "Abs", "Sign",
    "Reciprocal", "Inv", "Square", "Sqrt", "Rsqrt", "Exp", "Expm1", "Log",
    "Log1p", "Floor", "Ceil", "Round", "Rint", "Sin", "Cos", "Tan", "Asin",
    "Acos", "Atan", "Atan2", "Sinh", "Cosh", "Tanh", "Asinh", "Acosh", "Atanh",
    "Sigmoid", "Erf", "Erfc", "Lgamma", "Digamma", "ClipByValue", "Cast",
    "Bitcast", "Equal", "NotEqual", "Less", "LessEqual", "Greater",
    "GreaterEqual", "ApproximateEqual", "LogicalAnd", "LogicalOr",
    "LogicalNot", "Select", "SelectV2", "IsNan", "IsInf", "IsFinite",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Invert", "LeftShift",
    "RightShift", "ZerosLike", "OnesLike",
    # Reductions, scans and sorting.
    "Mean", "Sum", "Max", "Min", "Prod", "All", "Any", "ArgMax", "ArgMin",
    "Cumsum", "Cumprod", "CumulativeLogsumexp", "TopKV2", "InTopKV2",
    "SegmentSum", "SegmentMean", "SegmentMax", "SegmentMin",
    "UnsortedSegmentSum", "UnsortedSegmentMax", "UnsortedSegmentMin",
    "UnsortedSegmentProd", "Bincount", "Unique", "UniqueV2",
    # Linear algebra.
    "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum",
    "MatrixBandPart", "MatrixDiag", "MatrixDiagV2", "MatrixDiagV3",
    "MatrixDiagPart", "MatrixDiagPartV2", "MatrixDiagPartV3",
    "MatrixSetDiag", "MatrixSetDiagV2", "MatrixSetDiagV3",
    "MatrixInverse", "Cholesky", "Qr", "SelfAdjointEigV2", "Svd", "Cross",
    # Neural-network ops.
    "BiasAdd", "BiasAddV1", "Conv2D", "Conv3D", "Conv2DBackpropInput",
    "Conv3DBackpropInputV2", "DepthwiseConv2dNative", "Dilation2D",
    "MaxPool", "MaxPoolV2", "MaxPool3D", "MaxPoolWithArgmax", "AvgPool",
    "AvgPool3D", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
    "LRN", "L2Loss", "Relu", "Relu6", "LeakyRelu", "Elu", "Selu",
    "Softplus", "Softsign", "Softmax", "LogSoftmax",
    "SoftmaxCrossEntropyWithLogits",
    "SparseSoftmaxCrossEntropyWithLogits",
    "FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVars",
    "FakeQuantWithMinMaxVarsPerChannel", "QuantizeAndDequantizeV2",
    "QuantizeAndDequantizeV3", "QuantizeAndDequantizeV4",
    # Shapes and array manipulation.
    "Shape", "ShapeN", "Size", "Rank", "Reshape", "Squeeze", "ExpandDims",
    "Concat", "ConcatV2", "Pack", "Unpack", "Split", "SplitV", "Transpose",
    "ConjugateTranspose", "Pad", "PadV2", "MirrorPad", "Tile", "BroadcastTo",
    "BroadcastArgs", "BroadcastGradientArgs", "StridedSlice", "Slice",
    "Gather", "GatherV2", "GatherNd", "ScatterNd", "TensorScatterUpdate",
    "TensorScatterAdd", "ReverseV2", "ReverseSequence", "Fill", "Range",
    "LinSpace", "OneHot", "Where", "SpaceToBatchND", "BatchToSpaceND",
    "SpaceToDepth", "DepthToSpace", "ResizeBilinear", "ResizeNearestNeighbor",
    "ResizeBicubic", "ResizeArea", "CropAndResize", "ExtractImagePatches",
    "DynamicStitch", "ParallelDynamicStitch", "DynamicPartition",
    "ListDiff", "InvertPermutation",
    # Stateless (counter-based) random numbers: pure functions of the seed.
    "StatelessRandomUniform", "StatelessRandomUniformV2",
    "StatelessRandomUniformInt", "StatelessRandomUniformIntV2",
    "StatelessRandomUniformFullInt", "StatelessRandomUniformFullIntV2",
    "StatelessRandomNormal", "StatelessRandomNormalV2",
    "StatelessTruncatedNormal", "StatelessTruncatedNormalV2",
    "StatelessRandomGetKeyCounter", "StatelessRandomGetKeyCounterAlg",
    "StatelessRandomGetAlg",
    # TF1 control flow.
    "Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond",
    "ControlTrigger",
    # Functional control flow and function calls (bodies are checked too).
    "StatelessWhile", "StatelessIf", "StatelessCase", "While", "If", "Case",
    "PartitionedCall", "StatefulPartitionedCall",
    # In-memory lists of tensors (dynamic loops write their outputs here).
    "TensorListReserve", "TensorListFromTensor", "TensorListStack",
    "TensorListGetItem", "TensorListSetItem", "TensorListLength",
    "TensorListElementShape", "TensorListPushBack", "TensorListPopBack",
    "TensorListConcatV2", "TensorListSplit", "TensorListGather",
    "TensorListScatterIntoExistingList", "EmptyTensorList",
    "TensorArrayV3", "TensorArrayReadV3", "TensorArrayWriteV3",
    "TensorArrayGatherV3", "TensorArrayScatterV3", "TensorArraySizeV3",
    "TensorArrayConcatV3", "TensorArraySplitV3",
])

# Variable ops: allowed in a graph before it is frozen (they hold the weights
# that our own restore ops fill from the checkpoint, then become constants),
# never in a frozen graph.
VARIABLE_OPS = frozenset(["VariableV2", "Variable", "VarHandleOp",
                          "ReadVariableOp"])

# Function bodies of a TF2 SavedModel may also update their own variables
# (e.g. a saved training step); that is state, not I/O.
_FUNCTION_STATE_OPS = VARIABLE_OPS | frozenset([
    "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
    "VarIsInitializedOp"])

_IO = "does file or network I/O"
_PYTHON = "runs Python"
# Known-dangerous ops, named in refusals so the reason is plain. Anything
# else off the allow-list is refused too, just without a reason.
DANGEROUS_OPS = dict(
    [(op, _PYTHON) for op in ("PyFunc", "PyFuncStateless", "EagerPyFunc")] +
    [(op, _IO) for op in (
        "WriteFile", "ReadFile", "MatchingFiles", "DeleteFile",
        "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2",
        "RestoreSlice", "MergeV2Checkpoints", "ShardedFilename",
        "ShardedFilespec", "PrintV2", "CreateSummaryFileWriter",
        "CreateSummaryDbWriter", "SummaryWriter", "WriteSummary",
        "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary",
        "WriteAudioSummary", "WriteGraphSummary", "WriteRawProtoSummary",
        "FlushSummaryWriter", "CloseSummaryWriter", "ImportEvent",
        "TFRecordReader", "TFRecordReaderV2", "TextLineReader",
        "TextLineReaderV2", "WholeFileReader", "WholeFileReaderV2",
        "FixedLengthRecordReader", "FixedLengthRecordReaderV2",
        "LMDBReader", "ReaderReadV2", "TFRecordDataset", "TFRecordDatasetV2",
        "TextLineDataset", "FixedLengthRecordDataset",
        "FixedLengthRecordDatasetV2", "DatasetToTFRecord", "SaveDataset",
        "SaveDatasetV2", "LoadDataset", "SnapshotDatasetV2",
        "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
        "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3",
        "DebugNanCount", "DebugNumericSummary", "DebugNumericSummaryV2",
        "Send", "Recv", "_Send", "_Recv", "_HostSend", "_HostRecv",
        "CollectiveReduce", "CollectiveReduceV2", "CollectiveGather",
        "CollectiveGatherV2", "CollectiveBcastSend", "CollectiveBcastRecv",
        "RpcCall", "RpcServer", "RpcClient", "GcsConfigureCredentials",
        "GcsConfigureBlockCache", "BigQueryReader",
        # Reads a descriptor set from a file named by an attribute.
        "DecodeProtoV2")])

_VARIABLE_NODE_OPS = ("VariableV2", "Variable", "VarHandleOp")
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
_DEFAULT_SIGNATURE = "serving_default"
_DEFAULT_OUTPUT = "logits"
# Nodes that never make sense as a model's output when guessing one.
_NOT_OUTPUTS = frozenset(["NoOp", "Const", "Placeholder", "Assert",
                          "SaveV2", "RestoreV2", "VariableV2", "VarHandleOp",
                          "AssignVariableOp", "Assign", "MergeV2Checkpoints",
                          "VarIsInitializedOp", "PlaceholderWithDefault"])


def _node_name(ref):
  """'^a', 'a:1', 'a' -> 'a'."""
  ref = ref[1:] if ref.startswith("^") else ref
  return ref.split(":")[0]


def tensor_name(name):
  """Normalises a node or tensor name to a tensor name: 'x' -> 'x:0'."""
  if ":" in name:
    node, index = name.rsplit(":", 1)
    if index.isdigit():
      return "%s:%d" % (node, int(index))
  return name + ":0"


def _functions_called(node, library):
  """Names of the `library` functions a NodeDef calls.

  A node calls a function through its op type (a node whose op is a library
  function) or through any function-valued attribute: `f` of
  PartitionedCall, `body`/`cond` of While, `then_branch`/`else_branch` of If,
  `branches` of Case, and any other `func` or `list(func)` attribute.
  """
  names = [node.op] if node.op in library else []
  stack = [node.attr[key] for key in sorted(node.attr)]
  while stack:
    value = stack.pop()
    kind = value.WhichOneof("value")
    funcs = ([value.func] if kind == "func" else
             list(value.list.func) if kind == "list" else [])
    for func in funcs:
      names.append(func.name)
      # A function passed to a function (a NameAttrList's own attributes).
      stack.extend(func.attr[key] for key in sorted(func.attr))
  return [n for n in names if n in library]


def _function_entries(library, roots):
  """Every node of the functions `roots` and of the functions they call.

  A function body runs as a whole when called (its stateful ops are tied to
  the call by automatic control dependencies), so every one of its nodes
  counts, not only those its outputs need.

  Args:
    library: dict function name -> FunctionDef.
    roots: iterable of function names.

  Returns:
    (entries, visited): a list of (op type, "node 'n' in function 'f'") and
    the set of function names visited.
  """
  entries = []
  visited = set()
  stack = list(roots)
  while stack:
    name = stack.pop()
    if name in visited:
      continue
    visited.add(name)
    for node in library[name].node_def:
      entries.append((node.op, "node '%s' in function '%s'" %
                      (node.name, name)))
      stack.extend(_functions_called(node, library))
  return entries, visited


def reachable_subgraph(graph_def, output_names, stop_tensors=()):
  """The nodes and functions an output of `graph_def` depends on.

  Walks from the output nodes back through data and control inputs. An input
  that is exactly one of `stop_tensors` (the tensor a caller will replace by
  its own input) is not followed.

  Args:
    graph_def: tf.compat.v1.GraphDef.
    output_names: node or tensor names.
    stop_tensors: tensor names not to walk through.

  Returns:
    (node_names, entries, functions): the set of reachable node names, a list
    of (op type, where) for every reachable node and function-body node, and
    the set of reachable library function names.
  """
  nodes = {n.name: n for n in graph_def.node}
  library = {f.signature.name: f for f in graph_def.library.function}
  stop = set(tensor_name(t) for t in stop_tensors)
  seen = set()
  stack = [_node_name(name) for name in output_names]
  entries = []
  called = []
  while stack:
    name = stack.pop()
    if name in seen or name not in nodes:
      continue
    seen.add(name)
    node = nodes[name]
    entries.append((node.op, "node '%s'" % name))
    called.extend(_functions_called(node, library))
    for ref in node.input:
      if not ref.startswith("^") and tensor_name(ref) in stop:
        continue
      stack.append(_node_name(ref))
  body_entries, functions = _function_entries(library, called)
  return seen, entries + body_entries, functions


def find_unsafe_ops(entries, allowed=ALLOWED_OPS, function_names=()):
  """The op types of `entries` outside `allowed`.

  Args:
    entries: list of (op type, where), e.g. from `reachable_subgraph`.
    allowed: the allow-list.
    function_names: library function names; a node whose op type is one of
      them is a function call (its body is among the entries).

  Returns:
    OrderedDict op type -> where its first node is, in order of appearance.
  """
  unsafe = collections.OrderedDict()
  for op, where in entries:
    if op not in allowed and op not in function_names:
      unsafe.setdefault(op, where)
  return unsafe


UnsafeOpsPolicy = collections.namedtuple("UnsafeOpsPolicy",
                                         ["allow", "what", "opt_in_hint"])
UnsafeOpsPolicy.__doc__ = """What to do with ops outside the allow-list.

Fields: allow (bool: warn and load instead of refusing); what (str: the
kind of file in messages, e.g. "teacher graph"); opt_in_hint (str: how the
caller's user allows such a file, ending the refusal).
"""


def teacher_policy(allow_unsafe_ops):
  """The policy of a teacher graph (distill's --allow_unsafe_teacher_ops)."""
  return UnsafeOpsPolicy(bool(allow_unsafe_ops), "teacher graph",
                         UNSAFE_FLAG_HINT)


def _refuse_or_warn(unsafe, source, policy):
  """Raises UnsafeGraphError for `unsafe` ops unless `policy` allows them."""
  if not unsafe:
    return
  shown = list(unsafe.items())[:6]
  described = ", ".join("%s (%s)" % (op, where) for op, where in shown)
  if len(unsafe) > len(shown):
    described += " and %d more" % (len(unsafe) - len(shown))
  reasons = ["%s %s" % (op, DANGEROUS_OPS[op]) for op, _ in shown
             if op in DANGEROUS_OPS]
  reason = " (%s)" % "; ".join(reasons) if reasons else ""
  if policy.allow:
    _logger.warning(
        "%s %s: loading ops outside the allow-list of pure tensor ops "
        "because unsafe ops are allowed: %s%s", policy.what, source,
        described, reason)
    return
  verb = "is" if len(unsafe) == 1 else "are"
  raise errors.UnsafeGraphError(
      "%s %s: op%s %s %s not on the allow-list of pure tensor ops%s; %s" % (
          policy.what, source, "" if len(unsafe) == 1 else "s", described,
          verb, reason, policy.opt_in_hint))


def check_graph_def(graph_def, output_names, source, allow_unsafe_ops=False,
                    stop_tensors=(), allowed=ALLOWED_OPS):
  """Refuses a graph whose outputs depend on ops outside `allowed`.

  Args:
    graph_def: tf.compat.v1.GraphDef.
    output_names: node or tensor names of the outputs that will be run.
    source: file name for messages.
    allow_unsafe_ops: log a warning instead of refusing.
    stop_tensors: tensors a caller replaces (not walked through).
    allowed: the allow-list (ALLOWED_OPS, plus VARIABLE_OPS before freezing).

  Returns:
    The set of reachable node names.

  Raises:
    UnsafeGraphError: naming the op types and a node of each.
  """
  names, entries, _ = reachable_subgraph(graph_def, output_names,
                                         stop_tensors)
  library = set(f.signature.name for f in graph_def.library.function)
  _refuse_or_warn(find_unsafe_ops(entries, allowed, library), source,
                  teacher_policy(allow_unsafe_ops))
  return names


# ----------------------------------------------------------------------------
# Reading files.


def _read_bytes(path):
  try:
    with open(path, "rb") as f:
      return f.read()
  except OSError as e:
    raise errors.DataError("cannot read %s: %s" % (path, e.strerror or e))


def _parse_proto(proto, path, what):
  """Parses `path` (binary, or text if it ends in .pbtxt) into `proto`."""
  data = _read_bytes(path)
  try:
    if path.endswith(".pbtxt"):
      text_format.Parse(data.decode("utf-8"), proto)
    else:
      proto.ParseFromString(data)
  except (protobuf_message.DecodeError, text_format.ParseError,
          UnicodeDecodeError, ValueError, RuntimeWarning) as e:
    raise errors.DataError("cannot parse %s as a %s: %s" %
                           (path, what, str(e).split("\n")[0] or
                            type(e).__name__)) from None
  return proto


def _parse_graph_def(path):
  graph_def = _parse_proto(tf.compat.v1.GraphDef(), path, "GraphDef")
  if not graph_def.node:
    raise errors.DataError("cannot parse %s as a GraphDef: it holds no nodes "
                           "(is it a frozen graph?)" % path)
  return graph_def


def _resolve_path(path):
  """Decides what kind of model file `path` is.

  Returns:
    (kind, location): location is the file for "frozen", the directory for
    "saved_model" and the checkpoint prefix for "meta_checkpoint".

  Raises:
    DataError: nothing loadable at `path`.
  """
  if not path:
    raise errors.ConfigError("no teacher graph given")
  if os.path.isdir(path):
    for name in _SAVED_MODEL_FILES:
      if os.path.isfile(os.path.join(path, name)):
        return SAVED_MODEL, path
    if os.path.isfile(os.path.join(path, "checkpoint")):
      prefix = tf.train.latest_checkpoint(path)
      if prefix and os.path.isfile(prefix + ".meta"):
        return META_CHECKPOINT, prefix
      raise errors.DataError(
          "directory %s holds a checkpoint but no .meta graph for it (%s): "
          "a checkpoint alone holds weights, not a model; use "
          "--teacher_model with --teacher_checkpoint" %
          (path, prefix or "no checkpoint listed"))
    raise errors.DataError(
        "directory %s holds neither a SavedModel (saved_model.pb) nor a "
        "checkpoint with its .meta graph" % path)
  if os.path.isfile(path):
    base = os.path.basename(path)
    if base in _SAVED_MODEL_FILES:
      return SAVED_MODEL, os.path.dirname(path) or "."
    if base.endswith(".meta"):
      return META_CHECKPOINT, path[:-len(".meta")]
    if base.endswith(".index") and os.path.isfile(
        path[:-len(".index")] + ".meta"):
      return META_CHECKPOINT, path[:-len(".index")]
    return FROZEN, path
  if os.path.isfile(path + ".meta"):
    return META_CHECKPOINT, path
  raise errors.DataError(
      "teacher graph %s not found: expected a frozen GraphDef (.pb or "
      ".pbtxt), a SavedModel directory, or a checkpoint prefix with its "
      ".meta file" % path)


# ----------------------------------------------------------------------------
# Choosing the input and the output.


def _consumed(graph_def):
  used = set()
  for node in graph_def.node:
    used.update(_node_name(ref) for ref in node.input)
  return used


def _candidates(graph_def, limit=12):
  """Likely output tensor names, for error messages.

  Sinks (nodes nothing consumes) come first, names with "logits" before the
  rest; a saver's and the initialisers' nodes are left out.
  """
  used = _consumed(graph_def)

  def plausible(node):
    return (node.op not in _NOT_OUTPUTS and
            not re.match(r"^save(_\d+)?/", node.name) and
            "/Initializer/" not in node.name)

  def rank(node):
    return (node.name in used, "logits" not in node.name.lower())

  nodes = sorted((n for n in graph_def.node if plausible(n)), key=rank)
  shown = ", ".join(tensor_name(n.name) for n in nodes[:limit])
  if len(nodes) > limit:
    shown += ", ... (%d in all)" % len(nodes)
  return shown


def _as_list(names):
  if names is None:
    return []
  if isinstance(names, str):
    return [names] if names else []
  return [n for n in names if n]


def _check_tensor(graph_def, name, what, source, placeholders_only=False):
  """Returns tensor_name(name) after checking its node exists."""
  nodes = {n.name: n for n in graph_def.node}
  tname = tensor_name(name)
  if _node_name(tname) not in nodes:
    if placeholders_only:
      options = ", ".join(tensor_name(n.name) for n in graph_def.node
                          if n.op == "Placeholder") or "(no placeholders)"
    else:
      options = _candidates(graph_def)
    raise errors.ConfigError(
        "teacher graph %s has no %s tensor %r; candidate tensor names: %s" %
        (source, what, name, options))
  return tname


def _choose_outputs(graph_def, output_names, source):
  """Tensor names of the outputs: the given ones, or a guess."""
  names = _as_list(output_names)
  if names:
    return [_check_tensor(graph_def, n, "output", source) for n in names]
  nodes = {n.name for n in graph_def.node}
  if _DEFAULT_OUTPUT in nodes:
    return [tensor_name(_DEFAULT_OUTPUT)]
  used = _consumed(graph_def)
  sinks = [n.name for n in graph_def.node
           if n.name not in used and n.op not in _NOT_OUTPUTS]
  if len(sinks) == 1:
    return [tensor_name(sinks[0])]
  raise errors.ConfigError(
      "cannot tell the output of teacher graph %s (no node named %r and %d "
      "candidate outputs); pass --teacher_output, e.g. one of: %s" %
      (source, _DEFAULT_OUTPUT, len(sinks), _candidates(graph_def)))


def _choose_input(graph_def, input_name, outputs, source):
  """Tensor name of the input: the given one, or the one placeholder."""
  if input_name:
    return _check_tensor(graph_def, input_name, "input", source,
                         placeholders_only=True)
  names, _, _ = reachable_subgraph(graph_def, outputs)
  placeholders = [n.name for n in graph_def.node
                  if n.name in names and n.op == "Placeholder"]
  if len(placeholders) == 1:
    return tensor_name(placeholders[0])
  raise errors.ConfigError(
      "cannot tell the input of teacher graph %s: the output %s depends on "
      "%d placeholders (%s); pass --teacher_input" %
      (source, outputs[0], len(placeholders),
       ", ".join(tensor_name(p) for p in placeholders) or "none"))


def _describe(graph_def, input_name, output_names, source):
  """Static input shape and output class count, by importing into a scratch
  graph (graph construction only: nothing runs)."""
  with tf.Graph().as_default() as graph:
    try:
      tf.compat.v1.import_graph_def(graph_def, name="")
    except (ValueError, tf.errors.OpError) as e:
      raise errors.DataError("cannot import the graph of %s: %s" %
                             (source, str(e).split("\n")[0])) from None
    try:
      inputs = graph.get_tensor_by_name(input_name)
      output = graph.get_tensor_by_name(output_names[0])
    except (KeyError, ValueError) as e:
      raise errors.ConfigError("teacher graph %s: %s" %
                               (source, str(e).split("\n")[0])) from None
  input_shape = (inputs.shape.as_list() if inputs.shape.rank is not None
                 else None)
  num_classes = None
  if output.shape.rank:
    num_classes = output.shape.as_list()[-1]
  return input_shape, num_classes


# ----------------------------------------------------------------------------
# Freezing a TF1 graph restored from a checkpoint.


def _copy_pruned(graph_def, keep, functions):
  """A GraphDef of the nodes `keep` and functions `functions` of graph_def.

  Devices and colocation constraints are dropped: the pruned graph runs on
  the host, and colocation with a node left behind would fail to import.
  """
  pruned = tf.compat.v1.GraphDef()
  pruned.versions.CopyFrom(graph_def.versions)
  for node in graph_def.node:
    if node.name in keep:
      copy = pruned.node.add()
      copy.CopyFrom(node)
      copy.device = ""
      if "_class" in copy.attr:
        del copy.attr["_class"]
  for function in graph_def.library.function:
    if function.signature.name in functions:
      pruned.library.function.add().CopyFrom(function)
  for gradient in graph_def.library.gradient:
    if (gradient.function_name in functions and
        gradient.gradient_func in functions):
      pruned.library.gradient.add().CopyFrom(gradient)
  return pruned


def _attr_list_item(node, key, index, kind):
  if key in node.attr and node.attr[key].WhichOneof("value") == "list":
    items = getattr(node.attr[key].list, kind)
    if index < len(items):
      return items[index]
  return None


def _replace_input(pruned, graph_def, input_tensor, reachable, source):
  """Makes the input a Placeholder, so the pruned graph needs nothing that
  fed it (an iterator, a decoder, a queue).

  Args:
    pruned: the pruned GraphDef, changed in place.
    graph_def: the GraphDef it was pruned from.
    input_tensor: tensor name of the input.
    reachable: names of the nodes kept in `pruned`.
    source: file name for messages.

  Returns:
    The input tensor name in `pruned` (a new one if the input had to be
    renamed).

  Raises:
    ConfigError: the outputs do not depend on the input.
  """
  if not any(tensor_name(ref) == input_tensor for node in pruned.node
             for ref in node.input if not ref.startswith("^")):
    if _node_name(input_tensor) in reachable:
      return input_tensor  # The input is itself an output's node.
    raise errors.ConfigError(
        "teacher graph %s: the output does not depend on the input %s" %
        (source, input_tensor))
  nodes = {n.name: n for n in graph_def.node}
  node_name, index = input_tensor.rsplit(":", 1)
  index = int(index)
  source_node = nodes[node_name]
  if node_name in reachable and source_node.op == "Placeholder":
    return input_tensor
  dtype = None
  for key in ("dtype", "T", "DstT"):
    if key in source_node.attr and source_node.attr[key].type:
      dtype = source_node.attr[key].type
      break
  for key in ("output_types", "Toutput_types", "component_types"):
    dtype = dtype or _attr_list_item(source_node, key, index, "type")
  shape = None
  if (source_node.op in ("Placeholder", "PlaceholderWithDefault") and
      "shape" in source_node.attr):
    shape = source_node.attr["shape"].shape
  shape = (shape or
           _attr_list_item(source_node, "_output_shapes", index, "shape") or
           _attr_list_item(source_node, "output_shapes", index, "shape"))
  name = node_name
  if node_name in reachable or index != 0:
    # Other outputs of the node are still needed (or the input is not its
    # output 0): a fresh name, and references to the input rewired to it.
    used = set(n.name for n in pruned.node)
    name = "teacher_input"
    while name in used:
      name += "_"
  placeholder = pruned.node.add()
  placeholder.name = name
  placeholder.op = "Placeholder"
  placeholder.attr["dtype"].type = dtype or tf.float32.as_datatype_enum
  if shape is not None:
    placeholder.attr["shape"].shape.CopyFrom(shape)
  else:
    placeholder.attr["shape"].shape.unknown_rank = True
  if name != node_name:
    for node in pruned.node:
      for i, ref in enumerate(node.input):
        if not ref.startswith("^") and tensor_name(ref) == input_tensor:
          node.input[i] = name
  return tensor_name(name)


def _check_and_prune(graph_def, input_tensor, output_tensors, source,
                     unsafe_policy, allowed):
  """Checks the nodes the outputs need and keeps only those.

  The walk stops at the input, which becomes a Placeholder: whatever fed it
  in the file (a reader, an iterator) is neither checked nor kept.

  Returns:
    (pruned GraphDef, input tensor name in it).

  Raises:
    UnsafeGraphError: see `check_graph_def`.
  """
  names, entries, functions = reachable_subgraph(
      graph_def, output_tensors, stop_tensors=[input_tensor])
  library = set(f.signature.name for f in graph_def.library.function)
  _refuse_or_warn(find_unsafe_ops(entries, allowed, library), source,
                  unsafe_policy)
  pruned = _copy_pruned(graph_def, names, functions)
  input_tensor = _replace_input(pruned, graph_def, input_tensor, names,
                                source)
  return pruned, input_tensor


def _restore_op(graph, variable_nodes, prefix, source):
  """Our own restore: RestoreV2 of exactly the variables the output needs.

  The file's saver_def and its restore ops are never used, so nothing the
  file defines runs while the weights are read.

  Returns:
    An op that assigns every variable its checkpoint value, or None.

  Raises:
    CheckpointError: the checkpoint lacks a variable or has another shape.
  """
  if not variable_nodes:
    return None
  try:
    stored = dict(tf.train.list_variables(prefix))
  except (tf.errors.OpError, ValueError) as e:
    raise errors.CheckpointError("cannot read checkpoint %s of teacher graph "
                                 "%s: %s" % (prefix, source,
                                             str(e).split("\n")[0])) from None
  problems = []
  for node in variable_nodes:
    shape = None
    if "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
      shape = [d.size for d in node.attr["shape"].shape.dim]
    if node.name not in stored:
      problems.append("%s is missing" % node.name)
    elif shape is not None and list(stored[node.name]) != shape:
      problems.append("%s has shape %s in the checkpoint, the graph expects "
                      "%s" % (node.name, list(stored[node.name]), shape))
  if problems:
    more = " (and %d more)" % (len(problems) - 5) if len(problems) > 5 else ""
    raise errors.CheckpointError(
        "checkpoint %s does not fit teacher graph %s: %s%s" %
        (prefix, source, "; ".join(problems[:5]), more))
  with graph.as_default(), tf.compat.v1.name_scope("distill_v1_restore"):
    values = tf.raw_ops.RestoreV2(
        prefix=prefix, tensor_names=[n.name for n in variable_nodes],
        shape_and_slices=[""] * len(variable_nodes),
        dtypes=[tf.dtypes.as_dtype(n.attr["dtype"].type)
                for n in variable_nodes])
    assigns = []
    for node, value in zip(variable_nodes, values):
      handle = graph.get_tensor_by_name(node.name + ":0")
      if node.op == "VarHandleOp":
        assigns.append(tf.raw_ops.AssignVariableOp(resource=handle,
                                                   value=value))
        read_name = node.name + "/Read/ReadVariableOp"
        # convert_variables_to_constants reads resource variables through
        # this node; the pruned graph may have left it behind.
        try:
          graph.get_operation_by_name(read_name)
        except KeyError:
          with tf.compat.v1.name_scope(None):
            tf.raw_ops.ReadVariableOp(resource=handle, dtype=value.dtype,
                                      name=read_name)
      else:
        assigns.append(tf.raw_ops.Assign(ref=handle, value=value).op)
    return tf.group(*assigns)


def _freeze_tf1(graph_def, input_tensor, output_tensors, prefix, source,
                unsafe_policy):
  """Checks, restores (from `prefix`) and freezes a TF1 graph.

  Returns:
    (frozen GraphDef, input tensor name, output tensor names).
  """
  pruned, input_tensor = _check_and_prune(
      graph_def, input_tensor, output_tensors, source, unsafe_policy,
      ALLOWED_OPS | VARIABLE_OPS)
  variable_nodes = [n for n in pruned.node if n.op in _VARIABLE_NODE_OPS]
  with tf.Graph().as_default() as graph:
    try:
      tf.compat.v1.import_graph_def(pruned, name="")
    except (ValueError, tf.errors.OpError) as e:
      raise errors.DataError("cannot import the graph of %s: %s" %
                             (source, str(e).split("\n")[0])) from None
  restore = _restore_op(graph, variable_nodes, prefix, source)
  output_nodes = [_node_name(t) for t in output_tensors]
  with tf.compat.v1.Session(graph=graph) as sess:
    try:
      if restore is not None:
        sess.run(restore)
      frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
          sess, graph.as_graph_def(), output_nodes)
    except (tf.errors.OpError, ValueError) as e:
      raise errors.CheckpointError(
          "cannot restore teacher graph %s from %s: %s" %
          (source, prefix, str(e).split("\n")[0])) from None
  return frozen, input_tensor, output_tensors


# ----------------------------------------------------------------------------
# SavedModels.


def _parse_saved_model(directory):
  try:
    return tf.__internal__.saved_model.parse_saved_model(directory)
  except (IOError, OSError, protobuf_message.DecodeError,
          text_format.ParseError, ValueError) as e:
    raise errors.DataError("cannot parse SavedModel %s: %s" %
                           (directory, str(e).split("\n")[0])) from None


def _choose_meta_graph(saved_model, source):
  if not saved_model.meta_graphs:
    raise errors.DataError("SavedModel %s holds no meta graph" % source)
  for meta_graph in saved_model.meta_graphs:
    if "serve" in meta_graph.meta_info_def.tags:
      return meta_graph
  return saved_model.meta_graphs[0]


def _choose_signature(meta_graph, source):
  signatures = meta_graph.signature_def
  if _DEFAULT_SIGNATURE in signatures:
    return _DEFAULT_SIGNATURE
  usable = sorted(k for k in signatures if not k.startswith("__"))
  if len(usable) == 1:
    return usable[0]
  raise errors.ConfigError(
      "SavedModel %s has no %r signature; its signatures: %s" %
      (source, _DEFAULT_SIGNATURE, ", ".join(usable) or "none"))


def _choose_keys(mapping, given, default, what, source, signature,
                 graph_def=None):
  """Resolves the inputs or outputs of a signature.

  Args:
    mapping: the signature's inputs or outputs (key -> TensorInfo).
    given: None, a name or a list of names: signature keys, or (when
      `graph_def` is given) tensor names of that graph.
    default: the key used when nothing is given, if the signature has it.
    what: "input" or "output", for messages.
    source, signature: for messages.
    graph_def: the graph whose tensor names are accepted too (TF1).

  Returns:
    A list of tensor names (TF1, `graph_def` given) or of signature keys.

  Raises:
    ConfigError: an unknown name, or no name and no obvious choice.
  """
  keys = sorted(mapping)
  names = _as_list(given)
  if not names:
    if default is not None and default in mapping:
      names = [default]
    elif len(mapping) == 1:
      names = keys
    else:
      raise errors.ConfigError(
          "cannot tell the %s of signature %r of SavedModel %s; pass "
          "--teacher_%s, one of: %s" % (what, signature, source, what,
                                        ", ".join(keys)))
  resolved = []
  for name in names:
    if name in mapping:
      resolved.append(mapping[name].name if graph_def is not None else name)
    elif graph_def is not None and _node_name(name) in set(
        n.name for n in graph_def.node):
      resolved.append(tensor_name(name))
    else:
      raise errors.ConfigError(
          "SavedModel %s has no %s %r: signature %r has the %ss %s%s" %
          (source, what, name, signature, what, ", ".join(keys),
           "" if graph_def is None else
           "; other candidate tensor names: " + _candidates(graph_def)))
  return resolved


def _is_tf2(saved_model):
  """True if `tf.saved_model.load` would take its TF2 path for this model.

  This must be TensorFlow's own test: for anything else it falls back to
  the TF1 loader, which runs the file's restore and init ops.
  """
  return (len(saved_model.meta_graphs) == 1 and
          saved_model.meta_graphs[0].HasField("object_graph_def"))


def _tf1_saved_model(directory, meta_graph, input_name, output_names,
                     unsafe_policy):
  signature = _choose_signature(meta_graph, directory)
  sig = meta_graph.signature_def[signature]
  graph_def = meta_graph.graph_def
  inputs = _choose_keys(sig.inputs, input_name, None, "input", directory,
                        signature, graph_def)
  outputs = _choose_keys(sig.outputs, output_names, _DEFAULT_OUTPUT,
                         "output", directory, signature, graph_def)
  prefix = os.path.join(directory, "variables", "variables")
  return _freeze_tf1(graph_def, inputs[0], outputs, prefix, directory,
                     unsafe_policy)


def _saver_only_functions(meta_graph):
  """Library functions only the exporter's save/restore nodes call.

  `tf.saved_model.save` adds a `_traced_save` and a `_traced_restore`
  function (SaveV2, RestoreV2, MergeV2Checkpoints) for TF1-style loaders,
  called by the nodes `saver_def` names. `tf.saved_model.load` never runs
  them: it restores variables with its own ops. A function they call is
  exempt only if nothing else refers to it.
  """
  graph_def = meta_graph.graph_def
  library = {f.signature.name: f for f in graph_def.library.function}
  saver_def = meta_graph.saver_def
  saver_nodes = set(_node_name(n) for n in (saver_def.save_tensor_name,
                                            saver_def.restore_op_name) if n)
  roots = set()
  others = set()
  for node in graph_def.node:
    target = roots if node.name in saver_nodes else others
    target.update(_functions_called(node, library))
  for name, function in library.items():
    if name in roots:
      continue
    for node in function.node_def:
      others.update(_functions_called(node, library))
  objects = meta_graph.object_graph_def
  others.update(objects.concrete_functions.keys())
  for obj in objects.nodes:
    kind = obj.WhichOneof("kind")
    if kind == "function":
      others.update(obj.function.concrete_functions)
    elif kind == "bare_concrete_function":
      others.add(obj.bare_concrete_function.concrete_function_name)
  return roots - others


def _check_tf2_saved_model(meta_graph, output_tensors, source,
                           unsafe_policy):
  """Checks a TF2 SavedModel before `tf.saved_model.load` may run any of it.

  Loading can run more than the serving signature (resource initialisers,
  custom restore functions), so every function of the library is checked,
  except the exporter's own save/restore functions, which loading never
  runs. The top-level nodes the signature's outputs need are checked too.
  """
  graph_def = meta_graph.graph_def
  library = {f.signature.name: f for f in graph_def.library.function}
  _, entries, _ = reachable_subgraph(graph_def, output_tensors)
  exempt = _saver_only_functions(meta_graph)
  body_entries, _ = _function_entries(
      library, sorted(set(library) - exempt))
  unsafe = find_unsafe_ops(entries + body_entries,
                           ALLOWED_OPS | _FUNCTION_STATE_OPS, set(library))
  _refuse_or_warn(unsafe, source, unsafe_policy)


def _convert_variables_to_constants_v2():
  # TensorFlow does not export the TF2 freezing function under `tf.`; it has
  # lived in this module since TF 2.0 and compat.py pins the TF range.
  module = importlib.import_module(
      "tensorflow.python.framework.convert_to_constants")
  return module.convert_variables_to_constants_v2


def _run_eagerly(fn):
  """Runs fn() in eager mode, even when a graph is the caller's default.

  `tf.saved_model.load` of a TF2 SavedModel and the TF2 freezing work on
  eager functions. A fresh thread starts with eager execution and no default
  graph, whatever the calling thread has entered.
  """
  result = {}

  def target():
    try:
      result["value"] = fn()
    except BaseException as e:  # pylint: disable=broad-except
      result["error"] = e

  thread = threading.Thread(target=target, name="distill_v1_saved_model")
  thread.start()
  thread.join()
  if "error" in result:
    raise result["error"]
  return result["value"]


def _tf2_saved_model(directory, meta_graph, input_name, output_names,
                     unsafe_policy):
  signature = _choose_signature(meta_graph, directory)
  sig = meta_graph.signature_def[signature]
  (input_key,) = _choose_keys(sig.inputs, input_name, None, "input",
                              directory, signature)
  output_keys = _choose_keys(sig.outputs, output_names, _DEFAULT_OUTPUT,
                             "output", directory, signature)
  _check_tf2_saved_model(
      meta_graph, [sig.outputs[k].name for k in sig.outputs], directory,
      unsafe_policy)
  convert = _convert_variables_to_constants_v2()

  def load_and_freeze():
    loaded = tf.saved_model.load(directory)
    function = loaded.signatures[signature]
    frozen_function = convert(function)
    # A signature returns a flat dict; its outputs are in tf.nest order.
    keys = tf.nest.flatten({k: k for k in function.structured_outputs})
    outputs = {key: tensor.name for key, tensor in
               zip(keys, frozen_function.outputs)}
    spec = function.structured_input_signature[1][input_key]
    by_name = {t.op.name: t.name for t in frozen_function.inputs}
    return (frozen_function.graph.as_graph_def(),
            by_name.get(spec.name or input_key), outputs)

  try:
    graph_def, input_tensor, outputs = _run_eagerly(load_and_freeze)
  except (tf.errors.OpError, ValueError, KeyError, TypeError, IOError) as e:
    raise errors.DataError("cannot load SavedModel %s: %s" %
                           (directory, str(e).split("\n")[0])) from None
  if input_tensor is None:
    raise errors.DataError("SavedModel %s: cannot find the input %r of "
                           "signature %r after freezing" %
                           (directory, input_key, signature))
  return graph_def, input_tensor, [outputs[k] for k in output_keys]


# ----------------------------------------------------------------------------
# The public entry points.


def load_frozen_graph(path, input_name=None, output_names=None,
                      allow_unsafe_ops=False, unsafe_policy=None):
  """Loads a model file as a checked, frozen GraphDef.

  Args:
    path: a frozen GraphDef (`.pb`, `.pbtxt`), a SavedModel directory, or a
      TF1 checkpoint with its `.meta` graph (prefix, `.meta` file, or a
      directory with a `checkpoint` file).
    input_name: input tensor (or node) name, or a signature input key for a
      SavedModel. Default: the signature's single input, or the single
      placeholder the output depends on.
    output_names: output tensor name, signature output key, or a list of
      them (the first is the teacher's output; the others are kept in the
      frozen graph). Default: the signature output `logits`, else its single
      output; for graphs the node `logits`, else the single sink node.
    allow_unsafe_ops: load even if ops outside ALLOWED_OPS are reachable
      (a warning is logged). Only for files you trust.
    unsafe_policy: an UnsafeOpsPolicy instead of `allow_unsafe_ops`, for a
      caller whose files are not teachers (its messages name its own kind
      of file and opt-in). Default: teacher_policy(allow_unsafe_ops).

  Returns:
    FrozenGraph.

  Raises:
    DataError: missing or unparsable file.
    ConfigError: unknown or ambiguous input/output names.
    CheckpointError: the checkpoint lacks the graph's variables.
    UnsafeGraphError: ops outside the allow-list are reachable.
  """
  if unsafe_policy is None:
    unsafe_policy = teacher_policy(allow_unsafe_ops)
  kind, location = _resolve_path(path)
  if kind == FROZEN:
    graph_def = _parse_graph_def(location)
    outputs = _choose_outputs(graph_def, output_names, path)
    input_tensor = _choose_input(graph_def, input_name, outputs, path)
  elif kind == META_CHECKPOINT:
    meta_graph = _parse_proto(tf.compat.v1.MetaGraphDef(),
                              location + ".meta", "MetaGraphDef")
    source_def = meta_graph.graph_def
    outputs = _choose_outputs(source_def, output_names, path)
    input_tensor = _choose_input(source_def, input_name, outputs, path)
    graph_def, input_tensor, outputs = _freeze_tf1(
        source_def, input_tensor, outputs, location, path, unsafe_policy)
  else:
    saved_model = _parse_saved_model(location)
    if _is_tf2(saved_model):
      build, meta_graph = _tf2_saved_model, saved_model.meta_graphs[0]
    else:
      build, meta_graph = (_tf1_saved_model,
                           _choose_meta_graph(saved_model, path))
    graph_def, input_tensor, outputs = build(
        location, meta_graph, input_name, output_names, unsafe_policy)
  # A frozen graph must be constants and pure math only: this is the check
  # for .pb files and a second look at what freezing produced. Only the
  # checked nodes are kept, so nothing else is ever imported.
  graph_def, input_tensor = _check_and_prune(
      graph_def, input_tensor, outputs, path, unsafe_policy, ALLOWED_OPS)
  input_shape, num_classes = _describe(graph_def, input_tensor, outputs, path)
  return FrozenGraph(graph_def=graph_def, input_name=input_tensor,
                     output_name=outputs[0], input_shape=input_shape,
                     num_classes=num_classes, source=path, kind=kind)


def import_frozen_graph(frozen, images_tensor, name):
  """Imports a checked frozen graph into the current graph.

  Args:
    frozen: FrozenGraph from `load_frozen_graph`.
    images_tensor: tensor replacing the graph's input; dtype and shape must
      fit `frozen.input_name`.
    name: name prefix of the imported nodes.

  Returns:
    The output tensor (e.g. logits [batch, num_classes]).

  Raises:
    ConfigError: the images do not fit the graph's input.
  """
  try:
    (output,) = tf.compat.v1.import_graph_def(
        frozen.graph_def, input_map={frozen.input_name: images_tensor},
        return_elements=[frozen.output_name], name=name)
  except ValueError as e:
    raise errors.ConfigError(
        "cannot feed %s into input %s of teacher graph %s: %s" %
        (images_tensor.name, frozen.input_name, frozen.source,
         str(e).split("\n")[0])) from None
  return output
