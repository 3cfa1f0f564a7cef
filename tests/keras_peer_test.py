"""Tests of benchmarks/keras_peer.py, the Keras 3 peer (BENCHMARK.md).

Keras is imported here only; the library never uses it.
"""

import os
import types

import numpy as np
import pytest

keras = pytest.importorskip('keras')

from benchmarks import keras_peer  # pylint: disable=g-import-not-at-top
from distill_v1 import errors  # pylint: disable=g-import-not-at-top


def _tiny(name, seed):
  keras.utils.set_random_seed(seed)
  return keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)],
                          name=name)


def _compiled_distiller(student, teacher, alpha, temperature, learning_rate):
  distiller = keras_peer.Distiller(student, teacher)
  distiller.compile(
      optimizer=keras.optimizers.SGD(learning_rate),
      metrics=[keras.metrics.SparseCategoricalAccuracy()],
      student_loss_fn=keras.losses.SparseCategoricalCrossentropy(
          from_logits=True),
      distillation_loss_fn=keras.losses.KLDivergence(),
      alpha=alpha, temperature=temperature)
  return distiller


def _softmax(logits):
  shifted = logits - logits.max(axis=1, keepdims=True)
  exp = np.exp(shifted)
  return exp / exp.sum(axis=1, keepdims=True)


@pytest.mark.parametrize('name', sorted(keras_peer.EXPECTED_PARAMS))
def test_parameter_counts(name):
  model = keras_peer.build_model(name)
  assert model.count_params() == keras_peer.EXPECTED_PARAMS[name]
  assert tuple(model.output_shape) == (None, 10)
  assert tuple(model.input_shape) == (None, 28, 28, 1)


def test_known_parameter_counts():
  # The reference figures of BENCHMARK.md, written out independently.
  assert keras_peer.EXPECTED_PARAMS == {
      'mlp_teacher': 2395210, 'mlp_student': 1276810,
      'cnn_teacher': 3274634, 'cnn_student': 20490}


def test_unknown_model_is_refused():
  with pytest.raises(errors.ConfigError, match='resnet'):
    keras_peer.build_model('resnet')


def test_weight_decay_matches_toolkit_l2_loss():
  model = keras_peer.build_model('cnn_student', weight_decay=0.01)
  kernels = [w.numpy() for w in model.weights if 'kernel' in w.path]
  expected = 0.01 * sum(float(np.sum(k.astype(np.float64)**2)) / 2
                        for k in kernels)
  actual = sum(float(loss) for loss in model.losses)
  assert actual == pytest.approx(expected, rel=1e-5)


def test_distiller_loss_matches_numpy():
  alpha, temperature = 0.3, 4.0
  student, teacher = _tiny('student', 1), _tiny('teacher', 2)
  distiller = _compiled_distiller(student, teacher, alpha, temperature, 0.1)
  rng = np.random.RandomState(0)
  x = rng.randn(5, 6).astype(np.float32)
  y = np.array([0, 1, 2, 3, 1])
  student_logits = np.asarray(student(x))
  teacher_logits = np.asarray(teacher(x))

  loss = float(distiller.compute_loss(x=x, y=y, y_pred=student_logits))

  log_p = np.log(_softmax(student_logits.astype(np.float64)))
  cross_entropy = -np.mean(log_p[np.arange(5), y])
  p_t = _softmax(teacher_logits.astype(np.float64) / temperature)
  p_s = _softmax(student_logits.astype(np.float64) / temperature)
  kl = np.mean(np.sum(p_t * np.log(p_t / p_s), axis=1))
  expected = alpha * cross_entropy + (1 - alpha) * kl * temperature**2
  assert kl > 1e-4  # The soft term must matter for the test to mean much.
  assert loss == pytest.approx(expected, rel=1e-5)


