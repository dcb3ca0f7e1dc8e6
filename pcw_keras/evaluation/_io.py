"""Atomic writes for the evaluators' JSON and PNG outputs (temp file, then rename)."""
from __future__ import annotations

import json
import os
import tempfile


def write_json_atomic(path: str | os.PathLike, payload: dict) -> str:
    """Writes ``payload`` as indented JSON to ``path`` via a temporary file in the same folder."""
    return write_text_atomic(path, json.dumps(payload, indent=2))


def write_text_atomic(path: str | os.PathLike, text: str) -> str:
    """Writes ``text`` to ``path`` via a temporary file in the same folder, then renames it."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def pyplot():
    """Matplotlib's pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure_atomic(figure, path: str | os.PathLike, dpi: int = 120) -> str:
    """Saves a Matplotlib figure to ``path`` (format from its suffix) via a temporary file, then closes it."""
    plt = pyplot()
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1] or ".png"
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(handle)
    try:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        plt.close(figure)
    return path
