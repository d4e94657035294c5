#!/usr/bin/env bash
# The issue-13 validation study on a stratified 10 000-image Fashion-MNIST subset: two shards
# of one thread each share the plan and the output file (resumable: rerun the same command).
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/results/study/fashion_subset_trials.jsonl
fixed='{"train_subset": 10000, "epochs": 8, "threads": 1, "amp": "bf16", "channels_last": true}'
for k in 0 1; do
  .venv/bin/python scripts/tune_preset.py --dataset fashion-mnist --data-dir ../shared/datasets \
      --plan docs/results/study/plan_fashion_subset.json --fixed "$fixed" --out "$out" \
      --shard "$k/2" > "/tmp/study_shard$k.log" 2>&1 &
done
wait
