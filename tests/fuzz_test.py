"""Property-based tests (hypothesis) of the inputs users control.

  * the IDX reader: arbitrary bytes, raw or gzip-compressed, and
    header-shaped bytes only ever give an array or a DataError; arrays of
    every IDX dtype survive a write/read round trip;
  * the validators: arbitrary training configurations, contrib pruning
    strings, data-set arguments and flag strings of the train binary only
    ever raise the project's own errors (or absl's flag error, which
    absl prints as one line);
  * the losses: the soft-target loss is non-negative and finite even for
    extreme logits, matches a float64 numpy reference, equals plain
    cross-entropy when the teacher is one-hot at T = 1, and the distillation
    total is alpha * hard + (1 - alpha) * soft.

Examples are derandomized (the same every run) and no example database is
written. Set FUZZ_COUNTS_JSON=path to record how many examples each test
ran (docs/reliability.md quotes them).
"""

import collections
import gzip
import json
import math
import os
import tempfile

import hypothesis
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.data import idx

_COUNTS = collections.Counter()


def _settings(max_examples):
  return hypothesis.settings(max_examples=max_examples, deadline=None,
                             derandomize=True, database=None)


def _count(name):
  _COUNTS[name] += 1


@pytest.fixture(scope="module", autouse=True)
def _record_counts():
  yield
  path = os.environ.get("FUZZ_COUNTS_JSON")
  if path:
    with open(path, "w", encoding="utf-8") as f:
      json.dump(dict(_COUNTS, total=sum(_COUNTS.values())), f, indent=2,
                sort_keys=True)


@pytest.fixture(scope="module")
def scratch():
  with tempfile.TemporaryDirectory() as folder:
    yield folder


def _read(folder, data, reader=idx.read_idx, **kwargs):
  """reader(file holding `data`): an array, or None after a DataError."""
  path = os.path.join(folder, "fuzz.idx")
  with open(path, "wb") as f:
    f.write(data)
  try:
    return reader(path, **kwargs)
  except errors.DataError as e:
    assert path in str(e)  # Every message names the file.
    return None


# ------------------------------------------------------------------ IDX


@_settings(400)
@hypothesis.given(data=st.binary(max_size=600))
def test_arbitrary_bytes_give_an_array_or_a_data_error(scratch, data):
  _count("idx_arbitrary_bytes")
  array = _read(scratch, data)
  assert array is None or isinstance(array, np.ndarray)


@_settings(300)
@hypothesis.given(data=st.binary(max_size=600), cut=st.integers(0, 40))
def test_arbitrary_gzip_streams_give_an_array_or_a_data_error(scratch, data,
                                                              cut):
  _count("idx_gzip_streams")
  stream = gzip.compress(data, mtime=0)
  _read(scratch, stream[:len(stream) - cut])


_CODES = (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x0A, 0xFF)


@_settings(400)
@hypothesis.given(code=st.sampled_from(_CODES),
                  dims=st.lists(st.integers(-2, 6), min_size=0, max_size=4),
                  extra=st.integers(-8, 8), payload_seed=st.integers(0, 99))
def test_header_shaped_bytes(scratch, code, dims, extra, payload_seed):
  _count("idx_header_shaped")
  header = bytes([0, 0, code, len(dims)]) + np.asarray(dims,
                                                       ">i4").tobytes()
  itemsize = {0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(code, 1)
  expected = int(np.prod([max(d, 0) for d in dims])) * itemsize
  size = max(expected + extra, 0)
  payload = np.random.RandomState(payload_seed).bytes(size)
  array = _read(scratch, header + payload)
  valid = (code in _CODES[:6] and dims and min(dims) >= 0 and
           size == expected)
  assert (array is not None) == bool(valid)
  if valid:
    assert list(array.shape) == dims


@_settings(200)
@hypothesis.given(array=hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.int8, np.int16, np.int32,
                           np.float32, np.float64]),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)),
                  compress=st.booleans())
