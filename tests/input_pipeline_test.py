"""Tests of distill_v1.data.input_pipeline: order, resume, placement."""

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.data import input_pipeline

v1 = tf.compat.v1

NUM_EXAMPLES = 50
BATCH_SIZE = 8  # 7 batches: six of 8, the last of 2.


def _arrays(num=NUM_EXAMPLES):
  """Images whose pixels encode their index; labels are the index itself."""
  rng = np.random.RandomState(0)
  images = rng.uniform(size=(num, 3, 2, 2)).astype(np.float32)
  images[:, 0, 0, 0] = np.arange(num) / 100.0
  return images, np.arange(num, dtype=np.int64)


def _batches(sess, fetches):
  """Yields sess.run(fetches) until the epoch's iterator runs out."""
  while True:
    try:
      yield sess.run(fetches)
    except tf.errors.OutOfRangeError:
      return


def _epochs(epochs, shuffle=True, seed=3, skip_batches=0, batch_size=BATCH_SIZE,
            num=NUM_EXAMPLES):
  """Builds a fresh graph and session; returns [[(images, labels) per batch]
  per epoch] for the epochs listed."""
  images, labels = _arrays(num)
  result = []
  with tf.Graph().as_default():
    handles = input_pipeline.in_memory_input(
        images, labels, batch_size, shuffle=shuffle, seed=seed, name="train")
    with v1.Session() as sess:
      input_pipeline.initialize_data(sess, handles)
      for epoch in epochs:
        input_pipeline.start_epoch(sess, handles, epoch, skip_batches)
        result.append(list(_batches(sess, [handles.images, handles.labels])))
  return result


def _order(batches):
  return np.concatenate([labels for _, labels in batches])


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_example_once_per_epoch(shuffle):
  for batches in _epochs([0, 1, 2], shuffle=shuffle):
    order = _order(batches)
    np.testing.assert_array_equal(np.sort(order), np.arange(NUM_EXAMPLES))
    if not shuffle:
      np.testing.assert_array_equal(order, np.arange(NUM_EXAMPLES))


