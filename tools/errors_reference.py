"""Writes docs/errors.md, every bad input's message and exit code, from the
cases `tests/errors_table_test.py` runs.

  python tools/errors_reference.py           # rewrite docs/errors.md
  python tools/errors_reference.py --check   # exit 1 if it is out of date

The table is `tests/errors_table.CASES`: each row is tested (message, exit
code, no traceback, nothing half-written), so the document cannot promise a
message the binaries do not print.
"""

import collections
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "docs", "errors.md")
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from tests import errors_table
# pylint: enable=g-import-not-at-top,wrong-import-position

INTRO = """\
# Bad input: messages and exit codes

Every binary meets bad input the same way: **one line on stderr, a non-zero
exit code, no traceback, and nothing half-written on disk** (every file is
written to a temporary name and renamed into place, and removed when the
write fails). The table below lists every bad input the test suite feeds
the binaries, with the exact line each prints (`…` stands for a path or a
detail that varies) and its exit code. Each row is a case of
`tests/errors_table_test.py`, which checks the line, the exit code, the
absence of a traceback and of any temporary or partial file; this page is
generated from the same table by `tools/errors_reference.py` (a test keeps
it current). Write failures (full disk, read-only file system) are injected
in the test, since CI runs as root.

Flag values a validator refuses are reported by absl while the flags are
parsed (`FATAL Flags parsing error: ...`, followed by absl's `Pass
--helpshort or --helpfull to see help on flags.`), before anything runs.
Errors found later are `<binary>: error: ...`.

## Exit codes

| code | meaning |
| ---: | --- |
"""


def _cell(text):
  return text.replace("|", "\\|")


def render():
  lines = [INTRO.rstrip("\n")]
  for code, meaning in errors_table.EXIT_CODES.items():
    lines.append("| %d | %s |" % (code, _cell(meaning)))
  lines.append("| 130 | interrupted (Ctrl-C or SIGTERM): a checkpoint was "
               "saved first; rerun the same command to resume |")
  by_category = collections.OrderedDict()
  for case in errors_table.CASES:
    by_category.setdefault(case.category, []).append(case)
  for category, cases in by_category.items():
    lines += ["", "## " + category, "",
              "| bad input | binary | stderr | exit |",
              "| --- | --- | --- | ---: |"]
    for case in cases:
      note = {"disk_full": " (injected: ENOSPC)",
              "read_only": " (injected: EROFS)"}.get(case.inject, "")
      lines.append("| %s%s | `distill-v1-%s` | `%s` | %d |" % (
          _cell(case.bad_input), note, case.binary, _cell(case.message),
          case.exit_code))
  lines += ["", "%d bad inputs in all; test ids are the case names in "
            "`tests/errors_table.py`." % len(errors_table.CASES), ""]
  return "\n".join(lines)


def main(argv):
  text = render()
  if "--check" in argv[1:]:
    try:
      with open(OUTPUT, encoding="utf-8") as f:
        current = f.read()
    except OSError:
      current = None
    if current != text:
      print("docs/errors.md is out of date: run python "
            "tools/errors_reference.py")
      return 1
    return 0
  from distill_v1 import fileio  # pylint: disable=g-import-not-at-top
  fileio.write_text(OUTPUT, text)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
