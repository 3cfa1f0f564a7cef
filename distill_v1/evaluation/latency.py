"""Inference latency: wall-clock milliseconds of `sess.run` at a batch size.

The input is random float32 in [0, 1] made once before timing and fed through
`feed_dict`, as a serving loop would; the first `warmup` runs (graph
optimisation, memory allocation) are not timed. Figures are medians with the
10th and 90th percentiles, because single runs on a shared CPU are noisy.
Timings belong in reports and benchmarks, never in test assertions.

Usage:

  ms = latency.latency_ms(nets_factory.get_network_fn("cnn_student"),
                          "/tmp/train/model.ckpt-4690", (28, 28, 1), 10)
  # {"batch_1": 0.21, "batch_128": 3.4}
"""

import time

import numpy as np

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.evaluation import model_stats
from distill_v1.models import nets_factory

DEFAULT_WARMUP = 10
DEFAULT_REPEATS = 50
DEFAULT_BATCH_SIZES = (1, 128)


def random_images(image_shape, batch_size, seed=0):
  """float32 [batch_size, H, W, C] uniform in [0, 1)."""
  rng = np.random.RandomState(seed)
  return rng.uniform(size=[batch_size] + list(image_shape)).astype(np.float32)


def _feed_builder_for(images, seed):
  """A `batch_size -> feed_dict` function feeding random data to `images`."""
  shape = images.shape
  if shape.rank is None or not shape[1:].is_fully_defined():
    raise errors.ConfigError(
        "For tensor %s, shape %s is not the expected [batch, H, W, C] with "
        "H, W, C known" % (images.name, shape))

  def build(batch_size):
    return {images: random_images(shape[1:].as_list(), batch_size, seed)}

  return build


def measure_latency(sess, fetches, inputs, batch_size, warmup=DEFAULT_WARMUP,
                    repeats=DEFAULT_REPEATS, seed=0):
  """Times `sess.run(fetches, feed_dict)` at one batch size.

  Args:
    sess: a tf.compat.v1.Session with the model's variables ready.
    fetches: what to run, e.g. the logits tensor [batch, num_classes].
    inputs: the input placeholder (float32 [None, H, W, C]; fed with random
      data in [0, 1]), or a function `batch_size -> feed_dict`.
    batch_size: examples per run.
    warmup: untimed runs first.
    repeats: timed runs.
    seed: seed of the random input.

  Returns:
    A dict: `median_ms`, `p10_ms`, `p90_ms`, `mean_ms`, `min_ms`
    (milliseconds per `sess.run` of the whole batch), `batch_size`, `repeats`.

  Raises:
    ConfigError: batch_size or repeats < 1, warmup < 0, or `inputs` has an
      unknown example shape.
  """
  if batch_size < 1:
    raise errors.ConfigError("batch_size is %r, expected >= 1" % batch_size)
  if repeats < 1:
    raise errors.ConfigError("repeats is %r, expected >= 1" % repeats)
  if warmup < 0:
    raise errors.ConfigError("warmup is %r, expected >= 0" % warmup)
  if callable(inputs):
    feed_dict = inputs(batch_size)
  else:
    feed_dict = _feed_builder_for(inputs, seed)(batch_size)
  for _ in range(warmup):
    sess.run(fetches, feed_dict=feed_dict)
  times_ms = np.empty([repeats], dtype=np.float64)
  for i in range(repeats):
    start = time.perf_counter()
    sess.run(fetches, feed_dict=feed_dict)
    times_ms[i] = (time.perf_counter() - start) * 1000.0
  return {
      "median_ms": float(np.median(times_ms)),
      "p10_ms": float(np.percentile(times_ms, 10)),
      "p90_ms": float(np.percentile(times_ms, 90)),
      "mean_ms": float(np.mean(times_ms)),
      "min_ms": float(np.min(times_ms)),
      "batch_size": int(batch_size),
      "repeats": int(repeats),
  }


def latency_key(batch_size):
  """The key of a batch size in latency dicts: `batch_1`, `batch_128`."""
  return "batch_%d" % batch_size


def latency_ms(network_fn, checkpoint_prefix, image_shape, num_classes,
               batch_sizes=DEFAULT_BATCH_SIZES, warmup=DEFAULT_WARMUP,
               repeats=DEFAULT_REPEATS, scope=None, seed=0,
               session_config=None):
  """Median inference latency of a network at several batch sizes.

  `latency_stats` with only the medians: {"batch_<n>": median ms}.
  """
  stats = latency_stats(network_fn, checkpoint_prefix, image_shape,
                        num_classes, batch_sizes=batch_sizes, warmup=warmup,
                        repeats=repeats, scope=scope, seed=seed,
                        session_config=session_config)
  return {key: value["median_ms"] for key, value in stats.items()}


def latency_stats(network_fn, checkpoint_prefix, image_shape, num_classes,
                  batch_sizes=DEFAULT_BATCH_SIZES, warmup=DEFAULT_WARMUP,
                  repeats=DEFAULT_REPEATS, scope=None, seed=0,
                  session_config=None):
  """Inference latency of a network at several batch sizes, with spread.

  Builds an inference graph (`is_training=False`) on a float32 placeholder
  [None, H, W, C], restores the checkpoint (or initializes the variables when
  `checkpoint_prefix` is None: latency does not depend on the values), and
  times the logits.

  Args:
    network_fn: `fn(images, num_classes, is_training=False, scope=None) ->
      (logits, end_points)`.
    checkpoint_prefix: checkpoint to restore the network's variables from, or
      None.
    image_shape: (H, W, C).
    num_classes: number of classes.
    batch_sizes: batch sizes to time.
    warmup: untimed runs per batch size.
    repeats: timed runs per batch size.
    scope: variable scope passed to `network_fn` (for a checkpoint written
      under another scope); None keeps the network's default.
    seed: seed of the random input and of the graph.
    session_config: optional tf.compat.v1.ConfigProto.

  Returns:
    {"batch_<n>": measure_latency's dict (median_ms, p10_ms, p90_ms, ...,
    milliseconds per `sess.run` of the whole batch)} for each batch size.

  Raises:
    CheckpointError: the checkpoint does not fit the network.
    ConfigError: bad sizes.
  """
  image_shape = nets_factory.check_image_shape(image_shape)
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.set_random_seed(seed)
    images = tf.compat.v1.placeholder(
        tf.float32, [None] + list(image_shape), name="images")
    if scope is None:
      logits, _ = network_fn(images, num_classes, is_training=False)
    else:
      logits, _ = network_fn(images, num_classes, is_training=False,
                             scope=scope)
    variables = model_stats.scope_variables(scope)
    init_op = (tf.compat.v1.global_variables_initializer()
               if checkpoint_prefix is None else None)
    with tf.compat.v1.Session(graph=graph, config=session_config) as sess:
      if checkpoint_prefix is None:
        sess.run(init_op)
      else:
        checkpoints.restore_variables(sess, checkpoint_prefix, variables,
                                      model_name=scope)
      graph.finalize()
      return {
          latency_key(b): measure_latency(
              sess, logits, images, b, warmup=warmup, repeats=repeats,
              seed=seed) for b in batch_sizes
      }
