"""Downloading the built-in data sets: official URLs, md5 checks, progress bar, atomic writes.

Nothing here is called by the tests against the network: they use ``file://`` URLs or replace
:data:`urlopen` with a failing opener.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

from ..atomic import write_atomic
from ..errors import DataError

# Module-level so that tests (and users behind a proxy) can swap the opener.
urlopen: Callable[..., Any] = urllib.request.urlopen

_CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough for a smooth progress bar


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set's official distribution.

    Attributes:
        name: file name on disk (also the last component of ``url``).
        url: official download address.
        md5: hex digest of the file as distributed (compressed, where it is compressed).
    """

    name: str
    url: str
    md5: str


MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

# md5 of the gzip files exactly as the official servers distribute them.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

REMOTE_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": tuple(RemoteFile(n, MNIST_URL + n, m) for n, m in MNIST_MD5.items()),
    "fashion-mnist": tuple(RemoteFile(n, FASHION_MNIST_URL + n, m) for n, m in FASHION_MNIST_MD5.items()),
    "cifar10": (RemoteFile("cifar-10-python.tar.gz", CIFAR10_URL, CIFAR10_MD5),),
}


def sha256sum(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def md5sum(path: str | os.PathLike[str]) -> str:
    """Hex md5 digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download_url(
    url: str,
    dest: str | os.PathLike[str],
    md5: str | None = None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
    sha256_prefix: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its md5 (or SHA-256 prefix) on the fly.

    The bytes go to a temporary file next to ``dest`` that replaces it only once complete and
    verified, so an interrupted download never leaves a half file under the final name.

    Args:
        url: any URL ``urllib`` opens (``https://``, ``http://``, ``file://``).
        dest: final file path; its folder is created.
        md5: expected hex digest, or None to skip the check.
        sha256_prefix: expected first hex digits of the SHA-256 digest (torchvision's check of
            its weight files, whose names carry them), or None.
        progress: show a tqdm progress bar (only on a terminal).
        timeout: seconds to wait for the server before giving up.

    Returns:
        ``dest`` as a Path.

    Raises:
        DataError: the download failed or the checksum does not match.
    """
    dest = Path(dest)
    # The server first: a download that cannot start creates nothing, not even the folder.
    try:
        response = urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"could not download {url} ({reason}); download it by hand and save it as {dest}"
        ) from exc
    created = _missing_parents(dest)

    def stream(out: BinaryIO) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        sha = hashlib.sha256() if sha256_prefix else None
        length = response.headers.get("Content-Length") if response.headers else None
        total = int(length) if length and length.isdigit() else None
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dest.name,
            disable=None if progress else True,  # None: only on a terminal
        ) as bar:
            while True:
                try:
                    block = response.read(_CHUNK)
                except OSError as exc:
                    raise DataError(
                        f"download of {url} broke off ({exc}); retry, or download it by "
                        f"hand and save it as {dest}"
                    ) from exc
                if not block:
                    break
                out.write(block)
                digest.update(block)
                if sha is not None:
                    sha.update(block)
                bar.update(len(block))
        got = digest.hexdigest()
        if md5 is not None and got != md5.lower():
            raise DataError(
                f"checksum mismatch for {url}: md5 {got}, expected {md5}; the download is "
                f"corrupt or the server changed it, retry or place a verified copy at {dest}"
            )
        if sha is not None and not sha.hexdigest().startswith(str(sha256_prefix).lower()):
            raise DataError(
                f"checksum mismatch for {url}: SHA-256 {sha.hexdigest()[:16]}..., expected it to "
                f"start with {sha256_prefix}; the download is corrupt or the server changed it, "
                f"retry or place a verified copy at {dest}"
            )

    try:
        with response:
            write_atomic(dest, stream)  # verified before the rename: never half a file
    except BaseException:
        for folder in created:  # deepest first; only the empty folders this call created
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return dest


def _missing_parents(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, deepest first."""
    out = []
    for parent in path.parents:
        if parent.exists():
            break
        out.append(parent)
    return out


def missing_files_message(dataset: str, folder: Path, files: Sequence[RemoteFile]) -> str:
    """One line telling the user which files to put where, and where to get them."""
    names = ", ".join(f.name for f in files)
    urls = " ".join(sorted({f.url.rsplit("/", 1)[0] + "/" for f in files}))
    them = "it" if len(files) == 1 else "them"
    return f"{dataset} needs {names} in {folder}: put {them} there (official source: {urls})"


def fetch_files(
    dataset: str,
    folder: Path,
    files: Sequence[RemoteFile],
    *,
    download: bool,
    progress: bool = True,
) -> list[Path]:
    """Make sure every file of ``files`` is in ``folder``, downloading the missing ones.

    Args:
        dataset: name used in messages.
        folder: where the files are expected (and downloaded to).
        files: the official files.
        download: if False, a missing file is an error rather than a download.
        progress: show progress bars.

    Returns:
        The paths of all files, in the order of ``files``.

    Raises:
        DataError: a file is missing and may not, or could not, be downloaded.
    """
    missing = [f for f in files if not (folder / f.name).is_file()]
    if missing and not download:
        raise DataError(f"{missing_files_message(dataset, folder, missing)}, or allow download=True")
    for f in missing:
        try:
            download_url(f.url, folder / f.name, f.md5, progress=progress)
        except DataError as exc:
            still = [g for g in missing if not (folder / g.name).is_file()]
            raise DataError(f"{exc}; {missing_files_message(dataset, folder, still)}") from exc
    return [folder / f.name for f in files]
