"""BUILD covers every Python file and matches what the generator writes."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {".venv", ".git", "build", ".pytest_cache", "__pycache__"}


def _all_python_files():
  out = []
  for base, dirs, files in os.walk(ROOT):
    dirs[:] = [d for d in dirs
               if d not in SKIP_DIRS and not d.endswith(".egg-info")]
    for name in files:
      if name.endswith(".py"):
        out.append(os.path.relpath(os.path.join(base, name), ROOT))
  return sorted(out)


def _build_srcs():
  with open(os.path.join(ROOT, "BUILD"), encoding="utf-8") as f:
    text = f.read()
  srcs = set()
  for group in re.findall(r"srcs = \[([^\]]*)\]", text):
    srcs.update(re.findall(r'"([^"]+)"', group))
  return srcs


def test_every_python_file_has_a_build_target():
  covered = _build_srcs()
  missing = [p for p in _all_python_files()
             if p not in covered and p != "setup.py"]
  assert not missing, "not in BUILD (run tools/update_build.py): %s" % missing


def test_build_is_current():
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tools", "update_build.py"),
       "--check"], capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr


def test_every_script_has_a_binary_and_every_test_a_sized_test():
  with open(os.path.join(ROOT, "BUILD"), encoding="utf-8") as f:
    text = f.read()
  for path in _all_python_files():
    name = os.path.basename(path)[:-3]
    if path.startswith("scripts/") and name not in ("__init__",
                                                    "common_flags"):
      assert re.search(r'py_binary\(\n    name = "%s",' % name, text), path
    if path.startswith("tests/") and name.endswith("_test"):
      assert re.search(
          r'py_test\(\n    name = "%s",\n    srcs = \["%s"\],\n    size = "'
          % (name, re.escape(path)), text), path
