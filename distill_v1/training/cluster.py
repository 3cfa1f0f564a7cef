"""A TensorFlow cluster of parameter servers and workers, from flags or TF_CONFIG.

The classic between-graph replication of TensorFlow 1: every process runs
the same binary with `--ps_hosts=h:p,... --worker_hosts=h:p,...
--job_name=ps|worker --task_index=i` (or a `TF_CONFIG` environment
variable, `{"cluster": {"ps": [...], "worker": [...]}, "task": {"type":
"worker", "index": 0}}`). A parameter server only serves variables
(`server.join()`); each worker builds its own copy of the graph with the
model's variables on the parameter servers (`replica_device_setter`) and its
data, its teacher and its input pipeline on itself. Worker 0 is the chief.

Usage:

  role = cluster.role_from_args(ps_hosts, worker_hosts, job_name, task_index)
  if role is None:   # no cluster: single-process training
    ...
  server = cluster.start_server(role)
  if role.job_name == "ps":
    server.join()
"""

import collections
import json
import os
import socket

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.training import session_options

JOBS = ("ps", "worker")
TF_CONFIG = "TF_CONFIG"

_ClusterRole = collections.namedtuple("ClusterRole", [
    "ps_hosts",  # list of "host:port", non-empty.
    "worker_hosts",  # list of "host:port", non-empty.
    "job_name",  # "ps" or "worker".
    "task_index",  # int in [0, number of hosts of the job).
])


class ClusterRole(_ClusterRole):
  """This process's place in the cluster."""
  __slots__ = ()

  @property
  def num_workers(self):
    return len(self.worker_hosts)

  @property
  def is_chief(self):
    """Worker 0 initialises, checkpoints, writes summaries and evaluates."""
    return self.job_name == "worker" and self.task_index == 0

  @property
  def device(self):
    """This task's device, e.g. "/job:worker/task:1"."""
    return "/job:%s/task:%d" % (self.job_name, self.task_index)

  def cluster_dict(self):
    return {"ps": list(self.ps_hosts), "worker": list(self.worker_hosts)}


def _hosts(value, what):
  hosts = [h.strip() for h in (value or [])]
  for host in hosts:
    name, _, port = host.rpartition(":")
    if not name or not port.isdigit() or not 0 < int(port) < 65536:
      raise errors.ConfigError("%s: %r is not host:port" % (what, host))
  if len(set(hosts)) != len(hosts):
    raise errors.ConfigError("%s lists a host:port twice: %s" %
                             (what, ",".join(hosts)))
  return hosts


def _role(ps_hosts, worker_hosts, job_name, task_index, source):
  """Validates one cluster description; `source` names it in errors."""
  ps_hosts = _hosts(ps_hosts, "--ps_hosts" if source == "flags" else
                    TF_CONFIG + " cluster.ps")
  worker_hosts = _hosts(worker_hosts, "--worker_hosts" if source == "flags"
                        else TF_CONFIG + " cluster.worker")
  job_flag, task_flag = (("--job_name", "--task_index") if source == "flags"
                         else (TF_CONFIG + " task.type",
                               TF_CONFIG + " task.index"))
  if not ps_hosts or not worker_hosts:
    raise errors.ConfigError(
        "a cluster needs both ps and worker hosts (%s gives %d ps and %d "
        "workers)" % (source, len(ps_hosts), len(worker_hosts)))
  if job_name not in JOBS:
    raise errors.ConfigError("%s=%r: expected ps or worker" %
                             (job_flag, job_name))
  hosts = ps_hosts if job_name == "ps" else worker_hosts
  if (not isinstance(task_index, int) or isinstance(task_index, bool) or
      not 0 <= task_index < len(hosts)):
    raise errors.ConfigError(
        "%s=%r is out of range: the cluster has %d %s task(s), 0 to %d" %
        (task_flag, task_index, len(hosts), job_name, len(hosts) - 1))
  return ClusterRole(ps_hosts, worker_hosts, job_name, task_index)


