"""Switching channels off: the layer that attacks position-encoding channels."""
from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np
from keras import ops


def _check_channels(channels) -> tuple[int, ...]:
    """Sorted, unique, non-negative channel indices, or ``ValueError`` naming the bad value."""
    if isinstance(channels, (int, np.integer)) and not isinstance(channels, bool):
        channels = (channels,)
    if not isinstance(channels, Iterable) or isinstance(channels, (str, bytes)):
        raise ValueError(f"`channels` must be a list of channel indices. Received: channels={channels!r}")
    checked = []
    for channel in channels:
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or channel < 0:
            raise ValueError(
                f"`channels` must hold non-negative integers. Received: channels={list(channels)!r}"
            )
        checked.append(int(channel))
    if len(set(checked)) != len(checked):
        raise ValueError(f"`channels` must not repeat an index. Received: channels={checked!r}")
    return tuple(sorted(checked))


@keras.saving.register_keras_serializable(package="pcw_keras")
class ChannelMask(keras.layers.Layer):
    """Sets the given channels (last axis) to zero and passes the others through unchanged.

    Inserted after a named layer by :func:`pcw_keras.evaluation.attack`, it
    switches off the channels that a ranking found to encode position. It has
    no trainable weights: the mask is a non-trainable ``keep`` vector built
    from ``channels`` (so :meth:`set_channels` can change it without tracing
    a new graph), and the layer exports to SavedModel and TFLite as one
    multiplication. Works on any rank
    (``(batch, C)`` pooled vectors, ``(batch, H, W, C)`` maps).

    Parameters
    ----------
    channels : list of int
        Indices of the channels to zero, each in ``[0, C)``; may be empty
        (the layer is then the identity).

    Call arguments
    --------------
    inputs : tensor ``(..., C)``.

    Example
    -------
    >>> x = keras.ops.ones((1, 2, 2, 4))
    >>> keras.ops.convert_to_numpy(ChannelMask([1, 3])(x))[0, 0, 0].tolist()
    [1.0, 0.0, 1.0, 0.0]
    """

    def __init__(self, channels=(), **kwargs):
        super().__init__(**kwargs)
        self.channels = _check_channels(channels)

    def build(self, input_shape):
        num_channels = input_shape[-1]
        if num_channels is None:
            raise ValueError(f"ChannelMask needs a known channel count. Received: input_shape={input_shape}")
        self._check_range(self.channels, num_channels)
        self.keep = self.add_weight(
            shape=(num_channels,), initializer=keras.initializers.Constant(self._keep_vector(num_channels)),
            trainable=False, name="keep",
        )
        self.built = True

    def set_channels(self, channels) -> None:
        """Switches off ``channels`` instead (built layer: no new graph, so a compiled model stays fast)."""
        channels = _check_channels(channels)
        num_channels = self.keep.shape[0]
        self._check_range(channels, num_channels)
        self.keep.assign(self._keep_vector(num_channels, channels))
        self.channels = channels

    def _keep_vector(self, num_channels: int, channels=None) -> np.ndarray:
        keep = np.ones(num_channels, "float32")
        keep[list(self.channels if channels is None else channels)] = 0.0
        return keep

    @staticmethod
    def _check_range(channels, num_channels: int) -> None:
        if channels and channels[-1] >= num_channels:
            raise ValueError(
                f"`channels` must lie in [0, {num_channels}) for an input with {num_channels} channels. "
                f"Received: channels={list(channels)}"
            )

    def call(self, inputs):
        return inputs * ops.cast(self.keep, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": list(self.channels)})
        return config
