"""Quantization-aware training: 8-bit fake quantization inside the graph.

The network is trained (fine-tuned) with the rounding TFLite's int8 kernels
will apply, so the weights learn to live with it; the trained ranges then
become the int8 model's quantization parameters. Everything reaches the
network through hooks the caller passes down, so `models/` and `training/`
never import this module:

  * weights, through a variable custom getter: every kernel (base name in
    `layers.KERNEL_NAMES`) under `hparams.scope` is replaced by
    `tf.quantization.fake_quant_with_min_max_vars(kernel, -b, b,
    num_bits=8, narrow_range=True)` with `b = max |kernel|`, the current
    kernel's own range made symmetric: TFLite's int8 convolution and
    fully-connected kernels require weights with zero point 0 (an asymmetric
    range converts, then fails in the interpreter). The values lie on the
    grid `k * b / 127`, k in [-127, 127]. The range carries no gradient.
  * activations, through `layers.output_transform`: a layer's input is
    fake-quantized unless the tensor already carries a range (it comes from
    a fake-quant op through ops that keep the scale: max pooling, reshapes,
    identities), and a layer with an activation has its activated output
    fake-quantized. Each such point gets two non-trainable scalar variables
    `<layer scope>/<input|output>_quant/{min,max}`.
  * the network's input: pixels in [0, 1] are fake-quantized to that fixed
    range (`fake_quant_with_min_max_args`, 1/255 steps), the contract of
    every export's `images`;
  * the network's output: the logits get a range of their own,
    `<scope>/logits_quant/{min,max}`, so the int8 model's output carries
    trained quantization parameters.

Activation ranges follow TF 1's contrib.quantize (`MovingAvgQuantize`): the
batch range is widened to include 0 (`min(batch_min, 0)`, `max(batch_max,
0)`); after each training step (`ModelOutputs.after_step_fns`, so the update
is ordered after the forward pass that read the range) the variables move by
the exponential moving average

  range <- range - (1 - ema_decay) * (range - batch_range)

(what `tf.compat.v1.assign_moving_average(..., zero_debias=False)` does),
except at the first update, where the empty initial range [0, 0] is set to
the batch range (a fine-tuned float model needs no warm-up with a wrong
range). The training forward pass quantizes with the variables (with the
batch range before the first update); evaluation and inference graphs use
the variables as they are and never change them.

Batch norm: the kernel before a batch norm is fake-quantized as it is
stored; no fake quant sits between the convolution and the batch norm. At
export the frozen graph folds the batch norm into the kernel (the
fake-quantized kernel is a constant there, so it folds like any other), and
the converter quantizes the folded kernel per output channel. Activations
after batch norm are quantized after the activation when the network passes
it to `layers.batch_norm(activation=...)`, else at the next layer's input.

Export (`inference_hooks`): the same getter, transform and logits range on
the inference graph restore the trained ranges from the checkpoint. Freezing
folds each weight fake quant (a function of constants) into a constant
already on its 8-bit grid; the activation fake-quant ops stay, with constant
ranges. For `model_int8.tflite`, `configure_converter` sets
`inference_type=tf.int8` and `quantized_input_stats`, so the converter takes
every activation's scale and zero point from its fake-quant op (without
them, the representative data set of export's int8 path would recalibrate
the ranges and clash with the trained ones); it quantizes the frozen kernels
per output channel, a grid at least as fine as the per-tensor one of
training. The int8 input is the pixel range [0, 1] (scale 1/255, zero point
-128), the output the logits' trained range. A tensor no layer quantizes
(e.g. MobileNet's last ReLU6, read by a global mean that is not a layer;
`layers.batch_norm(activation=...)` would quantize it) gets its range from
that representative set instead. The float TFLite variants keep the
fake-quant ops as quantize/dequantize pairs and compute what the session
computes, up to a quantization step where float round-off meets a rounding
boundary (`FLOAT_EXPORT_LOGIT_TOLERANCE`).

Usage:

  hparams = quantize.QuantizeHParams(scope="cnn_student")
  model_fn = quantize.wrap_model_fn(
      loop.classifier_model_fn(network_fn, 10, "cnn_student"), hparams)
  loop.train(model_fn, splits, config, spec)

  hooks = quantize.inference_hooks(hparams)
  export_lib.export_checkpoint(
      train_dir, out_dir, network_fn=hooks.wrap_network_fn(network_fn),
      scope="cnn_student", custom_getter=hooks.custom_getter,
      graph_hook=hooks.graph_hook,
      configure_converter=hooks.configure_converter)
"""

