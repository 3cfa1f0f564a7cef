#!/bin/sh
# The Keras 3 peer of the distillation benchmark (docs/results.md): for each
# family, the student alone and distilled from the peer's own teacher
# (benchmarks/peer_teachers.sh), with the T and alpha our tuning chose on the
# validation split. Environment (defaults): FAMILIES ("mlp cnn"), SEEDS
# ("0 1 2"), T (8), ALPHA (0.5), PHASE (all: student alone and distilled;
# distill: distilled only), RUNS (/work/runs); JSON per run in $RUNS/peer/.
set -eu
RUNS="${RUNS:-/work/runs}"
PY="${PY:-.venv/bin/python}"
T="${T:-8}"
ALPHA="${ALPHA:-0.5}"
PHASE="${PHASE:-all}"
for family in ${FAMILIES:-mlp cnn}; do
  for seed in ${SEEDS:-0 1 2}; do
    $PY benchmarks/keras_peer.py --family=$family --phase=$PHASE --seed=$seed \
      --temperature=$T --alpha=$ALPHA \
      --teacher_weights="$RUNS/peer/${family}_teacher.weights.h5" \
      --output_json="$RUNS/peer/distill_${family}_T${T}_a${ALPHA}_s$seed.json"
  done
done
