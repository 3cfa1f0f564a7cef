"""Session options of a training run: threads, numeric precision and XLA.

`config_proto` turns a run's choices into a `tf.compat.v1.ConfigProto`:

  * threads: `intra_op_threads` (threads inside one op) and `inter_op_threads`
    (ops run side by side); 0 leaves the choice to TensorFlow, which on this
    project's 2-core reference machine picks 2 and 2 and measured the same as
    every explicit setting (docs/benchmarks.md).
  * precision: "float32" (default), or "bfloat16": Grappler's
    `auto_mixed_precision_onednn_bfloat16` rewrite runs matmuls and
    convolutions in bfloat16 (oneDNN, on AMX or AVX512_BF16 units) while the
    variables, the optimizer's updates and the losses stay float32. It needs
    a CPU with bfloat16 instructions; elsewhere it is refused, since emulated
    bfloat16 is slower than float32.
  * xla: graph-level JIT (`global_jit_level = ON_1`). On CPU TensorFlow acts
    on it only when `TF_XLA_FLAGS=--tf_xla_cpu_global_jit` was set before
    TensorFlow was imported (the binaries' `--xla` sets it before they
    import TensorFlow). On the reference models it measured slower, so it is off by
    default.
"""

from distill_v1 import errors
from distill_v1.compat import tf

PRECISIONS = ("float32", "bfloat16")
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
  """The instruction-set flags of the first CPU in `cpuinfo_path` (a set)."""
  try:
    with open(cpuinfo_path) as f:
      for line in f:
        if line.startswith("flags"):
          return set(line.split(":", 1)[1].split())
  except OSError:
    pass
  return set()


def check_precision(precision, flags_of_cpu=None):
  """Raises ConfigError for an unknown precision or one the CPU lacks.

  Args:
    precision: one of PRECISIONS.
    flags_of_cpu: set of CPU flags (default: this machine's `cpu_flags()`).
  """
  if precision not in PRECISIONS:
    raise errors.ConfigError("precision must be one of %s, got %r" %
                             (", ".join(PRECISIONS), precision))
  if precision == "bfloat16":
    flags_of_cpu = cpu_flags() if flags_of_cpu is None else flags_of_cpu
    if not flags_of_cpu & set(BFLOAT16_CPU_FLAGS):
      raise errors.ConfigError(
          "--precision=bfloat16 needs a CPU with %s instructions, and this "
          "one has neither (it would be emulated, slower than float32); use "
          "--precision=float32" % " or ".join(
              f.upper() for f in BFLOAT16_CPU_FLAGS))


def config_proto(intra_op_threads=0, inter_op_threads=0, precision="float32",
                 xla=False, **kwargs):
  """A ConfigProto for the options above; kwargs go to ConfigProto as is."""
  check_precision(precision)
  config = tf.compat.v1.ConfigProto(
      intra_op_parallelism_threads=intra_op_threads,
      inter_op_parallelism_threads=inter_op_threads, **kwargs)
  if precision == "bfloat16":
    rewrite = config.graph_options.rewrite_options
    rewrite.auto_mixed_precision_onednn_bfloat16 = rewrite.ON
  if xla:
    config.graph_options.optimizer_options.global_jit_level = (
        tf.compat.v1.OptimizerOptions.ON_1)
  return config
