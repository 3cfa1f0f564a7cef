"""Gradual magnitude pruning (Zhu & Gupta 2017) with masks in the graph.

In the spirit of `tf.contrib.model_pruning`: every pruned kernel gets a
non-trainable `mask` variable (ones at first) and a scalar `threshold`
variable beside it, the forward pass uses `kernel * mask`, and an update op
run after the training step resets each mask to keep the largest-magnitude
`1 - s(t)` fraction of its kernel, where

  p    = clip((t - sparsity_function_begin_step) /
              (sparsity_function_end_step - sparsity_function_begin_step),
              0, 1)
  s(t) = target_sparsity + (initial_sparsity - target_sparsity) * (1 - p)**e

(e = sparsity_function_exponent, 3 for the cubic schedule). Masks change only
at global steps t inside [begin_step, end_step] (end_step -1: no end) and at
least `frequency` steps after the previous change (contrib's
`last_mask_update_step` rule: the first change comes at the first
t >= max(begin_step, frequency)).

Unlike contrib, nothing hides in graph collections matched by list index: the
masks enter the network through a variable custom getter the caller passes
down (`make_mask_getter`, `wrap_model_fn`), and the state comes back as
handles (`PruningState` of `PrunedKernel(name, kernel, mask, threshold)`), so
`models/` and `training/` never import this module.

Names: the mask and threshold of `<scope>/conv1/kernel` are
`<scope>/conv1/kernel_mask` and `<scope>/conv1/kernel_threshold`; the step of
the last update is `<name>/last_mask_update_step` (name "model_pruning" by
default). All of them are in GLOBAL_VARIABLES, so checkpoints hold them and a
resumed run continues with the same masks and cadence. `strip_masks` folds
the masks into the kernels and drops them, so the plain network restores the
result.

Behaviour kept from contrib: the update ranks the magnitudes of the stored
(unmasked) kernel values. A pruned weight receives no gradient through
`kernel * mask`, so its stored value stays where it was (or decays with
weight decay); it comes back only if, at a later update, its magnitude is
again among the largest `1 - s(t)` fraction. The number kept is exact:
`round(size * (1 - s(t)))` (at least 1) of each kernel, ties broken by
position (halves round up), and the threshold variable holds the smallest
kept magnitude.

Usage:

  hparams = pruning.gradual_pruning_hparams(
      target_sparsity=0.8, begin_step=0, end_step=2000, frequency=100,
      scope="cnn_student")
  model_fn = pruning.wrap_model_fn(model_fn, hparams)
  loop.train(model_fn, splits, config, spec)
  pruning.strip_masks(train_dir, train_dir + "/stripped", "cnn_student")
"""

import collections
import contextlib
import math
import numbers
import os
import re
import shutil
import tempfile

import numpy as np

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf
from distill_v1.compression import per_graph
from distill_v1.models import layers

MASK_SUFFIX = "_mask"
THRESHOLD_SUFFIX = "_threshold"
LAST_UPDATE_STEP_NAME = "last_mask_update_step"

PruningHParams = collections.namedtuple("PruningHParams", [
    "name",  # str: variable scope of last_mask_update_step, op name scope.
    "begin_step",  # int >= 0: first global step at which masks may change.
    "end_step",  # int: last global step at which masks change; -1 = never.
    "frequency",  # int >= 1: steps between two mask updates.
    "initial_sparsity",  # float in [0, 1): s(t) at the curve's begin.
    "target_sparsity",  # float in [0, 1): s(t) from the curve's end on.
    "sparsity_function_begin_step",  # int >= 0: t0 of the curve.
    "sparsity_function_end_step",  # int > t0: t1 of the curve.
    "sparsity_function_exponent",  # float: 3 = Zhu & Gupta's cubic, 1 linear.
    "scope",  # str: only kernels named "<scope>/..." are pruned; "" = all.
    "min_kernel_size",  # int >= 0: kernels with fewer elements are skipped.
    "do_not_prune",  # tuple of str: kernels whose name contains one are kept.
])
# tf.contrib.model_pruning's defaults (TF 1.15), plus our own fields.
PruningHParams.__new__.__defaults__ = ("model_pruning", 0, -1, 10, 0.0, 0.5,
                                       0, 100, 3.0, "", 0, ())

PrunedKernel = collections.namedtuple("PrunedKernel", [
    "name",  # the kernel variable's name, e.g. "cnn_student/conv1/kernel".
    "kernel",  # the kernel variable (what the inner getter returned).
    "mask",  # non-trainable variable of the kernel's shape, 0 or 1.
    "threshold",  # non-trainable scalar: the smallest kept |kernel| value.
])

PruningState = collections.namedtuple("PruningState", [
    "hparams",  # PruningHParams.
    "kernels",  # OrderedDict kernel name -> PrunedKernel, in creation order.
])

