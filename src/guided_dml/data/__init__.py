"""Data layer: in-memory data sets (``ArrayDataset``), their loaders, splits and downloads.

Examples:
    >>> from guided_dml.data import load_dataset
    >>> data = load_dataset("digits")
    >>> len(data["train"]), len(data["test"])
    (1258, 539)
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy (PEP 562): `from guided_dml.data import load_dataset` works as before, but importing a
# light submodule (`guided_dml.data.names`, which the configs and the CLI's parser read) does
# not load torch, scikit-learn and every loader first.
_WHERE = {  # name -> the submodule that defines it (imported on first use)
    "ArrayDataset": "base",
    "load_cifar10": "cifar",
    "read_cifar10_archive": "cifar",
    "read_cifar10_folder": "cifar",
    "load_digits": "digits",
    "REMOTE_FILES": "download",
    "RemoteFile": "download",
    "download_url": "download",
    "md5sum": "download",
    "read_idx": "idx",
    "write_idx": "idx",
    "load_image_folder": "image_folder",
    "load_fashion_mnist": "mnist",
    "load_mnist": "mnist",
    "decoded_cache_dir": "paths",
    "resolve_data_dir": "paths",
    "user_cache_dir": "paths",
    "DATASETS": "registry",
    "RETRIEVAL_DATASETS": "registry",
    "load_dataset": "registry",
    "load_retrieval_dataset": "registry",
    "RetrievalDataset": "retrieval",
    "load_cars196": "retrieval",
    "load_cub200": "retrieval",
    "load_inshop": "retrieval",
    "load_sop": "retrieval",
    "stratified_split": "splits",
    "eval_transform": "transforms",
    "train_transform": "transforms",
}

__all__ = [
    "DATASETS",
    "REMOTE_FILES",
    "RETRIEVAL_DATASETS",
    "ArrayDataset",
    "RemoteFile",
    "RetrievalDataset",
    "decoded_cache_dir",
    "download_url",
    "eval_transform",
    "load_cars196",
    "load_cifar10",
    "load_cub200",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "load_inshop",
    "load_mnist",
    "load_retrieval_dataset",
    "load_sop",
    "md5sum",
    "read_cifar10_archive",
    "read_cifar10_folder",
    "read_idx",
    "resolve_data_dir",
    "stratified_split",
    "train_transform",
    "user_cache_dir",
    "write_idx",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"guided_dml.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'guided_dml.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
