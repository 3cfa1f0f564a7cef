r"""Kill-and-resume trials: SIGKILL a training binary anywhere, rerun, compare.

For each binary (train, distill) this runs the same command on a tiny IDX
data set with --deterministic:
  1. once without interruption (the reference);
  2. once per trial, SIGKILLed at one or more kill points (a random delay
     after start-up, or a random delay after the `checkpoint` file first
     names a given step, so kills land during start-up, training steps,
     checkpoint writes and evaluation alike), then rerun with the same
     command until it finishes;
and compares every variable of each trial's final checkpoint with the
reference's, bit for bit (`np.array_equal`, same names, dtypes and shapes).
The figures of docs/reliability.md come from this script.

Usage:
  python benchmarks/kill_resume.py --trials=8 --work_dir=/tmp/kill_resume \
      --output_json=docs/benchmarks/kill_resume.json
"""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

FLAGS = flags.FLAGS

# 512 examples in batches of 32: 16 steps an epoch, 48 in all, a checkpoint
# every 3 steps (so a kill lands between, during and after saves).
NUM_TRAIN = 512
COMMON_ARGS = ("--batch_size=32", "--epochs=3", "--save_every_steps=3",
               "--log_every_steps=8", "--summary_every_steps=5",
               "--optimizer=momentum", "--learning_rate=0.05", "--seed=3",
               "--deterministic")
# mlp_teacher has dropout: the masks must be the same after a resume too.
TRAIN_ARGS = ("--model=mlp_teacher",)
DISTILL_ARGS = ("--model=mlp_student", "--temperature=4", "--alpha=0.5")
_STATE_RE = re.compile(r'^model_checkpoint_path: "[^"]*-(\d+)"', re.M)


def write_data(folder):
  """The tiny IDX data set (28x28, 10 classes) the trials train on."""
  from tests import testing_utils  # pylint: disable=g-import-not-at-top
  testing_utils.write_fashion_mnist_idx(folder, num_train=NUM_TRAIN,
                                        num_test=64)
  return folder


def command(binary, train_dir, data_dir, extra=()):
  """The command line of one run of scripts/<binary>.py."""
  args = TRAIN_ARGS if binary == "train" else DISTILL_ARGS
  return ([sys.executable, os.path.join(ROOT, "scripts", binary + ".py"),
           "--train_dir=" + train_dir, "--data_dir=" + data_dir] +
          list(COMMON_ARGS) + list(args) + list(extra))


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _default_signals():
  """Default SIGINT and SIGTERM in the child (before it execs).

  A shell starts background jobs with SIGINT ignored, and a process inherits
  that: Python then installs no handler, and the binary would (rightly)
  ignore the SIGINT this harness sends. The binary is tested as a user runs
  it in a terminal.
  """
  signal.signal(signal.SIGINT, signal.SIG_DFL)
  signal.signal(signal.SIGTERM, signal.SIG_DFL)


def saved_step(train_dir):
  """The step the `checkpoint` file names, or None (no TensorFlow needed)."""
  try:
    with open(os.path.join(train_dir, "checkpoint"), encoding="utf-8") as f:
      match = _STATE_RE.search(f.read())
  except OSError:
    return None
  return int(match.group(1)) if match else None


def run_to_end(cmd, log_path):
  """Runs `cmd` to completion; raises RuntimeError with its log if it fails."""
  with open(log_path, "ab") as log:
    result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env=_env(), check=False, cwd=ROOT)
  if result.returncode != 0:
    with open(log_path, encoding="utf-8", errors="replace") as f:
      raise RuntimeError("%s failed (exit %d):\n%s" %
                         (" ".join(cmd), result.returncode, f.read()[-3000:]))


def run_and_kill(cmd, train_dir, after_step, delay, log_path, timeout=600,
                 signum=signal.SIGKILL):
  """Starts `cmd` and SIGKILLs it (or sends `signum`) at a kill point.

  Args:
    cmd: the command.
    train_dir: its --train_dir, polled for the `checkpoint` file.
    after_step: kill `delay` seconds after the checkpoint file first names a
      step >= after_step; None: `delay` seconds after the start.
    delay: seconds.
    log_path: where its output goes.
    timeout: seconds before giving up.
    signum: the signal.

  Returns:
    dict: killed (bool; False if the run ended first), the step the
    checkpoint file named at the kill, seconds since the start, and the
    process's return code.
  """
  start = time.time()
  with open(log_path, "ab") as log:
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                               env=_env(), cwd=ROOT,
                               preexec_fn=_default_signals)
    try:
      armed = start if after_step is None else None
      while process.poll() is None and time.time() - start < timeout:
        if armed is None and (saved_step(train_dir) or 0) >= after_step:
          armed = time.time()
        if armed is not None and time.time() - armed >= delay:
          break
        time.sleep(0.005)
      killed = process.poll() is None
      if killed:
        os.kill(process.pid, signum)
      process.wait(timeout=timeout)
    finally:
      if process.poll() is None:
        process.kill()
        process.wait()
  return {"killed": killed, "checkpoint_step_at_kill": saved_step(train_dir),
          "seconds": round(time.time() - start, 3),
          "returncode": process.returncode,
          "after_step": after_step, "delay": round(delay, 3)}