import collections
import functools
import numbers

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.compression import per_graph
from distill_v1.models import layers

NUM_BITS = 8
# Pixels of every network input (DESIGN.md, Interfaces).
INPUT_RANGE = (0.0, 1.0)
INPUT_NAME = "images"
LOGITS_RANGE_SCOPE = "logits_quant"
RANGE_SUFFIX = "_quant"
INT8_VARIANT = "int8"
# How far (as a fraction of the largest |logit|) a float export of a
# fake-quantized graph may stray from the session: float round-off that
# lands on a rounding boundary moves a fake-quant output by one step, and
# the logits by a step or two of their range (measured: 1 step, about 0.7%
# of the largest logit, on 0.13% of Fashion-MNIST's test images for
# cnn_student). Verifying float exports of a QAT model needs this instead
# of the 1e-4 that float graphs meet.
FLOAT_EXPORT_LOGIT_TOLERANCE = 0.02

# Ops after which a tensor keeps the scale (and the range) of their input,
# as TFLite's same-scale ops do: a layer input reached from a fake-quant op
# through these is already quantized.
SCALE_PRESERVING_OPS = frozenset([
    "Identity", "Snapshot", "StopGradient", "MaxPool", "MaxPoolV2",
    "AvgPool", "Reshape", "Squeeze", "ExpandDims"])
_FAKE_QUANT_PREFIX = "FakeQuantWithMinMax"

QuantizeHParams = collections.namedtuple("QuantizeHParams", [
    "scope",  # str: only kernels and layers under "<scope>/" ("" = all).
    "ema_decay",  # float in [0, 1): decay of the activation ranges' EMA.
])
# 0.99 (contrib used 0.999) lets the ranges settle within the few hundred
# steps of a fine-tuning epoch.
QuantizeHParams.__new__.__defaults__ = ("", 0.99)

QuantizedWeight = collections.namedtuple("QuantizedWeight", [
    "name",  # the kernel variable's name, e.g. "cnn_student/conv1/kernel".
    "kernel",  # what the inner getter returned (variable or masked tensor).
    "quantized",  # the fake-quantized kernel the layer uses.
    "bound",  # float scalar b: the range is [-b, b].
])

ActivationRange = collections.namedtuple("ActivationRange", [
    "name",  # e.g. "cnn_student/conv1/output_quant".
    "min",  # non-trainable scalar variable.
    "max",  # non-trainable scalar variable.
    "batch_min",  # min(reduce_min(batch), 0), no gradient; training only.
    "batch_max",  # max(reduce_max(batch), 0), no gradient; training only.
    "quantized",  # the fake-quantized tensor.
])

QuantizeState = collections.namedtuple("QuantizeState", [
    "hparams",  # QuantizeHParams.
    "weights",  # OrderedDict kernel name -> QuantizedWeight.
    # OrderedDict name -> ActivationRange of the training graph (the ranges
    # the after-step update moves); inference builds add none.
    "ranges",
    "quantized",  # dict tensor ref -> its fake-quantized tensor (reuse).
])

InferenceHooks = collections.namedtuple("InferenceHooks", [
    "custom_getter",  # for export_lib / frozen_graph `custom_getter`.
    "graph_hook",  # (logits, end_points) -> fake-quantized logits.
    "wrap_network_fn",  # network_fn -> network_fn under the transform.
    "configure_converter",  # (converter, variant) for export_lib.
    "state",  # QuantizeState filled while the graph is built.
])


