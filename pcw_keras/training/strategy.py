"""Choosing the distribution strategy a training run uses.

Under the TensorFlow backend: one device by default, ``MirroredStrategy`` when several GPUs are visible, and
``MultiWorkerMirroredStrategy`` when the ``TF_CONFIG`` environment variable
names a cluster of more than one task. The distributed engine is TensorFlow's;
this module only picks it, describes it for logs, and says which worker may
write files.

Order matters for the multi-worker case: TensorFlow requires
``MultiWorkerMirroredStrategy`` to be created at program start, before any other
TensorFlow op runs (it configures the runtime's collective ops). Call
:func:`choose_strategy` first, then build the model, optimizer and metrics inside
``strategy.scope()``.

Example
-------
>>> strategy = choose_strategy("auto")
>>> with strategy.scope():
...     model = build_model()
...     model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
>>> model.fit(train_ds, epochs=10)  # a tf.data.Dataset batched to the global batch
"""
from __future__ import annotations

import json
import logging
import os
import tempfile

import keras

from pcw_keras.choices import STRATEGY_NAMES
from pcw_keras.training.distribution import KerasDistribution, choose_distribution, is_multi_worker

logger = logging.getLogger(__name__)

# Task types that take part in synchronous all-reduce training.
_TRAINING_TASK_TYPES = ("chief", "worker")


def _tf_config() -> dict:
    """Parses ``TF_CONFIG``; an empty dict when it is unset or blank."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}). Received: TF_CONFIG={raw!r}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object. Received: TF_CONFIG={raw!r}")
    return config


def cluster_size() -> int:
    """Number of training tasks (chief + workers) that ``TF_CONFIG`` names; 0 without one.

    Returns
    -------
    int
        The task count, or 0 when ``TF_CONFIG`` is unset or names no cluster.
    """
    cluster = _tf_config().get("cluster", {}) or {}
    return sum(len(cluster.get(task_type, []) or []) for task_type in _TRAINING_TASK_TYPES)


def choose_strategy(name: str = "auto"):
    """Returns the distribution strategy called ``name``.

    Parameters
    ----------
    name : str
        One of :data:`STRATEGY_NAMES`:

        - ``"auto"``: ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names a
          cluster of more than one task, else ``MirroredStrategy`` when more than
          one GPU is visible, else the default strategy.
        - ``"default"`` / ``"one_device"`` (aliases): TensorFlow's default
          strategy, one device (the first GPU if any, else the CPU).
        - ``"mirrored"``: ``MirroredStrategy`` over all local GPUs (the CPU when
          there is none).
        - ``"multi_worker"``: ``MultiWorkerMirroredStrategy``; needs ``TF_CONFIG``.

    Under another backend than TensorFlow, the names map to
    :func:`pcw_keras.training.distribution.choose_distribution`: ``"auto"``
    is ``DataParallel`` over all local devices (and the processes that
    ``KERAS_DISTRIBUTION_*`` name), ``"default"`` one device.

    Returns
    -------
    tf.distribute.Strategy or KerasDistribution
        The strategy. For a ``MultiWorkerMirroredStrategy`` the project's Keras
        fixes (:mod:`pcw_keras.training._keras_patches`) are applied first, so
        that ``model.fit`` works under it.

    Raises
    ------
    ValueError
        If ``name`` is unknown, or ``"multi_worker"`` is asked for without a
        ``TF_CONFIG`` cluster.

    Notes
    -----
    Create a ``MultiWorkerMirroredStrategy`` at program start, before any other
    TensorFlow op; TensorFlow raises otherwise.
    """
    if name not in STRATEGY_NAMES:
        raise ValueError(f"Unknown strategy name. Expected one of {', '.join(STRATEGY_NAMES)}. Received: name={name!r}")
    if keras.backend.backend() != "tensorflow":
        return choose_distribution(name)
    import tensorflow as tf

    if name == "auto":
        if cluster_size() > 1:
            name = "multi_worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multi_worker":
        if cluster_size() < 1:
            raise ValueError(
                "Strategy 'multi_worker' needs the TF_CONFIG environment variable to name a cluster "
                '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}). '
                f"Received: TF_CONFIG={os.environ.get('TF_CONFIG')!r}"
            )
        from pcw_keras.training import _keras_patches

        if not _keras_patches.apply():
            low, high = (".".join(map(str, v)) for v in _keras_patches.PATCHED_VERSIONS)
            raise RuntimeError(
                f"Keras {keras.__version__}'s model.fit fails under MultiWorkerMirroredStrategy "
                f"({_keras_patches.UPSTREAM_ISSUE}), and pcw_keras' fix covers Keras {low} to <{high} only. "
                f"Install keras>={low},<{high}, or train on several machines with the JAX backend "
                "(KERAS_BACKEND=jax and the KERAS_DISTRIBUTION_* variables; see the README)."
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    logger.info("Using %s", describe_strategy(strategy))
    return strategy


def model_strategy(model: keras.Model):
    """The strategy ``model`` trains under: its ``tf.distribute`` strategy, or the process' Keras distribution."""
    if keras.backend.backend() == "tensorflow":
        return model.distribute_strategy
    return KerasDistribution(keras.distribution.distribution())


