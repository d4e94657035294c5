"""Exact k-nearest-neighbour search under the squared Euclidean distance, in bounded memory.

Two rules make the result unique, so that every backend (and pytorch-metric-learning's
``FaissKNN``, which :func:`guided_dml.evaluation.evaluate` is tested against) returns the same
neighbours:

* **Ties** (equal float32 squared distances) are broken by the smaller reference index. This is
  the order faiss's ``IndexFlatL2`` produces (its heaps compare ``(distance, id)`` pairs; checked
  for heap and reservoir result handlers, i.e. small and large ``k``).
* **Leave-one-out** (``exclude_self=True``): query row ``i`` *is* reference row ``i`` and only that
  index is removed; an exact duplicate of the query at another index stays a neighbour (at
  distance 0). This is what pytorch-metric-learning's ``return_results`` does after searching
  ``k + 1`` neighbours: drop the column holding the query's own index, or the last column when
  the own index is not among them (more than ``k`` duplicates).

Distances are computed in float32 (inputs are cast, as pytorch-metric-learning and faiss do):

* ``d <= LOW_DIM``: direct differences ``sum_t (q_t - r_t)**2``, accumulated over ``t`` in order.
  Every term is a correctly rounded float32 operation, so the result is deterministic and has a
  small *relative* error. The matmul expansion ``|q|^2 + |r|^2 - 2 q.r`` used by BLAS and faiss
  loses the small distances to cancellation when the embeddings sit far from the origin, which
  low-dimensional embeddings often do, and the difference form costs little when ``d`` is small.
* ``d > LOW_DIM``: the matmul expansion (BLAS), clamped at ``+0.0`` like faiss does.

Backends: ``"faiss"`` (``IndexFlatL2``; faiss's own float32 arithmetic), ``"torch"`` (the two
formulas above, in query chunks sized from ``memory_budget_mb``), ``"auto"`` (faiss when it is
installed and ``d > LOW_DIM``, else torch: in low dimension the direct differences are both exact
and fast). On embeddings whose squared distances are exactly representable in float32 (e.g. small
multiples of a power of two) all backends return identical results; otherwise they differ only
where two distances are within float32 rounding of each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch

from ..errors import ConfigError, DataError

try:  # faiss is an optional extra (pip install guided-dml[faiss])
    import faiss
except ImportError:  # pragma: no cover - exercised only where faiss is missing
    faiss = None

ArrayLike = np.ndarray | torch.Tensor
Backend = Literal["auto", "faiss", "torch"]

BACKENDS: tuple[str, ...] = ("auto", "faiss", "torch")
LOW_DIM = 8  # up to this dimension, direct differences (exact, and as fast as a d-thin matmul)
DEFAULT_MEMORY_BUDGET_MB = 512.0  # working memory for one chunk of the query x reference matrix
_MIN_CHUNK = 1  # a budget smaller than one row still makes progress, one query at a time
BLAS_BLOCK_ROWS = 256  # query rows per matrix product (d > LOW_DIM); see squared_distances
MIN_BLOCK_ROWS = 8  # fewer rows can take BLAS's gemv path, which rounds differently
COLUMN_TILE = 65_536  # reference columns per matrix product: bounds its temporaries


def faiss_available() -> bool:
    """Whether the optional faiss package could be imported."""
    return faiss is not None


def as_embeddings(x: ArrayLike, name: str) -> np.ndarray:
    """Validate ``x`` and return it as a C-contiguous float32 ``(N, d)`` numpy array.

    Raises :class:`~guided_dml.errors.DataError` for a wrong shape, an empty array, or
    non-finite values (a NaN would make every distance comparison false and the ranking
    meaningless; a diverged model is the usual cause).
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    try:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
            arr = np.ascontiguousarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be a numeric array of shape (N, d): {exc}") from exc
    if arr.ndim != 2:
        raise DataError(f"{name} must have shape (N, d), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{name} is empty (shape {arr.shape}); nothing to evaluate")
    if not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr).all(axis=1)))
        raise DataError(
            f"{name} has {bad} row(s) with NaN or inf values (in float32); "
            "check the model for divergence before evaluating"
        )
    if arr.shape[0] >= 2**31:
        raise DataError(f"{name} has {arr.shape[0]} rows; at most 2**31 - 1 are supported")
    return arr


