"""Random channel permutation: the PermuteNet operation of the paper."""
from __future__ import annotations

import keras
from keras import ops

from pcw_keras.layers._checks import check_choice

MODES = ("batch", "sample")


@keras.saving.register_keras_serializable(package="pcw_keras")
class ChannelPermutation(keras.layers.Layer):
    """Randomly permutes the channel (last) axis, afresh at every call.

    PermuteNet (Islam et al., ICCV 2021) scrambles the order of the pooled
    channels so that the network cannot read absolute position from *which*
    channel fires. The paper draws one permutation per forward pass, shared by
    the whole batch, in training **and** in testing; that is the default here.

    The permutation is the order of a vector of uniform random numbers (its
    ``top_k`` indices). A ``keras.random.SeedGenerator`` feeds it, so a new
    permutation is drawn at every call, also inside ``tf.function`` and
    XLA-compiled steps.

    Parameters
    ----------
    mode : {"batch", "sample"}
        ``"batch"`` (the paper's way): one permutation for all samples of a
        call. ``"sample"``: an independent permutation per sample.
    training_only : bool
        If ``True``, the layer is the identity when called with
        ``training=False``. Default ``False``: permute in inference too, as the
        paper does.
    seed : int, optional
        Seed of the layer's random stream; ``None`` draws a random seed.

    Call arguments
    --------------
    inputs : tensor of shape ``(batch, channels)`` or ``(batch, ..., channels)``.
    training : bool, optional.

    Example
    -------
    >>> layer = ChannelPermutation(seed=0)
    >>> y = layer(keras.ops.reshape(keras.ops.arange(8.0), (2, 4)))
    >>> sorted(keras.ops.convert_to_numpy(y)[0].tolist())
    [0.0, 1.0, 2.0, 3.0]
    """

    def __init__(
        self,
        mode: str = "batch",
        training_only: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, MODES)
        self.training_only = bool(training_only)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "ChannelPermutation needs inputs of shape (batch, ..., channels) "
                f"with a known channel count. Received: input_shape={input_shape}"
            )
        self.channels = int(input_shape[-1])
        self.built = True

    def draw_permutation(self, batch_size=None):
        """Draws permutation indices: ``(C,)`` for mode "batch", ``(B, C)`` for "sample"."""
        shape = (self.channels,) if self.mode == "batch" else (batch_size, self.channels)
        scores = keras.random.uniform(shape, seed=self.seed_generator)
        return ops.top_k(scores, k=self.channels, sorted=True)[1]

    def apply_permutation(self, inputs, permutation):
        """Applies indices from :meth:`draw_permutation` to ``inputs``."""
        if self.mode == "batch":
            return ops.take(inputs, permutation, axis=-1)
        rank = len(inputs.shape)
        index = ops.reshape(
            permutation,
            (ops.shape(permutation)[0],) + (1,) * (rank - 2) + (self.channels,),
        )
        index = ops.broadcast_to(index, ops.shape(inputs))
        return ops.take_along_axis(inputs, index, axis=-1)

    def call(self, inputs, training=None):
        if self.training_only and not training:
            return inputs
        batch_size = ops.shape(inputs)[0] if self.mode == "sample" else None
        return self.apply_permutation(inputs, self.draw_permutation(batch_size))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"mode": self.mode, "training_only": self.training_only, "seed": self.seed}
        )
        return config


@keras.saving.register_keras_serializable(package="pcw_keras")
class PermutedGlobalAveragePooling2D(keras.layers.Layer):
    """Global average pooling followed by a random channel permutation.

    The PermuteNet head of the paper: ``(batch, H, W, C) -> (batch, C)``, then
    the channels are shuffled as :class:`ChannelPermutation` does.

    Parameters
    ----------
    mode, training_only, seed
        As for :class:`ChannelPermutation`.

    Example
    -------
    >>> pool = PermutedGlobalAveragePooling2D(seed=1)
    >>> pool(keras.ops.ones((2, 6, 6, 8))).shape
    (2, 8)
    """

    def __init__(
        self,
        mode: str = "batch",
        training_only: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # The inner layer follows this layer's dtype policy (given or global), as Keras' pooling does.
        self.permutation = ChannelPermutation(
            mode=mode, training_only=training_only, seed=seed, dtype=self.dtype_policy, name="permutation"
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "PermutedGlobalAveragePooling2D expects (batch, height, width, "
                f"channels) inputs. Received: input_shape={input_shape}"
            )
        self.permutation.build((input_shape[0], input_shape[-1]))
        self.built = True

    def call(self, inputs, training=None):
        pooled = ops.mean(inputs, axis=(1, 2))
        return self.permutation(pooled, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "mode": self.permutation.mode,
                "training_only": self.permutation.training_only,
                "seed": self.permutation.seed,
            }
        )
        return config