StripResult = collections.namedtuple("StripResult", [
    "checkpoint",  # prefix of the written checkpoint.
    "sparsity",  # OrderedDict kernel name -> fraction of zeros in [0, 1].
    "total_sparsity",  # zeros / elements over the masked kernels.
    "nonzero_weights",  # int: non-zero elements of the masked kernels.
    "total_weights",  # int: elements of the masked kernels.
])

# --------------------------------------------------------------------------
# Hyper-parameters, and tf.contrib.model_pruning's string format.

_Key = collections.namedtuple("_Key", ["type", "default", "accepted", "why"])

# Every key of tf.contrib.model_pruning.get_pruning_hparams() (up to TF 1.15)
# with its type and default. `accepted` is None for keys we implement; else
# a predicate on the parsed value (the values that behave here as in contrib)
# and `why` says what we do not implement.
_CONTRIB_KEYS = collections.OrderedDict([
    ("name", _Key(str, "model_pruning", None, None)),
    ("begin_pruning_step", _Key(int, 0, None, None)),
    ("end_pruning_step", _Key(int, -1, None, None)),
    ("pruning_frequency", _Key(int, 10, None, None)),
    ("initial_sparsity", _Key(float, 0.0, None, None)),
    ("target_sparsity", _Key(float, 0.5, None, None)),
    ("sparsity_function_begin_step", _Key(int, 0, None, None)),
    ("sparsity_function_end_step", _Key(int, 100, None, None)),
    ("sparsity_function_exponent", _Key(float, 3.0, None, None)),
    ("do_not_prune", _Key(list, [""], None, None)),
    ("threshold_decay", _Key(
        float, 0.0, lambda v: v == 0.0,
        "the threshold is recomputed exactly at every update (contrib's "
        "exponential smoothing of thresholds is not implemented)")),
    ("nbins", _Key(
        int, 256, lambda v: v in (255, 256),
        "the threshold comes from an exact sort (top_k, as later contrib "
        "releases), not from a histogram with nbins bins")),
    ("block_height", _Key(
        int, 1, lambda v: v == 1,
        "only element-wise masks (1x1 blocks) are implemented")),
    ("block_width", _Key(
        int, 1, lambda v: v == 1,
        "only element-wise masks (1x1 blocks) are implemented")),
    ("block_pooling_function", _Key(
        str, "AVG", lambda v: v in ("AVG", "MAX"),
        "block pooling is AVG or MAX (moot with 1x1 blocks)")),
    ("block_dims_map", _Key(
        list, [""], lambda v: not any(v),
        "only element-wise masks (1x1 blocks) are implemented")),
    ("weight_sparsity_map", _Key(
        list, [""], lambda v: not any(v),
        "one target sparsity applies to every pruned kernel; narrow the "
        "pruned kernels with the scope or do_not_prune instead")),
    ("use_tpu", _Key(bool, False, lambda v: not v,
                     "TPU pooling is not implemented")),
])

# tf.contrib.training.HParams.parse's grammar: name=value or name=[v1,v2],
# comma-separated.
_PARAM_RE = re.compile(
    r"\s*(?P<name>[a-zA-Z][\w\.]*)\s*=\s*"
    r"((?P<val>[^,\[]*)|\[(?P<vals>[^\]]*)\])\s*($|,)")


def contrib_defaults():
  """An OrderedDict contrib key -> contrib's default value (TF 1.15)."""
  return collections.OrderedDict(
      (k, list(v.default) if isinstance(v.default, list) else v.default)
      for k, v in _CONTRIB_KEYS.items())


def _parse_value(name, text, value_type, source):
  text = text.strip()
  try:
    if value_type is bool:
      if text in ("true", "True"):
        return True
      if text in ("false", "False"):
        return False
      return bool(int(text))
    if value_type is int:
      return int(text)
    if value_type is float:
      value = float(text)
      if not math.isfinite(value):
        raise ValueError(text)
      return value
    return text
  except ValueError:
    raise errors.ConfigError(
        "%s: %s=%r is not a valid %s" %
        (source, name, text, value_type.__name__)) from None


