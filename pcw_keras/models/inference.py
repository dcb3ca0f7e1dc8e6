"""The inference form of a model: BatchNorm folded into its convolutions, weights held in the compute dtype.

At inference a BatchNorm after a convolution is an affine map per channel
with fixed statistics, so it folds into the convolution's kernel and bias
(``kernel * gamma / sqrt(var + eps)``; ``beta - mean * gamma / sqrt(var + eps)``).
Under ``mixed_bfloat16`` Keras keeps float32 variables and casts each of them
to bfloat16 at every call; the inference form holds them in bfloat16 once.
A symmetric zero padding before a stride-1 convolution becomes the
convolution's own ``"same"`` padding, which oneDNN applies inside the kernel.
None of this is work a compiler folds on its own in eager or graph mode; a
profile of the bfloat16 form leaves 97.8% of its time in the convolutions
(``docs/benchmarks.md``).

Precisions (``--precision`` of ``pcw evaluate``, ``rank``, ``attack`` and
``consistency``):

- ``float32``: the model's function exactly (the fold changes rounding only:
  outputs agree to about 1e-6 relative);
- ``bfloat16``: every layer computes and holds its weights in bfloat16 (the
  outputs are cast back to float32);
- ``auto``: bfloat16 where it is the faster one and float32 elsewhere (see
  :func:`default_precision`). Measured on trained runs, bfloat16 keeps the
  test accuracy within 0.2 points of float32
  (``docs/studies/inference_precision/accuracy.json``).

Under JAX the layers are not folded by default (:func:`default_fold`): XLA
fuses BatchNorm itself, and the folded form measured slower there.

Example
-------
>>> fast = inference_model(model, "bfloat16")  # doctest: +SKIP
>>> labels = fast.predict_on_batch(canvases).argmax(-1)  # doctest: +SKIP
"""
from __future__ import annotations

import keras
import numpy as np

from pcw_keras.choices import INFERENCE_PRECISIONS
from pcw_keras.machine import cpu_flags
from pcw_keras.layers import Padding2D
from pcw_keras.layers._checks import check_choice

FOLDABLE_CONVOLUTIONS = (keras.layers.Conv2D,)
OUTPUT_LAYER = "inference_output_float32"


def default_precision() -> str:
    """The inference precision ``auto`` stands for on this machine and backend.

    bfloat16 on an accelerator, and on a CPU with bfloat16 matrix
    instructions (``avx512_bf16`` or ``amx_bf16``) under TensorFlow, whose
    oneDNN kernels use them; float32 otherwise (XLA:CPU's bfloat16
    convolutions measured slower than its float32 ones, ``docs/benchmarks.md``).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return "float32" if jax.default_backend() == "cpu" else "bfloat16"
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_logical_devices("GPU"):
            return "bfloat16"
        return "bfloat16" if cpu_flags() & {"avx512_bf16", "amx_bf16"} else "float32"
    return "float32"


def resolve_precision(precision: str) -> str:
    """``precision`` checked against :data:`INFERENCE_PRECISIONS`, with ``auto`` resolved."""
    check_choice("precision", precision, INFERENCE_PRECISIONS)
    return default_precision() if precision == "auto" else precision


def _only_consumer(layer, model: keras.Model):
    """The one layer of ``model`` that reads ``layer``'s output, or None (several readers, or a model output)."""
    model_outputs = {id(tensor) for tensor in model.outputs}
    if len(layer._inbound_nodes) != 1 or any(id(t) in model_outputs for t in layer._inbound_nodes[0].output_tensors):
        return None
    consumers = [node.operation for node in layer._outbound_nodes if node.operation in model.layers]
    return consumers[0] if len(consumers) == 1 else None


def foldable_pairs(model: keras.Model) -> dict[str, str]:
    """``{batchnorm name: convolution name}`` for each BatchNorm that reads one Conv2D and nothing else does.

    Only 4-D BatchNorms over the last axis after a linear, channels-last
    ``Conv2D`` used once qualify; any other BatchNorm stays as it is.
    """
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        if layer.axis not in (-1, 3) or getattr(layer, "renorm", False):
            continue
        inputs = layer._inbound_nodes[0].input_tensors
        if len(inputs) != 1:
            continue
        producer = inputs[0]._keras_history.operation
        if (isinstance(producer, FOLDABLE_CONVOLUTIONS) and producer.data_format == "channels_last"
                and producer.activation is keras.activations.linear and _only_consumer(producer, model) is layer):
            pairs[layer.name] = producer.name
    return pairs


