"""Two small fixes that make Keras 3's ``model.fit`` run under ``MultiWorkerMirroredStrategy``.

Upstream: keras-team/keras#20585 (open), also tensorflow/tensorflow#72388.
On the Keras versions in :data:`PATCHED_VERSIONS` (verified broken on 3.15.1
with TensorFlow 2.21), ``model.fit`` under ``MultiWorkerMirroredStrategy``
fails at two spots of ``keras/src/backend/tensorflow/trainer.py``:

1. ``TensorFlowTrainer._maybe_symbolic_build`` takes the first distributed
   batch and calls ``strategy.reduce("MEAN", batch, axis=None)`` on the whole
   ``(x, y)`` tuple to get shapes for the symbolic build. The multi-worker
   strategy's reduce accepts one value, not a structure, and fails with
   ``ValueError: Attempt to convert a value (PerReplica:...) with an unsupported
   type ... to a Tensor``. The build only needs shapes and dtypes, so the fix
   takes this worker's first local replica value of each element instead (no
   collective op at all).
2. ``reduce_per_replica`` (applied to the logs of every train/test step)
   reduces with ``strategy.reduce("MEAN", v, axis=0)`` in multi-worker mode;
   the logs are scalars, and TensorFlow fails with ``Invalid reduction
   dimension 0 for input with 0 dimensions``. The fix reduces across replicas
   only (``axis=None``), which is what the single-worker branch of the same
   function computes (``tf.reduce_mean(local_results, axis=0)`` over replicas).

Both replacements only take a different path when the strategy is a
``MultiWorkerMirroredStrategy`` in multi-worker mode; everything else goes to
the original Keras functions. :func:`apply` is idempotent and does nothing on
other Keras versions (returning False); :func:`pcw_keras.training.strategy.choose_strategy`
calls it before creating a multi-worker strategy and stops with a clear error
when it returns False.

Proof
-----
``tests/test_training_distribute.py`` runs two workers on localhost:
``test_two_workers_fit_identical_weights`` trains with the fixes (both workers
exit 0 with identical weights), and ``test_two_workers_fit_fails_unpatched``
runs the same script with ``--unpatched`` (the strategy created directly,
without :func:`apply`) and checks that ``model.fit`` fails with the first error
above. By hand::

    P0=12345 P1=12346
    for i in 0 1; do
      TF_CONFIG='{"cluster":{"worker":["localhost:'$P0'","localhost:'$P1'"]},
                  "task":{"type":"worker","index":'$i'}}' \\
      python tests/scripts/train_multi_worker.py /tmp/w$i.npz --unpatched &
    done; wait
"""
from __future__ import annotations

import logging

import keras

logger = logging.getLogger(__name__)

PATCHED_VERSIONS = ((3, 11), (3, 16))
"""Keras versions ``lo <= v < hi`` that get the fixes: from 3.11, whose epoch
iterator yields ``(begin, end, iterator)`` triples as the replacement build
unpacks them (3.7-3.10 yield pairs, 3.5-3.6 had ``enumerate_epoch()``), to
the last version verified broken and fixed, 3.15.1. Keras' main branch (3.16
development) still has the bug; a later release needs re-verifying before
the range grows. Outside it, :func:`pcw_keras.training.strategy.choose_strategy`
refuses a multi-worker run up front."""

UPSTREAM_ISSUE = "https://github.com/keras-team/keras/issues/20585"

_state = {"applied": False, "skipped_logged": False}


def _keras_version() -> tuple[int, int]:
    major, minor = keras.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def needs_patch(version: tuple[int, int] | None = None) -> bool:
    """Whether the installed (or given) Keras version gets the fixes.

    Parameters
    ----------
    version : tuple of int, optional
        ``(major, minor)``; the installed Keras version when omitted.

    Returns
    -------
    bool
        True when ``PATCHED_VERSIONS[0] <= version < PATCHED_VERSIONS[1]``.
    """
    version = _keras_version() if version is None else tuple(version)
    low, high = PATCHED_VERSIONS
    return low <= version < high


def is_applied() -> bool:
    """Whether :func:`apply` has patched Keras in this process."""
    return _state["applied"]


def apply() -> bool:
    """Applies the two multi-worker fixes to Keras' TensorFlow trainer, once.

    Returns
    -------
    bool
        True when the fixes are in place (now or from an earlier call); False
        when this Keras version is outside :data:`PATCHED_VERSIONS` or does not
        use the TensorFlow backend, in which case nothing is changed.
    """
    if _state["applied"]:
        return True
    if keras.backend.backend() != "tensorflow" or not needs_patch():
        if not _state["skipped_logged"]:
            logger.info(
                "Keras %s (backend %s): multi-worker fixes for %s not applied (they target Keras %s to <%s).",
                keras.__version__,
                keras.backend.backend(),
                UPSTREAM_ISSUE,
                ".".join(map(str, PATCHED_VERSIONS[0])),
                ".".join(map(str, PATCHED_VERSIONS[1])),
            )
            _state["skipped_logged"] = True
        return False

    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    from pcw_keras.training.distribution import is_multi_worker

    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Fix 1: shapes from this worker's first local replica, no cross-worker reduce.
        if self._distribute_strategy is None or iterator is None or not is_multi_worker(self.distribute_strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            batch = next(it)
            data_batch = tree.map_structure(
                lambda v: self.distribute_strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues)
                else v,
                batch,
            )
            break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        # Fix 2: a cross-replica mean of scalars, not a reduction over axis 0.
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    _maybe_symbolic_build.__doc__ = f"Multi-worker fix by pcw_keras for {UPSTREAM_ISSUE}."
    reduce_per_replica.__doc__ = f"Multi-worker fix by pcw_keras for {UPSTREAM_ISSUE}."
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    _state["applied"] = True
    logger.info("Keras %s: applied the multi-worker fit fixes for %s.", keras.__version__, UPSTREAM_ISSUE)
    return True
