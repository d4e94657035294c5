"""Where data sets and decoded caches live.

Precedence for the data folder: an explicit ``data_dir`` argument, else ``$GDML_DATA``, else the
per-user cache folder (``$XDG_CACHE_HOME/guided-dml`` or ``~/.cache/guided-dml``). Decoded caches
always go below the per-user cache folder, because a data folder may be read-only (a shared mount).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "GDML_DATA"
APP_NAME = "guided-dml"


def user_cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/guided-dml`` or ``~/.cache/guided-dml``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / APP_NAME


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder to read data sets from (and download them into).

    Args:
        data_dir: explicit folder; wins over ``$GDML_DATA`` and the per-user cache folder.

    Returns:
        An absolute path. It is not created here: loaders create it only when they download.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser().resolve()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return user_cache_dir().resolve()


def decoded_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder for decoded image-folder caches (``<user cache>/decoded`` unless given)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser().resolve()
    return user_cache_dir().resolve() / "decoded"
