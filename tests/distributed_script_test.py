"""Runs scripts/train.py and scripts/distill.py as a cluster on 127.0.0.1.

Flag errors run in-process; the slow tests start 1 parameter server and 2
workers as subprocesses on free loopback ports (through the launcher, or one
by one) on a tiny Fashion-MNIST-layout IDX folder (256 train, 64 test images
of 28x28, 10 learnable classes: 8 steps per epoch at batch 32). Every process
is killed at the end, also when a test fails.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from distill_v1.compat import tf
from distill_v1.training import cluster as cluster_lib
from tests import conftest
from tests import testing_utils

SCRIPTS = os.path.join(conftest.ROOT, "scripts")
STEPS_PER_EPOCH = 8
# Short waits and grace periods, one thread per op: 3 processes share 2 cores.
QUICK = ["--batch_size=32", "--intra_op_threads=1", "--inter_op_threads=1",
         "--session_wait_secs=0.5", "--stop_grace_period_secs=2",
         "--learning_rate=0.1"]
TIMEOUT = 240


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  folder, _ = testing_utils.write_fashion_mnist_idx(
      str(tmp_path_factory.mktemp("fashion_mnist")))
  return folder


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, data_dir):
  """An mlp_student trained for 3 epochs in this process: the teacher."""
  return testing_utils.train_source_model(
      str(tmp_path_factory.mktemp("teacher")), data_dir, epochs=3,
      model="mlp_student")


def _launcher():
  return conftest.load_script("launch_local_cluster")


def _read_json(path):
  with open(path) as f:
    return json.load(f)


def _worker_reports(train_dir, num_workers=2):
  return [_read_json(os.path.join(train_dir, "worker_%d.json" % i))
          for i in range(num_workers)]


class _Cluster(object):
  """1 ps + N workers of one binary; `close` kills every process group."""

  def __init__(self, log_dir, binary, args, num_workers=2):
    self.launcher = _launcher()
    self.log_dir = log_dir
    self.command = [sys.executable, os.path.join(SCRIPTS, binary + ".py")]
    self.args = args
    self.ps_hosts, self.worker_hosts = cluster_lib.local_hosts(1, num_workers)
    self.processes = []

  def log_path(self, job, index, run=0):
    return os.path.join(self.log_dir, "%s_%d.%d.log" % (job, index, run))

  def start(self, job, index, run=0, tf_config=False):
    """Starts a task; with tf_config its role comes from TF_CONFIG."""
    env = dict(os.environ, PYTHONPATH=conftest.ROOT)
    if tf_config:
      env["TF_CONFIG"] = json.dumps({
          "cluster": {"ps": self.ps_hosts, "worker": self.worker_hosts},
          "task": {"type": job, "index": index}})
      cluster_flags = []
    else:
      cluster_flags = self.launcher.task_flags(self.ps_hosts,
                                               self.worker_hosts, job, index)
    with open(self.log_path(job, index, run), "wb") as out:
      process = subprocess.Popen(self.command + self.args + cluster_flags,
                                 stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=env)
    self.processes.append(process)
    return process

  def log(self, job, index, run=0):
    with open(self.log_path(job, index, run), errors="replace") as f:
      return f.read()

  def wait(self, process, job, index, run=0):
    try:
      code = process.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
      code = "timeout"
    assert code == 0, "%s %d exited with %s:\n%s" % (
        job, index, code, self.log(job, index, run)[-3000:])

  def close(self):
    self.launcher.stop_tasks(self.processes, grace_secs=2.0)


# --- Errors: one line, no traceback, nothing started ----------------------


@pytest.mark.parametrize("binary,extra,message", [
    ("train", ["--ps_hosts=127.0.0.1:1", "--worker_hosts=127.0.0.1:2",
               "--job_name=chief"],
     "train: error: --job_name='chief': expected ps or worker"),
    ("train", ["--ps_hosts=127.0.0.1:1", "--worker_hosts=127.0.0.1:2",
               "--job_name=worker", "--task_index=1"],
     "train: error: --task_index=1 is out of range: the cluster has 1 worker "
     "task(s), 0 to 0"),
    ("train", ["--worker_hosts=127.0.0.1:2", "--job_name=worker"],
     "train: error: --worker_hosts, --job_name given without --ps_hosts"),
    ("train", ["--sync_replicas"],
     "train: error: --sync_replicas: only for a cluster; give --ps_hosts, "
     "--worker_hosts and --job_name (or TF_CONFIG)"),
    ("train", ["--ps_hosts=127.0.0.1:1", "--worker_hosts=127.0.0.1:2",
               "--job_name=worker", "--replicas_to_aggregate=2"],
     "train: error: replicas_to_aggregate needs sync_replicas (asynchronous "
     "training aggregates nothing)"),
    ("train", ["--ps_hosts=127.0.0.1:1", "--worker_hosts=127.0.0.1:2",
               "--job_name=worker", "--prune_target_sparsity=0.5"],
     "train: error: --prune_target_sparsity: not supported in a cluster "
     "(train in one process)"),
])
def test_bad_cluster_flags_are_one_line_errors(capsys, tmp_path, data_dir,
                                               binary, extra, message):
  train_dir = str(tmp_path / "run")
  code = conftest.run_binary(binary, ["--train_dir=" + train_dir,
                                      "--data_dir=" + data_dir] + extra)
  assert code == 3
  assert conftest.error_line(capsys.readouterr().err) == message
  assert not os.path.exists(train_dir)


def test_bad_tf_config_is_one_line_error(capsys, tmp_path, monkeypatch,
                                         teacher_dir):
  monkeypatch.setenv("TF_CONFIG", '{"cluster": {"ps": ["127.0.0.1:1"], '
                     '"worker": ["127.0.0.1:2"]}, "task": {"type": "worker", '
                     '"index": 3}}')
  train_dir = str(tmp_path / "run")
  code = conftest.run_binary("distill", [
      "--train_dir=" + train_dir, "--teacher_checkpoint=" + teacher_dir])
  assert code == 3
  assert conftest.error_line(capsys.readouterr().err) == (
      "distill: error: TF_CONFIG task.index=3 is out of range: the cluster "
      "has 1 worker task(s), 0 to 0")


def test_port_in_use_is_one_line_error(capsys, tmp_path, data_dir):
  with socket.socket() as taken:
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    host = "127.0.0.1:%d" % taken.getsockname()[1]
    code = conftest.run_binary("train", [
        "--train_dir=" + str(tmp_path / "run"), "--data_dir=" + data_dir,
        "--ps_hosts=127.0.0.1:1", "--worker_hosts=" + host,
        "--job_name=worker"])
  assert code == 3
  assert conftest.error_line(capsys.readouterr().err).startswith(
      "train: error: cannot start the /job:worker/task:0 server on %s: " %
      host)


# --- Clusters on 127.0.0.1 -------------------------------------------------


@pytest.mark.slow
def test_async_training_through_the_launcher_and_single_process_evaluation(
    tmp_path, data_dir, capsys):
  train_dir = str(tmp_path / "run")
  log_dir = str(tmp_path / "logs")
  epochs = 40
  launcher = subprocess.Popen(
      [sys.executable, os.path.join(SCRIPTS, "launch_local_cluster.py"),
       "--binary=train", "--num_workers=2", "--task_log_dir=" + log_dir,
       "--"] + QUICK + [
           "--model=mlp_student", "--data_dir=" + data_dir,
           "--train_dir=" + train_dir, "--epochs=%d" % epochs,
           "--log_every_steps=20"],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      start_new_session=True, env=dict(os.environ, PYTHONPATH=conftest.ROOT))
  try:
    out, _ = launcher.communicate(timeout=TIMEOUT)
  finally:
    if launcher.poll() is None:  # SIGTERM: the launcher stops every task.
      os.killpg(launcher.pid, signal.SIGTERM)
      try:
        launcher.wait(15)
      except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
  out = out.decode(errors="replace")
  assert launcher.returncode == 0, out[-3000:]
  assert re.search(r"cluster: ps 127\.0\.0\.1:\d+, workers "
                   r"127\.0\.0\.1:\d+,127\.0\.0\.1:\d+", out)
  assert "final test accuracy" in out  # the chief's lines are shown
  assert sorted(os.listdir(log_dir)) == ["ps_0.log", "worker_0.log",
                                         "worker_1.log"]

  target = epochs * STEPS_PER_EPOCH
  metrics = _read_json(os.path.join(train_dir, "metrics.json"))
  assert metrics["global_step"] >= target
  assert metrics["cluster"]["sync_replicas"] is False
  assert metrics["test_accuracy"] >= 0.9
  reports = _worker_reports(train_dir)
  assert [r["task_index"] for r in reports] == [0, 1]
  assert all(r["local_steps"] > 0 for r in reports), reports
  # Asynchronous: each global step is one worker's step.
  assert sum(r["local_steps"] for r in reports) >= target
  assert re.search(r"worker 1 epoch \d+/%d step \d+/%d" % (epochs, target),
                   open(os.path.join(log_dir, "worker_1.log")).read())

  # The chief's checkpoint in a single-process evaluation.
  eval_json = str(tmp_path / "eval.json")
  capsys.readouterr()
  assert conftest.run_binary("evaluate", [
      "--checkpoint=" + train_dir, "--data_dir=" + data_dir,
      "--latency_repeats=1", "--output_json=" + eval_json]) == 0
  result = _read_json(eval_json)
  assert result["global_step"] == metrics["global_step"]
  assert result["test_accuracy"] == pytest.approx(metrics["test_accuracy"],
                                                  abs=1e-9)
  assert result["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-4)


@pytest.mark.slow
def test_sync_distillation_every_worker_contributes(tmp_path, data_dir,
                                                    teacher_dir):
  train_dir = str(tmp_path / "kd")
  epochs = 10
  cluster = _Cluster(str(tmp_path), "distill", QUICK + [
      "--model=cnn_student", "--teacher_checkpoint=" + teacher_dir,
      "--data_dir=" + data_dir, "--train_dir=" + train_dir,
      "--epochs=%d" % epochs, "--log_every_steps=20", "--sync_replicas"])
  try:
    cluster.start("ps", 0)
    chief = cluster.start("worker", 0)
    other = cluster.start("worker", 1, tf_config=True)  # TF_CONFIG works too
    cluster.wait(chief, "worker", 0)
    cluster.wait(other, "worker", 1)
  finally:
    cluster.close()
  target = epochs * STEPS_PER_EPOCH
  metrics = _read_json(os.path.join(train_dir, "metrics.json"))
  assert metrics["global_step"] == target  # the chief stops exactly there
  assert metrics["cluster"]["sync_replicas"] is True
  assert metrics["cluster"]["replicas_to_aggregate"] == 2
  assert metrics["test_accuracy"] >= 0.9
  reports = _worker_reports(train_dir)
  assert all(r["local_steps"] > 0 for r in reports), reports
  assert all(r["sync_replicas"] for r in reports)
  # Every global step averaged 2 fresh gradients: at least 2 local steps.
  assert sum(r["local_steps"] for r in reports) >= 2 * target, reports
  # The teacher stayed on the workers: not in the chief's checkpoint.
  reader = tf.train.load_checkpoint(train_dir)
  names = sorted(reader.get_variable_to_shape_map())
  assert names and all(n == "global_step" or n.startswith("cnn_student/")
                       for n in names), names
  # ... and it was restored there: the student agrees with a real teacher.
  assert re.search(r"teacher_agreement (0\.9\d*|1\.0+)",
                   cluster.log("worker", 1)), cluster.log("worker", 1)[-2000:]


@pytest.mark.slow
def test_killed_worker_restarts_and_finishes(tmp_path, data_dir):
  train_dir = str(tmp_path / "run")
  target = 800
  cluster = _Cluster(str(tmp_path), "train", QUICK + [
      "--model=mlp_student", "--data_dir=" + data_dir,
      "--train_dir=" + train_dir, "--epochs=1000",
      "--max_steps=%d" % target, "--log_every_steps=10"])
  try:
    cluster.start("ps", 0)
    chief = cluster.start("worker", 0)
    worker = cluster.start("worker", 1)
    deadline = time.time() + TIMEOUT
    while "worker 1 epoch" not in cluster.log("worker", 1):
      assert time.time() < deadline and worker.poll() is None, (
          cluster.log("worker", 1)[-3000:])
      time.sleep(0.2)
    os.killpg(worker.pid, signal.SIGKILL)
    assert worker.wait(10) == -signal.SIGKILL
    restarted = cluster.start("worker", 1, run=1)
    cluster.wait(restarted, "worker", 1, run=1)
    cluster.wait(chief, "worker", 0)
  finally:
    cluster.close()
  metrics = _read_json(os.path.join(train_dir, "metrics.json"))
  assert metrics["global_step"] >= target
  report = _worker_reports(train_dir)[1]
  assert report["local_steps"] > 0, report  # the restarted process's
  assert 0 < report["first_global_step"] < target, report
  assert "worker 1 of 2 joined at global step %d" % (
      report["first_global_step"]) in cluster.log("worker", 1, run=1)


def _checkpoint_steps(train_dir):
  if not os.path.isdir(train_dir):
    return []
  return sorted(int(m.group(1)) for m in (
      re.match(r"model\.ckpt-(\d+)\.index$", f) for f in os.listdir(train_dir))
                if m)


@pytest.mark.slow
def test_restarted_parameter_server_is_recovered_from_the_last_checkpoint(
    tmp_path, data_dir):
  train_dir = str(tmp_path / "run")
  target = 700
  cluster = _Cluster(str(tmp_path), "train", QUICK + [
      "--model=mlp_student", "--data_dir=" + data_dir,
      "--train_dir=" + train_dir, "--epochs=1000",
      "--max_steps=%d" % target, "--log_every_steps=50",
      "--save_every_steps=100"])
  try:
    ps = cluster.start("ps", 0)
    chief = cluster.start("worker", 0)
    worker = cluster.start("worker", 1)
    deadline = time.time() + TIMEOUT
    while max(_checkpoint_steps(train_dir) or [0]) < 100:
      assert time.time() < deadline and chief.poll() is None, (
          cluster.log("worker", 0)[-3000:])
      time.sleep(0.2)
    os.killpg(ps.pid, signal.SIGKILL)
    ps.wait(10)
    saved = _checkpoint_steps(train_dir)
    time.sleep(2)
    cluster.start("ps", 0, run=1)  # same port, empty
    cluster.wait(chief, "worker", 0)
    cluster.wait(worker, "worker", 1)
  finally:
    cluster.close()
  assert _read_json(os.path.join(train_dir, "metrics.json"))[
      "global_step"] >= target
  found = [re.findall(r"worker %d of 2 re-created its session \(a task was "
                      r"restarted\) at global step (\d+)" % index,
                      cluster.log("worker", index)) for index in (0, 1)]
  assert found[0] and found[1], (saved, found)
  chief_step, worker_step = int(found[0][0]), int(found[1][0])
  # An empty parameter server has no global step: the chief restored its
  # last checkpoint before the kill (give or take the few steps the other
  # worker may take before the chief reads it) ...
  assert saved[-1] <= chief_step <= saved[-1] + 50, (saved, found)
  # ... and the other worker, which notices the loss in its own time (gRPC
  # reconnection back-off), went on from there.
  assert chief_step <= worker_step < target, (saved, found)