def test_round_trip(scratch, array, compress):
  _count("idx_round_trip")
  path = os.path.join(scratch, "round.idx" + (".gz" if compress else ""))
  idx.write_idx(path, array)
  back = idx.read_idx(path)
  assert back.dtype == array.dtype and back.shape == array.shape
  np.testing.assert_array_equal(back, array)


@_settings(200)
@hypothesis.given(labels=st.lists(st.integers(0, 255), max_size=30),
                  num_classes=st.integers(1, 300))
def test_labels_in_range_or_a_data_error(scratch, labels, num_classes):
  _count("idx_labels")
  data = bytes([0, 0, 0x08, 1]) + np.asarray([len(labels)],
                                             ">i4").tobytes() + bytes(labels)
  read = _read(scratch, data, idx.read_labels, num_classes=num_classes)
  assert (read is None) == any(l >= num_classes for l in labels)
  if read is not None:
    assert read.tolist() == labels


# ------------------------------------------------------------ validators

_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
_ANY_INT = st.integers(-10, 10**6)


@_settings(400)
@hypothesis.given(
    epochs=_ANY_FLOAT, batch_size=_ANY_INT, learning_rate=_ANY_FLOAT,
    decay=st.sampled_from(["none", "exponential", "piecewise", "cosine",
                           "linear", ""]),
    decay_rate=_ANY_FLOAT, warmup=_ANY_FLOAT, weight_decay=_ANY_FLOAT,
    optimizer=st.sampled_from(["sgd", "momentum", "adam", "rmsprop", "lbfgs"]),
    momentum=_ANY_FLOAT, save_every=_ANY_INT, eval_batch=_ANY_INT,
    max_to_keep=_ANY_INT, max_steps=st.none() | _ANY_INT,
    divergence=_ANY_FLOAT)
def test_training_configs_are_valid_or_a_config_error(
    epochs, batch_size, learning_rate, decay, decay_rate, warmup,
    weight_decay, optimizer, momentum, save_every, eval_batch, max_to_keep,
    max_steps, divergence):
  _count("train_config")
  from distill_v1.training import loop  # pylint: disable=g-import-not-at-top
  config = loop.TrainConfig(
      "/nonexistent/run", epochs=epochs, batch_size=batch_size,
      learning_rate=learning_rate, learning_rate_decay=decay,
      learning_rate_decay_rate=decay_rate, warmup_epochs=warmup,
      weight_decay=weight_decay, optimizer=optimizer, momentum=momentum,
      save_every_steps=save_every, eval_batch_size=eval_batch,
      max_to_keep=max_to_keep, max_steps=max_steps,
      divergence_factor=divergence)
  try:
    loop.validate_config(config)
  except errors.ConfigError:
    return
  # What passes is usable.
  for value in (epochs, learning_rate, weight_decay, warmup, momentum,
                divergence):
    assert math.isfinite(value)
  assert epochs > 0 and learning_rate > 0 and batch_size >= 1
  assert max_to_keep >= 2 and (divergence == 0 or divergence > 1)
  assert loop.steps_of_run(1000, batch_size, epochs) >= 1


_HPARAM_KEYS = ["begin_pruning_step", "end_pruning_step", "pruning_frequency",
                "target_sparsity", "sparsity_function_end_step",
                "sparsity_function_exponent", "initial_sparsity",
                "block_height", "use_tpu", "name", "nbins"]
_HPARAM_VALUES = st.one_of(
    st.integers(-5, 10**6).map(str), _ANY_FLOAT.map(repr),
    st.sampled_from(["true", "false", "", "[1,2]", "x"]),
    st.text(max_size=6))


@_settings(400)
@hypothesis.given(
    pairs=st.lists(st.tuples(st.sampled_from(_HPARAM_KEYS) | st.text(
        max_size=8), _HPARAM_VALUES), max_size=6),
    noise=st.text(max_size=12))
