"""Inference graphs from checkpoints, frozen into constants-only GraphDefs.

  with frozen_graph.restored_inference_graph(prefix, network_fn, (28, 28, 1),
                                             10, scope="cnn_student") as (
      sess, graph):
    frozen = frozen_graph.freeze_session(sess, graph)
  frozen_graph.write_frozen_graph(frozen.graph_def, "/tmp/x/frozen_graph.pb")

The inference graph has one input and three outputs, the names every export
uses (DESIGN.md, Interfaces):

  images         float32 [None, H, W, C] in [0, 1] (Placeholder)
  logits         float32 [None, num_classes]
  probabilities  float32 [None, num_classes], softmax of the logits
  classes        int64 [None], argmax of the logits

Freezing (`freeze_session`) turns variables into constants and then makes
the graph lean for serving and conversion:
  1. `convert_variables_to_constants` keeps only what the outputs need, so
     savers, initializers, optimizer slots and update ops are gone;
  2. constant folding: every node computed from constants alone (a pruning
     mask times its kernel, the `rsqrt(variance + epsilon) * gamma` of
     unfused batch norm) becomes one constant;
  3. `Identity` and `CheckNumerics` nodes are removed (outputs are kept);
  4. batch norm folding: a `FusedBatchNorm*` in inference mode, and any
     per-channel multiplication or addition by a constant, that follows a
     Conv2D, DepthwiseConv2dNative or MatMul with a constant kernel is
     folded into that kernel and a bias (`y = (x*K + b)*s + t` becomes
     `x*(K*s) + (b*s + t)`), so the graph holds conv -> BiasAdd -> ReLU, the
     pattern serving runtimes and TFLite fuse;
  5. a last check refuses anything a training graph leaves behind
     (`training_leftovers`).

Compression reaches the network through hooks passed by the caller, so this
module never imports `compression/`: `custom_getter` is a variable custom
getter (e.g. one returning `kernel * mask`; the product folds to a constant
in step 2), `graph_hook(logits, end_points) -> logits` may add ops after the
network is built (e.g. fake quantization of the logits).
"""

import collections
import contextlib
import os

import numpy as np

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf
from distill_v1.models import nets_factory

INPUT_NAME = "images"
LOGITS = "logits"
PROBABILITIES = "probabilities"
CLASSES = "classes"
OUTPUT_NAMES = (LOGITS, PROBABILITIES, CLASSES)
FILENAME = "frozen_graph.pb"

InferenceGraph = collections.namedtuple("InferenceGraph", [
    "images",  # float32 [None, H, W, C] placeholder named "images".
    "logits",  # float32 [None, num_classes], named "logits".
    "probabilities",  # float32 [None, num_classes], named "probabilities".
    "classes",  # int64 [None], named "classes".
    "end_points",  # the network's end_points.
])

FrozenModel = collections.namedtuple("FrozenModel", [
    "graph_def",  # tf.compat.v1.GraphDef: constants only, folded.
    "input_name",  # "images:0".
    "output_names",  # {"logits": "logits:0", ...} for OUTPUT_NAMES.
    "image_shape",  # (H, W, C).
    "num_classes",  # int.
    "folded",  # int: batch norms / scales / shifts folded into kernels.
])

_FUSED_BATCH_NORMS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
_LINEAR_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")
_SHIFT_OPS = ("Add", "AddV2", "BiasAdd", "Sub")

# Ops a frozen inference graph must not hold: they keep or change state, or
# only make sense while training.
_VARIABLE_OPS = frozenset(["Variable", "VariableV2", "VarHandleOp",
                           "ReadVariableOp", "VarIsInitializedOp",
                           "IsVariableInitialized", "TemporaryVariable",
                           "DestroyTemporaryVariable"])
_STATE_CHANGING_OPS = frozenset([
    "Assign", "AssignAdd", "AssignSub", "AssignVariableOp",
    "AssignAddVariableOp", "AssignSubVariableOp", "ScatterUpdate",
    "ScatterAdd", "ScatterSub", "ScatterMul", "ScatterDiv",
    "ResourceScatterUpdate", "ResourceScatterAdd",
    "ResourceApplyGradientDescent",
    "ApplyGradientDescent", "ApplyMomentum", "ResourceApplyMomentum",
    "ApplyAdam", "ResourceApplyAdam", "SaveV2", "RestoreV2", "Save",
    "Restore", "MergeV2Checkpoints"])
