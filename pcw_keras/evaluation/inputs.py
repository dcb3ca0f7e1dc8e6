"""Model inputs for the analyses: uint8 patches, canvases of them, and batches of normalised images."""
from __future__ import annotations

import keras
import numpy as np

from pcw_keras.data.canvas import place_on_canvas_np
from pcw_keras.normalization import CIFAR, Normalization, normalize


def uint8_patches(dataset) -> np.ndarray:
    """The uint8 ``(N, h, w, 3)`` array of an ImageSet or array, or ``ValueError``."""
    images = getattr(dataset, "images", dataset)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            "Canvas inputs must be an ImageSet or a uint8 array (N, h, w, 3). "
            f"Received: {type(dataset).__name__} with dtype={getattr(images, 'dtype', None)}"
        )
    if len(images) == 0:
        raise ValueError("`dataset` holds no images.")
    return images


def infer_grid(model: keras.Model, patch_width: int, grid: int | None) -> int:
    """``grid`` if given, else the model's input width over the patch width (must divide)."""
    width = model.inputs[0].shape[2]
    if grid is None:
        if width is None or width % patch_width:
            raise ValueError(
                f"Cannot infer `grid` from input width {width} and patch width {patch_width}: pass grid=."
            )
        grid = width // patch_width
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"`grid` must be a positive integer. Received: grid={grid!r}")
    if width is not None and width != grid * patch_width:
        raise ValueError(
            f"A {grid}x{grid} canvas of {patch_width}-pixel patches is {grid * patch_width} wide; the model takes "
            f"{width}. Received: grid={grid}"
        )
    return grid


def canvases(patches: np.ndarray, cells, grid: int, normalization: Normalization = CIFAR) -> np.ndarray:
    """Normalised float32 canvases with each uint8 patch at its cell (as the canvas pipelines build them).

    The patches are normalised with ``normalization`` (CIFAR's by default);
    the empty cells are zeros, i.e. the mean colour.
    """
    cells = np.broadcast_to(np.asarray(cells, "int32"), (len(patches),))
    return place_on_canvas_np(normalize(patches, normalization.mean, normalization.std), cells, grid)


def input_batches(dataset, batch_size: int, grid: int | None = None, seed: int = 0, normalization: Normalization = CIFAR):
    """Float batches of model inputs from an array, a tf.data dataset or uint8 images (see ``mirror``)."""
    images = getattr(dataset, "images", dataset)
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ValueError(f"Inputs must be images (N, H, W, C). Received: shape={images.shape}")
        if images.dtype == np.uint8:
            rng = np.random.default_rng(seed)
            for start in range(0, len(images), batch_size):
                chunk = images[start:start + batch_size]
                if grid is None:
                    yield normalize(chunk, normalization.mean, normalization.std)
                else:
                    yield canvases(chunk, rng.integers(0, grid * grid, len(chunk)), grid, normalization)
        else:
            for start in range(0, len(images), batch_size):
                yield np.asarray(images[start:start + batch_size], "float32")
        return
    try:
        iterator = iter(dataset.as_numpy_iterator()) if hasattr(dataset, "as_numpy_iterator") else iter(dataset)
    except TypeError:
        raise ValueError(
            "`dataset` must be an ImageSet, an array or an iterable of batches. "
            f"Received: {type(dataset).__name__}"
        ) from None
    for batch in iterator:
        batch = batch[0] if isinstance(batch, (tuple, list)) else batch
        yield np.asarray(batch, "float32")
