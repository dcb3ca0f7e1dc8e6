"""Mixed precision: build a model under a Keras dtype policy, and bring it back to float32.

``mixed_bfloat16`` computes convolutions and matrix products in bfloat16 with
float32 variables; on a CPU with AVX512-BF16 a ResNet-18 training step at
96x96 ran 1.55x faster and inference 1.7x (``docs/benchmarks.md``).
``mixed_float16`` is the GPU counterpart (Keras adds loss scaling itself).
The paper's runs are float32, which stays the default.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from pcw_keras.layers._checks import check_choice

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@contextlib.contextmanager
def dtype_policy(precision: str) -> Iterator[None]:
    """Layers created inside the block use ``precision``; the previous global policy comes back after.

    Example
    -------
    >>> with dtype_policy("mixed_bfloat16"):
    ...     model = create_model("gapnet_resnet18", num_classes=9, input_shape=(96, 96, 3))
    """
    check_choice("precision", precision, PRECISIONS)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def is_float32(model: keras.Model) -> bool:
    """Whether every layer of ``model`` (and the model) computes in float32."""
    return all(layer.dtype_policy.name == "float32" for layer in [model, *model.layers])


def as_float32(model: keras.Model) -> keras.Model:
    """A float32 copy of a functional ``model`` with the same weights (``model`` itself if already float32).

    Mixed-precision variables are float32, so the copy holds exactly the
    trained values; only the computation changes. Export uses it: TFLite and
    the SavedModel serve float32 (or quantize from it).
    """
    if is_float32(model):
        return model
    with dtype_policy("float32"):
        clone = keras.models.clone_model(
            model, clone_function=lambda layer: layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})
        )
    clone.set_weights(model.get_weights())
    return clone
