"""Tiny, learnable data sets for the training and binary tests.

Every image holds a bright square whose position depends on its class (on a
grid of `ceil(sqrt(num_classes))` cells per side) over dim uniform noise, so
even a linear model separates the classes after a few steps.
"""

import math
import os

import numpy as np

from distill_v1.data import datasets
from distill_v1.data import idx

# The file names load_dataset looks for in a data_dir.
IDX_FILE_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def learnable_images(labels, size, num_classes, seed=0):
  """Returns uint8 images [N, size, size] with a class-dependent square.

  Args:
    labels: int array [N] in [0, num_classes).
    size: image height and width in pixels.
    num_classes: int, decides the grid of square positions.
    seed: seed of the background noise.
  """
  labels = np.asarray(labels)
  rng = np.random.RandomState(seed)
  images = rng.randint(0, 80, size=(len(labels), size, size)).astype(np.uint8)
  cells = int(math.ceil(math.sqrt(num_classes)))
  cell = size // cells
  side = max(cell - 1, 1)
  for i, label in enumerate(labels):
    row, col = divmod(int(label), cells)
    images[i, row * cell:row * cell + side, col * cell:col * cell + side] = (
        rng.randint(200, 256))
  return images


def tiny_splits(num_train=64, num_test=32, size=8, num_classes=4,
                num_validation=0, seed=0):
  """A DataSplits of learnable images float32 [N, size, size, 1] in [0, 1].

  Labels cycle through the classes (train, validation and test each hold
  every class about equally often).
  """

  def split(num, split_seed):
    labels = np.arange(num, dtype=np.int64) % num_classes
    labels = np.random.RandomState(split_seed).permutation(labels)
    images = learnable_images(labels, size, num_classes, seed=split_seed)
    return (images[..., np.newaxis].astype(np.float32) / np.float32(255),
            labels)

  train_images, train_labels = split(num_train, seed)
  validation_images, validation_labels = split(num_validation, seed + 1)
  test_images, test_labels = split(num_test, seed + 2)
  return datasets.DataSplits(
      name="tiny",
      train_images=train_images,
      train_labels=train_labels,
      validation_images=validation_images,
      validation_labels=validation_labels,
      test_images=test_images,
      test_labels=test_labels,
      num_classes=num_classes,
      class_names=tuple("class_%d" % i for i in range(num_classes)),
      image_shape=(size, size, 1))


def write_fashion_mnist_idx(folder, num_train=256, num_test=64, size=28,
                            num_classes=10, seed=0):
  """Writes the four gzip IDX files of a tiny Fashion-MNIST look-alike.

  Args:
    folder: created if missing.
    num_train, num_test: examples per split.
    size: image height and width.
    num_classes: labels are in [0, num_classes).
    seed: seed of labels and noise.

  Returns:
    (folder, dict split -> (uint8 images [N, size, size], uint8 labels [N])).
  """
  os.makedirs(folder, exist_ok=True)
  arrays = {}
  for split, num, split_seed in (("train", num_train, seed),
                                 ("t10k", num_test, seed + 1)):
    labels = np.random.RandomState(split_seed).permutation(
        np.arange(num) % num_classes).astype(np.uint8)
    images = learnable_images(labels, size, num_classes, seed=split_seed)
    idx.write_idx(os.path.join(folder, "%s-images-idx3-ubyte.gz" % split),
                  images)
    idx.write_idx(os.path.join(folder, "%s-labels-idx1-ubyte.gz" % split),
                  labels)
    arrays[split] = (images, labels)
  return folder, arrays


def train_source_model(train_dir, data_dir, epochs, model="cnn_student"):
  """Trains `model` on the IDX folder `data_dir` (batch 32, SGD 0.1).

  The checkpoint the fine-tuning binaries (prune, quantize) start from.

  Returns:
    train_dir.
  """
  # pylint: disable=g-import-not-at-top
  import io
  from distill_v1 import checkpoints
  from distill_v1.data import datasets
  from distill_v1.models import nets_factory
  from distill_v1.training import loop
  # pylint: enable=g-import-not-at-top
  splits = datasets.load_dataset("fashion_mnist", data_dir=data_dir)
  model_fn = loop.classifier_model_fn(nets_factory.get_network_fn(model),
                                      splits.num_classes, model)
  loop.train(model_fn, splits,
             loop.TrainConfig(train_dir, epochs=epochs, batch_size=32,
                              learning_rate=0.1, log_every_steps=100),
             checkpoints.make_model_spec(model, {}, splits, "fashion_mnist"),
             stream=io.StringIO())
  return train_dir
