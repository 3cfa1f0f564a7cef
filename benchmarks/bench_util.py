"""Helpers shared by the speed benchmarks (speed.py, train_speed.py, ...).

Running the binaries: `run_child` runs one command from the checkout's root
and returns the child's peak RSS; `train_command`, `distill_flags` and
`peer_command` spell the command lines of our binaries and of the Keras 3
peer the same way in every benchmark; `run_rate` reads a run's figure from
its metrics.json and `peer_rate` from the peer's JSON, both the sustained
rate of the epochs after the first (`sustained_rate`).

Repeats and statistics: `interleave` runs rows of ours-and-peer sides in
interleaved repeats, `aggregate` turns what they returned into medians and
ranges, `ratio_of_medians` compares two of them.

Units: examples/sec for throughput, MB (10**6 bytes) for memory, whatever a
side returns for everything else (the key says it: `_us`, `_ms`, `gflops`).
"""

import json
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# model -> (family, benchmarks/keras_peer.py phase that trains it).
PEER_PHASES = {"mlp_teacher": ("mlp", "teacher"),
               "mlp_student": ("mlp", "student"),
               "cnn_teacher": ("cnn", "teacher"),
               "cnn_student": ("cnn", "student"),
               "mobilenet_v1": ("mobilenet", "teacher")}
# Network options of the speed rows' models; our binaries and keras_peer.py
# take them as the same flags (model_flags). Width 0.5, as the lightweight
# benchmark's MobileNet.
MODEL_OPTIONS = {"mobilenet_v1": {"width_multiplier": 0.5}}
# family -> plain-SGD learning rate of its speed rows (BENCHMARK.md's
# student recipe for mlp and cnn).
LEARNING_RATES = {"mlp": 0.1, "cnn": 0.05, "mobilenet": 0.05}
# family -> its student, for the distillation rows.
STUDENTS = {"mlp": "mlp_student", "cnn": "cnn_student"}
# Distillation settings of the speed benchmarks (the full preset's T, alpha).
TEMPERATURE, ALPHA = 8.0, 0.5
# Progress lines and checkpoints would only slow the timed loop down.
QUIET_TRAINING_FLAGS = ("--log_every_steps=100000", "--save_every_steps=0")


def quote(command):
  """A command list as one shell-quoted line."""
  return " ".join(shlex.quote(str(c)) for c in command)