_RANDOM_OPS = frozenset(["RandomUniform", "RandomStandardNormal",
                         "TruncatedNormal", "RandomUniformInt",
                         "StatelessRandomUniform", "StatelessRandomUniformV2",
                         "StatelessRandomNormal", "StatelessRandomNormalV2",
                         "StatelessTruncatedNormal",
                         "StatelessTruncatedNormalV2",
                         "StatelessRandomGetKeyCounter"])


# ----------------------------------------------------------------------------
# Building and restoring the inference graph.


def build_inference_graph(network_fn, image_shape, num_classes, scope=None,
                          custom_getter=None, graph_hook=None):
  """Builds the serving graph in the default graph.

  Args:
    network_fn: `fn(images, num_classes, is_training=False, scope=None) ->
      (logits, end_points)` (see nets_factory).
    image_shape: (H, W, C) of one example.
    num_classes: int, the logits' last dimension.
    scope: variable scope passed to `network_fn` (the checkpoint's), or None
      for the network's default.
    custom_getter: optional variable custom getter set on an enclosing
      variable scope, so every `get_variable` of the network goes through it
      (pruning masks, fake-quantized kernels).
    graph_hook: optional `fn(logits, end_points) -> logits` called after the
      network is built; the returned logits are the graph's output.

  Returns:
    InferenceGraph; the tensors are named `images`, `logits`,
    `probabilities` and `classes`.

  Raises:
    ConfigError: a bad image shape, or logits that are not float
      [batch, num_classes], or names already taken in the graph.
  """
  image_shape = nets_factory.check_image_shape(image_shape)
  graph = tf.compat.v1.get_default_graph()
  for name in (INPUT_NAME,) + OUTPUT_NAMES:
    try:
      graph.get_operation_by_name(name)
    except KeyError:
      continue
    raise errors.ConfigError(
        "the graph already has an op named %r, the name of an export's %s" %
        (name, "input" if name == INPUT_NAME else "output"))
  images = tf.compat.v1.placeholder(tf.float32, [None] + list(image_shape),
                                    name=INPUT_NAME)
  with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(),
                                   custom_getter=custom_getter):
    if scope is None:
      logits, end_points = network_fn(images, num_classes, is_training=False)
    else:
      logits, end_points = network_fn(images, num_classes, is_training=False,
                                      scope=scope)
  if graph_hook is not None:
    logits = graph_hook(logits, end_points)
  shape = logits.shape.as_list() if logits.shape.rank is not None else None
  if (not logits.dtype.is_floating or shape is None or len(shape) != 2 or
      shape[1] != num_classes):
    raise errors.ConfigError(
        "For tensor %s, the logits have dtype %s and shape %s; expected "
        "float [batch, %d]" % (logits.name, logits.dtype.name, shape,
                               num_classes))
  logits = tf.identity(tf.cast(logits, tf.float32), name=LOGITS)
  probabilities = tf.nn.softmax(logits, name=PROBABILITIES)
  classes = tf.argmax(logits, axis=1, output_type=tf.int64, name=CLASSES)
  return InferenceGraph(images=images, logits=logits,
                        probabilities=probabilities, classes=classes,
                        end_points=end_points)


