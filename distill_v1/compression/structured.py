"""Structured pruning: remove whole filters and units, rebuild a smaller net.

Magnitude pruning leaves zeros in dense tensors: files shrink only once
compressed and nothing runs faster. Structured pruning (Li et al. 2017,
"Pruning Filters for Efficient ConvNets") removes whole output channels --
conv filters, dense units, MobileNet pointwise channels -- and rebuilds a
physically narrower network of the same family through its `layer_widths`
option, so parameters, FLOPs, checkpoint size and latency all drop.

The networks of the model zoo are chains, which is what this module relies
on: in creation order, each conv/dense kernel produces channels that the next
conv/dense kernel consumes (through ReLU, pooling, flatten, batch norm and
depthwise convolutions, which keep channels apart). For every producer but
the logits layer:

  * the score of output channel c is the L1 norm of its filter,
    sum(|kernel[..., c]|), taken over the input channels still kept
    (greedy, layer by layer); with batch norm after it, the filter is
    scaled as inference folds it, |gamma_c| / sqrt(moving_variance_c + eps);
  * the round((1 - fraction) * channels) best-scored channels (at least 1)
    are kept, in their original order;
  * the kernel's output axis and every per-channel variable of the layer
    (bias, gamma, beta, moving_mean, moving_variance) are sliced; so are a
    following depthwise convolution and its batch norm (MobileNet), and the
    input axis of the consumer -- expanded over positions when the consumer
    is a dense layer after `flatten` (row = position * channels + c).

A channel whose filter, bias and batch-norm output are exactly zero
contributes nothing downstream, so removing it leaves the logits unchanged;
that is what the tests check. Otherwise the pruned network needs
fine-tuning (`scripts/prune.py --structured_fraction`).

Usage:

  plan = structured.plan_structured_pruning(prefix, "cnn_student", {}, 0.5)
  result = structured.apply_structured_pruning(plan, "/tmp/cnn_half")
  net = nets_factory.get_network_fn("cnn_student", **result.model_options)
"""

import collections
import math
import numbers
import os

import numpy as np

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.compression import pruning
from distill_v1.models import layers
from distill_v1.models import nets_factory

# layers.batch_norm's default, also what mobilenet_v1 uses.
BATCH_NORM_EPSILON = 1e-3

ChannelGroup = collections.namedtuple("ChannelGroup", [
    "name",  # the layer_widths key, e.g. "conv1" or "conv2d_3_pointwise".
    "kernel",  # the producing kernel's variable name.
    "channels",  # int, output channels before pruning.
    "keep",  # int64 [kept] indices of the kept channels, ascending.
    "scores",  # float64 [channels], the L1 scores.
])

StructuredPlan = collections.namedtuple("StructuredPlan", [
    "checkpoint",  # the source checkpoint prefix.
    "model",  # model-zoo name (also the variable scope).
    "model_options",  # the source network's options.
    "new_model_options",  # options of the pruned network (layer_widths).
    "num_classes",  # int.
    "image_shape",  # (H, W, C).
    "fraction",  # float, the fraction of channels removed per layer.
    "groups",  # list of ChannelGroup, in network order.
    "slices",  # OrderedDict variable name -> ((axis, indices), ...).
    "params",  # int, trainable parameters of the source network.
])

StructuredResult = collections.namedtuple("StructuredResult", [
    "checkpoint",  # prefix of the written checkpoint.
    "model",
    "model_options",  # options to rebuild the pruned network.
    "params_before",  # trainable parameters.
    "params_after",
    "channels",  # OrderedDict layer name -> (before, after).
])


def _network_variables(model, model_options, image_shape, num_classes):
  """Builds the network in a scratch graph.

  Returns:
    (kernels, variables, trainable names): kernel names in creation order,
    an OrderedDict name -> shape of every variable under the model's scope,
    and the set of trainable variable names.
  """
  network_fn = nets_factory.get_network_fn(model, **model_options)
  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(tf.float32, [1] + list(image_shape))
    network_fn(images, num_classes, is_training=False, scope=model)
    prefix = model + "/"
    variables = collections.OrderedDict(
        (v.op.name, v.shape.as_list())
        for v in tf.compat.v1.global_variables()
        if v.op.name.startswith(prefix))
    trainable = set(v.op.name for v in tf.compat.v1.trainable_variables())
    kernels = [v.op.name for v in layers.get_kernels(model)]
  return kernels, variables, trainable


def _resolve_shapes(prefix, image_shape, num_classes):
  """image_shape and num_classes from the arguments or model_spec.json."""
  if image_shape is None or num_classes is None:
    try:
      spec = checkpoints.read_model_spec(prefix)
    except errors.CheckpointError as e:
      raise errors.ConfigError(
          "structured pruning of %s needs image_shape and num_classes: pass "
          "them or keep model_spec.json beside the checkpoint (%s)" %
          (prefix, e)) from None
    if image_shape is None:
      image_shape = spec["image_shape"]
    if num_classes is None:
      num_classes = spec["num_classes"]
  return tuple(int(d) for d in image_shape), int(num_classes)


