"""Keras 3 peer of distill_v1, for side-by-side figures (BENCHMARK.md).

Reimplements the peer that BENCHMARK.md's "Peer figures" were measured with:
the four reference models as Keras 3 models, the keras.io knowledge
distillation recipe (a `keras.Model` subclass `Distiller` whose
`compute_loss` mixes the hard-label loss with KL divergence times T**2),
training with `model.fit` on the real Fashion-MNIST, and inference/TFLite
measurements. It is the only place in the project that uses Keras; the
library (`distill_v1`) never imports it.

One deliberate difference from the published recipe: the keras.io Keras 3
`Distiller` relies on the default `train_step`, which differentiates the loss
with respect to `self.trainable_weights` -- and those include the teacher's,
because the teacher is a tracked sub-model and its logits enter the KL term.
The published recipe therefore also updates the teacher with the student's
optimizer at every step. Here the teacher is frozen (`trainable = False`,
and its logits go through `stop_gradient`), as distillation intends;
`Distiller(..., freeze_teacher=False)` reproduces the published behaviour.

Usage:

  python benchmarks/keras_peer.py --family=cnn --phase=all \
      --output_json=/work/runs/keras_peer_cnn.json

Phases: `teacher` trains the family's teacher; `student` trains the student
from scratch; `distill` distills the student from a teacher (loaded with
--teacher_weights, or trained first with the --teacher_* flags); `all` runs
teacher (unless --teacher_weights is given), student and distill. The
--epochs/--learning_rate/--optimizer/... flags apply to the phase named by
--phase (to both student phases for `all`); left unset they follow the
protocol's recipe for that phase (STUDENT_RECIPES, TEACHER_RECIPES).

`--family=mobilenet` has one model, `mobilenet_v1` at --width_multiplier
(the toolkit's network layer for layer), trained by `--phase=teacher`: the
peer of the speed benchmark's mobilenet_v1 training and latency rows.
"""

import contextlib
import functools
import io
import math
import os
import resource
import sys
import time
import warnings

import numpy as np

from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf
from distill_v1.data import datasets

import keras  # pylint: disable=g-import-not-at-top,g-bad-import-order
from keras import layers  # pylint: disable=g-bad-import-order
from keras import ops  # pylint: disable=g-bad-import-order

BATCH_SIZE = 128
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)

# BENCHMARK.md's reference models and their parameter counts.
EXPECTED_PARAMS = {
    'mlp_teacher': 2395210,
    'mlp_student': 1276810,
    'cnn_teacher': 3274634,
    'cnn_student': 20490,
}
# mobilenet_v1's count depends on its width; build_model checks it against
# the toolkit's own network (toolkit_trainable_params).
MODEL_NAMES = tuple(sorted(EXPECTED_PARAMS)) + ('mobilenet_v1',)
FAMILIES = {
    'mlp': ('mlp_teacher', 'mlp_student'),
    'cnn': ('cnn_teacher', 'cnn_student'),
    # MobileNet has no student in BENCHMARK.md: --phase=teacher trains it
    # (the speed benchmark's training and latency rows).
    'mobilenet': ('mobilenet_v1', None),
}
PHASES = ('teacher', 'student', 'distill', 'all')
OPTIMIZERS = ('sgd', 'momentum')
LR_SCHEDULES = ('none', 'cosine')

# The article's student recipe (BENCHMARK.md, "Students"): plain SGD.
STUDENT_RECIPES = {
    'mlp': dict(optimizer='sgd', learning_rate=0.1, epochs=5,
                lr_schedule='none', weight_decay=0.0),
    'cnn': dict(optimizer='sgd', learning_rate=0.05, epochs=10,
                lr_schedule='none', weight_decay=0.0),
}
# The toolkit's teacher recipes (benchmarks/train_teachers.sh), so that the
# peer's teacher is trained the way the toolkit's is.
TEACHER_RECIPES = {
    'mlp': dict(optimizer='momentum', learning_rate=0.05, epochs=40,
                lr_schedule='cosine', weight_decay=5e-5),
    'cnn': dict(optimizer='momentum', learning_rate=0.02, epochs=30,
                lr_schedule='cosine', weight_decay=5e-4),
    # benchmarks/lightweight_benchmark.py's mobilenet_v1 recipe.
    'mobilenet': dict(optimizer='momentum', learning_rate=0.02, epochs=15,
                      lr_schedule='cosine', weight_decay=5e-4),
}
DEFAULT_TEMPERATURE = 4.0
DEFAULT_ALPHA = 0.1


# ---------------------------------------------------------------------------
# Models.


def _mlp(hidden_units, dropout_rate, regularizer, name):
  model_layers = [keras.Input(IMAGE_SHAPE), layers.Flatten()]
  for units in hidden_units:
    model_layers.append(layers.Dense(units, activation='relu',
                                     kernel_regularizer=regularizer))
    if dropout_rate:
      model_layers.append(layers.Dropout(dropout_rate))
  # float32 logits also under a mixed-precision policy (keras.io's guide).
  model_layers.append(layers.Dense(NUM_CLASSES, dtype='float32',
                                   kernel_regularizer=regularizer))
  return keras.Sequential(model_layers, name=name)


