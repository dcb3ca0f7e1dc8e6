"""The evaluators' JSON and PNG outputs, written through :mod:`pcw_keras.io` (atomic and durable)."""
from __future__ import annotations

import os

from pcw_keras import io


def write_json_atomic(path: str | os.PathLike, payload: dict) -> str:
    """Writes ``payload`` as indented JSON to ``path``; returns the path."""
    io.write_json_atomic(path, payload)
    return os.fspath(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> str:
    """Writes ``text`` to ``path``; returns the path."""
    io.write_text_atomic(path, text)
    return os.fspath(path)


def pyplot():
    """Matplotlib's pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure_atomic(figure, path: str | os.PathLike, dpi: int = 120) -> str:
    """Saves a Matplotlib figure to ``path`` (format from its suffix), then closes it; returns the path."""
    plt = pyplot()
    suffix = os.path.splitext(os.fspath(path))[1] or ".png"
    try:
        with io.atomic_path(path, suffix=suffix) as tmp:
            figure.savefig(tmp, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(figure)
    return os.fspath(path)
