"""The one place distill_v1 imports TensorFlow.

Gives a clear message when TensorFlow is missing or outside the supported
range, instead of an ImportError deep inside a module. Usage:

  from distill_v1.compat import tf   # tf.compat.v1 is tf.compat.v1
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lines) hides
# the progress lines people read; keep warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MIN_VERSION = (2, 16)
MAX_VERSION_EXCLUSIVE = (2, 22)

_INSTALL_HINT = (
    "distill_v1 needs TensorFlow >= 2.16, < 2.22. Install it with "
    "`pip install 'distill_v1[cpu]'` (tensorflow-cpu) or "
    "`pip install 'distill_v1[gpu]'` (tensorflow).")

try:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
except ImportError as e:  # pragma: no cover - depends on the environment
  raise ImportError("TensorFlow is not installed (%s). %s" %
                    (e, _INSTALL_HINT)) from None


def _parse_version(text):
  parts = []
  for piece in text.split(".")[:2]:
    digits = "".join(c for c in piece if c.isdigit())
    parts.append(int(digits or 0))
  return tuple(parts)


TF_VERSION = _parse_version(tf.__version__)
if not MIN_VERSION <= TF_VERSION < MAX_VERSION_EXCLUSIVE:  # pragma: no cover
  raise ImportError("TensorFlow %s is installed. %s" %
                    (tf.__version__, _INSTALL_HINT))

# Graphs are always built inside an explicit `tf.Graph().as_default()` block,
# so eager execution stays on for the rest of the process (TFLite, SavedModel
# loading in verification).
v1 = tf.compat.v1

# Deprecation notices of the tf.compat.v1 API would drown the progress lines;
# this project uses that API on purpose.
tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
