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


def checkpoint_problem(prefix):
  """Why the checkpoint `prefix` cannot be restored, or None if it can.

  Reads every tensor once (as a restore would), so a missing or truncated
  data file and a flipped bit (each tensor has a CRC-32C) are all caught.

  Args:
    prefix: checkpoint prefix, e.g. `dir/model.ckpt-100`.

  Returns:
    None, or a one-line description of the damage.
  """
  if not checkpoint_exists(prefix):
    return "its index file %s.index is missing" % prefix
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  # The bundle reader reports a short read as IndexError (OutOfRange).
  except (tf.errors.OpError, ValueError, IndexError, RuntimeError,
          OSError) as e:
    return _one_line(e) or type(e).__name__
  return None


def listed_checkpoints(train_dir):
  """Checkpoint prefixes the `checkpoint` file of train_dir lists, oldest
  first; the files on disk (by step) when that file is unreadable."""
  try:
    state = tf.train.get_checkpoint_state(train_dir)
  except (tf.errors.OpError, ValueError):
    state = None
  if state is not None:
    listed = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path not in listed:
      listed.append(state.model_checkpoint_path)
    # Relative entries (save_relative_paths) are relative to train_dir.
    listed = [p if os.path.isabs(p) else os.path.join(train_dir, p)
              for p in listed if p]
    return listed
  found = tf.io.gfile.glob(os.path.join(train_dir, CHECKPOINT_BASENAME +
                                        "-*.index"))
  prefixes = [p[:-len(".index")] for p in found]
  return sorted((p for p in prefixes if step_of(p) is not None),
                key=step_of)


def latest_usable_checkpoint(train_dir):
  """The newest checkpoint of `train_dir` that is whole, and the damaged
  ones skipped on the way.

  A run killed at any moment leaves whole checkpoints behind (the Saver
  writes temporary files and the `checkpoint` file is replaced atomically),
  but a disk that filled up or a file truncated by hand does not; the
  previous checkpoint is then the one to resume from.

  Args:
    train_dir: a training directory.

  Returns:
    (prefix or None, [(damaged prefix, reason), ...] newest first).
  """
  damaged = []
  if not os.path.isdir(train_dir):
    return None, damaged
  for prefix in reversed(listed_checkpoints(train_dir)):
    problem = checkpoint_problem(prefix)
    if problem is None:
      return prefix, damaged
    damaged.append((prefix, problem))
  return None, damaged


def step_of(prefix):
  """The global step encoded in a checkpoint prefix `...-<step>`, or None."""
  tail = prefix.rsplit("-", 1)[-1]
  return int(tail) if tail.isdigit() else None


def stored_global_step(prefix):
  """The `global_step` variable stored in a checkpoint, else step_of(prefix).

  The two differ on an asynchronous cluster: the chief names a checkpoint by
  the step it read, and another worker may step before the variables are
  written. The stored value belongs with the stored weights.
  """
  try:
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    if reader.has_tensor("global_step"):
      return int(reader.get_tensor("global_step"))
  except (tf.errors.OpError, ValueError, TypeError):
    pass
  return step_of(prefix)


def make_model_spec(model, model_options, splits, dataset, **extra):
  """The model_spec.json of `model` trained on `splits` (plus `extra` keys).

  Args:
    model: model-zoo name.
    model_options: dict of network options.
    splits: datasets.DataSplits (class count, image shape, class names).
    dataset: the data set's name as given by the user (e.g. "npz:PATH").
    **extra: additional keys (e.g. distilled_from, temperature).
  """
  spec = {
      "model": model,
      "model_options": dict(model_options or {}),
      "num_classes": int(splits.num_classes),
      "image_shape": [int(d) for d in splits.image_shape],
      "class_names": list(splits.class_names),
      "dataset": dataset,
  }
  spec.update(extra)
  return spec


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


# Mismatches listed in one error message before "and N more".
_MAX_REPORTED = 10


def _one_line(error):
  """A TensorFlow error's message on one line (binaries print one line)."""
  return " ".join(str(getattr(error, "message", error)).split())


def stored_shapes(prefix):
  """{variable name: shape list} of the tensors stored in a checkpoint.

  Raises:
    CheckpointError: the checkpoint cannot be read.
  """
  try:
    stored = tf.train.list_variables(prefix)
  except (tf.errors.OpError, ValueError) as e:
    raise errors.CheckpointError(
        "cannot read checkpoint %s: %s" % (prefix, _one_line(e))) from None
  return {name: list(shape) for name, shape in stored}


def _as_var_map(variables):
  """{checkpoint name: variable} from a dict or a list (names = op names)."""
  if isinstance(variables, dict):
    return dict(variables)
  return {v.op.name: v for v in variables}


def mismatches(prefix, variables):
  """Describes each variable the checkpoint cannot restore.

  Extra tensors in the checkpoint (global_step, optimizer slots, a teacher's
  variables) are fine and not reported.

  Args:
    prefix: checkpoint prefix.
    variables: a list of tf.Variable (checkpoint keys = their op names, as
      for a Saver over a list) or a dict checkpoint key -> tf.Variable.

  Returns:
    A list of strings, one per missing or differently shaped variable; empty
    when everything fits.

  Raises:
    CheckpointError: the checkpoint cannot be read.
  """
  stored = stored_shapes(prefix)
  problems = []
  for name, variable in _as_var_map(variables).items():
    shape = variable.shape.as_list()
    if name not in stored:
      problems.append("%s %s is missing from the checkpoint" % (name, shape))
    elif stored[name] != shape:
      problems.append("%s has shape %s in the checkpoint but %s in the model" %
                      (name, stored[name], shape))
  return problems


def check_fits(prefix, variables, model_name=None):
  """Raises CheckpointError unless `prefix` holds every variable's shape.

  Args:
    prefix: checkpoint prefix.
    variables: as for `mismatches`.
    model_name: named in the message.

  Raises:
    CheckpointError: naming each missing or mis-shaped variable with both
      shapes, and the scopes the checkpoint does hold.
  """
  problems = mismatches(prefix, variables)
  if not problems:
    return
  scopes = sorted({name.split("/", 1)[0] for name in stored_shapes(prefix)})
  shown = problems[:_MAX_REPORTED]
  if len(problems) > len(shown):
    shown.append("and %d more" % (len(problems) - len(shown)))
  raise errors.CheckpointError(
      "checkpoint %s does not fit model %s (another architecture or "
      "options?): %s. The checkpoint holds variables under: %s" %
      (prefix, model_name or "in the graph", "; ".join(shown),
       ", ".join(scopes) or "(nothing)"))


def restore_variables(sess, prefix, variables, model_name=None):
  """Restores `variables` from `prefix` after checking names and shapes.

  Args:
    sess: a tf.compat.v1.Session on the variables' graph.
    prefix: checkpoint prefix.
    variables: as for `mismatches`.
    model_name: named in error messages.

  Raises:
    CheckpointError: nothing to restore, a variable missing or of another
      shape (each named with both shapes), or an unreadable checkpoint.
  """
  if not variables:
    raise errors.CheckpointError(
        "nothing to restore from %s: the model%s has no variables" %
        (prefix, " " + model_name if model_name else ""))
  check_fits(prefix, variables, model_name)
  saver = tf.compat.v1.train.Saver(var_list=variables if isinstance(
      variables, dict) else list(variables))
  try:
    saver.restore(sess, prefix)
  except (tf.errors.OpError, ValueError) as e:
    raise errors.CheckpointError(
        "cannot restore checkpoint %s: %s" % (prefix, _one_line(e))) from None
