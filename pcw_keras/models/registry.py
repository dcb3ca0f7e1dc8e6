"""Named model variants (a timm-style registry) and the paper's two networks."""
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


@register_model
def gapnet_resnet18(num_classes: int, input_shape: tuple = (96, 96, 3), **kwargs) -> keras.Model:
    """The paper's GAPNet: ResNet-18, 7x7/2 stem, no max-pool, 3x3 conv to classes, GAP.

    Example
    -------
    >>> gapnet_resnet18(9).output.shape
    (None, 9)
    """
    kwargs = {"stem": "imagenet", "maxpool": False, "head": "gapnet", **kwargs}
    return resnet(18, num_classes, input_shape, name=kwargs.pop("name", "gapnet_resnet18"), **kwargs)


@register_model
def permutenet_resnet18(num_classes: int, input_shape: tuple = (96, 96, 3), **kwargs) -> keras.Model:
    """The paper's PermuteNet: ResNet-18 body, GAP, random channel permutation, dense.

    Example
    -------
    >>> permutenet_resnet18(9).get_layer("pool").output.shape
    (None, 512)
    """
    kwargs = {"stem": "imagenet", "maxpool": False, "head": "permuted_gap", **kwargs}
    return resnet(18, num_classes, input_shape, name=kwargs.pop("name", "permutenet_resnet18"), **kwargs)


def _variant(name: str, depth: int, **defaults) -> None:
    def build(num_classes: int = 10, input_shape: tuple = (96, 96, 3), **kwargs) -> keras.Model:
        return resnet(depth, num_classes, input_shape, name=name, **{**defaults, **kwargs})

    build.__name__ = name
    build.__doc__ = f"ResNet-{depth} with defaults {defaults} (overridable by keyword)."
    register_model(build)


for _depth in (18, 34, 50):
    _variant(f"resnet{_depth}", _depth, head="gap")
    _variant(f"resnet{_depth}_gapnet", _depth, head="gapnet")
    _variant(f"resnet{_depth}_permutenet", _depth, head="permuted_gap")
    _variant(f"resnet{_depth}_blur", _depth, head="gap", antialias=True)
    _variant(f"resnet{_depth}_cifar", _depth, head="gap", stem="cifar")
    _variant(f"resnet{_depth}_cifar_blur", _depth, head="gap", stem="cifar", antialias=True)
