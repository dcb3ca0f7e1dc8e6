"""Shift consistency (Zhang, ICML 2019), adapted to 32x32 inputs, and its curve over shift distance.

Protocol of :func:`consistency`. The test images are normalised as in
training, padded by ``max_shift`` pixels on each side (``fill``; zeros are the
mean colour after normalisation) and cropped back to their size twice, at two
*different* offsets drawn per image: the first uniform over the
``(2 * max_shift + 1) ** 2`` offsets, the second uniform over the other ones.
An image is consistent when the model's argmax is the same for both crops.
This is repeated for ``passes`` independent draws; the consistency is the
share of consistent (image, pass) pairs. Zhang takes two random 224 crops of a
256 ImageNet image; a 32x32 CIFAR image has no margin, hence the padding (and
with ``max_shift=4``, the same range as the standard pad-4 crop augmentation).
The accuracy of the unshifted images and of the shifted crops is reported
alongside.

*Circular consistency*, reported beside it from the same draws: each image is
rolled circularly (``np.roll``: what leaves one side enters at the other, no
fill) by the same two offsets with the opposite sign (``offset - max_shift``
pixels per axis, where the zero-filled shift moves the content by
``max_shift - offset``: the same distribution of shifts, the offsets being
uniform on ``0 .. 2 max_shift``), and an image is consistent when both rolled
copies get the same class. A network
with circular padding and adaptive polyphase sampling (``resnet(aps=True,
padding="circular")``) is exactly invariant to circular shifts (100% up to
float rounding); a zero-filled shift moves the content across a border of
zeros instead, which no such network is exactly invariant to.

Protocol of :func:`consistency_curve`, for each distance ``d = 1 .. max_shift``:
the prediction for the unshifted image is compared with the prediction for
the image moved by a vector drawn uniformly among the ``8 d`` whole-pixel
vectors of length ``d`` in the max norm (``max(|dy|, |dx|) = d``), padded by
``max_shift`` pixels of ``fill``. Its consistency at ``d`` is the share of
images whose prediction does not change.
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from pcw_keras.io import pyplot, save_figure, write_text_atomic
from pcw_keras.data.imageset import ImageSet
from pcw_keras.layers import AugShift
from pcw_keras.normalization import CIFAR_MEAN, CIFAR_STD, normalize
from pcw_keras.layers._checks import check_int_range


def consistency(
    model: keras.Model,
    dataset,
    *,
    max_shift: int = 4,
    passes: int = 5,
    fill: str = "zero",
    batch_size: int = 256,
    seed: int = 0,
    mean: Sequence[float] = CIFAR_MEAN,
    std: Sequence[float] = CIFAR_STD,
    verbose: int = 1,
) -> dict:
    """Share of images whose predicted class survives two different random shifts.

    Parameters
    ----------
    model : keras.Model or callable
        Maps normalised images ``(B, H, W, C)`` to class scores. An
        :class:`pcw_keras.training.AugShiftModel` is evaluated as its
        classifier; a callable returning NumPy scores, such as an exported
        model (:class:`pcw_keras.export.served.TFLiteClassifier`), is called as it is.
    dataset : ImageSet or tuple
        uint8 images and their labels: an :class:`ImageSet` or ``(images, labels)``.
    max_shift : int
        Largest shift in pixels on each axis, ``>= 1``.
    passes : int
        Independent draws of the two shifts per image, ``>= 1``.
    fill : {"zero", "reflect", "replicate"}
        What enters at the border (see :class:`pcw_keras.layers.AugShift`).
    batch_size : int
        Images per forward pass (each pass runs ``2 * batch_size`` crops).
    seed : int
        Seed of the shifts: the same seed gives the same crops.
    mean, std : sequence of float
        Normalisation ``(uint8 / 255 - mean) / std``, as in training.
    verbose : int
        1 shows a progress bar.

    Returns
    -------
    dict
        ``consistency`` (in ``[0, 1]``), ``consistency_per_pass``,
        ``circular_consistency`` and ``circular_consistency_per_pass`` (the
        same draws, opposite sign, as circular shifts), ``accuracy`` (unshifted images),
        ``accuracy_shifted`` (all crops), ``max_shift``, ``passes``, ``fill``,
        ``images``.

    Example
    -------
    >>> test = load_split("cifar10-mini", "test")  # doctest: +SKIP
    >>> consistency(model, test, max_shift=4, passes=5)["consistency"]  # doctest: +SKIP
    0.912
    """
    check_int_range("passes", passes, 1)
    model, images, labels, shifter = _prepare(model, dataset, max_shift, fill, batch_size)
    rng = np.random.default_rng(seed)
    count, side = len(images), 2 * max_shift + 1
    first = rng.integers(0, side * side, size=(passes, count))
    second = (first + 1 + rng.integers(0, side * side - 1, size=(passes, count))) % (side * side)
    offsets = [np.stack(np.divmod(index, side), axis=-1).astype("int32") for index in (first, second)]

    agree, agree_circular = np.zeros(passes), np.zeros(passes)
    right_shifted = 0
    right = 0
    for rows, batch, batch_labels in _normalized_batches(images, labels, batch_size, mean, std, verbose):
        right += int((_predict(model, batch) == batch_labels).sum())
        for p in range(passes):
            both = np.concatenate([_shift(shifter, batch, o[p, rows]) for o in offsets])
            predicted = _predict(model, both)
            view1, view2 = predicted[: len(batch)], predicted[len(batch) :]
            agree[p] += int((view1 == view2).sum())
            right_shifted += int((view1 == batch_labels).sum() + (view2 == batch_labels).sum())
            # moves the content by o - max_shift, the zero-filled shift by max_shift - o: opposite signs, the same
            # distribution (o is uniform on the grid, symmetric about max_shift); kept so, the committed files used it
            rolled = _predict(model, np.concatenate([roll(batch, o[p, rows] - max_shift) for o in offsets]))
            agree_circular[p] += int((rolled[: len(batch)] == rolled[len(batch) :]).sum())
    per_pass, per_pass_circular = agree / count, agree_circular / count
    return {
        "consistency": float(per_pass.mean()),
        "consistency_per_pass": [float(v) for v in per_pass],
        "circular_consistency": float(per_pass_circular.mean()),
        "circular_consistency_per_pass": [float(v) for v in per_pass_circular],
        "accuracy": right / count,
        "accuracy_shifted": right_shifted / (2 * passes * count),
        "max_shift": max_shift,
        "passes": passes,
        "fill": fill,
        "images": count,
    }


def roll(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each image rolled circularly by its own ``(dy, dx)`` (``np.roll`` on height and width).

    Parameters
    ----------
    images : np.ndarray
        ``(N, H, W, C)``.
    shifts : np.ndarray
        ``(N, 2)`` integers; ``+1`` moves the content one pixel down (right).
    """
    return np.stack([np.roll(image, (int(dy), int(dx)), axis=(0, 1)) for image, (dy, dx) in zip(images, shifts)])


