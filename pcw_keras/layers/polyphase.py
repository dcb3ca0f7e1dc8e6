"""Adaptive polyphase sampling (APS): stride-2 downsampling that keeps the polyphase component of largest norm.

Written from the description in Chaman and Dokmanić, "Truly shift-invariant
convolutional neural networks" (CVPR 2021). A stride-2 subsampling keeps one
of the four polyphase components ``x[i::2, j::2]`` of a map, always the same
one (``i = j = 0``), so a one-pixel shift of the input changes which pixels
survive. APS keeps, per sample, the component of largest norm instead. A
circular shift of the input permutes the components and shifts each one
circularly, leaving their norms as they were: APS picks the same component,
circularly shifted. A network of circularly padded convolutions, APS at every
downsampling and global pooling is therefore exactly invariant to circular
shifts of its input.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from pcw_keras.layers._checks import check_choice, check_int_range
from pcw_keras.layers.blurpool import binomial_filter
from pcw_keras.layers.padding import pad2d

NORMS = ("l2", "linf")


@keras.saving.register_keras_serializable(package="pcw_keras")
class PolyphaseDownsample2D(keras.layers.Layer):
    """Stride-2 downsampling to the polyphase component of largest norm, per sample (APS).

    The four components ``x[:, i::2, j::2, :]`` (``i, j`` in ``{0, 1}``) are
    compared by their norm over height, width and channels; the largest is
    returned (the first in the order ``(0, 0), (0, 1), (1, 0), (1, 1)`` on a
    tie). With ``blur``, a binomial filter of that size (BlurPool's, Zhang
    2019) with circular padding is applied first, at stride 1: the paper's
    APS with anti-aliasing.

    Parameters
    ----------
    norm : {"l2", "linf"}
        How the components are compared: the sum of squares (``l2``, the
        paper's default) or the largest absolute value (``linf``).
    blur : int, optional
        Side of the binomial filter applied before the selection, 2 to 7;
        ``None`` (default) selects on the input as it is.

    Call arguments:
        inputs: ``(batch, height, width, channels)`` with even height and width.

    Example
    -------
    >>> x = np.zeros((1, 4, 4, 1), "float32"); x[0, 1::2, 1::2] = 1.0
    >>> ops.convert_to_numpy(PolyphaseDownsample2D()(x))[0, :, :, 0].tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """

    def __init__(self, norm: str = "l2", blur: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.norm = check_choice("norm", norm, NORMS)
        self.blur = None if blur is None else check_int_range("blur", blur, 2, 7)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError("PolyphaseDownsample2D expects (batch, height, width, channels) inputs with known "
                             f"channels. Received: input_shape={input_shape}")
        for axis, size in (("height", input_shape[1]), ("width", input_shape[2])):
            if size is not None and size % 2:
                raise ValueError(f"PolyphaseDownsample2D needs an even {axis} (four polyphase components). "
                                 f"Received: input_shape={input_shape}")
        self.channels = int(input_shape[-1])
        self.built = True

    def call(self, inputs):
        if self.blur is not None:
            before = (self.blur - 1) // 2
            pads = (before, self.blur - 1 - before)
            kernel = np.tile(binomial_filter(self.blur)[:, :, None, None], (1, 1, self.channels, 1))
            inputs = ops.depthwise_conv(pad2d(inputs, (pads, pads), mode="circular"), ops.cast(kernel, inputs.dtype),
                                        strides=1, padding="valid")
        components = ops.stack([inputs[:, i::2, j::2, :] for i in (0, 1) for j in (0, 1)], axis=1)
        magnitude = ops.abs(ops.cast(components, "float32"))
        if self.norm == "l2":
            scores = ops.sum(ops.square(magnitude), axis=(2, 3, 4))
        else:
            scores = ops.max(magnitude, axis=(2, 3, 4))
        chosen = ops.one_hot(ops.argmax(scores, axis=1), 4, dtype=components.dtype)
        return ops.sum(components * chosen[:, :, None, None, None], axis=1)

    def compute_output_shape(self, input_shape):
        def half(size):
            return None if size is None else size // 2

        return (input_shape[0], half(input_shape[1]), half(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"norm": self.norm, "blur": self.blur})
        return config
