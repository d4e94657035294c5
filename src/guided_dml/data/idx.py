"""Reader and writer for the IDX format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian
``uint32`` dimensions, then the data, big-endian, row-major. Files may be gzip-compressed (the
official distribution is); compression is detected from the content, not the file name.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..atomic import write_bytes
from ..errors import DataError

# type code -> big-endian numpy dtype (from the format description on the MNIST page)
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped if it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc.strerror or exc}") from exc
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"IDX file {path} is a corrupt or truncated gzip file ({exc}); download it again"
        ) from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a native-endian numpy array.

    Args:
        path: the file.

    Returns:
        A writable array of the file's shape and type (``uint8`` for MNIST images and labels).

    Raises:
        DataError: the file is missing, unreadable, has a bad magic number, or is truncated or
            longer than its header says. The message names the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    hint = "download it again"
    if len(data) < 4:
        raise DataError(f"IDX file {path} is truncated: {len(data)} bytes, no header; {hint}")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or code not in IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{path} is not an IDX file (magic number 0x{data[:4].hex()}, expected "
            f"0x0000<type><ndim>); check that it is the right file or download it again"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"IDX file {path} is truncated inside its header; {hint}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise DataError(
            f"IDX file {path} is {what}: shape {shape} needs {expected} data bytes, found {found}; {hint}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # One copy, to native byte order and writable (torch.from_numpy warns on read-only arrays).
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically.

    Args:
        path: destination.
        array: any array whose dtype is one of the IDX types (uint8, int8, int16, int32,
            float32, float64) with at least one dimension.
        compress: gzip the file; by default when ``path`` ends in ``.gz``.

    Returns:
        ``path`` as a Path.

    Raises:
        DataError: the dtype has no IDX type code or the array is 0-dimensional.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes or array.ndim == 0 or array.ndim > 255:
        raise DataError(f"cannot write dtype {array.dtype} with shape {array.shape} as IDX")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    return write_bytes(path, payload)