# --------------------------------------------------------------------------
# Hyper-parameters.


def validate_hparams(hparams, source="quantization hparams"):
  """Raises ConfigError unless `hparams` is usable; returns it."""
  if not isinstance(hparams, QuantizeHParams):
    raise errors.ConfigError("%s: expected QuantizeHParams, got %r" %
                             (source, hparams))
  if not isinstance(hparams.scope, str):
    raise errors.ConfigError("%s: scope=%r is not a string" %
                             (source, hparams.scope))
  decay = hparams.ema_decay
  if (isinstance(decay, bool) or not isinstance(decay, numbers.Real) or
      not 0.0 <= decay < 1.0):
    raise errors.ConfigError("%s: ema_decay=%r is not in [0, 1)" %
                             (source, decay))
  return hparams


def hparams_dict(hparams):
  """QuantizeHParams as a JSON-friendly dict (e.g. for model_spec.json)."""
  d = collections.OrderedDict(hparams._asdict())
  d["num_bits"] = NUM_BITS
  d["weights"] = "symmetric per tensor, narrow range, from the kernel"
  d["activations"] = "moving average of the batch range"
  return d


def new_state(hparams):
  """An empty QuantizeState."""
  return QuantizeState(hparams=validate_hparams(hparams),
                       weights=collections.OrderedDict(),
                       ranges=collections.OrderedDict(), quantized={})


def _in_scope(name, scope):
  scope = scope.rstrip("/")
  return not scope or name == scope or name.startswith(scope + "/")


# --------------------------------------------------------------------------
# Weights.


def weight_bound(kernel):
  """`max |kernel|` (at least 1e-8, so an all-zero kernel has a range).

  Args:
    kernel: float tensor or variable.

  Returns:
    Scalar of the kernel's dtype, without gradient.
  """
  kernel = tf.convert_to_tensor(kernel)
  bound = tf.reduce_max(tf.abs(kernel))
  return tf.stop_gradient(tf.maximum(bound, tf.constant(1e-8, bound.dtype)))


def fake_quant_weights(kernel, name=None):
  """The kernel on the symmetric 8-bit grid of its own range.

  Args:
    kernel: float tensor or variable.
    name: name of the fake-quant op.

  Returns:
    (fake-quantized kernel, bound b): values `k * b / 127` with k an integer
    in [-127, 127]; the gradient passes straight through (the whole kernel
    is inside its range).
  """
  bound = weight_bound(kernel)
  return tf.quantization.fake_quant_with_min_max_vars(
      kernel, -bound, bound, num_bits=NUM_BITS, narrow_range=True,
      name=name), bound


def make_weight_getter(hparams, state=None):
  """A variable custom getter returning fake-quantized kernels.

  Kernels (base name in layers.KERNEL_NAMES) under `hparams.scope` are
  replaced by `fake_quant_weights(kernel)`; other variables pass through.
  Set on a scope inside a pruning mask getter's scope, it quantizes the
  masked kernel.

  Args:
    hparams: QuantizeHParams.
    state: QuantizeState to record the kernels in (default: a new one).

  Returns:
    (custom_getter, QuantizeState).
  """
  state = state if state is not None else new_state(hparams)

  def quantizing_getter(getter, name, *args, **kwargs):
    kernel = getter(name, *args, **kwargs)
    base = name.rsplit("/", 1)[-1]
    if (base not in layers.KERNEL_NAMES or
        not _in_scope(name, hparams.scope) or
        not kernel.dtype.base_dtype.is_floating):
      return kernel
    quantized, bound = fake_quant_weights(kernel,
                                          name=base + RANGE_SUFFIX)
    state.weights[name] = QuantizedWeight(name=name, kernel=kernel,
                                          quantized=quantized, bound=bound)
    return quantized

  return quantizing_getter, state


# --------------------------------------------------------------------------
# Activations.