def ring(distance: int) -> np.ndarray:
    """The ``8 * distance`` integer vectors ``(dy, dx)`` with ``max(|dy|, |dx|) == distance``."""
    span = np.arange(-distance, distance + 1)
    dy, dx = np.meshgrid(span, span, indexing="ij")
    on_ring = np.maximum(np.abs(dy), np.abs(dx)) == distance
    return np.stack([dy[on_ring], dx[on_ring]], axis=-1)


def consistency_curve(
    model: keras.Model,
    dataset,
    *,
    max_shift: int = 8,
    fill: str = "zero",
    batch_size: int = 256,
    seed: int = 0,
    mean: Sequence[float] = CIFAR_MEAN,
    std: Sequence[float] = CIFAR_STD,
    verbose: int = 1,
) -> dict:
    """Consistency between the unshifted image and the image moved by exactly 1, 2, ... ``max_shift`` pixels.

    See the module docstring for the protocol. Parameters as in :func:`consistency`.

    Returns
    -------
    dict
        ``shift`` (``[1, ..., max_shift]``), ``consistency`` and ``accuracy``
        (of the moved images) per distance, ``accuracy_unshifted``, ``fill``,
        ``images``.
    """
    model, images, labels, shifter = _prepare(model, dataset, max_shift, fill, batch_size)
    rng = np.random.default_rng(seed)
    count = len(images)
    distances = list(range(1, max_shift + 1))
    moves = [ring(d)[rng.integers(0, 8 * d, size=count)] for d in distances]

    same = np.zeros(max_shift)
    right = np.zeros(max_shift)
    right_unshifted = 0
    for rows, batch, batch_labels in _normalized_batches(images, labels, batch_size, mean, std, verbose):
        reference = _predict(model, batch)
        right_unshifted += int((reference == batch_labels).sum())
        for index, move in enumerate(moves):
            # Offset max_shift is the unshifted image; moving by +d means cropping d earlier.
            predicted = _predict(model, _shift(shifter, batch, max_shift - move[rows]))
            same[index] += int((predicted == reference).sum())
            right[index] += int((predicted == batch_labels).sum())
    return {
        "shift": distances,
        "consistency": [float(v) for v in same / count],
        "accuracy": [float(v) for v in right / count],
        "accuracy_unshifted": right_unshifted / count,
        "fill": fill,
        "images": count,
    }


