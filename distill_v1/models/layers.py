"""Variable-scope layers over `tf.compat.v1.get_variable` and `tf.nn`.

Every layer opens `tf.compat.v1.variable_scope(scope, default_name=...)` and
creates its variables with `tf.compat.v1.get_variable` only, so a
`custom_getter` set on an enclosing scope sees (and may replace) every
variable: pruning masks and fake quantization reach kernels that way without
this module knowing about them. Layers use whatever `get_variable` returns as
a plain tensor, so a getter may return a transformed tensor instead of the
variable.

Variable base names: `kernel`, `bias`, `depthwise_kernel`, `pointwise_kernel`,
`gamma`, `beta`, `moving_mean`, `moving_variance`.

Randomness is stateless and keyed by names, so the same graph-level seed
(`tf.compat.v1.set_random_seed`) gives the same initial weights and dropout
masks in any new graph and session:
  * kernels: Glorot-uniform (Keras' default), drawn with
    `tf.random.stateless_uniform` seeded with
    `[graph_seed, crc32(full variable name) & 0x7fffffff]`;
  * dropout: `tf.nn.experimental.stateless_dropout` seeded with
    `[graph_seed ^ crc32(variable scope name), global_step]`, a new mask for
    every training step, the same mask when a step is repeated.

Activations reach a caller's transform the same way, through a context in
the style of TF-Slim's arg_scope (`output_transform`): while it is active,
every dense / convolution layer passes its input, and every layer with an
activation its activated output, through `fn(tensor, name)`. Fake
quantization of activations enters the networks that way, without this
module knowing about it.

Bad shapes and arguments raise `errors.ConfigError` naming the tensor, the
scope, the value and what was expected.
"""

import contextlib
import math
import zlib

import numpy as np

from distill_v1 import errors
from distill_v1.compat import tf

KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")

_PADDINGS = ("SAME", "VALID")
_INT63_MASK = 0x7fffffffffffffff

# The active `output_transform` functions, innermost last.
_TRANSFORMS = []


@contextlib.contextmanager
def output_transform(fn):
  """Passes the layers' inputs and activated outputs through `fn`.

  While the context is active (the innermost one wins; `fn=None` turns the
  transform off inside):
    * `dense`, `conv2d`, `depthwise_conv2d` and `separable_conv2d` call
      `fn(inputs, "input")` on their input before using it;
    * every layer given an `activation` (those four and `batch_norm`) calls
      `fn(outputs, "output")` on the activated output and returns the result.
  Layers without an activation (a convolution followed by batch norm, the
  logits) return their output untouched: it is the next layer's input, or
  the caller's to transform.

  `fn` runs inside the layer's variable scope (so variables it creates are
  named `<layer scope>/...`) and must return a tensor of the same shape and
  dtype; it may return its argument unchanged (e.g. when it has already
  transformed the tensor an input comes from).

  Args:
    fn: callable `(tensor, name) -> tensor` with name "input" or "output",
      or None.

  Yields:
    None.
  """
  _TRANSFORMS.append(fn)
  try:
    yield
  finally:
    _TRANSFORMS.pop()


def _transform(tensor, name):
  """`tensor` through the innermost `output_transform` function, if any."""
  fn = _TRANSFORMS[-1] if _TRANSFORMS else None
  if fn is None:
    return tensor
  return fn(tensor, name)


def graph_seed():
  """The default graph's seed (`tf.compat.v1.set_random_seed`), 0 if unset."""
  return tf.compat.v1.get_default_graph().seed or 0


def name_seed(name):
  """A non-negative 31-bit integer derived from `name` (CRC-32)."""
  return zlib.crc32(name.encode("utf-8")) & 0x7fffffff


def glorot_uniform_limit(shape):
  """Bound `sqrt(6 / (fan_in + fan_out))` of the Glorot-uniform initializer.

  Fans are computed as Keras does: for a rank-2 shape [fan_in, fan_out]; for
  conv kernels [kh, kw, in, out] (and depthwise kernels
  [kh, kw, in, multiplier]) fan_in = kh * kw * in, fan_out = kh * kw * out.

  Args:
    shape: list of ints, the kernel shape.

  Returns:
    A float, the half-width of the uniform distribution.
  """
  shape = [int(d) for d in shape]
  if len(shape) < 1:
    fan_in = fan_out = 1
  elif len(shape) == 1:
    fan_in = fan_out = shape[0]
  elif len(shape) == 2:
    fan_in, fan_out = shape
  else:
    receptive_field = int(np.prod(shape[:-2]))
    fan_in = shape[-2] * receptive_field
    fan_out = shape[-1] * receptive_field
  return math.sqrt(6.0 / max(1.0, float(fan_in + fan_out)))


