"""Shared pytest set-up.

absl flags are process-global and every binary defines `--dataset`,
`--batch_size`, ...; `load_script` lets tests of several binaries share one
pytest process by importing a binary with only its own flags defined.
"""

import contextlib
import importlib
import os
import sys

from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

_loaded = {"name": None, "module": None}


def forget_module(module_name):
  """Removes `module_name` from sys.modules and the flags it defined."""
  by_module = flags.FLAGS.flags_by_module_dict()
  # A copy: deleting a flag shrinks absl's own list while we iterate.
  for flag in list(by_module.get(module_name, [])):
    if flag.name in flags.FLAGS:
      delattr(flags.FLAGS, flag.name)
  sys.modules.pop(module_name, None)


def _delete_flags_defined_since(defined_before):
  """Deletes every flag not in the set of names `defined_before`.

  By name, not by defining module: absl credits a flag that a helper module
  defines to whichever module it finds calling.
  """
  for flag_name in set(flags.FLAGS) - defined_before:
    delattr(flags.FLAGS, flag_name)


def _forget_binaries():
  """Unloads every binary (and common_flags) with the flags it defined."""
  _loaded.update(name=None, module=None)
  for module_name in list(sys.modules):
    if module_name.startswith("scripts.") or module_name in (
        "common_flags",):
      forget_module(module_name)


def load_script(name):
  """Imports `scripts.<name>` after removing flags other binaries defined.

  An import that fails half-way (a flag defined twice, say) leaves none of
  its flags behind, so one broken binary cannot break the tests of the others.

  Args:
    name: binary name, e.g. "train".

  Returns:
    The freshly imported module (reused while no other binary is loaded).
  """
  if _loaded["name"] == name:
    return _loaded["module"]
  _forget_binaries()
  defined_before = set(flags.FLAGS)
  try:
    module = importlib.import_module("scripts." + name)
  except BaseException:
    _delete_flags_defined_since(defined_before)
    raise
  _loaded.update(name=name, module=module)
  return module


@contextlib.contextmanager
def flag_defining_module(module_name):
  """Imports a module that defines absl flags; forgets it (and them) after.

  For benchmark scripts under test: imported at collection time, their flags
  would collide with a binary's (`--repeats`, ...) for the whole session.

  Yields:
    The imported module.
  """
  _forget_binaries()  # A loaded binary's flags may share its names.
  forget_module(module_name)
  defined_before = set(flags.FLAGS)
  try:
    yield importlib.import_module(module_name)
  finally:
    _delete_flags_defined_since(defined_before)
    sys.modules.pop(module_name, None)


def run_binary(name, argv):
  """Parses `argv` as app.run does and calls the binary's main.

  Args:
    name: binary name, e.g. "train".
    argv: flags, without the program name.

  Returns:
    The exit code (0 when main returns).
  """
  # pylint: disable=g-import-not-at-top
  from absl import app
  from absl.testing import flagsaver
  # pylint: enable=g-import-not-at-top
  module = load_script(name)
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    try:
      module.main(app.parse_flags_with_usage([name] + argv))
    except SystemExit as e:
      return e.code
  return 0


def error_line(err):
  """The one error line of stderr (absl adds a `Pass --helpshort` hint).

  Fails the test when stderr holds a traceback or more than one line.
  """
  assert "Traceback" not in err
  lines = [line for line in err.strip().splitlines()
           if not line.startswith("Pass --helpshort or --helpfull")]
  assert len(lines) == 1, err
  return lines[0]
