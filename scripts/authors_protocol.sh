#!/usr/bin/env bash
# Issue 19: the authors' protocol (`paper` preset) run once in full on this CPU: Fashion-MNIST,
# G-DML and Triplet, seed 0. Resumable: rerun the same command (each step skips what is done).
#
#   step 1 (~30 min on 2 cores): bf16 + channels_last against fp32 on the validation split,
#          3 epochs on a stratified 10 000-image subset (docs/results/study/paper_bf16_trials.jsonl)
#   step 2 (~4 h a run in bf16): the two full 50-epoch runs, 2 at a time, 1 thread each
#   AMP=none scripts/authors_protocol.sh runs step 2 in fp32 (if step 1 says bf16 moves the curve).
set -euo pipefail
cd "$(dirname "$0")/.."
fixed='{"preset": "paper", "train_subset": 10000, "epochs": 3, "threads": 1}'
for k in 0 1; do
  .venv/bin/python scripts/tune_preset.py --dataset fashion-mnist --data-dir ../shared/datasets \
      --plan docs/results/study/plan_paper_bf16.json --fixed "$fixed" \
      --out docs/results/study/paper_bf16_trials.jsonl --shard "$k/2" &
done
wait
amp=${AMP:-bf16}
cl=$([ "$amp" = bf16 ] && echo true || echo false)
.venv/bin/gdml benchmark --preset paper --datasets fashion-mnist --methods gdml triplet \
    --seeds 1 --amp "$amp" --channels-last "$cl" --data-dir ../shared/datasets \
    --out results/paper --workers 2 --threads 1 --progress false