def _glorot_uniform_initializer(full_name):
  """A stateless Glorot-uniform initializer keyed by the variable's name."""

  def initializer(shape, dtype=tf.float32, partition_info=None):
    del partition_info  # Variables here are never partitioned.
    limit = glorot_uniform_limit(shape)
    seed = tf.constant([graph_seed() & _INT63_MASK, name_seed(full_name)],
                       dtype=tf.int64)
    return tf.random.stateless_uniform(
        shape, seed=seed, minval=-limit, maxval=limit,
        dtype=tf.as_dtype(dtype).base_dtype)

  return initializer


def _get_variable(name, shape, dtype, initializer="zeros", trainable=True,
                  collections_=None):
  """Creates (or reuses) a variable in the current variable scope.

  Args:
    name: base name, e.g. "kernel".
    shape: list of ints.
    dtype: the variable's dtype.
    initializer: "glorot_uniform", "zeros" or "ones".
    trainable: whether the variable joins TRAINABLE_VARIABLES.
    collections_: collections to add the variable to (None: GLOBAL_VARIABLES).

  Returns:
    Whatever `tf.compat.v1.get_variable` returns (a variable, or a tensor when
    a custom getter transforms it).
  """
  if initializer == "glorot_uniform":
    scope_name = tf.compat.v1.get_variable_scope().name
    full_name = scope_name + "/" + name if scope_name else name
    init = _glorot_uniform_initializer(full_name)
  elif initializer == "zeros":
    init = tf.compat.v1.zeros_initializer()
  elif initializer == "ones":
    init = tf.compat.v1.ones_initializer()
  else:  # pragma: no cover - internal misuse
    raise ValueError("unknown initializer %r" % (initializer,))
  return tf.compat.v1.get_variable(
      name, shape=shape, dtype=dtype, initializer=init, trainable=trainable,
      collections=collections_)


def _check_rank(tensor, expected_ranks, scope_name):
  """Raises ConfigError unless `tensor` has a static rank in expected_ranks."""
  if isinstance(expected_ranks, int):
    expected_ranks = (expected_ranks,)
  ndims = tensor.shape.ndims
  if ndims is None:
    raise errors.ConfigError(
        "For tensor %s in scope %s, the rank is unknown; expected %s" %
        (tensor.name, scope_name, " or ".join(str(r) for r in expected_ranks)))
  if ndims not in expected_ranks:
    raise errors.ConfigError(
        "For tensor %s in scope %s, rank %d is not the expected %s" %
        (tensor.name, scope_name, ndims,
         " or ".join(str(r) for r in expected_ranks)))


def _check_float(tensor, scope_name):
  if not tensor.dtype.is_floating:
    raise errors.ConfigError(
        "For tensor %s in scope %s, dtype %s is not a floating-point type" %
        (tensor.name, scope_name, tensor.dtype.name))


def _channels(tensor, scope_name):
  """The static size of the last dimension; ConfigError if unknown."""
  channels = tensor.shape[-1]
  if channels is None:
    raise errors.ConfigError(
        "For tensor %s in scope %s, the last dimension of shape %s must be "
        "known when the graph is built" % (tensor.name, scope_name,
                                           tensor.shape))
  return int(channels)


def _pair(value, arg_name, scope_name):
  """Normalizes an int or a pair of ints to a tuple of two positive ints."""
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    pair = (int(value), int(value))
  elif (isinstance(value, (list, tuple)) and len(value) == 2 and
        all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            for v in value)):
    pair = (int(value[0]), int(value[1]))
  else:
    raise errors.ConfigError(
        "In scope %s, %s=%r is not an int or a pair of ints" %
        (scope_name, arg_name, value))
  if min(pair) < 1:
    raise errors.ConfigError("In scope %s, %s=%r must be positive" %
                             (scope_name, arg_name, value))
  return pair


def _padding(padding, scope_name):
  upper = str(padding).upper()
  if upper not in _PADDINGS:
    raise errors.ConfigError("In scope %s, padding=%r is not one of %s" %
                             (scope_name, padding, ", ".join(_PADDINGS)))
  return upper


