"""Machine measurements: correct products, every example delivered."""

import numpy as np
import pytest

from distill_v1.data import input_pipeline
from distill_v1.compat import tf
from distill_v1.evaluation import speed
from tests import testing_utils


def test_matmul_flops_counts_two_per_multiply_add():
  assert speed.matmul_flops(128, 784, 1200) == 2 * 128 * 784 * 1200


@pytest.mark.parametrize("backend", ["numpy", "tensorflow"])
def test_matmul_gflops_computes_the_right_product(backend):
  result = speed.matmul_gflops(backend, m=8, k=16, n=4, repeats=3,
                               products_per_run=2)
  assert result["max_abs_error"] < 1e-4
  assert result["gflops_min"] <= result["gflops"] <= result["gflops_max"]
  assert result["shape"] == [8, 16, 4]


def test_matmul_gflops_refuses_an_unknown_backend():
  with pytest.raises(ValueError, match="backend"):
    speed.matmul_gflops("torch")


def test_input_pipeline_delivers_every_example_each_epoch():
  splits = testing_utils.tiny_splits(num_train=70, size=8)
  result = speed.input_examples_per_sec(
      splits.train_images, splits.train_labels, batch_size=16, epochs=2)
  assert result["examples_per_epoch"] == 70
  assert len(result["per_epoch"]) == 2 and result["examples_per_sec"] > 0
  # The in-graph drain counted the same 70 examples (it raises otherwise).
  assert len(result["per_epoch_in_graph"]) == 2
  assert result["examples_per_sec_in_graph"] > 0


def test_in_graph_drain_sees_the_batches_of_the_step_loop():
  splits = testing_utils.tiny_splits(num_train=70, size=8)
  with tf.Graph().as_default():
    handles = input_pipeline.in_memory_input(
        splits.train_images, splits.train_labels, 16, shuffle=True, seed=3,
        name="t")
    labels_sum = handles.dataset.reduce(
        tf.constant(0, tf.int64), lambda total, b: total + tf.reduce_sum(b[1]))
    with tf.compat.v1.Session() as sess:
      input_pipeline.initialize_data(sess, handles)
      input_pipeline.start_epoch(sess, handles, epoch=1)
      stepped = []
      while True:
        try:
          stepped.append(sess.run(handles.labels))
        except tf.errors.OutOfRangeError:
          break
      drained = sess.run(labels_sum, feed_dict={handles.epoch: 1})
  assert [len(b) for b in stepped] == [16, 16, 16, 16, 6]
  assert drained == int(np.sum(splits.train_labels))
  assert sorted(np.concatenate(stepped)) == sorted(splits.train_labels)


def test_training_throughput_counts_three_forward_passes():
  splits = testing_utils.tiny_splits(num_train=64, size=8)
  result = speed.training_examples_per_sec("cnn_student", splits, epochs=2,
                                           batch_size=16)
  assert len(result["per_epoch"]) == 2
  # conv 3x3x1x16 and 3x3x16x32 SAME on 8x8 and 4x4, dense 2*2*32 -> 4:
  # 2 FLOPs per multiply-add, plus bias adds and pooling.
  macs = 8 * 8 * 9 * 16 + 4 * 4 * 9 * 16 * 32 + 2 * 2 * 32 * 4
  assert result["flops_per_example"] >= 2 * macs
  np.testing.assert_allclose(
      result["training_gflops"],
      3.0 * result["flops_per_example"] * result["examples_per_sec"] / 1e9)