def test_distillation_step_changes_only_the_student():
  student, teacher = _tiny('student', 1), _tiny('teacher', 2)
  distiller = _compiled_distiller(student, teacher, 0.1, 4.0, 0.5)
  before_student = [w.copy() for w in student.get_weights()]
  before_teacher = [w.copy() for w in teacher.get_weights()]
  rng = np.random.RandomState(0)
  x = rng.randn(16, 6).astype(np.float32)
  y = rng.randint(0, 4, size=16)

  distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)

  for before, after in zip(before_teacher, teacher.get_weights()):
    np.testing.assert_array_equal(before, after)
  assert all(not np.allclose(before, after) for before, after in
             zip(before_student, student.get_weights()))


def test_unfrozen_teacher_moves_as_in_the_published_recipe():
  # Why the peer freezes the teacher: the default train_step also trains it.
  student, teacher = _tiny('student', 1), _tiny('teacher', 2)
  distiller = keras_peer.Distiller(student, teacher, freeze_teacher=False)
  distiller.compile(
      optimizer=keras.optimizers.SGD(0.5), metrics=[],
      student_loss_fn=keras.losses.SparseCategoricalCrossentropy(
          from_logits=True), alpha=0.1, temperature=4.0)
  before = teacher.get_weights()[0].copy()
  rng = np.random.RandomState(0)
  distiller.fit(rng.randn(16, 6).astype(np.float32),
                rng.randint(0, 4, size=16), batch_size=16, verbose=0)
  assert not np.allclose(before, teacher.get_weights()[0])


def test_same_seed_same_student_initialisation():
  # train_model and distill rely on this for "same initialisation".
  keras.utils.set_random_seed(3)
  first = keras_peer.build_model('cnn_student').get_weights()
  keras_peer.build_model('cnn_teacher')  # Consumes random numbers.
  keras.utils.set_random_seed(3)
  second = keras_peer.build_model('cnn_student').get_weights()
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)


def test_bad_alpha_and_temperature_are_refused():
  student, teacher = _tiny('student', 1), _tiny('teacher', 2)
  with pytest.raises(errors.ConfigError, match='alpha'):
    _compiled_distiller(student, teacher, 1.5, 4.0, 0.1)
  with pytest.raises(errors.ConfigError, match='temperature'):
    _compiled_distiller(student, teacher, 0.1, 0.0, 0.1)


def test_cosine_schedule_matches_toolkit_formula():
  schedule = keras_peer._learning_rate(0.2, 'cosine', epochs=2,  # pylint: disable=protected-access
                                       steps_per_epoch=5)
  for step in (0, 3, 10):
    expected = 0.2 * 0.5 * (1 + np.cos(np.pi * step / 10))
    assert float(schedule(step)) == pytest.approx(expected, abs=1e-6)


def test_optimizers():
  assert keras_peer.make_optimizer('sgd', 0.1).momentum == 0.0
  assert keras_peer.make_optimizer('momentum', 0.1, 0.9).momentum == 0.9
  with pytest.raises(errors.ConfigError, match='adam'):
    keras_peer.make_optimizer('adam', 0.1)


def test_speed_summary_uses_epochs_after_the_first():
  summary = keras_peer._speed_summary(600, [6.0, 1.0, 2.0, 3.0])  # pylint: disable=protected-access
  assert summary['examples_per_sec'] == [100.0, 600.0, 300.0, 200.0]
  assert summary['examples_per_sec_median'] == 300.0
  assert not summary['median_includes_first_epoch']


def _band_model_and_data(num_images=100):
  """A linear model whose class c is "rows 2c and 2c+1 are bright"."""
  model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(10)])
  kernel = np.zeros((28, 28, 10), np.float32)
  for c in range(10):
    kernel[2 * c:2 * c + 2, :, c] = 1.0 / 56
  model.layers[-1].set_weights([kernel.reshape(784, 10),
                                np.zeros(10, np.float32)])
  rng = np.random.RandomState(0)
  labels = rng.randint(0, 10, size=num_images)
  images = rng.rand(num_images, 28, 28, 1).astype(np.float32) * 0.3
  for i, c in enumerate(labels):
    images[i, 2 * c:2 * c + 2] = 1.0
  return model, images, labels