def _positive_int(value, arg_name, scope_name):
  if (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or
      value < 1):
    raise errors.ConfigError("In scope %s, %s=%r is not a positive integer" %
                             (scope_name, arg_name, value))
  return int(value)


def _check_is_training(is_training, scope_name):
  if not isinstance(is_training, (bool, np.bool_)):
    raise errors.ConfigError(
        "In scope %s, is_training=%r must be a Python bool (the graph for "
        "training and the one for inference are built separately)" %
        (scope_name, is_training))
  return bool(is_training)


def check_num_classes(num_classes, scope_name):
  """Raises ConfigError unless num_classes is a positive integer."""
  if (not isinstance(num_classes, (int, np.integer)) or
      isinstance(num_classes, bool) or num_classes < 1):
    raise errors.ConfigError(
        "In scope %s, num_classes=%r is not a positive integer" %
        (scope_name, num_classes))


def _finish(outputs, bias, activation):
  if bias is not None:
    outputs = tf.nn.bias_add(outputs, bias)
  if activation is not None:
    outputs = _transform(activation(outputs), "output")
  return outputs


def dense(inputs, units, activation=None, use_bias=True, scope=None):
  """Fully connected layer: `activation(inputs @ kernel + bias)`.

  Args:
    inputs: float tensor [batch, in_features]; in_features must be static.
    units: int, number of output features.
    activation: callable applied to the output (e.g. tf.nn.relu) or None.
    use_bias: whether to add a `bias` variable [units] (zeros initially).
    scope: variable scope name (default "dense", uniquified).

  Returns:
    Tensor [batch, units].

  Raises:
    ConfigError: the rank of `inputs` is not 2, its last dimension is unknown
      or `units` is not a positive integer.
  """
  with tf.compat.v1.variable_scope(scope, default_name="dense",
                                   values=[inputs]) as sc:
    _check_rank(inputs, 2, sc.name)
    _check_float(inputs, sc.name)
    units = _positive_int(units, "units", sc.name)
    in_features = _channels(inputs, sc.name)
    dtype = inputs.dtype.base_dtype
    inputs = _transform(inputs, "input")
    kernel = _get_variable("kernel", [in_features, units], dtype,
                           "glorot_uniform")
    bias = _get_variable("bias", [units], dtype) if use_bias else None
    outputs = tf.linalg.matmul(inputs, kernel)
    return _finish(outputs, bias, activation)


def conv2d(inputs, filters, kernel_size, stride=1, padding="SAME",
           activation=None, use_bias=True, scope=None):
  """2-D convolution, NHWC.

  Args:
    inputs: float tensor [batch, height, width, in_channels]; in_channels
      must be static.
    filters: int, number of output channels.
    kernel_size: int or [kh, kw].
    stride: int or [sh, sw].
    padding: "SAME" or "VALID" (case-insensitive).
    activation: callable or None.
    use_bias: whether to add a `bias` variable [filters].
    scope: variable scope name (default "conv2d", uniquified).

  Returns:
    Tensor [batch, out_height, out_width, filters]; out_height is
    ceil(height / sh) for SAME and ceil((height - kh + 1) / sh) for VALID.

  Raises:
    ConfigError: bad rank, unknown channels or invalid arguments.
  """
  with tf.compat.v1.variable_scope(scope, default_name="conv2d",
                                   values=[inputs]) as sc:
    _check_rank(inputs, 4, sc.name)
    _check_float(inputs, sc.name)
    filters = _positive_int(filters, "filters", sc.name)
    kh, kw = _pair(kernel_size, "kernel_size", sc.name)
    sh, sw = _pair(stride, "stride", sc.name)
    padding = _padding(padding, sc.name)
    in_channels = _channels(inputs, sc.name)
    dtype = inputs.dtype.base_dtype
    inputs = _transform(inputs, "input")
    kernel = _get_variable("kernel", [kh, kw, in_channels, filters], dtype,
                           "glorot_uniform")
    bias = _get_variable("bias", [filters], dtype) if use_bias else None
    outputs = tf.nn.conv2d(inputs, kernel, strides=[1, sh, sw, 1],
                           padding=padding)
    return _finish(outputs, bias, activation)


