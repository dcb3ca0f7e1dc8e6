"""The paper's canvas tasks: a CIFAR image pasted into one cell of a zero canvas.

An image is normalised with the CIFAR mean and std, flipped at random in
training, and pasted into one cell, drawn uniformly per sample, of a canvas of
``grid x grid`` cells that is zero elsewhere (the mean colour after
normalisation). Cell ``k`` is row ``k // grid``, column ``k % grid``. The
*location* task's label is ``k``; the *image* task's label is the class.

Two paths build the same canvases from the same seed:

- host: :func:`canvas_dataset` yields float32 canvases, built in ``tf.data``
  one batch at a time (a gather of uint8 images, then one XLA-fused map);
- device: :func:`placement_dataset` yields uint8 patches and cell indices
  (``grid**2`` times fewer bytes, a quarter of the width), and a model starts
  with :class:`~pcw_keras.layers.CanvasPlacement`, which normalises and
  places them with ``keras.ops`` on the accelerator (that layer and the
  ``keras.ops`` functions live in :mod:`pcw_keras.layers.canvas_placement`,
  importable without TensorFlow; they are re-exported here).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from pcw_keras.data.batching import index_batches
from pcw_keras.data.imageset import ImageSet
from pcw_keras.layers.canvas_placement import (  # noqa: F401  (re-exported)
    CIFAR_MEAN,
    CIFAR_STD,
    CanvasPlacement,
    normalization_constants,
    normalize,
    place_on_canvas,
)

TASKS = ("location", "image")
FEEDS = ("canvas", "patches")


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
) -> tf.data.Dataset:
    """Batches of ``((uint8 patches, int32 cells), int32 labels)`` for :class:`CanvasPlacement`.

    Same order, cells, flips and labels as :func:`canvas_dataset` with the
    same arguments; see there.
    """
    return _batches(imageset, grid, task, batch_size, training, seed, flip, drop_remainder,
                    finish=lambda patches, cells, labels: ((patches, cells), labels))


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
) -> tf.data.Dataset:
    """Batches of ``(float32 canvases (B, 32*grid, 32*grid, 3), int32 labels (B,))``.

    Per batch, inside ``tf.data``: gather the uint8 images, scale to
    ``[0, 1]``, normalise with :data:`CIFAR_MEAN`/:data:`CIFAR_STD`, flip
    horizontally with probability 1/2 (training with ``flip`` only), and
    paste each at a uniform random cell. Cells (and flips) are redrawn at
    every pass over the dataset; the same ``seed`` gives the same sequence of
    passes.

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
        Shuffle (with ``seed``, anew every pass), flip, and drop the last
        partial batch by default.
    seed : int
        Seed of the order, cells and flips.
    flip : bool
        Random horizontal flip in training.
    drop_remainder : bool, optional
        Defaults to ``training``: full batches only, so a compiled step
        sees one shape.

    Examples
    --------
    >>> data = load_split("cifar10-mini", "test", limit=100)  # doctest: +SKIP
    >>> ds = canvas_dataset(data, grid=3, task="location", batch_size=48,
    ...                     training=True, seed=0)  # doctest: +SKIP
    """
    return _batches(imageset, grid, task, batch_size, training, seed, flip, drop_remainder,
                    finish=lambda patches, cells, labels: (_host_canvas(patches, cells, grid), labels))


def normalize_tf(images: tf.Tensor, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD) -> tf.Tensor:
    """:func:`normalize` in TensorFlow ops (for ``tf.data``), bit-identical to it."""
    shift, scale = normalization_constants(mean, std)
    return (tf.cast(images, tf.float32) - shift) * scale


def _host_canvas(patches: tf.Tensor, cells: tf.Tensor, grid: int) -> tf.Tensor:
    """Normalise uint8 patches and place them (same values and order as :class:`CanvasPlacement`)."""
    return _compiled_host_canvas(grid)(patches, cells)


@functools.lru_cache(maxsize=None)
def _compiled_host_canvas(grid: int):
    """The host placement of ``grid``, XLA-compiled once per process and batch shape.

    Normalisation and placement fuse into one pass that writes each canvas
    once: about 1.15-1.3x the throughput of the same ops run one by one (measured;
    ``docs/benchmarks.md``), with bit-identical results.
    """
    return tf.function(
        lambda patches, cells: place_on_canvas_tf(normalize_tf(patches), cells, grid),
        jit_compile=True,
        reduce_retracing=True,
    )


def place_on_canvas_tf(patches: tf.Tensor, cells: tf.Tensor, grid: int) -> tf.Tensor:
    """:func:`place_on_canvas` in TensorFlow ops, for ``tf.data`` under any Keras backend.

    The same selection as :func:`place_on_canvas`: each patch broadcast over
    a ``(grid, h, grid, w * C)`` view of its canvas and kept where its cell's
    mask is true, +0.0 elsewhere. Meant to run XLA-compiled (as the host
    pipeline does), where it fuses into one pass that writes each canvas once.
    """
    _, h, w, c = patches.shape
    cells = tf.cast(cells, tf.int32)
    positions = tf.range(grid)
    rows = tf.equal((cells // grid)[:, None], positions)
    columns = tf.equal((cells % grid)[:, None], positions)
    mask = tf.logical_and(tf.reshape(rows, (-1, grid, 1, 1, 1)), tf.reshape(columns, (-1, 1, 1, grid, 1)))
    tiles = tf.reshape(patches, (-1, 1, h, 1, w * c))
    return tf.reshape(tf.where(mask, tiles, tf.zeros((), patches.dtype)), (-1, grid * h, grid * w, c))


def _batches(imageset, grid, task, batch_size, training, seed, flip, drop_remainder, finish):
    """Batches of ``finish(uint8 patches, int32 cells, int32 labels)``, prefetched.

    Drawing and ``finish`` run in one parallel map: the part both paths share.
    """
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}. Received: task={task!r}")
    if not isinstance(grid, int) or grid < 1:
        raise ValueError(f"`grid` must be a positive integer. Received: grid={grid!r}")
    images = tf.constant(imageset.images)
    classes = tf.constant(imageset.labels, tf.int32)
    do_flip = training and flip
    batches = index_batches(len(imageset), batch_size=batch_size, training=training, seed=seed,
                            drop_remainder=drop_remainder)

    def draw(indices, step_key):
        patches = tf.gather(images, indices)
        size = tf.shape(indices)[:1]
        cells = tf.random.stateless_uniform(
            size, seed=step_key, minval=0, maxval=grid * grid, dtype=tf.int32
        )
        if do_flip:
            mirror = tf.random.stateless_uniform(size, seed=step_key + [0, 1 << 40]) < 0.5
            # Pick each sample from the stacked originals and mirrors (a gather is
            # several times faster than a broadcast tf.where here).
            pick = tf.range(size[0]) + size[0] * tf.cast(mirror, tf.int32)
            patches = tf.gather(tf.concat([patches, tf.reverse(patches, [2])], 0), pick)
        labels = cells if task == "location" else tf.gather(classes, indices)
        return patches, cells, labels

    return batches.map(
        lambda indices, step_key: finish(*draw(indices, step_key)), num_parallel_calls=tf.data.AUTOTUNE
    ).prefetch(tf.data.AUTOTUNE)


def evaluation_passes(
    imageset: ImageSet,
    *,
    grid: int,
    task: str,
    batch_size: int,
    passes: int | None = None,
    seed: int = 0,
) -> list[tf.data.Dataset]:
    """One evaluation dataset per pass, each with a fresh random placement.

    ``passes`` defaults to ``grid * grid`` (the paper's protocol: report the
    mean accuracy over the passes). No shuffle, no flip, no dropped samples.
    """
    return [
        canvas_dataset(
            imageset, grid=grid, task=task, batch_size=batch_size, training=False,
            seed=pass_seed, flip=False,
        )
        for pass_seed in _pass_seeds(grid, passes, seed)
    ]


def evaluate_canvas(
    model,
    imageset: ImageSet,
    *,
    grid: int,
    task: str,
    batch_size: int = 256,
    passes: int | None = None,
    seed: int = 0,
    feed: str = "canvas",
) -> dict:
    """Accuracy of ``model``'s argmax over :func:`evaluation_passes`.

    Parameters
    ----------
    model : keras.Model
        Maps canvases (``feed="canvas"``) or ``(uint8 patches, cells)``
        (``feed="patches"``, a model starting with :class:`CanvasPlacement`)
        to one score per label.
    imageset, grid, task, batch_size, passes, seed
        As in :func:`evaluation_passes`; the same seeds give the same canvases.
    feed : {"canvas", "patches"}
        What the model takes.

    Returns
    -------
    dict
        ``accuracy`` (mean over passes), ``accuracy_per_pass`` (list) and
        ``per_cell_accuracy`` (``grid * grid`` floats, row-major: the accuracy
        over all passes of the samples whose image was in that cell; NaN for a
        cell never drawn).
    """
    if feed not in FEEDS:
        raise ValueError(f"`feed` must be one of {FEEDS}. Received: feed={feed!r}")
    cells_total = grid * grid
    hits = np.zeros(cells_total)
    seen = np.zeros(cells_total)
    per_pass = []
    place = feed == "canvas"
    for pass_seed in _pass_seeds(grid, passes, seed):
        batches = _batches(
            imageset, grid, task, batch_size, False, pass_seed, False, False,
            finish=lambda patches, cells, labels: (_host_canvas(patches, cells, grid) if place else patches, cells, labels),
        )
        correct = 0
        for inputs, cells, labels in batches.as_numpy_iterator():
            inputs = (inputs, cells) if feed == "patches" else inputs
            predicted = np.argmax(model.predict_on_batch(inputs), axis=-1)
            right = predicted == labels
            correct += int(right.sum())
            hits += np.bincount(cells, weights=right, minlength=cells_total)
            seen += np.bincount(cells, minlength=cells_total)
        per_pass.append(correct / len(imageset))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_cell = hits / seen
    return {
        "accuracy": float(np.mean(per_pass)),
        "accuracy_per_pass": [float(a) for a in per_pass],
        "per_cell_accuracy": [float(a) for a in per_cell],
    }


def _pass_seeds(grid: int, passes: int | None, seed: int) -> list[int]:
    passes = grid * grid if passes is None else passes
    if not isinstance(passes, int) or passes < 1:
        raise ValueError(f"`passes` must be a positive integer or None. Received: passes={passes!r}")
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(passes, np.uint32)]
