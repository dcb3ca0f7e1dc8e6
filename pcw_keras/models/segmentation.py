"""DeepLabV3-style semantic segmentation on the package's ResNet backbone (the paper's attack setting).

The paper attacks position-encoding channels of DeepLabV3 (ResNet-50). This
module builds the same kind of network from :func:`pcw_keras.models.resnet`
so that :func:`pcw_keras.evaluation.rank_position_channels` and
:func:`pcw_keras.evaluation.attack` reach its body by the usual names
(``stem``, ``stage1`` .. ``stage4``), with mIoU as the task metric.

Why not keras-hub's ``DeepLabV3ImageSegmenter``: installing keras-hub here
pulls ``tensorflow-text``, which swaps ``tensorflow-cpu`` for the full
TensorFlow wheel (+0.6 GB); its backbones pad with Keras' ``same`` (not
PyTorch's symmetric padding, which is what the paper measures) and name their
stages differently; and its presets need the internet. The head below is
small enough to own.
"""
from __future__ import annotations

import keras

from pcw_keras.layers import BatchNorm
from pcw_keras.layers._checks import check_choice, check_int_range, check_positive
from pcw_keras.models.registry import register_model
from pcw_keras.models.resnet import BN_EPSILON, BN_MOMENTUM, PADDINGS, apply_padded_conv, resnet


def _conv_bn_relu(x, filters, kernel_size, name, dilation=1, padding="zero"):
    """Symmetric padding (``dilation`` pixels for a 3x3, see :func:`apply_padded_conv`) -> conv -> BatchNorm -> ReLU."""
    pad = dilation * (kernel_size - 1) // 2
    x = apply_padded_conv(x, filters, kernel_size, 1, padding, pad, f"{name}_conv", f"{name}_pad", dilation=dilation)
    x = BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def apply_aspp(x, filters, rates, dropout, padding):
    """Atrous Spatial Pyramid Pooling (Chen et al. 2017): 1x1, one dilated 3x3 per rate, image pooling;
    concatenated and projected by a 1x1 conv (output named ``aspp``)."""
    height, width = x.shape[1], x.shape[2]
    branches = [_conv_bn_relu(x, filters, 1, "aspp_1x1")]
    for rate in rates:
        branches.append(_conv_bn_relu(x, filters, 3, f"aspp_rate{rate}", dilation=rate, padding=padding))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_image_pool")(x)
    pooled = _conv_bn_relu(pooled, filters, 1, "aspp_image")
    branches.append(keras.layers.UpSampling2D((height, width), name="aspp_image_broadcast")(pooled))
    x = keras.layers.Concatenate(name="aspp_concat")(branches)
    x = _conv_bn_relu(x, filters, 1, "aspp_project")
    x = keras.layers.Dropout(dropout, name="aspp_dropout")(x)
    return keras.layers.Identity(name="aspp")(x)


def deeplabv3(
    num_classes: int,
    input_shape: tuple = (224, 224, 3),
    *,
    depth: int = 18,
    width: float = 1.0,
    padding: str = "zero",
    atrous_rates: tuple = (6, 12, 18),
    aspp_filters: int = 256,
    dropout: float = 0.5,
    name: str | None = None,
) -> keras.Model:
    """DeepLabV3 (Chen et al. 2017) on the package's ResNet: body -> ASPP -> 3x3 conv -> 1x1 classifier -> bilinear upsampling.

    The body is :func:`pcw_keras.models.resnet`'s (7x7/2 stem, no max-pool,
    stages 1-4, output stride 16: the paper's classification network), cut
    after ``stage4``. DeepLabV3 reaches output stride 16 by dilating the last
    stage of a max-pooled ResNet instead; the package's ResNet has no dilated
    stages and already has stride 16, so it is used as it is (a choice: the
    paper does not fix it). The head follows torchvision's ``DeepLabHead``:
    ASPP (with dropout after its projection), a 3x3 conv, BatchNorm, ReLU,
    a 1x1 conv to ``num_classes``; logits are resized bilinearly to the input.

    Parameters
    ----------
    num_classes : int
        Per-pixel classes (logits, no softmax).
    input_shape : tuple
        ``(height, width, channels)``; height and width must be static and at
        least 16.
    depth : {18, 34, 50}
        Backbone depth (the paper's segmentation network is ResNet-50).
    width : float
        Channel multiplier of the backbone.
    padding : str
        Padding mode of the backbone and the head (see :func:`resnet`).
    atrous_rates : tuple of int
        Dilation of the ASPP's 3x3 branches; DeepLabV3's (6, 12, 18) suit
        output stride 16 on ~513-pixel inputs; scale them down for small
        inputs (a rate larger than the stage-4 map only sees padding).
    aspp_filters : int
        Channels of every ASPP branch and of the head (DeepLabV3: 256).
    dropout : float
        Dropout after the ASPP projection (torchvision: 0.5).

    Returns
    -------
    keras.Model
        ``(batch, H, W, num_classes)`` logits; layers ``stem``,
        ``stage1`` .. ``stage4``, ``aspp``, ``head`` (the 1x1 classifier),
        ``upsample``.

    Example
    -------
    >>> model = deeplabv3(3, (64, 64, 3), width=0.125, atrous_rates=(1, 2), aspp_filters=16)
    >>> model.output.shape
    (None, 64, 64, 3)
    """
    check_int_range("num_classes", num_classes, 1)
    check_choice("padding", padding, PADDINGS)
    check_int_range("aspp_filters", aspp_filters, 1)
    check_positive("width", width)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must lie in [0, 1). Received: dropout={dropout!r}")
    if not atrous_rates or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in atrous_rates):
        raise ValueError(f"`atrous_rates` must be positive integers. Received: atrous_rates={atrous_rates!r}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or any(side is None or side < 16 for side in input_shape[:2]):
        raise ValueError(
            f"`input_shape` must be (height, width, channels) with static sides >= 16. Received: input_shape={input_shape!r}"
        )
    body = resnet(depth, num_classes, input_shape, stem="imagenet", maxpool=False, padding=padding, head="gap", width=width)
    features = body.get_layer("stage4").output
    x = apply_aspp(features, aspp_filters, tuple(atrous_rates), dropout, padding)
    x = _conv_bn_relu(x, aspp_filters, 3, "head_3x3", padding=padding)
    x = keras.layers.Conv2D(num_classes, 1, name="head")(x)
    outputs = keras.layers.Resizing(input_shape[0], input_shape[1], interpolation="bilinear", name="upsample")(x)
    return keras.Model(body.input, outputs, name=name or f"deeplabv3_resnet{depth}")


@register_model
def deeplabv3_resnet18(num_classes: int = 21, input_shape: tuple = (224, 224, 3), **kwargs) -> keras.Model:
    """DeepLabV3 on ResNet-18 (see :func:`deeplabv3`); 21 classes as PASCAL VOC by default."""
    return deeplabv3(num_classes, input_shape, depth=18, **kwargs)


@register_model
def deeplabv3_resnet50(num_classes: int = 21, input_shape: tuple = (224, 224, 3), **kwargs) -> keras.Model:
    """DeepLabV3 on ResNet-50, the paper's segmentation network (see :func:`deeplabv3`)."""
    return deeplabv3(num_classes, input_shape, depth=50, **kwargs)
