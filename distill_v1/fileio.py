"""Atomic file writes: a reader never sees a half-written file.

Everything the toolkit writes (metrics, specs, reports, caches, exports) goes
to a temporary name in the target's folder and is renamed into place, so an
interrupted or failing write leaves the previous file (or none) behind.
"""

import contextlib
import json
import os
import tempfile

from distill_v1 import errors


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path next to `path`; renames it to `path` on success.

  The temporary file is removed if the body raises, so nothing half-written
  is left behind.

  Args:
    path: final file path.

  Yields:
    A temporary file path in the same folder (same file system, so the
    rename is atomic).
  """
  folder = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    # mkstemp creates 0600; give the file the permissions open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
  except OSError as e:
    raise errors.ExportError("cannot write %s: %s" % (path, e.strerror or e))
  try:
    yield tmp_path
    os.replace(tmp_path, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.remove(tmp_path)
    if isinstance(e, OSError):
      raise errors.ExportError(
          "cannot write %s: %s" % (path, e.strerror or e)) from None
    raise


def write_bytes(path, data):
  """Writes `data` (bytes) to `path` atomically."""
  with atomic_path(path) as tmp_path:
    with open(tmp_path, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())


def write_text(path, text):
  """Writes `text` (str, UTF-8) to `path` atomically."""
  write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
  """Writes `obj` as indented, key-sorted JSON to `path` atomically."""
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path):
  """Reads a JSON file; raises DataError naming the file when it is bad."""
  try:
    with open(path, "r", encoding="utf-8") as f:
      return json.load(f)
  except OSError as e:
    raise errors.DataError("cannot read %s: %s" % (path, e.strerror or e))
  except ValueError as e:
    raise errors.DataError("%s is not valid JSON: %s" % (path, e))


def read_json_or_none(path):
  """Reads a JSON file written by this toolkit; None when absent or bad.

  For files the toolkit can rebuild (metrics, stage states): a damaged one
  is treated as missing rather than stopping the run.
  """
  if not os.path.exists(path):
    return None
  try:
    return read_json(path)
  except errors.DataError:
    return None
