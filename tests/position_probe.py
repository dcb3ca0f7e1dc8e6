"""A hand-built model whose channel 0 is a pure function of position (shared by the channel tests)."""
import keras
import numpy as np
from keras import ops

from pcw_keras.data import ImageSet

GRID, PATCH = 3, 8
POSITION_CHANNEL = 0


@keras.saving.register_keras_serializable(package="pcw_keras_tests")
class PositionProbe(keras.layers.Layer):
    """Maps a canvas to 8 channels: channel 0 is the horizontal coordinate where the input is non-zero
    (a pure function of where the content is), channels 1-3 the input colours (position-blind),
    channels 4-7 a fixed random 3x3 convolution (mostly semantic)."""

    def build(self, input_shape):
        kernel = np.random.default_rng(0).normal(size=(3, 3, input_shape[-1], 4)).astype("float32")
        self.kernel = self.add_weight(shape=kernel.shape, initializer=keras.initializers.Constant(kernel), trainable=False)

    def call(self, x):
        width = x.shape[2]
        content = ops.cast(ops.max(ops.abs(x), axis=-1, keepdims=True) > 0, x.dtype)
        ramp = ops.reshape(ops.linspace(-1.0, 1.0, width), (1, 1, width, 1))
        position = 20.0 * content * ramp
        conv = ops.relu(ops.conv(x, self.kernel, padding="same"))
        return ops.concatenate([position, x, conv], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1 + input_shape[-1] + 4,)


def probe_model():
    inputs = keras.Input((GRID * PATCH, GRID * PATCH, 3))
    features = PositionProbe(name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    outputs = keras.layers.Dense(GRID * GRID, name="head")(pooled)
    return keras.Model(inputs, outputs, name="probe")


def patches(count=12, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(1, 256, (count, PATCH, PATCH, 3), dtype=np.uint8)
    return ImageSet(images, np.arange(count) % 2)


def locating_probe_model():
    """The probe with a head that reads the column from channel 0 alone.

    Pooled channel 0 is about -1.5, 0 and +1.5 for content in the left, middle
    and right column; the logits of the cells of column c are ``(-10, 0, 10)[c] * x
    + (0, 5, 0)[c]``, so the argmax is the right column's first cell (row 0):
    location accuracy 1/3, and 1/9 once channel 0 is zeroed (every prediction
    falls in the middle column).
    """
    model = probe_model()
    kernel = np.zeros((8, GRID * GRID), "float32")
    bias = np.zeros(GRID * GRID, "float32")
    for cell in range(GRID * GRID):
        kernel[POSITION_CHANNEL, cell] = (-10.0, 0.0, 10.0)[cell % GRID]
        bias[cell] = (0.0, 5.0, 0.0)[cell % GRID]
    model.get_layer("head").set_weights([kernel, bias])
    return model
