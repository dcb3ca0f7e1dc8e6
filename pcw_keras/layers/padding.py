"""Explicit, symmetric spatial padding in the modes PyTorch's ``padding_mode`` offers."""
from __future__ import annotations

import keras
from keras import ops

from pcw_keras.layers._checks import check_choice, check_int_range

MODES = ("zero", "reflect", "replicate", "circular")


def _pad_axis(x, before: int, after: int, axis: int, mode: str):
    """Pads one spatial axis of an NHWC tensor by slicing and concatenation."""
    if before == 0 and after == 0:
        return x
    size = x.shape[axis]

    def take(start, stop):
        index = [slice(None)] * 4
        index[axis] = slice(start, stop)
        return x[tuple(index)]

    if mode == "zero":
        pad = [(0, 0)] * 4
        pad[axis] = (before, after)
        return ops.pad(x, pad)
    if mode == "reflect":
        if size is not None and max(before, after) >= size:
            # Slicing would give fewer rows than asked for, and the layer after would read past the map.
            raise ValueError(
                f"Reflect padding needs each pad smaller than the padded side (as PyTorch's). "
                f"Received: padding ({before}, {after}) on a side of {size} (axis {axis})"
            )
        head = ops.flip(take(1, before + 1), axis=axis)
        tail = ops.flip(take(size - after - 1, size - 1), axis=axis)
    elif mode == "replicate":
        head = ops.repeat(take(0, 1), before, axis=axis)
        tail = ops.repeat(take(size - 1, size), after, axis=axis)
    else:  # circular
        head = take(size - before, size)
        tail = take(0, after)
    parts = ([head] if before else []) + [x] + ([tail] if after else [])
    return ops.concatenate(parts, axis=axis)


def pad2d(x, padding, mode: str = "zero"):
    """Pads height and width of an NHWC tensor.

    Parameters
    ----------
    x : tensor ``(batch, height, width, channels)`` with static height and width.
    padding : int or ((top, bottom), (left, right))
    mode : {"zero", "reflect", "replicate", "circular"}
        PyTorch's ``zeros``, ``reflect``, ``replicate`` and ``circular``.
    """
    (top, bottom), (left, right) = _normalise_padding(padding)
    x = _pad_axis(x, top, bottom, 1, mode)
    return _pad_axis(x, left, right, 2, mode)


def _normalise_padding(padding):
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    (top, bottom), (left, right) = padding
    return (int(top), int(bottom)), (int(left), int(right))


@keras.saving.register_keras_serializable(package="pcw_keras")
class Padding2D(keras.layers.Layer):
    """Pads height and width explicitly, in a chosen mode.

    Used before every ``valid`` convolution of the ResNets so that padding is
    symmetric as in PyTorch (Keras' ``padding="same"`` with stride 2 pads only
    after, which shifts what the network can learn about position).

    Parameters
    ----------
    padding : int or ((top, bottom), (left, right))
        Pixels added on each side.
    mode : {"zero", "reflect", "replicate", "circular"}
        Fill of the border.

    Example
    -------
    >>> Padding2D(1, mode="circular")(keras.ops.ones((1, 4, 4, 2))).shape
    (1, 6, 6, 2)
    """

    def __init__(self, padding=1, mode: str = "zero", **kwargs):
        super().__init__(**kwargs)
        (top, bottom), (left, right) = _normalise_padding(padding)
        for side, value in (("top", top), ("bottom", bottom), ("left", left), ("right", right)):
            check_int_range(f"padding ({side})", value, 0)
        self.padding = ((top, bottom), (left, right))
        self.mode = check_choice("mode", mode, MODES)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"Padding2D expects (batch, height, width, channels) inputs. Received: input_shape={input_shape}"
            )
        if self.mode != "zero":
            (top, bottom), (left, right) = self.padding
            height, width = input_shape[1], input_shape[2]
            limit = 1 if self.mode == "reflect" else 0
            if height is None or width is None:
                raise ValueError(f"Padding2D(mode={self.mode!r}) needs static height and width. Received: input_shape={input_shape}")
            if max(top, bottom) > height - limit or max(left, right) > width - limit:
                raise ValueError(
                    f"Padding {self.padding} in mode {self.mode!r} is too large for a "
                    f"{height}x{width} feature map."
                )
        self.built = True

    def call(self, inputs):
        return pad2d(inputs, self.padding, self.mode)

    def compute_output_shape(self, input_shape):
        (top, bottom), (left, right) = self.padding
        height = None if input_shape[1] is None else input_shape[1] + top + bottom
        width = None if input_shape[2] is None else input_shape[2] + left + right
        return (input_shape[0], height, width, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding, "mode": self.mode})
        return config
