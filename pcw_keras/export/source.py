"""What an export starts from: a model (or a SavedModel), its input normalisation, and real inputs to check it on.

An :class:`ExportSource` is resolved from a run directory, a ``.keras`` file
or a model by :func:`pcw_keras.runs.export_source`: the exporter reads saved
models and never imports the recipes or the runs.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from pcw_keras.export.graph import INPUT_DTYPES
from pcw_keras.export.savedmodel import SAVED_MODEL_FILE, SavedModelRunner
from pcw_keras.export.served import REPORT_FILE, normalization_beside
from pcw_keras.normalization import CIFAR, Normalization

LABELS_FILE = "labels.txt"


@dataclass
class ExportSource:
    """The plain float32 model to export, how it wants its pixels, and where its check inputs come from.

    ``kind`` is ``"canvas"`` (a location or image task: canvases of the
    recipe's test split), ``"images"`` (a classifier: the recipe's test
    images) or ``"calibration"`` (any other model: the ``--calibration``
    images, resized to its input, scored by agreement with Keras).
    ``images(split)`` gives a split of the recipe's data; ``task`` is the
    recipe's task section (``{"kind": "model"}`` for a model of no recipe).
    """

    model: keras.Model
    normalization: Normalization
    kind: str
    labels: list[str]
    origin: str
    name: str
    task: dict
    images: Callable | None = None
    calibration: str | None = None

    def pixels(self, split: str, count: int, *, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``count`` uint8 model inputs of ``split`` and their labels (None for calibration images).

        Canvas tasks place test images as in evaluation (no flip, a uniform
        random cell each); the empty cells take the mean colour rounded to
        integers, as a uint8 export sees them.
        """
        from pcw_keras.export.check import canvas_samples

        if self.kind == "canvas":
            canvases, labels = canvas_samples(self.task, self.images(split), count, seed=seed)
            return CIFAR.pixels(canvases), labels
        if self.kind == "images":
            images = self.images(split)
            rows = np.random.default_rng(seed).permutation(len(images))[:count]
            return images.images[rows], images.labels[rows]
        return calibration_pixels(self.calibration, split, count, self.model.inputs[0].shape[1:3], seed=seed), None


def calibration_pixels(source: str, split: str, count: int, size, *, seed: int) -> np.ndarray:
    """``count`` uint8 images of ``source`` (its ``split``, else its test split), resized to ``size``."""
    from PIL import Image

    from pcw_keras.data import load_split

    try:
        images = load_split(source, split).images
    except FileNotFoundError:
        images = load_split(source, "test").images
    rows = np.random.default_rng(seed).permutation(len(images))[:count]
    height, width = int(size[0]), int(size[1])
    if images.shape[1:3] == (height, width):
        return images[rows]
    return np.stack([np.asarray(Image.fromarray(images[row]).resize((width, height), Image.BILINEAR)) for row in rows])


@dataclass
class SavedModelSource:
    """A SavedModel directory to convert to TFLite, and the ``calibration`` images that check and calibrate it.

    The SavedModel itself is the reference of the check: its outputs on the
    images (resized to its input), with its own top-1 as labels. ``described``
    holds what the SavedModel's ``export_report.json`` says of it
    (``recipe``, ``task``, ``permutation``), else a model of its own.
    """

    runner: SavedModelRunner
    path: str
    normalization: Normalization
    labels: list[str]
    calibration: str
    described: dict

    @property
    def input_dtype(self) -> str:
        """``"uint8"`` (pixels, normalised inside the SavedModel) or ``"float32"`` (normalised images)."""
        return self.runner.input_dtype

    def pixels(self, split: str, count: int, *, seed: int) -> tuple[np.ndarray, None]:
        """``count`` uint8 calibration images of ``split`` (else test), resized to the SavedModel's input; no labels."""
        return calibration_pixels(self.calibration, split, count, self.runner.input_shape[1:3], seed=seed), None

    def inputs(self, pixels: np.ndarray) -> np.ndarray:
        """What the ``serve`` endpoint takes: uint8 pixels as they are, float32 ones normalised."""
        if self.input_dtype == "uint8":
            return pixels
        return self.normalization.apply(pixels)


def load_saved_model(path: str | os.PathLike, *, calibration: str | None, preprocess: str | None = None) -> SavedModelSource:
    """A SavedModel directory with a ``serve`` endpoint (as ``pcw export --format savedmodel`` writes), to convert.

    Parameters
    ----------
    path : path
        The SavedModel directory.
    calibration : str
        Images (folder, ``.tar.gz``, ``.npz``) that check and calibrate the
        conversion; they are resized to the SavedModel's input size.
    preprocess : str, optional
        How the SavedModel wants its pixels (:data:`pcw_keras.normalization.PREPROCESS`)
        when no ``export_report.json`` in it says so (default ``cifar``).
        A uint8 input normalises inside the SavedModel: the name is then
        recorded only.

    Raises
    ------
    ValueError
        No ``calibration``; no ``serve`` endpoint, or one that does not take
        fixed-size uint8 or float32 images; or a ``preprocess`` other than
        the one its ``export_report.json`` records.
    """
    path = os.fspath(path)
    if calibration is None:
        raise ValueError(
            f"{path!r} is a SavedModel: its TFLite export is checked against it and calibrated on images you give: "
            "pass calibration= (CLI: --calibration FOLDER|TARBALL|NPZ)."
        )
    runner = SavedModelRunner(path)
    shape = runner.input_shape
    if runner.input_dtype not in INPUT_DTYPES or len(shape) != 4 or None in shape[1:]:
        raise ValueError(
            f"A SavedModel converts when its `serve` endpoint takes fixed-size (batch, height, width, channels) images "
            f"of {' or '.join(INPUT_DTYPES)}. Received: {runner.input_dtype} {list(shape)} at {path!r}"
        )
    report = os.path.join(path, REPORT_FILE)
    described = {}
    if os.path.isfile(report):
        normalization = normalization_beside(os.path.join(path, SAVED_MODEL_FILE))
        if preprocess not in (None, normalization.name):
            raise ValueError(f"{report!r} records preprocess={normalization.name!r} for this SavedModel. "
                             f"Received: preprocess={preprocess!r}")
        with open(report, encoding="utf-8") as handle:
            described = json.load(handle)
    else:
        normalization = Normalization.named(preprocess or "cifar")
    labels_file = os.path.join(path, LABELS_FILE)
    if os.path.isfile(labels_file):
        with open(labels_file, encoding="utf-8") as handle:
            labels = handle.read().splitlines()
    else:
        outputs = runner(np.zeros((1, *shape[1:]), runner.input_dtype)).shape[-1]
        labels = [f"output {k}" for k in range(outputs)]
    defaults = {"recipe": os.path.basename(os.path.normpath(path)), "task": {"kind": "model"}, "permutation": None}
    return SavedModelSource(runner=runner, path=path, normalization=normalization, labels=labels, calibration=calibration,
                            described={key: described.get(key, value) for key, value in defaults.items()})
