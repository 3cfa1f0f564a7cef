"""Checkpoint paths and the model spec stored beside them.

A training directory holds Saver checkpoints `model.ckpt-<step>`, the
`checkpoint` index file and `model_spec.json`, which says how to rebuild the
network (name, options, class count, image shape) without repeating flags.
"""

import os

from distill_v1 import errors
from distill_v1 import fileio
from distill_v1.compat import tf

CHECKPOINT_BASENAME = "model.ckpt"
MODEL_SPEC_FILENAME = "model_spec.json"
MODEL_SPEC_KEYS = ("model", "model_options", "num_classes", "image_shape",
                   "class_names", "dataset")


def checkpoint_exists(prefix):
  """True if the checkpoint `prefix` has its index file (V2 format)."""
  return tf.io.gfile.exists(prefix + ".index")


def resolve_checkpoint(path):
  """Returns a checkpoint prefix for `path`.

  Args:
    path: a checkpoint prefix (`dir/model.ckpt-100`) or a directory whose latest
      checkpoint is used.

  Returns:
    The checkpoint prefix.

  Raises:
    CheckpointError: nothing restorable at `path`.
  """
  if not path:
    raise errors.CheckpointError("no checkpoint given")
  if os.path.isdir(path):
    prefix = tf.train.latest_checkpoint(path)
    if prefix is None or not checkpoint_exists(prefix):
      raise errors.CheckpointError(
          "directory %s holds no checkpoint (expected a `checkpoint` file and "
          "%s-<step>.index/.data files)" % (path, CHECKPOINT_BASENAME))
    return prefix
  if checkpoint_exists(path):
    return path
  raise errors.CheckpointError(
      "checkpoint %s not found: give a checkpoint prefix (without .index) or "
      "a training directory" % path)


def latest_checkpoint(train_dir):
  """The latest checkpoint prefix in `train_dir`, or None."""
  if not os.path.isdir(train_dir):
    return None
  prefix = tf.train.latest_checkpoint(train_dir)
  if prefix is None or not checkpoint_exists(prefix):
    return None
  return prefix


def step_of(prefix):
  """The global step encoded in a checkpoint prefix `...-<step>`, or None."""
  tail = prefix.rsplit("-", 1)[-1]
  return int(tail) if tail.isdigit() else None


def write_model_spec(train_dir, spec):
  """Writes `model_spec.json` (atomically) after checking its keys."""
  missing = [k for k in MODEL_SPEC_KEYS if k not in spec]
  if missing:
    raise errors.ConfigError("model spec lacks keys %s" % ", ".join(missing))
  fileio.write_json(os.path.join(train_dir, MODEL_SPEC_FILENAME), dict(spec))


def read_model_spec(train_dir):
  """Reads `model_spec.json` from `train_dir` (or a checkpoint's folder).

  Args:
    train_dir: a training directory or a checkpoint prefix inside one.

  Returns:
    The spec dict, with the keys of MODEL_SPEC_KEYS.

  Raises:
    CheckpointError: the file is missing or lacks keys.
  """
  folder = train_dir if os.path.isdir(train_dir) else os.path.dirname(
      train_dir)
  path = os.path.join(folder, MODEL_SPEC_FILENAME)
  if not os.path.exists(path):
    raise errors.CheckpointError(
        "%s not found: pass --model (and the data set) explicitly, or point "
        "at a directory written by distill-v1-train" % path)
  try:
    spec = fileio.read_json(path)
  except errors.DataError as e:
    raise errors.CheckpointError(str(e)) from None
  missing = [k for k in MODEL_SPEC_KEYS if k not in spec]
  if missing:
    raise errors.CheckpointError("%s lacks keys %s" %
                                 (path, ", ".join(missing)))
  return spec