@contextlib.contextmanager
def restored_inference_graph(prefix, network_fn, image_shape, num_classes,
                             scope=None, custom_getter=None, graph_hook=None,
                             session_config=None):
  """A session on a new inference graph with the checkpoint restored.

  Every global variable of the graph is restored from `prefix`, including
  those a `custom_getter` or `graph_hook` creates (masks, ranges), so a
  hook's state must be in the checkpoint.

  Args:
    prefix: checkpoint prefix.
    network_fn, image_shape, num_classes, scope, custom_getter, graph_hook:
      as in `build_inference_graph`.
    session_config: optional tf.compat.v1.ConfigProto.

  Yields:
    (sess, InferenceGraph); the graph is finalized.

  Raises:
    CheckpointError: a variable is missing from the checkpoint or has
      another shape (each one is named).
  """
  graph = tf.Graph()
  with graph.as_default():
    inference = build_inference_graph(network_fn, image_shape, num_classes,
                                      scope=scope,
                                      custom_getter=custom_getter,
                                      graph_hook=graph_hook)
    variables = tf.compat.v1.global_variables()
    with tf.compat.v1.Session(graph=graph, config=session_config) as sess:
      checkpoints.restore_variables(sess, prefix, variables,
                                    model_name=scope)
      graph.finalize()
      yield sess, inference


# ----------------------------------------------------------------------------
# Graph surgery helpers.


def _attr_s(node, key, default=b""):
  # Reading a missing key of a protobuf map would insert it: check first.
  return node.attr[key].s if key in node.attr else default


def _attr_b(node, key, default=False):
  return node.attr[key].b if key in node.attr else default


def _attr_type(node, key):
  return node.attr[key].type if key in node.attr else None


def _nhwc(node):
  return _attr_s(node, "data_format", b"NHWC") in (b"", b"NHWC")


def _node_name(ref):
  """'^a', 'a:1', 'a' -> 'a'."""
  ref = ref[1:] if ref.startswith("^") else ref
  return ref.split(":")[0]


def _output_index(ref):
  if ref.startswith("^"):
    return None
  parts = ref.rsplit(":", 1)
  return int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else 0


def _consumers(graph_def):
  """{node name: [(consumer NodeDef, input position, output index)]}."""
  consumers = collections.defaultdict(list)
  for node in graph_def.node:
    for position, ref in enumerate(node.input):
      consumers[_node_name(ref)].append((node, position, _output_index(ref)))
  return consumers


def _const_value(node):
  return tf.make_ndarray(node.attr["value"].tensor)


def _const_node(name, value):
  node = tf.compat.v1.NodeDef()
  node.name = name
  node.op = "Const"
  value = np.asarray(value)
  node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
  node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
  return node


def _unique_name(base, used):
  name = base
  suffix = 1
  while name in used:
    name = "%s_%d" % (base, suffix)
    suffix += 1
  used.add(name)
  return name


def _prune(graph_def, keep):
  """Only the nodes `keep` (node names) depend on."""
  return tf.compat.v1.graph_util.extract_sub_graph(graph_def, list(keep))


def _import(graph_def):
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.import_graph_def(graph_def, name="")
  return graph


# ----------------------------------------------------------------------------
# Constant folding.


def _foldable(op, known):
  """Whether `op`'s single output is a function of constants only."""
  if op.type == "Const":
    return True
  if (op.type in ("Placeholder", "PlaceholderWithDefault") or
      op.op_def.is_stateful or op.control_inputs or len(op.outputs) != 1 or
      not op.inputs):
    return False
  if op.outputs[0].dtype in (tf.resource, tf.variant, tf.string):
    return False
  return all(known.get(t.op.name, False) for t in op.inputs)


def fold_constants(graph_def, output_names):
  """Replaces every node computed from constants alone by a constant.

  Args:
    graph_def: a frozen tf.compat.v1.GraphDef (no variables).
    output_names: node names to keep (the graph is pruned to them).

  Returns:
    (GraphDef, number of nodes replaced).
  """
  graph = _import(graph_def)
  known = {}
  # get_operations() is in the order ops were created, a topological order.
  for op in graph.get_operations():
    known[op.name] = _foldable(op, known)
  frontier = []
  for op in graph.get_operations():
    if not known[op.name] or op.type == "Const":
      continue
    used_by_others = any(not known[c.name] for t in op.outputs
                         for c in t.consumers())
    if used_by_others or op.name in output_names:
      frontier.append(op)
  if not frontier:
    return _prune(graph_def, output_names), 0
  with tf.compat.v1.Session(graph=graph) as sess:
    values = sess.run([op.outputs[0] for op in frontier])
  replaced = {op.name: value for op, value in zip(frontier, values)}
  folded = tf.compat.v1.GraphDef()
  folded.versions.CopyFrom(graph_def.versions)
  folded.library.CopyFrom(graph_def.library)
  for node in graph_def.node:
    if node.name in replaced:
      folded.node.add().CopyFrom(_const_node(node.name, replaced[node.name]))
    else:
      folded.node.add().CopyFrom(node)
  return _prune(folded, output_names), len(replaced)