def depthwise_conv2d(inputs, kernel_size, stride=1, depth_multiplier=1,
                     padding="SAME", activation=None, use_bias=True,
                     scope=None):
  """Depthwise 2-D convolution: each input channel filtered on its own.

  Args:
    inputs: float tensor [batch, height, width, in_channels].
    kernel_size: int or [kh, kw].
    stride: int or [sh, sw].
    depth_multiplier: int, output channels per input channel.
    padding: "SAME" or "VALID".
    activation: callable or None.
    use_bias: whether to add a `bias` [in_channels * depth_multiplier].
    scope: variable scope name (default "depthwise_conv2d", uniquified).

  Returns:
    Tensor [batch, out_height, out_width, in_channels * depth_multiplier];
    output channel c * depth_multiplier + m comes from input channel c.
  """
  with tf.compat.v1.variable_scope(scope, default_name="depthwise_conv2d",
                                   values=[inputs]) as sc:
    _check_rank(inputs, 4, sc.name)
    _check_float(inputs, sc.name)
    kh, kw = _pair(kernel_size, "kernel_size", sc.name)
    sh, sw = _pair(stride, "stride", sc.name)
    multiplier = _positive_int(depth_multiplier, "depth_multiplier", sc.name)
    padding = _padding(padding, sc.name)
    in_channels = _channels(inputs, sc.name)
    dtype = inputs.dtype.base_dtype
    inputs = _transform(inputs, "input")
    kernel = _get_variable("depthwise_kernel",
                           [kh, kw, in_channels, multiplier], dtype,
                           "glorot_uniform")
    bias = (_get_variable("bias", [in_channels * multiplier], dtype)
            if use_bias else None)
    outputs = tf.nn.depthwise_conv2d(inputs, kernel, strides=[1, sh, sw, 1],
                                     padding=padding)
    return _finish(outputs, bias, activation)


def separable_conv2d(inputs, filters, kernel_size, stride=1,
                     depth_multiplier=1, padding="SAME", activation=None,
                     use_bias=True, scope=None):
  """Depthwise convolution followed by a 1x1 (pointwise) convolution.

  Args:
    inputs: float tensor [batch, height, width, in_channels].
    filters: int, number of output channels of the pointwise step.
    kernel_size: int or [kh, kw] of the depthwise step.
    stride: int or [sh, sw] of the depthwise step.
    depth_multiplier: int, depthwise output channels per input channel.
    padding: "SAME" or "VALID".
    activation: callable or None, applied after the bias.
    use_bias: whether to add a `bias` [filters] after the pointwise step.
    scope: variable scope name (default "separable_conv2d", uniquified).

  Returns:
    Tensor [batch, out_height, out_width, filters].
  """
  with tf.compat.v1.variable_scope(scope, default_name="separable_conv2d",
                                   values=[inputs]) as sc:
    _check_rank(inputs, 4, sc.name)
    _check_float(inputs, sc.name)
    filters = _positive_int(filters, "filters", sc.name)
    kh, kw = _pair(kernel_size, "kernel_size", sc.name)
    sh, sw = _pair(stride, "stride", sc.name)
    multiplier = _positive_int(depth_multiplier, "depth_multiplier", sc.name)
    padding = _padding(padding, sc.name)
    in_channels = _channels(inputs, sc.name)
    dtype = inputs.dtype.base_dtype
    inputs = _transform(inputs, "input")
    depthwise_kernel = _get_variable("depthwise_kernel",
                                     [kh, kw, in_channels, multiplier], dtype,
                                     "glorot_uniform")
    pointwise_kernel = _get_variable("pointwise_kernel",
                                     [1, 1, in_channels * multiplier, filters],
                                     dtype, "glorot_uniform")
    bias = _get_variable("bias", [filters], dtype) if use_bias else None
    outputs = tf.nn.separable_conv2d(inputs, depthwise_kernel,
                                     pointwise_kernel,
                                     strides=[1, sh, sw, 1], padding=padding)
    return _finish(outputs, bias, activation)


