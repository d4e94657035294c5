#!/usr/bin/env bash
# Issue 13, the stem on CIFAR-10: the new `cpu` preset with the ImageNet stem (8 epochs) against
# the stride-2 stem at about the same wall time (4 epochs), G-DML and Margin, on a stratified
# 10 000-image subset, validation split only, seed 0. Resumable: rerun the same command.
set -euo pipefail
cd "$(dirname "$0")/.."
fixed='{"train_subset": 10000, "epochs": 8, "threads": 1}'
.venv/bin/python scripts/tune_preset.py --dataset cifar10 --data-dir ../shared/datasets \
    --plan docs/results/study/plan_cifar_subset.json --fixed "$fixed" \
    --out docs/results/study/cifar_subset_trials.jsonl
