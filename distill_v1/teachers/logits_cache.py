"""Cached (offline) distillation: the teachers' logits computed once.

The teachers run once over the training set in inference mode; their logits
are stored in an `.npz` file with a fingerprint of the teachers (model names
and the bytes of their checkpoint or graph files) and of the training data.
Later runs reuse the file only when the fingerprint matches; a stale cache is
refused, never silently used. Distilling from the cache trains the student
without running the teacher at all.

Logits are stored per teacher ([num_teachers, N, num_classes]) so that the
softened ensemble mean can be formed at any temperature.
"""

import hashlib
import io
import os

import numpy as np

from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf

FORMAT_VERSION = 1


def _hash_file(digest, path):
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)


def _source_files(source):
  """Files whose bytes define a teacher: checkpoint shards or a graph file."""
  if os.path.isdir(source):  # A SavedModel.
    out = []
    for base, _, files in os.walk(source):
      out += [os.path.join(base, f) for f in sorted(files)]
    return sorted(out)
  if os.path.isfile(source):  # A frozen graph.
    return [source]
  folder = os.path.dirname(source) or "."
  stem = os.path.basename(source)
  return sorted(
      os.path.join(folder, f) for f in os.listdir(folder)
      if f in (stem + ".index", stem + ".meta") or
      f.startswith(stem + ".data-"))


def fingerprint(teachers, images, labels):
  """A hex digest of the teachers and the training data.

  Args:
    teachers: list of (model name or kind, checkpoint prefix or graph path).
    images: the training images, float32 [N, H, W, C].
    labels: the training labels, int [N].

  Returns:
    A SHA-256 hex string.

  Raises:
    CheckpointError: a teacher's files cannot be read.
  """
  digest = hashlib.sha256()
  digest.update(b"distill_v1 logits cache v%d\n" % FORMAT_VERSION)
  for name, source in teachers:
    digest.update(("teacher %s\n" % name).encode("utf-8"))
    files = _source_files(source)
    if not files:
      raise errors.CheckpointError("no files found for teacher %s" % source)
    for path in files:
      digest.update(os.path.basename(path).encode("utf-8"))
      try:
        _hash_file(digest, path)
      except OSError as e:
        raise errors.CheckpointError("cannot read %s: %s" %
                                     (path, e.strerror or e)) from None
  images = np.ascontiguousarray(images)
  labels = np.ascontiguousarray(labels)
  digest.update(str(images.shape).encode("utf-8"))
  digest.update(images.data)
  digest.update(labels.astype(np.int64).data)
  return digest.hexdigest()


def compute_logits(teacher_builders, images, batch_size=1000):
  """Runs each teacher in inference mode over `images`.

  Args:
    teacher_builders: list of fn(images) -> TeacherHandle.
    images: float32 [N, H, W, C].
    batch_size: examples per session run.

  Returns:
    float32 array [num_teachers, N, num_classes].
  """
  graph = tf.Graph()
  with graph.as_default():
    images_ph = tf.compat.v1.placeholder(
        tf.float32, [None] + list(images.shape[1:]), name="images")
    teachers = [build(images_ph) for build in teacher_builders]
    logits = tf.stack([t.logits for t in teachers], axis=0)
    with tf.compat.v1.Session(graph=graph) as sess:
      for teacher in teachers:
        teacher.init_fn(sess)
      parts = [sess.run(logits, {images_ph: images[i:i + batch_size]})
               for i in range(0, len(images), batch_size)]
  return np.concatenate(parts, axis=1).astype(np.float32)


def save(path, logits, digest):
  """Writes the cache atomically."""
  buffer = io.BytesIO()
  np.savez(buffer, logits=logits, fingerprint=np.array(digest),
           format_version=np.array(FORMAT_VERSION))
  fileio.write_bytes(path, buffer.getvalue())


def load(path, digest, num_examples=None):
  """Reads the cache; refuses one made for other teachers or data.

  Args:
    path: the `.npz` file.
    digest: the expected fingerprint.
    num_examples: expected N, or None.

  Returns:
    float32 array [num_teachers, N, num_classes].

  Raises:
    DataError: unreadable, stale or inconsistent cache.
  """
  try:
    with np.load(path, allow_pickle=False) as data:
      stored = str(data["fingerprint"])
      version = int(data["format_version"])
      logits = data["logits"]
  except (OSError, ValueError, KeyError) as e:
    raise errors.DataError("teacher logits cache %s is unreadable: %s" %
                           (path, e)) from None
  if version != FORMAT_VERSION or stored != digest:
    raise errors.DataError(
        "teacher logits cache %s is stale: it was made for other teachers or "
        "other training data (fingerprint %s..., expected %s...); delete it "
        "or pass another --teacher_logits_cache" %
        (path, stored[:12], digest[:12]))
  if logits.ndim != 3 or (num_examples is not None and
                          logits.shape[1] != num_examples):
    raise errors.DataError("teacher logits cache %s has shape %s, expected "
                           "[teachers, %s, classes]" %
                           (path, logits.shape, num_examples))
  return logits


def get_or_compute(path, teacher_builders, teachers, images, labels,
                   batch_size=1000, log=print, replace_stale=False):
  """Returns cached logits, computing and storing them when absent.

  Args:
    path: the cache `.npz` file.
    teacher_builders: list of fn(images) -> TeacherHandle.
    teachers: list of (name, source) describing the same teachers, for the
      fingerprint.
    images, labels: the training split the student will see.
    batch_size: examples per session run while computing.
    log: fn(str) for one line about what happened.
    replace_stale: recompute a cache made for other teachers or data instead
      of refusing it (for a cache the caller owns, e.g. the pipeline's; a
      user's --teacher_logits_cache is refused).

  Returns:
    float32 array [num_teachers, N, num_classes].
  """
  digest = fingerprint(teachers, images, labels)
  if os.path.exists(path):
    try:
      logits = load(path, digest, num_examples=len(images))
    except errors.DataError as e:
      if not replace_stale:
        raise
      log("teacher logits: %s; recomputing" % e)
    else:
      log("teacher logits: reusing %s (%d teachers x %d examples)" %
          (path, logits.shape[0], logits.shape[1]))
      return logits
  logits = compute_logits(teacher_builders, images, batch_size)
  save(path, logits, digest)
  log("teacher logits: computed %d teachers x %d examples into %s" %
      (logits.shape[0], logits.shape[1], path))
  return logits
