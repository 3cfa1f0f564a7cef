"""Resumable stages: redo a stage only when its inputs changed.

Each stage of the main job (teacher, distill, prune, quantize, export,
verify) runs in its own folder under the output directory and ends by writing
`stage.json`: a fingerprint of everything the stage depends on (its flags and
the fingerprints of the stages it reads from) and its result. On a rerun:

  * complete, same fingerprint: the result is reused, nothing runs;
  * incomplete, same fingerprint (interrupted): the stage runs again in the
    same folder, so a training stage resumes from its last checkpoint;
  * different fingerprint (flags or upstream results changed): the folder is
    cleared and the stage is redone.
"""

import collections
import hashlib
import json
import os
import shutil
import time

from distill_v1 import fileio

STATE_FILENAME = "stage.json"

StageResult = collections.namedtuple("StageResult", [
    "name",  # stage name, e.g. "distill".
    "folder",  # the stage's folder.
    "fingerprint",  # hex digest of the stage's inputs.
    "result",  # dict returned by the stage function (JSON-able).
    "reused",  # True when nothing ran.
    "seconds",  # wall time of this run (0 when reused).
])


def fingerprint(inputs):
  """SHA-256 of a JSON-able dict, independent of key order."""
  text = json.dumps(inputs, sort_keys=True, default=str)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_state(folder):
  """The stage.json of `folder`, or None when absent or unreadable."""
  return fileio.read_json_or_none(os.path.join(folder, STATE_FILENAME))


def run_stage(output_dir, name, inputs, fn, log=print):
  """Runs (or reuses) one stage.

  Args:
    output_dir: the pipeline's output directory.
    name: the stage's name and folder name.
    inputs: JSON-able dict of everything the stage's output depends on.
    fn: callable(folder) -> JSON-able dict; does the stage's work inside
      `folder` (created beforehand) and returns its result.
    log: fn(str) for the start and end lines.

  Returns:
    StageResult.
  """
  folder = os.path.join(output_dir, name)
  digest = fingerprint(inputs)
  state = read_state(folder)
  if state and state.get("fingerprint") == digest and state.get("complete"):
    log("[%s] up to date, reusing %s" % (name, folder))
    return StageResult(name, folder, digest, state["result"], True, 0.0)
  if state and state.get("fingerprint") != digest:
    log("[%s] inputs changed since the last run: redoing the stage" % name)
    shutil.rmtree(folder, ignore_errors=True)
  elif os.path.isdir(folder) and state is None and os.listdir(folder):
    # Files without a state file: not ours, or from before a crash that
    # lost the state; only a fingerprinted folder may be resumed.
    log("[%s] %s holds files of an unknown run: clearing it" % (name, folder))
    shutil.rmtree(folder, ignore_errors=True)
  elif state:
    log("[%s] resuming an interrupted run" % name)
  os.makedirs(folder, exist_ok=True)
  fileio.write_json(os.path.join(folder, STATE_FILENAME),
                    {"fingerprint": digest, "complete": False,
                     "inputs": inputs})
  start = time.time()
  result = fn(folder)
  seconds = time.time() - start
  fileio.write_json(os.path.join(folder, STATE_FILENAME),
                    {"fingerprint": digest, "complete": True,
                     "inputs": inputs, "result": result,
                     "seconds": seconds})
  return StageResult(name, folder, digest, result, False, seconds)
