"""Small convolutional networks: the CNN teacher and student of BENCHMARK.md.

`cnn_teacher` is TensorFlow's classic "Deep MNIST" model, `cnn_student` a
20,490-parameter network (for 28x28x1 images and 10 classes). Max pooling is
2x2 with stride 2 and VALID padding (TF-Slim's and Keras' default), so odd
sizes round down: 28 -> 14 -> 7, 32 -> 16 -> 8.
"""

import collections

from distill_v1.compat import tf
from distill_v1.models import layers


def cnn_teacher(images, num_classes, is_training=False, scope=None,
                dropout_rate=0.5):
  """conv 5x5x32 -> pool -> conv 5x5x64 -> pool -> fc 1024 -> dropout -> fc.

  All convolutions are SAME with stride 1 and ReLU; 3,274,634 parameters for
  28x28x1 and 10 classes.

  Args:
    images: float32 [batch, H, W, C] in [0, 1].
    num_classes: int.
    is_training: Python bool; dropout is active only when True.
    scope: variable scope (default "cnn_teacher").
    dropout_rate: float in [0, 1), 0.5 in the reference model.

  Returns:
    logits: [batch, num_classes].
    end_points: OrderedDict "conv1", "pool1", "conv2", "pool2", "flatten",
      "fc1", "dropout1", "logits".
  """
  end_points = collections.OrderedDict()
  with tf.compat.v1.variable_scope(scope or "cnn_teacher",
                                   values=[images]) as sc:
    layers.check_num_classes(num_classes, sc.name)
    net = layers.conv2d(images, 32, 5, activation=tf.nn.relu, scope="conv1")
    end_points["conv1"] = net
    net = layers.max_pool2d(net, 2, scope="pool1")
    end_points["pool1"] = net
    net = layers.conv2d(net, 64, 5, activation=tf.nn.relu, scope="conv2")
    end_points["conv2"] = net
    net = layers.max_pool2d(net, 2, scope="pool2")
    end_points["pool2"] = net
    net = layers.flatten(net, scope="flatten")
    end_points["flatten"] = net
    net = layers.dense(net, 1024, activation=tf.nn.relu, scope="fc1")
    end_points["fc1"] = net
    net = layers.dropout(net, dropout_rate, is_training, scope="dropout1")
    end_points["dropout1"] = net
    logits = layers.dense(net, num_classes, scope="logits")
    end_points["logits"] = logits
  return logits, end_points


def cnn_student(images, num_classes, is_training=False, scope=None):
  """conv 3x3x16 -> pool -> conv 3x3x32 -> pool -> flatten -> fc.

  Convolutions are SAME with stride 1 and ReLU; 20,490 parameters for
  28x28x1 and 10 classes.

  Args:
    images: float32 [batch, H, W, C] in [0, 1].
    num_classes: int.
    is_training: Python bool (the network behaves the same either way).
    scope: variable scope (default "cnn_student").

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
    net = layers.conv2d(images, 16, 3, activation=tf.nn.relu, scope="conv1")
    end_points["conv1"] = net
    net = layers.max_pool2d(net, 2, scope="pool1")
    end_points["pool1"] = net
    net = layers.conv2d(net, 32, 3, activation=tf.nn.relu, scope="conv2")
    end_points["conv2"] = net
    net = layers.max_pool2d(net, 2, scope="pool2")
    end_points["pool2"] = net
    net = layers.flatten(net, scope="flatten")
    end_points["flatten"] = net
    logits = layers.dense(net, num_classes, scope="logits")
    end_points["logits"] = logits
  return logits, end_points