# ----------------------------------------------------------------------------
# Batch norm folding.


def _per_channel(value, channels, rank):
  """A constant's value as a [channels] vector if it broadcasts per channel
  over a tensor of rank `rank` without changing its shape (a scalar,
  [channels] or [1, ..., 1, channels]); else None."""
  value = np.asarray(value)
  if value.ndim > rank:
    return None
  if value.size == 1:
    return np.full([channels], value.reshape([]), dtype=np.float64)
  if value.shape[-1:] != (channels,) or any(d != 1 for d in value.shape[:-1]):
    return None
  return value.reshape([channels]).astype(np.float64)


def _scale_and_shift(node, nodes, channels_of):
  """The per-channel (scale, shift, input ref) of a foldable node, or None.

  The node computes `input * scale + shift` with constant scale and shift
  (either may be None, meaning 1 and 0).
  """
  def const(ref):
    producer = nodes.get(_node_name(ref))
    if (producer is None or producer.op != "Const" or
        _output_index(ref) != 0):
      return None
    return _const_value(producer)

  data_refs = [r for r in node.input if not r.startswith("^")]
  if node.op in _FUSED_BATCH_NORMS:
    # is_training defaults to True when the attribute is absent.
    if len(data_refs) < 5 or _attr_b(node, "is_training", True):
      return None
    if not _nhwc(node):
      return None
    gamma, beta, mean, variance = [const(r) for r in data_refs[1:5]]
    if any(v is None for v in (gamma, beta, mean, variance)):
      return None
    epsilon = node.attr["epsilon"].f if "epsilon" in node.attr else 1e-4
    scale = gamma.astype(np.float64) / np.sqrt(
        variance.astype(np.float64) + epsilon)
    shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return scale, shift, data_refs[0]
  if len(data_refs) != 2:
    return None
  found = channels_of(data_refs)
  if found is None:
    return None
  channels, rank = found
  if node.op == "Mul":
    for const_pos in (1, 0):
      value = const(data_refs[const_pos])
      if value is not None:
        scale = _per_channel(value, channels, rank)
        if scale is not None:
          return scale, None, data_refs[1 - const_pos]
    return None
  if node.op in _SHIFT_OPS:
    if node.op == "BiasAdd" and not _nhwc(node):
      return None
    positions = (1,) if node.op in ("BiasAdd", "Sub") else (1, 0)
    for const_pos in positions:
      value = const(data_refs[const_pos])
      if value is not None:
        shift = _per_channel(value, channels, rank)
        if shift is not None:
          return None, (-shift if node.op == "Sub" else shift), data_refs[
              1 - const_pos]
  return None


def _kernel_channels(linear, kernel):
  """Output channels of a linear op with constant `kernel`, or None."""
  if linear.op == "MatMul":
    if _attr_b(linear, "transpose_a") or kernel.ndim != 2:
      return None
    return kernel.shape[0] if _attr_b(linear, "transpose_b") else (
        kernel.shape[1])
  if not _nhwc(linear) or kernel.ndim != 4:
    return None
  if linear.op == "DepthwiseConv2dNative":
    return kernel.shape[2] * kernel.shape[3]
  return kernel.shape[3]


def _scale_kernel(linear, kernel, scale):
  kernel = kernel.astype(np.float64)
  if linear.op == "MatMul" and _attr_b(linear, "transpose_b"):
    return kernel * scale[:, None]
  if linear.op == "DepthwiseConv2dNative":
    return kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
  return kernel * scale


