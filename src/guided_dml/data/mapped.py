"""Images in a ``.npy`` file on disk that index like an in-memory ``uint8`` image tensor.

What lets a data set larger than memory go through the in-memory training code unchanged
(:mod:`guided_dml.data.streaming` fills these files): the operating system pages in the rows a
batch reads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError

Index = int | slice | Sequence[int] | np.ndarray | torch.Tensor


class MappedImages:
    """``uint8 (N, C, H, W)`` images in a ``.npy`` file, read from disk on access.

    Indexing (an int, a slice, integer indices or a boolean mask) reads those rows and returns
    a ``torch.Tensor``, as indexing an in-memory image tensor does, so batch sources, ``embed``
    and GEMINI read it unchanged; :meth:`take` returns a lazy view of some rows (what
    :meth:`ArrayDataset.subset <guided_dml.data.base.ArrayDataset.subset>` uses, so splitting off
    validation copies no pixels). Pickles as its file name and row index, so worker processes
    reopen the map instead of copying the data.

    Args:
        file: a ``.npy`` file of ``uint8 (N, C, H, W)``.
        rows: the file's rows this object shows, in order (default: all).
    """

    dtype = torch.uint8

    def __init__(self, file: str | os.PathLike[str], rows: np.ndarray | None = None) -> None:
        self.file = Path(file)
        try:
            self._array = np.load(self.file, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read decoded images {self.file} ({exc}); delete the file "
                            "to decode the images again") from exc
        if self._array.dtype != np.uint8 or self._array.ndim != 4:
            raise DataError(f"{self.file} holds {self._array.dtype} of shape "
                            f"{self._array.shape}, not uint8 (N, C, H, W) images; delete it")
        n = len(self._array)
        self.rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)

    # -- the tensor-like surface the training code reads -------------------------------------
    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self._array.shape[1:]))

    def dim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.rows)

    def _select(self, key: Index) -> np.ndarray | int:
        """The file rows of ``key`` (an int stays an int)."""
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        if isinstance(key, (int, np.integer)):
            return int(self.rows[int(key)])
        if isinstance(key, slice):
            return self.rows[key]
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (len(self),):
                raise DataError(f"boolean mask of shape {key.shape} for {len(self)} images")
            return self.rows[key]
        return self.rows[key.astype(np.int64).ravel()]

    def __getitem__(self, key: Index) -> torch.Tensor:
        rows = self._select(key)
        if isinstance(rows, int):
            return torch.from_numpy(np.array(self._array[rows]))
        # Read in file order (sequential pages), then put the rows back in the order asked for.
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), *self._array.shape[1:]), dtype=np.uint8)
        out[order] = self._array[rows[order]]
        return torch.from_numpy(out)

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        """``tensor.index_select(0, index)``: the rows ``index``, read now."""
        if dim != 0:
            raise ValueError("MappedImages selects rows (dim 0) only")
        return self[index]

    def take(self, key: Index) -> MappedImages:
        """A lazy view of the rows ``key`` (nothing is read)."""
        rows = self._select(key)
        return MappedImages(self.file, np.atleast_1d(np.asarray(rows, dtype=np.int64)))

    def __getstate__(self) -> dict[str, Any]:
        return {"file": str(self.file), "rows": self.rows}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["file"], state["rows"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"MappedImages({str(self.file)!r}, n={len(self)}, shape={tuple(self.shape[1:])})"