def _cnn(filters, kernel_size, dense_units, regularizer, name):
  model_layers = [keras.Input(IMAGE_SHAPE)]
  for num_filters in filters:
    model_layers += [
        layers.Conv2D(num_filters, kernel_size, padding='same',
                      activation='relu', kernel_regularizer=regularizer),
        layers.MaxPooling2D(2),
    ]
  model_layers.append(layers.Flatten())
  if dense_units:
    model_layers += [
        layers.Dense(dense_units, activation='relu',
                     kernel_regularizer=regularizer),
        layers.Dropout(0.5),
    ]
  # float32 logits also under a mixed-precision policy (keras.io's guide).
  model_layers.append(layers.Dense(NUM_CLASSES, dtype='float32',
                                   kernel_regularizer=regularizer))
  return keras.Sequential(model_layers, name=name)


def _mobilenet_v1(width_multiplier, regularizer, name, dropout_rate=0.001,
                  min_depth=8, batch_norm_momentum=0.99):
  """distill_v1.models.mobilenet_v1 layer for layer, in Keras layers.

  The same CONV_DEFS, widths (`max(int(depth * width), min_depth)`), strides
  adapted to 28x28 (`layer_strides`), SAME padding, batch norm (momentum
  0.99, epsilon 1e-3, center and scale) and ReLU6 after every convolution,
  global average pooling, dropout and a 1x1 convolution with bias.
  """
  # pylint: disable=g-import-not-at-top
  from distill_v1.models import mobilenet_v1 as toolkit_mobilenet
  # pylint: enable=g-import-not-at-top
  strides = toolkit_mobilenet.layer_strides(*IMAGE_SHAPE[:2])
  model_layers = [keras.Input(IMAGE_SHAPE)]

  def bn_relu6():
    return [layers.BatchNormalization(momentum=batch_norm_momentum,
                                      epsilon=1e-3),
            layers.ReLU(max_value=6.0)]

  for conv_def, stride in zip(toolkit_mobilenet.CONV_DEFS, strides):
    depth = max(int(conv_def.depth * width_multiplier), min_depth)
    if isinstance(conv_def, toolkit_mobilenet.Conv):
      model_layers.append(layers.Conv2D(
          depth, conv_def.kernel, strides=stride, padding='same',
          use_bias=False, kernel_regularizer=regularizer))
      model_layers += bn_relu6()
    else:
      model_layers.append(layers.DepthwiseConv2D(
          conv_def.kernel, strides=stride, padding='same', use_bias=False,
          depthwise_regularizer=regularizer))
      model_layers += bn_relu6()
      model_layers.append(layers.Conv2D(
          depth, 1, padding='same', use_bias=False,
          kernel_regularizer=regularizer))
      model_layers += bn_relu6()
  model_layers += [
      layers.GlobalAveragePooling2D(keepdims=True),
      layers.Dropout(dropout_rate),
      layers.Conv2D(NUM_CLASSES, 1, use_bias=True, dtype='float32',
                    kernel_regularizer=regularizer),
      layers.Flatten(dtype='float32'),
  ]
  return keras.Sequential(model_layers, name=name)


def toolkit_trainable_params(name, **options):
  """Trainable parameters of the toolkit's `name` for 28x28x1, 10 classes."""
  # pylint: disable=g-import-not-at-top
  from distill_v1.models import nets_factory
  # pylint: enable=g-import-not-at-top
  with tf.Graph().as_default():
    nets_factory.get_network_fn(name, **options)(
        tf.compat.v1.placeholder(tf.float32, (None,) + IMAGE_SHAPE),
        NUM_CLASSES, is_training=True)
    return int(sum(np.prod(v.shape.as_list())
                   for v in tf.compat.v1.trainable_variables()))


def build_model(name, weight_decay=0.0, width_multiplier=1.0):
  """Builds one of BENCHMARK.md's reference models as a Keras 3 model.

  Args:
    name: one of MODEL_NAMES.
    weight_decay: coefficient of the L2 penalty on kernels (not biases),
      added to the loss as `weight_decay * sum(kernel**2) / 2` -- the same
      penalty as the toolkit's `weight_decay * tf.nn.l2_loss(kernel)`.
    width_multiplier: mobilenet_v1 only, as the toolkit's
      --width_multiplier.

  Returns:
    A built `keras.Sequential` taking float32 images [batch, 28, 28, 1]
    in [0, 1] (the MLPs flatten them inside) and returning logits
    [batch, 10].

  Raises:
    ConfigError: unknown name, or the parameter count is not the reference.
  """
  if name not in MODEL_NAMES:
    raise errors.ConfigError('model %r is not one of %s'
                             % (name, ', '.join(MODEL_NAMES)))
  if weight_decay < 0:
    raise errors.ConfigError('weight_decay must be >= 0, got %r'
                             % (weight_decay,))
  regularizer = keras.regularizers.L2(weight_decay / 2.0) if (
      weight_decay) else None
  if name == 'mlp_teacher':
    model = _mlp((1200, 1200), 0.5, regularizer, name)
  elif name == 'mlp_student':
    model = _mlp((800, 800), 0.0, regularizer, name)
  elif name == 'cnn_teacher':
    model = _cnn((32, 64), 5, 1024, regularizer, name)
  elif name == 'cnn_student':
    model = _cnn((16, 32), 3, 0, regularizer, name)
  else:
    # The toolkit's network checks the width (ConfigError) and gives the
    # count to match: trainable ones, as Keras also counts batch norm's
    # moving statistics.
    expected = toolkit_trainable_params(name,
                                        width_multiplier=width_multiplier)
    model = _mobilenet_v1(width_multiplier, regularizer, name)
    count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    if count != expected:
      raise errors.ConfigError(
          'Keras model %s has %d trainable parameters, the toolkit\'s %d'
          % (name, count, expected))
    return model
  count = model.count_params()
  if count != EXPECTED_PARAMS[name]:
    raise errors.ConfigError(
        'Keras model %s has %d parameters, expected %d (BENCHMARK.md)'
        % (name, count, EXPECTED_PARAMS[name]))
  return model


