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

In a residual block the shortcut is subsampled too, and it must keep the
*same* component as the main path, per sample: two branches that each chose
by their own norm could keep components of different phases, and their sum
would mix two shifts. :class:`PolyphaseDownsample2D` with
``return_index=True`` also returns the index it chose, and
:class:`PolyphaseSelect2D` takes that component of another tensor.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from pcw_keras.choices import APS_BLUR_SIZES as BLUR_SIZES
from pcw_keras.layers._checks import check_choice, check_int_range
from pcw_keras.layers.blurpool import binomial_filter
from pcw_keras.layers.padding import pad2d

NORMS = ("l2", "linf")


COMPONENTS = ((0, 0), (0, 1), (1, 0), (1, 1))
"""The polyphase components ``x[:, i::2, j::2, :]`` in index order (the tie-break order too)."""


def _check_nhwc_even(layer: str, input_shape) -> int:
    """The channels of an even-sized ``(batch, height, width, channels)`` input; raises ``ValueError`` otherwise."""
    if len(input_shape) != 4 or input_shape[-1] is None:
        raise ValueError(f"{layer} expects (batch, height, width, channels) inputs with known "
                         f"channels. Received: input_shape={input_shape}")
    for axis, size in (("height", input_shape[1]), ("width", input_shape[2])):
        if size is not None and size % 2:
            raise ValueError(f"{layer} needs an even {axis} (four polyphase components). "
                             f"Received: input_shape={input_shape}")
    return int(input_shape[-1])


def _blur(inputs, size: int | None, channels: int):
    """The circularly padded binomial blur of side ``size`` at stride 1 (``None``: ``inputs`` as they are)."""
    if size is None:
        return inputs
    before = (size - 1) // 2
    pads = (before, size - 1 - before)
    kernel = np.tile(binomial_filter(size)[:, :, None, None], (1, 1, channels, 1))
    return ops.depthwise_conv(pad2d(inputs, (pads, pads), mode="circular"), ops.cast(kernel, inputs.dtype),
                              strides=1, padding="valid")


def _components(inputs):
    """``(batch, 4, height / 2, width / 2, channels)``: the four polyphase components in :data:`COMPONENTS` order."""
    return ops.stack([inputs[:, i::2, j::2, :] for i, j in COMPONENTS], axis=1)


def _take(components, index):
    """Each sample's component ``index[b]`` (an integer in ``[0, 4)``) of ``components``."""
    chosen = ops.one_hot(ops.cast(index, "int32"), len(COMPONENTS), dtype=components.dtype)
    return ops.sum(components * chosen[:, :, None, None, None], axis=1)


def _half(input_shape) -> tuple:
    def half(size):
        return None if size is None else size // 2

    return (input_shape[0], half(input_shape[1]), half(input_shape[2]), input_shape[3])


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
    return_index : bool
        Also return the chosen component's index, an int32 ``(batch,)``
        tensor (0 to 3 in the order above), for :class:`PolyphaseSelect2D`
        to subsample another branch the same way.

    Call arguments:
        inputs: ``(batch, height, width, channels)`` with even height and width.

    Returns:
        The chosen components ``(batch, height / 2, width / 2, channels)``;
        with ``return_index``, the tuple ``(components, index)``.

    Example
    -------
    >>> x = np.zeros((1, 4, 4, 1), "float32"); x[0, 1::2, 1::2] = 1.0
    >>> ops.convert_to_numpy(PolyphaseDownsample2D()(x))[0, :, :, 0].tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """

    def __init__(self, norm: str = "l2", blur: int | None = None, return_index: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.norm = check_choice("norm", norm, NORMS)
        self.blur = None if blur is None else check_int_range("blur", blur, *BLUR_SIZES)
        if not isinstance(return_index, bool):
            raise TypeError(f"`return_index` must be a bool. Received: return_index={return_index!r}")
        self.return_index = return_index

    def build(self, input_shape):
        self.channels = _check_nhwc_even("PolyphaseDownsample2D", input_shape)
        self.built = True

    def call(self, inputs):
        components = _components(_blur(inputs, self.blur, self.channels))
        magnitude = ops.abs(ops.cast(components, "float32"))
        if self.norm == "l2":
            scores = ops.sum(ops.square(magnitude), axis=(2, 3, 4))
        else:
            scores = ops.max(magnitude, axis=(2, 3, 4))
        # The first component of largest score. An argmax over integers: Keras' float argmax tests the sign bit of
        # zeros (a bitwise op that builtin TFLite lacks), and the scores are never negative.
        largest = ops.cast(ops.greater_equal(scores, ops.max(scores, axis=1, keepdims=True)), "int32")
        index = ops.cast(ops.argmax(largest, axis=1), "int32")
        outputs = _take(components, index)
        return (outputs, index) if self.return_index else outputs

    def compute_output_shape(self, input_shape):
        return (_half(input_shape), (input_shape[0],)) if self.return_index else _half(input_shape)

    def compute_output_spec(self, inputs):
        outputs = keras.KerasTensor(_half(inputs.shape), dtype=self.compute_dtype)
        return (outputs, keras.KerasTensor((inputs.shape[0],), dtype="int32")) if self.return_index else outputs

    def get_config(self):
        config = super().get_config()
        config.update({"norm": self.norm, "blur": self.blur, "return_index": self.return_index})
        return config


@keras.saving.register_keras_serializable(package="pcw_keras")
class PolyphaseSelect2D(keras.layers.Layer):
    """Stride-2 downsampling to a polyphase component chosen elsewhere, per sample.

    The companion of :class:`PolyphaseDownsample2D` with ``return_index=True``:
    an APS ResNet's projection shortcut keeps the component that its block's
    main path chose, so that both branches are subsampled on the same grid
    and their sum shifts as one map.

    Parameters
    ----------
    blur : int, optional
        Side of the circularly padded binomial filter applied before the
        selection, 2 to 7 (as :class:`PolyphaseDownsample2D`'s); ``None``: none.

    Call arguments:
        inputs: a list ``[x, index]``: ``x`` of shape ``(batch, height, width,
        channels)`` with even height and width, and ``index`` an integer
        ``(batch,)`` tensor in ``[0, 4)`` (:data:`COMPONENTS` order).

    Example
    -------
    >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    >>> ops.convert_to_numpy(PolyphaseSelect2D()([x, np.array([3])]))[0, :, :, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    """

    def __init__(self, blur: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.blur = None if blur is None else check_int_range("blur", blur, *BLUR_SIZES)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not isinstance(input_shape[0], (list, tuple)):
            raise ValueError(f"PolyphaseSelect2D expects two inputs, [x, index]. Received: input_shape={input_shape}")
        x_shape, index_shape = input_shape
        self.channels = _check_nhwc_even("PolyphaseSelect2D", x_shape)
        if len(index_shape) != 1:
            raise ValueError(f"PolyphaseSelect2D expects an index of shape (batch,). Received: input_shape={input_shape}")
        self.built = True

    def call(self, inputs):
        x, index = inputs
        return _take(_components(_blur(x, self.blur, self.channels)), index)

    def compute_output_shape(self, input_shape):
        return _half(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update({"blur": self.blur})
        return config
