"""What a run logs per epoch: ``metrics.csv`` (one row per epoch, never duplicated), TensorBoard's ``logs/``, and
Keras' progress lines (a bar on a terminal, a line per epoch in a log)."""
from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import keras

from pcw_keras.io import write_text_atomic
from pcw_keras.training.cluster import model_is_chief
from pcw_keras.training.strategy import model_strategy, write_dir


def to_scalar(value):
    """An epoch-log value as a Python number (or list): NumPy and backend tensors converted, others as they are."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a NumPy or backend tensor
        value = keras.ops.convert_to_numpy(value)
        return value.item() if value.size == 1 else value.tolist()
    return value


def progress_verbosity(verbose: int | str) -> int | str:
    """Keras' ``verbose`` for ``fit``: ``"auto"`` becomes 1 (progress bar) on a terminal and 2 (a line per epoch) otherwise."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose


class ResumableCSVLogger(keras.callbacks.Callback):
    """Appends one row per epoch to a CSV file, dropping rows of epochs that are trained again.

    At the first epoch of a ``fit`` call, rows for that epoch and later (left
    by a killed run whose last epoch is being replayed) are removed, so the file
    never has duplicate or out-of-order epochs. Only the chief writes.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)
        self._fields: list[str] | None = None
        self._started = False

    def _read_rows(self) -> tuple[list[str] | None, list[dict]]:
        if not self.path.exists():
            return None, []
        with self.path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = []
            for row in reader:
                try:  # A row cut short by a crash is dropped.
                    int(row["epoch"])
                    if None in row or None in row.values():
                        continue
                except (KeyError, TypeError, ValueError):
                    continue
                rows.append(row)
            return reader.fieldnames, rows

    def on_train_begin(self, logs=None):
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._started or not model_is_chief(self.model):
            return
        self._started = True
        fields, rows = self._read_rows()
        self._fields = list(fields) if fields else None
        if self.path.exists():
            buffer = _CsvText()
            if fields:
                writer = csv.DictWriter(buffer, fieldnames=fields)
                writer.writeheader()
                writer.writerows(row for row in rows if int(row["epoch"]) < epoch)
            write_text_atomic(self.path, buffer.text)

    def on_epoch_end(self, epoch, logs=None):
        if not model_is_chief(self.model):
            return
        logs = {key: to_scalar(value) for key, value in (logs or {}).items()}
        if self._fields is None:
            self._fields = ["epoch", *sorted(logs)]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="", encoding="utf-8") as handle:
                csv.DictWriter(handle, fieldnames=self._fields).writeheader()
        row = {"epoch": epoch, **{key: value for key, value in logs.items() if key in self._fields}}
        buffer = _CsvText()
        csv.DictWriter(buffer, fieldnames=self._fields, restval="").writerow(row)
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            handle.write(buffer.text)
            handle.flush()
            os.fsync(handle.fileno())


class _CsvText:
    """A minimal text sink for ``csv`` writers."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


class ChiefTensorBoard(keras.callbacks.TensorBoard):
    """``TensorBoard`` that logs per epoch, and whose non-chief workers log to a private temporary directory.

    It has no batch hooks: Keras waits for every step's result to call one
    (and TensorBoard's, at its default ``update_freq="epoch"``, only write the
    training graph once, which this callback does at the first epoch's end).
    """

    _scratch: str | None = None

    on_train_batch_begin = keras.callbacks.Callback.on_train_batch_begin
    on_train_batch_end = keras.callbacks.Callback.on_train_batch_end

    def __init__(self, log_dir: str):
        super().__init__(log_dir=log_dir)

    def on_epoch_end(self, epoch, logs=None):
        if self._should_write_train_graph:
            self._write_keras_model_train_graph()
            self._should_write_train_graph = False
        super().on_epoch_end(epoch, logs)

    def set_model(self, model):
        if not model_is_chief(model):
            self._scratch = self.log_dir = write_dir(self.log_dir, model_strategy(model))
        super().set_model(model)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self._scratch:  # a non-chief worker's private logs: nobody reads them
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def tensorboard_installed() -> bool:
    """Whether TensorBoard event files can be written: TensorFlow's summary writer and the tensorboard package."""
    return all(importlib.util.find_spec(name) is not None for name in ("tensorflow", "tensorboard"))


def tensorboard_callbacks(log_dir: Path, tensorboard: bool | None) -> list[keras.callbacks.Callback]:
    """``[ChiefTensorBoard(log_dir)]`` when asked for (None: when installed, else a note on stdout), or ``[]``.

    Raises
    ------
    ImportError
        ``tensorboard=True`` without TensorFlow and the ``tensorboard`` package.
    """
    if tensorboard is None:
        tensorboard = tensorboard_installed()
        if not tensorboard:
            print(f"pcw: TensorBoard event files need TensorFlow and tensorboard, not installed here: no {log_dir}.")
    elif tensorboard and not tensorboard_installed():
        raise ImportError(
            "TensorBoard logs need TensorFlow and the tensorboard package (pip install tensorflow tensorboard). "
            "Received: tensorboard=True"
        )
    return [ChiefTensorBoard(log_dir=os.fspath(log_dir))] if tensorboard else []