# ---------------------------------------------------------------------------
# Distillation: the keras.io recipe.


class Distiller(keras.Model):
  """The keras.io knowledge-distillation model, with a frozen teacher.

  `call` runs the student, so `fit`'s default `train_step` differentiates
  `compute_loss` with respect to the student's weights only:

    loss = alpha * student_loss_fn(y, s)
         + (1 - alpha) * distillation_loss_fn(softmax(t / T), softmax(s / T))
           * T**2

  for teacher logits t and student logits s, both [batch, num_classes].
  """

  def __init__(self, student, teacher, freeze_teacher=True, **kwargs):
    """Wraps `student` (trained) and `teacher` (fixed, unless told).

    Args:
      student: keras.Model, images -> logits [batch, num_classes].
      teacher: keras.Model, images -> logits [batch, num_classes].
      freeze_teacher: if False, behave like the published recipe, whose
        default `train_step` also updates the teacher (see module docstring).
      **kwargs: passed to keras.Model.
    """
    super().__init__(**kwargs)
    self.student = student
    self.teacher = teacher
    self.freeze_teacher = freeze_teacher
    if freeze_teacher:
      teacher.trainable = False

  def compile(self, optimizer, metrics, student_loss_fn,
              distillation_loss_fn=None, alpha=DEFAULT_ALPHA,
              temperature=DEFAULT_TEMPERATURE, **kwargs):
    """Configures the distiller.

    Args:
      optimizer: Keras optimizer for the student's weights.
      metrics: Keras metrics of the student's logits against the labels.
      student_loss_fn: loss(labels, student logits), the hard-label loss.
      distillation_loss_fn: loss(teacher probabilities, student
        probabilities), both softened by `temperature`; defaults to
        keras.losses.KLDivergence().
      alpha: weight of the hard-label loss; 1 - alpha weighs the soft loss.
      temperature: softmax temperature T > 0.
      **kwargs: passed to keras.Model.compile.
    """
    if not 0 <= alpha <= 1:
      raise errors.ConfigError('alpha must be in [0, 1], got %r' % (alpha,))
    if not temperature > 0:
      raise errors.ConfigError('temperature must be > 0, got %r'
                               % (temperature,))
    super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
    self.student_loss_fn = student_loss_fn
    self.distillation_loss_fn = (distillation_loss_fn or
                                 keras.losses.KLDivergence())
    self.alpha = float(alpha)
    self.temperature = float(temperature)

  def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                   training=True):
    """Returns the scalar distillation loss of one batch.

    Args:
      x: images [batch, 28, 28, 1].
      y: int labels [batch].
      y_pred: student logits [batch, num_classes] (from `call`).
      sample_weight: unused, as in the recipe.
      training: unused; the teacher always runs in inference mode.
    """
    del sample_weight, training
    teacher_logits = self.teacher(x, training=False)
    if self.freeze_teacher:
      teacher_logits = ops.stop_gradient(teacher_logits)
    student_loss = self.student_loss_fn(y, y_pred)
    distillation_loss = self.distillation_loss_fn(
        ops.softmax(teacher_logits / self.temperature, axis=1),
        ops.softmax(y_pred / self.temperature, axis=1)) * (
            self.temperature**2)
    loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
    # The recipe ignores the student's weight-decay penalties; adding them
    # keeps distilled and scratch students on the same recipe (the students'
    # protocol has none, so this changes nothing there).
    if self.student.losses:
      loss = loss + ops.sum(ops.stack(self.student.losses))
    return loss

  def call(self, x, training=None):
    return self.student(x, training=training)


# ---------------------------------------------------------------------------
# Training.


@functools.lru_cache(maxsize=4)
def load_data(validation_size=0, dataset='fashion_mnist', data_dir=None):
  """Returns Fashion-MNIST as a distill_v1 DataSplits (cached).

  Args:
    validation_size: training examples held out (seed 0) for choosing T and
      alpha; 0 trains on all 60,000.
    dataset: distill_v1 data set name (28x28x1 images, 10 classes, as the
      models expect); another only for tests (e.g. a tiny IDX folder).
    data_dir: its folder, as our binaries' --data_dir.
  """
  return datasets.load_dataset(dataset, data_dir=data_dir,
                               validation_size=validation_size)


class EpochTimer(keras.callbacks.Callback):
  """Records each epoch's wall time and prints one line per epoch."""

  def __init__(self, num_examples, label, log=print):
    super().__init__()
    self.num_examples = num_examples
    self.label = label
    self.log = log
    self.epoch_seconds = []
    self._start = None

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    seconds = time.perf_counter() - self._start
    self.epoch_seconds.append(seconds)
    if self.log:
      logs = logs or {}
      accuracy = logs.get('sparse_categorical_accuracy', float('nan'))
      self.log('%s epoch %d/%d: loss %.4f  train accuracy %.4f  %.1f s  '
               '%.0f examples/s' % (
                   self.label, epoch + 1, self.params.get('epochs', 0),
                   logs.get('loss', float('nan')), accuracy, seconds,
                   self.num_examples / seconds))


