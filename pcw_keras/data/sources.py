"""Load one split of an image-classification source into memory.

A source is a tfds name (``"cifar10"``, ``"cifar100"``, ``"tfds:<name>"``), an
image folder ``root/<split>/<class>/*.{jpg,jpeg,png}``, a ``.tar.gz``/``.tgz``
of one, the embedded ``"cifar10-mini"`` asset, a ``.npz`` file with
``x_<split>``/``y_<split>`` arrays, or an ``(images, labels)`` tuple of NumPy
arrays. Every source ends as an :class:`ImageSet` of uint8 images, decoded once
(see :mod:`pcw_keras.data.decode`); folders and tarballs are cached in memory
per process, so loading them again is instant.
"""
from __future__ import annotations

import os
import socket
import threading
from importlib import resources

import numpy as np

from pcw_keras.data.archives import extract_archive, is_archive
from pcw_keras.data.decode import decode_bytes, decode_files, list_image_folder
from pcw_keras.data.imageset import ImageSet, split_validation, stratified_indices

__all__ = ["ImageSet", "SourceUnavailable", "load_split", "split_validation"]

MINI_NAME = "cifar10-mini"
TFDS_NAMES = ("cifar10", "cifar100")
ACCEPTED = (
    "'cifar10-mini', a tfds name ('cifar10', 'cifar100' or 'tfds:<name>'), an image "
    "folder root/<split>/<class>/*.{jpg,jpeg,png}, a .tar.gz/.tgz of one, a .npz "
    "file with x_<split>/y_<split> arrays, or an (images, labels) tuple of NumPy arrays"
)
_MEMORY_CACHE: dict[tuple, ImageSet] = {}


class SourceUnavailable(ValueError):
    """A tfds dataset that is not prepared locally and cannot be downloaded from here."""


def load_split(source, split: str = "train", *, limit: int | None = None, seed: int = 0) -> ImageSet:
    """Load one split of ``source`` as uint8 images and int64 labels.

    Parameters
    ----------
    source : str, os.PathLike or tuple
        Where the images come from (see the module docstring). A tuple,
        ``(images, labels)`` or ``(images, labels, class_names)``, has no
        splits: ``split`` is ignored for it.
    split : str
        Split name, e.g. ``"train"`` or ``"test"``.
    limit : int, optional
        Keep a class-balanced subset of this many images, drawn with ``seed``.
    seed : int
        Seed of the ``limit`` draw.

    Returns
    -------
    ImageSet

    Raises
    ------
    ValueError
        Unknown source, bad arrays, corrupt image, empty class folder, images
        of different sizes, or a tfds dataset that is absent and cannot be
        downloaded; the message names the culprit.
    FileNotFoundError
        Missing path or split folder.

    Examples
    --------
    >>> test = load_split("cifar10-mini", "test")
    >>> len(test), test.images.shape[1:], test.class_names[0]
    (1000, (32, 32, 3), 'airplane')
    """
    if isinstance(source, tuple) and len(source) in (2, 3):
        return _load_limited(_from_arrays(*source), limit, seed)
    if isinstance(source, (str, os.PathLike)):
        return _load_named(os.fspath(source), split, limit, seed)
    raise ValueError(f"Unknown source type. Expected {ACCEPTED}. Received: source={source!r}")


def _load_named(source: str, split: str, limit: int | None, seed: int) -> ImageSet:
    if source == MINI_NAME:
        return _load_limited(_load_mini(split), limit, seed)
    if source in TFDS_NAMES or source.startswith("tfds:"):
        return _load_limited(_load_tfds(source.removeprefix("tfds:"), split), limit, seed)
    if os.path.isdir(source):
        return _load_folder(source, split, limit, seed)
    if os.path.isfile(source) and is_archive(source):
        return _load_folder(extract_archive(source), split, limit, seed)
    if os.path.isfile(source) and source.lower().endswith(".npz"):
        return _load_limited(_load_npz(source, split), limit, seed)
    if os.path.exists(source):
        raise ValueError(
            f"Unsupported file type. Expected {ACCEPTED}. Received: source={source!r}"
        )
    if os.sep in source or source.lower().endswith((".npz", ".tar.gz", ".tgz")):
        raise FileNotFoundError(f"No such file or folder: {source!r}. Expected {ACCEPTED}.")
    raise ValueError(f"Unknown source. Expected {ACCEPTED}. Received: source={source!r}")


