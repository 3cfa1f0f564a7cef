#!/bin/sh
# Installs what distill_v1 needs on Debian/Ubuntu: the Fashion-MNIST package
# and a virtual environment `.venv` with the project (and its test extras
# when called as `tools/install.sh test`). Safe to rerun.
set -eu
cd "$(dirname "$0")/.."
EXTRAS="${1:-}"

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] &&
   [ -z "${DISTILL_V1_DATA:-}" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq dataset-fashion-mnist python3-venv >/dev/null
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true

# Install TensorFlow through the [cpu] extra only when none is present, so
# pip never puts a second TensorFlow beside an existing one.
if .venv/bin/python -c "import tensorflow" >/dev/null 2>&1; then
  SPEC="."
else
  SPEC=".[cpu"
fi
case "$EXTRAS" in
  test) [ "$SPEC" = "." ] && SPEC=".[test]" || SPEC="$SPEC,test]" ;;
  *) [ "$SPEC" = "." ] || SPEC="$SPEC]" ;;
esac
.venv/bin/python -m pip install -q -e "$SPEC"
echo "installed distill_v1 into .venv ($SPEC)"