def has_range(tensor):
  """Whether `tensor` is a fake-quant output, possibly through ops that keep
  the scale (SCALE_PRESERVING_OPS)."""
  op = tensor.op
  seen = 0
  while op.type in SCALE_PRESERVING_OPS and op.inputs and seen < 100:
    op = op.inputs[0].op
    seen += 1
  return op.type.startswith(_FAKE_QUANT_PREFIX)


def _range_variable(name, dtype):
  return tf.compat.v1.get_variable(
      name, shape=[], dtype=dtype,
      initializer=tf.compat.v1.zeros_initializer(), trainable=False,
      collections=[tf.compat.v1.GraphKeys.GLOBAL_VARIABLES])


def fake_quant_activation(tensor, state, is_training, scope_name):
  """Fake-quantizes `tensor` with a moving-average range (see module doc).

  Args:
    tensor: float tensor.
    state: QuantizeState; a training build records the range in
      `state.ranges`.
    is_training: Python bool. True: quantize with the variables (the batch
      range while they are still empty) and record batch statistics for
      `range_update_op`. False: quantize with the variables only.
    scope_name: variable scope of the range, e.g. "cnn_student/conv1/
      output_quant" (reopened with the enclosing reuse setting).

  Returns:
    The fake-quantized tensor (same shape and dtype).
  """
  dtype = tensor.dtype.base_dtype
  with tf.compat.v1.variable_scope(scope_name) as sc:
    low = _range_variable("min", dtype)
    high = _range_variable("max", dtype)
    if not is_training:
      return tf.quantization.fake_quant_with_min_max_vars(
          tensor, low, high, num_bits=NUM_BITS, narrow_range=False,
          name="fake_quant")
    zero = tf.constant(0.0, dtype)
    batch_min = tf.stop_gradient(tf.minimum(tf.reduce_min(tensor), zero),
                                 name="batch_min")
    batch_max = tf.stop_gradient(tf.maximum(tf.reduce_max(tensor), zero),
                                 name="batch_max")
    empty = tf.less_equal(high, low)
    quantized = tf.quantization.fake_quant_with_min_max_vars(
        tensor, tf.where(empty, batch_min, low),
        tf.where(empty, batch_max, high), num_bits=NUM_BITS,
        narrow_range=False, name="fake_quant")
    state.ranges[sc.name] = ActivationRange(
        name=sc.name, min=low, max=high, batch_min=batch_min,
        batch_max=batch_max, quantized=quantized)
    return quantized


def make_activation_transform(hparams, state, is_training):
  """The `layers.output_transform` function of quantization.

  Layers under `hparams.scope` get their inputs (unless they already carry a
  range, see `has_range`) and activated outputs fake-quantized, with ranges
  `<layer scope>/<input|output>_quant/{min,max}`. A tensor read by several
  layers is quantized once.

  Args:
    hparams: QuantizeHParams.
    state: QuantizeState.
    is_training: Python bool (see `fake_quant_activation`).

  Returns:
    fn(tensor, name) -> tensor.
  """

  def transform(tensor, name):
    scope = tf.compat.v1.get_variable_scope().name
    if not _in_scope(scope, hparams.scope) or not tensor.dtype.is_floating:
      return tensor
    key = tensor.ref()
    if key in state.quantized:
      return state.quantized[key]
    if name == "input" and has_range(tensor):
      return tensor
    quantized = fake_quant_activation(tensor, state, is_training,
                                      name + RANGE_SUFFIX)
    state.quantized[key] = quantized
    return quantized

  return transform


def quantize_images(images):
  """Pixels fake-quantized to INPUT_RANGE in 255 steps (scale 1/255)."""
  low, high = INPUT_RANGE
  return tf.quantization.fake_quant_with_min_max_args(
      images, min=low, max=high, num_bits=NUM_BITS, narrow_range=False,
      name="quantized_images")


def quantize_logits(logits, hparams, state, is_training):
  """The network's output with a range of its own, `<scope>/logits_quant`.

  Logits that already carry a range (a network ending in an activated
  layer) are returned as they are.
  """
  if has_range(logits):
    return logits
  scope = hparams.scope.rstrip("/")
  name = scope + "/" + LOGITS_RANGE_SCOPE if scope else LOGITS_RANGE_SCOPE
  return fake_quant_activation(logits, state, is_training, name)


