"""BlurPool: anti-aliased downsampling (Zhang, ICML 2019), written from the paper."""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from pcw_keras.layers._checks import check_int_range
from pcw_keras.layers.padding import pad2d


def binomial_filter(size: int) -> np.ndarray:
    """The normalised 2-D binomial filter of side ``size`` (outer product of a binomial row)."""
    row = np.array([math.comb(size - 1, k) for k in range(size)], dtype="float64")
    kernel = np.outer(row, row)
    return (kernel / kernel.sum()).astype("float32")


@keras.saving.register_keras_serializable(package="pcw_keras")
class BlurPool2D(keras.layers.Layer):
    """Blurs with a fixed binomial filter, then subsamples.

    Zhang (2019), "Making Convolutional Networks Shift-Invariant Again": a
    depthwise convolution with the normalised outer product of binomial
    coefficients, reflect padding ``[(f-1)//2, ceil((f-1)/2)]`` on each spatial
    axis, stride ``strides``. The filter is a constant, not a weight.

    Parameters
    ----------
    filter_size : int
        Side of the binomial filter, 1 to 7 (1 is plain subsampling; 4, the
        default, is the recommended choice for even-sized maps).
    strides : int
        Subsampling factor, >= 1.

    Example
    -------
    >>> BlurPool2D()(keras.ops.ones((1, 8, 8, 3))).shape
    (1, 4, 4, 3)
    """

    def __init__(self, filter_size: int = 4, strides: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.filter_size = check_int_range("filter_size", filter_size, 1, 7)
        self.strides = check_int_range("strides", strides, 1)
        before = (self.filter_size - 1) // 2
        self.pads = (before, self.filter_size - 1 - before)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "BlurPool2D expects (batch, height, width, channels) inputs with known "
                f"channels. Received: input_shape={input_shape}"
            )
        self.channels = int(input_shape[-1])
        self.built = True

    def call(self, inputs):
        kernel = np.tile(binomial_filter(self.filter_size)[:, :, None, None], (1, 1, self.channels, 1))
        padded = pad2d(inputs, (self.pads, self.pads), mode="reflect")
        return ops.depthwise_conv(
            padded, ops.cast(kernel, inputs.dtype), strides=self.strides, padding="valid"
        )

    def compute_output_shape(self, input_shape):
        def out(size):
            return None if size is None else (size - 1) // self.strides + 1

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"filter_size": self.filter_size, "strides": self.strides})
        return config
