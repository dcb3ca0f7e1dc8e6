"""Argument checks shared by layers and model builders (Keras' error style)."""
from __future__ import annotations

from collections.abc import Iterable


def check_choice(name: str, value, allowed: Iterable):
    """Returns ``value`` if it is one of ``allowed``, else raises ``ValueError``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}. Received: {name}={value!r}")
    return value


def check_int_range(name: str, value, low: int, high: int | None = None) -> int:
    """Returns ``value`` if it is an int in ``[low, high]`` (``high=None``: no bound)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
        high is not None and value > high
    ):
        bound = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"`{name}` must be {bound}. Received: {name}={value!r}")
    return value


def check_positive(name: str, value) -> float:
    """Returns ``value`` if it is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{name}` must be a number > 0. Received: {name}={value!r}")
    return value