def parse_pruning_hparams(text, hparams=None, source="pruning hparams"):
  """Parses tf.contrib.model_pruning's hparams string into PruningHParams.

  The string is what `get_pruning_hparams().parse(text)` took, e.g.
  "begin_pruning_step=1000,end_pruning_step=20000,pruning_frequency=100,
  target_sparsity=0.9,sparsity_function_end_step=20000". Keys keep contrib's
  meaning (see docs/pruning.md): begin/end_pruning_step bound when masks
  change, sparsity_function_* shape the curve. Keys left out take contrib's
  defaults (not the values of `hparams`, so a legacy string means what it
  meant to contrib). Keys of features we do not implement (block masks,
  weight_sparsity_map, threshold_decay, use_tpu, ...) are refused by name
  unless they hold contrib's default.

  Args:
    text: the hparams string; "" gives contrib's defaults.
    hparams: PruningHParams whose own fields (scope, min_kernel_size) are
      kept; default PruningHParams().
    source: how error messages name the string, e.g. "--pruning_hparams".

  Returns:
    PruningHParams (validated).

  Raises:
    ConfigError: malformed text, an unknown or repeated key, a refused value,
      or values contrib would reject (e.g. begin >= end).
  """
  values = contrib_defaults()
  seen = set()
  text = (text or "").strip()
  pos = 0
  while pos < len(text):
    match = _PARAM_RE.match(text, pos)
    if not match or match.end() == pos:
      raise errors.ConfigError(
          "%s: cannot parse %r at character %d; expected "
          "name=value,name=[v1,v2],..." % (source, text[pos:], pos))
    pos = match.end()
    name = match.group("name")
    if name not in _CONTRIB_KEYS:
      raise errors.ConfigError(
          "%s: unknown key %r; tf.contrib.model_pruning's keys are: %s" %
          (source, name, ", ".join(_CONTRIB_KEYS)))
    if name in seen:
      raise errors.ConfigError("%s: key %r is given twice" % (source, name))
    seen.add(name)
    key = _CONTRIB_KEYS[name]
    if key.type is list:
      raw = match.group("vals")
      if raw is None:
        raw = match.group("val")
      values[name] = [v.strip() for v in raw.split(",")]
    else:
      if match.group("val") is None:
        raise errors.ConfigError("%s: %s takes one value, not a list" %
                                 (source, name))
      values[name] = _parse_value(name, match.group("val"), key.type, source)
  for name in seen:
    key = _CONTRIB_KEYS[name]
    if key.accepted is not None and not key.accepted(values[name]):
      raise errors.ConfigError(
          "%s: %s=%s is not supported (contrib's default is %s): %s" %
          (source, name, values[name], key.default, key.why))
  base = hparams if hparams is not None else PruningHParams()
  result = base._replace(
      name=values["name"],
      begin_step=values["begin_pruning_step"],
      end_step=values["end_pruning_step"],
      frequency=values["pruning_frequency"],
      initial_sparsity=values["initial_sparsity"],
      target_sparsity=values["target_sparsity"],
      sparsity_function_begin_step=values["sparsity_function_begin_step"],
      sparsity_function_end_step=values["sparsity_function_end_step"],
      sparsity_function_exponent=values["sparsity_function_exponent"],
      do_not_prune=tuple(v for v in values["do_not_prune"] if v))
  validate_hparams(result, source)
  return result


def default_end_step(total_steps, begin_step=0, frequency=10):
  """Where the schedule ends when not given: two thirds into the run.

  Rounded to a multiple of `frequency` after `begin_step` (at least one
  update), so the target sparsity is reached and the last third of the run
  recovers from it.
  """
  span = max(int(round((2.0 * total_steps / 3.0 - begin_step) / frequency)),
             1) * frequency
  return begin_step + span


def gradual_pruning_hparams(target_sparsity, begin_step, end_step,
                            frequency=10, initial_sparsity=0.0, exponent=3.0,
                            scope="", min_kernel_size=0, do_not_prune=()):
  """Hyper-parameters where the curve spans exactly the pruning window.

  The sparsity rises from `initial_sparsity` at `begin_step` to
  `target_sparsity` at `end_step` (sparsity_function_begin/end_step equal
  begin/end_step), masks change every `frequency` steps in between. The
  target is reached exactly when end_step - begin_step is a multiple of
  frequency (and begin_step is 0 or >= frequency).

  Args:
    target_sparsity: float in [0, 1).
    begin_step: int >= 0.
    end_step: int > begin_step.
    frequency: int >= 1.
    initial_sparsity: float in [0, 1).
    exponent: float, 3 for the cubic schedule.
    scope: only kernels under this variable scope are pruned ("" = all).
    min_kernel_size: kernels with fewer elements are not pruned.
    do_not_prune: substrings of kernel names that are not pruned.

  Returns:
    PruningHParams (validated).
  """
  hparams = PruningHParams(
      begin_step=begin_step, end_step=end_step, frequency=frequency,
      initial_sparsity=initial_sparsity, target_sparsity=target_sparsity,
      sparsity_function_begin_step=begin_step,
      sparsity_function_end_step=end_step,
      sparsity_function_exponent=exponent, scope=scope or "",
      min_kernel_size=min_kernel_size, do_not_prune=tuple(do_not_prune))
  validate_hparams(hparams)
  return hparams


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate_hparams(hparams, source="pruning hparams"):
  """Raises ConfigError for values contrib's `_validate_spec` refuses, too.

  Args:
    hparams: PruningHParams.
    source: how the message names the hyper-parameters.
  """
  h = hparams

  def fail(text):
    raise errors.ConfigError("%s: %s" % (source, text))

  for field in ("begin_step", "end_step", "frequency",
                "sparsity_function_begin_step", "sparsity_function_end_step",
                "min_kernel_size"):
    if not _is_int(getattr(h, field)):
      fail("%s=%r is not an integer" % (field, getattr(h, field)))
  if h.begin_step < 0:
    fail("begin_pruning_step=%d must be >= 0" % h.begin_step)
  if h.end_step != -1 and h.end_step <= h.begin_step:
    fail("end_pruning_step=%d must be > begin_pruning_step=%d (or -1: prune "
         "until training stops)" % (h.end_step, h.begin_step))
  if h.frequency < 1:
    fail("pruning_frequency=%d must be >= 1" % h.frequency)
  if h.sparsity_function_begin_step < 0:
    fail("sparsity_function_begin_step=%d must be >= 0" %
         h.sparsity_function_begin_step)
  if h.sparsity_function_end_step <= h.sparsity_function_begin_step:
    fail("sparsity_function_end_step=%d must be > "
         "sparsity_function_begin_step=%d" %
         (h.sparsity_function_end_step, h.sparsity_function_begin_step))
  for field in ("initial_sparsity", "target_sparsity"):
    value = getattr(h, field)
    if (not isinstance(value, numbers.Real) or isinstance(value, bool) or
        not 0.0 <= value < 1.0):
      fail("%s=%r must be in [0, 1)" % (field, value))
  exponent = h.sparsity_function_exponent
  if (not isinstance(exponent, numbers.Real) or isinstance(exponent, bool) or
      not math.isfinite(exponent) or exponent <= 0):
    fail("sparsity_function_exponent=%r must be > 0" % (exponent,))
  if h.min_kernel_size < 0:
    fail("min_kernel_size=%d must be >= 0" % h.min_kernel_size)
  if not h.name or not re.match(r"^[A-Za-z0-9.][\w.\-/]*$", h.name):
    fail("name=%r is not a valid scope name" % (h.name,))
  if not isinstance(h.scope, str):
    fail("scope=%r is not a string" % (h.scope,))


