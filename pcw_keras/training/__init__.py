"""Training support: the run trainer, distribution strategy choice and resumable-run callbacks.

``AugShiftModel``, ``PlacementModel`` and ``unwrap`` are models
(:mod:`pcw_keras.models.wrappers`); they are also importable from here.
"""
from pcw_keras.models.wrappers import AugShiftModel, PlacementModel, unwrap
from pcw_keras.training.strategy import (
    STRATEGY_NAMES,
    choose_strategy,
    describe_strategy,
    is_chief,
    worker_index,
    write_dir,
)

__all__ = [
    "AugShiftModel",
    "PlacementModel",
    "STRATEGY_NAMES",
    "choose_strategy",
    "describe_strategy",
    "evaluate_run",
    "is_chief",
    "train",
    "worker_index",
    "unwrap",
    "write_dir",
]


def __getattr__(name: str):
    """``train`` and ``evaluate_run`` load the trainer on first use: evaluators and exporters never import it."""
    if name in ("train", "evaluate_run"):
        from pcw_keras.training import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'pcw_keras.training' has no attribute {name!r}")
