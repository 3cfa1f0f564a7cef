#!/usr/bin/env bash
# Creates the separate virtual environment of the Model Optimization Toolkit
# peer (benchmarks/mot_peer.py).
#
# Why a separate venv: tensorflow-model-optimization 0.8.1 prunes only tf-keras
# (Keras 2) models, and tf-keras depends on the full `tensorflow` package.
# Installed into the project's .venv it would put a second TensorFlow beside
# tensorflow-cpu (the same `tensorflow` import name, two distributions), so
# the peer gets its own environment and the project's stays untouched.
#
# Usage:
#   bash benchmarks/setup_peer_venv.sh [VENV_DIR]     # default /work/peer-venv
#   VENV_DIR/bin/python benchmarks/mot_peer.py --output_json=...
#
# Rerunning it is cheap: an existing venv that already imports the pinned
# packages is left as it is.
set -euo pipefail

VENV_DIR="${1:-${PEER_VENV:-/work/peer-venv}}"
PYTHON="${PYTHON:-python3}"
PACKAGES=(
  "tensorflow==2.21.0"
  "tf-keras==2.21.0"
  "tensorflow-model-optimization==0.8.1"
  "numpy"
  "absl-py"
)

check() {
  "${VENV_DIR}/bin/python" - <<'EOF'
import importlib.metadata as md
want = {"tensorflow": "2.21.0", "tf-keras": "2.21.0",
        "tensorflow-model-optimization": "0.8.1"}
for name, version in want.items():
  got = md.version(name)
  assert got == version, "%s %s is not %s" % (name, got, version)
import tf_keras  # noqa: F401  (imports tensorflow too)
import tensorflow_model_optimization  # noqa: F401
print("peer venv ok:", ", ".join("%s %s" % kv for kv in want.items()))
EOF
}

if [[ -x "${VENV_DIR}/bin/python" ]] && check 2>/dev/null; then
  exit 0
fi

"${PYTHON}" -m venv "${VENV_DIR}"
"${VENV_DIR}/bin/python" -m pip install --quiet --upgrade pip
# tensorflow-model-optimization 0.8.1 imports dm-tree (its own dependency).
"${VENV_DIR}/bin/python" -m pip install --quiet "${PACKAGES[@]}"
check