def test_pruning_hparams_strings_parse_or_a_config_error(pairs, noise):
  _count("pruning_hparams")
  # pylint: disable=g-import-not-at-top
  from distill_v1.compression import pruning
  # pylint: enable=g-import-not-at-top
  text = ",".join("%s=%s" % pair for pair in pairs) + noise
  try:
    hparams = pruning.parse_pruning_hparams(text, source="--pruning_hparams")
  except errors.ConfigError as e:
    assert "--pruning_hparams" in str(e)
    return
  assert isinstance(hparams, pruning.PruningHParams)


@_settings(200)
@hypothesis.given(name=st.text(max_size=20),
                  validation_size=st.one_of(_ANY_INT, _ANY_FLOAT, st.booleans(),
                                            st.none()),
                  seed=st.one_of(st.integers(-2**40, 2**40), _ANY_FLOAT,
                                 st.booleans()))
def test_data_set_arguments_give_our_errors(scratch, name, validation_size,
                                            seed):
  _count("dataset_arguments")
  from distill_v1.data import datasets  # pylint: disable=g-import-not-at-top
  # Built-in names would search the machine (and maybe download): those
  # are covered by datasets_test; everything else is a bad name or npz path.
  hypothesis.assume(name not in ("fashion_mnist", "mnist"))
  with pytest.raises((errors.ConfigError, errors.DataError)):
    datasets.load_dataset("npz:" + os.path.join(scratch, name) if
                          name.startswith("n") else name,
                          data_dir=scratch, validation_size=validation_size,
                          seed=seed)


_TRAIN_FLAGS = ["epochs", "batch_size", "learning_rate", "learning_rate_decay",
                "learning_rate_decay_rate", "warmup_epochs", "weight_decay",
                "optimizer", "momentum", "seed", "save_every_steps",
                "max_steps", "divergence_factor", "validation_size",
                "prune_target_sparsity", "prune_end_step",
                "width_multiplier", "deterministic"]
_FLAG_TEXT = st.one_of(
    st.text(max_size=10), st.integers(-10**12, 10**12).map(str),
    _ANY_FLOAT.map(repr), st.sampled_from(["nan", "inf", "-inf", "1e999",
                                           "true", "0x10", "sgd", "cosine"]))


@_settings(300)
@hypothesis.given(values=st.dictionaries(st.sampled_from(_TRAIN_FLAGS),
                                         _FLAG_TEXT, max_size=5))
def test_train_flag_strings_are_parsed_or_refused_in_one_line(values):
  _count("train_flags")
  # pylint: disable=g-import-not-at-top
  from absl import flags
  from absl.testing import flagsaver
  from distill_v1.training import loop
  from tests import conftest
  # pylint: enable=g-import-not-at-top
  train = conftest.load_script("train")
  argv = ["train", "--train_dir=/nonexistent/run"] + [
      "--%s=%s" % item for item in sorted(values.items())]
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    try:
      flags.FLAGS(argv)
    except flags.Error:
      return  # absl prints "FATAL Flags parsing error: ..." and exits 1.
    try:
      loop.validate_config(train.common_flags.training_config())
    except errors.ConfigError:
      pass


# ---------------------------------------------------------------- losses

_GRAPHS = {}


def _loss_graph(num_classes, temperature):
  """One graph (and session) per (K, T), reused by every example."""
  key = (num_classes, temperature)
  if key not in _GRAPHS:
    # pylint: disable=g-import-not-at-top
    from distill_v1.compat import tf
    from distill_v1.losses import distillation
    from distill_v1.losses import hard
    from distill_v1.losses import soft_target
    # pylint: enable=g-import-not-at-top
    graph = tf.Graph()
    with graph.as_default():
      student = tf.compat.v1.placeholder(tf.float32, [None, num_classes])
      teacher = tf.compat.v1.placeholder(tf.float32, [None, num_classes])
      probs = tf.compat.v1.placeholder(tf.float32, [None, num_classes])
      labels = tf.compat.v1.placeholder(tf.int64, [None])
      alpha = 0.3
      fetches = {
          "soft": soft_target.soft_target_loss(teacher, student,
                                               temperature).loss,
          "from_probs": soft_target.soft_target_loss_from_probs(
              probs, student, temperature).loss,
          "hard": hard.hard_loss(labels, student).loss,
          "total": distillation.distillation_loss(
              labels, student, teacher, temperature=temperature,
              alpha=alpha).loss,
      }
    _GRAPHS[key] = (tf.compat.v1.Session(graph=graph),
                    (student, teacher, probs, labels), fetches, alpha)
  return _GRAPHS[key]