def _learning_rate(learning_rate, lr_schedule, epochs, steps_per_epoch):
  if lr_schedule not in LR_SCHEDULES:
    raise errors.ConfigError('lr_schedule %r is not one of %s'
                             % (lr_schedule, ', '.join(LR_SCHEDULES)))
  if not learning_rate > 0:
    raise errors.ConfigError('learning_rate must be > 0, got %r'
                             % (learning_rate,))
  if lr_schedule == 'none':
    return learning_rate
  # base * 0.5 * (1 + cos(pi * step / total_steps)), as the toolkit's cosine.
  return keras.optimizers.schedules.CosineDecay(
      learning_rate, decay_steps=epochs * steps_per_epoch, alpha=0.0)


def make_optimizer(optimizer, learning_rate, momentum=0.9, lr_schedule='none',
                   epochs=1, steps_per_epoch=1):
  """Returns keras SGD: plain ('sgd') or with heavy-ball momentum."""
  if optimizer not in OPTIMIZERS:
    raise errors.ConfigError('optimizer %r is not one of %s'
                             % (optimizer, ', '.join(OPTIMIZERS)))
  rate = _learning_rate(learning_rate, lr_schedule, epochs, steps_per_epoch)
  if optimizer == 'sgd':
    return keras.optimizers.SGD(rate)
  if not 0 <= momentum < 1:
    raise errors.ConfigError('momentum must be in [0, 1), got %r'
                             % (momentum,))
  return keras.optimizers.SGD(rate, momentum=momentum)


def _accuracy(model, images, labels):
  if not len(images):
    return None
  logits = model.predict(images, batch_size=1000, verbose=0)
  return float(np.mean(np.argmax(logits, axis=1) == labels))


def _speed_summary(num_examples, epoch_seconds):
  """examples/sec per epoch and their median over the epochs after the first.

  With a single epoch the median is that epoch's figure (which includes
  tracing), flagged by `median_includes_first_epoch`.
  """
  per_epoch = [num_examples / s for s in epoch_seconds]
  steady = per_epoch[1:] or per_epoch
  return dict(examples_per_sec=per_epoch,
              examples_per_sec_median=float(np.median(steady)),
              epoch_seconds=list(epoch_seconds),
              median_includes_first_epoch=len(per_epoch) < 2)


def _fit(model, data, epochs, label, log, backup_dir=None):
  """Runs model.fit on the training split; returns the result dict.

  With `backup_dir`, keras.callbacks.BackupAndRestore saves the weights and
  the optimizer's state there after every epoch and a rerun resumes after the
  last saved epoch (the result then covers the epochs run this time); the
  backup is deleted when the run finishes.
  """
  if not isinstance(epochs, int) or epochs < 1:
    raise errors.ConfigError('epochs must be an integer >= 1, got %r'
                             % (epochs,))
  num_train = len(data.train_images)
  timer = EpochTimer(num_train, label, log)
  callbacks = [timer]
  if backup_dir:
    callbacks.insert(0, keras.callbacks.BackupAndRestore(backup_dir))
  history = model.fit(data.train_images, data.train_labels,
                      batch_size=BATCH_SIZE, epochs=epochs, shuffle=True,
                      callbacks=callbacks, verbose=0)
  result = _speed_summary(num_train, timer.epoch_seconds)
  result.update(
      train_loss=[float(v) for v in history.history.get('loss', [])],
      train_accuracy=[float(v) for v in history.history.get(
          'sparse_categorical_accuracy', [])],
      jit_compile=bool(getattr(model, 'jit_compile', False)),
      epochs=epochs,
      num_train_examples=num_train)
  return result


def train_model(name, optimizer='sgd', learning_rate=0.1, epochs=1, seed=0,
                momentum=0.9, lr_schedule='none', weight_decay=0.0, data=None,
                log=print, width_multiplier=1.0, backup_dir=None):
  """Trains a reference model from scratch with model.fit, batch 128.

  Args:
    name: one of MODEL_NAMES.
    optimizer: 'sgd' or 'momentum'.
    learning_rate: initial learning rate.
    epochs: passes over the training split.
    seed: keras.utils.set_random_seed before building (initialisation and
      shuffling).
    momentum: for 'momentum'.
    lr_schedule: 'none' or 'cosine' (to 0 over the run).
    weight_decay: L2 coefficient on kernels (see build_model).
    data: a DataSplits; defaults to load_data().
    log: called with one line per epoch; None for silence.
    width_multiplier: mobilenet_v1 only (see build_model).
    backup_dir: None, or where to back up every epoch so that a rerun
      resumes (see _fit).

  Returns:
    dict: test_accuracy (fraction), validation_accuracy (or None),
    examples_per_sec (list per epoch), examples_per_sec_median (epochs after
    the first), epoch_seconds (list), train_loss, train_accuracy, and
    model (the trained keras.Model; not JSON).
  """
  data = data if data is not None else load_data()
  keras.utils.set_random_seed(seed)
  model = build_model(name, weight_decay=weight_decay,
                      width_multiplier=width_multiplier)
  steps_per_epoch = math.ceil(len(data.train_images) / BATCH_SIZE)
  model.compile(
      optimizer=make_optimizer(optimizer, learning_rate, momentum,
                               lr_schedule, epochs, steps_per_epoch),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=[keras.metrics.SparseCategoricalAccuracy()])
  result = _fit(model, data, epochs, name, log, backup_dir)
  result.update(
      model_name=name, optimizer=optimizer, learning_rate=learning_rate,
      momentum=momentum if optimizer == 'momentum' else None,
      lr_schedule=lr_schedule, weight_decay=weight_decay, seed=seed,
      width_multiplier=width_multiplier if name == 'mobilenet_v1' else None,
      test_accuracy=_accuracy(model, data.test_images, data.test_labels),
      validation_accuracy=_accuracy(model, data.validation_images,
                                    data.validation_labels),
      model=model)
  return result


