"""Small convolutional networks: the CNN teacher and student of BENCHMARK.md.

`cnn_teacher` is TensorFlow's classic "Deep MNIST" model, `cnn_student` a
20,490-parameter network (for 28x28x1 images and 10 classes). Max pooling is
2x2 with stride 2 and VALID padding (TF-Slim's and Keras' default), so odd
sizes round down: 28 -> 14 -> 7, 32 -> 16 -> 8.

Both take `layer_widths`, a dict end point -> output channels (e.g.
{"conv1": 8, "conv2": 16}), so a structurally pruned, physically narrower copy
is the same network with other widths; None keeps the reference widths.
"""

import collections
import numbers

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import layers


def resolve_layer_widths(layer_widths, defaults, scope_name):
  """The reference widths `defaults` with `layer_widths` applied.

  Shared by the model zoo's networks (mlp and mobilenet_v1 use it too).

  Args:
    layer_widths: None or a dict end point -> positive int.
    defaults: OrderedDict end point -> the reference width.
    scope_name: the network's scope, for error messages.

  Returns:
    A dict end point -> int, with every key of `defaults`.

  Raises:
    ConfigError: an unknown end point or a width that is not a positive int.
  """
  widths = dict(defaults)
  if layer_widths is None:
    return widths
  if not isinstance(layer_widths, dict):
    raise errors.ConfigError(
        "In scope %s, layer_widths=%r is not a dict end point -> channels" %
        (scope_name, layer_widths))
  unknown = sorted(set(layer_widths) - set(defaults))
  if unknown:
    raise errors.ConfigError(
        "In scope %s, layer_widths names unknown layer(s) %s; the layers "
        "with a width are: %s" % (scope_name, ", ".join(map(str, unknown)),
                                   ", ".join(defaults)))
  for name, width in layer_widths.items():
    if (isinstance(width, bool) or not isinstance(width, numbers.Integral) or
        width < 1):
      raise errors.ConfigError(
          "In scope %s, layer_widths[%r]=%r is not a positive integer" %
          (scope_name, name, width))
    widths[name] = int(width)
  return widths


def cnn_teacher(images, num_classes, is_training=False, scope=None,
                dropout_rate=0.5, layer_widths=None):
  """conv 5x5x32 -> pool -> conv 5x5x64 -> pool -> fc 1024 -> dropout -> fc.

  All convolutions are SAME with stride 1 and ReLU; 3,274,634 parameters for
  28x28x1 and 10 classes.

  Args:
    images: float32 [batch, H, W, C] in [0, 1].
    num_classes: int.
    is_training: Python bool; dropout is active only when True.
    scope: variable scope (default "cnn_teacher").
    dropout_rate: float in [0, 1), 0.5 in the reference model.
    layer_widths: None (32, 64, 1024) or a dict overriding some of "conv1",
      "conv2" (filters) and "fc1" (units).

  Returns:
    logits: [batch, num_classes].
    end_points: OrderedDict "conv1", "pool1", "conv2", "pool2", "flatten",
      "fc1", "dropout1", "logits".
  """
  end_points = collections.OrderedDict()
  with tf.compat.v1.variable_scope(scope or "cnn_teacher",
                                   values=[images]) as sc:
    layers.check_num_classes(num_classes, sc.name)
    widths = resolve_layer_widths(layer_widths, collections.OrderedDict(
        [("conv1", 32), ("conv2", 64), ("fc1", 1024)]), sc.name)
    net = layers.conv2d(images, widths["conv1"], 5, activation=tf.nn.relu,
                        scope="conv1")
    end_points["conv1"] = net
    net = layers.max_pool2d(net, 2, scope="pool1")
    end_points["pool1"] = net
    net = layers.conv2d(net, widths["conv2"], 5, activation=tf.nn.relu,
                        scope="conv2")
    end_points["conv2"] = net
    net = layers.max_pool2d(net, 2, scope="pool2")
    end_points["pool2"] = net
    net = layers.flatten(net, scope="flatten")
    end_points["flatten"] = net
    net = layers.dense(net, widths["fc1"], activation=tf.nn.relu,
                       scope="fc1")
    end_points["fc1"] = net
    net = layers.dropout(net, dropout_rate, is_training, scope="dropout1")
    end_points["dropout1"] = net
    logits = layers.dense(net, num_classes, scope="logits")
    end_points["logits"] = logits
  return logits, end_points


def cnn_student(images, num_classes, is_training=False, scope=None,
                layer_widths=None):
  """conv 3x3x16 -> pool -> conv 3x3x32 -> pool -> flatten -> fc.

  Convolutions are SAME with stride 1 and ReLU; 20,490 parameters for
  28x28x1 and 10 classes.

  Args:
    images: float32 [batch, H, W, C] in [0, 1].
    num_classes: int.
    is_training: Python bool (the network behaves the same either way).
    scope: variable scope (default "cnn_student").
    layer_widths: None (16, 32) or a dict overriding "conv1" and/or "conv2"
      (filters).

  Returns:
    logits: [batch, num_classes].
    end_points: OrderedDict "conv1", "pool1", "conv2", "pool2", "flatten",
      "logits".
  """
  del is_training  # No dropout or batch norm.
  end_points = collections.OrderedDict()
  with tf.compat.v1.variable_scope(scope or "cnn_student",
                                   values=[images]) as sc:
    layers.check_num_classes(num_classes, sc.name)
    widths = resolve_layer_widths(layer_widths, collections.OrderedDict(
        [("conv1", 16), ("conv2", 32)]), sc.name)
    net = layers.conv2d(images, widths["conv1"], 3, activation=tf.nn.relu,
                        scope="conv1")
    end_points["conv1"] = net
    net = layers.max_pool2d(net, 2, scope="pool1")
    end_points["pool1"] = net
    net = layers.conv2d(net, widths["conv2"], 3, activation=tf.nn.relu,
                        scope="conv2")
    end_points["conv2"] = net
    net = layers.max_pool2d(net, 2, scope="pool2")
    end_points["pool2"] = net
    net = layers.flatten(net, scope="flatten")
    end_points["flatten"] = net
    logits = layers.dense(net, num_classes, scope="logits")
    end_points["logits"] = logits
  return logits, end_points
