"""Keras 3 layers of pcw_keras (``keras.ops`` only: TensorFlow, JAX and PyTorch backends)."""
from pcw_keras.layers.batch_norm import BatchNorm
from pcw_keras.layers.blurpool import BlurPool2D, binomial_filter
from pcw_keras.layers.canvas_placement import CanvasPlacement
from pcw_keras.layers.channel_mask import ChannelMask
from pcw_keras.layers.padding import Padding2D, pad2d
from pcw_keras.layers.permutation import ChannelPermutation, PermutedGlobalAveragePooling2D
from pcw_keras.layers.polyphase import PolyphaseDownsample2D, PolyphaseSelect2D
from pcw_keras.layers.shift import AugShift

__all__ = [
    "AugShift",
    "BatchNorm",
    "BlurPool2D",
    "CanvasPlacement",
    "ChannelMask",
    "ChannelPermutation",
    "Padding2D",
    "PermutedGlobalAveragePooling2D",
    "PolyphaseDownsample2D",
    "PolyphaseSelect2D",
    "binomial_filter",
    "pad2d",
]