def resolve_backend(backend: str, dim: int) -> str:
    """Turn ``"auto"`` into ``"faiss"`` or ``"torch"`` for embeddings of dimension ``dim``."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "faiss" and faiss is None:
        raise ConfigError("backend='faiss' needs faiss: pip install 'guided-dml[faiss]'")
    if backend == "auto":
        return "faiss" if faiss is not None and dim > LOW_DIM else "torch"
    return backend


def chunk_rows(n_reference: int, bytes_per_entry: int, memory_budget_mb: float) -> int:
    """How many query rows fit in ``memory_budget_mb`` at ``bytes_per_entry`` per pair."""
    if not memory_budget_mb > 0:
        raise ConfigError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
    rows = int(memory_budget_mb * 2**20 // (bytes_per_entry * max(n_reference, 1)))
    return max(rows, _MIN_CHUNK)


def block_rows(chunk: int) -> int:
    """Query rows per matrix product for chunks of ``chunk`` rows: ``BLAS_BLOCK_ROWS``, or the
    largest power of two that fits in a smaller chunk (at least ``MIN_BLOCK_ROWS``).

    The block shrinks only when the memory budget cannot hold ``BLAS_BLOCK_ROWS`` rows of
    distances (N above budget / 1 KiB, e.g. N > 524 288 at 512 MB).
    """
    if chunk >= BLAS_BLOCK_ROWS:
        return BLAS_BLOCK_ROWS
    return max(MIN_BLOCK_ROWS, 1 << (max(chunk, 1).bit_length() - 1))


def squared_distances(
    query: torch.Tensor,
    reference: torch.Tensor,
    reference_sqnorm: torch.Tensor | None = None,
    rows_per_product: int = BLAS_BLOCK_ROWS,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Float32 squared distances ``(Q, N)``, every entry ``>= +0.0`` (see the module docstring).

    ``reference_sqnorm`` (``(N,)``, only used when ``d > LOW_DIM``) saves recomputing the
    reference norms for every chunk. Each row's distances depend only on that query row, not on
    the other rows passed with it, so chunking never changes a result. ``rows_per_product``
    (``d > LOW_DIM``): query rows per matrix product (see :func:`block_rows`); each product
    covers at most ``COLUMN_TILE`` reference columns, so its buffer takes at most
    ``4 * rows_per_product * COLUMN_TILE`` bytes (64 MB) whatever N is. ``out``: a float32
    ``(Q, N)`` tensor to write into; reusing one for every chunk saves the kernel from zeroing
    fresh pages (a third of the time at N = 100 000).
    """
    q_n, dim = query.shape
    if out is None:
        out = torch.empty(q_n, reference.shape[0], dtype=torch.float32)
    if dim <= LOW_DIM:
        # Same operation order as the numba kernel in ranking.py, so the two agree bit for bit.
        out.zero_()
        for t in range(dim):
            out.add_((query[:, t, None] - reference[None, :, t]).square_())  # (Q, N)
        return out
    if reference_sqnorm is None:
        reference_sqnorm = reference.square().sum(1)
    query_sqnorm = query.square().sum(1)
    n_ref = reference.shape[0]
    # BLAS picks its kernel (and so the summation order of q.r) from the matrix shapes and
    # alignments: a 1-row product takes a gemv path that rounds differently. Products of
    # fixed-shape blocks from one buffer (the last block zero-padded) make every distance
    # independent of how the queries are chunked. 256 rows run at full BLAS speed (64: 2x slower).
    # Measured with torch's CPU BLAS (x86-64, d = 16-512): products of 8 to 256 rows, and column
    # tiles of any width, give bit-identical entries, so neither the tiling nor a block shrunk
    # for a small memory budget changes a distance there.
    bsz = rows_per_product
    block = torch.zeros(bsz, dim, dtype=torch.float32)
    block_sqnorm = torch.zeros(bsz, dtype=torch.float32)
    # One product buffer for all tiles: allocating it per tile cost 1.3-1.5x the whole call.
    tile_buf = torch.empty(bsz, min(COLUMN_TILE, n_ref), dtype=torch.float32)
    for start in range(0, q_n, bsz):
        rows = min(bsz, q_n - start)
        block[:rows] = query[start : start + rows]
        block[rows:] = 0.0
        block_sqnorm[:rows] = query_sqnorm[start : start + rows]
        for c0 in range(0, n_ref, COLUMN_TILE):
            c1 = min(c0 + COLUMN_TILE, n_ref)
            dist = tile_buf[:, : c1 - c0]
            # |q|^2 + |r|^2 - 2 q.r: (B, 1) + (1, T) - 2 (B, d) @ (d, T), as faiss computes it
            # (in place, the same gemm with beta = 1 as an out-of-place addmm: same bits)
            torch.add(block_sqnorm[:, None], reference_sqnorm[None, c0:c1], out=dist)
            dist.addmm_(block, reference[c0:c1].T, alpha=-2.0)
            # Cancellation can make identical vectors slightly negative (and gives -0.0, whose
            # bits would sort after every distance). As int32, every negative float is negative:
            # clamping the bits at 0 maps all of them to +0.0, in the same pass as the copy.
            torch.clamp_min(dist.view(torch.int32)[:rows], 0,
                            out=out[start : start + rows, c0:c1].view(torch.int32))
    return out


def _sort_keys(dist: torch.Tensor) -> torch.Tensor:
    """int64 keys ``(float32 bits << 32) | column`` ordering ``(distance, index)`` pairs.

    Non-negative float32 values compare like their bit patterns read as integers, so one
    integer comparison implements "smaller distance, then smaller index" (``(Q, N)`` int64).
    """
    keys = dist.view(torch.int32).to(torch.int64)
    keys <<= 32
    keys |= torch.arange(dist.shape[1], dtype=torch.int64)
    return keys


