"""Durable, atomic file writes: the one helper every writer of the package goes through.

A file is written under a temporary name in its folder, flushed and
``fsync``-ed, renamed over the target (the rename is the commit), and the
folder is ``fsync``-ed so that the rename itself survives a power cut. A
reader therefore sees the old file or the new one, never a half-written or
empty one; a failure removes the temporary file. Text, JSON, models
(:func:`atomic_path`) and figures (:func:`save_figure`) are all written so,
and a folder of files (an export, a report) is built in a hidden folder
beside its destination and published with one rename (:func:`staged_directory`).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename or a new file in it) to the disk; a no-op where folders cannot be opened."""
    try:
        handle = os.open(os.fspath(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """A temporary path beside ``path`` to write to; on success it is synced and renamed over ``path``.

    ``suffix`` ends the temporary name (a writer that infers the format from
    the extension, such as ``model.save``, needs ``".keras"``).

    Example
    -------
    >>> with atomic_path("out/model.keras", suffix=".keras") as tmp:  # doctest: +SKIP
    ...     model.save(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Delete what :func:`atomic_path` left in ``folder`` (not below) when a process was killed mid-write.

    Such a file was never committed (its rename did not happen), so nothing
    refers to it. Returns the names removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.is_file() and p.name.startswith(".") and ".tmp" in p.name]
    for path in stale:
        path.unlink()
    return sorted(p.name for p in stale)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` durably and atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike, payload) -> str:
    """Write ``payload`` as indented JSON to ``path`` durably and atomically; returns the path."""
    write_text_atomic(path, json.dumps(payload, indent=2))
    return os.fspath(path)


def pyplot():
    """Matplotlib's pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | os.PathLike, **savefig) -> str:
    """Save a Matplotlib figure to ``path`` durably and atomically, then close it; returns the path.

    The format follows the suffix of ``path`` (``.png``, ``.pdf``...);
    ``savefig`` goes on to ``Figure.savefig`` (``dpi``, ``bbox_inches``...).
    """
    plt = pyplot()
    try:
        with atomic_path(path, suffix=Path(path).suffix) as tmp:
            figure.savefig(tmp, **savefig)
    finally:
        plt.close(figure)
    return os.fspath(path)


def check_destination(out: str, overwrite: bool) -> str:
    """Absolute ``out``, refused if it exists (unless ``overwrite``) or its parent is not a folder."""
    out = os.path.abspath(os.fspath(out))
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out!r} already exists: choose another --out or pass overwrite (CLI: --overwrite).")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"`out` must be a folder, and {out!r} is a file. Received: out={out!r}")
    parent = os.path.dirname(out)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise ValueError(f"The parent of `out` is not a folder. Received: out={out!r}")
    return out


@contextlib.contextmanager
def staged_directory(out: str, overwrite: bool = False) -> Iterator[str]:
    """Yields an empty folder beside ``out``; on success it becomes ``out``, on error it is deleted.

    Nothing appears at ``out`` until everything inside was written, so a
    failed or interrupted writer (an export, a report) leaves no half-written files there.
    """
    out = check_destination(out, overwrite)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", suffix=".partial", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)
    try:
        yield stage
        old = None
        if os.path.exists(out):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", suffix=".old", dir=parent)
            os.replace(out, os.path.join(old, "previous"))
        os.replace(stage, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
