r"""Examples/sec of the train binary on a local cluster of 1, 2 and 4 workers.

For each worker count, `scripts/launch_local_cluster.py` starts 1 parameter
server and N workers on 127.0.0.1 that train --model on real Fashion-MNIST
(plain SGD, batch 128) for --epochs; the figure is the chief's count of
global steps x batch per second of training (every worker's steps: in
asynchronous training each global step is one worker's batch, in synchronous
training `replicas_to_aggregate` of them), beside each worker's own rate. A
single-process run (`loop.train`, no gRPC) is the baseline. Synthetic data is
never used.

Usage:
  python benchmarks/distributed_speed.py --epochs=2 \
      --output_json=docs/benchmarks/distributed.json
"""

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from distill_v1 import fileio  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["mlp_student", "cnn_student"],
                  "Models to train (mlp_student: 1.3 M parameters to move per "
                  "step, cnn_student: 20 k).")
flags.DEFINE_float("epochs", 2.0, "Epochs of each run (the global step "
                   "counts every worker's batches).")
flags.DEFINE_list("workers", ["1", "2", "4"], "Worker counts to time.")
flags.DEFINE_bool("with_sync", True,
                  "Also time --sync_replicas at the largest worker count.")
flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist",
                    "Real Fashion-MNIST IDX files.")
flags.DEFINE_string("output_json", None, "Where results go.")


def _train_args(model, train_dir):
  return ["--model=" + model, "--dataset=fashion_mnist",
          "--data_dir=" + FLAGS.data_dir, "--train_dir=" + train_dir,
          "--epochs=%g" % FLAGS.epochs, "--batch_size=128",
          "--learning_rate=0.05", "--log_every_steps=200"]


def _run(command):
  print("$ " + " ".join(shlex.quote(c) for c in command), flush=True)
  start = time.time()
  subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
  return time.time() - start


def _single_process(work, model):
  train_dir = os.path.join(work, model + "_single")
  command = [sys.executable, "scripts/train.py"] + _train_args(model,
                                                               train_dir)
  seconds = _run(command)
  metrics = fileio.read_json(os.path.join(train_dir, "metrics.json"))
  return {"workers": 0, "mode": "single process",
          "examples_per_sec": metrics["examples_per_sec"],
          "test_accuracy": metrics["test_accuracy"],
          "wall_seconds": seconds, "command": " ".join(command)}


def _cluster(work, model, num_workers, sync):
  name = "%s_w%d%s" % (model, num_workers, "_sync" if sync else "")
  train_dir = os.path.join(work, name)
  command = [sys.executable, "scripts/launch_local_cluster.py",
             "--binary=train", "--num_workers=%d" % num_workers,
             "--task_log_dir=" + os.path.join(work, name + "_logs")]
  if sync:
    command.append("--sync_replicas")
  command += ["--"] + _train_args(model, train_dir)
  seconds = _run(command)
  metrics = fileio.read_json(os.path.join(train_dir, "metrics.json"))
  workers = [fileio.read_json(os.path.join(train_dir, "worker_%d.json" % i))
             for i in range(num_workers)]
  return {"workers": num_workers, "mode": "sync" if sync else "async",
          "examples_per_sec": metrics["cluster"]["examples_per_sec"],
          "per_worker_examples_per_sec": [w["examples_per_sec"]
                                          for w in workers],
          "per_worker_local_steps": [w["local_steps"] for w in workers],
          "global_step": metrics["global_step"],
          "test_accuracy": metrics["test_accuracy"],
          "wall_seconds": seconds, "command": " ".join(command)}


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  work = tempfile.mkdtemp(prefix="distributed_speed_")
  load_before = os.getloadavg()
  counts = [int(n) for n in FLAGS.workers]
  models = {}
  try:
    for model in FLAGS.models:
      runs = models[model] = [_single_process(work, model)]
      for n in counts:
        runs.append(_cluster(work, model, n, sync=False))
        print(json.dumps(runs[-1]), flush=True)
      if FLAGS.with_sync and max(counts) > 1:
        runs.append(_cluster(work, model, max(counts), sync=True))
        print(json.dumps(runs[-1]), flush=True)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  result = {
      "epochs": FLAGS.epochs, "batch_size": 128,
      "dataset": "fashion_mnist (real, %s)" % FLAGS.data_dir,
      "parameter_servers": 1, "models": models,
      "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                  "load_average_before": load_before,
                  "load_average_after": os.getloadavg()},
      "versions": {"tensorflow": tf.__version__,
                   "python": platform.python_version()},
  }
  for model, runs in models.items():
    for run in runs:
      print("%-12s %-15s %d worker(s): %8.0f ex/s  test accuracy %.2f%%" % (
          model, run["mode"], run["workers"], run["examples_per_sec"],
          100 * run["test_accuracy"]))
  if FLAGS.output_json:
    fileio.write_json(FLAGS.output_json, result)


if __name__ == "__main__":
  app.run(main)
