"""Image classification batches for CIFAR-style training: normalise, pad-and-crop, flip.

The standard CIFAR augmentation, built in ``tf.data`` one batch at a time
(one gather, then vectorised ops; no Python loop per image): normalise with
the dataset mean and std, pad by ``crop_padding`` pixels with zeros (the mean
colour after normalisation), take a random crop of the original size (a
whole-pixel shift of up to ``crop_padding`` on each axis), and flip
horizontally with probability 1/2. Evaluation batches are only normalised.
"""
from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from pcw_keras.data.batching import index_batches
from pcw_keras.data.canvas import CIFAR_MEAN, CIFAR_STD, normalize_tf
from pcw_keras.data.imageset import ImageSet


def shift_images(images: tf.Tensor, offsets: tf.Tensor, padding: int) -> tf.Tensor:
    """Pads ``images`` by ``padding`` zeros on every side and crops each at its offset.

    Parameters
    ----------
    images : tensor ``(B, H, W, C)``
    offsets : int tensor ``(B, 2)``
        Row and column of each crop's top-left corner in the padded image, in
        ``[0, 2 * padding]``; ``padding`` is the unshifted image.
    padding : int
        Pixels of zeros added on each side.

    Returns
    -------
    tensor ``(B, H, W, C)``: image ``b`` moved down by ``padding - offsets[b, 0]``
    and right by ``padding - offsets[b, 1]`` pixels.

    Example
    -------
    >>> x = tf.reshape(tf.range(9.0), (1, 3, 3, 1))
    >>> shift_images(x, tf.constant([[0, 1]]), 1)[0, :, :, 0].numpy().tolist()
    [[0.0, 0.0, 0.0], [0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    if padding == 0:
        return images
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    offsets = tf.cast(offsets, tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    rows_taken = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(rows_taken, cols, axis=2, batch_dims=1)



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
) -> tf.data.Dataset:
    """Batches of ``(float32 images (B, H, W, C), int32 labels (B,))``.

    Parameters
    ----------
    imageset : ImageSet
        The images, held in memory as uint8.
    batch_size : int
        Samples per batch.
    training : bool
        Shuffle (anew at every pass, repeatably from ``seed``), augment, and
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
    if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
        raise ValueError(f"`crop_padding` must be an integer >= 0. Received: crop_padding={crop_padding!r}")
    images = tf.constant(imageset.images)
    labels = tf.constant(imageset.labels, tf.int32)
    batches = index_batches(len(imageset), batch_size=batch_size, training=training, seed=seed,
                            drop_remainder=drop_remainder)

    def make_batch(indices, step_key):
        batch = normalize_tf(tf.gather(images, indices), mean, std)
        if training:
            size = tf.shape(indices)[:1]
            if crop_padding:
                offsets = tf.random.stateless_uniform(
                    tf.concat([size, [2]], 0), seed=step_key, minval=0, maxval=2 * crop_padding + 1, dtype=tf.int32
                )
                batch = shift_images(batch, offsets, crop_padding)
            if flip:
                mirror = tf.random.stateless_uniform(size, seed=step_key + [0, 1 << 40]) < 0.5
                batch = tf.where(mirror[:, None, None, None], tf.reverse(batch, [2]), batch)
        return batch, tf.gather(labels, indices)

    return batches.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
