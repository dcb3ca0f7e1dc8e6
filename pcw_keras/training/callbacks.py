"""Callbacks for a run directory that a killed run resumes from, exactly.

:func:`resume_callbacks` gives the list a training run passes to ``model.fit``.
Re-running the same ``model.fit(..., epochs=N, callbacks=...)`` (no
``initial_epoch``) after a kill resumes at the last finished epoch and stops
after N epochs in total. The run directory then holds::

    run_dir/metrics.csv   one row per epoch, epochs 0..N-1, no duplicates
    run_dir/last.keras    the model after the last finished epoch
    run_dir/best.keras    the model at the best value of ``monitor``
    run_dir/best.json     that epoch and value (so a resumed run keeps comparing)
    run_dir/logs/         TensorBoard (when the tensorboard package is installed)
    run_dir/backup/       the resume state; deleted when training completes

Upstream ``keras.callbacks.BackupAndRestore`` (Keras 3.15) defects that
:class:`ResumableBackup` avoids:

- With ``save_freq=<steps>``, a resumed run restarts the epoch from batch 0 with
  mid-epoch weights (extra optimizer steps), and after a resume its backups
  record epoch 0 until the next epoch ends, so a second kill restarts training
  from epoch 0. Here backups are taken at epoch ends only and record the epoch
  that was actually trained.
- It writes the weights and then the epoch in two files, in place: a kill in
  between pairs new weights with the old epoch (one epoch trained twice), a
  kill during the write leaves a corrupt file. Here each backup is a new
  weights file and a small ``state.json`` naming it, written to a temporary
  file and renamed over the old one: the rename is the commit.
- It saves ``model.save_weights`` only, which leaves out the seed-generator
  state of random layers (Dropout, the project's permutation and shift
  layers): a resumed run draws other random numbers than an uninterrupted one.
  Here that state is saved beside the weights and restored with them.
- Every worker of a multi-worker run writes the same backup directory. Here
  only the chief writes (other workers save to a private temporary directory,
  as TensorFlow recommends), and all workers restore from ``run_dir/backup``,
  which must therefore be on a filesystem they share.

A kill just after an epoch ends, before its backup is committed, replays that
epoch; the CSV logger then drops the replayed epoch's earlier row, so the
metrics never hold duplicates. The order of the list matters and
:func:`resume_callbacks` fixes it: worker-sync, metrics and checkpoints come
before the backup, so anything written for an epoch is written again if that
epoch is replayed.

Exact resumption (losses equal to an uninterrupted run) also needs the input
pipeline to give epoch ``k`` the same batches in a fresh process as in a
long-running one: an unshuffled dataset, or a shuffle seeded from the epoch
rather than from the iterator's history.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from pcw_keras.io import atomic_path, write_text_atomic
from pcw_keras.training.distribution import KerasDistribution
from pcw_keras.training.strategy import is_chief, model_strategy, write_dir

logger = logging.getLogger(__name__)

MODES = ("max", "min")
STATE_FILE = "state.json"


def _chief(model: keras.Model) -> bool:
    return is_chief(model_strategy(model))


def _save_model_atomic(model: keras.Model, path: Path) -> None:
    """Saves ``model`` to ``path`` (a ``.keras`` file) so that a kill never leaves a half-written file."""
    if not _chief(model):
        # Other workers still save (the save may run collective ops), but privately.
        scratch = write_dir(path.parent, model_strategy(model))
        try:
            model.save(os.path.join(scratch, path.name))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


SHARED_TOKEN_FILE = ".cluster-token"
SHARED_TIMEOUT_S = 30.0
"""How long a worker waits for the chief's token (``PCW_SHARED_FOLDER_TIMEOUT_S`` overrides it)."""