def batch_norm(inputs, is_training, decay=0.99, epsilon=1e-3, center=True,
               scale=True, activation=None, scope=None):
  """Batch normalization over every axis but the last.

  In training mode the output is normalized with the batch mean and (biased)
  batch variance, and ops that move the averages,
  `moving <- decay * moving + (1 - decay) * batch_statistic`, are added to
  `tf.compat.v1.GraphKeys.UPDATE_OPS`; the caller runs them with the train op.
  The moving variance tracks the unbiased (Bessel-corrected, n / (n - 1))
  batch variance, as TF-Slim's and Keras' fused batch norm do. In inference
  mode the moving averages are used and nothing is updated.

  Variables: `gamma` (ones, if scale) and `beta` (zeros, if center),
  trainable; `moving_mean` (zeros) and `moving_variance` (ones), not
  trainable, in GLOBAL_VARIABLES and MOVING_AVERAGE_VARIABLES so checkpoints
  hold them.

  Args:
    inputs: float tensor of rank >= 2, [batch, ..., channels].
    is_training: Python bool.
    decay: float in [0, 1), the moving averages' decay per update.
    epsilon: small float added to the variance.
    center: whether to add `beta`.
    scale: whether to multiply by `gamma`.
    activation: callable applied to the normalized output (e.g.
      tf.nn.relu6) or None. Inside the layer, it lets an `output_transform`
      see the activated output (conv -> batch norm -> activation is the
      pattern converters fold into one kernel).
    scope: variable scope name (default "batch_norm", uniquified).

  Returns:
    Tensor with the shape of `inputs`.
  """
  with tf.compat.v1.variable_scope(scope, default_name="batch_norm",
                                   values=[inputs]) as sc:
    is_training = _check_is_training(is_training, sc.name)
    _check_float(inputs, sc.name)
    ndims = inputs.shape.ndims
    if ndims is None or ndims < 2:
      raise errors.ConfigError(
          "For tensor %s in scope %s, rank %s is not the expected >= 2" %
          (inputs.name, sc.name, ndims))
    if not 0.0 <= decay < 1.0:
      raise errors.ConfigError("In scope %s, decay=%r is not in [0, 1)" %
                               (sc.name, decay))
    channels = _channels(inputs, sc.name)
    dtype = inputs.dtype.base_dtype
    gamma = _get_variable("gamma", [channels], dtype, "ones") if scale else None
    beta = _get_variable("beta", [channels], dtype) if center else None
    stat_collections = [tf.compat.v1.GraphKeys.GLOBAL_VARIABLES,
                        tf.compat.v1.GraphKeys.MOVING_AVERAGE_VARIABLES]
    moving_mean = _get_variable("moving_mean", [channels], dtype, "zeros",
                                trainable=False, collections_=stat_collections)
    moving_variance = _get_variable("moving_variance", [channels], dtype,
                                    "ones", trainable=False,
                                    collections_=stat_collections)

    # The fused kernel is much faster on CPU for NHWC float32; it already
    # returns the Bessel-corrected variance in training mode.
    fused = ndims == 4 and dtype == tf.float32
    if fused:
      fused_scale = gamma if gamma is not None else tf.ones([channels], dtype)
      fused_offset = beta if beta is not None else tf.zeros([channels], dtype)
      if is_training:
        outputs, batch_mean, batch_variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, fused_scale, fused_offset, epsilon=epsilon,
            is_training=True)
      else:
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, fused_scale, fused_offset, mean=moving_mean,
            variance=moving_variance, epsilon=epsilon, is_training=False)
    else:
      axes = list(range(ndims - 1))
      if is_training:
        batch_mean, biased_variance = tf.nn.moments(inputs, axes)
        outputs = tf.nn.batch_normalization(inputs, batch_mean,
                                            biased_variance, beta, gamma,
                                            epsilon)
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), dtype)
        batch_variance = biased_variance * count / tf.maximum(count - 1.0,
                                                               1.0)
      else:
        outputs = tf.nn.batch_normalization(inputs, moving_mean,
                                            moving_variance, beta, gamma,
                                            epsilon)

    if is_training:
      with tf.name_scope("moving_average_updates"):
        one_minus_decay = tf.constant(1.0 - decay, dtype=dtype)
        update_mean = tf.compat.v1.assign_sub(
            moving_mean, (moving_mean - batch_mean) * one_minus_decay)
        update_variance = tf.compat.v1.assign_sub(
            moving_variance,
            (moving_variance - batch_variance) * one_minus_decay)
      tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS,
                                     update_mean)
      tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS,
                                     update_variance)
    return _finish(outputs, None, activation)


