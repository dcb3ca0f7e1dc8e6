"""Decode JPEG/PNG files or bytes into one uint8 array, once.

Decoding uses Pillow (libjpeg-turbo and zlib), in a thread pool (Pillow
releases the GIL while it decodes), so it runs the same without TensorFlow,
under any Keras backend. Bad inputs are found in the same pass: an
undecodable image, or one whose size differs from the first one, is named
in the error, so a broken file is reported at load time, never mid-epoch.
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


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
    return _decode(_read_file, list(paths), list(paths))


def decode_bytes(encoded: Sequence[bytes], names: Sequence[str]) -> np.ndarray:
    """Decode encoded images (JPEG/PNG bytes) into an ``(N, H, W, 3)`` uint8 array.

    ``names`` identify each image in error messages.
    """
    return _decode(bytes, list(encoded), list(names))


def _read_file(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _decode_one(data: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"Cannot decode image {name!r} as JPEG/PNG: {error}") from None


def _decode(read, items: list, names: list[str]) -> np.ndarray:
    if not items:
        raise ValueError("No images to decode.")
    first = _decode_one(read(items[0]), names[0])
    images = np.empty((len(items),) + first.shape, np.uint8)
    images[0] = first

    def decode_range(start: int, stop: int) -> None:
        for index in range(start, stop):
            image = _decode_one(read(items[index]), names[index])
            if image.shape != first.shape:
                raise ValueError(
                    f"All images of one split must have the same size; {names[index]!r} differs "
                    f"from {names[0]!r} (height, width, channels) = {first.shape}."
                )
            images[index] = image

    chunk = 512
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        # Ranges in order: the first bad image in file order is the one reported.
        for future in [pool.submit(decode_range, start, min(start + chunk, len(items)))
                       for start in range(1, len(items), chunk)]:
            future.result()
    return images
