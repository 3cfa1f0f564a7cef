"""Error types of distill_v1.

Every error a user can cause by bad input (files, flags, checkpoints) is one of
these types, so binaries can print one clear line and exit non-zero instead of
showing a traceback.
"""


class DistillError(Exception):
  """Base class of all errors raised deliberately by distill_v1."""

  exit_code = 1


class DataError(DistillError):
  """A data file or array is missing, malformed or inconsistent."""

  exit_code = 2


class ConfigError(DistillError):
  """A flag value or a combination of arguments is invalid."""

  exit_code = 3


class CheckpointError(DistillError):
  """A checkpoint is missing, damaged or belongs to another architecture."""

  exit_code = 4


class UnsafeGraphError(DistillError):
  """A model file holds ops outside the allow-list (file or network I/O)."""

  exit_code = 5


class ExportError(DistillError):
  """An export could not be written or failed its verification."""

  exit_code = 6


class DivergenceError(DistillError):
  """Training stopped: the loss became NaN or Inf, or diverged."""

  exit_code = 7
