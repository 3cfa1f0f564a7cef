"""The value every loss returns, and the shape checks the losses share.

A loss is a pure function of tensors that returns
`LossOutput(loss, extra)`:
  * `loss`: float32 scalar tensor, the value to minimise;
  * `extra`: `collections.OrderedDict` name -> float32 scalar tensor, the
    parts worth logging and summarising (e.g. `hard_loss`, `soft_loss`).
Losses never add themselves to the `tf.compat.v1.GraphKeys.LOSSES`
collection: the caller owns the total it minimises.

Shape errors are `errors.ConfigError` naming the tensor, the scope, the value
and what was expected, in the wording of google-research/bert's
`assert_rank`.
"""

import collections

from distill_v1 import errors

LossOutput = collections.namedtuple("LossOutput", ["loss", "extra"])


def check_rank(tensor, expected_ranks, scope_name):
  """Raises ConfigError unless `tensor` has a static rank in expected_ranks.

  Args:
    tensor: a tf.Tensor.
    expected_ranks: int or tuple of ints.
    scope_name: str, the name scope shown in the message.

  Returns:
    The rank, an int.
  """
  if isinstance(expected_ranks, int):
    expected_ranks = (expected_ranks,)
  expected = " or ".join(str(r) for r in expected_ranks)
  ndims = tensor.shape.ndims
  if ndims is None:
    raise errors.ConfigError(
        "For tensor %s in scope %s, the rank is unknown; expected %s" %
        (tensor.name, scope_name, expected))
  if ndims not in expected_ranks:
    raise errors.ConfigError(
        "For tensor %s in scope %s, rank %d is not the expected %s" %
        (tensor.name, scope_name, ndims, expected))
  return ndims


def check_floating(tensor, scope_name):
  """Raises ConfigError unless `tensor` has a floating-point dtype."""
  if not tensor.dtype.is_floating:
    raise errors.ConfigError(
        "For tensor %s in scope %s, dtype %s is not a floating-point type" %
        (tensor.name, scope_name, tensor.dtype.name))


def static_dim(tensor, axis):
  """The static size of `tensor`'s dimension `axis`, or None if unknown."""
  value = tensor.shape[axis]
  return None if value is None else int(value)


def check_same_batch(first, second, scope_name):
  """Raises ConfigError if both batch sizes are static and differ.

  Dynamic batch sizes (None) are left to the ops, which fail at run time.
  """
  first_batch = static_dim(first, 0)
  second_batch = static_dim(second, 0)
  if (first_batch is not None and second_batch is not None and
      first_batch != second_batch):
    raise errors.ConfigError(
        "In scope %s, tensor %s has batch size %d but tensor %s has batch "
        "size %d; they must agree" % (scope_name, first.name, first_batch,
                                      second.name, second_batch))
