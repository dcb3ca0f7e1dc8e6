"""Choosing the Keras backend (TensorFlow or JAX) before Keras is imported.

Importable without TensorFlow, JAX or Keras: this module only looks for the
packages (:func:`importlib.util.find_spec`) and for an NVIDIA driver; it
imports neither. Keras reads ``KERAS_BACKEND`` once, when it is first
imported, so :func:`apply_backend` must run before ``import keras``.

The rule of ``"auto"`` (:func:`resolve_backend`):

1. an already set ``KERAS_BACKEND`` environment variable wins;
2. on a machine with an NVIDIA GPU, JAX when it is installed (the project's
   GPU machines have JAX and no TensorFlow);
3. otherwise (CPU), the installed backend whose float32 training step
   measured faster on CPU (:data:`CPU_TRAIN_IMAGES_PER_S`); with only one of
   the two installed, that one.

The CPU figures come from ``docs/bench/train_throughput_fused_bn_cpu.json``
(TensorFlow, with the fused BatchNorm) and
``docs/bench/train_throughput_backends_cpu.json`` (JAX)
(``benchmarks/train_throughput.py --backends tensorflow jax``; GAPNet
ResNet-18, width 1.0, grid 3 = 96x96, batch 48, 2-core CPU, medians; see
``docs/benchmarks.md``, section "Both backends beside PyTorch's best CPU
settings").
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from typing import Dict, Tuple

__all__ = [
    "BACKEND_CHOICES",
    "CPU_TRAIN_IMAGES_PER_S",
    "BackendNotInstalledError",
    "apply_backend",
    "backend_installed",
    "gpu_present",
    "resolve_backend",
]

#: Accepted values of ``name`` in :func:`resolve_backend` and :func:`apply_backend`.
BACKEND_CHOICES: Tuple[str, ...] = ("auto", "tensorflow", "jax")

#: Python package that each explicit backend needs.
_PACKAGES: Dict[str, str] = {"tensorflow": "tensorflow", "jax": "jax"}

#: Measured CPU training throughput, images/s, per backend and Keras dtype
#: policy: GAPNet ResNet-18, width 1.0, 96x96 (grid 3), batch 48, 2-core CPU
#: (AVX512-BF16 and AMX), tensorflow-cpu 2.21 with oneDNN and XLA off, jax
#: 0.10.2 (always jit), Keras 3.15; medians of two interleaved runs from
#: ``docs/bench/train_throughput_fused_bn_cpu.json`` (TensorFlow) and
#: ``docs/bench/train_throughput_backends_cpu.json`` (JAX). ``"auto"`` compares the
#: ``"float32"`` entries.
CPU_TRAIN_IMAGES_PER_S: Dict[str, Dict[str, float]] = {
    "tensorflow": {"float32": 30.53, "mixed_bfloat16": 78.29},
    # jaxlib's default XLA:CPU flags; with XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution
    # the same run measured 20.35 (float32) and 23.90 (mixed_bfloat16): still below TensorFlow.
    "jax": {"float32": 10.63, "mixed_bfloat16": 9.07},
}


class BackendNotInstalledError(ImportError):
    """The requested Keras backend's package is not installed in this environment."""


def backend_installed(name: str) -> bool:
    """Whether the package of backend ``name`` can be imported, without importing it.

    Parameters
    ----------
    name : str
        ``"tensorflow"`` or ``"jax"``.

    Returns
    -------
    bool
        True when :func:`importlib.util.find_spec` finds the package.
    """
    package = _PACKAGES.get(name, name)
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # e.g. a module in sys.modules without __spec__
        return package in sys.modules