def _fold_one(graph_def, protected):
  """Folds one scale/shift node into the linear op before it.

  Returns:
    True if something was folded (graph_def changed in place).
  """
  nodes = {n.name: n for n in graph_def.node}
  consumers = _consumers(graph_def)
  used = set(nodes)

  def sole_consumer(name, consumer):
    return all(c is consumer for c, _, _ in consumers[name])

  def linear_chain(ref):
    """(linear node, bias node or None, kernel, bias) feeding `ref`."""
    if _output_index(ref) != 0:
      return None
    node = nodes.get(_node_name(ref))
    bias_node, bias = None, None
    if node is not None and node.op == "BiasAdd":
      bias_ref = node.input[1]
      bias_const = nodes.get(_node_name(bias_ref))
      if (bias_const is None or bias_const.op != "Const" or
          not _nhwc(node) or
          _output_index(node.input[0]) != 0 or node.name in protected):
        return None
      bias_node, bias = node, _const_value(bias_const)
      node = nodes.get(_node_name(node.input[0]))
    if node is None or node.op not in _LINEAR_OPS or node.name in protected:
      return None
    if _attr_type(node, "T") != tf.float32.as_datatype_enum:
      return None
    kernel_node = nodes.get(_node_name(node.input[1]))
    if kernel_node is None or kernel_node.op != "Const":
      return None
    kernel = _const_value(kernel_node)
    if _kernel_channels(node, kernel) is None:
      return None
    if bias is not None and bias.shape != (_kernel_channels(node, kernel),):
      return None
    return node, bias_node, kernel, bias

  def channels_of(data_refs):
    """(output channels, output rank) of the linear op among data_refs."""
    for ref in data_refs:
      chain = linear_chain(ref)
      if chain is not None:
        rank = 2 if chain[0].op == "MatMul" else 4
        return _kernel_channels(chain[0], chain[2]), rank
    return None

  for node in graph_def.node:
    if node.op not in _FUSED_BATCH_NORMS + ("Mul",) + _SHIFT_OPS:
      continue
    found = _scale_and_shift(node, nodes, channels_of)
    if found is None:
      continue
    scale, shift, data_ref = found
    chain = linear_chain(data_ref)
    if chain is None:
      continue
    linear, bias_node, kernel, bias = chain
    # Other outputs of a batch norm (batch statistics) must be unused.
    if any(index not in (0, None) for _, _, index in consumers[node.name]):
      continue
    # Scaling the kernel changes every reader of the linear op's output.
    if bias_node is not None:
      if not (sole_consumer(bias_node.name, node) and
              sole_consumer(linear.name, bias_node)):
        continue
    elif not sole_consumer(linear.name, node):
      continue
    # An existing conv -> BiasAdd is already in its final form.
    if node.op == "BiasAdd" and bias_node is None:
      continue
    channels = _kernel_channels(linear, kernel)
    if scale is not None and scale.shape != (channels,):
      continue
    new_bias = (np.zeros([channels], np.float64) if bias is None else
                bias.astype(np.float64))
    if scale is not None:
      kernel_node = _const_node(
          _unique_name(linear.name + "/folded_kernel", used),
          _scale_kernel(linear, kernel, scale).astype(np.float32))
      graph_def.node.add().CopyFrom(kernel_node)
      linear.input[1] = kernel_node.name
      new_bias = new_bias * scale
    if shift is not None:
      new_bias = new_bias + shift
    bias_const = _const_node(_unique_name(node.name + "/folded_bias", used),
                             new_bias.astype(np.float32))
    graph_def.node.add().CopyFrom(bias_const)
    control = [r for r in node.input if r.startswith("^")]
    name = node.name
    node.Clear()
    node.name = name
    node.op = "BiasAdd"
    node.input.extend([linear.name, bias_const.name] + control)
    node.attr["T"].type = tf.float32.as_datatype_enum
    node.attr["data_format"].s = b"NHWC"
    return True
  return False


