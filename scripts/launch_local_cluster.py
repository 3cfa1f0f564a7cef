r"""Starts parameter servers and workers on this machine's loopback ports.

Usage:
  distill-v1-launch_local_cluster --binary=train --num_workers=2 -- \
      --model=cnn_student --train_dir=/tmp/cluster_run --epochs=2

  distill-v1-launch_local_cluster --binary=distill --num_workers=2 \
      --sync_replicas -- --model=cnn_student --train_dir=/tmp/cluster_kd \
      --teacher_checkpoint=/tmp/cnn_teacher --epochs=2

Everything after `--` goes to every task of the binary unchanged, with
`--ps_hosts --worker_hosts --job_name --task_index` added (free ports on
127.0.0.1). The chief's output (worker 0) is shown here; every task also
writes `<task_log_dir>/<job>_<index>.log`. When the workers are done the
parameter servers are stopped; Ctrl-C (or SIGTERM) stops every task. The exit code is
the first non-zero exit code of a worker, else 0.

To run the same binaries on several machines, start each task yourself with
the same --ps_hosts and --worker_hosts (see README.md, "Running on a
cluster"); this launcher only does that for you on one machine.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS

BINARIES = ("train", "distill")

flags.DEFINE_enum("binary", "train", BINARIES,
                  "The training binary every task runs.")
flags.DEFINE_integer("num_ps", 1, "Parameter servers.", lower_bound=1)
flags.DEFINE_integer("num_workers", 2, "Workers (worker 0 is the chief).",
                     lower_bound=1)
flags.DEFINE_bool(
    "sync_replicas", False,
    "Passed on as --sync_replicas: synchronous training (with "
    "--replicas_to_aggregate after `--` if not all workers).")
flags.DEFINE_string(
    "task_log_dir", None,
    "Folder of the tasks' logs (default: a new temporary folder).")


def binary_command(binary):
  """The argv prefix that runs the training binary `binary` (train, distill)."""
  if __package__:
    return [sys.executable, "-m", "%s.%s" % (__package__, binary)]
  return [sys.executable,
          os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       binary + ".py")]


def task_flags(ps_hosts, worker_hosts, job_name, task_index):
  return ["--ps_hosts=" + ",".join(ps_hosts),
          "--worker_hosts=" + ",".join(worker_hosts),
          "--job_name=" + job_name, "--task_index=%d" % task_index]


def start_task(command, log_path, echo=False):
  """Starts one task in its own process group, its output into log_path.

  Args:
    command: argv.
    log_path: file the task's stdout and stderr go to.
    echo: also copy the output to this process's stdout, line by line.

  Returns:
    subprocess.Popen.
  """
  with open(log_path, "wb") as out:
    if not echo:
      return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True)
  process = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)

  def copy():
    with open(log_path, "wb") as out:
      for line in process.stdout:
        out.write(line)
        out.flush()
        sys.stdout.buffer.write(line)
        sys.stdout.flush()

  threading.Thread(target=copy, daemon=True).start()
  return process


def stop_tasks(processes, grace_secs=5.0):
  """SIGTERM to every task's process group, then SIGKILL after grace_secs."""
  for p in processes:
    if p.poll() is None:
      try:
        os.killpg(p.pid, signal.SIGTERM)
      except ProcessLookupError:
        pass
  deadline = time.time() + grace_secs
  for p in processes:
    try:
      p.wait(max(deadline - time.time(), 0.01))
    except subprocess.TimeoutExpired:
      pass
  for p in processes:
    try:
      os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass
    p.wait()


def launch(binary, num_ps, num_workers, passthrough, log_dir):
  """Runs the cluster to the end; returns the exit code (see the module doc)."""
  from distill_v1.training import cluster  # pylint: disable=g-import-not-at-top
  os.makedirs(log_dir, exist_ok=True)
  ps_hosts, worker_hosts = cluster.local_hosts(num_ps, num_workers)
  command = binary_command(binary)
  print("cluster: ps %s, workers %s; logs in %s" %
        (",".join(ps_hosts), ",".join(worker_hosts), log_dir), flush=True)
  parameter_servers, workers = [], []
  try:
    for i in range(num_ps):
      parameter_servers.append(start_task(
          command + passthrough + task_flags(ps_hosts, worker_hosts, "ps", i),
          os.path.join(log_dir, "ps_%d.log" % i)))
    for i in range(num_workers):
      argv = command + passthrough + task_flags(ps_hosts, worker_hosts,
                                                "worker", i)
      workers.append(start_task(
          argv, os.path.join(log_dir, "worker_%d.log" % i), echo=i == 0))
    codes = [w.wait() for w in workers]
  finally:
    stop_tasks(workers + parameter_servers)
  for i, code in enumerate(codes):
    if code:
      sys.stderr.write("launch_local_cluster: worker %d exited with %d (see "
                       "%s)\n" % (i, code, os.path.join(
                           log_dir, "worker_%d.log" % i)))
  return next((c for c in codes if c), 0)


def main(argv):
  passthrough = list(argv[1:])
  if FLAGS.sync_replicas:
    passthrough.append("--sync_replicas")
  cluster_flags = [a for a in passthrough if a.split("=")[0].lstrip("-") in (
      "ps_hosts", "worker_hosts", "job_name", "task_index")]
  if cluster_flags:
    sys.stderr.write("launch_local_cluster: error: %s: the launcher sets the "
                     "cluster flags itself\n" % ", ".join(cluster_flags))
    sys.exit(3)

  def on_sigterm(signum, frame):
    del signum, frame
    raise KeyboardInterrupt()

  signal.signal(signal.SIGTERM, on_sigterm)
  log_dir = FLAGS.task_log_dir or tempfile.mkdtemp(
      prefix="distill_v1_cluster_")
  try:
    code = launch(FLAGS.binary, FLAGS.num_ps, FLAGS.num_workers, passthrough,
                  log_dir)
  except KeyboardInterrupt:
    sys.stderr.write("launch_local_cluster: interrupted; every task was "
                     "stopped\n")
    sys.exit(130)
  sys.exit(code)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
