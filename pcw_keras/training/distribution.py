"""Data parallelism with the JAX backend's own engine: ``keras.distribution.DataParallel``.

Under ``KERAS_BACKEND=jax`` a training run replicates the model over every
device (GPUs, TPUs, or the CPU's virtual devices) and splits each global
batch across them; gradients are averaged by XLA's collectives. Several
hosts join through ``jax.distributed`` when the environment names them
(read by :func:`keras.distribution.initialize`); start the same ``pcw train``
command on each, with the same ``--out`` on a shared file system:

- ``KERAS_DISTRIBUTION_JOB_ADDRESSES``: comma-separated ``host:port`` of the
  processes (for JAX only the first, the coordinator, is used);
- ``KERAS_DISTRIBUTION_NUM_PROCESSES``: how many processes take part;
- ``KERAS_DISTRIBUTION_PROCESS_ID``: this process' index, ``0`` being the
  coordinator, which writes the run directory.

Each process draws every global batch and feeds its own slice of it
(:func:`pcw_keras.data.batching.process_slice`), so ``P`` processes train on
the batches of one. The global ``training.batch_size`` must divide by the
total number of devices. On CPUs the processes exchange gradients with Gloo
(JAX's default there); the test suite trains on two such processes.
"""
from __future__ import annotations

import contextlib
import os

import keras
import numpy as np

PROCESS_VARIABLES = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


def process_count_from_env() -> int:
    """``KERAS_DISTRIBUTION_NUM_PROCESSES`` as an int (1 when unset); a ValueError names a bad value."""
    raw = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"KERAS_DISTRIBUTION_NUM_PROCESSES must be a positive integer. Received: {raw!r}")
    return int(raw)


class KerasDistribution:
    """A backend-neutral stand-in for a ``tf.distribute.Strategy``: what a training run asks of one.

    Parameters
    ----------
    distribution : keras.distribution.Distribution or None
        The distribution set for the process (None: one device, no distribution).
    """

    def __init__(self, distribution=None):
        self.distribution = distribution

    @property
    def num_replicas_in_sync(self) -> int:
        """How many devices share each global batch."""
        return 1 if self.distribution is None else int(self.distribution.device_mesh.devices.size)

    def scope(self):
        """Context in which to build the model (its variables are placed by the distribution)."""
        return contextlib.nullcontext() if self.distribution is None else self.distribution.scope()

    def process(self) -> tuple[int, int]:
        """``(index, count)`` of this process among those training together."""
        if keras.backend.backend() != "jax":
            return 0, 1
        import jax

        return jax.process_index(), jax.process_count()

    def end_training(self) -> None:
        """Leave the distribution after ``fit`` when several processes share it.

        Evaluation then runs on one process's own devices (the chief's), as
        ``model.predict`` cannot gather a batch spread over other hosts.
        """
        if self.distribution is not None and self.process()[1] > 1:
            keras.distribution.set_distribution(None)

    def wait_for_all(self, name: str) -> None:
        """Block until every process reaches the point called ``name`` (a no-op for one process)."""
        if self.process()[1] > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(name)

    def all_sum(self, value: int) -> int:
        """The sum of ``value`` (an int32) over the processes."""
        if self.process()[1] == 1:
            return int(value)
        from jax.experimental import multihost_utils

        return int(np.asarray(multihost_utils.process_allgather(np.int32(value))).sum())

    def describe(self) -> str:
        """One line for logs, e.g. ``"keras.distribution.DataParallel: 2 devices (cpu), process 0 of 1"``."""
        if self.distribution is None:
            return f"one device ({keras.backend.backend()} backend)"
        index, count = self.process()
        kinds = sorted({str(getattr(d, "platform", d)).split(":")[0] for d in self.distribution.device_mesh.devices.flat})
        return (f"keras.distribution.DataParallel: {self.num_replicas_in_sync} devices ({', '.join(kinds)}), "
                f"process {index} of {count}")


def _join_processes() -> None:
    """``jax.distributed.initialize`` from the ``KERAS_DISTRIBUTION_*`` variables, once per process."""
    import jax

    missing = [name for name in PROCESS_VARIABLES if not os.environ.get(name, "").strip()]
    if missing:
        raise ValueError(f"Several JAX processes need {', '.join(PROCESS_VARIABLES)}. Missing: {', '.join(missing)}")
    if not jax.distributed.is_initialized():
        keras.distribution.initialize()


def choose_distribution(name: str) -> KerasDistribution:
    """The distribution for a non-TensorFlow backend.

    ``"auto"`` (and ``"mirrored"``, its single-host equivalent) spreads
    training over all local devices with ``DataParallel`` when there is more
    than one, else one device; ``"default"``/``"one_device"`` always
    uses one device. ``"multi_worker"`` is TensorFlow's: here it means the
    ``KERAS_DISTRIBUTION_*`` processes, which must then be named.

    Raises
    ------
    ValueError
        ``"multi_worker"`` without ``KERAS_DISTRIBUTION_NUM_PROCESSES`` > 1,
        ``"default"`` with several processes, or a backend without
        ``keras.distribution`` support asked for more than one device.
    """
    processes = process_count_from_env()
    if name == "multi_worker" and processes < 2:
        raise ValueError(
            f"Strategy 'multi_worker' under the {keras.backend.backend()} backend needs several processes named by "
            f"{', '.join(PROCESS_VARIABLES)}. Received: KERAS_DISTRIBUTION_NUM_PROCESSES={processes}"
        )
    if keras.backend.backend() != "jax":
        if name == "multi_worker" or processes > 1:
            raise ValueError(f"Several processes need the jax or tensorflow backend. Received: {keras.backend.backend()!r}")
        return KerasDistribution(None)
    if processes > 1:
        if name in ("default", "one_device"):
            raise ValueError(f"Strategy {name!r} trains on one device, but KERAS_DISTRIBUTION_NUM_PROCESSES={processes} "
                             "names several processes: use --strategy auto.")
        _join_processes()
    elif name in ("default", "one_device"):
        return KerasDistribution(None)
    devices = keras.distribution.list_devices()
    if len(devices) < 2:
        return KerasDistribution(None)
    # The pipelines shard per process themselves (pcw_keras.data.batching.process_slice).
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    return KerasDistribution(distribution)


def is_multi_worker(strategy) -> bool:
    """Whether ``strategy`` is a ``MultiWorkerMirroredStrategy`` of several TensorFlow workers."""
    if strategy is None or isinstance(strategy, KerasDistribution):
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()