def check_shared_folder(model: keras.Model, folder: Path, timeout: float | None = None) -> None:
    """In a run of several processes (TensorFlow workers or JAX processes), check that all see the chief's ``folder``.

    The chief draws a random token and all workers learn it through an
    all-reduce; the chief writes it to ``folder/.cluster-token``; each other
    worker waits up to ``timeout`` seconds to read the same token there. A
    second all-reduce shares the outcome, so that every worker stops with the
    same clear error (rather than some hanging in the next collective) when
    one of them does not see the file: their run directories are not one
    shared file system. A no-op outside a multi-worker run.

    Raises
    ------
    RuntimeError
        Some worker cannot read the chief's token in ``folder``.
    """
    strategy = model_strategy(model)
    if isinstance(strategy, KerasDistribution):
        if strategy.process()[1] == 1:
            return
        all_sum = strategy.all_sum
    else:
        import tensorflow as tf

        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or not strategy.extended._in_multi_worker_mode():
            return

        def all_sum(value: int) -> int:
            per_replica = strategy.run(lambda: tf.constant(value, tf.int64))
            return int(strategy.reduce("SUM", per_replica, axis=None).numpy())

    chief = is_chief(strategy)
    if timeout is None:
        timeout = float(os.environ.get("PCW_SHARED_FOLDER_TIMEOUT_S", SHARED_TIMEOUT_S))
    token = all_sum(int(np.random.default_rng().integers(1, 2**31 - 1)) if chief else 0)
    path = Path(folder) / SHARED_TOKEN_FILE
    if chief:
        write_text_atomic(path, str(token))
    seen = chief
    deadline = time.monotonic() + timeout
    while not seen and time.monotonic() < deadline:
        try:
            seen = path.read_text(encoding="utf-8").strip() == str(token)
        except OSError:
            pass
        if not seen:
            time.sleep(0.2)
    missing = all_sum(0 if seen else 1)
    if missing:
        raise RuntimeError(
            f"{missing} worker(s) cannot see the chief's run directory {os.fspath(folder)!r} (no token from the chief "
            f"there after {timeout:g} s): in a multi-worker run every worker must reach the same run directory on a "
            "shared file system (the same --out on a network or cluster file system)."
        )


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` at epoch ends that commits atomically and records the true epoch.

    On ``on_train_begin`` it restores the weights and optimizer state of the
    last committed epoch and makes ``model.fit`` continue from the next epoch;
    after each epoch it commits a new backup; when training completes it deletes
    the backup directory. Put it last in the callback list.

    Parameters
    ----------
    backup_dir : str or os.PathLike
        Directory for the backup, used by nothing else.

    Raises
    ------
    ValueError
        If ``backup_dir`` is empty.
    """

    def __init__(self, backup_dir: str | os.PathLike):
        if not backup_dir:
            raise ValueError(f"ResumableBackup needs a backup directory. Received: backup_dir={backup_dir!r}")
        super().__init__(os.fspath(backup_dir), save_freq="epoch", delete_checkpoint=True)
        self._dir = Path(backup_dir)
        self._state_path = self._dir / STATE_FILE
        self.resumed_epoch = 0
        """The epoch this ``fit`` call started at (0 for a fresh run)."""

    def read_state(self) -> dict | None:
        """The committed backup state ``{"epoch": int, "weights": str, "extra": str}``, or None without one."""
        if not self._state_path.exists():
            return None
        state = json.loads(self._state_path.read_text(encoding="utf-8"))
        if not isinstance(state.get("epoch"), int) or not isinstance(state.get("weights"), str):
            raise ValueError(f"Corrupt backup state in {self._state_path}. Received: {state!r}")
        return state

    def on_train_begin(self, logs=None):
        self.resumed_epoch = 0
        check_shared_folder(self.model, self._dir)
        state = self.read_state()
        if state is None:
            return
        weights = self._dir / state["weights"]
        if not weights.exists():
            raise FileNotFoundError(f"Backup state {self._state_path} names a missing weights file: {weights}")
        if not self.model.built:
            raise ValueError(f"Resuming needs a built model (call it on a batch first). Received: model={self.model.name!r}")
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(weights)
        if state.get("extra"):
            self._load_extra(self._dir / state["extra"])
        self.resumed_epoch = state["epoch"]
        self.model._initial_epoch = state["epoch"]

    def _extra_variables(self) -> list:
        """Model state that ``save_weights`` leaves out: the random layers' seed-generator states."""
        saved = {id(v) for v in self.model.weights}
        return [v for v in self.model.variables if id(v) not in saved]

    def _save_extra(self, path: Path) -> None:
        extra = self._extra_variables()
        np.savez(path, paths=np.asarray([v.path for v in extra]), *[np.asarray(v.value) for v in extra])

    def _load_extra(self, path: Path) -> None:
        extra = self._extra_variables()
        with np.load(path) as stored:
            values = [stored[f"arr_{index}"] for index in range(len(stored.files) - 1)]
            # Matched by position, shape and dtype (names can differ between processes).
            if [(value.shape, str(value.dtype)) for value in values] != [
                (tuple(v.shape), str(np.dtype(v.dtype))) for v in extra
            ]:
                raise ValueError(
                    f"Backup {path} holds the state of other variables than this model has. "
                    f"Received: {[str(p) for p in stored['paths']]} for {[v.path for v in extra]}"
                )
            for variable, value in zip(extra, values):
                variable.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        stem = f"epoch-{epoch + 1:05d}"
        weights, extra = f"{stem}.weights.h5", f"{stem}.extra.npz"
        if not _chief(self.model):
            scratch = write_dir(self._dir, model_strategy(self.model))
            try:
                self.model.save_weights(os.path.join(scratch, weights))
                self._save_extra(Path(scratch) / extra)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(self._dir / weights, overwrite=True)
        self._save_extra(self._dir / extra)
        # The rename of state.json commits this backup.
        write_text_atomic(self._state_path, json.dumps({"epoch": epoch + 1, "weights": weights, "extra": extra}))
        for old in self._dir.glob("epoch-*"):
            if not old.name.startswith(stem):
                old.unlink()

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None
        if _chief(self.model) and self._dir.exists():
            shutil.rmtree(self._dir)


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
        if self._started or not _chief(self.model):
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
        if not _chief(self.model):
            return
        logs = {key: _to_scalar(value) for key, value in (logs or {}).items()}
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


def _to_scalar(value):
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a NumPy or backend tensor
        value = keras.ops.convert_to_numpy(value)
        return value.item() if value.size == 1 else value.tolist()
    return value


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
        if mode not in MODES:
            raise ValueError(f"Expected mode to be one of {', '.join(MODES)}. Received: mode={mode!r}")
        self.monitor = monitor
        self.mode = mode
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
            _save_model_atomic(self.model, self.path)
            return
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(
                f"AtomicModelCheckpoint monitors {self.monitor!r}, which the epoch logs lack "
                f"(they have: {', '.join(sorted(logs))}). Received: monitor={self.monitor!r}"
            )
        value = float(_to_scalar(logs[self.monitor]))
        if math.isnan(value) or not self._better(value):
            return
        self.best = value
        _save_model_atomic(self.model, self.path)
        if _chief(self.model):
            record = {"monitor": self.monitor, "mode": self.mode, "value": value, "epoch": epoch}
            write_text_atomic(self.record_path, json.dumps(record))


class SyncWorkerStatistics(keras.callbacks.Callback):
    """Averages non-trainable float weights (BatchNorm moving statistics) across workers at each epoch end.

    Keras 3 keeps BatchNorm moving statistics per replica: in a multi-worker
    run each worker's copy follows its own data shard, and the chief's saved
    model would carry the chief's statistics only. This callback replaces them
    with their mean over replicas (what ``tf.keras`` computed when reading its
    on-read BatchNorm variables), so all workers hold identical weights before
    anything is saved. A no-op outside a multi-worker run. Put it first.
    """

    def on_epoch_end(self, epoch, logs=None):
        if keras.backend.backend() != "tensorflow":
            return  # Keras' own distribution keeps one replicated copy of each variable.
        import tensorflow as tf

        strategy = model_strategy(self.model)
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or not (
            strategy.extended._in_multi_worker_mode()
        ):
            return
        variables = [v for v in self.model.non_trainable_variables if keras.backend.is_float_dtype(v.dtype)]
        if not variables:
            return
        flat = tf.concat([tf.reshape(tf.cast(v.value, tf.float32), [-1]) for v in variables], axis=0)
        mean = strategy.reduce("MEAN", flat, axis=None)
        offset = 0
        for variable in variables:
            size = int(np.prod(variable.shape))
            variable.assign(tf.cast(tf.reshape(mean[offset : offset + size], variable.shape), variable.dtype))
            offset += size


class SyncDataEpoch(keras.callbacks.Callback):
    """Makes each epoch of ``model.fit`` draw its data from that epoch's key.

    The pipelines of :mod:`pcw_keras.data` draw every batch from
    ``(seed, epoch, step)``; this callback tells them the epoch ``fit`` is
    in, so that epoch ``k`` of a resumed run gets exactly the order, cells,
    flips and crops of epoch ``k`` of an uninterrupted one.

    Parameters
    ----------
    *datasets : pcw_keras.data.batching.ImageBatches
        The training datasets to keep in step.
    """

    def __init__(self, *datasets):
        super().__init__()
        self.datasets = [d for d in datasets if hasattr(d, "set_epoch")]

    def on_epoch_begin(self, epoch, logs=None):
        for dataset in self.datasets:
            dataset.set_epoch(epoch)


class _ChiefTensorBoard(keras.callbacks.TensorBoard):
    """``TensorBoard`` whose non-chief workers log to a private temporary directory."""

    _scratch: str | None = None

    def set_model(self, model):
        if not is_chief(model_strategy(model)):
            self._scratch = self.log_dir = write_dir(self.log_dir, model_strategy(model))
        super().set_model(model)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self._scratch:  # a non-chief worker's private logs: nobody reads them
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def _tensorboard_installed() -> bool:
    """Whether TensorBoard event files can be written: TensorFlow's summary writer and the tensorboard package."""
    return all(importlib.util.find_spec(name) is not None for name in ("tensorflow", "tensorboard"))


def resume_callbacks(
    run_dir: str | os.PathLike,
    *,
    monitor: str | None = "val_accuracy",
    mode: str = "max",
    tensorboard: bool | None = None,
) -> list[keras.callbacks.Callback]:
    """The callbacks that make a training run in ``run_dir`` resumable.

    Pass them to ``model.fit(..., epochs=N, callbacks=resume_callbacks(run_dir))``
    without ``initial_epoch``; after a kill, the same call resumes at the last
    finished epoch and stops after N epochs in total.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run directory (created if missing).
    monitor : str or None
        Epoch-log key that decides ``best.keras`` (e.g. ``"val_accuracy"``,
        which needs ``validation_data``). None: no ``best.keras``.
    mode : {"max", "min"}
        Whether a larger or a smaller ``monitor`` value is better.
    tensorboard : bool or None
        Whether to log to ``run_dir/logs`` for TensorBoard. None (default):
        when the ``tensorboard`` package is installed (TensorFlow's summary
        writer needs it), else skipped with a warning. True without it raises.

    Returns
    -------
    list of keras.callbacks.Callback
        In this order: :class:`SyncWorkerStatistics`, :class:`ResumableCSVLogger`
        (``metrics.csv``), :class:`AtomicModelCheckpoint` (``last.keras``, then
        ``best.keras``), TensorBoard (``logs``), :class:`ResumableBackup`
        (``backup``). Add other callbacks before the last one.

    Raises
    ------
    ValueError
        If ``mode`` is unknown.
    ImportError
        If ``tensorboard=True`` and the ``tensorboard`` package is missing.

    Example
    -------
    >>> callbacks = resume_callbacks("runs/gapnet", monitor="val_accuracy")
    >>> model.fit(train_ds, validation_data=val_ds, epochs=10, callbacks=callbacks)
    """
    if mode not in MODES:
        raise ValueError(f"Expected mode to be one of {', '.join(MODES)}. Received: mode={mode!r}")
    run_dir = Path(run_dir)
    callbacks: list[keras.callbacks.Callback] = [
        SyncWorkerStatistics(),
        ResumableCSVLogger(run_dir / "metrics.csv"),
        AtomicModelCheckpoint(run_dir / "last.keras"),
    ]
    if monitor:
        callbacks.append(AtomicModelCheckpoint(run_dir / "best.keras", monitor=monitor, mode=mode))
    if tensorboard is None:
        tensorboard = _tensorboard_installed()
        if not tensorboard:
            print(f"pcw: TensorBoard event files need TensorFlow and tensorboard, not installed here: no {run_dir / 'logs'}.")
    elif tensorboard and not _tensorboard_installed():
        raise ImportError(
            "TensorBoard logs need TensorFlow and the tensorboard package (pip install tensorflow tensorboard). "
            "Received: tensorboard=True"
        )
    if tensorboard:
        callbacks.append(_ChiefTensorBoard(log_dir=os.fspath(run_dir / "logs")))
    callbacks.append(ResumableBackup(run_dir / "backup"))
    return callbacks
