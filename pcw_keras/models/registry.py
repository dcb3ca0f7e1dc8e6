"""Named model variants (a timm-style registry): the paper's two networks and the ResNet family.

Each name is one function, declared with :func:`register_model` (grep
``def <name>``). The family's names are ``resnet{18,34,50}`` with a suffix:
``_gapnet`` (3x3 conv to classes, GAP), ``_permutenet`` (GAP, channel
permutation, dense), ``_blur`` (BlurPool downsampling), ``_cifar`` (3x3 stem),
``_cifar_blur``, ``_cifar_aps`` (adaptive polyphase sampling) and
``_cifar_aps_blur``; no suffix is GAP and dense. The paper's networks are
:func:`gapnet_resnet18` and :func:`permutenet_resnet18`; ``resnet18_gapnet``
and ``resnet18_permutenet`` are aliases of them, on purpose (:data:`ALIASES`):
the same function builds the same model under either name, so recipes and
code that use either keep working.
"""
from __future__ import annotations

from collections.abc import Callable

import keras

from pcw_keras.models.resnet import resnet

_REGISTRY: dict[str, Callable[..., keras.Model]] = {}


def register_model(fn: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
    """Registers ``fn`` under its own name for :func:`create_model`."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> keras.Model:
    """Builds a registered model; ``None`` keyword values keep the model's defaults.

    Example
    -------
    >>> model = create_model("resnet18_permutenet", num_classes=9, width=0.125)
    """
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}. Known models: {', '.join(list_models())}")
    return _REGISTRY[name](**{key: value for key, value in kwargs.items() if value is not None})


PAPER_INPUT = (96, 96, 3)
"""The paper's canvas input (a 3x3 grid of 32-pixel cells): every registered ResNet's default input shape."""


def _resnet(depth: int, name: str, num_classes: int, input_shape: tuple, kwargs: dict, **defaults) -> keras.Model:
    """:func:`resnet` with a variant's defaults, which keyword arguments override (``name`` too)."""
    options = {**defaults, **kwargs}
    return resnet(depth, num_classes, input_shape, name=options.pop("name", name), **options)


@register_model
def gapnet_resnet18(num_classes: int, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """The paper's GAPNet: ResNet-18, 7x7/2 stem, no max-pool, 3x3 conv to classes, GAP.

    Example
    -------
    >>> gapnet_resnet18(9).output.shape
    (None, 9)
    """
    return _resnet(18, "gapnet_resnet18", num_classes, input_shape, kwargs, stem="imagenet", maxpool=False, head="gapnet")


@register_model
def permutenet_resnet18(num_classes: int, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """The paper's PermuteNet: ResNet-18 body, GAP, random channel permutation, dense.

    Example
    -------
    >>> permutenet_resnet18(9).get_layer("pool").output.shape
    (None, 512)
    """
    return _resnet(18, "permutenet_resnet18", num_classes, input_shape, kwargs, stem="imagenet", maxpool=False,
                   head="permuted_gap")


@register_model
def resnet18_gapnet(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """Alias of :func:`gapnet_resnet18` (its name in the ``resnet{depth}_gapnet`` family): the same model."""
    return gapnet_resnet18(num_classes, input_shape, **kwargs)


@register_model
def resnet18_permutenet(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """Alias of :func:`permutenet_resnet18` (its name in the ``resnet{depth}_permutenet`` family): the same model."""
    return permutenet_resnet18(num_classes, input_shape, **kwargs)


ALIASES = {"resnet18_gapnet": "gapnet_resnet18", "resnet18_permutenet": "permutenet_resnet18"}
"""Registered names that build the same model as another (alias: canonical name)."""


@register_model
def resnet18(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-18: GAP and dense."""
    return _resnet(18, "resnet18", num_classes, input_shape, kwargs, head="gap")


@register_model
def resnet18_blur(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-18: BlurPool downsampling (Zhang 2019), GAP and dense."""
    return _resnet(18, "resnet18_blur", num_classes, input_shape, kwargs, head="gap", antialias=True)


@register_model
def resnet18_cifar(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-18: 3x3 stride-1 CIFAR stem, GAP and dense."""
    return _resnet(18, "resnet18_cifar", num_classes, input_shape, kwargs, head="gap", stem="cifar")


@register_model
def resnet18_cifar_blur(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-18: 3x3 CIFAR stem, BlurPool downsampling, GAP and dense."""
    return _resnet(18, "resnet18_cifar_blur", num_classes, input_shape, kwargs, head="gap", stem="cifar", antialias=True)


@register_model
def resnet18_cifar_aps(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-18: 3x3 CIFAR stem, adaptive polyphase sampling (Chaman and Dokmanić 2021), GAP and dense.

    Exactly invariant to circular shifts with ``padding="circular"``.
    """
    return _resnet(18, "resnet18_cifar_aps", num_classes, input_shape, kwargs, head="gap", stem="cifar", aps=True)


APS_BLUR = 3
"""The binomial filter of the ``_aps_blur`` variants: 3x3, centred (an odd side adds no half-pixel offset)."""


@register_model
def resnet18_cifar_aps_blur(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-18: 3x3 CIFAR stem, APS after a 3x3 binomial blur (:data:`APS_BLUR`), GAP and dense."""
    return _resnet(18, "resnet18_cifar_aps_blur", num_classes, input_shape, kwargs, head="gap", stem="cifar",
                   aps=True, aps_blur=APS_BLUR)


@register_model
def resnet34(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-34: GAP and dense."""
    return _resnet(34, "resnet34", num_classes, input_shape, kwargs, head="gap")


@register_model
def resnet34_blur(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-34: BlurPool downsampling (Zhang 2019), GAP and dense."""
    return _resnet(34, "resnet34_blur", num_classes, input_shape, kwargs, head="gap", antialias=True)


@register_model
def resnet34_cifar(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-34: 3x3 stride-1 CIFAR stem, GAP and dense."""
    return _resnet(34, "resnet34_cifar", num_classes, input_shape, kwargs, head="gap", stem="cifar")


@register_model
def resnet34_cifar_blur(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-34: 3x3 CIFAR stem, BlurPool downsampling, GAP and dense."""
    return _resnet(34, "resnet34_cifar_blur", num_classes, input_shape, kwargs, head="gap", stem="cifar", antialias=True)


@register_model
def resnet34_gapnet(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-34: GAPNet's head: 3x3 conv to classes, GAP."""
    return _resnet(34, "resnet34_gapnet", num_classes, input_shape, kwargs, head="gapnet")


@register_model
def resnet34_permutenet(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-34: PermuteNet's head: GAP, channel permutation, dense."""
    return _resnet(34, "resnet34_permutenet", num_classes, input_shape, kwargs, head="permuted_gap")


@register_model
def resnet50(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-50: GAP and dense."""
    return _resnet(50, "resnet50", num_classes, input_shape, kwargs, head="gap")


@register_model
def resnet50_blur(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-50: BlurPool downsampling (Zhang 2019), GAP and dense."""
    return _resnet(50, "resnet50_blur", num_classes, input_shape, kwargs, head="gap", antialias=True)


@register_model
def resnet50_cifar(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-50: 3x3 stride-1 CIFAR stem, GAP and dense."""
    return _resnet(50, "resnet50_cifar", num_classes, input_shape, kwargs, head="gap", stem="cifar")


@register_model
def resnet50_cifar_blur(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-50: 3x3 CIFAR stem, BlurPool downsampling, GAP and dense."""
    return _resnet(50, "resnet50_cifar_blur", num_classes, input_shape, kwargs, head="gap", stem="cifar", antialias=True)


@register_model
def resnet50_gapnet(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-50: GAPNet's head: 3x3 conv to classes, GAP."""
    return _resnet(50, "resnet50_gapnet", num_classes, input_shape, kwargs, head="gapnet")


@register_model
def resnet50_permutenet(num_classes: int = 10, input_shape: tuple = PAPER_INPUT, **kwargs) -> keras.Model:
    """ResNet-50: PermuteNet's head: GAP, channel permutation, dense."""
    return _resnet(50, "resnet50_permutenet", num_classes, input_shape, kwargs, head="permuted_gap")
