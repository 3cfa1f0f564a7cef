#!/bin/sh
# Trains the Keras 3 peer's teachers with the same recipes as
# benchmarks/train_teachers.sh (docs/results.md). Weights and JSON go to
# $RUNS/peer/. An interrupted run resumes after its last finished epoch
# when rerun (--backup_dir).
set -eu
RUNS="${RUNS:-/work/runs}"
PY="${PY:-.venv/bin/python}"
mkdir -p "$RUNS/peer"
case "${1:-all}" in
  cnn|all)
    $PY benchmarks/keras_peer.py --family=cnn --phase=teacher --epochs=30 \
      --optimizer=momentum --momentum=0.9 --learning_rate=0.02 \
      --lr_schedule=cosine --weight_decay=5e-4 --seed=1 \
      --backup_dir="$RUNS/peer/cnn_teacher_backup" \
      --save_teacher_weights="$RUNS/peer/cnn_teacher.weights.h5" \
      --output_json="$RUNS/peer/cnn_teacher.json" ;;
esac
case "${1:-all}" in
  mlp|all)
    $PY benchmarks/keras_peer.py --family=mlp --phase=teacher --epochs=40 \
      --optimizer=momentum --momentum=0.9 --learning_rate=0.05 \
      --lr_schedule=cosine --weight_decay=5e-5 --seed=1 \
      --backup_dir="$RUNS/peer/mlp_teacher_backup" \
      --save_teacher_weights="$RUNS/peer/mlp_teacher.weights.h5" \
      --output_json="$RUNS/peer/mlp_teacher.json" ;;
esac
