"""Training support: the run trainer, distribution strategy choice, resumable-run callbacks and the AugShift wrapper."""
from pcw_keras.training.augshift import AugShiftModel, unwrap
from pcw_keras.training.placement import PlacementModel
from pcw_keras.training.runner import evaluate_run, train
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
