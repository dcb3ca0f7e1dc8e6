"""SavedModel export through Keras 3's ``ExportArchive``, with an image serving signature."""
from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from pcw_keras.export.graph import input_spec, serving_function

SAVED_MODEL_FILE = "saved_model.pb"


def is_saved_model(path) -> bool:
    """Whether ``path`` (a path, or anything else such as a model) is a SavedModel directory: it holds ``saved_model.pb``."""
    return isinstance(path, (str, os.PathLike)) and os.path.isfile(os.path.join(os.fspath(path), SAVED_MODEL_FILE))


def write_saved_model(model: keras.Model, directory: str, *, input_dtype: str = "uint8", normalization=None) -> None:
    """Writes ``model`` in inference mode as a SavedModel with one endpoint, ``serve``.

    ``serve`` (also ``serving_default``) takes ``(batch, H, W, 3)`` images of
    ``input_dtype`` (see :func:`pcw_keras.export.graph.serving_function`) and
    returns ``{"logits": (batch, classes)}``; uint8 images are normalised
    with ``normalization`` (a :class:`pcw_keras.normalization.Normalization`; default
    CIFAR's mean and std). Variables the model updates in
    inference (a permutation's seed state) are saved with their current value.
    """
    archive = keras.export.ExportArchive()  # variables are tracked through the endpoint
    statistics = () if normalization is None else (normalization.mean, normalization.std)
    archive.add_endpoint("serve", serving_function(model, input_dtype, *statistics),
                         input_signature=[input_spec(model, input_dtype)])
    archive.write_out(directory, verbose=False)


class SavedModelRunner:
    """A loaded SavedModel's ``serve`` endpoint, called on NumPy batches (float32 logits back).

    ``input_dtype`` and ``input_shape`` (``(None, H, W, C)``) are those of the endpoint's input signature.
    """

    def __init__(self, directory: str):
        self.module = tf.saved_model.load(directory)
        if not hasattr(self.module, "serve"):
            raise ValueError(f"The SavedModel at {directory!r} has no `serve` endpoint (pcw export writes one).")
        signature = self.module.serve.input_signature[0]
        self.input_dtype = signature.dtype.name
        self.input_shape = tuple(signature.shape.as_list())

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.module.serve(tf.constant(images))["logits"], np.float32)


def directory_size(directory: str) -> int:
    """Bytes of all files under ``directory``."""
    return sum(
        os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(directory) for name in names
    )