def gpu_present() -> bool:
    """Cheap check for an NVIDIA GPU: its kernel driver or ``nvidia-smi`` on the PATH.

    Returns
    -------
    bool
        True when ``/proc/driver/nvidia/version`` exists or ``nvidia-smi`` is found.
    """
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def _check_name(name: str) -> str:
    if not isinstance(name, str) or name.strip().lower() not in BACKEND_CHOICES:
        raise ValueError(f"unknown Keras backend {name!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    return name.strip().lower()


def _require_installed(name: str) -> str:
    if not backend_installed(name):
        raise BackendNotInstalledError(
            f"Keras backend {name!r} was requested but the package {_PACKAGES[name]!r} is not installed "
            f"in this environment ({sys.executable}); install it or choose another backend "
            f"({', '.join(BACKEND_CHOICES)})"
        )
    return name


def resolve_backend(name: str = "auto") -> str:
    """The Keras backend to use: ``name`` itself, or the choice of ``"auto"``.

    Parameters
    ----------
    name : str, default "auto"
        One of :data:`BACKEND_CHOICES` (case-insensitive).

    Returns
    -------
    str
        ``"tensorflow"`` or ``"jax"``; for ``"auto"`` with ``KERAS_BACKEND``
        set, that variable's value unchanged (any backend Keras accepts).

    Raises
    ------
    ValueError
        ``name`` is not one of :data:`BACKEND_CHOICES`.
    BackendNotInstalledError
        An explicit backend whose package is not installed, or ``"auto"``
        with neither TensorFlow nor JAX installed.

    Notes
    -----
    ``"auto"``: ``KERAS_BACKEND`` when set and non-empty; else JAX on a
    machine with an NVIDIA GPU (:func:`gpu_present`) when JAX is installed;
    else the installed backend with the higher float32 entry in
    :data:`CPU_TRAIN_IMAGES_PER_S`.
    """
    name = _check_name(name)
    if name != "auto":
        return _require_installed(name)
    environment = os.environ.get("KERAS_BACKEND", "").strip()
    if environment:
        return environment
    installed = [backend for backend in BACKEND_CHOICES[1:] if backend_installed(backend)]
    if not installed:
        raise BackendNotInstalledError(
            f"no Keras backend is installed in this environment ({sys.executable}): "
            "install tensorflow (CPU) or jax (GPU/CPU)"
        )
    if "jax" in installed and gpu_present():
        return "jax"
    return max(installed, key=lambda backend: CPU_TRAIN_IMAGES_PER_S[backend]["float32"])


def _imported_keras_backend() -> str | None:
    """The backend of an already imported Keras, or None when Keras is not imported."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return keras.backend.backend()
    except AttributeError:  # Keras still importing: fall back to its config module
        config = sys.modules.get("keras.src.backend.config")
        return config.backend() if config is not None else None


def apply_backend(name: str = "auto") -> str:
    """Resolve the backend and set ``os.environ["KERAS_BACKEND"]``; call before ``import keras``.

    Parameters
    ----------
    name : str, default "auto"
        One of :data:`BACKEND_CHOICES`.

    Returns
    -------
    str
        The backend set.

    Raises
    ------
    ValueError
        ``name`` is not one of :data:`BACKEND_CHOICES`.
    BackendNotInstalledError
        As :func:`resolve_backend`.
    RuntimeError
        Keras is already imported with another backend (Keras picks its
        backend once, at import; restart the process or set the backend first).

    Notes
    -----
    With ``"auto"`` and Keras already imported (and ``KERAS_BACKEND`` unset),
    the backend Keras runs on is kept: switching is impossible by then.
    """
    name = _check_name(name)
    current = _imported_keras_backend()
    if name == "auto" and current is not None and not os.environ.get("KERAS_BACKEND", "").strip():
        resolved = current
    else:
        resolved = resolve_backend(name)
    if current is not None and current != resolved:
        raise RuntimeError(
            f"Keras is already imported with the {current!r} backend, so {resolved!r} cannot be applied: "
            "call pcw_keras.backends.apply_backend() before the first `import keras` "
            "(or set KERAS_BACKEND in the environment)"
        )
    os.environ["KERAS_BACKEND"] = resolved
    return resolved