def fold_batch_norms(graph_def, output_names):
  """Folds batch norms and constant per-channel scales/shifts into kernels.

  A `FusedBatchNorm*` in inference mode, or a Mul / Add / AddV2 / Sub /
  BiasAdd by a per-channel constant, whose input is a Conv2D,
  DepthwiseConv2dNative or MatMul (optionally followed by a BiasAdd) with a
  constant kernel read by nothing else, is replaced by a BiasAdd on that op,
  whose kernel is multiplied by the scale. For batch norm
  `scale = gamma / sqrt(moving_variance + epsilon)` and
  `shift = beta - moving_mean * scale`, computed in float64.

  Args:
    graph_def: a frozen, constant-folded GraphDef.
    output_names: node names whose outputs must not change meaning (they are
      never used as the linear op of a fold).

  Returns:
    (GraphDef pruned to output_names, number of nodes folded).
  """
  folded = tf.compat.v1.GraphDef()
  folded.CopyFrom(graph_def)
  protected = set(output_names)
  count = 0
  while _fold_one(folded, protected):
    count += 1
    # A bypassed BiasAdd would still count as a reader of its linear op.
    folded = _prune(folded, output_names)
  return _prune(folded, output_names), count


# ----------------------------------------------------------------------------
# Checks.


def training_leftovers(graph_def, input_names=(INPUT_NAME,)):
  """What a training graph left in `graph_def` that inference must not hold.

  Args:
    graph_def: tf.compat.v1.GraphDef.
    input_names: the placeholders that are the model's inputs.

  Returns:
    A list of (node name, op type, reason) in graph order; empty if clean.
    Reasons: variables, assignments and checkpoint ops (state), initializer
    nodes, pruning masks, batch norm in training mode, random ops, other
    placeholders (e.g. a dropout rate or an is_training switch).
  """
  problems = []
  for node in graph_def.node:
    parts = node.name.split("/")
    if any(p in ("mask", "masks") or p.startswith("mask_") or
           p.endswith("_mask") for p in parts):
      reason = "pruning mask (strip masks into the kernels before export)"
    elif node.op in _VARIABLE_OPS:
      reason = "variable (not frozen to a constant)"
    elif node.op in _STATE_CHANGING_OPS or node.op.startswith(
        ("Apply", "ResourceApply", "Assign")):
      reason = "assignment or checkpoint op (changes state)"
    elif "Initializer" in parts or node.name.endswith("/initial_value") or (
        node.op == "NoOp" and parts[-1].startswith("init")):
      reason = "variable initializer"
    elif node.op in _FUSED_BATCH_NORMS and (
        "is_training" not in node.attr or node.attr["is_training"].b):
      reason = "batch norm in training mode (uses batch statistics)"
    elif node.op in _RANDOM_OPS:
      reason = "random op (dropout or an initializer in training mode)"
    elif (node.op in ("Placeholder", "PlaceholderWithDefault") and
          node.name not in input_names):
      reason = "extra placeholder (only %s should be fed)" % ", ".join(
          input_names)
    else:
      continue
    problems.append((node.name, node.op, reason))
  return problems


def describe_problems(problems, per_reason=3):
  """'reason: name (Op), name (Op) and N more; ...' for (name, op, reason).

  Grouped by reason, so one initializer's many nodes do not hide a
  variable or an unsupported op.
  """
  groups = collections.OrderedDict()
  for name, op, reason in problems:
    groups.setdefault(reason, []).append("%s (%s)" % (name, op))
  parts = []
  for reason, nodes in groups.items():
    shown = ", ".join(nodes[:per_reason])
    if len(nodes) > per_reason:
      shown += " and %d more" % (len(nodes) - per_reason)
    parts.append("%s: %s" % (reason, shown))
  return "; ".join(parts)


def check_frozen(graph_def, source="the frozen graph",
                 output_names=OUTPUT_NAMES):
  """Raises ExportError unless `graph_def` is a clean inference graph.

  Args:
    graph_def: tf.compat.v1.GraphDef.
    source: what to call it in messages.
    output_names: node names that must be present.

  Raises:
    ExportError: the input or an output is missing, or training leftovers
      (see `training_leftovers`) are present; the message names each node.
  """
  names = set(n.name for n in graph_def.node)
  missing = [n for n in (INPUT_NAME,) + tuple(output_names) if n not in names]
  if missing:
    raise errors.ExportError(
        "%s lacks node(s) %s (expected input %r and outputs %s; an output "
        "that does not depend on the input loses the input)" %
        (source, ", ".join(missing), INPUT_NAME, ", ".join(output_names)))
  problems = training_leftovers(graph_def)
  if problems:
    raise errors.ExportError("%s holds training-only nodes: %s" %
                             (source, describe_problems(problems)))