# Started by run_child: runs `argv[2:]`, waits with os.wait4, and writes the
# child's ru_maxrss (kilobytes on Linux) to the file argv[1]. On Linux a
# process's ru_maxrss keeps the high-water mark of the process it was forked
# from (exec does not reset it), so the measured child must be forked from a
# small fresh interpreter, not from a benchmark process that holds
# TensorFlow and the data.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
  f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(command, cwd=ROOT, log=print):
  """Runs `command` (a list) in `cwd`; returns its peak RSS in MB (10**6 B).

  The child's stdout is dropped and its stderr kept for the error message.
  The RSS is the child's own (and of the processes it waited for), never
  the caller's.

  Raises:
    RuntimeError: the child exited non-zero; the message holds the last
      lines of its stderr.
  """
  if log:
    log("$ " + quote(command))
  with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile(
      "r", suffix=".maxrss") as maxrss:
    code = subprocess.call(
        [sys.executable, "-c", _LAUNCHER, maxrss.name] + list(command),
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
    if code != 0:
      err.seek(0)
      tail = err.read().decode("utf-8", "replace").strip().splitlines()[-8:]
      raise RuntimeError("%s exited %d:\n%s" % (
          quote(command[:2]), code, "\n".join(tail)))
    return int(maxrss.read()) * 1024 / 1e6


def train_command(binary, model, train_dir, learning_rate, epochs=2,
                  extra=()):
  """Command line of scripts/<binary>.py (train or distill), batch 128."""
  return [sys.executable, "scripts/%s.py" % binary, "--model=" + model,
          "--train_dir=" + train_dir, "--epochs=%g" % epochs,
          "--learning_rate=%g" % learning_rate] + list(
              QUIET_TRAINING_FLAGS) + list(extra)


def model_flags(model):
  """--<option>=<value> flags of MODEL_OPTIONS[model] (both sides')."""
  return ["--%s=%g" % (k, v)
          for k, v in sorted(MODEL_OPTIONS.get(model, {}).items())]


def learning_rate(model):
  """The speed rows' plain-SGD learning rate of `model`."""
  return LEARNING_RATES[PEER_PHASES[model][0]]


def distill_flags(teacher_model, teacher_checkpoint, cache=None,
                  temperature=TEMPERATURE, alpha=ALPHA):
  """Flags of scripts/distill.py for one teacher, online or cached."""
  out = ["--teacher_model=" + teacher_model,
         "--teacher_checkpoint=" + teacher_checkpoint,
         "--temperature=%g" % temperature, "--alpha=%g" % alpha]
  if cache:
    out.append("--teacher_logits_cache=" + cache)
  return out


def peer_command(family, phase, output_json, epochs=2, learning_rate=None,
                 extra=()):
  """Command line of benchmarks/keras_peer.py: plain SGD, batch 128."""
  command = [sys.executable, "benchmarks/keras_peer.py", "--family=" + family,
             "--phase=" + phase, "--epochs=%d" % epochs, "--optimizer=sgd",
             "--temperature=%g" % TEMPERATURE, "--alpha=%g" % ALPHA,
             "--output_json=" + output_json]
  if learning_rate is not None:
    command.append("--learning_rate=%g" % learning_rate)
  return command + list(extra)


def read_json(path):
  with open(path) as f:
    return json.load(f)


def sustained_rate(per_epoch):
  """examples/sec of the epochs after the first, taken together.

  The first epoch includes graph building (tracing, for the peer) and
  warm-up. Equal-sized epochs: the later ones' harmonic mean (their examples
  over their seconds); for 2 epochs, the second's figure.
  """
  later = [float(r) for r in per_epoch[1:]]
  if not later:
    raise ValueError("a sustained rate needs >= 2 epochs, got %d"
                     % len(per_epoch))
  return len(later) / sum(1.0 / r for r in later)


def run_rate(train_dir):
  """sustained_rate of a run of our binaries (its metrics.json)."""
  return sustained_rate([h["examples_per_sec"] for h in read_json(
      os.path.join(train_dir, "metrics.json"))["history"]])


def peer_rate(peer_json, phase):
  """sustained_rate of a keras_peer.py phase (its JSON)."""
  return sustained_rate(peer_json["phases"][phase]["examples_per_sec"])


def summarize(values):
  """{median, min, max, values} of a list of numbers (floats)."""
  values = [float(v) for v in values]
  return {"median": float(np.median(values)), "min": min(values),
          "max": max(values), "values": values}


def ratio_of_medians(numerator, denominator):
  """numerator["median"] / denominator["median"] of two summaries."""
  return numerator["median"] / denominator["median"]


def interleave(rows, repeats, log=print, after_repeat=None):
  """Runs every row's sides, repeat after repeat.

  Repeat r runs row 1's sides in order (e.g. ours, then the peer), then row
  2's, ..., before repeat r + 1 starts, so a drift of the machine's speed
  hits every side alike.

  Args:
    rows: list of (row name, [(side name, fn)]); fn(repeat) returns a
      nested dict of numbers (or None to record nothing).
    repeats: number of repeats.
    log: called with one line per side run; None for silence.
    after_repeat: if set, called as after_repeat(repeat, samples, order)
      when each repeat ends (e.g. to save what is measured so far).

  Returns:
    (samples, order): samples[row][side] is the list of what fn returned,
    one per repeat; order lists "r<repeat> <row> <side>" as run.
  """
  samples, order = {}, []
  for repeat in range(repeats):
    for row, sides in rows:
      for side, fn in sides:
        if log:
          log("--- repeat %d/%d: %s %s" % (repeat + 1, repeats, row, side))
        order.append("r%d %s %s" % (repeat + 1, row, side))
        value = fn(repeat)
        if value is not None:
          samples.setdefault(row, {}).setdefault(side, []).append(value)
    if after_repeat:
      after_repeat(repeat, samples, order)
  return samples, order


def flatten(nested, prefix=""):
  """{"a": {"b": 1}} -> {"a/b": 1}: the numeric leaves by path."""
  out = {}
  for key, value in nested.items():
    path = prefix + str(key)
    if isinstance(value, dict):
      out.update(flatten(value, path + "/"))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
      out[path] = value
  return out


def aggregate(samples):
  """Summaries of interleave's samples, leaf by leaf.

  Returns:
    {row: {side: {leaf path: summarize(values over the repeats)}}}; a leaf
    missing in some repeats is summarized over the repeats that have it.
  """
  out = {}
  for row, sides in samples.items():
    for side, results in sides.items():
      by_path = {}
      for result in results:
        for path, value in flatten(result).items():
          by_path.setdefault(path, []).append(value)
      out.setdefault(row, {})[side] = {
          path: summarize(values) for path, values in sorted(by_path.items())}
  return out


class PeakRss(object):
  """Runs children and keeps each one's peak RSS (MB) under a label."""

  def __init__(self, log=print):
    self.samples = {}
    self.log = log

  def run(self, label, command):
    """run_child(command); records and returns its peak RSS under label."""
    mb = run_child(command, log=self.log)
    self.samples.setdefault(label, []).append(mb)
    return mb

  def summary(self):
    """{label: summarize(MB over its runs)}."""
    return {k: summarize(v) for k, v in sorted(self.samples.items())}

  def per_binary(self):
    """{binary (label's first word): max MB over its runs}."""
    out = {}
    for label, values in self.samples.items():
      binary = label.split()[0]
      out[binary] = max(out.get(binary, 0.0), max(values))
    return dict(sorted(out.items()))
