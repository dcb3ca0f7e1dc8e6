"""How models want their pixels: the mean/std constants, normalising and denormalising, in one place.

A leaf of the package (NumPy only; it imports nothing of ``pcw_keras``), used
by the layers, the data pipelines, the evaluators and the exporters alike.

Every normaliser computes ``(pixels - shift) * scale`` with the float32
constants of :func:`normalization_constants`: one subtraction and one
multiplication, exact IEEE operations that no compiler contracts or rewrites
(unlike ``x / 255`` and ``/ std``, which XLA turns into multiplications by
reciprocals, or a multiply-add, which it may fuse), so NumPy, TensorFlow, XLA
and JAX give bit-identical inputs. Mathematically it is
``(pixels / 255 - mean) / std``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)

NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar": (CIFAR_MEAN, CIFAR_STD),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "none": ((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255)),
}
"""``(mean, std)`` per preprocessing name: a model takes ``(pixels / 255 - mean) / std``.

``cifar`` is the CIFAR-10 training set's, ``imagenet`` the ImageNet mean/std
of torchvision-style models, ``unit`` pixels in [0, 1], ``none`` pixels in
[0, 255] as floats.
"""

PREPROCESS = tuple(NORMALIZATIONS)
"""The preprocessing names, as the CLI's ``--preprocess`` takes them."""


def normalization_constants(mean: Sequence[float] = CIFAR_MEAN,
                            std: Sequence[float] = CIFAR_STD) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``(255 * mean, 1 / (255 * std))``, computed in float64 once (see the module's docstring)."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return (255.0 * mean).astype(np.float32), (1.0 / (255.0 * std)).astype(np.float32)


def normalize(pixels, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD):
    """``(pixels / 255 - mean) / std`` as ``(pixels - shift) * scale``, in float32.

    A NumPy array (uint8 or float) is cast here; a tensor of any framework
    (``keras.ops``, TensorFlow, JAX) must already be float32, as only ``-``
    and ``*`` are applied to it.

    Example
    -------
    >>> normalize(np.array([[0, 255]], np.uint8)[..., None], mean=(0.5,), std=(0.5,)).ravel().tolist()
    [-1.0, 1.0]
    """
    shift, scale = normalization_constants(mean, std)
    if isinstance(pixels, (np.ndarray, np.generic)):
        pixels = np.asarray(pixels, np.float32)
    return (pixels - shift) * scale


def denormalize(inputs: np.ndarray, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD) -> np.ndarray:
    """Normalised inputs back to uint8 pixels, rounded and clipped as a camera would give them."""
    pixels = (np.asarray(inputs, np.float32) * np.asarray(std, np.float32) + np.asarray(mean, np.float32)) * 255.0
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Normalization:
    """How a model wants its pixels: ``(uint8 / 255 - mean) / std`` per channel, under a preprocessing name."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = "cifar"

    @classmethod
    def named(cls, name: str) -> "Normalization":
        """The normalisation called ``name`` (one of :data:`PREPROCESS`); a ValueError otherwise."""
        if name not in NORMALIZATIONS:
            raise ValueError(f"`preprocess` must be one of {PREPROCESS}. Received: preprocess={name!r}")
        mean, std = NORMALIZATIONS[name]
        return cls(tuple(mean), tuple(std), name)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Float32 model inputs from uint8 pixels (:func:`normalize`)."""
        return normalize(np.asarray(pixels), self.mean, self.std)

    def pixels(self, inputs: np.ndarray) -> np.ndarray:
        """uint8 pixels from model inputs (:func:`denormalize`)."""
        return denormalize(inputs, self.mean, self.std)

    def to_dict(self) -> dict:
        return {"preprocess": self.name, "mean": list(self.mean), "std": list(self.std)}


CIFAR = Normalization.named("cifar")
