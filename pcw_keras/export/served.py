"""Exported models (``.tflite``, SavedModel) as classifiers of normalised images, for the evaluators (e.g. shift consistency)."""
from __future__ import annotations

import json
import os

import numpy as np

from pcw_keras.export.savedmodel import SAVED_MODEL_FILE, SavedModelRunner
from pcw_keras.export.tflite import LiteRTModel
from pcw_keras.normalization import CIFAR, Normalization

REPORT_FILE = "export_report.json"


class _ServedClassifier:
    """``classifier(normalised images) -> float32 logits`` for an exported model.

    The evaluators feed what a Keras model takes, images normalised with the
    export's mean and std (read from the ``export_report.json`` that ``pcw
    export`` writes beside the model, else CIFAR's); a uint8-input export
    gets them back as pixels, rounded as a camera would give them.
    """

    input_dtype: str

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.normalization = normalization_beside(self.path)
        stem = os.path.splitext(os.path.basename(os.path.normpath(self.path)))[0]
        # An export folder's model.tflite is named after its folder.
        self.name = os.path.basename(os.path.dirname(os.path.abspath(self.path))) if stem == "model" else stem

    def _inputs(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if self.input_dtype != "uint8":
            return images
        return self.normalization.pixels(images)


class TFLiteClassifier(_ServedClassifier):
    """A ``.tflite`` export through the LiteRT interpreter (float32, float16 or int8; see :class:`_ServedClassifier`).

    An int8 input or output is (de)quantised by
    :class:`~pcw_keras.export.tflite.LiteRTModel`.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a TFLite model the interpreter can load.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int = 1):
        super().__init__(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"No .tflite model at {self.path!r}.")
        with open(self.path, "rb") as handle:
            content = handle.read()
        try:
            self.runner = LiteRTModel(content, threads=threads)
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{self.path!r} is not a TFLite model that loads here: {str(error).splitlines()[0]}") from None
        self.input_dtype = np.dtype(self.runner.input["dtype"]).name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.runner(self._inputs(images))


class SavedModelClassifier(_ServedClassifier):
    """A SavedModel export's ``serve`` endpoint (see :class:`_ServedClassifier`)."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self.normalization = normalization_beside(os.path.join(self.path, SAVED_MODEL_FILE))  # its report is inside
        self.runner = SavedModelRunner(self.path)
        self.input_dtype = self.runner.input_dtype

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.runner(self._inputs(images))


def normalization_beside(path: str) -> Normalization:
    """The normalisation that the ``export_report.json`` in the folder of ``path`` records, else CIFAR's."""
    report = os.path.join(os.path.dirname(os.path.abspath(path)), REPORT_FILE)
    if not os.path.isfile(report):
        return CIFAR
    with open(report, encoding="utf-8") as handle:
        described = json.load(handle).get("input", {})
    if "mean" not in described or "std" not in described:
        return CIFAR
    return Normalization(tuple(described["mean"]), tuple(described["std"]), described.get("preprocess", "cifar"))
