"""MobileNet v1 (Howard et al. 2017, arXiv:1704.04861), as in TF-Slim.

Layer for layer TF-Slim's `nets/mobilenet_v1.py`: a 3x3 convolution with 32
filters, then 13 depthwise-separable blocks (3x3 depthwise convolution and
1x1 pointwise convolution, each followed by batch norm and ReLU6), global
average pooling, dropout and a 1x1 convolution with bias producing the
logits. Convolutions followed by batch norm have no bias; batch norm has both
`beta` and `gamma` (center and scale, as slim's arg scope sets them).

Depths are multiplied by `width_multiplier` and rounded as slim does:
`max(int(depth * width_multiplier), min_depth)`. With 224x224x3 inputs and
1001 classes the trainable parameters (kernels, biases, gamma, beta) are
about 4.23M / 2.58M / 1.33M / 0.47M for widths 1.0 / 0.75 / 0.5 / 0.25
(published: 4.24M / 2.59M / 1.34M / 0.47M).

`layer_widths` ({"conv2d_0": 16, "conv2d_1_pointwise": 24, ...}) sets the
output channels of the stem and of pointwise convolutions by end point,
overriding the multiplier for those layers (each depthwise convolution keeps
the channels of its input); a structurally pruned copy is built that way.

Variables: `<scope>/conv2d_0/kernel`, `<scope>/conv2d_0/batch_norm/gamma`, ...,
`<scope>/conv2d_1_depthwise/depthwise_kernel`,
`<scope>/conv2d_1_pointwise/kernel`, ..., `<scope>/logits/{kernel,bias}`.
"""

import collections
import math
import numbers

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import cnn
from distill_v1.models import layers

Conv = collections.namedtuple("Conv", ["kernel", "stride", "depth"])
DepthSepConv = collections.namedtuple("DepthSepConv",
                                      ["kernel", "stride", "depth"])

# Slim's MOBILENETV1_CONV_DEFS: the stem and the 13 separable blocks, with the
# strides used for large (e.g. 224x224) inputs; output stride 32.
CONV_DEFS = (
    Conv(kernel=3, stride=2, depth=32),
    DepthSepConv(kernel=3, stride=1, depth=64),
    DepthSepConv(kernel=3, stride=2, depth=128),
    DepthSepConv(kernel=3, stride=1, depth=128),
    DepthSepConv(kernel=3, stride=2, depth=256),
    DepthSepConv(kernel=3, stride=1, depth=256),
    DepthSepConv(kernel=3, stride=2, depth=512),
    DepthSepConv(kernel=3, stride=1, depth=512),
    DepthSepConv(kernel=3, stride=1, depth=512),
    DepthSepConv(kernel=3, stride=1, depth=512),
    DepthSepConv(kernel=3, stride=1, depth=512),
    DepthSepConv(kernel=3, stride=1, depth=512),
    DepthSepConv(kernel=3, stride=2, depth=1024),
    DepthSepConv(kernel=3, stride=1, depth=1024),
)

# Inputs with a side below this use the small-input strides (layer_strides).
SMALL_INPUT_SIZE = 64
# The smallest final feature map the small-input strides aim for.
MIN_FEATURE_SIZE = 4


def layer_strides(height, width):
  """The stride of each entry of CONV_DEFS for an input of height x width.

  Large inputs (both sides >= 64) and inputs whose size is unknown when the
  graph is built use slim's strides (2 for the stem and for blocks 2, 4, 6
  and 12; the feature map shrinks 32 times, 224 -> 7).

  Small inputs (a side < 64, e.g. 28x28 Fashion-MNIST) would shrink to 1x1
  long before the last blocks, so the strides adapt: the stem uses stride 1,
  and the blocks' stride-2s are kept in order only while the smaller side
  after the halving, ceil(side / 2) with SAME padding, is still at least
  MIN_FEATURE_SIZE (4); the remaining ones become stride 1. For 28x28 that
  keeps blocks 2, 4 and 6 (28 -> 14 -> 7 -> 4) and drops block 12, leaving a
  4x4 final feature map; for 32x32 it is 32 -> 16 -> 8 -> 4.

  Args:
    height: int or None, the input height in pixels.
    width: int or None, the input width in pixels.

  Returns:
    A tuple of len(CONV_DEFS) ints, each 1 or 2.
  """
  strides = [conv_def.stride for conv_def in CONV_DEFS]
  if height is None or width is None or min(height, width) >= SMALL_INPUT_SIZE:
    return tuple(strides)
  strides[0] = 1
  side = min(height, width)
  for i in range(1, len(strides)):
    if strides[i] == 2:
      halved = int(math.ceil(side / 2.0))
      if halved >= MIN_FEATURE_SIZE:
        side = halved
      else:
        strides[i] = 1
  return tuple(strides)