def _load_limited(imageset: ImageSet, limit: int | None, seed: int) -> ImageSet:
    if limit is None:
        return imageset
    return imageset.subset(stratified_indices(imageset.labels, limit, seed))


def _from_arrays(images, labels, class_names=None) -> ImageSet:
    return ImageSet(np.asarray(images), np.asarray(labels), list(class_names or []))


def _load_folder(path: str, split: str, limit: int | None, seed: int) -> ImageSet:
    """Decode ``<root>/<split>/<class>/*``, descending through one lone top folder."""
    root = os.path.realpath(path)
    while not os.path.isdir(os.path.join(root, split)):
        entries = [e for e in os.scandir(root) if not e.name.startswith(".")]
        if len(entries) != 1 or not entries[0].is_dir():
            found = sorted(e.name for e in entries if e.is_dir())
            raise FileNotFoundError(
                f"No split folder {split!r} in {path!r}. Found folders: {found}. "
                "Expected the layout root/<split>/<class>/*.{jpg,jpeg,png}."
            )
        root = entries[0].path
    split_dir = os.path.join(root, split)
    stamps = tuple(
        (e.name, e.stat().st_mtime_ns) for e in os.scandir(split_dir) if e.is_dir()
    )
    key = ("folder", split_dir, os.stat(split_dir).st_mtime_ns, stamps, limit, seed)
    if key not in _MEMORY_CACHE:
        paths, labels, class_names = list_image_folder(split_dir)
        if limit is not None:
            keep = stratified_indices(labels, limit, seed)
            paths, labels = [paths[i] for i in keep], labels[keep]
        images = decode_files(paths)
        images.setflags(write=False)
        _MEMORY_CACHE[key] = ImageSet(images, labels, class_names)
    return _MEMORY_CACHE[key]


def _load_npz(path: str, split: str) -> ImageSet:
    with np.load(path, allow_pickle=False) as arrays:
        if f"{split}_jpeg" in arrays:
            return _decode_packed(arrays, split, path)
        if f"x_{split}" not in arrays or f"y_{split}" not in arrays:
            raise ValueError(
                f"{path!r} has no arrays x_{split}/y_{split} (nor {split}_jpeg). "
                f"Found: {sorted(arrays.files)}"
            )
        names = list(arrays["class_names"]) if "class_names" in arrays else []
        return ImageSet(arrays[f"x_{split}"], arrays[f"y_{split}"], names)


def _decode_packed(arrays, split: str, path: str) -> ImageSet:
    """Decode JPEG bytes packed as ``<split>_jpeg`` + ``<split>_offsets``."""
    data, offsets = arrays[f"{split}_jpeg"], arrays[f"{split}_offsets"]
    encoded = [data[a:b].tobytes() for a, b in zip(offsets[:-1], offsets[1:])]
    names = [f"{path}:{split}[{i}]" for i in range(len(encoded))]
    return ImageSet(decode_bytes(encoded, names), arrays[f"{split}_labels"], list(arrays["class_names"]))


def _load_mini(split: str) -> ImageSet:
    key = ("mini", split)
    if key not in _MEMORY_CACHE:
        asset = resources.files("pcw_keras.data") / "assets" / f"{MINI_NAME}.npz"
        with resources.as_file(asset) as path, np.load(path, allow_pickle=False) as arrays:
            splits = sorted(k.removesuffix("_jpeg") for k in arrays.files if k.endswith("_jpeg"))
            if split not in splits:
                raise FileNotFoundError(
                    f"{MINI_NAME!r} has no split {split!r}. Found splits: {splits}"
                )
            imageset = _decode_packed(arrays, split, MINI_NAME)
        imageset.images.setflags(write=False)
        _MEMORY_CACHE[key] = imageset
    return _MEMORY_CACHE[key]


def _load_tfds(name: str, split: str) -> ImageSet:
    import tensorflow_datasets as tfds

    builder = tfds.builder(name)
    if not os.path.exists(os.path.join(builder.data_dir, "dataset_info.json")):
        if not _can_reach("storage.googleapis.com", 443):
            raise SourceUnavailable(
                f"tfds dataset {name!r} is not prepared in {builder.data_dir!r} and this "
                "machine cannot download it (no network). Use source='cifar10-mini', a "
                "local image folder or a .tar.gz of one instead."
            )
        builder.download_and_prepare()
    images, labels = tfds.as_numpy(
        builder.as_dataset(split=split, as_supervised=True, batch_size=-1)
    )
    return ImageSet(images, labels, list(builder.info.features["label"].names))


def _can_reach(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)
