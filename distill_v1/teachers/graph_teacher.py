"""A teacher from a legacy model file: frozen graph, SavedModel or meta graph.

The file goes through `safe_loader.load_frozen_graph` (the one loader that
checks a graph's ops before anything of it runs), so the teacher is a frozen
graph of constants: it has no variables, needs no initialisation and cannot
be trained. Our images (float32 [batch, H, W, C] in [0, 1]) are adapted to the
input the graph was exported with — scaled (e.g. to 0-255), transposed to
NCHW or flattened — and the graph's logits sit behind `tf.stop_gradient`.
"""

import collections
import math

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.teachers import checkpoint_teacher
from distill_v1.teachers import safe_loader

INPUT_LAYOUTS = ("nhwc", "nchw", "flat")


def _no_init(sess):
  del sess  # A frozen graph holds constants only.


def _input_dtype(frozen):
  """The dtype the graph's input node produces (float32 if it cannot tell)."""
  node_name = frozen.input_name.rsplit(":", 1)[0]
  for node in frozen.graph_def.node:
    if node.name == node_name and "dtype" in node.attr:
      return tf.dtypes.as_dtype(node.attr["dtype"].type)
  return tf.float32


def adapt_images(images, input_scale=1.0, input_layout="nhwc",
                 dtype=tf.float32):
  """Turns our images into the input a foreign graph expects.

  Args:
    images: float32 [batch, H, W, C] in [0, 1].
    input_scale: positive float the pixels are multiplied by (255 for a graph
      trained on 0-255 pixels).
    input_layout: "nhwc" (unchanged), "nchw" ([batch, C, H, W]) or "flat"
      ([batch, H * W * C], row-major as numpy's reshape).
    dtype: the graph's input dtype; integer types get rounded pixels.

  Returns:
    The adapted tensor.

  Raises:
    ConfigError: bad scale or layout, or images that are not [batch, H, W, C].
  """
  if (isinstance(input_scale, bool) or
      not isinstance(input_scale, (int, float)) or
      not math.isfinite(input_scale) or input_scale <= 0):
    raise errors.ConfigError("input_scale=%r is not a positive finite number"
                             % (input_scale,))
  if input_layout not in INPUT_LAYOUTS:
    raise errors.ConfigError("input_layout=%r is not one of %s" %
                             (input_layout, ", ".join(INPUT_LAYOUTS)))
  if images.shape.rank != 4:
    raise errors.ConfigError(
        "For tensor %s in scope input_adapter, rank %s is not the expected 4 "
        "([batch, H, W, C])" % (images.name, images.shape.rank))
  net = images
  if input_scale != 1.0:
    net = net * tf.constant(input_scale, dtype=images.dtype)
  if input_layout == "nchw":
    net = tf.transpose(net, [0, 3, 1, 2])
  elif input_layout == "flat":
    height, width, channels = images.shape.as_list()[1:]
    if None in (height, width, channels):
      size = tf.reduce_prod(tf.shape(images)[1:])
      net = tf.reshape(net, tf.stack([-1, size]))
    else:
      net = tf.reshape(net, [-1, height * width * channels])
  if dtype != net.dtype:
    if dtype.is_integer:
      net = tf.round(net)
    net = tf.cast(net, dtype)
  return net


def _check_shape(adapted, frozen, input_scale, input_layout):
  expected = frozen.input_shape
  actual = adapted.shape.as_list() if adapted.shape.rank is not None else None
  if expected is None or actual is None:
    return
  fits = len(expected) == len(actual) and all(
      e is None or a is None or e == a for e, a in zip(expected, actual))
  if not fits:
    raise errors.ConfigError(
        "teacher graph %s: input %s has shape %s, but the images adapted "
        "with input_layout=%r and input_scale=%g have shape %s; set "
        "--teacher_input_layout (nhwc, nchw, flat) to the layout the graph "
        "was exported with" % (frozen.source, frozen.input_name,
                               _shape_str(expected), input_layout,
                               input_scale, _shape_str(actual)))


def _shape_str(shape):
  return "[%s]" % ", ".join("None" if d is None else str(d) for d in shape)


def build_graph_teacher(images, path, input_name=None, output_name=None,
                        input_scale=1.0, input_layout="nhwc",
                        allow_unsafe_ops=False, scope="teacher"):
  """Builds a teacher from a frozen graph, SavedModel or meta checkpoint.

  Args:
    images: float32 [batch, H, W, C] in [0, 1].
    path: the model file (see `safe_loader.load_frozen_graph`).
    input_name: input tensor or signature key (default: the only one).
    output_name: logits tensor or signature key (default: `logits`, or the
      only output).
    input_scale: multiplies the [0, 1] pixels (255 for 0-255 graphs).
    input_layout: "nhwc", "nchw" or "flat" (see `adapt_images`).
    allow_unsafe_ops: load a graph with ops outside the allow-list; only for
      files you trust.
    scope: name scope of the imported graph, e.g. "teacher" or "teacher_1".

  Returns:
    TeacherHandle with logits [batch, num_classes] behind tf.stop_gradient,
    end_points {"input": adapted images, "logits": logits}, no variables, a
    no-op init_fn, checkpoint=path and model=the file's kind ("frozen",
    "saved_model" or "meta_checkpoint"), and `forward` importing the graph
    again on other images.

  Raises:
    ConfigError: bad adaptation arguments, names or shapes.
    DataError, CheckpointError, UnsafeGraphError: see `load_frozen_graph`.
  """
  frozen = safe_loader.load_frozen_graph(
      path, input_name=input_name,
      output_names=[output_name] if output_name else None,
      allow_unsafe_ops=allow_unsafe_ops)
  def import_on(images_in):
    with tf.compat.v1.name_scope(scope):
      with tf.compat.v1.name_scope("input_adapter"):
        adapted_in = adapt_images(images_in, input_scale, input_layout,
                                  dtype=_input_dtype(frozen))
      _check_shape(adapted_in, frozen, input_scale, input_layout)
      output = safe_loader.import_frozen_graph(frozen, adapted_in,
                                               name="graph")
      if output.shape.rank is not None and output.shape.rank != 2:
        raise errors.ConfigError(
            "teacher graph %s: output %s has shape %s, expected logits "
            "[batch, num_classes]; pass --teacher_output" %
            (path, frozen.output_name, output.shape))
      if output.dtype.is_floating and output.dtype != tf.float32:
        output = tf.cast(output, tf.float32)  # The losses work in float32.
      return adapted_in, tf.stop_gradient(output, name="logits")

  adapted, logits = import_on(images)
  end_points = collections.OrderedDict([("input", adapted),
                                        ("logits", logits)])
  return checkpoint_teacher.TeacherHandle(
      logits=logits, end_points=end_points, variables=[], init_fn=_no_init,
      checkpoint=path, model=frozen.kind,
      forward=lambda other_images: import_on(other_images)[1])
