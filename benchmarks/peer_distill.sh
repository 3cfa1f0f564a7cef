#!/bin/sh
# The Keras 3 peer of the distillation benchmark (docs/results.md): for each
# family, 3 seeds of the student alone and distilled from the peer's own
# teacher (benchmarks/peer_teachers.sh), with the T and alpha our tuning chose
# on the validation split.
set -eu
RUNS="${RUNS:-/work/runs}"
PY="${PY:-.venv/bin/python}"
for family in mlp cnn; do
  for seed in 0 1 2; do
    $PY benchmarks/keras_peer.py --family=$family --phase=all --seed=$seed \
      --temperature=8 --alpha=0.5 \
      --teacher_weights="$RUNS/peer/${family}_teacher.weights.h5" \
      --output_json="$RUNS/peer/distill_${family}_s$seed.json"
  done
done
