"""The hard-label loss: cross-entropy against the true labels."""

import collections

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.losses import outputs


def hard_loss(labels, logits, scope=None):
  """Mean softmax cross-entropy between integer labels and logits.

  Args:
    labels: int32 or int64 tensor [batch], class indices in
      [0, num_classes).
    logits: float tensor [batch, num_classes], unnormalised log-probabilities.
    scope: name scope (default "hard_loss").

  Returns:
    LossOutput: `loss` is the float32 scalar mean over the batch of
    -log softmax(logits)[label] (nats); `extra` = {"hard_loss": loss}.

  Raises:
    ConfigError: labels are not integers or not rank 1, logits are not float
      or not rank 2, or the static batch sizes differ.
  """
  with tf.compat.v1.name_scope(scope, "hard_loss", [labels, logits]) as name:
    scope_name = name.rstrip("/")
    labels = tf.convert_to_tensor(labels)
    logits = tf.convert_to_tensor(logits)
    outputs.check_rank(labels, 1, scope_name)
    outputs.check_rank(logits, 2, scope_name)
    if not labels.dtype.is_integer:
      raise errors.ConfigError(
          "For tensor %s in scope %s, dtype %s is not an integer type (hard "
          "labels are class indices)" % (labels.name, scope_name,
                                         labels.dtype.name))
    outputs.check_floating(logits, scope_name)
    outputs.check_same_batch(labels, logits, scope_name)
    # float16/bfloat16 logits would lose the small log-probabilities.
    logits = tf.cast(logits, tf.float32)
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int64), logits=logits)
    loss = tf.reduce_mean(per_example, name="value")
    return outputs.LossOutput(loss=loss,
                              extra=collections.OrderedDict([("hard_loss",
                                                              loss)]))
