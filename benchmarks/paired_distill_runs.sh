#!/bin/sh
# The runs of a paired comparison of distilled students, ours beside the
# Keras 3 peer's (docs/results.md, "Twenty seeds and a non-inferiority
# test"): for each seed, our distilled student (benchmarks/distill_benchmark.py)
# and then the peer's (benchmarks/peer_distill.sh), at one T and alpha, each
# from its own teacher. A seed's side whose JSON already holds the distilled
# accuracy is skipped, so the same command resumes an interrupted series.
# Environment (defaults): FAMILY (cnn), SEEDS ("10 ... 19"), T (4), ALPHA
# (0.3), RUNS (/work/runs); ours go to $RUNS/cmp_T${T}_a${ALPHA}/ours_s$seed.json,
# the peer's to $RUNS/peer/distill_${FAMILY}_T${T}_a${ALPHA}_s$seed.json.
set -eu
RUNS="${RUNS:-/work/runs}"
PY="${PY:-.venv/bin/python}"
FAMILY="${FAMILY:-cnn}"
T="${T:-4}"
ALPHA="${ALPHA:-0.3}"
OURS_DIR="$RUNS/cmp_T${T}_a${ALPHA}"
mkdir -p "$OURS_DIR"
finished() {  # the JSON exists and holds a distilled test accuracy
  [ -f "$1" ] && $PY -c 'import sys
sys.path.insert(0, "benchmarks")
import paired_seeds
try:
  paired_seeds.read_accuracies(sys.argv[1])
except ValueError:
  sys.exit(1)' "$1"
}
for seed in ${SEEDS:-10 11 12 13 14 15 16 17 18 19}; do
  ours="$OURS_DIR/ours_s$seed.json"
  if finished "$ours"; then
    echo "seed $seed, ours: done ($ours)"
  else
    $PY benchmarks/distill_benchmark.py --family="$FAMILY" \
      --teacher_checkpoint="$RUNS/${FAMILY}_teacher" --runs_dir="$OURS_DIR" \
      --seeds="$seed" --temperature="$T" --alpha="$ALPHA" --kinds=distilled \
      --output_json="$ours"
  fi
  peer="$RUNS/peer/distill_${FAMILY}_T${T}_a${ALPHA}_s$seed.json"
  if finished "$peer"; then
    echo "seed $seed, peer: done ($peer)"
  else
    FAMILIES="$FAMILY" SEEDS="$seed" T="$T" ALPHA="$ALPHA" PHASE=distill \
      RUNS="$RUNS" PY="$PY" sh benchmarks/peer_distill.sh
  fi
done