def distill(teacher_model, student_name, temperature=DEFAULT_TEMPERATURE,
            alpha=DEFAULT_ALPHA, learning_rate=0.1, epochs=1, seed=0,
            optimizer='sgd', momentum=0.9, lr_schedule='none',
            weight_decay=0.0, data=None, freeze_teacher=True, log=print):
  """Distills a fresh `student_name` from `teacher_model` (keras.io recipe).

  The student is built right after keras.utils.set_random_seed(seed), so it
  starts from the same weights as train_model(student_name, seed=seed).

  Args:
    teacher_model: trained keras.Model, images -> logits [batch, 10].
    student_name: one of MODEL_NAMES.
    temperature: softmax temperature T.
    alpha: weight of the hard-label loss (1 - alpha on the soft loss).
    learning_rate, epochs, seed, optimizer, momentum, lr_schedule,
      weight_decay: as in train_model.
    data: a DataSplits; defaults to load_data().
    freeze_teacher: see Distiller.
    log: called with one line per epoch; None for silence.

  Returns:
    The dict of train_model, for the student; `model` is the student.
  """
  data = data if data is not None else load_data()
  keras.utils.set_random_seed(seed)
  student = build_model(student_name, weight_decay=weight_decay)
  distiller = Distiller(student, teacher_model, freeze_teacher=freeze_teacher)
  steps_per_epoch = math.ceil(len(data.train_images) / BATCH_SIZE)
  distiller.compile(
      optimizer=make_optimizer(optimizer, learning_rate, momentum,
                               lr_schedule, epochs, steps_per_epoch),
      metrics=[keras.metrics.SparseCategoricalAccuracy()],
      student_loss_fn=keras.losses.SparseCategoricalCrossentropy(
          from_logits=True),
      distillation_loss_fn=keras.losses.KLDivergence(),
      alpha=alpha, temperature=temperature)
  result = _fit(distiller, data, epochs, 'distill ' + student_name, log)
  result.update(
      model_name=student_name, teacher_name=teacher_model.name,
      optimizer=optimizer, learning_rate=learning_rate,
      momentum=momentum if optimizer == 'momentum' else None,
      lr_schedule=lr_schedule, weight_decay=weight_decay,
      temperature=temperature, alpha=alpha, seed=seed,
      freeze_teacher=freeze_teacher,
      test_accuracy=_accuracy(student, data.test_images, data.test_labels),
      validation_accuracy=_accuracy(student, data.validation_images,
                                    data.validation_labels),
      model=student)
  return result


# ---------------------------------------------------------------------------
# Inference and TFLite.


def _timings_us(fn, x, repeats, warmup=10):
  """(median, p10, p90) microseconds of fn(x) over `repeats` timed calls."""
  for _ in range(warmup):
    fn(x)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn(x)
    times.append(time.perf_counter() - start)
  return tuple(float(np.percentile(times, q) * 1e6) for q in (50, 10, 90))


def inference_latency(model, batch_sizes=(1, 128), repeats=1000, images=None):
  """Median latency of eager `model(x)` and of a tf.function-wrapped call.

  Args:
    model: keras.Model taking [batch, 28, 28, 1] float32.
    batch_sizes: batch sizes to time.
    repeats: timed calls per measurement (after 10 warm-up calls).
    images: float32 [N, 28, 28, 1] to feed, the first `batch` of them (
      repeated when N < batch); defaults to the test images.

  Returns:
    dict 'batch_<b>' -> dict(keras_call_us, tf_function_us: medians, and
    keras_call_p10_us, keras_call_p90_us, tf_function_p10_us,
    tf_function_p90_us: 10th and 90th percentiles), in microseconds per call
    (per batch, not per example), outputs pulled to numpy so that the work
    is finished.
  """
  if images is None:
    images = load_data().test_images
  results = {}
  compiled = tf.function(lambda x: model(x, training=False))
  calls = dict(keras_call=lambda t: model(t, training=False).numpy(),
               tf_function=lambda t: compiled(t).numpy())
  for batch in batch_sizes:
    x = tf.constant(np.resize(images, (batch,) + images.shape[1:]))
    entry = dict(repeats=repeats)
    for name, fn in calls.items():
      median, p10, p90 = _timings_us(fn, x, repeats)
      entry.update({name + '_us': median, name + '_p10_us': p10,
                    name + '_p90_us': p90})
    results['batch_%d' % batch] = entry
  return results


