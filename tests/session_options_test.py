"""Tests of distill_v1.training.session_options and the binaries' --xla."""

import os
import sys

import numpy as np
import pytest

from distill_v1 import errors
from distill_v1.compat import tf
from distill_v1.training import loop
from distill_v1.training import session_options

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "scripts"))
import common_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

HAS_BF16 = bool(session_options.cpu_flags() &
                set(session_options.BFLOAT16_CPU_FLAGS))


def test_float32_config_sets_threads_and_no_rewrite():
  config = session_options.config_proto(2, 1, allow_soft_placement=True)
  assert config.intra_op_parallelism_threads == 2
  assert config.inter_op_parallelism_threads == 1
  assert config.allow_soft_placement
  rewrite = config.graph_options.rewrite_options
  assert rewrite.auto_mixed_precision_onednn_bfloat16 == rewrite.DEFAULT
  assert (config.graph_options.optimizer_options.global_jit_level ==
          tf.compat.v1.OptimizerOptions.DEFAULT)


def test_xla_sets_global_jit_level():
  config = session_options.config_proto(xla=True)
  assert (config.graph_options.optimizer_options.global_jit_level ==
          tf.compat.v1.OptimizerOptions.ON_1)


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bfloat16 units")
def test_bfloat16_config_turns_on_the_onednn_rewrite():
  rewrite = session_options.config_proto(
      precision="bfloat16").graph_options.rewrite_options
  assert rewrite.auto_mixed_precision_onednn_bfloat16 == rewrite.ON


def test_unknown_precision_is_refused():
  with pytest.raises(errors.ConfigError, match="precision must be one of"):
    session_options.check_precision("float16")
  with pytest.raises(errors.ConfigError, match="precision must be one of"):
    loop.validate_config(loop.TrainConfig(train_dir="/tmp/x",
                                          precision="fp8"))


def test_bfloat16_without_cpu_support_is_refused():
  with pytest.raises(errors.ConfigError,
                     match="needs a CPU with AMX_BF16 or AVX512_BF16"):
    session_options.check_precision("bfloat16", flags_of_cpu={"avx2", "fma"})
  session_options.check_precision("bfloat16", flags_of_cpu={"amx_bf16"})
  session_options.check_precision("float32", flags_of_cpu=set())


def test_cpu_flags_reads_cpuinfo(tmp_path):
  path = tmp_path / "cpuinfo"
  path.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n"
                  "processor\t: 1\nflags\t\t: fpu\n")
  assert session_options.cpu_flags(str(path)) == {"fpu", "avx2", "amx_bf16"}
  assert session_options.cpu_flags(str(tmp_path / "missing")) == set()


def _product(precision):
  """[64, 256] x [256, 128] with a ReLU, under the given precision."""
  rng = np.random.RandomState(0)
  a = rng.uniform(-1, 1, (64, 256)).astype(np.float32)
  b = rng.uniform(-1, 1, (256, 128)).astype(np.float32)
  with tf.Graph().as_default():
    a_v = tf.compat.v1.Variable(a)
    b_v = tf.compat.v1.Variable(b)
    out = tf.nn.relu(tf.matmul(a_v, b_v))
    config = session_options.config_proto(precision=precision)
    with tf.compat.v1.Session(config=config) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      got = sess.run(out)
  return got, np.maximum(a @ b, 0)


def test_float32_product_matches_numpy():
  got, want = _product("float32")
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bfloat16 units")
def test_bfloat16_product_is_rounded_but_close():
  got, want = _product("bfloat16")
  assert got.dtype == np.float32
  error = np.max(np.abs(got - want))
  scale = np.max(np.abs(want))
  # bfloat16 keeps 8 bits of mantissa: the rewrite acted (error well above
  # float32 round-off) and stayed within a few bfloat16 steps.
  assert error > 1e-3 * scale
  assert error < 3e-2 * scale


def test_xla_environment_adds_the_flag_once():
  environ = {"TF_XLA_FLAGS": "--tf_xla_auto_jit=0"}
  # TensorFlow is already imported in this process: too late to act.
  assert not common_flags.xla_environment(environ)
  assert environ["TF_XLA_FLAGS"] == ("--tf_xla_auto_jit=0 " +
                                     common_flags.XLA_CPU_FLAG)
  assert common_flags.xla_environment(environ)
  assert environ["TF_XLA_FLAGS"].split().count(common_flags.XLA_CPU_FLAG) == 1
  environ = {}
  common_flags.xla_environment(environ)
  assert environ == {"TF_XLA_FLAGS": common_flags.XLA_CPU_FLAG}


def test_precision_constants_in_step():
  assert common_flags.PRECISIONS == session_options.PRECISIONS
