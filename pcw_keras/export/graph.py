"""The inference graph that is exported: training-only parts gone, the permutation made exportable.

A model's training-only layers (AugShift, dropout, a ``training_only``
permutation) are the identity when called with ``training=False``, so they
leave no op in a traced inference function. What needs work is PermuteNet's
permutation, which the paper draws afresh at every forward pass, in testing
too. Keras' draw (stateless random ops fed by a ``SeedGenerator``) runs in a
SavedModel but needs Select TF ops in TFLite, which the pip LiteRT interpreter
cannot run. :func:`inference_model` therefore rebuilds the model around
export-time twins of the permutation layers whose draw is one of:

- ``"stateful"``: the order of a stateful ``tf.random.uniform`` vector
  (``top_k`` of it). It converts to the TFLite builtins RANDOM_UNIFORM,
  TOPK_V2 and GATHER and gives a new permutation at every ``invoke()``.
- ``"frozen"``: one fixed permutation, drawn once from a seed and stored as a
  constant: a deterministic model.
- a callable: the permutation comes from the caller (used by the parity
  check to replay the permutation an exported model drew).

All other layers are shared with the original model, weights included.
"""
from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from pcw_keras.layers import ChannelPermutation, PermutedGlobalAveragePooling2D
from pcw_keras.normalization import CIFAR_MEAN, CIFAR_STD, normalize

INPUT_DTYPES = ("uint8", "float32")


PERMUTATIONS = ("random", "frozen")


class ExportPermutation(ChannelPermutation):
    """A :class:`ChannelPermutation` whose indices come from ``draw(channels, mode, batch_size)``.

    TensorFlow only; built at export time, never saved in a ``.keras`` file.
    """

    def __init__(self, draw: Callable, mode: str = "batch", **kwargs):
        super().__init__(mode=mode, training_only=False, **kwargs)
        self.draw = draw

    def draw_permutation(self, batch_size=None):
        return self.draw(self.channels, self.mode, batch_size)


class ExportPermutedPooling(keras.layers.Layer):
    """Global average pooling followed by an :class:`ExportPermutation` (the PermuteNet head)."""

    def __init__(self, permutation: ExportPermutation, **kwargs):
        super().__init__(**kwargs)
        self.permutation = permutation

    def call(self, inputs):
        return self.permutation(ops.mean(inputs, axis=(1, 2)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def stateful_draw(channels: int, mode: str, batch_size=None) -> tf.Tensor:
    """Permutation indices from the order of a stateful uniform vector (TFLite builtins only)."""
    shape = [channels] if mode == "batch" else tf.stack([batch_size, channels])
    return tf.math.top_k(tf.random.uniform(shape), k=channels, sorted=True).indices


def frozen_permutation(channels: int, seed: int) -> np.ndarray:
    """The fixed permutation a frozen export uses: ``numpy.random.default_rng(seed).permutation``."""
    return np.random.default_rng(seed).permutation(channels).astype(np.int32)


def random_permutation_layers(model: keras.Model) -> list[ChannelPermutation]:
    """The permutation layers of ``model`` that permute in inference (not ``training_only``)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, PermutedGlobalAveragePooling2D):
            layer = layer.permutation
        if isinstance(layer, keras.Model):
            found.extend(random_permutation_layers(layer))
        elif isinstance(layer, ChannelPermutation) and not layer.training_only and not isinstance(layer, ExportPermutation):
            found.append(layer)
    return found


def inference_model(model: keras.Model, draw: str | Callable = "stateful", *, seed: int = 0) -> keras.Model:
    """``model`` with its inference-time permutations drawn by ``draw``; other layers shared.

    Parameters
    ----------
    model : keras.Model
        A functional model (e.g. from :func:`pcw_keras.models.create_model`).
    draw : {"stateful", "frozen"} or callable
        See the module docstring. A callable gets ``(channels, mode, batch_size)``
        and returns int32 indices.
    seed : int
        Seed of the frozen permutation (``draw="frozen"``).

    Returns
    -------
    keras.Model
        The same model object when it has no permutation to replace.
    """
    if not random_permutation_layers(model):
        return model

    def make_draw(channels: int):
        if draw == "stateful":
            return stateful_draw, None
        if draw == "frozen":
            fixed = tf.constant(frozen_permutation(channels, seed))
            return (lambda channels, mode, batch_size: fixed), "batch"  # one permutation for every sample
        if callable(draw):
            return draw, None
        raise ValueError(f"`draw` must be 'stateful', 'frozen' or a callable. Received: draw={draw!r}")

    def replace(layer):
        if isinstance(layer, PermutedGlobalAveragePooling2D) and not layer.permutation.training_only:
            source, mode = make_draw(layer.permutation.channels)
            twin = ExportPermutation(source, mode=mode or layer.permutation.mode, name="permutation")
            return ExportPermutedPooling(twin, name=layer.name)
        if isinstance(layer, ChannelPermutation) and not layer.training_only:
            source, mode = make_draw(layer.channels)
            return ExportPermutation(source, mode=mode or layer.mode, name=layer.name)
        return layer

    return keras.models.clone_model(model, clone_function=replace)


def serving_function(model: keras.Model, input_dtype: str, mean=CIFAR_MEAN, std=CIFAR_STD) -> Callable:
    """``images -> {"logits": ...}`` in inference mode; uint8 images are normalised in the graph.

    ``input_dtype="float32"`` takes what the Keras model takes: images already
    normalised, ``(pixels / 255 - mean) / std``. ``"uint8"`` takes raw pixels
    (0-255) and normalises them first with ``mean`` and ``std``.
    """
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"`input_dtype` must be one of {INPUT_DTYPES}. Received: input_dtype={input_dtype!r}")

    def serve(images):
        inputs = normalize(tf.cast(images, tf.float32), mean, std) if input_dtype == "uint8" else images
        return {"logits": model(inputs, training=False)}

    return serve


def input_spec(model: keras.Model, input_dtype: str) -> tf.TensorSpec:
    """``(None, H, W, C)`` of ``input_dtype``; the model's image size must be fixed."""
    shape = tuple(model.input_shape)
    if len(shape) != 4 or None in shape[1:]:
        raise ValueError(
            "Export needs a model that takes (batch, height, width, channels) images of a fixed size. "
            f"Received: model.input_shape={shape}"
        )
    return tf.TensorSpec((None,) + shape[1:], tf.as_dtype(input_dtype), name="images")