def convert_tflite(model, mode, representative_images=None):
  """Converts a Keras model with TFLiteConverter.from_keras_model.

  Args:
    model: keras.Model.
    mode: 'float32', 'dynamic_range' (int8 weights, float activations) or
      'int8' (int8 weights, activations, input and output).
    representative_images: float32 [N, 28, 28, 1], needed for 'int8'.

  Returns:
    The .tflite flatbuffer (bytes).
  """
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  if mode == 'dynamic_range':
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  elif mode == 'int8':
    if representative_images is None:
      raise errors.ConfigError('int8 conversion needs representative_images')

    def representative_dataset():
      for image in representative_images:
        yield [image[np.newaxis].astype(np.float32)]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
  elif mode != 'float32':
    raise errors.ConfigError('TFLite mode %r is not one of float32, '
                             'dynamic_range, int8' % (mode,))
  # The converter exports a SavedModel first and prints where ("Saved
  # artifact at ..."), between the progress lines of a run.
  with contextlib.redirect_stdout(io.StringIO()):
    return converter.convert()


def _interpreter(flatbuffer, num_threads):
  with warnings.catch_warnings():
    # tf.lite.Interpreter warns that it moves to ai_edge_litert; it is what
    # the peer figures used.
    warnings.simplefilter('ignore')
    interpreter = tf.lite.Interpreter(model_content=flatbuffer,
                                      num_threads=num_threads)
  interpreter.allocate_tensors()
  return interpreter


def run_tflite(flatbuffer, images, num_threads=None):
  """Runs a .tflite model one image at a time, as a deployment would.

  Quantized (int8) inputs are quantized with the input tensor's scale and
  zero point, and quantized outputs dequantized with the output tensor's.

  Args:
    flatbuffer: .tflite bytes.
    images: float32 [N, 28, 28, 1].
    num_threads: interpreter threads; None leaves TFLite's default.

  Returns:
    (outputs float32 [N, num_classes], seconds float64 [N]): the model's
    (dequantized) outputs and the wall time of each `invoke()`.
  """
  interpreter = _interpreter(flatbuffer, num_threads)
  input_detail = interpreter.get_input_details()[0]
  output_detail = interpreter.get_output_details()[0]
  in_scale, in_zero = input_detail['quantization']
  out_scale, out_zero = output_detail['quantization']
  if input_detail['dtype'] == np.int8:
    info = np.iinfo(np.int8)
    feed = np.clip(np.round(images / in_scale + in_zero), info.min,
                   info.max).astype(np.int8)
  else:
    feed = images.astype(input_detail['dtype'])
  outputs = []
  seconds = np.empty(len(images))
  input_index, output_index = input_detail['index'], output_detail['index']
  for i in range(len(images)):
    interpreter.set_tensor(input_index, feed[i:i + 1])
    start = time.perf_counter()
    interpreter.invoke()
    seconds[i] = time.perf_counter() - start
    outputs.append(interpreter.get_tensor(output_index)[0])
  outputs = np.stack(outputs)
  if output_detail['dtype'] == np.int8:
    outputs = (outputs.astype(np.float32) - out_zero) * out_scale
  return outputs.astype(np.float32), seconds


def evaluate_tflite(flatbuffer, images, labels, num_threads=None):
  """Accuracy and batch-1 latency of a .tflite model (see run_tflite).

  Returns:
    dict(test_accuracy, latency_us_median, latency_us_p90): latency of
    `invoke()` alone at batch 1, over the N calls.
  """
  outputs, seconds = run_tflite(flatbuffer, images, num_threads)
  return dict(
      test_accuracy=float(np.mean(np.argmax(outputs, axis=1) == labels)),
      latency_us_median=float(np.median(seconds) * 1e6),
      latency_us_p90=float(np.percentile(seconds, 90) * 1e6))


def tflite_sizes_and_latency(model, data=None, representative_size=200,
                             num_threads=None, log=print, save_prefix=None):
  """Converts `model` to float32, dynamic-range and full-int8 TFLite.

  Args:
    model: trained keras.Model.
    data: a DataSplits; defaults to load_data().
    representative_size: training images (chosen with seed 0) calibrating the
      int8 activation ranges.
    num_threads: interpreter threads; None leaves TFLite's default.
    log: called with one line per variant; None for silence.
    save_prefix: if set, each flatbuffer is also written to
      `<save_prefix>_<mode>.tflite` (its `path` in the result), for timing
      elsewhere.

  Returns:
    dict with keras_test_accuracy and, per mode ('float32', 'dynamic_range',
    'int8'), dict(bytes, test_accuracy, latency_us_median, latency_us_p90,
    path if saved) over the whole test split at batch 1.
  """
  data = data if data is not None else load_data()
  chosen = np.random.RandomState(0).permutation(
      len(data.train_images))[:representative_size]
  representative = data.train_images[np.sort(chosen)]
  results = dict(
      keras_test_accuracy=_accuracy(model, data.test_images,
                                    data.test_labels),
      representative_size=representative_size, num_threads=num_threads)
  for mode in ('float32', 'dynamic_range', 'int8'):
    flatbuffer = convert_tflite(model, mode, representative)
    measured = evaluate_tflite(flatbuffer, data.test_images, data.test_labels,
                               num_threads)
    measured['bytes'] = len(flatbuffer)
    if save_prefix:
      measured['path'] = '%s_%s.tflite' % (save_prefix, mode)
      fileio.write_bytes(measured['path'], flatbuffer)
    results[mode] = measured
    if log:
      log('%s TFLite %s: %d bytes, test accuracy %.4f, batch-1 invoke %.0f '
          'us' % (model.name, mode, measured['bytes'],
                  measured['test_accuracy'], measured['latency_us_median']))
  return results


