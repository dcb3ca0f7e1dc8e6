"""The paper's canvas tasks: a CIFAR image pasted into one cell of a zero canvas.

An image is normalised with the CIFAR mean and std, flipped at random in
training, and pasted into one cell, drawn uniformly per sample, of a canvas of
``grid x grid`` cells that is zero elsewhere (the mean colour after
normalisation). Cell ``k`` is row ``k // grid``, column ``k % grid``. The
*location* task's label is ``k``; the *image* task's label is the class.

One implementation serves every Keras backend (NumPy on the host, no
TensorFlow), in two forms that hold the same draws for the same seed:

- device: :func:`placement_dataset` yields uint8 patches and cell indices
  (``grid**2`` times fewer bytes, a quarter of the width), and a model starts
  with :class:`~pcw_keras.layers.CanvasPlacement`, which normalises and
  places them with ``keras.ops`` on the accelerator (what ``pcw train``
  does);
- host: :func:`canvas_dataset` yields the float32 canvases themselves, for
  any model that takes canvases (evaluation, export checks, your own code).

Both are :class:`keras.utils.PyDataset` objects whose draws are keyed by
``(seed, epoch, step)`` (:mod:`pcw_keras.data.batching`).
"""
from __future__ import annotations

import numpy as np

from pcw_keras.choices import CANVAS_TASKS
from pcw_keras.data.batching import ImageBatches, mirror, random_flips
from pcw_keras.data.imageset import ImageSet
from pcw_keras.layers.canvas_placement import CanvasPlacement, place_on_canvas  # noqa: F401  (re-exported)
from pcw_keras.normalization import CIFAR_MEAN, CIFAR_STD, normalize  # noqa: F401  (re-exported)

FEEDS = ("canvas", "patches")