def test_float_tflite_agrees_with_keras():
  model, images, labels = _band_model_and_data()
  assert np.mean(np.argmax(np.asarray(model(images)), 1) == labels) == 1.0
  flatbuffer = keras_peer.convert_tflite(model, 'float32')
  result = keras_peer.evaluate_tflite(flatbuffer, images, labels)
  assert result['test_accuracy'] == 1.0
  assert result['latency_us_median'] > 0


def test_int8_tflite_outputs_match_keras_logits():
  # Input quantized with scale and zero point, output dequantized: the
  # logits agree with Keras's to a few quantization steps. Dropping the zero
  # point shifts every pixel by ~0.5 and the logits with it; skipping the
  # dequantization leaves integers in [-128, 127].
  model, images, labels = _band_model_and_data()
  expected = np.asarray(model(images))
  flatbuffer = keras_peer.convert_tflite(model, 'int8', images[:50])
  outputs, seconds = keras_peer.run_tflite(flatbuffer, images)
  assert outputs.shape == (100, 10) and seconds.shape == (100,)
  np.testing.assert_allclose(outputs, expected, atol=0.03)
  result = keras_peer.evaluate_tflite(flatbuffer, images, labels)
  assert result['test_accuracy'] >= 0.95


def test_dynamic_range_tflite_is_smaller_and_agrees():
  model = keras_peer.build_model('mlp_student')
  rng = np.random.RandomState(0)
  images = rng.rand(8, 28, 28, 1).astype(np.float32)
  float_bytes = keras_peer.convert_tflite(model, 'float32')
  dynamic_bytes = keras_peer.convert_tflite(model, 'dynamic_range')
  # 1.28 M float32 weights -> int8: about a quarter of the size.
  assert len(dynamic_bytes) < 0.3 * len(float_bytes)
  outputs, _ = keras_peer.run_tflite(dynamic_bytes, images)
  np.testing.assert_allclose(outputs, np.asarray(model(images)), atol=0.05)


def test_int8_conversion_needs_representative_images():
  model, _, _ = _band_model_and_data(1)
  with pytest.raises(errors.ConfigError, match='representative'):
    keras_peer.convert_tflite(model, 'int8')


def test_inference_latency_gives_percentiles_and_fills_large_batches():
  calls = []

  def model(x, training=None):
    assert training is False
    calls.append(int(x.shape[0]))
    return keras_peer.tf.reduce_sum(x, axis=[1, 2, 3])

  images = np.ones((3, 28, 28, 1), np.float32)
  result = keras_peer.inference_latency(model, batch_sizes=(1, 8), repeats=3,
                                        images=images)
  # 3 images fill a batch of 8 (repeated): every call sees the batch size.
  assert set(calls) == {1, 8}
  for batch in ('batch_1', 'batch_8'):
    entry = result[batch]
    assert entry['repeats'] == 3
    for name in ('keras_call', 'tf_function'):
      assert (0 < entry[name + '_p10_us'] <= entry[name + '_us'] <=
              entry[name + '_p90_us'])


@pytest.mark.parametrize('name', ['mlp_teacher', 'cnn_student'])
def test_mixed_bfloat16_computes_in_bfloat16_with_float32_logits(name):
  keras.mixed_precision.set_global_policy('mixed_bfloat16')
  try:
    model = keras_peer.build_model(name)
  finally:
    keras.mixed_precision.set_global_policy('float32')
  assert model.layers[1].compute_dtype == 'bfloat16'  # Dense or Conv2D.
  assert model.layers[-1].compute_dtype == 'float32'
  assert all(w.dtype == 'float32' for w in model.weights)
  logits = model(np.zeros((2, 28, 28, 1), np.float32))
  assert keras.backend.standardize_dtype(logits.dtype) == 'float32'


