"""Shared fixtures. Tests are tiny and CPU-only; real-data tests skip when ../shared is absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Two cores on CI: keep intra-op threads small so parallel pytest workers do not oversubscribe.
torch.set_num_threads(2)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` next to the repository, or skip the test."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip("../shared/datasets is not present on this machine")
    return SHARED_DATASETS