def peak_rss_mb():
  """Peak resident set size of this process so far, in MB (10**6 bytes)."""
  kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return kilobytes * 1024 / 1e6


# ---------------------------------------------------------------------------
# Command line.


def define_flags():
  """Defines the absl flags of the binary (only when run as a script)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum('family', 'mlp', sorted(FAMILIES), 'Model family.')
  flags.DEFINE_enum('phase', 'all', PHASES, 'What to run (module docstring); '
                    'the mobilenet family has only --phase=teacher.')
  flags.DEFINE_float('width_multiplier', 1.0, 'mobilenet_v1\'s width, as '
                     'our --width_multiplier (family mobilenet only).')
  flags.DEFINE_integer('epochs', None, 'Epochs of the phase (default: its '
                       'recipe).')
  flags.DEFINE_integer('seed', 1, 'Seed of initialisation and shuffling.')
  flags.DEFINE_float('learning_rate', None, 'Learning rate of the phase '
                     '(default: its recipe).')
  flags.DEFINE_enum('optimizer', None, OPTIMIZERS, 'Optimizer of the phase '
                    '(default: its recipe).')
  flags.DEFINE_float('momentum', 0.9, 'Momentum of --optimizer=momentum.')
  flags.DEFINE_enum('lr_schedule', None, LR_SCHEDULES, 'Learning-rate '
                    'schedule of the phase (default: its recipe).')
  flags.DEFINE_float('weight_decay', None, 'L2 coefficient of the phase '
                     '(default: its recipe).')
  flags.DEFINE_float('temperature', DEFAULT_TEMPERATURE, 'Distillation T.')
  flags.DEFINE_float('alpha', DEFAULT_ALPHA, 'Weight of the hard-label loss.')
  flags.DEFINE_string('teacher_weights', None, 'A `.weights.h5` of the '
                      'family\'s teacher to reuse instead of training one.')
  flags.DEFINE_string('save_teacher_weights', None, 'Where to save a trained '
                      'teacher\'s weights (`.weights.h5`).')
  flags.DEFINE_string('backup_dir', None, 'Back up a teacher trained here '
                      'after every epoch (weights and optimizer state, '
                      'keras.callbacks.BackupAndRestore) so that the same '
                      'command resumes after an interruption; deleted when '
                      'the training finishes.')
  flags.DEFINE_integer('teacher_epochs', None, 'Epochs of a teacher trained '
                       'for --phase=distill/all (default: TEACHER_RECIPES).')
  flags.DEFINE_float('teacher_learning_rate', None, 'Its learning rate.')
  flags.DEFINE_enum('teacher_optimizer', None, OPTIMIZERS, 'Its optimizer.')
  flags.DEFINE_enum('teacher_lr_schedule', None, LR_SCHEDULES,
                    'Its schedule.')
  flags.DEFINE_float('teacher_weight_decay', None, 'Its weight decay.')
  flags.DEFINE_integer('validation_size', 0, 'Training examples held out '
                       '(seed 0) to report validation accuracy, for choosing '
                       'T and alpha; 0 trains on all 60,000.')
  flags.DEFINE_bool('inference', False, 'Also time eager and tf.function '
                    'inference of every model of the run.')
  flags.DEFINE_integer('latency_repeats', 1000, 'Timed calls per inference '
                       'latency.')
  flags.DEFINE_bool('tflite', False, 'Also convert every model of the run to '
                    'TFLite (float32, dynamic range, int8) and measure it.')
  flags.DEFINE_string('tflite_dir', None, 'With --tflite, also write the '
                      'files there as <model>_<mode>.tflite.')
  flags.DEFINE_string('dataset', 'fashion_mnist', 'Data set, as our '
                      'binaries\' --dataset (28x28x1 images, 10 classes).')
  flags.DEFINE_string('data_dir', None, 'Its folder, as our binaries\' '
                      '--data_dir.')
  flags.DEFINE_enum('mixed_precision', 'none', ['none', 'bfloat16'],
                    'bfloat16 sets the Keras policy mixed_bfloat16 (compute '
                    'in bfloat16, variables float32) before any model is '
                    'built: the peer of our --precision=bfloat16.')
  flags.DEFINE_string('output_json', None, 'Where to write the results JSON.')
  flags.mark_flag_as_required('output_json')


def _recipe(defaults, **overrides):
  recipe = dict(defaults)
  recipe.update({k: v for k, v in overrides.items() if v is not None})
  return recipe


def _json_ready(result):
  return {k: v for k, v in result.items() if k != 'model'}


def _check_weights_path(path, flag):
  if not path.endswith('.weights.h5'):
    raise errors.ConfigError('--%s=%s: Keras 3 weights files must end in '
                             '.weights.h5' % (flag, path))


def main(argv):
  """Runs the phases named by the flags and writes the results JSON."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise errors.ConfigError('unexpected arguments: %s' % ' '.join(argv[1:]))
  f = flags.FLAGS
  teacher_name, student_name = FAMILIES[f.family]
  if student_name is None and f.phase != 'teacher':
    raise errors.ConfigError('--family=%s trains only %s: give --phase=teacher'
                             % (f.family, teacher_name))
  if f['width_multiplier'].present and f.family != 'mobilenet':
    raise errors.ConfigError('--width_multiplier is for --family=mobilenet')
  phase_overrides = dict(
      epochs=f.epochs, learning_rate=f.learning_rate, optimizer=f.optimizer,
      lr_schedule=f.lr_schedule, weight_decay=f.weight_decay)
  teacher_overrides = dict(
      epochs=f.teacher_epochs, learning_rate=f.teacher_learning_rate,
      optimizer=f.teacher_optimizer, lr_schedule=f.teacher_lr_schedule,
      weight_decay=f.teacher_weight_decay)
  if f.phase == 'teacher':
    teacher_overrides = phase_overrides
  for path, flag in ((f.teacher_weights, 'teacher_weights'),
                     (f.save_teacher_weights, 'save_teacher_weights')):
    if path:
      _check_weights_path(path, flag)
  if f.teacher_weights and not os.path.isfile(f.teacher_weights):
    raise errors.CheckpointError('--teacher_weights=%s: no such file'
                                 % f.teacher_weights)

  if f.mixed_precision == 'bfloat16':
    keras.mixed_precision.set_global_policy('mixed_bfloat16')
  data = load_data(f.validation_size, f.dataset, f.data_dir)
  # TensorFlow's SavedModel and converter INFO lines would bury the epoch
  # lines.
  logging.set_verbosity(logging.WARNING)
  report = dict(
      family=f.family, phase=f.phase, seed=f.seed, batch_size=BATCH_SIZE,
      keras_version=keras.__version__, tensorflow_version=tf.__version__,
      num_train_examples=len(data.train_images),
      validation_size=f.validation_size, command=' '.join(sys.argv),
      mixed_precision=f.mixed_precision,
      phases={}, inference={}, tflite={})

  def save(phase=None):
    report['peak_rss_mb'] = peak_rss_mb()
    if phase:
      report['phases'][phase]['peak_rss_mb_so_far'] = report['peak_rss_mb']
    fileio.write_json(f.output_json, report)

  models = {}
  teacher = None
  if f.phase in ('teacher', 'distill', 'all'):
    if f.teacher_weights and f.phase != 'teacher':
      teacher = build_model(teacher_name)
      teacher.load_weights(f.teacher_weights)
      accuracy = _accuracy(teacher, data.test_images, data.test_labels)
      print('loaded %s from %s: test accuracy %.4f'
            % (teacher_name, f.teacher_weights, accuracy), flush=True)
      report['phases']['teacher'] = dict(
          model_name=teacher_name, weights=f.teacher_weights,
          test_accuracy=accuracy)
    else:
      recipe = _recipe(TEACHER_RECIPES[f.family], **teacher_overrides)
      result = train_model(teacher_name, momentum=f.momentum, seed=f.seed,
                           data=data, width_multiplier=f.width_multiplier,
                           backup_dir=f.backup_dir, **recipe)
      teacher = result['model']
      print('%s test accuracy %.4f, %.0f examples/s (median)'
            % (teacher_name, result['test_accuracy'],
               result['examples_per_sec_median']), flush=True)
      report['phases']['teacher'] = _json_ready(result)
      if f.save_teacher_weights:
        teacher.save_weights(f.save_teacher_weights)
        report['phases']['teacher']['weights'] = f.save_teacher_weights
    models[teacher_name] = teacher
    save('teacher')

  student_recipe = (_recipe(STUDENT_RECIPES[f.family], **phase_overrides)
                    if student_name else None)
  if f.phase in ('student', 'all'):
    result = train_model(student_name, momentum=f.momentum, seed=f.seed,
                         data=data, **student_recipe)
    print('%s from scratch: test accuracy %.4f, %.0f examples/s (median)'
          % (student_name, result['test_accuracy'],
             result['examples_per_sec_median']), flush=True)
    report['phases']['student'] = _json_ready(result)
    models[student_name] = result['model']
    save('student')

  if f.phase in ('distill', 'all'):
    result = distill(teacher, student_name, temperature=f.temperature,
                     alpha=f.alpha, seed=f.seed, momentum=f.momentum,
                     data=data, **student_recipe)
    print('%s distilled (T=%g, alpha=%g): test accuracy %.4f, %.0f '
          'examples/s (median)' % (student_name, f.temperature, f.alpha,
                                   result['test_accuracy'],
                                   result['examples_per_sec_median']),
          flush=True)
    report['phases']['distill'] = _json_ready(result)
    models[student_name + '_distilled'] = result['model']
    save('distill')

  for key, model in sorted(models.items()):
    if f.inference:
      report['inference'][key] = inference_latency(
          model, repeats=f.latency_repeats, images=data.test_images)
      print('%s inference: %s' % (key, report['inference'][key]), flush=True)
      save()
    if f.tflite:
      report['tflite'][key] = tflite_sizes_and_latency(
          model, data=data, save_prefix=(
              os.path.join(f.tflite_dir, key) if f.tflite_dir else None))
      save()
  save()
  print('peak RSS %.0f MB; wrote %s' % (report['peak_rss_mb'],
                                        f.output_json), flush=True)


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)
