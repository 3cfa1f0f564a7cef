"""Shared pytest set-up.

absl flags are process-global and every binary defines `--dataset`,
`--batch_size`, ...; `load_script` lets tests of several binaries share one
pytest process by importing a binary with only its own flags defined.
"""

import importlib
import os
import sys

from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

_loaded = {"name": None, "module": None}


def load_script(name):
  """Imports `scripts.<name>` after removing flags other binaries defined.

  Args:
    name: binary name, e.g. "train".

  Returns:
    The freshly imported module (reused while no other binary is loaded).
  """
  if _loaded["name"] == name:
    return _loaded["module"]
  by_module = flags.FLAGS.flags_by_module_dict()
  for module_name in list(sys.modules):
    if module_name.startswith("scripts.") or module_name in (
        "common_flags",):
      # A copy: deleting a flag shrinks absl's own list while we iterate.
      for flag in list(by_module.get(module_name, [])):
        if flag.name in flags.FLAGS:
          delattr(flags.FLAGS, flag.name)
      del sys.modules[module_name]
  module = importlib.import_module("scripts." + name)
  _loaded.update(name=name, module=module)
  return module


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