class CanvasBatches(ImageBatches):
    """Batches of the canvas task, as canvases (``feed="canvas"``) or as patches and cells (``feed="patches"``).

    Per batch: the images in this epoch's order, one cell per sample drawn
    uniformly from ``grid * grid``, a horizontal flip with probability 1/2
    (training with ``flip`` only), and the label (the cell for the location
    task, the class for the image task). ``feed="canvas"`` then normalises
    and places them on the host (NumPy); ``feed="patches"`` leaves that to
    :class:`~pcw_keras.layers.CanvasPlacement` on the device. Build them with
    :func:`canvas_dataset` or :func:`placement_dataset`.
    """

    def __init__(self, imageset: ImageSet, *, grid: int, task: str, batch_size: int, training: bool, seed: int,
                 flip: bool = True, drop_remainder: bool | None = None, feed: str = "canvas", prefetch: int = 2):
        if task not in CANVAS_TASKS:
            raise ValueError(f"`task` must be one of {CANVAS_TASKS}. Received: task={task!r}")
        if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
            raise ValueError(f"`grid` must be a positive integer. Received: grid={grid!r}")
        if feed not in FEEDS:
            raise ValueError(f"`feed` must be one of {FEEDS}. Received: feed={feed!r}")
        super().__init__(imageset, batch_size=batch_size, training=training, seed=seed, drop_remainder=drop_remainder,
                         prefetch=prefetch)
        self.grid, self.task, self.feed = int(grid), task, feed
        self.flip = self.training and flip

    def draw(self, indices: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(uint8 patches, int32 cells, int32 labels)`` of one batch."""
        size = len(indices)
        cells = rng.integers(0, self.grid * self.grid, size=size, dtype=np.int32)
        patches = self.imageset.images[indices]
        if self.flip:
            patches = mirror(patches, random_flips(rng, size))
        labels = cells if self.task == "location" else self.imageset.labels[indices].astype(np.int32)
        return patches, cells, labels

    def make_batch(self, indices, rng):
        patches, cells, labels = self.draw(indices, rng)
        if self.feed == "patches":
            return (patches, cells), labels
        return place_on_canvas_np(normalize(patches), cells, self.grid), labels


def placement_dataset(
    imageset: ImageSet,
    *,
    grid: int,
    task: str,
    batch_size: int,
    training: bool,
    seed: int,
    flip: bool = True,
    drop_remainder: bool | None = None,
    prefetch: int = 2,
) -> CanvasBatches:
    """Batches of ``((uint8 patches, int32 cells), int32 labels)`` for :class:`CanvasPlacement`.

    Same order, cells, flips and labels as :func:`canvas_dataset` with the
    same arguments; see there.
    """
    return CanvasBatches(imageset, grid=grid, task=task, batch_size=batch_size, training=training, seed=seed,
                         flip=flip, drop_remainder=drop_remainder, feed="patches", prefetch=prefetch)


def canvas_dataset(
    imageset: ImageSet,
    *,
    grid: int,
    task: str,
    batch_size: int,
    training: bool,
    seed: int,
    flip: bool = True,
    drop_remainder: bool | None = None,
    prefetch: int = 2,
) -> CanvasBatches:
    """Batches of ``(float32 canvases (B, 32*grid, 32*grid, 3), int32 labels (B,))``.

    Per batch, on the host in NumPy: gather the uint8 images, normalise with
    :data:`CIFAR_MEAN`/:data:`CIFAR_STD` (bit-identical to
    :class:`CanvasPlacement`), flip horizontally with probability 1/2
    (training with ``flip`` only), and paste each at a uniform random cell.
    Cells and flips are drawn from ``(seed, epoch, step)``: training draws
    anew every epoch, evaluation draws the same placements at every pass.

    Parameters
    ----------
    imageset : ImageSet
        The images; held in memory as uint8.
    grid : int
        Cells per side (3 gives 96x96 canvases, 7 gives 224x224).
    task : {"location", "image"}
        Label by cell index or by class.
    batch_size : int
        Samples per batch.
    training : bool
        Shuffle (anew every epoch), flip, and drop the last partial batch by
        default.
    seed : int
        Seed of the order, cells and flips.
    flip : bool
        Random horizontal flip in training.
    drop_remainder : bool, optional
        Defaults to ``training``: full batches only, so a compiled step
        sees one shape.
    prefetch : int
        Batches drawn ahead in a background thread while the batches are
        read in order (0: none); see :class:`~pcw_keras.data.batching.ImageBatches`.

    Returns
    -------
    CanvasBatches
        A :class:`keras.utils.PyDataset`: pass it to ``model.fit`` under any
        backend, or iterate over it.

    Examples
    --------
    >>> data = load_split("cifar10-mini", "test", limit=100)  # doctest: +SKIP
    >>> ds = canvas_dataset(data, grid=3, task="location", batch_size=48,
    ...                     training=True, seed=0)  # doctest: +SKIP
    """
    return CanvasBatches(imageset, grid=grid, task=task, batch_size=batch_size, training=training, seed=seed,
                         flip=flip, drop_remainder=drop_remainder, feed="canvas", prefetch=prefetch)


def place_on_canvas_np(patches: np.ndarray, cells: np.ndarray, grid: int) -> np.ndarray:
    """:func:`place_on_canvas` in NumPy: each patch at its cell of a zero canvas, one write per patch."""
    size, h, w, c = patches.shape
    canvas = np.zeros((size, grid, h, grid, w * c), patches.dtype)
    cells = np.asarray(cells)
    canvas[np.arange(size), cells // grid, :, cells % grid] = patches.reshape(size, h, w * c)
    return canvas.reshape(size, grid * h, grid * w, c)


def evaluation_passes(
    imageset: ImageSet,
    *,
    grid: int,
    task: str,
    batch_size: int,
    passes: int | None = None,
    seed: int = 0,
) -> list[CanvasBatches]:
    """One evaluation dataset per pass, each with a fresh random placement.

    ``passes`` defaults to ``grid * grid`` (the paper's protocol: report the
    mean accuracy over the passes). No shuffle, no flip, no dropped samples.
    """
    return [
        canvas_dataset(
            imageset, grid=grid, task=task, batch_size=batch_size, training=False,
            seed=pass_seed, flip=False,
        )
        for pass_seed in pass_seeds(grid, passes, seed)
    ]


def pass_seeds(grid: int, passes: int | None, seed: int) -> list[int]:
    """The seeds of the evaluation passes: ``passes`` (default ``grid * grid``) drawn from ``seed``."""
    passes = grid * grid if passes is None else passes
    if not isinstance(passes, int) or passes < 1:
        raise ValueError(f"`passes` must be a positive integer or None. Received: passes={passes!r}")
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(passes, np.uint32)]
