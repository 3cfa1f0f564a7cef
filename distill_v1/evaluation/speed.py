"""What the machine can do: the matmul ceiling and the input pipeline's rate.

Training figures mean little without the machine's own ceiling beside them:
`matmul_gflops` times the MLPs' main product ([128, 784] x [784, 1200] by
default) in numpy and in a TensorFlow session loop, and
`input_examples_per_sec` times the graph-mode input pipeline alone (no
model), which must outrun every training loop by a wide margin.
"""

import time

import numpy as np

from distill_v1 import checkpoints
from distill_v1.compat import tf
from distill_v1.data import input_pipeline


def matmul_flops(m, k, n):
  """FLOPs of an [m, k] x [k, n] product: 2 per multiply-add."""
  return 2 * m * k * n


def matmul_gflops(backend, m=128, k=784, n=1200, repeats=50,
                  products_per_run=20, seed=0):
  """Median GFLOP/s of repeated [m, k] x [k, n] float32 products.

  Args:
    backend: "numpy" (the products one after another) or "tensorflow" (a
      tf.compat.v1.Session running `products_per_run` independent products
      per `sess.run`, which its executor may run side by side; the per-call
      overhead is amortised as in a training loop's step).
    m, k, n: the product's shape.
    repeats: timed runs; the median is returned.
    products_per_run: products per timed run.
    seed: seed of the random operands.

  Returns:
    dict: gflops (median), gflops_min, gflops_max, max_abs_error (of one
    product against numpy's, as a correctness check).
  """
  rng = np.random.RandomState(seed)
  a = rng.rand(m, k).astype(np.float32)
  b = rng.rand(k, n).astype(np.float32)
  flops = matmul_flops(m, k, n) * products_per_run
  reference = a @ b
  times = []
  if backend == "numpy":
    result = None
    for _ in range(repeats + 2):
      start = time.perf_counter()
      for _ in range(products_per_run):
        result = a @ b
      times.append(time.perf_counter() - start)
    error = float(np.max(np.abs(result - reference)))
  elif backend == "tensorflow":
    with tf.Graph().as_default() as graph:
      # Variables, not constants: Grappler would fold a constant product
      # away. Each product gets its own (tiny) offset so that none is merged
      # with another; the sum keeps all of them alive.
      a_t = tf.compat.v1.Variable(a)
      b_t = tf.compat.v1.Variable(b)
      products = [tf.matmul(a_t + 1e-30 * i, b_t)
                  for i in range(products_per_run)]
      total = tf.add_n(products)
      first = products[0]
      with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(total)
        for _ in range(repeats + 2):
          start = time.perf_counter()
          sess.run(total.op)
          times.append(time.perf_counter() - start)
        error = float(np.max(np.abs(sess.run(first) - reference)))
  else:
    raise ValueError("backend must be numpy or tensorflow, got %r" % backend)
  rates = sorted(flops / t / 1e9 for t in times[2:])
  return {"gflops": float(np.median(rates)), "gflops_min": rates[0],
          "gflops_max": rates[-1], "max_abs_error": error,
          "shape": [m, k, n], "repeats": repeats,
          "products_per_run": products_per_run}


