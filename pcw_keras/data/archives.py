"""Safe, atomic, cached extraction of ``.tar.gz`` image folders."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


def cache_root() -> str:
    """Folder for pcw_keras caches: ``$PCW_KERAS_CACHE`` or ``~/.cache/pcw_keras``."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "pcw_keras")
    return os.environ.get("PCW_KERAS_CACHE", default)


def is_archive(path: str) -> bool:
    """Whether ``path`` names a gzipped tarball by its suffix."""
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(path: str) -> str:
    """Extract a tarball once and return the extracted folder.

    The target is ``<cache_root>/extracted/<sha256 of path, mtime, size>``, so a
    changed archive gets a new folder. Members are extracted with
    ``tarfile``'s ``"data"`` filter, which refuses absolute paths, ``..``
    components, links out of the target and device files. Extraction goes to a
    temporary folder renamed into place, so an interrupted run never leaves a
    half-written cache.

    Raises
    ------
    ValueError
        When a member would land outside the target or the archive is
        unreadable; nothing is left behind.
    """
    path = os.path.realpath(path)
    stat = os.stat(path)
    key = hashlib.sha256(f"{path}|{stat.st_mtime_ns}|{stat.st_size}".encode()).hexdigest()[:24]
    parent = os.path.join(cache_root(), "extracted")
    target = os.path.join(parent, key)
    if os.path.isdir(target):
        return target
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{key}-", dir=parent)
    try:
        with tarfile.open(path, "r:*") as archive:
            archive.extractall(staging, filter="data")
        os.rename(staging, target)
    except (tarfile.TarError, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        if os.path.isdir(target):  # another process finished first
            return target
        raise ValueError(f"Cannot extract archive {path!r} safely: {error}") from None
    return target
