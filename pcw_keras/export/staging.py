"""Build an export in a hidden folder beside its destination and publish it with one rename."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator


def check_destination(out: str, overwrite: bool) -> str:
    """Absolute ``out``, refused if it exists (unless ``overwrite``) or its parent is not a folder."""
    out = os.path.abspath(os.fspath(out))
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out!r} already exists: choose another --out or pass overwrite (CLI: --overwrite).")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"An export is a folder and {out!r} is a file. Received: out={out!r}")
    parent = os.path.dirname(out)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise ValueError(f"The parent of `out` is not a folder. Received: out={out!r}")
    return out


@contextlib.contextmanager
def staged_directory(out: str, overwrite: bool = False) -> Iterator[str]:
    """Yields an empty folder beside ``out``; on success it becomes ``out``, on error it is deleted.

    Nothing appears at ``out`` until everything inside was written, so a
    failed or interrupted export leaves no half-written files there.
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
