"""How big a model is: parameters, FLOPs per example and checkpoint bytes.

Also the checks that a checkpoint fits a network before it is restored, so a
checkpoint of another architecture fails with the names and shapes of the
variables that differ instead of a long NotFoundError / InvalidArgumentError.

Usage:

  flops = model_stats.flops_per_example(nets_factory.get_network_fn(
      "cnn_student"), image_shape=(28, 28, 1), num_classes=10)
  size = model_stats.checkpoint_bytes("/tmp/train/model.ckpt-4690")
"""

import glob
import os

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import nets_factory


def count_params(variables):
  """Total number of scalars held by `variables`.

  Args:
    variables: an iterable of tf.Variable (or anything with a `shape`).

  Returns:
    int, the sum of the variables' element counts.

  Raises:
    ConfigError: a variable's shape is not fully defined.
  """
  total = 0
  for variable in variables:
    size = tf.TensorShape(variable.shape).num_elements()
    if size is None:
      raise errors.ConfigError(
          "variable %s has shape %s, expected a fully defined shape to count "
          "its parameters" % (variable.name, variable.shape))
    total += size
  return total


def scope_variables(scope=None, trainable_only=False, graph=None):
  """The global variables under variable scope `scope`, in creation order.

  Unlike `tf.compat.v1.global_variables(scope)`, which matches a regular
  expression at the start of the name, this matches whole scope names:
  `cnn_student` does not pick up `cnn_student_1/...`.

  Args:
    scope: variable scope name, or None for every variable of the graph.
    trainable_only: only the variables of the TRAINABLE_VARIABLES collection.
    graph: the graph; default: the default graph.

  Returns:
    A list of tf.Variable.
  """
  graph = graph or tf.compat.v1.get_default_graph()
  key = (tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES if trainable_only else
         tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)
  variables = graph.get_collection(key)
  if scope is None:
    return list(variables)
  prefix = scope.rstrip("/") + "/"
  return [v for v in variables if v.op.name.startswith(prefix)]


def trainable_params(scope=None, graph=None):
  """Number of trainable parameters under variable scope `scope`.

  This is the `params` figure of the evaluate JSON: batch-norm moving
  averages and optimizer slots are state, not parameters, and are left out
  (the reference counts in BENCHMARK.md, e.g. 20,490 for cnn_student, are
  trainable counts).

  Args:
    scope: variable scope name (e.g. the model name), or None for the whole
      graph.
    graph: the graph; default: the default graph.

  Returns:
    int.
  """
  return count_params(scope_variables(scope, trainable_only=True, graph=graph))


def _ancestor_graph_def(graph, tensors):
  """The GraphDef of the ops `tensors` depend on (data and control inputs)."""
  needed = set()
  stack = [t.op for t in tensors]
  while stack:
    op = stack.pop()
    if op.name in needed:
      continue
    needed.add(op.name)
    stack.extend(t.op for t in op.inputs)
    stack.extend(op.control_inputs)
  graph_def = graph.as_graph_def()
  pruned = tf.compat.v1.GraphDef()
  pruned.versions.CopyFrom(graph_def.versions)
  pruned.library.CopyFrom(graph_def.library)
  pruned.node.extend(n for n in graph_def.node if n.name in needed)
  return pruned


def flops_per_example(network_fn, image_shape, num_classes):
  """Floating-point operations of one forward pass on one example.

  The network is built in a new graph on a float32 placeholder
  [1, H, W, C] with `is_training=False` (TensorFlow's profiler counts nothing
  for a None batch). Only the ops the logits depend on are counted: variable
  initializers (random-number ops) and ops outside the logits' path are cut
  away before profiling, and nothing is run.

  What is counted is what `tf.compat.v1.profiler` registers for each op:
  - MatMul, Conv2D, DepthwiseConv2dNative: 2 x multiply-adds (one multiply
    and one add each), e.g. a dense layer 784 -> 10 has 2 * 784 * 10 = 15,680;
  - BiasAdd, Add, Mul, Sub, Rsqrt and other element-wise arithmetic: one per
    output element (the bias of that dense layer adds 10, total 15,690);
  - MaxPool / AvgPool: kernel area x output elements;
  - Mean / Sum: one per input element.
  Activations (Relu, Relu6), Reshape, ReadVariableOp and similar have no
  registered cost and count 0.

  Args:
    network_fn: `fn(images, num_classes, is_training) -> (logits, end_points)`.
    image_shape: (H, W, C) of one example.
    num_classes: number of classes of the logits.

  Returns:
    int, FLOPs for one example.

  Raises:
    ConfigError: `image_shape` is not three positive integers.
  """
  image_shape = nets_factory.check_image_shape(image_shape)
  with tf.Graph().as_default() as build_graph:
    images = tf.compat.v1.placeholder(
        tf.float32, [1] + list(image_shape), name="images")
    logits, _ = network_fn(images, num_classes, is_training=False)
  graph_def = _ancestor_graph_def(build_graph, [logits])
  with tf.Graph().as_default() as counted_graph:
    tf.compat.v1.import_graph_def(graph_def, name="")
  options = (tf.compat.v1.profiler.ProfileOptionBuilder(
      tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
             .with_empty_output().build())
  profile = tf.compat.v1.profiler.profile(counted_graph, options=options)
  return int(profile.total_float_ops)


def checkpoint_bytes(prefix):
  """Bytes on disk of a V2 checkpoint: `<prefix>.index` + `<prefix>.data-*`.

  The `.meta` graph file, if any, is not counted: it describes the graph,
  not the weights.

  Args:
    prefix: checkpoint prefix, e.g. `/tmp/train/model.ckpt-100`.

  Returns:
    int, total bytes.

  Raises:
    CheckpointError: the index or data files are missing.
  """
  index = prefix + ".index"
  if not os.path.isfile(index):
    raise errors.CheckpointError(
        "checkpoint %s not found: %s does not exist" % (prefix, index))
  data_files = glob.glob(glob.escape(prefix) + ".data-*")
  if not data_files:
    raise errors.CheckpointError(
        "checkpoint %s has no data files (%s.data-*)" % (prefix, prefix))
  return sum(os.path.getsize(p) for p in [index] + data_files)
