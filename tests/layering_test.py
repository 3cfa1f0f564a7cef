"""Lower packages never import higher ones (DESIGN.md's data flow)."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# data -> models -> losses / teachers -> training -> compression -> export
# -> evaluation -> pipeline; the top-level helpers sit below everything.
LEVELS = {"errors": 0, "compat": 0, "fileio": 0, "checkpoints": 0,
          "data": 1, "models": 2, "losses": 3, "teachers": 3, "training": 4,
          "compression": 5, "export": 6, "evaluation": 7, "pipeline": 8}


def _imports(path):
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and (
        node.module.startswith("distill_v1")):
      for alias in node.names:
        yield node.module + "." + alias.name
    elif isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.startswith("distill_v1"):
          yield alias.name


def test_no_module_imports_a_higher_layer_or_a_binary():
  problems = []
  for base, _, files in os.walk(os.path.join(ROOT, "distill_v1")):
    for name in files:
      if not name.endswith(".py"):
        continue
      path = os.path.join(base, name)
      rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
      if len(rel) < 2 or rel[1] == "__init__":
        continue
      level = LEVELS[rel[1]]
      for imported in _imports(path):
        parts = imported.split(".")
        if len(parts) > 1 and LEVELS.get(parts[1], -1) > level:
          problems.append("%s imports %s" % ("/".join(rel), imported))
      with open(path, encoding="utf-8") as f:
        text = f.read()
      if "import scripts" in text or "from scripts" in text or (
          "absl import flags" in text):
        problems.append("%s reaches for the binaries or FLAGS" %
                        "/".join(rel))
  assert not problems, problems
