"""Image classification batches for CIFAR-style training: normalise, pad-and-crop, flip.

The standard CIFAR augmentation, one batch at a time in NumPy (one gather,
then vectorised ops; no Python loop per image), under every Keras backend:
normalise with the dataset mean and std, pad by ``crop_padding`` pixels with
zeros (the mean colour after normalisation), take a random crop of the
original size (a whole-pixel shift of up to ``crop_padding`` on each axis),
and flip horizontally with probability 1/2. Evaluation batches are only
normalised. Draws are keyed by ``(seed, epoch, step)``
(:mod:`pcw_keras.data.batching`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pcw_keras.data.batching import ImageBatches, mirror, random_flips
from pcw_keras.normalization import CIFAR_MEAN, CIFAR_STD, normalize
from pcw_keras.data.imageset import ImageSet


def shift_images(images: np.ndarray, offsets: np.ndarray, padding: int) -> np.ndarray:
    """Pads ``images`` by ``padding`` zeros on every side and crops each at its offset.

    Parameters
    ----------
    images : array ``(B, H, W, C)``
    offsets : int array ``(B, 2)``
        Row and column of each crop's top-left corner in the padded image, in
        ``[0, 2 * padding]``; ``padding`` is the unshifted image.
    padding : int
        Pixels of zeros added on each side.

    Returns
    -------
    array ``(B, H, W, C)``: image ``b`` moved down by ``padding - offsets[b, 0]``
    and right by ``padding - offsets[b, 1]`` pixels.

    Example
    -------
    >>> x = np.arange(9.0).reshape(1, 3, 3, 1)
    >>> shift_images(x, np.array([[0, 1]]), 1)[0, :, :, 0].tolist()
    [[0.0, 0.0, 0.0], [0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    if padding == 0:
        return images
    size, height, width = images.shape[:3]
    padded = np.pad(images, [(0, 0), (padding, padding), (padding, padding), (0, 0)])
    offsets = np.asarray(offsets, np.int64)
    rows = offsets[:, :1] + np.arange(height)[None, :]
    cols = offsets[:, 1:] + np.arange(width)[None, :]
    return padded[np.arange(size)[:, None, None], rows[:, :, None], cols[:, None, :]]


class ClassificationBatches(ImageBatches):
    """Batches of ``(float32 images, int32 labels)``; see :func:`classification_dataset`."""

    def __init__(self, imageset: ImageSet, *, batch_size: int, training: bool, seed: int = 0, crop_padding: int = 4,
                 flip: bool = True, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD,
                 drop_remainder: bool | None = None, prefetch: int = 2):
        if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
            raise ValueError(f"`crop_padding` must be an integer >= 0. Received: crop_padding={crop_padding!r}")
        super().__init__(imageset, batch_size=batch_size, training=training, seed=seed, drop_remainder=drop_remainder,
                         prefetch=prefetch)
        self.crop_padding, self.flip = crop_padding, flip
        self.mean, self.std = tuple(mean), tuple(std)

    def make_batch(self, indices, rng):
        batch = normalize(self.imageset.images[indices], self.mean, self.std)
        if self.training:
            size = len(indices)
            if self.crop_padding:
                offsets = rng.integers(0, 2 * self.crop_padding + 1, size=(size, 2))
                batch = shift_images(batch, offsets, self.crop_padding)
            if self.flip:
                batch = mirror(batch, random_flips(rng, size))
        return batch, self.imageset.labels[indices].astype(np.int32)


def classification_dataset(
    imageset: ImageSet,
    *,
    batch_size: int,
    training: bool,
    seed: int = 0,
    crop_padding: int = 4,
    flip: bool = True,
    mean: Sequence[float] = CIFAR_MEAN,
    std: Sequence[float] = CIFAR_STD,
    drop_remainder: bool | None = None,
    prefetch: int = 2,
) -> ClassificationBatches:
    """Batches of ``(float32 images (B, H, W, C), int32 labels (B,))``.

    Parameters
    ----------
    imageset : ImageSet
        The images, held in memory as uint8.
    batch_size : int
        Samples per batch.
    training : bool
        Shuffle (anew every epoch, repeatably from ``seed``), augment, and
        drop the last partial batch by default (a compiled step sees one shape).
        Otherwise: the images in order, normalised only, every sample kept.
    seed : int
        Seed of the order, crops and flips.
    crop_padding : int
        Training: pad by this many pixels and crop at random (0: no crop).
        The CIFAR standard is 4.
    flip : bool
        Training: random horizontal flip.
    mean, std : sequence of float
        Per-channel normalisation after scaling to ``[0, 1]``.
    drop_remainder : bool, optional
        Defaults to ``training``.
    prefetch : int
        Batches drawn ahead in a background thread while the batches are
        read in order (0: none); see :class:`~pcw_keras.data.batching.ImageBatches`.

    Returns
    -------
    ClassificationBatches
        A :class:`keras.utils.PyDataset` for ``model.fit`` under any backend.

    Raises
    ------
    ValueError
        Bad ``batch_size`` or ``crop_padding``, or too few images for one full
        training batch.

    Example
    -------
    >>> data = load_split("cifar10-mini", "train")  # doctest: +SKIP
    >>> train = classification_dataset(data, batch_size=128, training=True, seed=0)  # doctest: +SKIP
    """
    return ClassificationBatches(imageset, batch_size=batch_size, training=training, seed=seed, crop_padding=crop_padding,
                                 flip=flip, mean=mean, std=std, drop_remainder=drop_remainder, prefetch=prefetch)