def final_weights(train_dir):
  """{name: array} of every variable of train_dir's latest checkpoint."""
  from distill_v1.compat import tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(train_dir))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def differences(actual, expected):
  """Names of the variables whose bits differ (or that only one side has)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  names = sorted(set(actual) | set(expected))
  return [n for n in names
          if n not in actual or n not in expected or
          actual[n].dtype != expected[n].dtype or
          not np.array_equal(actual[n], expected[n])]


def kill_plan(rng, trial, total_steps):
  """The kill points of one trial: [(after_step or None, delay), ...].

  Trial 0 is killed during start-up; the others once or twice during
  training, at random steps and delays.
  """
  if trial == 0:
    return [(None, rng.uniform(0.5, 3.0))]
  kills = [(rng.randrange(1, total_steps), rng.uniform(0.0, 0.3))]
  if trial % 3 == 0:  # Killed again while resuming.
    kills.append((kills[0][0] + rng.randrange(1, 12), rng.uniform(0.0, 0.3)))
  return kills


def run_trials(binary, trials, work_dir, data_dir, reference_dir, seed=0,
               extra=(), total_steps=48, log=print, first_trial=0):
  """Kill-and-resume trials of one binary.

  Trials first_trial, ..., first_trial + trials - 1 run (kill_plan: trial 0
  is the start-up kill).

  Returns:
    dict: binary, trials, kill_points (kills delivered to a running
    process), bit_identical (trials whose final weights equal the
    reference's bit for bit), variables (compared per trial), results (per
    trial: kills, differing variables).
  """
  rng = random.Random(seed)
  expected = final_weights(reference_dir)
  results = []
  for trial in range(first_trial, first_trial + trials):
    train_dir = os.path.join(work_dir, "%s_trial%d" % (binary, trial))
    shutil.rmtree(train_dir, ignore_errors=True)
    cmd = command(binary, train_dir, data_dir, extra)
    log_path = train_dir + ".log"
    kills = [run_and_kill(cmd, train_dir, after, delay, log_path)
             for after, delay in kill_plan(rng, trial, total_steps)]
    run_to_end(cmd, log_path)
    diff = differences(final_weights(train_dir), expected)
    results.append({"trial": trial, "kills": kills, "differing": diff})
    log("%s trial %d: killed at checkpoint steps %s -> %s" % (
        binary, trial, [k["checkpoint_step_at_kill"] for k in kills
                        if k["killed"]],
        "bit-identical" if not diff else "DIFFERS in %s" % diff))
  return {
      "binary": binary, "trials": trials,
      "kill_points": sum(k["killed"] for r in results for k in r["kills"]),
      "bit_identical": sum(not r["differing"] for r in results),
      "variables": len(expected), "results": results,
  }


def run_all(work_dir, trials, binaries=("train", "distill"), seed=0,
            log=print):
  """The reference runs and the trials of each binary; returns the report."""
  os.makedirs(work_dir, exist_ok=True)
  data_dir = write_data(os.path.join(work_dir, "data"))
  teacher_dir = os.path.join(work_dir, "train_reference")
  shutil.rmtree(teacher_dir, ignore_errors=True)
  run_to_end(command("train", teacher_dir, data_dir), teacher_dir + ".log")
  report = {"command_args": list(COMMON_ARGS), "binaries": []}
  for binary in binaries:
    extra = () if binary == "train" else ("--teacher_checkpoint=" +
                                          teacher_dir,)
    reference_dir = teacher_dir
    if binary != "train":
      reference_dir = os.path.join(work_dir, binary + "_reference")
      shutil.rmtree(reference_dir, ignore_errors=True)
      run_to_end(command(binary, reference_dir, data_dir, extra),
                 reference_dir + ".log")
    report["binaries"].append(run_trials(
        binary, trials, work_dir, data_dir, reference_dir, seed=seed,
        extra=extra, log=log))
  return report


def _define_flags():
  # Only when run as a program: tests import this module beside the
  # binaries, whose flags (--seed, ...) share absl's one registry.
  flags.DEFINE_integer("trials", 8, "Trials per binary.")
  flags.DEFINE_list("binaries", ["train", "distill"], "Binaries to kill.")
  flags.DEFINE_string("work_dir", "/tmp/kill_resume", "Scratch folder.")
  flags.DEFINE_integer("seed", 0, "Seed of the kill points.")
  flags.DEFINE_string("output_json", None, "Where the report goes.")


def main(argv):
  del argv
  start = time.time()
  report = run_all(FLAGS.work_dir, FLAGS.trials, FLAGS.binaries, FLAGS.seed)
  report["seconds"] = round(time.time() - start, 1)
  for entry in report["binaries"]:
    print("%s: %d kill points in %d trials, %d of %d bit-identical to the "
          "uninterrupted run (%d variables each)" % (
              entry["binary"], entry["kill_points"], entry["trials"],
              entry["bit_identical"], entry["trials"], entry["variables"]))
  if FLAGS.output_json:
    from distill_v1 import fileio  # pylint: disable=g-import-not-at-top
    fileio.write_json(FLAGS.output_json, report)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
