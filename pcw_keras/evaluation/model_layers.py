"""Which layer of a model to look at: the default layer of the package's analyses, name checks, feature models."""
from __future__ import annotations

import keras

DEFAULT_LAYERS = ("stage4", "pool")
"""Layer names the package's ResNets give their body's last map and their pooled latent."""

GLOBAL_POOLING = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)


def default_layer(model: keras.Model) -> str:
    """The layer ranked and attacked when none is named.

    For the package's ResNets it is ``stage4``, else ``pool``: ``stage4`` is
    the body's last map, for every head (in GAPNet ``pool`` holds the logits,
    in PermuteNet ``pool`` is permuted at every call, and for the plain
    ``gap`` head GAP(``stage4``) *is* ``pool``). For any other model it is
    the last layer with a 4-D output before the first global pooling (e.g.
    ``conv5_block3_out`` of a Keras ResNet-50), or its last 4-D layer.
    """
    names = {layer.name for layer in model.layers}
    for name in DEFAULT_LAYERS:
        if name in names:
            return name
    last = None
    for layer in model.layers:
        if isinstance(layer, GLOBAL_POOLING) and last is not None:
            return last
        if not isinstance(layer, keras.layers.InputLayer) and len(_output_shape(layer)) == 4:
            last = layer.name
    if last is None:
        raise ValueError(f"Model {model.name!r} has no layer with a 4-D (image-like) output: pass `layer=`.")
    return last


def _output_shape(layer) -> tuple:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):  # a layer called several times, or with several outputs
        return ()


def check_layer(model: keras.Model, layer: str) -> None:
    """A ValueError naming the closest layer names when ``layer`` is not a layer of ``model``."""
    import difflib

    names = [candidate.name for candidate in model.layers]
    if layer in names:
        return
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"it has {len(names)} layers, e.g. {', '.join(names[-5:])}"
    raise ValueError(f"{model.name!r} has no layer {layer!r} ({hint}).")


def feature_model(model: keras.Model, layer: str) -> keras.Model:
    """A model from ``model``'s inputs to ``layer``'s output, averaged over space if it is 4-D.

    Raises
    ------
    ValueError
        ``layer`` is not a layer of ``model``, or its output is neither 2-D nor 4-D.
    """
    check_layer(model, layer)
    output = model.get_layer(layer).output
    if len(output.shape) == 4:
        output = keras.layers.GlobalAveragePooling2D(name=f"{layer}_ranking_gap")(output)
    elif len(output.shape) != 2:
        raise ValueError(
            f"`layer` must give (batch, C) or (batch, H, W, C) outputs. Received: layer={layer!r} "
            f"with output shape {tuple(output.shape)}"
        )
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, output, name=f"{model.name}_{layer}_features")


CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
UPSAMPLING = (keras.layers.UpSampling2D, keras.layers.Conv2DTranspose)
"""Layers that enlarge a map: where a decoder begins, and :func:`stage_layers` stops."""


def stage_layers(model: keras.Model) -> list[str]:
    """The last layer of each stage of ``model``: where the paper's layer study looks, in input-to-output order.

    The package's ResNets name them (``stage1`` .. ``stage4``). For any other
    model a stage is a spatial size of the body: the layer kept is the last
    one with a 4-D output of that size, for each size at which some
    convolution runs (a padding's larger map is not a stage). What a global
    pooling computes is left out, both the head and a squeeze-and-excitation
    branch, which pools a map to 1x1 and scales the map by it (the scaled map
    is the body's again): e.g. ``conv1_relu``, ``conv2_block3_out`` ..
    ``conv5_block3_out`` of a Keras ResNet-50. The body ends at the first
    upsampling (:data:`UPSAMPLING`): an encoder-decoder's stages are its
    encoder's, and the last one is its bottleneck, the deepest map (a
    decoder's maps return to sizes the encoder had). The stages are in the
    order of the kept layers in ``model.layers``.

    Raises
    ------
    ValueError
        No convolution with a 4-D output outside a pooled branch.
    """
    names = {layer.name for layer in model.layers}
    ours = [f"stage{index}" for index in range(1, 5)]
    if names.issuperset(ours):
        return ours
    last, convolved, pooled = {}, set(), set()
    order = {layer.name: index for index, layer in enumerate(model.layers)}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, UPSAMPLING):
            break
        parents = {parent.operation.name for node in layer._inbound_nodes for parent in node.parent_nodes}
        if isinstance(layer, GLOBAL_POOLING) or (parents and parents <= pooled):
            pooled.add(layer.name)
            continue
        shape = _output_shape(layer)
        if len(shape) == 4:
            last[shape[1:3]] = layer.name
            if isinstance(layer, CONVOLUTIONS):
                convolved.add(shape[1:3])
    stages = sorted((name for size, name in last.items() if size in convolved), key=order.__getitem__)
    if not stages:
        raise ValueError(f"Model {model.name!r} has no convolution with a 4-D (image-like) output: pass the layers.")
    return stages
