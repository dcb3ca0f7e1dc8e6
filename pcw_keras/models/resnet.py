"""Functional ResNets with PyTorch-exact padding, the paper's heads and stable layer names.

Layer names follow the torch tree so that evaluators and weight converters can
reach them by name: ``stem``, ``stage1`` .. ``stage4`` (each the output of its
last block), ``pool`` (the pooled features), ``head`` (the classifier), and
``permute`` when PermuteNet permutes a stage's input instead of the pooled vector.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras

from pcw_keras.choices import APS_BLUR_SIZES
from pcw_keras.layers import (
    BatchNorm,
    BlurPool2D,
    ChannelPermutation,
    Padding2D,
    PermutedGlobalAveragePooling2D,
    PolyphaseDownsample2D,
    PolyphaseSelect2D,
)
from pcw_keras.layers._checks import check_choice, check_int_range, check_positive
from pcw_keras.layers.padding import MODES as PADDING_MODES
from pcw_keras.layers.polyphase import NORMS as APS_NORMS

DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}
STEMS = ("imagenet", "cifar")
HEADS = ("gapnet", "gap", "permuted_gap")
PADDINGS = PADDING_MODES + ("none",)
PERMUTE_AT = ("pool", "stage1", "stage2", "stage3", "stage4")
STAGE_CHANNELS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4
BN_MOMENTUM = 0.9  # PyTorch's momentum 0.1 in Keras' convention.
BN_EPSILON = 1e-5


def scaled(channels: int, width: float) -> int:
    """Channels of a layer under the width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


def apply_padded_conv(x, filters, kernel_size, strides, padding_mode, pad, name, pad_name, dilation=1, use_bias=False):
    """A convolution named ``name`` whose input is padded by ``pad`` pixels on every side, as PyTorch's ``padding``.

    A symmetric zero padding of ``dilation * (kernel_size - 1) / 2`` before a
    stride-1 convolution is Keras' ``padding="same"``, which the backends apply
    inside the convolution, with the same outputs: GAPNet ResNet-18's float32
    training under TensorFlow went from 0.97x to 1.04x PyTorch's best on a
    2-core CPU (``docs/benchmarks.md``). Every other case (strided
    convolutions, which ``"same"`` pads asymmetrically; the other modes) pads
    explicitly with a :class:`~pcw_keras.layers.Padding2D` named ``pad_name``
    and convolves ``valid``.
    """
    same = dilation * (kernel_size - 1) // 2
    if padding_mode == "zero" and strides == 1 and kernel_size % 2 and pad == same and pad:
        return keras.layers.Conv2D(filters, kernel_size, dilation_rate=dilation, padding="same",
                                   use_bias=use_bias, name=name)(x)
    if padding_mode != "none" and pad:
        x = Padding2D(pad, mode=padding_mode, name=pad_name)(x)
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, dilation_rate=dilation, padding="valid",
                               use_bias=use_bias, name=name)(x)


def apply_conv_bn(x, filters, kernel_size, strides, padding_mode, name, relu=True, padding=None):
    """Symmetric padding (see :func:`apply_padded_conv`) -> convolution (no bias) -> BatchNorm -> optional ReLU."""
    pad = (kernel_size - 1) // 2 if padding is None else padding
    x = apply_padded_conv(x, filters, kernel_size, strides, padding_mode, pad, f"{name}_conv", f"{name}_pad")
    x = BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


@dataclass(frozen=True)
class Polyphase:
    """Adaptive polyphase sampling (Chaman and Dokmanić 2021) in place of every stride-2 subsampling.

    ``norm`` and ``blur`` are :class:`pcw_keras.layers.PolyphaseDownsample2D`'s.
    """

    norm: str = "l2"
    blur: int | None = None

    def downsample(self, x: keras.KerasTensor, name: str) -> tuple[keras.KerasTensor, keras.KerasTensor]:
        """``(x subsampled to its component of largest norm, the chosen index)``; layer ``{name}_aps``."""
        return PolyphaseDownsample2D(self.norm, self.blur, return_index=True, name=f"{name}_aps")(x)

    def select(self, x: keras.KerasTensor, index: keras.KerasTensor, name: str) -> keras.KerasTensor:
        """``x`` subsampled to the component ``index`` that a main path chose; layer ``{name}_aps``."""
        return PolyphaseSelect2D(self.blur, name=f"{name}_aps")([x, index])


