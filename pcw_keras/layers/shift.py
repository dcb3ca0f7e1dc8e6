"""AugShift's translation: per-sample random integer shifts."""
from __future__ import annotations

import keras
from keras import ops

from pcw_keras.choices import FILLS
from pcw_keras.layers._checks import check_choice, check_int_range
from pcw_keras.layers.padding import pad2d


@keras.saving.register_keras_serializable(package="pcw_keras")
class AugShift(keras.layers.Layer):
    """Shifts each image by a random whole number of pixels (training only).

    Each sample gets its own shift ``(dy, dx)``, drawn uniformly from
    ``[-max_shift, max_shift]`` on each axis. The image is padded by
    ``max_shift`` on every side with ``fill`` and cropped back to its size at
    the shifted offset, so pixels move exactly (no interpolation), unlike
    ``keras.layers.RandomTranslation``. In inference (``training=False``) the
    layer is the identity.

    Parameters
    ----------
    max_shift : int
        Largest shift in pixels, ``>= 0``; ``0`` makes the layer the identity.
    fill : {"zero", "reflect", "replicate"}
        What enters at the border: zeros, the mirrored image, or the edge pixels.
    seed : int, optional
        Seed of the layer's random stream.

    Call arguments
    --------------
    inputs : tensor of shape ``(batch, height, width, channels)``.
    training : bool, optional.

    Example
    -------
    >>> shift = AugShift(max_shift=4, seed=0)
    >>> shift(keras.ops.ones((2, 32, 32, 3)), training=True).shape
    (2, 32, 32, 3)
    """

    def __init__(self, max_shift: int = 4, fill: str = "zero", seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.max_shift = check_int_range("max_shift", max_shift, 0)
        self.fill = check_choice("fill", fill, FILLS)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "AugShift expects (batch, height, width, channels) inputs. "
                f"Received: input_shape={input_shape}"
            )
        height, width = input_shape[1], input_shape[2]
        if self.fill == "reflect" and None not in (height, width) and self.max_shift >= min(height, width):
            raise ValueError(
                "`fill='reflect'` needs `max_shift` smaller than the image size. "
                f"Received: max_shift={self.max_shift}, image size {height}x{width}"
            )
        self.built = True

    def draw_offsets(self, batch_size):
        """Draws crop offsets in ``[0, 2 * max_shift]``: shape ``(batch, 2)`` int32."""
        return keras.random.randint(
            (batch_size, 2), 0, 2 * self.max_shift + 1, seed=self.seed_generator, dtype="int32"
        )

    def apply_offsets(self, inputs, offsets):
        """Pads by ``max_shift`` and crops each sample at its ``(row, column)`` offset."""
        shape = ops.shape(inputs)
        height, width = shape[1], shape[2]
        padded = pad2d(inputs, self.max_shift, mode=self.fill)
        rows = offsets[:, :1] + ops.arange(height, dtype="int32")[None, :]
        cols = offsets[:, 1:] + ops.arange(width, dtype="int32")[None, :]
        padded_width = ops.shape(padded)[2]
        row_index = ops.broadcast_to(rows[:, :, None, None], (shape[0], height, padded_width, shape[3]))
        cropped = ops.take_along_axis(padded, row_index, axis=1)
        col_index = ops.broadcast_to(cols[:, None, :, None], shape)
        return ops.take_along_axis(cropped, col_index, axis=2)

    def call(self, inputs, training=None):
        if not training or self.max_shift == 0:
            return inputs
        return self.apply_offsets(inputs, self.draw_offsets(ops.shape(inputs)[0]))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_shift": self.max_shift, "fill": self.fill, "seed": self.seed})
        return config