def hparams_dict(hparams):
  """PruningHParams as a JSON-friendly dict (e.g. for model_spec.json)."""
  d = collections.OrderedDict(hparams._asdict())
  d["do_not_prune"] = list(d["do_not_prune"])
  return d


# --------------------------------------------------------------------------
# The schedule.


def sparsity_at(step, hparams):
  """The curve s(t) of the schedule at global step `step` (Python float).

  Args:
    step: int, the global step.
    hparams: PruningHParams.

  Returns:
    float in [0, 1): target + (initial - target) * (1 - p)**exponent, with
    p = (step - t0) / (t1 - t0) clipped to [0, 1].
  """
  t0 = hparams.sparsity_function_begin_step
  t1 = hparams.sparsity_function_end_step
  p = min(1.0, max(0.0, (float(step) - t0) / float(t1 - t0)))
  return (hparams.target_sparsity +
          (hparams.initial_sparsity - hparams.target_sparsity) *
          (1.0 - p) ** hparams.sparsity_function_exponent)


def sparsity_tensor(step, hparams):
  """The graph version of `sparsity_at`: float64 scalar tensor.

  Args:
    step: integer scalar tensor (the global step).
    hparams: PruningHParams.
  """
  t0 = float(hparams.sparsity_function_begin_step)
  t1 = float(hparams.sparsity_function_end_step)
  p = tf.clip_by_value((tf.cast(step, tf.float64) - t0) / (t1 - t0), 0.0, 1.0)
  target = tf.constant(float(hparams.target_sparsity), tf.float64)
  return tf.add(
      target,
      (float(hparams.initial_sparsity) - float(hparams.target_sparsity)) *
      tf.pow(1.0 - p, float(hparams.sparsity_function_exponent)),
      name="sparsity")


def is_update_step(step, last_update_step, hparams):
  """Whether masks change at `step` (contrib's rule), in Python.

  Args:
    step: int, the global step after the training step.
    last_update_step: int, the step of the previous update (0 at first).
    hparams: PruningHParams.
  """
  in_range = step >= hparams.begin_step and (hparams.end_step < 0 or
                                             step <= hparams.end_step)
  return in_range and last_update_step + hparams.frequency <= step


def update_steps(hparams, last_step):
  """The global steps in [1, last_step] at which the masks change.

  Args:
    hparams: PruningHParams.
    last_step: int, the last global step of the run.

  Returns:
    A list of ints, ascending.
  """
  steps, last = [], 0
  for step in range(1, last_step + 1):
    if is_update_step(step, last, hparams):
      steps.append(step)
      last = step
  return steps


# Halves round up; the slack absorbs the last-bit differences between the
# graph's and Python's float64 arithmetic (and grappler's rewrites of it), so
# both count the same at exact halves such as 18 * (1 - 0.52777...) = 8.5.
_ROUNDING_SLACK = 1e-6


def kept_count(size, sparsity):
  """Elements a mask of `size` keeps at `sparsity`: round(size * (1 - s)).

  Halves round up; at least 1, at most size.
  """
  kept = int(math.floor(size * (1.0 - sparsity) + 0.5 + _ROUNDING_SLACK))
  return min(size, max(1, kept))


