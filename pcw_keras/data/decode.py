"""Decode JPEG/PNG files or bytes into one uint8 array, once.

Decoding is a ``tf.data`` map of ``tf.io.decode_image`` over the files with
``num_parallel_calls=AUTOTUNE`` (order kept). On the 50,000 CIFAR-10 training
JPEGs (2 cores) it ran at 10k-27k images/s (10k-15k with other jobs
running), against 13.5k for ``tfds.folder_dataset.ImageFolder`` and about 5k
for Pillow, so it is the one used. Bad inputs are found in the same pass: undecodable images are dropped
with ``ignore_errors`` and named from the indices that went missing, and an
image whose size differs from the first one is flagged, so a broken file is
reported at load time, never mid-epoch.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_BATCH = 1024


def list_image_folder(split_dir: str) -> tuple[list[str], np.ndarray, list[str]]:
    """List ``split_dir/<class>/*.{jpg,jpeg,png}``.

    Returns
    -------
    tuple
        ``(paths, labels, class_names)``: paths sorted by class then file
        name, int64 labels, and the class folder names in sorted order.
    """
    class_names = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    if not class_names:
        raise ValueError(
            f"Expected one folder per class in {split_dir!r}, found none."
        )
    paths, labels = [], []
    for label, name in enumerate(class_names):
        class_dir = os.path.join(split_dir, name)
        files = sorted(
            e.name
            for e in os.scandir(class_dir)
            if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise ValueError(
                f"Class folder {class_dir!r} holds no images "
                f"(allowed extensions: {', '.join(IMAGE_EXTENSIONS)})."
            )
        paths.extend(os.path.join(class_dir, f) for f in files)
        labels.extend([label] * len(files))
    return paths, np.asarray(labels, np.int64), class_names


def decode_files(paths: Sequence[str]) -> np.ndarray:
    """Decode image files into an ``(N, H, W, 3)`` uint8 array."""
    return _decode(tf.io.read_file, list(paths), list(paths))


def decode_bytes(encoded: Sequence[bytes], names: Sequence[str]) -> np.ndarray:
    """Decode encoded images (JPEG/PNG bytes) into an ``(N, H, W, 3)`` uint8 array.

    ``names`` identify each image in error messages.
    """
    return _decode(tf.identity, list(encoded), list(names))


def _decode(read, items: list, names: list[str]) -> np.ndarray:
    if not items:
        raise ValueError("No images to decode.")
    first = _decode_one(read, items[0], names[0])
    shape = first.shape

    def decode(index, item):
        image = tf.io.decode_image(read(item), channels=3, expand_animations=False)
        same = tf.reduce_all(tf.equal(tf.shape(image), shape))
        image = tf.cond(same, lambda: image, lambda: tf.zeros(shape, tf.uint8))
        return index, same, tf.ensure_shape(image, shape)

    dataset = (
        tf.data.Dataset.from_tensor_slices((tf.range(len(items), dtype=tf.int64), items))
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .ignore_errors()
        .batch(_BATCH)
    )
    images = np.empty((len(items),) + tuple(shape), np.uint8)
    decoded = np.zeros(len(items), bool)
    for index, same, batch in dataset.as_numpy_iterator():
        if not same.all():
            bad = names[index[np.flatnonzero(~same)[0]]]
            raise ValueError(
                f"All images of one split must have the same size; {bad!r} differs "
                f"from {names[0]!r} (height, width, channels) = {tuple(shape)}."
            )
        images[index] = batch
        decoded[index] = True
    if not decoded.all():
        missing = np.flatnonzero(~decoded)
        raise ValueError(
            f"Cannot decode {len(missing)} image(s) as JPEG/PNG, first: "
            f"{names[missing[0]]!r}."
        )
    return images


def _decode_one(read, item, name: str) -> np.ndarray:
    try:
        return tf.io.decode_image(read(item), channels=3, expand_animations=False).numpy()
    except tf.errors.OpError as error:
        raise ValueError(f"Cannot decode image {name!r} as JPEG/PNG: {error.message}") from None
