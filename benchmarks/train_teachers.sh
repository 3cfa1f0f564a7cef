#!/bin/sh
# Trains the reference teachers with the recipes documented in
# docs/results.md. Checkpoints go outside the repository (RUNS, default
# /work/runs); rerunning resumes. Logs: $RUNS/<model>.log.
set -eu
RUNS="${RUNS:-/work/runs}"
BIN="${BIN:-.venv/bin/distill-v1-train}"
mkdir -p "$RUNS"
run() {
  name="$1"; shift
  "$BIN" --model="$name" --train_dir="$RUNS/$name" "$@" 2>&1 \
    | grep --line-buffered -v '^I0000\|^WARNING: All log' | tee -a "$RUNS/$name.log"
}
case "${1:-all}" in
  cnn|all)
    run cnn_teacher --epochs=30 --optimizer=momentum --momentum=0.9 \
      --learning_rate=0.02 --learning_rate_decay=cosine --weight_decay=5e-4 \
      --seed=1 --log_every_steps=200 ;;
esac
case "${1:-all}" in
  mlp|all)
    run mlp_teacher --epochs=40 --optimizer=momentum --momentum=0.9 \
      --learning_rate=0.05 --learning_rate_decay=cosine --weight_decay=5e-5 \
      --seed=1 --log_every_steps=200 ;;
esac