def apply_downsample(x, strides, antialias, name, aps=None):
    """Where a strided op became stride 1: ``(x subsampled, the polyphase index or None)``.

    Zhang 2019's placement with ``antialias`` (BlurPool), Chaman and
    Dokmanić's with ``aps`` (a :class:`Polyphase`); ``x`` as it is otherwise.
    """
    if strides == 1 or not (antialias or aps):
        return x, None
    if aps is not None:
        return aps.downsample(x, name)
    return BlurPool2D(strides=strides, name=f"{name}_blurpool")(x), None


def _center_crop_to(x, reference, name):
    """Crops ``x`` to ``reference``'s spatial size (padding "none" shrinks the main path).

    Padded networks keep both sizes equal, also where they are unknown (``None``:
    ``padding="none"`` needs a fixed input size, checked earlier).
    """
    if None in (x.shape[1], x.shape[2], reference.shape[1], reference.shape[2]):
        return x
    crop_h = x.shape[1] - reference.shape[1]
    crop_w = x.shape[2] - reference.shape[2]
    if crop_h == 0 and crop_w == 0:
        return x
    return keras.layers.Cropping2D(((crop_h // 2, crop_h - crop_h // 2), (crop_w // 2, crop_w - crop_w // 2)), name=name)(x)


def apply_shortcut(x, filters, strides, padding_mode, antialias, name, aps=None, index=None):
    """Identity, or a subsampled 1x1 projection -> BatchNorm when the shape changes.

    A strided 1x1 convolution equals taking every ``strides``-th pixel, then a
    1x1 convolution; it is built that way (a 1x1 max-pool with the stride, then
    the convolution, same weights and names). TensorFlow's oneDNN kernel for the
    strided 1x1 backward pass corrupts memory on some shapes (e.g. 8 -> 16
    channels on a 48x48 map, TensorFlow 2.21 on CPU); this form avoids it and
    computes the same function. With ``antialias``, BlurPool does the subsampling;
    with ``aps``, :class:`~pcw_keras.layers.PolyphaseSelect2D` takes the
    polyphase component ``index`` that the block's main path chose.
    """
    if strides == 1 and x.shape[-1] == filters:
        return x
    if aps is not None and strides > 1:
        x = aps.select(x, index, name)
    elif antialias:
        x, _ = apply_downsample(x, strides, True, name)
    elif strides > 1:
        x = keras.layers.MaxPooling2D(1, strides=strides, name=f"{name}_subsample")(x)
    return apply_conv_bn(x, filters, 1, 1, padding_mode, name, relu=False, padding=0)


def _shortcut_after_main_path(strides, aps) -> bool:
    """Whether the shortcut waits for the main path's polyphase index (APS in a strided block)."""
    return aps is not None and strides > 1


def apply_basic_block(x, filters, strides, padding_mode, antialias, name, aps=None):
    """ResNet BasicBlock (two 3x3 convolutions), as torchvision's.

    With ``aps`` in a strided block the shortcut keeps the polyphase
    component that the main path's downsampling chose, per sample.
    """
    late = _shortcut_after_main_path(strides, aps)
    shortcut = None if late else apply_shortcut(x, filters, strides, padding_mode, antialias, f"{name}_downsample")
    conv_strides = 1 if (antialias or aps) else strides
    y = apply_conv_bn(x, filters, 3, conv_strides, padding_mode, f"{name}_1")
    y, index = apply_downsample(y, strides, antialias, f"{name}_1", aps)
    if late:
        shortcut = apply_shortcut(x, filters, strides, padding_mode, antialias, f"{name}_downsample", aps, index)
    y = apply_conv_bn(y, filters, 3, 1, padding_mode, f"{name}_2", relu=False)
    return _add_relu(shortcut, y, name)


def apply_bottleneck_block(x, filters, strides, padding_mode, antialias, name, aps=None):
    """ResNet Bottleneck (1x1, 3x3 with the stride, 1x1 x4), as torchvision's v1.5; ``aps`` as in the BasicBlock."""
    out = filters * BOTTLENECK_EXPANSION
    late = _shortcut_after_main_path(strides, aps)
    shortcut = None if late else apply_shortcut(x, out, strides, padding_mode, antialias, f"{name}_downsample")
    y = apply_conv_bn(x, filters, 1, 1, padding_mode, f"{name}_1", padding=0)
    y = apply_conv_bn(y, filters, 3, 1 if (antialias or aps) else strides, padding_mode, f"{name}_2")
    y, index = apply_downsample(y, strides, antialias, f"{name}_2", aps)
    if late:
        shortcut = apply_shortcut(x, out, strides, padding_mode, antialias, f"{name}_downsample", aps, index)
    y = apply_conv_bn(y, out, 1, 1, padding_mode, f"{name}_3", relu=False, padding=0)
    return _add_relu(shortcut, y, name)


def _add_relu(shortcut, y, name):
    shortcut = _center_crop_to(shortcut, y, f"{name}_crop")
    x = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def apply_stem(x, stem, maxpool, width, padding_mode, antialias, aps=None):
    """ImageNet stem (7x7/2, optional 3x3/2 max-pool) or CIFAR stem (3x3/1); output named ``stem``.

    With ``aps`` the 7x7 convolution runs at stride 1 followed by APS, and the
    max-pool at stride 1 (3x3, padded by 1 in the network's padding mode)
    followed by APS: the same sizes as the strided forms on even maps.
    """
    channels = scaled(STAGE_CHANNELS[0], width)
    if stem == "imagenet":
        x = apply_conv_bn(x, channels, 7, 1 if aps else 2, padding_mode, "stem")
        x, _ = apply_downsample(x, 2, False, "stem", aps)
    else:
        x = apply_conv_bn(x, channels, 3, 1, padding_mode, "stem")
    if maxpool:
        if aps is not None:
            x = Padding2D(1, mode=padding_mode, name="stem_maxpool_pad")(x)
            x = keras.layers.MaxPooling2D(3, strides=1, name="stem_maxpool")(x)
            x, _ = aps.downsample(x, "stem_maxpool")
        elif antialias:  # Zhang 2019: max-pool 2x2 stride 1, then BlurPool.
            x = keras.layers.MaxPooling2D(2, strides=1, name="stem_maxpool")(x)
            x = BlurPool2D(strides=2, name="stem_blurpool")(x)
        else:  # After a ReLU, zero padding is PyTorch's -inf padding for a max.
            if padding_mode != "none":
                x = keras.layers.ZeroPadding2D(1, name="stem_maxpool_pad")(x)
            x = keras.layers.MaxPooling2D(3, strides=2, name="stem_maxpool")(x)
    return keras.layers.Identity(name="stem")(x)


def _unpadded_sizes(size, stem, maxpool, head, block_kind, blocks, antialias):
    """Spatial size after the stem, each stage and the head when nothing is padded."""
    def conv(n, k, s):
        return (n - k) // s + 1

    def strided(n, k, s):  # Zhang's placement: valid conv stride 1, then BlurPool (reflect-padded).
        return (conv(n, k, 1) - 1) // s + 1 if antialias and s > 1 else conv(n, k, s)

    n = conv(size, 7, 2) if stem == "imagenet" else conv(size, 3, 1)
    if maxpool:
        n = (conv(n, 2, 1) - 1) // 2 + 1 if antialias else conv(n, 3, 2)
    sizes = {"stem": n}
    for index, count in enumerate(blocks, start=1):
        for block in range(count):
            s = 2 if (block == 0 and index > 1) else 1
            n = conv(strided(n, 3, s), 3, 1) if block_kind == "basic" else strided(n, 3, s)
        sizes[f"stage{index}"] = n
    if head == "gapnet":
        sizes["head"] = conv(n, 3, 1)
    return sizes


def _check_unpadded_input(input_shape, stem, maxpool, head, block_kind, blocks, antialias):
    """With padding "none", fails early and names the layer where the map vanishes."""
    if None in input_shape[:2]:
        raise ValueError(f'`padding="none"` needs a fixed input size. Received: input_shape={input_shape}')
    for size in input_shape[:2]:
        for layer, n in _unpadded_sizes(size, stem, maxpool, head, block_kind, blocks, antialias).items():
            if n < 1:
                raise ValueError(
                    f"input_shape={input_shape} is too small for padding='none': the feature map "
                    f"vanishes at `{layer}`. Use a larger input or a padding mode."
                )


def _polyphase(aps, norm, blur, antialias, padding) -> Polyphase | None:
    """The checked APS options as a :class:`Polyphase` (``None`` without ``aps``)."""
    if not isinstance(aps, bool):
        raise TypeError(f"`aps` must be a bool. Received: aps={aps!r}")
    check_choice("aps_norm", norm, APS_NORMS)
    if blur is not None:
        check_int_range("aps_blur", blur, *APS_BLUR_SIZES)
    if not aps:
        if blur is not None or norm != "l2":
            raise ValueError(f"`aps_norm` and `aps_blur` need `aps=True`. Received: aps_norm={norm!r}, aps_blur={blur!r}")
        return None
    if antialias:
        raise ValueError("`aps` and `antialias` are two ways to downsample; choose one (APS after a binomial "
                         "blur is `aps_blur`). Received: aps=True, antialias=True")
    if padding == "none":
        raise ValueError('`aps` needs a padding mode (unpadded maps reach odd sizes, and nothing is shift-'
                         'invariant at the borders). Received: aps=True, padding="none"')
    return Polyphase(norm, blur)


def resnet(
    depth: int = 18,
    num_classes: int = 10,
    input_shape: tuple = (96, 96, 3),
    *,
    stem: str = "imagenet",
    maxpool: bool = False,
    padding: str = "zero",
    head: str = "gap",
    permute_at: str = "pool",
    permutation_mode: str = "batch",
    permutation_seed: int | None = None,
    antialias: bool = False,
    aps: bool = False,
    aps_norm: str = "l2",
    aps_blur: int | None = None,
    width: float = 1.0,
    name: str | None = None,
) -> keras.Model:
    """Builds a functional ResNet (18, 34 or 50) for the paper's experiments.

    Parameters
    ----------
    depth : {18, 34, 50}
    num_classes : int
        Logits produced by the head (no softmax).
    input_shape : tuple
        ``(height, width, channels)``; ``None`` sizes are allowed except with
        ``padding="none"`` or non-zero padding modes.
    stem : {"imagenet", "cifar"}
        ``"imagenet"``: 7x7 stride-2 convolution (the paper's, total stride 16
        without max-pool); ``"cifar"``: 3x3 stride 1.
    maxpool : bool
        3x3 stride-2 max-pool after the ImageNet stem (off in the paper).
    padding : {"zero", "reflect", "replicate", "circular", "none"}
        Padding of every convolution, symmetric as PyTorch's ``padding_mode``
        (zero padding at stride 1 as Keras' ``"same"``, which is symmetric
        there; elsewhere an explicit :class:`~pcw_keras.layers.Padding2D`);
        ``"none"`` drops it (``valid`` everywhere; residuals are centre-cropped
        to the main path).
    head : {"gapnet", "gap", "permuted_gap"}
        ``"gapnet"``: 3x3 conv (bias) to ``num_classes`` maps, then GAP (the
        paper's GAPNet, no dense layer). ``"gap"``: GAP, then dense.
        ``"permuted_gap"``: GAP, random channel permutation, dense (PermuteNet).
    permute_at : {"pool", "stage1", "stage2", "stage3", "stage4"}
        With ``head="permuted_gap"``, where the permutation sits: the pooled
        vector (the paper's experiments) or the input of a stage instead.
    permutation_mode : {"batch", "sample"}
        See :class:`pcw_keras.layers.ChannelPermutation`.
    permutation_seed : int, optional
        Seed of the permutation's random stream.
    antialias : bool
        BlurPool (filter 4) in the strided convolutions, shortcuts and max-pool,
        Zhang 2019's placement; the stem convolution stays strided as in
        Zhang's default (``pool_only=True``).
    aps : bool
        Adaptive polyphase sampling (Chaman and Dokmanić 2021) wherever the
        network downsamples: each strided convolution (the stem's too) runs at
        stride 1 followed by :class:`~pcw_keras.layers.PolyphaseDownsample2D`,
        the max-pool at stride 1 followed by it, and each projection
        shortcut keeps, per sample, the component its block's main path chose
        (:class:`~pcw_keras.layers.PolyphaseSelect2D`). With
        ``padding="circular"`` the network is exactly invariant to circular
        shifts of its input (``tests/test_aps_resnet.py``). Not with
        ``antialias`` (choose one; ``aps_blur`` is APS with a blur filter) nor
        ``padding="none"``; every downsampled map must have an even size.
    aps_norm : {"l2", "linf"}
        With ``aps``: the norm that picks the component.
    aps_blur : int, optional
        With ``aps``: side (2 to 7) of the circularly padded binomial filter
        applied before each selection; ``None``: no blur.
    width : float
        Channel multiplier (> 0): 1.0 is 64-128-256-512.

    Returns
    -------
    keras.Model
        Layers named ``stem``, ``stage1``..``stage4``, ``pool``, ``head``.

    Example
    -------
    >>> model = resnet(18, num_classes=9, head="permuted_gap", width=0.25)
    >>> model.get_layer("pool").output.shape
    (None, 128)
    """
    if depth not in DEPTHS:
        raise ValueError(f"`depth` must be one of {tuple(DEPTHS)}. Received: depth={depth!r}")
    check_int_range("num_classes", num_classes, 1)
    check_choice("stem", stem, STEMS)
    check_choice("padding", padding, PADDINGS)
    check_choice("head", head, HEADS)
    check_choice("permute_at", permute_at, PERMUTE_AT)
    check_positive("width", width)
    polyphase = _polyphase(aps, aps_norm, aps_blur, antialias, padding)
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"`input_shape` must be (height, width, channels). Received: input_shape={input_shape!r}")
    block_kind, blocks = DEPTHS[depth]
    maxpool = maxpool and stem == "imagenet"
    if padding == "none":
        _check_unpadded_input(tuple(input_shape), stem, maxpool, head, block_kind, blocks, antialias)
    apply_block = apply_basic_block if block_kind == "basic" else apply_bottleneck_block
    permute_stage = head == "permuted_gap" and permute_at != "pool"

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = apply_stem(inputs, stem, maxpool, width, padding, antialias, polyphase)
    for index, (channels, count) in enumerate(zip(STAGE_CHANNELS, blocks), start=1):
        stage = f"stage{index}"
        if permute_stage and permute_at == stage:
            x = ChannelPermutation(mode=permutation_mode, seed=permutation_seed, name="permute")(x)
        for block in range(1, count + 1):
            strides = 2 if (block == 1 and index > 1) else 1
            x = apply_block(x, scaled(channels, width), strides, padding, antialias, f"{stage}_block{block}", polyphase)
        x = keras.layers.Identity(name=stage)(x)

    if head == "gapnet":
        x = apply_padded_conv(x, num_classes, 3, 1, padding, 1, "head", "head_pad", use_bias=True)
        outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        if head == "permuted_gap" and not permute_stage:
            x = PermutedGlobalAveragePooling2D(mode=permutation_mode, seed=permutation_seed, name="pool")(x)
        else:
            x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        outputs = keras.layers.Dense(num_classes, name="head")(x)
    default_name = f"resnet{depth}_{head}"
    return keras.Model(inputs, outputs, name=name or default_name)
