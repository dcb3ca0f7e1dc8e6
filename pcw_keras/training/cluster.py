"""What the processes of one training run agree on: who writes, that they share the run directory, equal statistics.

A run of several processes (TensorFlow's ``MultiWorkerMirroredStrategy``
workers, or JAX processes under :mod:`pcw_keras.training.distribution`)
writes its run directory from the chief alone; the others still save (a
save may run collective ops) but into a private scratch folder. Outside such
a run every helper here is a no-op or answers "chief".
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np

from pcw_keras.io import write_text_atomic
from pcw_keras.training.distribution import KerasDistribution
from pcw_keras.training.strategy import is_chief, is_multi_worker, model_strategy, write_dir

SHARED_TOKEN_FILE = ".cluster-token"
SHARED_TIMEOUT_S = 30.0
"""How long a worker waits for the chief's token (``PCW_SHARED_FOLDER_TIMEOUT_S`` overrides it)."""


def model_is_chief(model: keras.Model) -> bool:
    """Whether this process writes the files of ``model``'s run."""
    return is_chief(model_strategy(model))


@contextlib.contextmanager
def scratch_unless_chief(model: keras.Model, folder: str | os.PathLike) -> Iterator[str | None]:
    """None on the chief (it writes to ``folder``); elsewhere a private folder to save into, removed afterwards."""
    if model_is_chief(model):
        yield None
        return
    scratch = write_dir(folder, model_strategy(model))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
        if not is_multi_worker(strategy):
            return
        import tensorflow as tf

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
        strategy = model_strategy(self.model)
        if not is_multi_worker(strategy):
            return
        import tensorflow as tf

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
