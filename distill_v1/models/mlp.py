"""Multilayer perceptrons: the MLP teacher and student of BENCHMARK.md.

`mlp_teacher` is Hinton et al.'s (2015) 784-1200-1200-10 network with dropout
0.5 after each hidden layer; `mlp_student` is 784-800-800-10 without dropout.
For 28x28x1 images and 10 classes they have 2,395,210 and 1,276,810
parameters. `layer_widths` ({"fc1": 400, "fc2": 400}) overrides hidden
widths, e.g. for a structurally pruned copy; None keeps the reference widths.
"""

import collections

from distill_v1.compat import tf
from distill_v1.models import cnn
from distill_v1.models import layers


def mlp(images, num_classes, hidden_units, dropout_rate=0.0,
        is_training=False, scope=None, default_scope="mlp",
        layer_widths=None):
  """A ReLU multilayer perceptron on flattened images.

  Args:
    images: float32 tensor [batch, H, W, C] (or any rank >= 2), in [0, 1].
    num_classes: int, the number of logits.
    hidden_units: sequence of ints, the widths of the hidden layers.
    dropout_rate: float in [0, 1), dropout after each hidden layer (training
      only); 0 adds no dropout layers.
    is_training: Python bool.
    scope: variable scope (default `default_scope`).
    default_scope: the scope name used when `scope` is None.
    layer_widths: None or a dict "fc<i>" -> units overriding hidden_units.

  Returns:
    logits: float32 [batch, num_classes].
    end_points: OrderedDict with "flatten", "fc1", ["dropout1"], "fc2", ...,
      "logits".
  """
  end_points = collections.OrderedDict()
  with tf.compat.v1.variable_scope(scope or default_scope,
                                   values=[images]) as sc:
    layers.check_num_classes(num_classes, sc.name)
    widths = cnn.resolve_layer_widths(layer_widths, collections.OrderedDict(
        ("fc%d" % i, units) for i, units in enumerate(hidden_units, start=1)),
                                      sc.name)
    net = layers.flatten(images, scope="flatten")
    end_points["flatten"] = net
    for i in range(1, len(hidden_units) + 1):
      net = layers.dense(net, widths["fc%d" % i], activation=tf.nn.relu,
                         scope="fc%d" % i)
      end_points["fc%d" % i] = net
      if dropout_rate:
        net = layers.dropout(net, dropout_rate, is_training,
                             scope="dropout%d" % i)
        end_points["dropout%d" % i] = net
    logits = layers.dense(net, num_classes, scope="logits")
    end_points["logits"] = logits
  return logits, end_points


def mlp_teacher(images, num_classes, is_training=False, scope=None,
                dropout_rate=0.5, layer_widths=None):
  """flatten -> 1200 ReLU -> dropout -> 1200 ReLU -> dropout -> num_classes.

  Args:
    images: float32 [batch, H, W, C] in [0, 1].
    num_classes: int.
    is_training: Python bool; dropout is active only when True.
    scope: variable scope (default "mlp_teacher").
    dropout_rate: float in [0, 1), 0.5 in the reference model.
    layer_widths: None (1200, 1200) or a dict overriding "fc1" and/or "fc2".

  Returns:
    logits [batch, num_classes] and the end_points OrderedDict.
  """
  return mlp(images, num_classes, (1200, 1200), dropout_rate=dropout_rate,
             is_training=is_training, scope=scope, default_scope="mlp_teacher",
             layer_widths=layer_widths)


def mlp_student(images, num_classes, is_training=False, scope=None,
                layer_widths=None):
  """flatten -> 800 ReLU -> 800 ReLU -> num_classes, no dropout.

  Args:
    images: float32 [batch, H, W, C] in [0, 1].
    num_classes: int.
    is_training: Python bool (the network behaves the same either way).
    scope: variable scope (default "mlp_student").
    layer_widths: None (800, 800) or a dict overriding "fc1" and/or "fc2".

  Returns:
    logits [batch, num_classes] and the end_points OrderedDict.
  """
  return mlp(images, num_classes, (800, 800), dropout_rate=0.0,
             is_training=is_training, scope=scope, default_scope="mlp_student",
             layer_widths=layer_widths)
