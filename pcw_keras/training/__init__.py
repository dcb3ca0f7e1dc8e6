"""Training support: distribution strategy choice and resumable-run callbacks."""
from pcw_keras.training.strategy import (
    STRATEGY_NAMES,
    choose_strategy,
    describe_strategy,
    is_chief,
    worker_index,
    write_dir,
)

__all__ = [
    "STRATEGY_NAMES",
    "choose_strategy",
    "describe_strategy",
    "is_chief",
    "worker_index",
    "write_dir",
]