def worker_index(strategy) -> tuple[str | None, int]:
    """The ``(task_type, task_id)`` of this process; ``(None, 0)`` outside a cluster.

    Parameters
    ----------
    strategy : tf.distribute.Strategy or KerasDistribution
        The strategy from :func:`choose_strategy`.

    Returns
    -------
    tuple of (str or None, int)
        The task type (``"chief"``, ``"worker"``) and its index.
    """
    if isinstance(strategy, KerasDistribution):
        index, count = strategy.process()
        return ("process" if count > 1 else None), index
    if not is_multi_worker(strategy):
        return None, 0
    resolver = strategy.cluster_resolver
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy) -> bool:
    """Whether this process is the one that writes files (checkpoints, logs, metrics).

    The chief is the ``"chief"`` task when the cluster has one, else worker 0;
    a single-process run is always the chief.

    Parameters
    ----------
    strategy : tf.distribute.Strategy or KerasDistribution
        The strategy from :func:`choose_strategy`.

    Returns
    -------
    bool
        True for the chief.
    """
    if isinstance(strategy, KerasDistribution):
        return strategy.process()[0] == 0
    if not is_multi_worker(strategy):
        return True
    task_type, task_id = worker_index(strategy)
    if task_type == "chief":
        return True
    has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def write_dir(path: str | os.PathLike, strategy) -> str:
    """Where this process should write what it would write to ``path``.

    The chief writes to ``path``; the other workers of a multi-worker run write
    to a private temporary directory (their saves must still run, since saving
    a distributed model may involve collective ops, but must not clobber the
    chief's files).

    Parameters
    ----------
    path : str or os.PathLike
        The directory the chief writes to.
    strategy : tf.distribute.Strategy or KerasDistribution
        The strategy from :func:`choose_strategy`.

    Returns
    -------
    str
        ``path`` for the chief, else a fresh temporary directory.
    """
    if is_chief(strategy):
        return os.fspath(path)
    task_type, task_id = worker_index(strategy)
    return tempfile.mkdtemp(prefix=f"pcw_keras_{task_type}{task_id}_")


def describe_strategy(strategy) -> str:
    """One line for logs: strategy kind, replica count and, in a cluster, this worker.

    Parameters
    ----------
    strategy : tf.distribute.Strategy or KerasDistribution
        Any strategy.

    Returns
    -------
    str
        E.g. ``"MultiWorkerMirroredStrategy: 2 replicas, worker 1 of 2 (not chief)"``.
    """
    if isinstance(strategy, KerasDistribution):
        return strategy.describe()
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        kind = "MultiWorkerMirroredStrategy"
    elif isinstance(strategy, tf.distribute.MirroredStrategy):
        kind = "MirroredStrategy"
    elif not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        kind = "default strategy"
    else:
        kind = type(strategy).__name__
    replicas = strategy.num_replicas_in_sync
    line = f"{kind}: {replicas} replica{'s' if replicas != 1 else ''}"
    if is_multi_worker(strategy):
        task_type, task_id = worker_index(strategy)
        line += f", {task_type} {task_id} of {cluster_size()} tasks ({'chief' if is_chief(strategy) else 'not chief'})"
    return line
