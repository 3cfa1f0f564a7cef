"""Backward passes of Conv2D and MatMul written as faster forward ops.

TensorFlow's gradients of a convolution are `Conv2DBackpropInput` and
`Conv2DBackpropFilter`, and the input gradient of `y = x @ W` is
`dy @ W^T` (a MatMul with transpose_b). On a 2-core AVX2 CPU (oneDNN) these
run at a fraction of the speed of a forward convolution or a plain MatMul of
the same FLOPs: at batch 128, `cnn_teacher`'s 5x5x32->64 input gradient took
54 ms against 26 ms as a forward convolution, its filter gradient 38 ms
against 27 ms, and the 3136x1024 layer's input gradient 31 ms against 9 ms
(docs/benchmarks.md). Inside `scope(True)` the graph's Conv2D and MatMul ops
get these gradients instead, the same values up to float rounding:

  * Conv2D, stride 1, no dilation, NHWC, SAME padding and odd kernel sides:
      dx = conv2d(dy, reverse(W, [0, 1]) with in/out channels swapped, SAME)
      dW = for a 1x1 kernel, x^T @ dy over all pixels (one MatMul); else a
           VALID convolution of the padded x, transposed to
           [in_channels, H, W, batch], with dy transposed to
           [H, W, batch, out_channels] as the filter.
    Any other Conv2D gets TensorFlow's own two backprop ops.
  * MatMul without transposes: dx = (W @ dy^T)^T; dW = x^T @ dy (a MatMul,
    so `fused_sgd` still folds it into the update). Transposed MatMuls get
    the usual formulas.

The override is recorded in each op's `_gradient_op_type` attribute, so a
graph built here (a checkpoint's `.meta`) can be differentiated again only in
a process that imported this module. Inference graphs (export, evaluation
binaries) are built outside the scope and carry nothing.
"""

import contextlib

from distill_v1.compat import tf

CONV2D_GRADIENT = "DistillV1FastConv2D"
MATMUL_GRADIENT = "DistillV1FastMatMul"


def _attr_str(op, name):
  value = op.get_attr(name)
  return value.decode() if isinstance(value, bytes) else value


def conv2d_fast_path_applies(op):
  """Whether `op` (a Conv2D) qualifies for the forward-op gradients."""
  kernel_shape = op.inputs[1].shape
  return (list(op.get_attr("strides")) == [1, 1, 1, 1] and
          list(op.get_attr("dilations")) == [1, 1, 1, 1] and
          _attr_str(op, "padding") == "SAME" and
          _attr_str(op, "data_format") == "NHWC" and
          kernel_shape.rank == 4 and
          kernel_shape[0] is not None and kernel_shape[1] is not None and
          kernel_shape[0] % 2 == 1 and kernel_shape[1] % 2 == 1)


def conv2d_input_gradient(dy, kernel):
  """dL/dx of a stride-1 SAME conv with an odd kernel, as a forward conv.

  Args:
    dy: [batch, H, W, out_channels], the gradient of the conv's output.
    kernel: [kh, kw, in_channels, out_channels], kh and kw odd.

  Returns:
    [batch, H, W, in_channels].
  """
  flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
  return tf.nn.conv2d(dy, flipped, strides=1, padding="SAME")


def conv2d_filter_gradient(x, dy, kernel_shape):
  """dL/dkernel of a stride-1 SAME conv with an odd kernel, as a forward op.

  Args:
    x: [batch, H, W, in_channels], the conv's input.
    dy: [batch, H, W, out_channels], the gradient of its output.
    kernel_shape: static [kh, kw, in_channels, out_channels].

  Returns:
    [kh, kw, in_channels, out_channels].
  """
  kh, kw, in_channels, out_channels = [int(d) for d in kernel_shape]
  if kh == 1 and kw == 1:
    product = tf.linalg.matmul(tf.reshape(x, [-1, in_channels]),
                               tf.reshape(dy, [-1, out_channels]),
                               transpose_a=True)
    return tf.reshape(product, [1, 1, in_channels, out_channels])
  ph, pw = (kh - 1) // 2, (kw - 1) // 2
  padded = tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
  # Batch <-> channels: the images' channels become the batch, the batch
  # the channels that the filter (dy over all pixels) sums over.
  as_batch = tf.transpose(padded, [3, 1, 2, 0])
  as_filter = tf.transpose(dy, [1, 2, 0, 3])
  out = tf.nn.conv2d(as_batch, as_filter, strides=1, padding="VALID")
  return tf.transpose(out, [1, 2, 0, 3])  # [in, kh, kw, out] -> HWIO


@tf.RegisterGradient(CONV2D_GRADIENT)
def _conv2d_gradient(op, grad):
  """Gradients of Conv2D: forward ops where they apply, else the backprops."""
  x, kernel = op.inputs
  if conv2d_fast_path_applies(op):
    return (conv2d_input_gradient(grad, kernel),
            conv2d_filter_gradient(x, grad, kernel.shape))
  attrs = dict(strides=op.get_attr("strides"),
               padding=op.get_attr("padding"),
               explicit_paddings=op.get_attr("explicit_paddings"),
               use_cudnn_on_gpu=op.get_attr("use_cudnn_on_gpu"),
               data_format=op.get_attr("data_format"),
               dilations=op.get_attr("dilations"))
  return (tf.raw_ops.Conv2DBackpropInput(
              input_sizes=tf.shape(x), filter=kernel, out_backprop=grad,
              **attrs),
          tf.raw_ops.Conv2DBackpropFilter(
              input=x, filter_sizes=tf.shape(kernel), out_backprop=grad,
              **attrs))


@tf.RegisterGradient(MATMUL_GRADIENT)
def _matmul_gradient(op, grad):
  """Gradients of MatMul; the untransposed case avoids `dy @ W^T`."""
  a, b = op.inputs
  transpose_a = op.get_attr("transpose_a")
  transpose_b = op.get_attr("transpose_b")
  matmul = tf.linalg.matmul
  if not transpose_a and not transpose_b:
    return (tf.transpose(matmul(b, grad, transpose_b=True)),
            matmul(a, grad, transpose_a=True))
  if not transpose_a:  # a @ b^T
    return matmul(grad, b), matmul(grad, a, transpose_a=True)
  if not transpose_b:  # a^T @ b
    return matmul(b, grad, transpose_b=True), matmul(a, grad)
  return (matmul(b, grad, transpose_a=True, transpose_b=True),
          matmul(grad, a, transpose_a=True, transpose_b=True))


@contextlib.contextmanager
def scope(enabled=True, graph=None):
  """Ops of type Conv2D and MatMul created inside get the gradients above.

  Args:
    enabled: False makes this a no-op (TensorFlow's own gradients).
    graph: the graph whose ops are built (default: the default graph).

  Yields:
    None.
  """
  if not enabled:
    yield
    return
  graph = graph or tf.compat.v1.get_default_graph()
  with graph.gradient_override_map({"Conv2D": CONV2D_GRADIENT,
                                    "MatMul": MATMUL_GRADIENT}):
    yield
