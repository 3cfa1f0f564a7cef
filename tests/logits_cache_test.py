"""Tests of distill_v1/teachers/logits_cache.py."""

import os

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.teachers import checkpoint_teacher
from distill_v1.teachers import logits_cache
from tests import checkpoint_teacher_test as ct

NUM_CLASSES = 4


def _builder(prefix, model="cnn_student", scope="teacher"):
  def build(images):
    return checkpoint_teacher.build_checkpoint_teacher(
        images, model, prefix, NUM_CLASSES, scope=scope)
  return build


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
  """Two saved teachers and their logits on `images`, computed directly."""
  images = ct.random_images(n=23, seed=5)
  prefix_a, _, logits_a = ct.save_network(
      str(tmp_path_factory.mktemp("a")), seed=1, images=images)
  prefix_b, _, logits_b = ct.save_network(
      str(tmp_path_factory.mktemp("b")), model="mlp_student", seed=2,
      images=images)
  return {
      "images": images,
      "labels": np.arange(len(images)) % NUM_CLASSES,
      "pairs": [("cnn_student", prefix_a), ("mlp_student", prefix_b)],
      "builders": [_builder(prefix_a, scope="teacher_0"),
                   _builder(prefix_b, "mlp_student", scope="teacher_1")],
      "expected": np.stack([logits_a, logits_b]),
  }


def test_compute_logits_equals_direct_computation(teachers):
  # A batch size that does not divide N exercises the last partial batch.
  got = logits_cache.compute_logits(teachers["builders"], teachers["images"],
                                    batch_size=5)
  assert got.dtype == np.float32
  assert got.shape == (2, 23, NUM_CLASSES)
  # Batches of 5 against one of 23: oneDNN's float32 matmul blocks the two
  # shapes differently (|logits| up to 17, relative differences up to 1e-5 on
  # an AVX2 machine). A dropped or misplaced batch would be off by O(1).
  np.testing.assert_allclose(got, teachers["expected"], rtol=1e-4, atol=1e-4)


def test_fingerprint_is_stable_and_sensitive(tmp_path, teachers):
  images, labels = teachers["images"], teachers["labels"]
  pairs = teachers["pairs"]
  base = logits_cache.fingerprint(pairs, images, labels)
  assert base == logits_cache.fingerprint(pairs, images.copy(), labels.copy())
  assert len(base) == 64
  changed_image = images.copy()
  changed_image[3, 2, 1, 0] += 1e-3
  changed_labels = labels.copy()
  changed_labels[0] = (labels[0] + 1) % NUM_CLASSES
  variants = [
      logits_cache.fingerprint(pairs, changed_image, labels),
      logits_cache.fingerprint(pairs, images, changed_labels),
      logits_cache.fingerprint(pairs, images[:-1], labels[:-1]),
      logits_cache.fingerprint(pairs[::-1], images, labels),
      logits_cache.fingerprint(pairs[:1], images, labels),
      logits_cache.fingerprint([("cnn_teacher", pairs[0][1]), pairs[1]],
                               images, labels),
  ]
  assert len(set(variants + [base])) == len(variants) + 1


def test_fingerprint_follows_the_checkpoint_bytes(tmp_path):
  train_dir = str(tmp_path / "t")
  prefix, _, _ = ct.save_network(train_dir, seed=1)
  images = ct.random_images(n=4)
  labels = np.zeros([4], np.int64)
  before = logits_cache.fingerprint([("cnn_student", prefix)], images, labels)
  # The same checkpoint name with other values (a retrained teacher).
  same_prefix, _, _ = ct.save_network(train_dir, seed=2)
  assert same_prefix == prefix
  after = logits_cache.fingerprint([("cnn_student", prefix)], images, labels)
  assert after != before
  # One flipped byte in a data shard.
  shard = [f for f in os.listdir(train_dir) if ".data-" in f][0]
  with open(os.path.join(train_dir, shard), "r+b") as f:
    f.seek(100)
    byte = f.read(1)
    f.seek(100)
    f.write(bytes([byte[0] ^ 1]))
  assert logits_cache.fingerprint([("cnn_student", prefix)], images,
                                  labels) != after
  with pytest.raises(errors.CheckpointError, match=r"no files found for "
                     r"teacher .*model.ckpt-77"):
    logits_cache.fingerprint([("cnn_student", prefix[:-1] + "77")], images,
                             labels)