def role_from_tf_config(text):
  """The ClusterRole of a TF_CONFIG JSON string.

  Raises:
    ConfigError: not JSON, no cluster/task, or a bad combination.
  """
  try:
    config = json.loads(text)
  except ValueError as e:
    raise errors.ConfigError("%s is not JSON: %s" % (TF_CONFIG, e)) from None
  if not isinstance(config, dict) or not isinstance(
      config.get("cluster"), dict) or not isinstance(config.get("task"), dict):
    raise errors.ConfigError(
        '%s must be {"cluster": {"ps": [...], "worker": [...]}, "task": '
        '{"type": "ps"|"worker", "index": i}}' % TF_CONFIG)
  spec, task = config["cluster"], config["task"]
  unknown = sorted(set(spec) - set(JOBS))
  if unknown:
    raise errors.ConfigError("%s cluster has job(s) %s; only ps and worker "
                             "are supported" % (TF_CONFIG, ", ".join(unknown)))
  return _role(spec.get("ps"), spec.get("worker"), task.get("type"),
               task.get("index", 0), "TF_CONFIG")


def role_from_args(ps_hosts=None, worker_hosts=None, job_name=None,
                   task_index=None, environ=None):
  """This process's ClusterRole, or None when it is not part of a cluster.

  The flags win over TF_CONFIG; giving some cluster flags but not all is an
  error rather than a silent single-process run.

  Args:
    ps_hosts, worker_hosts: lists of "host:port" (or empty / None).
    job_name: "ps", "worker" or None.
    task_index: int or None (0 when the other flags are given).
    environ: mapping with TF_CONFIG (default os.environ).

  Raises:
    ConfigError: a bad or incomplete cluster description.
  """
  environ = os.environ if environ is None else environ
  given = [name for name, value in (
      ("--ps_hosts", ps_hosts), ("--worker_hosts", worker_hosts),
      ("--job_name", job_name)) if value]
  if given:
    missing = [name for name, value in (
        ("--ps_hosts", ps_hosts), ("--worker_hosts", worker_hosts),
        ("--job_name", job_name)) if not value]
    if missing:
      raise errors.ConfigError("%s given without %s" %
                               (", ".join(given), ", ".join(missing)))
    return _role(ps_hosts, worker_hosts, job_name,
                 0 if task_index is None else task_index, "flags")
  if task_index is not None:
    raise errors.ConfigError(
        "--task_index given without --ps_hosts, --worker_hosts, --job_name")
  text = environ.get(TF_CONFIG, "").strip()
  if not text:
    return None
  return role_from_tf_config(text)


def free_ports(count):
  """`count` distinct free TCP ports on 127.0.0.1 (bound to 0, then released).

  Another process may take a port between this call and the server's start;
  on a machine of your own that is rare enough for trying things out.
  """
  sockets = []
  try:
    for _ in range(count):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(("127.0.0.1", 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def local_hosts(num_ps, num_workers):
  """(ps_hosts, worker_hosts): lists of "127.0.0.1:<free port>"."""
  hosts = ["127.0.0.1:%d" % p for p in free_ports(num_ps + num_workers)]
  return hosts[:num_ps], hosts[num_ps:]


def session_config(role, intra_op_threads=0, inter_op_threads=0,
                   precision="float32", xla=False):
  """A ConfigProto whose device filters keep workers from waiting on each other.

  A worker sees only the parameter servers and itself, so it starts (and
  restarts) without the other workers being up. The other options are
  `session_options.config_proto`'s.
  """
  filters = ["/job:ps"]
  if role.job_name == "worker":
    filters.append(role.device)
  return session_options.config_proto(
      intra_op_threads, inter_op_threads, precision, xla,
      allow_soft_placement=True, device_filters=filters)


def start_server(role, config=None):
  """Starts this task's in-process gRPC server (tf.distribute.Server).

  Raises:
    ConfigError: the port cannot be bound (in use, or not this machine's).
  """
  spec = tf.train.ClusterSpec(role.cluster_dict())
  try:
    return tf.distribute.Server(spec, job_name=role.job_name,
                                task_index=role.task_index, protocol="grpc",
                                config=config, start=True)
  except (tf.errors.UnknownError, tf.errors.InvalidArgumentError,
          tf.errors.UnavailableError) as e:
    host = (role.ps_hosts if role.job_name == "ps" else
            role.worker_hosts)[role.task_index]
    raise errors.ConfigError(
        "cannot start the %s server on %s: %s" %
        (role.device, host, str(e).strip().split("\n")[0])) from None


def replica_device_setter(role):
  """Model variables round-robin on the parameter servers, ops on this worker."""
  return tf.compat.v1.train.replica_device_setter(
      worker_device=role.device,
      cluster=tf.train.ClusterSpec(role.cluster_dict()))
