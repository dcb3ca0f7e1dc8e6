"""The callbacks of a resumable run directory, one concern per module.

- :mod:`~pcw_keras.training.callbacks.resume`: :func:`resume_callbacks` (the
  list a run passes to ``model.fit``), :class:`ResumableBackup` (exact resume
  after a SIGKILL), :class:`SyncDataEpoch` (each epoch's batches from its key);
- :mod:`~pcw_keras.training.callbacks.checkpoints`: :class:`AtomicModelCheckpoint`
  (``last.keras``, ``best.keras`` and ``best.json``);
- :mod:`~pcw_keras.training.callbacks.metrics_log`: :class:`ResumableCSVLogger`
  (``metrics.csv``), TensorBoard's ``logs/`` and the progress lines.

What the processes of a multi-worker run agree on (the chief writes, they
share the run directory, :class:`SyncWorkerStatistics`) is
:mod:`pcw_keras.training.cluster`.
"""
from pcw_keras.training.callbacks.checkpoints import AtomicModelCheckpoint
from pcw_keras.training.callbacks.metrics_log import ResumableCSVLogger
from pcw_keras.training.callbacks.resume import ResumableBackup, SyncDataEpoch, resume_callbacks
from pcw_keras.training.cluster import SyncWorkerStatistics

__all__ = [
    "AtomicModelCheckpoint",
    "ResumableBackup",
    "ResumableCSVLogger",
    "SyncDataEpoch",
    "SyncWorkerStatistics",
    "resume_callbacks",
]