# ----------------------------------------------------------------------------
# Freezing.


def freeze_session(sess, inference, fold_batch_norm=True):
  """Freezes the inference graph of `sess` into a lean constants-only graph.

  Args:
    sess: a session with the variables of `inference` restored.
    inference: InferenceGraph built in `sess.graph`.
    fold_batch_norm: fold batch norms and constant scales/shifts into the
      kernels (see `fold_batch_norms`).

  Returns:
    FrozenModel.

  Raises:
    ExportError: the result holds training-only nodes.
  """
  graph = sess.graph
  outputs = list(OUTPUT_NAMES)
  graph_def = tf.compat.v1.graph_util.convert_variables_to_constants(
      sess, graph.as_graph_def(), outputs)
  graph_def, _ = fold_constants(graph_def, outputs)
  protected = [INPUT_NAME] + outputs
  graph_def = tf.compat.v1.graph_util.remove_training_nodes(
      graph_def, protected_nodes=protected)
  folded = 0
  if fold_batch_norm:
    graph_def, folded = fold_batch_norms(graph_def, outputs)
    graph_def = tf.compat.v1.graph_util.remove_training_nodes(
        graph_def, protected_nodes=protected)
  graph_def = _prune(graph_def, outputs)
  for node in graph_def.node:
    node.device = ""
  check_frozen(graph_def)
  image_shape = tuple(inference.images.shape.as_list()[1:])
  return FrozenModel(
      graph_def=graph_def, input_name=INPUT_NAME + ":0",
      output_names=collections.OrderedDict(
          (name, name + ":0") for name in OUTPUT_NAMES),
      image_shape=image_shape,
      num_classes=int(inference.logits.shape[-1]), folded=folded)


def freeze_checkpoint(prefix, network_fn, image_shape, num_classes,
                      scope=None, custom_getter=None, graph_hook=None,
                      fold_batch_norm=True):
  """Builds, restores and freezes the inference graph of a checkpoint.

  Args:
    prefix: checkpoint prefix.
    network_fn, image_shape, num_classes, scope, custom_getter, graph_hook:
      see `build_inference_graph`.
    fold_batch_norm: see `freeze_session`.

  Returns:
    FrozenModel.
  """
  with restored_inference_graph(prefix, network_fn, image_shape, num_classes,
                                scope=scope, custom_getter=custom_getter,
                                graph_hook=graph_hook) as (sess, inference):
    return freeze_session(sess, inference, fold_batch_norm=fold_batch_norm)


@contextlib.contextmanager
def frozen_session(frozen):
  """A session on `frozen` imported into a new graph.

  Yields:
    (sess, {"images": tensor, "logits": tensor, ...}).
  """
  graph = _import(frozen.graph_def)
  tensors = {INPUT_NAME: graph.get_tensor_by_name(frozen.input_name)}
  for key, name in frozen.output_names.items():
    tensors[key] = graph.get_tensor_by_name(name)
  graph.finalize()
  with tf.compat.v1.Session(graph=graph) as sess:
    yield sess, tensors


def refuse_existing(path, overwrite):
  """Raises ExportError if `path` exists and `overwrite` is False."""
  if not overwrite and os.path.lexists(path):
    raise errors.ExportError(
        "export target %s already exists; pass --overwrite (overwrite=True) "
        "to replace it" % path)


def write_frozen_graph(graph_def, path, overwrite=False):
  """Writes a binary GraphDef to `path` atomically.

  Args:
    graph_def: tf.compat.v1.GraphDef.
    path: output file, e.g. `<dir>/frozen_graph.pb`.
    overwrite: replace an existing file.

  Returns:
    The number of bytes written.

  Raises:
    ExportError: `path` exists and not `overwrite`, or it cannot be written.
  """
  refuse_existing(path, overwrite)
  data = graph_def.SerializeToString()
  fileio.write_bytes(path, data)
  return len(data)