def test_tflite_files_are_saved_when_asked(tmp_path):
  model, images, labels = _band_model_and_data(40)
  data = type('Splits', (), dict(train_images=images, train_labels=labels,
                                 test_images=images[:5],
                                 test_labels=labels[:5]))
  result = keras_peer.tflite_sizes_and_latency(
      model, data=data, representative_size=10, log=None,
      save_prefix=str(tmp_path / 'band'))
  for mode in ('float32', 'dynamic_range', 'int8'):
    path = tmp_path / ('band_%s.tflite' % mode)
    assert result[mode]['path'] == str(path)
    assert path.stat().st_size == result[mode]['bytes']


@pytest.mark.parametrize('width', [0.25, 0.5])
def test_mobilenet_v1_computes_the_toolkit_network(width):
  """Our mobilenet_v1's variables, copied in order, give the same logits."""
  from distill_v1.compat import tf  # pylint: disable=g-import-not-at-top
  from distill_v1.models import nets_factory  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(3)
  images = rng.uniform(size=(5, 28, 28, 1)).astype(np.float32)
  with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    logits, _ = nets_factory.get_network_fn(
        'mobilenet_v1', width_multiplier=width)(
            tf.constant(images), 10, is_training=False)
    sess.run(tf.compat.v1.global_variables_initializer())
    variables = tf.compat.v1.global_variables()
    values = []
    for variable in variables:  # Batch norm starts constant: randomise it.
      value = sess.run(variable)
      name = variable.op.name.rsplit('/', 1)[-1]
      if name in ('gamma', 'moving_variance'):
        value = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
      elif name in ('beta', 'moving_mean', 'bias'):
        value = rng.normal(0, 0.1, value.shape).astype(np.float32)
      variable.load(value, sess)
      values.append(value)
    expected = sess.run(logits)
  model = keras_peer.build_model('mobilenet_v1', width_multiplier=width)
  assert [tuple(w.shape) for w in model.weights] == [v.shape for v in values]
  model.set_weights(values)
  actual = np.asarray(model(images, training=False))
  assert np.std(expected) > 1e-3
  np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def test_mobilenet_v1_width_is_checked():
  with pytest.raises(errors.ConfigError, match='width_multiplier'):
    keras_peer.build_model('mobilenet_v1', width_multiplier=0)


def test_backup_dir_resumes_after_the_last_finished_epoch(tmp_path,
                                                          monkeypatch):
  rng = np.random.RandomState(0)
  data = types.SimpleNamespace(
      train_images=rng.rand(64, 6).astype(np.float32),
      train_labels=rng.randint(0, 4, size=64))
  backup = str(tmp_path / 'backup')

  def compiled(seed):
    model = _tiny('resumed', seed)
    model.compile(optimizer=keras_peer.make_optimizer('momentum', 0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    return model

  class Interrupted(Exception):
    pass

  def stop_after_two(self, epoch, logs=None):
    if epoch == 1:
      raise Interrupted()
  first = compiled(1)
  with monkeypatch.context() as patch:
    patch.setattr(keras_peer.EpochTimer, 'on_epoch_end', stop_after_two)
    with pytest.raises(Interrupted):
      keras_peer._fit(first, data, 3, 'resumed', None, backup)  # pylint: disable=protected-access
  saved = [v.numpy() for v in first.weights]
  # Another initialisation: the weights must come from the backup.
  second = compiled(7)
  result = keras_peer._fit(second, data, 3, 'resumed', None, backup)  # pylint: disable=protected-access
  assert len(result['epoch_seconds']) == 1  # only the third epoch ran
  assert int(second.optimizer.iterations.numpy()) == 3 * 1  # 64 / 128 -> 1
  assert not os.path.exists(os.path.join(backup, 'latest.weights.h5'))
  # One more step of SGD with momentum from the saved state, not from seed 7.
  moved = [np.abs(a - v.numpy()).max() for a, v in zip(saved, second.weights)]
  assert 0 < max(moved) < 1.0
  fresh = [v.numpy() for v in compiled(7).weights]
  assert max(np.abs(a - b).max() for a, b in zip(saved, fresh)) > max(moved)
