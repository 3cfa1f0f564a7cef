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
