"""The paper's numbers, once: Islam et al., ICCV 2021, Tables 1 and 2, and the kept share read from them.

A leaf: it imports nothing of the package, so that ``pcw demo``, its
verdict and ``pcw reproduce`` quote the same values. Accuracies are in
percent, as the paper prints them.
"""
from __future__ import annotations

CHANNELS: dict[tuple[str, int, str], float] = {
    ("location", 3, "gapnet"): 100.0, ("location", 3, "permutenet"): 78.8,
    ("location", 7, "gapnet"): 100.0, ("location", 7, "permutenet"): 21.4,
    ("image", 3, "gapnet"): 82.6, ("image", 3, "permutenet"): 82.1,
    ("image", 7, "gapnet"): 82.1, ("image", 7, "permutenet"): 69.9,
}
"""Table 1: test accuracy (%) per (task, grid, network) of ResNet-18 at full width after 20 epochs of CIFAR-10.
The recipe of a cell is ``f"{task}-{grid}x{grid}-{network}"``."""

TRANSLATION: dict[tuple[str, str], dict[str, float]] = {
    ("cifar10", "resnet18"): {"top1": 93.1, "consistency": 90.8},
    ("cifar10", "resnet18-blurpool"): {"top1": 92.5, "consistency": 92.5},
    ("cifar10", "resnet18-augshift"): {"top1": 92.1, "consistency": 94.8},
    ("cifar100", "resnet18"): {"top1": 72.6, "consistency": 70.1},
    ("cifar100", "resnet18-blurpool"): {"top1": 72.4, "consistency": 78.2},
    ("cifar100", "resnet18-augshift"): {"top1": 72.6, "consistency": 85.6},
}
"""Table 2: top-1 accuracy and shift consistency (%) per (dataset, network). The recipe of a cell is
``f"{dataset}-{network}"``."""

IMAGE_CLASSES = 10
"""Classes of the paper's image task (CIFAR-10)."""


def chance(task: str, grid: int) -> float:
    """Chance accuracy (%) of a Table 1 task: one of ``grid * grid`` cells, or one of the CIFAR-10 classes.

    Examples
    --------
    >>> round(chance("location", 3), 2), chance("image", 7)
    (11.11, 10.0)
    """
    return 100 / (grid * grid if task == "location" else IMAGE_CLASSES)


def kept_share(permutenet: float, gapnet: float, chance: float) -> float | None:
    """(PermuteNet - chance) / (GAPNet - chance): the share of GAPNet's above-chance accuracy that PermuteNet keeps.

    The three values share one unit (fractions or percent). None where GAPNet
    is not above chance (there is no share to keep).

    Examples
    --------
    >>> round(kept_share(78.8, 100.0, 100 / 9), 2)
    0.76
    """
    above = gapnet - chance
    return None if above <= 0 else (permutenet - chance) / above


def channels_kept_share(task: str, grid: int) -> float | None:
    """The paper's own kept share of a Table 1 task: its PermuteNet and GAPNet accuracies over its chance.

    Examples
    --------
    >>> round(channels_kept_share("location", 3), 3), round(channels_kept_share("image", 3), 3)
    (0.761, 0.993)
    """
    return kept_share(CHANNELS[(task, grid, "permutenet")], CHANNELS[(task, grid, "gapnet")], chance(task, grid))
