"""Data for pcw_keras: image sources and the canvas tasks' pipelines."""
from pcw_keras.data.canvas import (
    CIFAR_MEAN,
    CIFAR_STD,
    CanvasBatches,
    CanvasPlacement,
    canvas_dataset,
    evaluation_passes,
    place_on_canvas,
    placement_dataset,
)
from pcw_keras.data.sources import ImageSet, SourceUnavailable, load_split, split_validation

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "CanvasBatches",
    "CanvasPlacement",
    "ImageSet",
    "SourceUnavailable",
    "canvas_dataset",
    "evaluation_passes",
    "load_split",
    "place_on_canvas",
    "placement_dataset",
    "split_validation",
]