def input_examples_per_sec(images, labels, batch_size=128, epochs=3, seed=0):
  """Examples/sec the graph-mode input pipeline delivers, with no model.

  Two figures: `examples_per_sec` pulls one batch per `sess.run`, as a
  training step does (so it includes the session call a step pays anyway);
  `examples_per_sec_in_graph` drains a whole epoch inside one `sess.run`
  (`Dataset.reduce`), the rate the pipeline itself produces batches at.

  Args:
    images: float32 [N, H, W, C].
    labels: int [N].
    batch_size: examples per batch.
    epochs: epochs timed (medians are returned).
    seed: shuffle seed.

  Returns:
    dict: examples_per_sec and examples_per_sec_in_graph (medians over
    epochs), per_epoch and per_epoch_in_graph (lists), examples_per_epoch
    (counted, must equal N).
  """
  with tf.Graph().as_default() as graph:
    handles = input_pipeline.in_memory_input(images, labels, batch_size,
                                             shuffle=True, seed=seed,
                                             name="bench")
    # Fetching a reduction forces the gather of every batch.
    fetch = [tf.reduce_sum(handles.images), tf.size(handles.labels)]

    def add_batch(total, batch):
      batch_images, batch_labels, _ = batch
      # The image sum keeps the gather of the images alive.
      return total + tf.cast(tf.size(batch_labels), tf.float64) + 0.0 * (
          tf.cast(tf.reduce_sum(batch_images[:, 0, 0, 0]), tf.float64))

    drain = handles.dataset.reduce(tf.constant(0.0, tf.float64), add_batch)
    with tf.compat.v1.Session(graph=graph) as sess:
      input_pipeline.initialize_data(sess, handles)
      rates, in_graph, counted = [], [], 0
      for epoch in range(epochs):
        input_pipeline.start_epoch(sess, handles, epoch)
        counted = 0
        start = time.perf_counter()
        while True:
          try:
            counted += int(sess.run(fetch)[1])
          except tf.errors.OutOfRangeError:
            break
        rates.append(counted / (time.perf_counter() - start))
        start = time.perf_counter()
        drained = sess.run(drain, feed_dict={handles.epoch: epoch})
        in_graph.append(drained / (time.perf_counter() - start))
        if int(drained) != counted:
          raise AssertionError("the drained epoch has %d examples, not %d" %
                               (drained, counted))
  return {"examples_per_sec": float(np.median(rates)), "per_epoch": rates,
          "examples_per_sec_in_graph": float(np.median(in_graph)),
          "per_epoch_in_graph": in_graph, "examples_per_epoch": counted}


def training_examples_per_sec(model, splits, epochs=2.0, batch_size=128,
                              learning_rate=0.05, model_options=None):
  """Training throughput of a model-zoo network, and its useful GFLOP/s.

  Trains `epochs` with plain SGD in a scratch directory through the one
  training loop (so the figure is what the binaries achieve).

  Args:
    model: model-zoo name.
    splits: datasets.DataSplits.
    epochs: >= 2 (the first epoch includes graph warm-up and is not quoted).
    batch_size: examples per step.
    learning_rate: SGD learning rate.
    model_options: network options.

  Returns:
    dict: examples_per_sec (median of the epochs after the first),
    per_epoch, flops_per_example (forward, 2 per multiply-add),
    training_gflops (3 x forward FLOPs per example x examples/sec).
  """
  import shutil  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  from distill_v1.evaluation import model_stats  # pylint: disable=g-import-not-at-top
  from distill_v1.models import nets_factory  # pylint: disable=g-import-not-at-top
  from distill_v1.training import loop  # pylint: disable=g-import-not-at-top
  network_fn = nets_factory.get_network_fn(model, **(model_options or {}))
  train_dir = tempfile.mkdtemp(prefix="distill_v1_speed_")
  try:
    metrics = loop.train(
        loop.classifier_model_fn(network_fn, splits.num_classes, model),
        splits,
        loop.TrainConfig(train_dir=train_dir, epochs=epochs,
                         batch_size=batch_size, learning_rate=learning_rate,
                         log_every_steps=1000000, summary_every_steps=1000000,
                         save_every_steps=0),
        checkpoints.make_model_spec(model, model_options, splits,
                                    splits.name),
        stream=_Silent())
  finally:
    shutil.rmtree(train_dir, ignore_errors=True)
  flops = model_stats.flops_per_example(
      lambda images, num_classes, is_training: network_fn(
          images, num_classes, is_training=is_training, scope=model),
      splits.image_shape, splits.num_classes)
  rate = metrics["examples_per_sec"]
  return {"examples_per_sec": rate,
          "per_epoch": [h["examples_per_sec"] for h in metrics["history"]],
          "flops_per_example": flops,
          "training_gflops": 3.0 * flops * rate / 1e9}


class _Silent(object):
  """A stream that drops the training loop's progress lines."""

  def write(self, text):
    del text

  def flush(self):
    pass