def test_batch_sizes_and_last_partial_batch():
  (batches,) = _epochs([0])
  assert [len(labels) for _, labels in batches] == [8] * 6 + [2]
  handles_batches = -(-NUM_EXAMPLES // BATCH_SIZE)
  assert len(batches) == handles_batches == 7


def test_images_match_numpy_at_yielded_positions():
  images, labels = _arrays()
  for batch_images, batch_labels in _epochs([4])[0]:
    assert batch_images.dtype == np.float32
    assert batch_labels.dtype == np.int64
    np.testing.assert_array_equal(batch_images, images[batch_labels])
    np.testing.assert_array_equal(batch_labels, labels[batch_labels])


def test_order_depends_only_on_seed_and_epoch():
  first = [_order(b) for b in _epochs([0, 1, 2], seed=3)]
  # A fresh graph and session, epochs visited in another order.
  again = [_order(b) for b in _epochs([2, 0, 1], seed=3)]
  np.testing.assert_array_equal(first[0], again[1])
  np.testing.assert_array_equal(first[1], again[2])
  np.testing.assert_array_equal(first[2], again[0])
  # Shuffled, and differently in each epoch and for another seed.
  assert not np.array_equal(first[0], np.arange(NUM_EXAMPLES))
  assert not np.array_equal(first[0], first[1])
  assert not np.array_equal(first[1], first[2])
  other_seed = _order(_epochs([0], seed=4)[0])
  assert not np.array_equal(first[0], other_seed)


@pytest.mark.parametrize("skip", [1, 3, 6])
def test_skip_batches_yields_the_rest_of_the_same_epoch(skip):
  (full,) = _epochs([5])
  (skipped,) = _epochs([5], skip_batches=skip)
  assert len(skipped) == len(full) - skip
  for (images, labels), (ref_images, ref_labels) in zip(skipped, full[skip:]):
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(images, ref_images)


def test_skipping_a_whole_epoch_yields_nothing():
  assert _epochs([0], skip_batches=7) == [[]]


def test_data_lives_in_local_variables_not_in_graph_def():
  images, labels = _arrays(2000)  # 2000 * 12 floats = 96,000 bytes.
  with tf.Graph().as_default() as graph:
    handles = input_pipeline.in_memory_input(images, labels, 16, shuffle=True,
                                             name="train")
    local_names = sorted(v.op.name for v in v1.local_variables())
    assert local_names == ["train_input/train_images",
                           "train_input/train_labels"]
    assert v1.global_variables() == []
    assert v1.trainable_variables() == []
    assert graph.as_graph_def().ByteSize() < 20000
    assert handles.num_examples == 2000
    assert handles.batches_per_epoch == 125
    assert handles.images.shape.as_list() == [None, 3, 2, 2]
    with v1.Session() as sess:
      input_pipeline.initialize_data(sess, handles)
      input_pipeline.start_epoch(sess, handles, epoch=0)
      batch_images, batch_labels = sess.run([handles.images, handles.labels])
  np.testing.assert_array_equal(batch_images, images[batch_labels])


def test_start_epoch_defaults_to_epoch_zero_without_skip():
  images, labels = _arrays()
  with tf.Graph().as_default():
    handles = input_pipeline.in_memory_input(images, labels, 64, shuffle=True,
                                             seed=3)
    with v1.Session() as sess:
      input_pipeline.initialize_data(sess, handles)
      input_pipeline.start_epoch(sess, handles)
      default_order = sess.run(handles.labels)
  np.testing.assert_array_equal(default_order, _order(_epochs([0])[0]))


@pytest.mark.parametrize("images_shape,labels_shape,pattern", [
    ((5, 4, 4), (5,), r"train images have rank 3 \(shape \(5, 4, 4\)\), "
     r"expected \[N, H, W, C\]"),
    ((5, 4, 4, 1), (4,), r"train labels have shape \(4,\), expected \[5\]"),
    ((5, 4, 4, 1), (5, 1), r"train labels have shape \(5, 1\)"),
    ((0, 4, 4, 1), (0,), r"train set is empty"),
])
def test_bad_shapes_are_data_errors(images_shape, labels_shape, pattern):
  with tf.Graph().as_default():
    with pytest.raises(errors.DataError, match=pattern):
      input_pipeline.in_memory_input(
          np.zeros(images_shape, np.float32), np.zeros(labels_shape, np.int64),
          4, shuffle=False, name="train")


def test_bad_batch_size_is_config_error():
  images, labels = _arrays()
  with tf.Graph().as_default():
    with pytest.raises(errors.ConfigError, match="batch_size must be >= 1"):
      input_pipeline.in_memory_input(images, labels, 0, shuffle=False)


def test_extras_are_gathered_with_the_same_indices():
  images, labels = _arrays()
  extras = {"logits": np.stack([labels * 2.0, -labels * 1.0], 1).astype(
      np.float32), "ids": labels.astype(np.int32) + 1000}
  with tf.Graph().as_default():
    handles = input_pipeline.in_memory_input(
        images, labels, BATCH_SIZE, shuffle=True, seed=3, extras=extras)
    assert sorted(handles.extras) == ["ids", "logits"]
    assert len(v1.local_variables()) == 4
    assert v1.global_variables() == []
    with v1.Session() as sess:
      input_pipeline.initialize_data(sess, handles)
      input_pipeline.start_epoch(sess, handles, epoch=1, skip_batches=2)
      count = 0
      for batch_labels, batch_extras in _batches(
          sess, [handles.labels, handles.extras]):
        count += 1
        np.testing.assert_array_equal(batch_extras["logits"],
                                      extras["logits"][batch_labels])
        np.testing.assert_array_equal(batch_extras["ids"],
                                      extras["ids"][batch_labels])
        assert batch_extras["ids"].dtype == np.int32
  assert count == 5


def test_extras_with_wrong_row_count_are_data_errors():
  images, labels = _arrays()
  with tf.Graph().as_default():
    with pytest.raises(errors.DataError,
                       match=r"train extra 'logits' has shape \(49, 10\), "
                       r"expected 50 rows"):
      input_pipeline.in_memory_input(
          images, labels, 4, shuffle=False, name="train",
          extras={"logits": np.zeros((49, 10), np.float32)})


class _ScaledSum(input_pipeline.BatchFunction):
  """`scale * sum of each image's pixels`, scale a variable made in setup."""

  def __init__(self):
    self.setup_shapes = []
    self.scale = None

  def setup(self, images):
    self.setup_shapes.append(images.shape.as_list())
    self.scale = v1.get_variable("scale", initializer=3.0, use_resource=True)

  def __call__(self, images):
    return self.scale * tf.reduce_sum(images, axis=[1, 2, 3])


def test_batch_functions_run_per_batch_inside_the_pipeline():
  images, labels = _arrays()
  fn = _ScaledSum()
  with tf.Graph().as_default():
    handles = input_pipeline.in_memory_input(
        images, labels, BATCH_SIZE, shuffle=True, seed=3,
        extras={"sum": fn, "ids": labels + 7})
    assert fn.setup_shapes == [[None, 3, 2, 2]]  # Set up once, outside.
    assert sorted(handles.extras) == ["ids", "sum"]
    with v1.Session() as sess:
      sess.run(fn.scale.initializer)
      input_pipeline.initialize_data(sess, handles)
      input_pipeline.start_epoch(sess, handles, epoch=2)
      sizes = []
      for batch_labels, batch_extras in _batches(
          sess, [handles.labels, handles.extras]):
        sizes.append(len(batch_labels))
        np.testing.assert_allclose(
            batch_extras["sum"], 3.0 * images[batch_labels].sum(axis=(1, 2, 3)),
            rtol=1e-5)
        np.testing.assert_array_equal(batch_extras["ids"], batch_labels + 7)
      # The variable is read, not copied: a new value shows in the next epoch.
      sess.run(fn.scale.assign(-1.0))
      input_pipeline.start_epoch(sess, handles, epoch=0)
      batch_labels, batch_sum = sess.run([handles.labels,
                                          handles.extras["sum"]])
      np.testing.assert_allclose(
          batch_sum, -images[batch_labels].sum(axis=(1, 2, 3)), rtol=1e-5)
  assert sizes == [8, 8, 8, 8, 8, 8, 2]


def test_batch_functions_lift_tf_datas_one_thread_cap_and_others_keep_it():
  # tf.data caps its functions' kernels at one thread unless the option is
  # set; a teacher in the map ran 1.7x slower under that cap.
  images, labels = _arrays()
  with tf.Graph().as_default():
    with_fn = input_pipeline.in_memory_input(
        images, labels, BATCH_SIZE, shuffle=False, name="a",
        extras={"sum": _ScaledSum()})
    plain = input_pipeline.in_memory_input(
        images, labels, BATCH_SIZE, shuffle=False, name="b")
    assert with_fn.dataset.options().threading.max_intra_op_parallelism == 0
    assert plain.dataset.options().threading.max_intra_op_parallelism is None
