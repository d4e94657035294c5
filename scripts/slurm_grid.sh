#!/usr/bin/env bash
# One task of a benchmark grid sharded by (data set, seed): what a Slurm job array runs.
#
#   sbatch --array=0-29 scripts/slurm_grid.sh      # 3 data sets x 10 seeds (docs/cluster.md)
#
# Task i runs data set DATASETS[i / NSEEDS] with seed SEED0 + i % NSEEDS, every method, into
# its own folder OUT/shards/DATASET-seedN (nothing shared between tasks but the data), so tasks
# never write the same file. Merge them afterwards, on any machine, without training:
#
#   gdml report OUT/all --include OUT/shards/*
#
# Without Slurm, run the tasks yourself: SLURM_ARRAY_TASK_ID=3 scripts/slurm_grid.sh
#SBATCH --job-name=gdml-grid
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
read -r -a DATASETS <<< "${DATASETS:-mnist fashion-mnist cifar10}"
NSEEDS=${NSEEDS:-10}
SEED0=${SEED0:-0}
PRESET=${PRESET:-paper}
OUT=${OUT:-results/paper}
GDML=${GDML:-gdml}
task=${SLURM_ARRAY_TASK_ID:?set SLURM_ARRAY_TASK_ID (sbatch --array does)}
if [ "$task" -ge $(( ${#DATASETS[@]} * NSEEDS )) ]; then
  echo "task $task: the grid has only $(( ${#DATASETS[@]} * NSEEDS )) tasks" >&2
  exit 2
fi
dataset=${DATASETS[$(( task / NSEEDS ))]}
seed=$(( SEED0 + task % NSEEDS ))
# --seeds N,: exactly seed N (a count would mean 0..N-1). EXTRA: more flags, e.g. "--methods gdml".
# shellcheck disable=SC2086
exec "$GDML" benchmark --preset "$PRESET" --datasets "$dataset" --seeds "$seed," \
  --out "$OUT/shards/$dataset-seed$seed" ${EXTRA:-}