def _query_chunks(n_query: int, rows: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n_query, rows):
        yield start, min(start + rows, n_query)


def _knn_torch(
    query: np.ndarray, reference: np.ndarray, k: int, exclude_self: bool, memory_budget_mb: float
) -> tuple[np.ndarray, np.ndarray]:
    q_all = torch.from_numpy(query)
    ref = torch.from_numpy(reference)
    ref_sqnorm = ref.square().sum(1) if ref.shape[1] > LOW_DIM else None
    dist_out = np.empty((len(query), k), dtype=np.float32)
    idx_out = np.empty((len(query), k), dtype=np.int64)
    # per (query, reference) pair: float32 distance + int64 key + int32->int64 temporary
    rows = chunk_rows(len(reference), 4 + 8 + 8, memory_budget_mb)
    bsz = block_rows(rows)
    if ref_sqnorm is not None:  # BLAS path: whole blocks (a partial block is padded anyway)
        rows = max(bsz, rows - rows % bsz)
    for start, stop in _query_chunks(len(query), rows):
        keys = _sort_keys(squared_distances(q_all[start:stop], ref, ref_sqnorm, bsz))  # (Qc, N)
        if exclude_self:
            own = torch.arange(start, stop)
            keys[own - start, own] = torch.iinfo(torch.int64).max
        top = torch.topk(keys, k, dim=1, largest=False, sorted=True).values  # (Qc, k), unique keys
        idx_out[start:stop] = (top & 0xFFFFFFFF).numpy()
        dist_out[start:stop] = (top >> 32).to(torch.int32).view(torch.float32).numpy()
        del keys  # before the next chunk is allocated: one chunk alive, not two
    return dist_out, idx_out


def _knn_faiss(
    query: np.ndarray, reference: np.ndarray, k: int, exclude_self: bool, memory_budget_mb: float
) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatL2(reference.shape[1])
    index.add(reference)
    k_search = k + 1 if exclude_self else k
    dist_out = np.empty((len(query), k), dtype=np.float32)
    idx_out = np.empty((len(query), k), dtype=np.int64)
    # faiss holds a (Qc, k) heap per chunk plus its own fixed-size BLAS tiles
    rows = max(chunk_rows(k_search, 8 + 4 + 8, memory_budget_mb), 1)
    for start, stop in _query_chunks(len(query), rows):
        dist, idx = index.search(query[start:stop], k_search)  # (Qc, k_search), sorted
        if exclude_self:
            # pytorch-metric-learning's return_results: drop the query's own index, or the last
            # column when more than k duplicates pushed it out of the k + 1 nearest.
            own = idx == np.arange(start, stop)[:, None]
            own[~own.any(axis=1), -1] = True
            dist = dist[~own].reshape(stop - start, k)
            idx = idx[~own].reshape(stop - start, k)
        dist_out[start:stop] = dist
        idx_out[start:stop] = idx
    return dist_out, idx_out


def knn(
    query: ArrayLike,
    reference: ArrayLike | None,
    k: int,
    *,
    exclude_self: bool = False,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    backend: Backend = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest neighbours of every query row among the reference rows.

    Args:
        query: ``(Q, d)`` embeddings (numpy or torch; cast to float32).
        reference: ``(N, d)`` embeddings; ``None`` searches the queries themselves.
        k: number of neighbours, at most ``N`` (``N - 1`` with ``exclude_self``).
        exclude_self: leave-one-out; query row ``i`` is reference row ``i`` and that index is
            never returned (duplicates of it are).
        memory_budget_mb: working memory for one chunk of queries (torch backend); the chunk
            holds about ``20 * N`` bytes per query, and at least ``MIN_BLOCK_ROWS`` queries
            when ``d > LOW_DIM``.
        backend: ``"auto"``, ``"faiss"`` or ``"torch"`` (see the module docstring).

    Returns:
        ``(dist, idx)``: float32 squared distances and int64 reference indices, both ``(Q, k)``,
        sorted by ``(distance, index)``.

    Examples:
        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
        >>> knn(x, None, 1, exclude_self=True)[1].ravel().tolist()
        [1, 0, 0]
    """
    q = as_embeddings(query, "query")
    ref = q if reference is None else as_embeddings(reference, "reference")
    if ref.shape[1] != q.shape[1]:
        raise DataError(f"query and reference dimensions differ: {q.shape[1]} vs {ref.shape[1]}")
    if exclude_self and len(ref) < len(q):
        raise DataError(
            "exclude_self needs query row i to be reference row i, but the reference has "
            f"fewer rows ({len(ref)}) than the query ({len(q)})"
        )
    available = len(ref) - int(exclude_self)
    if not 1 <= k <= available:
        raise DataError(f"k must be in [1, {available}] for this reference, got {k}")
    if resolve_backend(backend, q.shape[1]) == "faiss":
        return _knn_faiss(q, ref, k, exclude_self, memory_budget_mb)
    return _knn_torch(q, ref, k, exclude_self, memory_budget_mb)
