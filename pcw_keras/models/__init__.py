"""Functional ResNets for the paper's experiments (pure Keras 3)."""
from pcw_keras.models.registry import (
    create_model,
    gapnet_resnet18,
    list_models,
    permutenet_resnet18,
    register_model,
)
from pcw_keras.models.flops import count_flops
from pcw_keras.models.resnet import resnet
from pcw_keras.models.segmentation import deeplabv3
from pcw_keras.models.wrappers import AugShiftModel, PlacementModel, unwrap

__all__ = [
    "AugShiftModel",
    "PlacementModel",
    "count_flops",
    "create_model",
    "gapnet_resnet18",
    "list_models",
    "permutenet_resnet18",
    "register_model",
    "resnet",
    "unwrap",
]