class _Reader(object):
  """Reads checkpoint tensors; a kernel with a pruning mask comes masked."""

  def __init__(self, prefix):
    self.prefix = prefix
    self.shapes = pruning.checkpoint_shapes(prefix)
    self.masks = pruning.checkpoint_masks(prefix)
    self._reader = tf.train.load_checkpoint(prefix)

  def get(self, name):
    if name not in self.shapes:
      raise errors.CheckpointError(
          "checkpoint %s has no variable %s (does it hold this model?)" %
          (self.prefix, name))
    value = self._reader.get_tensor(name)
    if name in self.masks:
      value = value * self._reader.get_tensor(self.masks[name]).astype(
          value.dtype)
    return value


def _layer_scope(name):
  return name.rsplit("/", 1)[0]


def _per_channel_variables(layer_scope, variables, exclude, channels):
  """The layer's variables other than `exclude`, each [channels]."""
  names = [n for n in variables
           if n.startswith(layer_scope + "/") and n != exclude]
  for name in names:
    if variables[name] != [channels]:
      raise errors.ConfigError(
          "variable %s has shape %s; structured pruning expects [%d] (one "
          "value per channel) beside kernel %s/..." %
          (name, variables[name], channels, layer_scope))
  return names


def _check_fraction(fraction):
  if (isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or
      not 0.0 <= fraction < 1.0):
    raise errors.ConfigError(
        "structured pruning fraction=%r must be in [0, 1)" % (fraction,))
  return float(fraction)


def kept_channels(channels, fraction):
  """round((1 - fraction) * channels), at least 1."""
  return max(1, int(math.floor(channels * (1.0 - fraction) + 0.5)))


def plan_structured_pruning(checkpoint_prefix, model, model_options, fraction,
                            image_shape=None, num_classes=None):
  """Chooses the channels to keep in every prunable layer by L1 norm.

  Args:
    checkpoint_prefix: a checkpoint prefix or a training directory holding
      the network (masks of magnitude pruning, if any, are applied).
    model: model-zoo name; its variables live under this scope.
    model_options: dict of the network's options (e.g. width_multiplier).
    fraction: float in [0, 1), the fraction of channels removed from each
      prunable layer (conv filters, dense units, pointwise channels; never
      the logits).
    image_shape: (H, W, C); default: model_spec.json beside the checkpoint.
    num_classes: int; default: model_spec.json.

  Returns:
    StructuredPlan.

  Raises:
    ConfigError: bad fraction or options, or a network that is not a chain.
    CheckpointError: the checkpoint does not hold the network.
  """
  fraction = _check_fraction(fraction)
  prefix = checkpoints.resolve_checkpoint(checkpoint_prefix)
  model_options = dict(model_options or {})
  image_shape, num_classes = _resolve_shapes(prefix, image_shape, num_classes)
  kernels, variables, trainable = _network_variables(
      model, model_options, image_shape, num_classes)
  reader = _Reader(prefix)
  for name, shape in variables.items():
    if reader.shapes.get(name, shape) != shape:
      raise errors.CheckpointError(
          "checkpoint %s holds %s with shape %s, model %s with options %s "
          "expects %s" % (prefix, name, reader.shapes[name], model,
                          model_options, shape))

  slices = collections.OrderedDict()
  groups = []
  pending = None  # (kept indices, channel count) flowing to the next layer.
  for position, kernel in enumerate(kernels):
    shape = variables[kernel]
    base = kernel.rsplit("/", 1)[-1]
    scope = _layer_scope(kernel)
    if base == "depthwise_kernel":
      # Channels pass through a depthwise convolution one to one.
      if shape[3] != 1:
        raise errors.ConfigError(
            "%s has depth multiplier %d; structured pruning handles 1" %
            (kernel, shape[3]))
      if pending is not None:
        keep, channels = pending
        slices[kernel] = ((2, keep),)
        for name in _per_channel_variables(scope, variables, kernel,
                                           channels):
          slices[name] = ((0, keep),)
      continue
    if base != "kernel":
      raise errors.ConfigError(
          "%s: structured pruning handles conv, dense and depthwise kernels "
          "of a chain, not %s" % (kernel, base))
    in_axis = len(shape) - 2
    kernel_slices = []
    if pending is not None:
      keep_in, channels_in = pending
      size_in = shape[in_axis]
      if size_in == channels_in:
        rows = keep_in
      elif len(shape) == 2 and size_in % channels_in == 0:
        # A dense layer after flatten: row = position * channels + channel.
        positions = size_in // channels_in
        rows = (np.arange(positions)[:, None] * channels_in +
                keep_in[None, :]).reshape(-1)
      else:
        raise errors.ConfigError(
            "%s has %d inputs, which do not follow from the %d channels of "
            "the layer before; the network is not a chain" %
            (kernel, size_in, channels_in))
      kernel_slices.append((in_axis, rows))
    if position == len(kernels) - 1:  # The logits keep every class.
      if kernel_slices:
        slices[kernel] = tuple(kernel_slices)
      pending = None
      continue
    value = reader.get(kernel).astype(np.float64)
    for axis, index in kernel_slices:
      value = np.take(value, index, axis=axis)
    channels = shape[-1]
    scores = np.abs(value).reshape(-1, channels).sum(axis=0)
    gamma_name = scope + "/batch_norm/gamma"
    variance_name = scope + "/batch_norm/moving_variance"
    if gamma_name in variables and variance_name in variables:
      scores = scores * (np.abs(reader.get(gamma_name)) / np.sqrt(
          reader.get(variance_name).astype(np.float64) + BATCH_NORM_EPSILON))
    count = kept_channels(channels, fraction)
    # Stable: equal scores keep the lower channel index.
    order = np.argsort(-scores, kind="stable")
    keep = np.sort(order[:count]).astype(np.int64)
    kernel_slices.append((len(shape) - 1, keep))
    slices[kernel] = tuple(kernel_slices)
    for name in _per_channel_variables(scope, variables, kernel, channels):
      slices[name] = ((0, keep),)
    groups.append(ChannelGroup(
        name=scope[len(model) + 1:], kernel=kernel, channels=channels,
        keep=keep, scores=scores))
    pending = (keep, channels)

  new_options = dict(model_options)
  widths = dict(model_options.get("layer_widths") or {})
  widths.update((g.name, int(len(g.keep))) for g in groups)
  new_options["layer_widths"] = widths
  params = sum(int(np.prod(s)) for n, s in variables.items() if n in trainable)
  return StructuredPlan(
      checkpoint=prefix, model=model, model_options=model_options,
      new_model_options=new_options, num_classes=num_classes,
      image_shape=image_shape, fraction=fraction, groups=groups,
      slices=slices, params=params)


