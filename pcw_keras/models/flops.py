"""Floating-point operations of a Keras model's forward pass, counted from its layers' shapes."""
from __future__ import annotations

import time

import keras
import numpy as np


def _spatial(shape) -> int:
    return int(np.prod([d for d in shape[1:-1]])) if len(shape) > 2 else 1


def layer_flops(layer: keras.layers.Layer) -> int:
    """Multiply-adds times two for one sample through ``layer`` (convolutions and dense layers only).

    Element-wise layers (BatchNorm, ReLU, pooling, additions) are left out: they
    are memory-bound and a small share of a ResNet's arithmetic.
    """
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel = layer.kernel.shape  # (kh, kw, channels, multiplier)
        return 2 * _spatial(layer.output.shape) * int(np.prod(kernel))
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, cin, cout = layer.kernel.shape
        return 2 * _spatial(layer.output.shape) * kh * kw * cin * cout
    if isinstance(layer, keras.layers.Dense):
        cin, cout = layer.kernel.shape
        return 2 * _spatial(layer.output.shape) * cin * cout
    return 0


def count_flops(model: keras.Model) -> int:
    """Forward FLOPs per sample of a functional model with static spatial sizes.

    A training step costs about three times this (forward, and the backward
    pass's gradients for inputs and weights). BlurPool's fixed depthwise filter
    is not a Keras layer with a kernel and is left out.

    Example
    -------
    >>> from pcw_keras.models import permutenet_resnet18
    >>> round(count_flops(permutenet_resnet18(9)) / 1e9, 2)  # GFLOP at 96x96
    2.5
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_flops(layer)
        else:
            total += layer_flops(layer)
    return total


def matmul_gflops(size: int = 1024, repeats: int = 5, dtype: str = "float32") -> float:
    """The backend's ``dtype`` matrix-product rate on this machine (best of ``repeats``), in GFLOP/s.

    The yardstick for model FLOP utilisation and for scaling time estimates.
    """
    a = keras.random.normal((size, size), seed=0, dtype=dtype)

    def product() -> None:  # one element back to the host waits for the whole product (float32: NumPy has no bfloat16)
        keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.matmul(a, a)[0, 0], "float32"))

    product()  # warm-up (and compilation on JAX)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - began)
    return 2 * size**3 / best / 1e9
