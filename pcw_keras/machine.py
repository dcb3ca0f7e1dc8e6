"""The machine a figure was measured on: the CPU's model name, its instruction flags, cores and load."""
from __future__ import annotations

import functools
import os
import platform


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str | None, frozenset]:
    """The first processor's model name and flags in ``/proc/cpuinfo`` (None and empty where it is absent)."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields.get("model name"), frozenset(fields.get("flags", "").split())


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows (the architecture)."""
    return _cpuinfo()[0] or platform.processor() or platform.machine()


def cpu_flags() -> frozenset:
    """The CPU's instruction-set flags (``avx512_bf16``, ``amx_bf16``, ...); empty where ``/proc/cpuinfo`` is absent."""
    return _cpuinfo()[1]


def describe() -> dict:
    """``{"cpu", "cores", "load_1min"}``: the CPU a timing belongs to, and how busy the machine was."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "load_1min": None if load is None else round(load, 2)}