def apply_structured_pruning(plan, out_dir, model_spec=None):
  """Writes the physically smaller network's checkpoint and model spec.

  Every variable of the pruned network (`plan.new_model_options`) is the
  source variable sliced as planned (masks of magnitude pruning applied);
  `global_step` is copied; optimizer slots and pruning masks are not.
  `model_spec.json` is the source's (or `model_spec`) with the new options
  and a "structured_pruning" record.

  Args:
    plan: StructuredPlan from `plan_structured_pruning`.
    out_dir: folder of the new checkpoint (replaced if it exists).
    model_spec: dict for model_spec.json; default: the source's, or one
      built from the plan (class names "0", "1", ...).

  Returns:
    StructuredResult.

  Raises:
    ConfigError: the sliced shapes do not fit the rebuilt network (a bug or
      a network that is not a chain).
  """
  kernels, variables, trainable = _network_variables(
      plan.model, plan.new_model_options, plan.image_shape, plan.num_classes)
  del kernels
  reader = _Reader(plan.checkpoint)
  tensors = collections.OrderedDict()
  for name, shape in variables.items():
    value = reader.get(name)
    for axis, index in plan.slices.get(name, ()):
      value = np.take(value, index, axis=axis)
    if list(value.shape) != shape:
      raise errors.ConfigError(
          "pruned %s has shape %s, the rebuilt %s expects %s" %
          (name, list(value.shape), plan.model, shape))
    tensors[name] = value
  step = 0
  if "global_step" in reader.shapes:
    step = int(reader.get("global_step"))
    tensors["global_step"] = reader.get("global_step")
  channels = collections.OrderedDict(
      (g.name, (g.channels, int(len(g.keep)))) for g in plan.groups)
  if model_spec is None:
    try:
      model_spec = dict(checkpoints.read_model_spec(plan.checkpoint))
    except errors.CheckpointError:
      model_spec = {
          "model": plan.model, "num_classes": plan.num_classes,
          "image_shape": list(plan.image_shape),
          "class_names": [str(i) for i in range(plan.num_classes)],
          "dataset": "unknown"}
  spec = dict(model_spec)
  spec["model"] = plan.model
  spec["model_options"] = plan.new_model_options
  spec["structured_pruning"] = {
      "source": os.path.abspath(plan.checkpoint),
      "fraction": plan.fraction,
      "channels": {k: list(v) for k, v in channels.items()},
  }
  prefix = pruning.write_checkpoint(out_dir, tensors, step, spec)
  params_after = sum(int(np.prod(s)) for n, s in variables.items()
                     if n in trainable)
  return StructuredResult(
      checkpoint=prefix, model=plan.model,
      model_options=plan.new_model_options, params_before=plan.params,
      params_after=params_after, channels=channels)
