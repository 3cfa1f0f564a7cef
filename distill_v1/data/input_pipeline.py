"""Graph-mode `tf.data` input over arrays decoded once and held in memory.

The arrays live in local (never checkpointed) variables filled once from a
placeholder, so they are neither baked into the GraphDef as constants nor fed
per step. A `tf.data` pipeline batches example indices, shuffled by a stateless
permutation keyed by (seed, epoch), and gathers each batch from the in-memory
variables inside the pipeline, so that `prefetch` has the next batches ready
while a step computes. Because the order depends only on seed and epoch,
a resumed run can start an epoch part-way (`skip_batches`) and see exactly the
batches an uninterrupted run would have seen. Per-example extras (cached
teacher logits) are gathered with the same indices; a `BatchFunction` extra
(frozen teachers) is computed from each batch's images inside the pipeline.

Usage:

  handles = input_pipeline.in_memory_input(x, y, batch_size=128, shuffle=True,
                                            seed=1, name="train")
  logits = net(handles.images, ...)
  ...
  input_pipeline.initialize_data(sess, handles)        # once per session
  input_pipeline.start_epoch(sess, handles, epoch=3)   # then run until
                                                       # OutOfRangeError
"""

import abc
import collections

import numpy as np

from distill_v1 import errors
from distill_v1.compat import tf

InputHandles = collections.namedtuple("InputHandles", [
    "images",  # float32 [batch, H, W, C] tensor (batch may be smaller last).
    "labels",  # int64 [batch] tensor.
    "iterator_initializer",  # op; needs `epoch` and `skip_batches` fed.
    "epoch",  # int64 scalar placeholder.
    "skip_batches",  # int64 scalar placeholder.
    "data_initializer",  # op filling the in-memory variables; needs data_feed.
    "data_feed",  # dict placeholder -> numpy array for data_initializer.
    "num_examples",  # int.
    "batches_per_epoch",  # int, ceil(num_examples / batch_size).
    # dict name -> tensor [batch, ...] gathered like the labels (or computed
    # from the batch's images by a BatchFunction).
    "extras",
    "dataset",  # the tf.data.Dataset of (images, labels, extras) batches.
])


class BatchFunction(abc.ABC):
  """A per-batch extra computed inside the pipeline from the batch's images.

  Passed as a value of `in_memory_input`'s `extras`, it runs in the
  pipeline's map function after the gather, so `prefetch` computes it for the
  next batches while a training step runs on this one (a frozen teacher's
  logits, for instance). Graph-building happens in two stages:

    * `setup(images)`, once, in the outer graph, on a float32
      [None, H, W, C] placeholder: creates what the function reads
      (variables, restore ops); its ops are never run on data;
    * `__call__(images)`, inside the map function, on the batch's float32
      [batch, H, W, C] images: returns a tensor [batch, ...]. It may read,
      never create, the variables made by `setup` (they are captured).
  """

  @abc.abstractmethod
  def setup(self, images):
    """Builds the function's state in the outer graph."""

  @abc.abstractmethod
  def __call__(self, images):
    """Returns the per-batch tensor [batch, ...] computed from `images`."""


def _check_arrays(images, labels, name):
  images = np.asarray(images)
  labels = np.asarray(labels)
  if images.ndim != 4:
    raise errors.DataError(
        "%s images have rank %d (shape %s), expected [N, H, W, C]" %
        (name, images.ndim, images.shape))
  if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
    raise errors.DataError(
        "%s labels have shape %s, expected [%d] to match the images" %
        (name, labels.shape, images.shape[0]))
  if images.shape[0] == 0:
    raise errors.DataError("%s set is empty" % name)
  return images.astype(np.float32, copy=False), labels.astype(np.int64,
                                                              copy=False)