def range_update_op(state, hparams=None):
  """Moves every recorded range towards its batch range (see module doc).

  Build it after the training step (`after_step_fns`): the batch statistics
  are those of the step's forward pass.

  Args:
    state: QuantizeState of the training graph.
    hparams: QuantizeHParams; default state.hparams.

  Returns:
    An op.
  """
  hparams = hparams or state.hparams
  if not state.ranges:
    return tf.no_op(name="range_update")
  with tf.name_scope("range_update"):
    rate = 1.0 - float(hparams.ema_decay)
    values = []
    for r in state.ranges.values():
      empty = tf.less_equal(r.max, r.min)
      new_min = tf.where(empty, r.batch_min, r.min - rate * (r.min -
                                                              r.batch_min))
      new_max = tf.where(empty, r.batch_max, r.max - rate * (r.max -
                                                              r.batch_max))
      values.append((r, new_min, new_max))
    # Every new value reads the old ones before any is written.
    with tf.control_dependencies([v for _, lo, hi in values
                                  for v in (lo, hi)]):
      assigns = []
      for r, new_min, new_max in values:
        assigns.append(r.min.assign(new_min))
        assigns.append(r.max.assign(new_max))
    return tf.group(*assigns, name="range_update")


def range_scalars(state):
  """`quant_range/<name>/min|max` per range, for TensorBoard."""
  scalars = collections.OrderedDict()
  scope = state.hparams.scope.rstrip("/")
  for name, r in state.ranges.items():
    short = name[len(scope) + 1:] if scope and name.startswith(
        scope + "/") else name
    short = short.replace(RANGE_SUFFIX, "")
    scalars["quant_range/%s/min" % short] = tf.cast(
        tf.convert_to_tensor(r.min), tf.float32)
    scalars["quant_range/%s/max" % short] = tf.cast(
        tf.convert_to_tensor(r.max), tf.float32)
  return scalars


# --------------------------------------------------------------------------
# Training and inference.


def _check_quantized(state, hparams):
  if not state.weights:
    kernels = [v.op.name for v in layers.get_kernels()]
    raise errors.ConfigError(
        "quantization scope %r matched no kernel; the graph's kernels are: "
        "%s" % (hparams.scope, ", ".join(kernels) or "(none)"))


def wrap_model_fn(model_fn, hparams, range_summaries=True):
  """Adds fake quantization to a training-loop model_fn.

  The returned model_fn builds `model_fn` with fake-quantized images, the
  weight getter on an enclosing variable scope and the activation transform
  active, then fake-quantizes `ModelOutputs.logits` (the loss is the one
  `model_fn` computed). The training call and the evaluation towers (built
  with reuse) share the range variables; on the training call the range
  update joins `after_step_fns` and the ranges join `scalars`. A pruning
  wrapper goes outside this one (`pruning.wrap_model_fn(
  quantize.wrap_model_fn(...))`) so the masked kernels are quantized.

  Args:
    model_fn: fn(images, labels, is_training[, extras=...]) ->
      loop.ModelOutputs.
    hparams: QuantizeHParams; `scope` should name the trained network so a
      teacher built beside it stays in float.
    range_summaries: add `range_scalars` to the training scalars.

  Returns:
    A model_fn of the same signature; `.quantize_state()` returns the
    QuantizeState of the default graph (None before building).

  Raises:
    ConfigError: bad hparams; (when called) no kernel under the scope.
  """
  validate_hparams(hparams)
  built = per_graph.PerGraph(lambda: make_weight_getter(hparams))

  def quantized_model_fn(images, labels, is_training, **kwargs):
    getter, state = built.get()
    transform = make_activation_transform(hparams, state, is_training)
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(),
                                     custom_getter=getter,
                                     auxiliary_name_scope=False):
      with layers.output_transform(transform):
        outputs = model_fn(quantize_images(images), labels, is_training,
                           **kwargs)
      logits = quantize_logits(outputs.logits, hparams, state, is_training)
    _check_quantized(state, hparams)
    outputs = outputs._replace(logits=logits)
    if not is_training:
      return outputs
    scalars = collections.OrderedDict(outputs.scalars or {})
    if range_summaries:
      scalars.update(range_scalars(state))
    after = tuple(outputs.after_step_fns or ()) + (
        lambda: range_update_op(state, hparams),)
    return outputs._replace(scalars=scalars, after_step_fns=after)

  quantized_model_fn.quantize_state = built.state
  return quantized_model_fn


