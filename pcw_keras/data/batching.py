"""Seeded batches of an in-memory image array, keyed by (seed, epoch, step): what every pipeline shares.

Every random draw of a batch (its images' order, cells, flips, crops) comes
from ``numpy.random.default_rng([seed, epoch, step])``, a pure function of
those three numbers. A fresh process asked for epoch ``k`` therefore draws
exactly what a long-running one draws at epoch ``k``: a resumed run replays
nothing and skips nothing. NumPy only, no TensorFlow: the same batches feed
``model.fit`` under every Keras backend through :class:`keras.utils.PyDataset`.

While ``model.fit`` consumes batch ``s``, a background thread draws batches
``s + 1`` and ``s + 2``, so that the thread that dispatches the training
steps spends no time on the data. Since each batch is a pure function of its key, what
the thread draws ahead is what the loop would have drawn: values, order and
resumption are the same with or without it.

When a Keras distribution spans several JAX processes (``jax.distributed``),
each process draws the whole global batch, as one process would, and feeds
its own contiguous slice of it: process ``i`` of ``P`` keeps samples
``[i * B/P, (i + 1) * B/P)`` of a batch of ``B``. The processes together thus
train on exactly the batches of a one-process run.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import keras
import numpy as np

from pcw_keras.data.imageset import ImageSet


def check_batch_size(batch_size) -> int:
    """``batch_size`` if it is a positive integer, else a ValueError naming it."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    return int(batch_size)


def process_shard() -> tuple[int, int]:
    """``(index, count)`` of this process among those that feed one global batch.

    ``(0, 1)`` unless a Keras distribution is set under the JAX backend and
    ``jax.distributed`` joined several processes.
    """
    if keras.backend.backend() != "jax" or keras.distribution.distribution() is None:
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


def process_slice(batch, size: int, *, training: bool, shard: tuple[int, int] | None = None):
    """This process' part of ``batch`` (a structure of arrays of ``size`` samples).

    A training batch must split evenly (a ValueError names the sizes); an
    evaluation batch drops its last ``size mod count`` samples, since every
    process must feed as many samples as the others: with ``P`` processes a
    validation split loses at most ``P - 1`` samples per pass. ``shard`` is
    :func:`process_shard`'s ``(index, count)``, read by the caller when given.
    """
    index, count = process_shard() if shard is None else shard
    if count == 1:
        return batch
    if training and size % count:
        raise ValueError(f"A global batch of {size} does not split over {count} processes: "
                         f"use a `training.batch_size` divisible by {count}.")
    share = size // count
    return keras.tree.map_structure(lambda array: array[index * share : (index + 1) * share], batch)