def in_memory_input(images, labels, batch_size, shuffle, seed=0, name="input",
                    prefetch=2, extras=None):
  """Builds the input of one data split.

  Args:
    images: float32 array [N, H, W, C] in [0, 1].
    labels: integer array [N].
    batch_size: examples per batch; the last batch of an epoch may be smaller.
    shuffle: whether to permute the examples each epoch (stateless, keyed by
      `seed` and the epoch number).
    seed: Python int, the shuffle seed.
    name: name scope and variable prefix, e.g. "train" or "test".
    prefetch: batches to prefetch.
    extras: optional dict name -> array [N, ...] of per-example values (e.g.
      cached teacher logits), batched with the same indices as the images,
      or name -> `BatchFunction`, computed per batch in the pipeline.

  Returns:
    InputHandles.

  Raises:
    DataError: bad array shapes.
    ConfigError: batch_size < 1.
  """
  if batch_size < 1:
    raise errors.ConfigError("batch_size must be >= 1, got %d" % batch_size)
  images, labels = _check_arrays(images, labels, name)
  num_examples = images.shape[0]
  with tf.compat.v1.name_scope(name + "_input"):
    images_ph = tf.compat.v1.placeholder(tf.float32, images.shape,
                                         name="images_source")
    labels_ph = tf.compat.v1.placeholder(tf.int64, labels.shape,
                                         name="labels_source")
    # Local, non-trainable: never saved by a Saver, never part of var_list.
    images_var = tf.compat.v1.Variable(
        images_ph, trainable=False, name=name + "_images",
        collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES],
        validate_shape=True)
    labels_var = tf.compat.v1.Variable(
        labels_ph, trainable=False, name=name + "_labels",
        collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])
    data_feed = {images_ph: images, labels_ph: labels}
    extra_vars = {}
    batch_fns = {}
    for key, array in sorted((extras or {}).items()):
      if isinstance(array, BatchFunction):
        batch_fns[key] = array
        continue
      array = np.asarray(array)
      if array.shape[:1] != (num_examples,):
        raise errors.DataError(
            "%s extra %r has shape %s, expected %d rows" %
            (name, key, array.shape, num_examples))
      placeholder = tf.compat.v1.placeholder(
          tf.as_dtype(array.dtype), array.shape, name=key + "_source")
      extra_vars[key] = tf.compat.v1.Variable(
          placeholder, trainable=False, name="%s_%s" % (name, key),
          collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])
      data_feed[placeholder] = array
    data_initializer = tf.group(
        images_var.initializer, labels_var.initializer,
        *[v.initializer for v in extra_vars.values()])

    epoch = tf.compat.v1.placeholder_with_default(
        tf.constant(0, tf.int64), [], name="epoch")
    skip_batches = tf.compat.v1.placeholder_with_default(
        tf.constant(0, tf.int64), [], name="skip_batches")
    indices = tf.range(num_examples, dtype=tf.int64)
    if shuffle:
      indices = tf.random.experimental.stateless_shuffle(
          indices, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
    extra_keys = sorted(extra_vars)
    fn_keys = sorted(batch_fns)
    if fn_keys:
      # The functions' variables and restore ops live in the outer graph.
      setup_images = tf.compat.v1.placeholder(
          tf.float32, [None] + list(images.shape[1:]),
          name="batch_function_setup_images")
      for key in fn_keys:
        batch_fns[key].setup(setup_images)

    num_batches = -(-num_examples // batch_size)

    def gather(batch):
      # One dataset element per batch (a slice of the permutation), not per
      # example, so tf.data's per-element cost is paid once per batch; the
      # gather runs inside the pipeline, so prefetch has the next batches
      # ready while a step computes (the variables never change after
      # initialize_data).
      start = batch * batch_size
      batch_indices = indices[start:tf.minimum(start + batch_size,
                                               num_examples)]
      batch_images = tf.gather(images_var, batch_indices)
      return (batch_images,
              tf.gather(labels_var, batch_indices),
              tuple(tf.gather(extra_vars[k], batch_indices)
                    for k in extra_keys) +
              tuple(batch_fns[k](batch_images) for k in fn_keys))

    dataset = tf.data.Dataset.range(num_batches).skip(skip_batches)
    dataset = dataset.map(gather)
    if fn_keys:
      # tf.data runs its functions' kernels one thread each unless told
      # otherwise: a teacher's convolutions in the map took 75 ms a batch on
      # 2 cores against 45 ms in a session step (docs/benchmarks.md). 0 lifts
      # the cap, so they use the session's intra-op threads as in the step.
      options = tf.data.Options()
      options.threading.max_intra_op_parallelism = 0
      dataset = dataset.with_options(options)
    dataset = dataset.prefetch(prefetch)
    iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
    batch_images, batch_labels, gathered_extras = iterator.get_next()
    batch_images.set_shape([None] + list(images.shape[1:]))
    batch_labels.set_shape([None])
    batch_extras = {}
    for key, tensor in zip(extra_keys + fn_keys, gathered_extras):
      if key in extra_vars:
        tensor.set_shape([None] + list(extra_vars[key].shape[1:]))
      batch_extras[key] = tensor
  return InputHandles(
      images=batch_images,
      labels=batch_labels,
      iterator_initializer=iterator.initializer,
      epoch=epoch,
      skip_batches=skip_batches,
      data_initializer=data_initializer,
      data_feed=data_feed,
      num_examples=num_examples,
      batches_per_epoch=-(-num_examples // batch_size),
      extras=batch_extras,
      dataset=dataset)


def initialize_data(sess, handles):
  """Copies the arrays into the graph's memory; run once per session."""
  sess.run(handles.data_initializer, feed_dict=handles.data_feed)


def start_epoch(sess, handles, epoch=0, skip_batches=0):
  """Starts (or resumes part-way into) an epoch's sequence of batches."""
  sess.run(handles.iterator_initializer,
           feed_dict={handles.epoch: epoch,
                      handles.skip_batches: skip_batches})