def dropout(inputs, rate, is_training, scope=None):
  """Stateless dropout, reproducible per training step.

  Identity when `is_training` is False or `rate` is 0. Otherwise each element
  is zeroed with probability `rate` and kept elements are scaled by
  1 / (1 - rate). The mask's seed is
  `[graph_seed ^ crc32(variable scope name), global_step]` (global step 0 if
  the graph has none): the same step gives the same mask, a new step a new
  one, and two dropout layers get different masks.

  Args:
    inputs: float tensor of any shape.
    rate: float in [0, 1), the probability of dropping an element.
    is_training: Python bool.
    scope: variable scope name (default "dropout", uniquified).

  Returns:
    Tensor with the shape of `inputs`.
  """
  with tf.compat.v1.variable_scope(scope, default_name="dropout",
                                   values=[inputs]) as sc:
    is_training = _check_is_training(is_training, sc.name)
    try:
      rate = float(rate)
    except (TypeError, ValueError):
      rate = float("nan")
    if not 0.0 <= rate < 1.0:
      raise errors.ConfigError("In scope %s, dropout rate %r is not in [0, 1)"
                               % (sc.name, rate))
    if not is_training or rate == 0.0:
      return tf.identity(inputs)
    step = tf.compat.v1.train.get_global_step()
    if step is None:
      step = tf.constant(0, dtype=tf.int64)
    else:
      step = tf.cast(step, tf.int64)
    scope_seed = (graph_seed() ^ name_seed(sc.name)) & _INT63_MASK
    seed = tf.stack([tf.constant(scope_seed, dtype=tf.int64), step])
    return tf.nn.experimental.stateless_dropout(inputs, rate=rate, seed=seed)


def _pool(pool_fn, default_name, inputs, pool_size, stride, padding, scope):
  with tf.compat.v1.name_scope(scope, default_name, [inputs]) as name:
    scope_name = name.rstrip("/")
    _check_rank(inputs, 4, scope_name)
    ph, pw = _pair(pool_size, "pool_size", scope_name)
    sh, sw = _pair(pool_size if stride is None else stride, "stride",
                   scope_name)
    padding = _padding(padding, scope_name)
    return pool_fn(inputs, ksize=[1, ph, pw, 1], strides=[1, sh, sw, 1],
                   padding=padding)


def max_pool2d(inputs, pool_size=2, stride=None, padding="VALID", scope=None):
  """Max pooling, NHWC.

  Args:
    inputs: tensor [batch, height, width, channels].
    pool_size: int or [ph, pw].
    stride: int or [sh, sw]; None means pool_size (non-overlapping windows).
    padding: "VALID" (default, as TF-Slim and Keras) or "SAME".
    scope: name scope (default "max_pool2d").

  Returns:
    Tensor [batch, out_height, out_width, channels].
  """
  return _pool(tf.nn.max_pool2d, "max_pool2d", inputs, pool_size, stride,
               padding, scope)


def avg_pool2d(inputs, pool_size=2, stride=None, padding="VALID", scope=None):
  """Average pooling, NHWC; arguments as in `max_pool2d`.

  With SAME padding the average is over the valid (unpadded) elements.
  """
  return _pool(tf.nn.avg_pool2d, "avg_pool2d", inputs, pool_size, stride,
               padding, scope)


def flatten(inputs, scope=None):
  """Reshapes [batch, d1, ..., dk] to [batch, d1 * ... * dk].

  The batch dimension may be unknown (None); if a non-batch dimension is
  unknown the product is computed at run time.

  Args:
    inputs: tensor of rank >= 2.
    scope: name scope (default "flatten").

  Returns:
    Tensor [batch, features].
  """
  with tf.compat.v1.name_scope(scope, "flatten", [inputs]) as name:
    ndims = inputs.shape.ndims
    if ndims is None or ndims < 2:
      raise errors.ConfigError(
          "For tensor %s in scope %s, rank %s is not the expected >= 2" %
          (inputs.name, name.rstrip("/"), ndims))
    if ndims == 2:
      return tf.identity(inputs)
    inner = inputs.shape[1:].as_list()
    if all(d is not None for d in inner):
      return tf.reshape(inputs, [-1, int(np.prod(inner))])
    return tf.reshape(inputs, tf.stack([tf.shape(inputs)[0], -1]))


def get_kernels(scope=None):
  """The kernel variables of the default graph, in creation order.

  Args:
    scope: None for all, or a variable scope (name or VariableScope); only
      variables under it (name starting with "<scope>/") are returned.

  Returns:
    A list of variables whose base name is one of KERNEL_NAMES.
  """
  prefix = None
  if scope is not None:
    scope_name = scope.name if hasattr(scope, "name") else str(scope)
    prefix = scope_name.rstrip("/") + "/"
  kernels = []
  for variable in tf.compat.v1.global_variables():
    name = variable.name.split(":")[0]
    if prefix is not None and not name.startswith(prefix):
      continue
    if name.split("/")[-1] in KERNEL_NAMES:
      kernels.append(variable)
  return kernels