class ImageBatches(keras.utils.PyDataset):
    """Batches of an :class:`ImageSet` for ``model.fit``, each drawn from ``(seed, epoch, step)``.

    Subclasses implement :meth:`make_batch`. Training batches follow a new
    order at every epoch (a permutation drawn from ``(seed, epoch)``) and
    drop the last partial batch by default, so a compiled step sees one
    shape; evaluation batches keep the order and every sample, and draw the
    same values at every pass (epoch 0).

    The epoch advances by itself after each complete pass (so a plain
    ``model.fit`` draws anew every epoch); :meth:`set_epoch` pins the next
    pass to a given epoch, which a resumed run uses to draw its epoch ``k``
    exactly as an uninterrupted run does (``pcw train`` does this with
    :class:`pcw_keras.training.callbacks.SyncDataEpoch`). Pass
    ``shuffle=False`` to ``model.fit``: otherwise Keras reorders the batches
    of every epoch once more with Python's global RNG, which a resumed
    process does not replay.

    Parameters
    ----------
    imageset : ImageSet
        The images, held in memory as uint8.
    batch_size : int
        Samples per batch.
    training : bool
        Shuffle per epoch and draw augmentations, or not.
    seed : int
        Seed of every draw.
    drop_remainder : bool, optional
        Defaults to ``training``; a training set smaller than one batch then
        keeps its one partial batch (with a one-line warning), as
        ``model.fit`` trains on partial batches.
    prefetch : int
        Batches drawn ahead by a background thread when the batches are read
        in order, as ``model.fit`` reads them (0: none, every batch drawn
        when asked for). The default 2 is a choice of this package: the
        draw takes a fraction of a millisecond, so two batches keep ahead of
        a device step of a millisecond or more.

    Raises
    ------
    ValueError
        A bad ``batch_size``, or fewer images than one full batch with
        ``drop_remainder=True`` given explicitly.
    """

    def __init__(self, imageset: ImageSet, *, batch_size: int, training: bool, seed: int,
                 drop_remainder: bool | None = None, prefetch: int = 2):
        super().__init__()
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise ValueError(f"`prefetch` must be an integer >= 0. Received: prefetch={prefetch!r}")
        self.prefetch = int(prefetch)
        self._ahead: dict[tuple[int, int], Future] = {}
        self._drawer: ThreadPoolExecutor | None = None
        self.imageset = imageset
        self.batch_size = check_batch_size(batch_size)
        self.training = bool(training)
        self.seed = int(seed)
        count = len(imageset)
        if drop_remainder is None and self.training and 0 < count < self.batch_size:
            print(f"pcw: only {count} training images for a batch of {self.batch_size}: "
                  f"each epoch trains on one partial batch of {count}.")
            drop_remainder = False
        self.drop_remainder = self.training if drop_remainder is None else bool(drop_remainder)
        if self.drop_remainder and count < self.batch_size:
            raise ValueError(
                f"Cannot make a full batch of {self.batch_size} from {count} images "
                "(drop_remainder=True). Use a smaller `batch_size` or more images."
            )
        self._batches = count // self.batch_size if self.drop_remainder else -(-count // self.batch_size)
        self.epoch = 0
        """The epoch whose draws the batches hold."""
        self._next_epoch: int | None = None
        self._pass_open = False
        self._pass_complete = False
        self._order_cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self._batches

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass draw epoch ``epoch`` (0-based)."""
        self._next_epoch = int(epoch)

    def on_epoch_begin(self) -> None:
        if self._next_epoch is not None:
            self.epoch, self._next_epoch = self._next_epoch, None
        elif self._pass_complete:
            self.epoch += 1
        self._pass_open, self._pass_complete = True, False

    def on_epoch_end(self) -> None:
        self._pass_open = False

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch``: a permutation in training, ``arange`` otherwise."""
        count = len(self.imageset)
        if not self.training:
            return np.arange(count)
        cached = self._order_cache  # one read: the drawing thread and the caller may both be here
        if cached is None or cached[0] != epoch:
            cached = self._order_cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(count))
        return cached[1]

    def __getitem__(self, step: int):
        if not 0 <= step < self._batches:
            raise IndexError(f"Batch {step} out of range: this dataset has {self._batches} batches.")
        epoch = self.epoch if self.training else 0
        if self._pass_open and step == self._batches - 1:
            self._pass_complete = True
        shard = process_shard()  # read here: Keras' distribution is a per-thread setting
        ahead = self._ahead.pop((epoch, step), None)
        for key in [key for key in self._ahead if key[0] != epoch or key[1] < step]:  # another epoch, or skipped
            self._ahead.pop(key).cancel()
        for later in range(step + 1, min(step + 1 + self.prefetch, self._batches)):
            if (epoch, later) not in self._ahead:
                self._ahead[(epoch, later)] = self._executor().submit(self._draw, epoch, later, shard)
        return ahead.result() if ahead is not None else self._draw(epoch, step, shard)

    def _draw(self, epoch: int, step: int, shard: tuple[int, int]):
        """Batch ``step`` of ``epoch``: this process' part of it."""
        indices = self.order(epoch)[step * self.batch_size : (step + 1) * self.batch_size]
        batch = self.make_batch(indices, np.random.default_rng([self.seed, epoch, step, 1]))
        return process_slice(batch, len(indices), training=self.training, shard=shard)

    def _executor(self) -> ThreadPoolExecutor:
        if self._drawer is None:
            self._drawer = ThreadPoolExecutor(1, thread_name_prefix="pcw-batches")
        return self._drawer

    def make_batch(self, indices: np.ndarray, rng: np.random.Generator):
        """The batch of the samples at ``indices``, with this step's generator ``rng``."""
        raise NotImplementedError

    def __iter__(self):
        """One pass, as ``model.fit`` makes it: a training dataset draws its next epoch."""
        self.on_epoch_begin()
        try:
            for step in range(len(self)):
                yield self[step]
        finally:
            self.on_epoch_end()


def random_flips(rng: np.random.Generator, size: int) -> np.ndarray:
    """Which of ``size`` samples to mirror (probability 1/2 each)."""
    return rng.random(size) < 0.5


def mirror(images: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """``images`` with the samples marked in ``flips`` mirrored left-right (a copy)."""
    images = np.array(images)
    images[flips] = images[flips, :, ::-1]
    return images