@keras.saving.register_keras_serializable(package="pcw_keras")
class Folded(keras.layers.Layer):
    """Where :func:`inference_model` folded a layer into a convolution beside it: the identity.

    A BatchNorm folds into the convolution that feeds it, a zero padding into
    the stride-1 convolution it feeds. The layer keeps the folded one's name
    in the graph, so that layers found by name (``stage1_block1_1_bn``) are
    still there.
    """

    def build(self, input_shape):
        self.built = True

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def foldable_paddings(model: keras.Model) -> dict[str, str]:
    """``{padding name: convolution name}`` for each symmetric zero :class:`~pcw_keras.layers.Padding2D` of
    ``(k - 1) / 2`` pixels that feeds only a stride-1, undilated, ``valid`` ``k x k`` Conv2D.

    Such a pair is the convolution with ``padding="same"``, which oneDNN pads
    inside the kernel; other paddings (strided convolutions pad
    asymmetrically under ``"same"``, other modes) stay as they are.
    """
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, Padding2D) or layer.mode != "zero" or len(layer._inbound_nodes) != 1:
            continue
        consumer = _only_consumer(layer, model)
        if not isinstance(consumer, keras.layers.Conv2D) or consumer.padding != "valid":
            continue
        kernel, strides, dilation = consumer.kernel_size, consumer.strides, consumer.dilation_rate
        same = tuple((k - 1) // 2 for k in kernel)
        if (strides == (1, 1) and dilation == (1, 1) and all(k % 2 for k in kernel)
                and layer.padding == ((same[0], same[0]), (same[1], same[1]))
                and consumer.data_format == "channels_last"):
            pairs[layer.name] = consumer.name
    return pairs


def _folded_weights(conv, batchnorm) -> list[np.ndarray]:
    """The kernel and bias of ``conv`` followed by ``batchnorm`` at inference, in float64 then float32."""
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel), "float64")
    channels = kernel.shape[-1]
    bias = np.asarray(keras.ops.convert_to_numpy(conv.bias), "float64") if conv.use_bias else np.zeros(channels)
    gamma = np.asarray(keras.ops.convert_to_numpy(batchnorm.gamma), "float64") if batchnorm.scale else np.ones(channels)
    beta = np.asarray(keras.ops.convert_to_numpy(batchnorm.beta), "float64") if batchnorm.center else np.zeros(channels)
    mean = np.asarray(keras.ops.convert_to_numpy(batchnorm.moving_mean), "float64")
    variance = np.asarray(keras.ops.convert_to_numpy(batchnorm.moving_variance), "float64")
    scale = gamma / np.sqrt(variance + batchnorm.epsilon)
    return [(kernel * scale).astype("float32"), ((bias - mean) * scale + beta).astype("float32")]


def _is_functional(model) -> bool:
    return isinstance(model, keras.Model) and hasattr(model, "_operations") and bool(getattr(model, "inputs", None))


def default_fold() -> bool:
    """Whether :func:`inference_model` folds by default on this backend: under TensorFlow, not under JAX.

    XLA fuses an unfolded BatchNorm into the convolution's output on its own,
    and on a CPU the folded convolutions (with a bias, BatchNorm and paddings
    folded) measured slower under JAX: GAPNet's float32 inference 0.77x of the
    unfolded model
    (``docs/bench/inference_form_cpu_explicit_pads.json``, measured when the benchmark folded under JAX).
    """
    return keras.backend.backend() != "jax"


def inference_model(model: keras.Model, precision: str = "float32", *, fold: bool | None = None) -> keras.Model:
    """``model``'s inference form in ``precision``: BatchNorm folded, weights in the compute dtype.

    Parameters
    ----------
    model : keras.Model
        A functional model (nested functional models are converted too);
        any other model is returned as it is.
    precision : {"auto", "float32", "bfloat16"}
        See the module's docstring.
    fold : bool, optional
        Fold the BatchNorms and zero paddings into their convolutions
        (default: :func:`default_fold`, the backend's measured-faster choice).

    Returns
    -------
    keras.Model
        A new functional model with the same inputs, layer names (a folded
        layer becomes a :class:`Folded` of its name) and float32 outputs,
        for inference only (``training=False`` statistics).

    Raises
    ------
    ValueError
        An unknown ``precision``.
    """
    precision = resolve_precision(precision)
    if not _is_functional(model):
        return model
    fold = default_fold() if fold is None else fold
    pairs = foldable_pairs(model) if fold else {}
    paddings = foldable_paddings(model) if fold else {}
    folded_convs, padded_convs = set(pairs.values()), set(paddings.values())
    clones: dict[str, keras.layers.Layer] = {}

    def clone(layer):
        if _is_functional(layer):
            return inference_model(layer, precision, fold=fold)
        if not isinstance(layer, keras.layers.Layer):  # an op in the graph (keras.ops.add): no weights, no dtype
            return layer
        config = {**layer.get_config(), "dtype": precision}
        if layer.name in pairs or layer.name in paddings:
            new = Folded(name=layer.name, dtype=precision)
        else:
            if layer.name in folded_convs:
                config["use_bias"] = True
            if layer.name in padded_convs:
                config["padding"] = "same"
            new = layer.__class__.from_config(config)
        clones[layer.name] = new
        return new

    converted = keras.models.clone_model(model, clone_function=clone)
    by_name = {layer.name: layer for layer in model.layers}
    batchnorm_of = {conv: bn for bn, conv in pairs.items()}
    for name, new in clones.items():
        old = by_name[name]
        if name in pairs or name in paddings:
            continue
        weights = (_folded_weights(old, by_name[batchnorm_of[name]]) if name in folded_convs
                   else old.get_weights())
        new.set_weights(weights)
    outputs = [keras.layers.Activation("linear", dtype="float32", name=f"{OUTPUT_LAYER}_{i}" if i else OUTPUT_LAYER)(o)
               for i, o in enumerate(converted.outputs)]
    return keras.Model(converted.inputs, outputs if len(outputs) > 1 else outputs[0], name=model.name)