def write_curves_csv(curves: Mapping[str, dict], path: str | os.PathLike) -> None:
    """Writes ``{label: curve}`` as CSV rows ``model,shift,consistency,accuracy`` (atomically)."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["model", "shift", "consistency", "accuracy"])
    for label, curve in curves.items():
        for row in zip(curve["shift"], curve["consistency"], curve["accuracy"]):
            writer.writerow([label, row[0], f"{row[1]:.6f}", f"{row[2]:.6f}"])
    write_text_atomic(path, text.getvalue())


def plot_curves(curves: Mapping[str, dict], path: str | os.PathLike, title: str = "Consistency versus shift distance") -> None:
    """Plots ``{label: curve}`` (consistency in % against shift in pixels) to a PNG file (atomically)."""
    figure, axes = pyplot().subplots(figsize=(5.5, 3.8), dpi=120)
    for label, curve in curves.items():
        axes.plot(curve["shift"], [100 * v for v in curve["consistency"]], marker="o", label=label)
    axes.set_xlabel("shift distance (pixels, max norm)")
    axes.set_ylabel("consistency with the unshifted image (%)")
    axes.set_title(title)
    axes.set_xticks(list(next(iter(curves.values()))["shift"]))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path, format="png")


def _as_arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(dataset, ImageSet):
        return dataset.images, np.asarray(dataset.labels)
    if isinstance(dataset, tuple) and len(dataset) == 2:
        images, labels = np.asarray(dataset[0]), np.asarray(dataset[1])
        if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(labels) or len(images) == 0:
            raise ValueError(
                "`dataset` arrays must be uint8 images (N, H, W, C) and N labels, N > 0. "
                f"Received: images {images.dtype} {images.shape}, labels {labels.shape}"
            )
        return images, labels
    raise ValueError(f"`dataset` must be an ImageSet or an (images, labels) tuple. Received: dataset={type(dataset).__name__}")


def _prepare(model, dataset, max_shift: int, fill: str, batch_size: int):
    """Checks the shared arguments; ``(model, images, labels, shifter)``.

    A training wrapper needs no unwrapping: in inference mode an
    ``AugShiftModel`` or ``PlacementModel`` is its inner model.
    """
    check_int_range("max_shift", max_shift, 1)
    check_int_range("batch_size", batch_size, 1)
    images, labels = _as_arrays(dataset)
    return model, images, labels, _shifter(max_shift, fill, images.shape)


def _normalized_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, mean, std, verbose: int):
    """``(rows, normalised images, labels)`` per batch, with a progress bar over the images."""
    progress = keras.utils.Progbar(len(images), verbose=verbose, unit_name="image")
    for start in range(0, len(images), batch_size):
        rows = slice(start, min(start + batch_size, len(images)))
        yield rows, normalize(images[rows], mean, std), labels[rows]
        progress.update(rows.stop)


def _shifter(max_shift: int, fill: str, shape) -> AugShift:
    shifter = AugShift(max_shift, fill)  # validates `fill`
    shifter.build((None,) + tuple(shape[1:]))  # validates `max_shift` against the image size
    return shifter


def _shift(shifter: AugShift, images: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(shifter.apply_offsets(images, offsets.astype("int32")))


def _predict(model, images) -> np.ndarray:
    logits = model.predict_on_batch(images) if isinstance(model, keras.Model) else model(images)
    return np.argmax(keras.ops.convert_to_numpy(logits), axis=-1)
