#!/usr/bin/env bash
# Issues 13, 18 and 17: the remaining benchmark grids on these 2 cores, in order, resumable.
# Run it from a frozen checkout (a `git worktree`, so commits on main do not change the code
# under a running grid); every stage skips the runs its results folder or the committed record
# (--include) already holds, so after a killed session the same command goes on where it
# stopped. Results land in results/; scripts/sync_record.py copies finished runs into docs/.
#
#   git worktree add --detach /work/grid HEAD && cd /work/grid
#   PYTHONPATH=$PWD/src nohup scripts/grid_queue.sh /work/main/.venv/bin/gdml > grid.log 2>&1 &
#
# 1. issue 13: CIFAR-10 x five methods x 5 seeds (closed set, with covariate shift);
# 2. issue 18: Triplet + MDR and G-DML + MDR (λ 0.2), 3 seeds, Fashion-MNIST first;
# 3. issue 17: the class-disjoint protocol (first half of the classes trains), Fashion-MNIST and
#    CIFAR-10, the five methods + the two MDR rows, 3 seeds, d = 2 (the paper's) then d = 128.
# About 22 min a CIFAR-10 run and 25-30 min a Fashion-MNIST one, two at a time.
set -euo pipefail
GDML=${1:-.venv/bin/gdml}
DATA=${DATA:-../shared/datasets}
RECORD=${RECORD:-/work/main/docs/results}
common=(--data-dir "$DATA" --workers 2 --threads 1 --progress false)

# Stages 1 and 2 share the closed-set record docs/results/cpu.
mkdir -p results/cpu
[ -f results/cpu/references.csv ] || cp "$RECORD/cpu/references.csv" results/cpu/
"$GDML" benchmark --datasets cifar10 --seeds 5 --shift --references --out results/cpu \
    --include "$RECORD/cpu" "${common[@]}"
for ds in fashion-mnist mnist cifar10; do
  "$GDML" benchmark --datasets "$ds" --seeds 3 --mdr 0.2 --mdr-methods triplet gdml --shift \
      --references --out results/cpu --include "$RECORD/cpu" "${common[@]}"
done

# Stage 3: one results folder per embedding dimension.
for dim in 2 128; do
  out=results/unseen-d$dim
  mkdir -p "$out"
  # The references do not depend on d: scored once (docs/results/unseen/references.csv).
  [ -f "$out/references.csv" ] || cp "$RECORD/unseen/references.csv" "$out/"
  include=()
  [ -d "$RECORD/unseen-d$dim" ] && include=(--include "$RECORD/unseen-d$dim")
  "$GDML" benchmark --datasets fashion-mnist cifar10 --split classes --embedding-dim "$dim" \
      --seeds 3 --mdr 0.2 --mdr-methods triplet gdml --references --out "$out" \
      "${include[@]}" "${common[@]}"
done
