"""How data sets and archives are named: the one place that normalises a data set's name and
decides whether a path is an archive (used by the registry, the image loaders and the config)."""

from __future__ import annotations

import re
import tarfile
import zipfile
from pathlib import Path

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)

# Spellings users type for the built-in sets, mapped to the registry's key.
# (No bare "cub" or "cars": a photo folder of that name in the working directory stays a path.)
ALIASES = {"fashion": "fashion-mnist", "fmnist": "fashion-mnist", "cifar-10": "cifar10",
           "cub-200": "cub200", "cars-196": "cars196", "in-shop": "inshop",
           "stanford-online-products": "sop"}
# The retrieval benchmarks (data/retrieval.py): their test classes are not their training
# classes, so every run on them follows the class-disjoint protocol.
CLASS_DISJOINT = ("cub200", "cars196", "sop", "inshop")

_ARCHIVE_SUFFIX = re.compile(
    "(" + "|".join(re.escape(s) for s in sorted(TAR_SUFFIXES + ZIP_SUFFIXES, key=len, reverse=True)) + ")$",
    re.IGNORECASE,
)


def dataset_key(name: str) -> str:
    """The registry's key for a data set name: ``Fashion_MNIST``, ``fashion`` and
    ``fashion-mnist`` all give ``fashion-mnist``; other names are only case- and
    underscore-normalised."""
    key = name.strip().lower().replace("_", "-")
    return ALIASES.get(key, key)


def is_class_disjoint(name: str) -> bool:
    """Whether ``name`` is a built-in data set whose test classes are unseen in training."""
    return dataset_key(name) in CLASS_DISJOINT


def has_archive_suffix(name: str, *, zip_ok: bool = True) -> bool:
    """Whether ``name`` ends like an archive (``.tar.gz``, ``.tgz`` ..., and ``.zip`` if
    ``zip_ok``); decided from the name alone, so it also works for a path that does not exist."""
    suffixes = TAR_SUFFIXES + (ZIP_SUFFIXES if zip_ok else ())
    return name.lower().endswith(suffixes)


def is_archive(path: Path, *, zip_ok: bool = True) -> bool:
    """Whether ``path`` is an archive file to read images from: a tar archive (any compression)
    or, if ``zip_ok``, a zip file; by its name or, failing that, by its content."""
    if not path.is_file():
        return False
    if has_archive_suffix(path.name, zip_ok=zip_ok):
        return True
    return (zip_ok and zipfile.is_zipfile(path)) or tarfile.is_tarfile(path)


def strip_archive_suffix(name: str) -> str:
    """``photos.tar.gz`` -> ``photos``: the name tables and run folders use for an archive."""
    return _ARCHIVE_SUFFIX.sub("", name)
