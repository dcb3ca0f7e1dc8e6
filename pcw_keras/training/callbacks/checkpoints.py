"""The run's models: ``last.keras`` after every epoch, ``best.keras`` (and ``best.json``) at the best monitored value."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import keras

from pcw_keras.io import atomic_path, write_text_atomic
from pcw_keras.training.callbacks.metrics_log import to_scalar
from pcw_keras.training.cluster import model_is_chief, scratch_unless_chief

MODES = ("max", "min")
"""Whether a larger or a smaller monitored value is better."""


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`; a ValueError naming it otherwise."""
    if mode not in MODES:
        raise ValueError(f"Expected mode to be one of {', '.join(MODES)}. Received: mode={mode!r}")
    return mode


def save_model_atomic(model: keras.Model, path: Path) -> None:
    """Saves ``model`` to ``path`` (a ``.keras`` file) so that a kill never leaves a half-written file."""
    with scratch_unless_chief(model, path.parent) as scratch:
        if scratch:  # other workers still save (the save may run collective ops), but privately
            model.save(os.path.join(scratch, path.name))
            return
        with atomic_path(path, suffix=".keras") as tmp:
            model.save(tmp)


class AtomicModelCheckpoint(keras.callbacks.Callback):
    """Saves the whole model to a ``.keras`` file after each epoch, or at the best ``monitor`` value.

    The file is written under a temporary name and renamed, so a kill never
    leaves a half-written model. With ``monitor``, the best value and its epoch
    are kept in a JSON file beside the model (``best.keras`` -> ``best.json``),
    read back when training resumes. Only the chief writes.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.keras`` file.
    monitor : str, optional
        A key of the epoch logs (e.g. ``"val_accuracy"``). None saves every epoch.
    mode : {"max", "min"}
        Whether a larger or a smaller ``monitor`` value is better.

    Raises
    ------
    ValueError
        If ``path`` does not end with ``.keras`` or ``mode`` is unknown.
    """

    def __init__(self, path: str | os.PathLike, monitor: str | None = None, mode: str = "max"):
        super().__init__()
        self.path = Path(path)
        if self.path.suffix != ".keras":
            raise ValueError(f"AtomicModelCheckpoint writes .keras files. Received: path={os.fspath(path)!r}")
        self.monitor = monitor
        self.mode = check_mode(mode)
        self.record_path = self.path.with_suffix(".json")
        self.best: float | None = None

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_train_begin(self, logs=None):
        self.best = None
        if self.monitor and self.record_path.exists():
            record = json.loads(self.record_path.read_text(encoding="utf-8"))
            if record.get("monitor") == self.monitor and record.get("mode") == self.mode:
                self.best = float(record["value"])

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is None:
            save_model_atomic(self.model, self.path)
            return
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(
                f"AtomicModelCheckpoint monitors {self.monitor!r}, which the epoch logs lack "
                f"(they have: {', '.join(sorted(logs))}). Received: monitor={self.monitor!r}"
            )
        value = float(to_scalar(logs[self.monitor]))
        if math.isnan(value) or not self._better(value):
            return
        self.best = value
        save_model_atomic(self.model, self.path)
        if model_is_chief(self.model):
            record = {"monitor": self.monitor, "mode": self.mode, "value": value, "epoch": epoch}
            write_text_atomic(self.record_path, json.dumps(record))
