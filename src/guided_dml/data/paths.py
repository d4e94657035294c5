"""Where data sets and decoded caches live.

Precedence for the data folder: an explicit ``data_dir`` argument, else ``$GDML_DATA``, else the
per-user cache folder (``$XDG_CACHE_HOME/guided-dml`` or ``~/.cache/guided-dml``). Decoded caches
(image folders decoded once, then read back from an ``.npz``) go to an explicit ``cache_dir``, else
``$GDML_CACHE``, else ``<user cache>/decoded`` (never the data folder: it may be read-only, a
shared mount). ``GDML_CACHE=off`` (or ``gdml ... --cache-dir off``) turns the cache off.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "GDML_DATA"
CACHE_ENV = "GDML_CACHE"
CACHE_OFF = ("off", "none", "no", "0", "false")  # values of GDML_CACHE / --cache-dir that disable it
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


def cache_disabled(cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``cache_dir`` (or, when None, ``$GDML_CACHE``) says "off"."""
    value = os.fspath(cache_dir) if cache_dir is not None else os.environ.get(CACHE_ENV, "")
    return value.strip().lower() in CACHE_OFF


def decoded_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder for decoded image-folder caches: ``cache_dir``, else ``$GDML_CACHE``, else
    ``<user cache>/decoded``. (Whether it is used at all: :func:`cache_disabled`.)"""
    if cache_dir is not None:
        return Path(cache_dir).expanduser().resolve()
    env = os.environ.get(CACHE_ENV, "").strip()
    if env and env.lower() not in CACHE_OFF:
        return Path(env).expanduser().resolve()
    return user_cache_dir().resolve() / "decoded"
