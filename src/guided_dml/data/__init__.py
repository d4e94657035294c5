"""Data layer: in-memory data sets (``ArrayDataset``), their loaders, splits and downloads.

Examples:
    >>> from guided_dml.data import load_dataset
    >>> data = load_dataset("digits")
    >>> len(data["train"]), len(data["test"])
    (1258, 539)
"""

from guided_dml.data.base import ArrayDataset
from guided_dml.data.cifar import load_cifar10, read_cifar10_archive, read_cifar10_folder
from guided_dml.data.digits import load_digits
from guided_dml.data.download import REMOTE_FILES, RemoteFile, download_url, md5sum
from guided_dml.data.idx import read_idx, write_idx
from guided_dml.data.image_folder import load_image_folder
from guided_dml.data.mnist import load_fashion_mnist, load_mnist
from guided_dml.data.paths import decoded_cache_dir, resolve_data_dir, user_cache_dir
from guided_dml.data.registry import (
    DATASETS,
    RETRIEVAL_DATASETS,
    load_dataset,
    load_retrieval_dataset,
)
from guided_dml.data.retrieval import (
    RetrievalDataset,
    load_cars196,
    load_cub200,
    load_inshop,
    load_sop,
)
from guided_dml.data.splits import stratified_split
from guided_dml.data.transforms import eval_transform, train_transform

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
