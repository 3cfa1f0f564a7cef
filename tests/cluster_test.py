"""Tests of distill_v1.training.cluster: roles from flags and TF_CONFIG."""

import json

import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.training import cluster

PS = ["127.0.0.1:2222"]
WORKERS = ["127.0.0.1:2223", "127.0.0.1:2224"]


def _tf_config(job, index, ps=PS, workers=WORKERS):
  return json.dumps({"cluster": {"ps": ps, "worker": workers},
                     "task": {"type": job, "index": index}})


def test_no_cluster_is_none():
  assert cluster.role_from_args([], [], None, None, environ={}) is None


def test_role_from_flags():
  role = cluster.role_from_args(PS, WORKERS, "worker", 1, environ={})
  assert role == cluster.ClusterRole(PS, WORKERS, "worker", 1)
  assert role.num_workers == 2
  assert not role.is_chief
  assert role.device == "/job:worker/task:1"
  assert cluster.role_from_args(PS, WORKERS, "worker", None,
                                environ={}).is_chief  # task 0 by default
  assert not cluster.role_from_args(PS, WORKERS, "ps", 0,
                                    environ={}).is_chief


def test_role_from_tf_config_and_flags_win():
  environ = {"TF_CONFIG": _tf_config("ps", 0)}
  assert cluster.role_from_args([], [], None, None, environ=environ) == (
      cluster.ClusterRole(PS, WORKERS, "ps", 0))
  assert cluster.role_from_args(PS, WORKERS, "worker", 1,
                                environ=environ).job_name == "worker"


@pytest.mark.parametrize("args,message", [
    ((PS, WORKERS, "chief", 0), r"^--job_name='chief': expected ps or worker$"),
    ((PS, WORKERS, "worker", 2),
     r"^--task_index=2 is out of range: the cluster has 2 worker task\(s\), "
     r"0 to 1$"),
    ((PS, WORKERS, "ps", 1), r"^--task_index=1 is out of range: the cluster "
     r"has 1 ps task\(s\), 0 to 0$"),
    ((PS, WORKERS, "worker", -1), r"--task_index=-1 is out of range"),
    ((PS, [], "worker", 0), r"^--ps_hosts, --job_name given without "
     r"--worker_hosts$"),
    (([], WORKERS, None, None), r"^--worker_hosts given without --ps_hosts, "
     r"--job_name$"),
    (([], [], None, 1), r"^--task_index given without --ps_hosts"),
    ((["localhost"], WORKERS, "worker", 0),
     r"^--ps_hosts: 'localhost' is not host:port$"),
    ((PS, ["h:1", "h:1"], "worker", 0),
     r"^--worker_hosts lists a host:port twice: h:1,h:1$"),
])
def test_bad_flags(args, message):
  with pytest.raises(errors.ConfigError, match=message):
    cluster.role_from_args(*args, environ={})


@pytest.mark.parametrize("text,message", [
    ("{", r"^TF_CONFIG is not JSON"),
    ('{"cluster": {}}', r"^TF_CONFIG must be \{\"cluster\""),
    (_tf_config("evaluator", 0), r"^TF_CONFIG task.type='evaluator': "
     r"expected ps or worker$"),
    (_tf_config("worker", 5), r"^TF_CONFIG task.index=5 is out of range"),
    (_tf_config("worker", 0, ps=[]), r"^a cluster needs both ps and worker "
     r"hosts \(TF_CONFIG gives 0 ps and 2 workers\)$"),
    (json.dumps({"cluster": {"ps": PS, "worker": WORKERS, "chief": PS},
                 "task": {"type": "worker", "index": 0}}),
     r"^TF_CONFIG cluster has job\(s\) chief; only ps and worker"),
])
def test_bad_tf_config(text, message):
  with pytest.raises(errors.ConfigError, match=message):
    cluster.role_from_args(environ={"TF_CONFIG": text})


def test_session_config_filters_other_workers():
  worker = cluster.ClusterRole(PS, WORKERS, "worker", 1)
  config = cluster.session_config(worker, intra_op_threads=1)
  assert list(config.device_filters) == ["/job:ps", "/job:worker/task:1"]
  assert config.intra_op_parallelism_threads == 1


def test_replica_device_setter_places_variables_on_ps_and_local_on_worker():
  role = cluster.ClusterRole(["a:1", "b:2"], WORKERS, "worker", 1)
  with tf.Graph().as_default():
    with tf.compat.v1.device(cluster.replica_device_setter(role)):
      first = tf.compat.v1.get_variable("first", [2])
      second = tf.compat.v1.get_variable("second", [2])
      with tf.device(role.device):
        local = tf.compat.v1.get_variable(
            "local", [2], collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])
      product = first * 2.0
  assert first.device == "/job:ps/task:0"
  assert second.device == "/job:ps/task:1"  # round robin
  assert local.device == "/job:worker/task:1"
  assert product.device == "/job:worker/task:1"