def mask_sparsity_after(step, hparams, size):
  """The fraction of zeros of a mask of `size` once `step` steps are done.

  Args:
    step: int, the global step reached.
    hparams: PruningHParams.
    size: int, the kernel's number of elements.

  Returns:
    float: 0 before the first update, else 1 - kept / size at the sparsity
    of the last update.
  """
  steps = update_steps(hparams, step)
  if not steps:
    return 0.0
  return 1.0 - kept_count(size, sparsity_at(steps[-1], hparams)) / float(size)


# --------------------------------------------------------------------------
# Masks in the graph.


def _is_pruned(name, variable, hparams):
  base = name.rsplit("/", 1)[-1]
  if base not in layers.KERNEL_NAMES:
    return False
  scope = hparams.scope.rstrip("/")
  if scope and not name.startswith(scope + "/"):
    return False
  if any(s and s in name for s in hparams.do_not_prune):
    return False
  size = variable.shape.num_elements()
  if size is None:
    raise errors.ConfigError(
        "kernel %s has shape %s; pruning needs a fully defined shape" %
        (name, variable.shape))
  return size >= max(hparams.min_kernel_size, 1)


def _aux_variable(getter, name, shape, dtype, initializer, kwargs):
  """A non-trainable variable beside a kernel, through the inner getter."""
  aux = dict(kwargs)
  aux.update(name=name, shape=shape, dtype=dtype, initializer=initializer,
             regularizer=None, trainable=False,
             collections=[tf.compat.v1.GraphKeys.GLOBAL_VARIABLES],
             partitioner=None, constraint=None)
  return getter(**aux)


def make_mask_getter(hparams):
  """A variable custom getter that masks kernels, and the state it fills.

  For each kernel variable (base name in layers.KERNEL_NAMES) under
  `hparams.scope` with at least `min_kernel_size` elements and no
  `do_not_prune` substring in its name, the getter creates (or, under
  variable reuse, finds) `<kernel>_mask` (ones, the kernel's shape) and
  `<kernel>_threshold` (scalar 0), both non-trainable and in
  GLOBAL_VARIABLES, and returns `kernel * mask` instead of the kernel. Other
  variables pass through unchanged.

  Set it on a variable scope around the network:

    getter, state = pruning.make_mask_getter(hparams)
    with tf.compat.v1.variable_scope("", custom_getter=getter):
      logits, _ = network_fn(images, num_classes)

  A getter set on an inner scope (e.g. a fake-quantization getter) sees the
  masked kernel, so quantization applies to the pruned weights.

  Args:
    hparams: PruningHParams.

  Returns:
    (custom_getter, PruningState); state.kernels is filled as the network is
    built (one entry per kernel, however often it is reused).
  """
  validate_hparams(hparams)
  state = PruningState(hparams=hparams, kernels=collections.OrderedDict())

  def mask_getter(getter, name, *args, **kwargs):
    variable = getter(name, *args, **kwargs)
    if not _is_pruned(name, variable, hparams):
      return variable
    pruned = state.kernels.get(name)
    if pruned is None:
      dtype = variable.dtype.base_dtype
      mask = _aux_variable(getter, name + MASK_SUFFIX, variable.shape, dtype,
                           tf.compat.v1.ones_initializer(), kwargs)
      threshold = _aux_variable(getter, name + THRESHOLD_SUFFIX, [], dtype,
                                tf.compat.v1.zeros_initializer(), kwargs)
      pruned = PrunedKernel(name=name, kernel=variable, mask=mask,
                            threshold=threshold)
      state.kernels[name] = pruned
    base = name.rsplit("/", 1)[-1]
    return tf.multiply(variable, pruned.mask, name="masked_" + base)

  return mask_getter, state


def _magnitude_mask(kernel, sparsity):
  """(new mask, new threshold) keeping the largest |kernel| values.

  Args:
    kernel: the kernel (variable or tensor) with a static shape.
    sparsity: float64 scalar tensor in [0, 1).

  Returns:
    mask: 0/1 tensor of the kernel's shape and dtype with exactly
      kept_count(size, sparsity) ones.
    threshold: scalar, the smallest kept magnitude.
  """
  shape = kernel.shape.as_list()
  size = int(np.prod(shape))
  dtype = kernel.dtype.base_dtype
  magnitudes = tf.reshape(tf.abs(tf.convert_to_tensor(kernel)), [size])
  keep = tf.cast(tf.floor(tf.cast(size, tf.float64) * (1.0 - sparsity) +
                          (0.5 + _ROUNDING_SLACK)), tf.int32)
  keep = tf.clip_by_value(keep, 1, size)
  # A full sort gives the rank of every element, so ties at the threshold
  # are broken by position and the kept count is exact.
  values, indices = tf.math.top_k(magnitudes, k=size, sorted=True)
  kept = tf.cast(tf.range(size) < keep, dtype)
  mask = tf.scatter_nd(tf.expand_dims(indices, 1), kept, [size])
  threshold = tf.gather(values, keep - 1)
  return tf.reshape(mask, shape), threshold


