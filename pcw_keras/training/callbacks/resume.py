"""Resuming a killed run exactly: the backup of its state, the data epoch, and the run directory's callback list.

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

import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from pcw_keras.io import write_text_atomic
from pcw_keras.runs import BACKUP_DIR, LOGS_DIR, METRICS_FILE, checkpoint_file
from pcw_keras.training.callbacks.checkpoints import AtomicModelCheckpoint, check_mode
from pcw_keras.training.callbacks.metrics_log import ResumableCSVLogger, tensorboard_callbacks
from pcw_keras.training.cluster import SyncWorkerStatistics, check_shared_folder, model_is_chief, scratch_unless_chief

STATE_FILE = "state.json"


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
        with scratch_unless_chief(self.model, self._dir) as scratch:
            if scratch:  # other workers still save (the save may run collective ops), but privately
                self.model.save_weights(os.path.join(scratch, weights))
                self._save_extra(Path(scratch) / extra)
                return
        self._dir.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(self._dir / weights, overwrite=True)
        self._save_extra(self._dir / extra)
        # The rename of state.json commits this backup.
        write_text_atomic(self._state_path, json.dumps({"epoch": epoch + 1, "weights": weights, "extra": extra}))
        for old in self._dir.glob("epoch-*"):
            if not old.name.startswith(stem):
                old.unlink()

    # No batch hook (BackupAndRestore's saves mid-epoch): any callback with one makes Keras wait for every step.
    on_train_batch_end = keras.callbacks.Callback.on_train_batch_end

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None
        if model_is_chief(self.model) and self._dir.exists():
            shutil.rmtree(self._dir)


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
    check_mode(mode)
    run_dir = Path(run_dir)
    callbacks: list[keras.callbacks.Callback] = [
        SyncWorkerStatistics(),
        ResumableCSVLogger(run_dir / METRICS_FILE),
        AtomicModelCheckpoint(run_dir / checkpoint_file("last")),
    ]
    if monitor:
        callbacks.append(AtomicModelCheckpoint(run_dir / checkpoint_file("best"), monitor=monitor, mode=mode))
    callbacks += tensorboard_callbacks(run_dir / LOGS_DIR, tensorboard)
    callbacks.append(ResumableBackup(run_dir / BACKUP_DIR))
    return callbacks