def quantized_input_stats(input_range=INPUT_RANGE):
  """(mean, std) of the converter's `quantized_input_stats` for a range.

  The converter reads int8 input q as `(q - mean) / std`; for the 8-bit
  range [low, high] that is scale (high - low) / 255 and the zero point of
  `fake_quant` (nudged to an integer), shifted to int8.

  Returns:
    (mean, std) floats: (-128.0, 255.0) for [0, 1].
  """
  low, high = float(input_range[0]), float(input_range[1])
  scale = (high - low) / 255.0
  zero_point = min(max(round(-low / scale), 0), 255) - 128
  return float(zero_point), 1.0 / scale


def configure_converter(converter, variant, input_name=INPUT_NAME):
  """Makes the int8 conversion of a fake-quantized graph use its ranges.

  For `variant` "int8": `inference_type = tf.int8` with
  `quantized_input_stats` for the pixel range, so every activation's scale
  and zero point comes from its fake-quant op (the representative data set
  that export's int8 path also sets then only fills ranges no fake quant
  gives; it does not recalibrate the trained ones). Float variants are left
  alone: their fake-quant ops become quantize/dequantize pairs.

  Args:
    converter: a tf.compat.v1.lite.TFLiteConverter.
    variant: the TFLite variant being converted.
    input_name: the input array's name.
  """
  if variant != INT8_VARIANT:
    return
  converter.inference_type = tf.int8
  converter.quantized_input_stats = {input_name: quantized_input_stats()}


def inference_hooks(hparams):
  """Hooks building the fake-quantized inference graph of a QAT checkpoint.

  Pass them to `export_lib.export_checkpoint` (or
  `frozen_graph.build_inference_graph`): the network runs under the weight
  getter and the activation transform (in inference mode: the ranges are
  read, never changed) and the logits get their trained range; every range
  variable is restored from the checkpoint (a missing one is a
  CheckpointError naming it).

  Args:
    hparams: QuantizeHParams of the training run.

  Returns:
    InferenceHooks(custom_getter, graph_hook, wrap_network_fn,
    configure_converter, state).
  """
  getter, state = make_weight_getter(hparams)

  def wrap_network_fn(network_fn):

    @functools.wraps(network_fn)
    def quantized_network_fn(images, num_classes, is_training=False,
                             scope=None):
      if is_training:
        raise errors.ConfigError(
            "inference hooks build inference graphs only (is_training=True "
            "given); train with quantize.wrap_model_fn")
      transform = make_activation_transform(hparams, state, False)
      with layers.output_transform(transform):
        if scope is None:
          return network_fn(quantize_images(images), num_classes,
                            is_training=False)
        return network_fn(quantize_images(images), num_classes,
                          is_training=False, scope=scope)

    for attr in ("model_name", "options"):
      if hasattr(network_fn, attr):
        setattr(quantized_network_fn, attr, getattr(network_fn, attr))
    return quantized_network_fn

  def graph_hook(logits, end_points):
    del end_points  # Only the logits get a range here.
    _check_quantized(state, hparams)
    return quantize_logits(logits, hparams, state, False)

  return InferenceHooks(custom_getter=getter, graph_hook=graph_hook,
                        wrap_network_fn=wrap_network_fn,
                        configure_converter=configure_converter, state=state)