def mask_update_op(state, global_step, hparams=None):
  """An op that updates the masks when the schedule says so.

  Build it after the training step (e.g. under
  `tf.control_dependencies([train_op])`, as the training loop does with
  `after_step_fns`): it reads `global_step` when it runs, i.e. the step just
  completed. When `is_update_step(step, last, hparams)` holds, every mask is
  set to keep the kept_count(size, s(step)) largest |kernel| values, every
  threshold to the smallest kept magnitude, and `last_mask_update_step` to
  the step; otherwise nothing changes.

  Args:
    state: PruningState from `make_mask_getter` (network already built).
    global_step: the global step variable or an integer tensor.
    hparams: PruningHParams; default state.hparams.

  Returns:
    An op.
  """
  hparams = hparams or state.hparams
  if not state.kernels:
    return tf.no_op(name="mask_update")
  with tf.compat.v1.variable_scope(hparams.name,
                                   reuse=tf.compat.v1.AUTO_REUSE):
    last = tf.compat.v1.get_variable(
        LAST_UPDATE_STEP_NAME, [], dtype=tf.int64,
        initializer=tf.compat.v1.zeros_initializer(), trainable=False,
        collections=[tf.compat.v1.GraphKeys.GLOBAL_VARIABLES])
    # A fresh read: created here, it sees the update of the training step
    # this op depends on.
    step = tf.cast(tf.identity(global_step), tf.int64)
    in_range = step >= hparams.begin_step
    if hparams.end_step >= 0:
      in_range = tf.logical_and(in_range, step <= hparams.end_step)
    due = tf.logical_and(in_range, last + hparams.frequency <= step)

    def update():
      sparsity = sparsity_tensor(step, hparams)
      assigns = []
      for pruned in state.kernels.values():
        mask, threshold = _magnitude_mask(pruned.kernel, sparsity)
        assigns.append(pruned.mask.assign(mask))
        assigns.append(pruned.threshold.assign(threshold))
      with tf.control_dependencies(assigns):
        assigns.append(last.assign(step))
      with tf.control_dependencies(assigns):
        return tf.constant(True)

    def skip():
      return tf.constant(False)

    updated = tf.compat.v1.cond(due, update, skip, name="maybe_update")
    return tf.group(updated, name="mask_update")


def _short_name(name, scope):
  scope = scope.rstrip("/")
  if scope and name.startswith(scope + "/"):
    name = name[len(scope) + 1:]
  if name.endswith("/kernel"):
    name = name[:-len("/kernel")]
  return name


def sparsity_scalars(state, per_layer=True):
  """Sparsity of the masks, for `ModelOutputs.scalars` and TensorBoard.

  Args:
    state: PruningState.
    per_layer: also one scalar per pruned kernel.

  Returns:
    OrderedDict: "sparsity/total" (zeros / elements over all masks), then
    "sparsity/<layer>" per kernel (e.g. "sparsity/conv1" for
    "<scope>/conv1/kernel"), float32 scalars in [0, 1].
  """
  scalars = collections.OrderedDict()
  if not state.kernels:
    return scalars
  with tf.name_scope("sparsity"):
    zeros, sizes, per_kernel = [], 0, []
    for pruned in state.kernels.values():
      size = pruned.mask.shape.num_elements()
      fraction = tf.nn.zero_fraction(pruned.mask)
      per_kernel.append((_short_name(pruned.name, state.hparams.scope),
                         fraction))
      zeros.append(fraction * float(size))
      sizes += size
    scalars["sparsity/total"] = tf.add_n(zeros) / float(sizes)
  if per_layer:
    for name, fraction in per_kernel:
      scalars["sparsity/" + name] = fraction
  return scalars


def wrap_model_fn(model_fn, hparams, per_layer_scalars=True):
  """Adds masks, their updates and sparsity scalars to a loop model_fn.

  The returned model_fn builds `model_fn` under a variable scope carrying
  the mask getter (so the training call and the evaluation towers, built
  with reuse, share one set of masks and all see masked kernels). On the
  training call it adds `sparsity_scalars` (plus "sparsity/schedule", s(t)
  at the current step) to `scalars` and the mask update to
  `after_step_fns`. Wrap a quantization model_fn inside this one so that
  quantization sees the masked kernels.

  Args:
    model_fn: fn(images, labels, is_training[, extras=...]) ->
      loop.ModelOutputs.
    hparams: PruningHParams; `scope` should name the trained network so a
      teacher built beside it is not masked.
    per_layer_scalars: also log one sparsity per layer.

  Returns:
    A model_fn of the same signature. `pruned_model_fn.pruning_state()`
    returns the PruningState of the default graph (None before building).

  Raises:
    ConfigError: (when called) no kernel of the network matches the scope.
  """
  validate_hparams(hparams)
  built = per_graph.PerGraph(lambda: make_mask_getter(hparams))

  def pruned_model_fn(images, labels, is_training, **kwargs):
    getter, state = built.get()
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(),
                                     custom_getter=getter,
                                     auxiliary_name_scope=False):
      outputs = model_fn(images, labels, is_training, **kwargs)
    if not state.kernels:
      kernels = [v.op.name for v in layers.get_kernels()]
      raise errors.ConfigError(
          "pruning scope %r matched no kernel (min_kernel_size %d, "
          "do_not_prune %s); the graph's kernels are: %s" %
          (hparams.scope, hparams.min_kernel_size,
           list(hparams.do_not_prune), ", ".join(kernels) or "(none)"))
    if not is_training:
      return outputs
    global_step = tf.compat.v1.train.get_or_create_global_step()
    scalars = collections.OrderedDict(outputs.scalars or {})
    scalars["sparsity/schedule"] = tf.cast(
        sparsity_tensor(global_step, hparams), tf.float32)
    scalars.update(sparsity_scalars(state, per_layer=per_layer_scalars))
    after = tuple(outputs.after_step_fns or ()) + (
        lambda: mask_update_op(state, global_step, hparams),)
    return outputs._replace(scalars=scalars, after_step_fns=after)

  pruned_model_fn.pruning_state = built.state
  return pruned_model_fn