def test_save_load_round_trip(tmp_path):
  logits = np.random.RandomState(0).standard_normal((2, 9, 3)).astype(
      np.float32)
  path = str(tmp_path / "cache.npz")
  logits_cache.save(path, logits, "abc123")
  assert os.listdir(str(tmp_path)) == ["cache.npz"]  # No temporary left.
  loaded = logits_cache.load(path, "abc123", num_examples=9)
  assert loaded.dtype == np.float32
  np.testing.assert_array_equal(loaded, logits)
  np.testing.assert_array_equal(logits_cache.load(path, "abc123"), logits)


def test_stale_or_bad_cache_is_refused(tmp_path):
  logits = np.zeros((1, 9, 3), np.float32)
  path = str(tmp_path / "cache.npz")
  logits_cache.save(path, logits, "a" * 64)
  with pytest.raises(errors.DataError, match=r"cache\.npz is stale"):
    logits_cache.load(path, "b" * 64)
  with pytest.raises(errors.DataError,
                     match=r"has shape \(1, 9, 3\), expected \[teachers, 10, "):
    logits_cache.load(path, "a" * 64, num_examples=10)
  broken = str(tmp_path / "broken.npz")
  with open(broken, "wb") as f:
    f.write(b"not an npz file")
  with pytest.raises(errors.DataError, match=r"broken\.npz is unreadable"):
    logits_cache.load(broken, "a" * 64)


def test_get_or_compute_computes_once(tmp_path, teachers, monkeypatch):
  calls = []
  real = logits_cache.compute_logits

  def counting(builders, images, batch_size=1000):
    calls.append(len(images))
    return real(builders, images, batch_size)

  monkeypatch.setattr(logits_cache, "compute_logits", counting)
  path = str(tmp_path / "cache.npz")
  lines = []
  args = (path, teachers["builders"], teachers["pairs"], teachers["images"],
          teachers["labels"])
  first = logits_cache.get_or_compute(*args, log=lines.append)
  assert calls == [23] and os.path.exists(path)
  second = logits_cache.get_or_compute(*args, log=lines.append)
  assert calls == [23]
  np.testing.assert_array_equal(first, second)
  np.testing.assert_allclose(first, teachers["expected"], rtol=1e-6,
                             atol=1e-6)
  assert lines[0].startswith("teacher logits: computed 2 teachers x 23 ")
  assert lines[1].startswith("teacher logits: reusing %s" % path)
  # Other data: the cache is refused, not silently reused nor overwritten.
  mtime = os.path.getmtime(path)
  with pytest.raises(errors.DataError, match=r"stale"):
    logits_cache.get_or_compute(path, teachers["builders"], teachers["pairs"],
                                teachers["images"][:-1],
                                teachers["labels"][:-1], log=lines.append)
  assert calls == [23] and os.path.getmtime(path) == mtime


def test_replace_stale_recomputes_instead_of_refusing(tmp_path, monkeypatch):
  path = str(tmp_path / "cache.npz")
  logits_cache.save(path, np.zeros([1, 3, 2], np.float32), "0" * 64)
  fresh = np.ones([1, 3, 2], np.float32)
  monkeypatch.setattr(logits_cache, "compute_logits",
                      lambda builders, images, batch_size: fresh)
  monkeypatch.setattr(logits_cache, "fingerprint",
                      lambda teachers, images, labels: "1" * 64)
  images, labels = np.zeros([3, 2, 2, 1], np.float32), np.zeros([3])
  with pytest.raises(errors.DataError, match="stale"):
    logits_cache.get_or_compute(path, [], [], images, labels,
                                log=lambda _: None)
  got = logits_cache.get_or_compute(path, [], [], images, labels,
                                    log=lambda _: None, replace_stale=True)
  np.testing.assert_array_equal(got, fresh)
  np.testing.assert_array_equal(
      logits_cache.load(path, "1" * 64, num_examples=3), fresh)
