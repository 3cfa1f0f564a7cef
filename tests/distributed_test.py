"""Tests of distill_v1.training.distributed in this process.

A parameter server and one worker run as in-process gRPC servers on free
loopback ports (the multi-process clusters are in distributed_script_test).
The training split has 60 examples and the batch size is 16: 4 steps per
epoch.
"""

import io
import json
import os

import pytest

from distill_v1 import checkpoints
from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.models import nets_factory
from distill_v1.teachers import checkpoint_teacher
from distill_v1.training import cluster
from distill_v1.training import distillation
from distill_v1.training import distributed
from distill_v1.training import loop
from tests import testing_utils

SPLITS = testing_utils.tiny_splits(num_train=60, num_test=32, size=8,
                                   num_classes=4)
SPEC = {"model": "cnn_student", "model_options": {}, "num_classes": 4,
        "image_shape": [8, 8, 1], "class_names": list(SPLITS.class_names),
        "dataset": "tiny"}


def _one_worker_cluster():
  """(worker role, worker target): 1 ps + 1 worker served in this process."""
  ps_hosts, worker_hosts = cluster.local_hosts(1, 1)
  ps = cluster.ClusterRole(ps_hosts, worker_hosts, "ps", 0)
  worker = ps._replace(job_name="worker")
  cluster.start_server(ps)
  return worker, cluster.start_server(worker).target


def _config(train_dir, **overrides):
  kwargs = dict(batch_size=16, learning_rate=0.1, log_every_steps=2,
                summary_every_steps=2, eval_batch_size=10, epochs=3)
  kwargs.update(overrides)
  return loop.TrainConfig(str(train_dir), **kwargs)


def _student_fn():
  return loop.classifier_model_fn(nets_factory.get_network_fn("cnn_student"),
                                  4, scope="cnn_student")


@pytest.mark.parametrize("options,message", [
    (distributed.ClusterOptions(replicas_to_aggregate=2),
     r"^replicas_to_aggregate needs sync_replicas"),
    (distributed.ClusterOptions(sync_replicas=True, replicas_to_aggregate=0),
     r"^replicas_to_aggregate must be >= 1, got 0$"),
    (distributed.ClusterOptions(session_wait_secs=-1),
     r"^session_wait_secs must be >= 0, got -1$"),
])
def test_bad_options(options, message):
  role = cluster.ClusterRole(["h:1"], ["h:2"], "worker", 0)
  with pytest.raises(errors.ConfigError, match=message):
    distributed.validate_options(options, role)


def test_parameter_server_trains_nothing():
  role = cluster.ClusterRole(["h:1"], ["h:2"], "ps", 0)
  with pytest.raises(errors.ConfigError,
                     match=r"^/job:ps/task:0 trains nothing"):
    distributed.validate_options(distributed.ClusterOptions(), role)


def test_teacher_on_the_parameter_servers_is_refused(tmp_path):
  prefix = _save_student(tmp_path / "teacher")
  role = cluster.ClusterRole(["127.0.0.1:1"], ["127.0.0.1:2"], "worker", 0)
  model_fn = distillation.distillation_model_fn(
      nets_factory.get_network_fn("mlp_student"), 4, "mlp_student",
      [lambda images: checkpoint_teacher.build_checkpoint_teacher(
          images, "cnn_student", prefix, 4)], temperature=2.0)
  with pytest.raises(errors.ConfigError,
                     match=r"^frozen variables must be worker-local on a "
                     r"cluster \(build the teacher with "
                     r"local_device='/job:worker/task:0'\): teacher/"):
    distributed.train(model_fn, SPLITS, _config(tmp_path / "kd"), SPEC,
                      role, "grpc://127.0.0.1:2")


def _save_student(train_dir):
  """A cnn_student trained one step in one process: a teacher checkpoint."""
  loop.train(_student_fn(), SPLITS, _config(train_dir, max_steps=1), SPEC,
             stream=io.StringIO())
  return checkpoints.resolve_checkpoint(str(train_dir))


@pytest.mark.parametrize("sync", [False, True])
def test_one_worker_trains_to_the_last_step_and_evaluates(tmp_path, sync):
  role, target = _one_worker_cluster()
  stream = io.StringIO()
  metrics = distributed.train(
      _student_fn(), SPLITS, _config(tmp_path), SPEC, role, target,
      distributed.ClusterOptions(sync_replicas=sync), stream=stream)
  assert metrics["global_step"] == 12
  assert checkpoints.latest_checkpoint(str(tmp_path)).endswith(
      "model.ckpt-12")
  # One entry: the final checkpoint's evaluation, as a fresh process does it.
  assert [h["global_step"] for h in metrics["history"]] == [12]
  assert metrics["test_accuracy"] == distributed.evaluate_checkpoint(
      _student_fn(), SPLITS, str(tmp_path / "model.ckpt-12"),
      10)["test_accuracy"]
  assert metrics["cluster"]["sync_replicas"] is sync
  with open(os.path.join(str(tmp_path), "metrics.json")) as f:
    assert json.load(f)["global_step"] == 12
  with open(os.path.join(str(tmp_path), "worker_0.json")) as f:
    report = json.load(f)
  assert report["local_steps"] == 12 and report["examples"] == 3 * 60
  assert report["first_global_step"] == 0 and report["is_chief"]
  text = stream.getvalue()
  assert "worker 0 of 1 joined at global step 0" in text
  assert "worker 0 epoch 3/3 step 12/12" in text
  assert "chief: final checkpoint model.ckpt-12: test accuracy" in text