def init_from_checkpoint(model_fn, checkpoint_prefix, scope):
  """Starts a run from another checkpoint's weights (fine-tuning).

  On the training call, the network's variables under `scope` (trainable
  ones and batch-norm moving averages; not masks, optimizer slots or the
  global step) are restored from `checkpoint_prefix` by `init_fn` -- only
  while the global step is 0, i.e. on a fresh start: a resumed run keeps its
  own fine-tuned weights from its train_dir.

  Args:
    model_fn: a loop model_fn.
    checkpoint_prefix: the source checkpoint prefix (or a directory).
    scope: the network's variable scope.

  Returns:
    A model_fn of the same signature.

  Raises:
    CheckpointError: (when called) the checkpoint lacks a variable or holds
      it with another shape.
  """
  prefix = checkpoints.resolve_checkpoint(checkpoint_prefix)
  scope = scope.rstrip("/")

  def fine_tune_model_fn(images, labels, is_training, **kwargs):
    outputs = model_fn(images, labels, is_training, **kwargs)
    if not is_training:
      return outputs
    variables = []
    for key in (tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES,
                tf.compat.v1.GraphKeys.MOVING_AVERAGE_VARIABLES):
      for v in tf.compat.v1.get_collection(key):
        if v.op.name.startswith(scope + "/") and v not in variables:
          variables.append(v)
    var_map = {v.op.name: v for v in variables}
    if not var_map:
      raise errors.ConfigError("no variable under scope %r to initialise "
                               "from %s" % (scope, prefix))
    checkpoints.check_fits(prefix, var_map)
    saver = tf.compat.v1.train.Saver(var_map)
    global_step = tf.compat.v1.train.get_or_create_global_step()
    previous = outputs.init_fn

    def init_fn(sess):
      if previous is not None:
        previous(sess)
      if int(sess.run(global_step)) == 0:
        saver.restore(sess, prefix)

    return outputs._replace(init_fn=init_fn)

  return fine_tune_model_fn


# --------------------------------------------------------------------------
# Checkpoints.


def checkpoint_masks(checkpoint_prefix):
  """{kernel name: mask name} of the masks a checkpoint holds.

  Args:
    checkpoint_prefix: a checkpoint prefix or a training directory.
  """
  prefix = checkpoints.resolve_checkpoint(checkpoint_prefix)
  names = set(checkpoint_shapes(prefix))
  return collections.OrderedDict(
      (n[:-len(MASK_SUFFIX)], n) for n in sorted(names)
      if n.endswith(MASK_SUFFIX) and n[:-len(MASK_SUFFIX)] in names)


def checkpoint_shapes(checkpoint_prefix):
  """{name: shape list} of a checkpoint; CheckpointError if unreadable."""
  try:
    return {n: list(s) for n, s in tf.train.list_variables(checkpoint_prefix)}
  except (tf.errors.OpError, ValueError) as e:
    raise errors.CheckpointError(
        "cannot read checkpoint %s: %s" %
        (checkpoint_prefix, " ".join(str(e).split()))) from None


def _is_slot(name, names):
  """Optimizer slots are named after their variable: `<var>/Momentum`."""
  return "/" in name and name.rsplit("/", 1)[0] in names


@contextlib.contextmanager
def _atomic_dir(out_dir):
  """Yields a temporary folder that replaces `out_dir` on success."""
  out_dir = os.path.abspath(out_dir)
  parent = os.path.dirname(out_dir)
  try:
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix="." + os.path.basename(out_dir) + ".",
                               suffix=".tmp", dir=parent)
  except OSError as e:
    raise errors.ExportError("cannot write %s: %s" %
                             (out_dir, e.strerror or e)) from None
  try:
    yield tmp_dir
    old = None
    if os.path.exists(out_dir):
      old = tmp_dir + ".old"
      os.rename(out_dir, old)
    os.rename(tmp_dir, out_dir)
    if old:
      shutil.rmtree(old, ignore_errors=True)
  except BaseException as e:
    shutil.rmtree(tmp_dir, ignore_errors=True)
    if isinstance(e, OSError):
      raise errors.ExportError("cannot write %s: %s" %
                               (out_dir, e.strerror or e)) from None
    raise