def _log_softmax(z):
  z = np.asarray(z, np.float64)
  z = z - z.max(axis=1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _reference_soft(teacher, student, temperature):
  p = np.exp(_log_softmax(np.asarray(teacher, np.float64) / temperature))
  log_q = _log_softmax(np.asarray(student, np.float64) / temperature)
  return temperature**2 * np.mean(-(p * log_q).sum(axis=1))


@st.composite
def _logits_batch(draw, magnitude):
  k = draw(st.sampled_from([2, 3, 10]))
  batch = draw(st.integers(1, 4))
  bound = float(np.float32(magnitude))
  values = st.floats(-bound, bound, width=32)
  shape = (batch, k)
  student = draw(hnp.arrays(np.float32, shape, elements=values))
  teacher = draw(hnp.arrays(np.float32, shape, elements=values))
  labels = draw(hnp.arrays(np.int64, (batch,), elements=st.integers(0, k - 1)))
  temperature = draw(st.sampled_from([0.5, 1.0, 2.0, 4.0, 20.0]))
  return student, teacher, labels, temperature


def _run_losses(student, teacher, labels, temperature, probs=None):
  sess, (s_ph, t_ph, p_ph, l_ph), fetches, alpha = _loss_graph(
      student.shape[1], temperature)
  if probs is None:
    probs = np.full(student.shape, 1.0 / student.shape[1], np.float32)
  values = sess.run(fetches, {s_ph: student, t_ph: teacher, p_ph: probs,
                              l_ph: labels})
  return values, alpha


@_settings(150)
@hypothesis.given(batch=_logits_batch(magnitude=30.0))
def test_soft_loss_matches_numpy_and_the_total_mixes_it(batch):
  _count("losses_reference")
  student, teacher, labels, temperature = batch
  values, alpha = _run_losses(student, teacher, labels, temperature)
  expected = _reference_soft(teacher, student, temperature)
  assert values["soft"] >= 0
  np.testing.assert_allclose(values["soft"], expected, rtol=2e-4,
                             atol=2e-4 * temperature**2)
  hard = -np.mean(_log_softmax(student)[np.arange(len(labels)), labels])
  np.testing.assert_allclose(values["hard"], hard, rtol=2e-4, atol=2e-5)
  np.testing.assert_allclose(
      values["total"], alpha * values["hard"] + (1 - alpha) * values["soft"],
      rtol=1e-5, atol=1e-5)


@_settings(150)
@hypothesis.given(batch=_logits_batch(magnitude=1e30))
def test_losses_are_finite_and_non_negative_for_extreme_logits(batch):
  _count("losses_extreme")
  student, teacher, labels, temperature = batch
  # Logits up to 1e30 in magnitude: the loss may be huge (up to about
  # 2 * T * max |z|), but it is never NaN or Inf (float32 goes to 3.4e38).
  values, _ = _run_losses(student, teacher, labels, temperature)
  for name in ("soft", "hard", "total"):
    assert np.isfinite(values[name]) and values[name] >= 0, (name, values)


@_settings(150)
@hypothesis.given(batch=_logits_batch(magnitude=50.0))
def test_one_hot_teacher_at_t1_is_plain_cross_entropy(batch):
  _count("losses_one_hot")
  student, _, labels, _ = batch
  onehot = np.eye(student.shape[1], dtype=np.float32)[labels]
  values, _ = _run_losses(student, student, labels, 1.0, probs=onehot)
  np.testing.assert_allclose(values["from_probs"], values["hard"], rtol=1e-5,
                             atol=1e-5)