def _conv_bn_relu6(net, depth, conv_def, stride, is_training, decay,
                   depthwise, scope):
  """conv (no bias) -> batch norm -> ReLU6 under variable scope `scope`."""
  with tf.compat.v1.variable_scope(scope, values=[net]) as sc:
    if depthwise:
      net = layers.depthwise_conv2d(net, conv_def.kernel, stride=stride,
                                    use_bias=False, scope=sc)
    else:
      net = layers.conv2d(net, depth, conv_def.kernel, stride=stride,
                          use_bias=False, scope=sc)
    net = layers.batch_norm(net, is_training, decay=decay, epsilon=1e-3,
                            center=True, scale=True, scope="batch_norm")
    return tf.nn.relu6(net)


def mobilenet_v1(images, num_classes, is_training=False, scope=None,
                 width_multiplier=1.0, dropout_rate=0.001, min_depth=8,
                 batch_norm_decay=0.99, layer_widths=None):
  """MobileNet v1 classifier.

  Args:
    images: float32 [batch, height, width, channels] in [0, 1]; height and
      width decide the strides (see `layer_strides`).
    num_classes: int, the number of logits.
    is_training: Python bool; batch norm uses batch statistics and adds its
      moving-average updates to UPDATE_OPS, dropout is active.
    scope: variable scope (default "mobilenet_v1").
    width_multiplier: float > 0, slim's `depth_multiplier` (alpha in the
      paper): 1.0, 0.75, 0.5 and 0.25 are the published widths.
    dropout_rate: float in [0, 1) before the logits (slim's keep_prob 0.999).
    min_depth: int, the smallest number of channels of any convolution.
    batch_norm_decay: float in [0, 1). Slim uses 0.9997 for ImageNet-length
      training; the default 0.99 lets the moving averages settle within the
      few thousand steps of a Fashion-MNIST run.
    layer_widths: None or a dict end point -> output channels for some of
      "conv2d_0" and "conv2d_<i>_pointwise" (i in 1..13); those layers ignore
      width_multiplier and min_depth.

  Returns:
    logits: [batch, num_classes].
    end_points: OrderedDict "conv2d_0", "conv2d_1_depthwise",
      "conv2d_1_pointwise", ..., "conv2d_13_pointwise", "avg_pool"
      ([batch, 1, 1, depth]), "dropout", "logits".

  Raises:
    ConfigError: invalid width_multiplier, min_depth, num_classes or images.
  """
  end_points = collections.OrderedDict()
  with tf.compat.v1.variable_scope(scope or "mobilenet_v1",
                                   values=[images]) as sc:
    layers.check_num_classes(num_classes, sc.name)
    if (isinstance(width_multiplier, bool) or
        not isinstance(width_multiplier, numbers.Real) or
        not width_multiplier > 0):
      raise errors.ConfigError(
          "In scope %s, width_multiplier=%r is not a number > 0" %
          (sc.name, width_multiplier))
    if (isinstance(min_depth, bool) or
        not isinstance(min_depth, numbers.Integral) or
        min_depth < 1):
      raise errors.ConfigError(
          "In scope %s, min_depth=%r is not a positive integer" %
          (sc.name, min_depth))
    if images.shape.ndims != 4:
      raise errors.ConfigError(
          "For tensor %s in scope %s, rank %s is not the expected 4" %
          (images.name, sc.name, images.shape.ndims))

    def depth(d):
      return max(int(d * width_multiplier), min_depth)

    widths = cnn.resolve_layer_widths(layer_widths, collections.OrderedDict(
        ("conv2d_%d" % i if isinstance(conv_def, Conv) else
         "conv2d_%d_pointwise" % i, depth(conv_def.depth))
        for i, conv_def in enumerate(CONV_DEFS)), sc.name)
    strides = layer_strides(images.shape[1], images.shape[2])
    net = images
    for i, (conv_def, stride) in enumerate(zip(CONV_DEFS, strides)):
      if isinstance(conv_def, Conv):
        end_point = "conv2d_%d" % i
        net = _conv_bn_relu6(net, widths[end_point], conv_def, stride,
                             is_training, batch_norm_decay, depthwise=False,
                             scope=end_point)
        end_points[end_point] = net
      else:
        end_point = "conv2d_%d_depthwise" % i
        net = _conv_bn_relu6(net, None, conv_def, stride, is_training,
                             batch_norm_decay, depthwise=True,
                             scope=end_point)
        end_points[end_point] = net
        end_point = "conv2d_%d_pointwise" % i
        net = _conv_bn_relu6(net, widths[end_point],
                             conv_def._replace(kernel=1), 1, is_training,
                             batch_norm_decay, depthwise=False,
                             scope=end_point)
        end_points[end_point] = net

    # A global mean equals slim's 7x7 VALID pool at 224x224 and works for
    # any input size.
    net = tf.reduce_mean(net, axis=[1, 2], keepdims=True, name="avg_pool")
    end_points["avg_pool"] = net
    net = layers.dropout(net, dropout_rate, is_training, scope="dropout")
    end_points["dropout"] = net
    logits = layers.conv2d(net, num_classes, 1, use_bias=True, scope="logits")
    logits = tf.squeeze(logits, axis=[1, 2], name="spatial_squeeze")
    end_points["logits"] = logits
  return logits, end_points