def write_checkpoint(out_dir, tensors, global_step, model_spec=None):
  """Writes numpy arrays as a Saver checkpoint folder, atomically.

  The folder gets `model.ckpt-<global_step>.{index,data-*}`, the
  `checkpoint` file (relative paths) and, if given, `model_spec.json`. It is
  written beside `out_dir` under a temporary name and renamed into place
  (replacing an existing `out_dir`), so a failure leaves nothing half
  written.

  Args:
    out_dir: the checkpoint folder.
    tensors: OrderedDict checkpoint name -> numpy array.
    global_step: int, the step in the file name.
    model_spec: dict written to model_spec.json, or None.

  Returns:
    The checkpoint prefix inside out_dir.
  """
  basename = "%s-%d" % (checkpoints.CHECKPOINT_BASENAME, int(global_step))
  with _atomic_dir(out_dir) as tmp_dir:
    graph = tf.Graph()
    with graph.as_default():
      feeds, var_map = {}, collections.OrderedDict()
      for i, (name, value) in enumerate(tensors.items()):
        value = np.asarray(value)
        placeholder = tf.compat.v1.placeholder(
            tf.as_dtype(value.dtype), value.shape, name="value_%d" % i)
        var_map[name] = tf.compat.v1.Variable(placeholder, name="var_%d" % i)
        feeds[placeholder] = value
      saver = tf.compat.v1.train.Saver(var_map, save_relative_paths=True)
      with tf.compat.v1.Session(graph=graph) as sess:
        sess.run([v.initializer for v in var_map.values()], feeds)
        saver.save(sess, os.path.join(tmp_dir, checkpoints.CHECKPOINT_BASENAME),
                   global_step=int(global_step), write_meta_graph=False)
    if model_spec is not None:
      fileio.write_json(os.path.join(tmp_dir, checkpoints.MODEL_SPEC_FILENAME),
                        model_spec)
  return os.path.join(os.path.abspath(out_dir), basename)


def _source_spec(prefix):
  folder = os.path.dirname(prefix) or "."
  path = os.path.join(folder, checkpoints.MODEL_SPEC_FILENAME)
  if not os.path.exists(path):
    return None
  return dict(fileio.read_json(path))


def strip_masks(checkpoint_prefix, out_dir, scope=None):
  """Folds masks into kernels and writes a checkpoint the plain net restores.

  Every kernel with a mask becomes `kernel * mask`; masks, thresholds,
  `last_mask_update_step` and optimizer slots are dropped. With a `scope`
  only its variables (and `global_step`) are kept. `model_spec.json` beside
  the source is copied (with "stripped_from" added).

  Args:
    checkpoint_prefix: a checkpoint prefix or a training directory.
    out_dir: the new checkpoint folder (replaced if it exists).
    scope: the network's variable scope, or None to keep every variable.

  Returns:
    StripResult with the sparsity of each masked kernel.

  Raises:
    CheckpointError: no readable checkpoint.
    ExportError: out_dir cannot be written.
  """
  prefix = checkpoints.resolve_checkpoint(checkpoint_prefix)
  shapes = checkpoint_shapes(prefix)
  names = set(shapes)
  masks = checkpoint_masks(prefix)
  dropped = set(masks.values())
  dropped.update(n for n in names if n.endswith(THRESHOLD_SUFFIX) and
                 n[:-len(THRESHOLD_SUFFIX)] in names)
  dropped.update(n for n in names
                 if n.rsplit("/", 1)[-1] == LAST_UPDATE_STEP_NAME)
  scope = (scope or "").rstrip("/")
  reader = tf.train.load_checkpoint(prefix)
  tensors = collections.OrderedDict()
  sparsity = collections.OrderedDict()
  zeros = total = 0
  for name in sorted(names):
    if name in dropped or _is_slot(name, names):
      continue
    if scope and name != "global_step" and not name.startswith(scope + "/"):
      continue
    value = reader.get_tensor(name)
    if name in masks:
      value = value * reader.get_tensor(masks[name]).astype(value.dtype)
      layer_zeros = int(value.size - np.count_nonzero(value))
      sparsity[name] = layer_zeros / float(value.size)
      zeros += layer_zeros
      total += int(value.size)
    tensors[name] = value
  spec = _source_spec(prefix)
  if spec is not None:
    spec["stripped_from"] = os.path.abspath(prefix)
  new_prefix = write_checkpoint(out_dir, tensors,
                                checkpoints.stored_global_step(prefix) or 0, spec)
  return StripResult(checkpoint=new_prefix, sparsity=sparsity,
                     total_sparsity=zeros / float(total) if total else 0.0,
                     nonzero_weights=total - zeros, total_weights=total)
