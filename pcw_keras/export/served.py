"""An exported ``.tflite`` model as a classifier of normalised images, for the evaluators (e.g. shift consistency)."""
from __future__ import annotations

import json
import os

import numpy as np

from pcw_keras.export.tflite import LiteRTModel
from pcw_keras.runs import CIFAR, Normalization

REPORT_FILE = "export_report.json"


class TFLiteClassifier:
    """``classifier(normalised images) -> float32 logits`` through the LiteRT interpreter.

    The evaluators feed what a Keras model takes, images normalised with the
    export's mean and std; a uint8-input export gets them back as pixels
    (rounded, as a camera would give them), a float input takes them as
    they are, and an int8 input or output is (de)quantised by
    :class:`~pcw_keras.export.tflite.LiteRTModel`.

    Parameters
    ----------
    path : path
        A ``.tflite`` file. Its normalisation is read from the
        ``export_report.json`` beside it (``pcw export`` writes one), else CIFAR's.
    threads : int
        Interpreter threads.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a TFLite model the interpreter can load.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int = 1):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"No .tflite model at {self.path!r}.")
        with open(self.path, "rb") as handle:
            content = handle.read()
        try:
            self.runner = LiteRTModel(content, threads=threads)
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{self.path!r} is not a TFLite model that loads here: {str(error).splitlines()[0]}") from None
        self.normalization = _normalization_beside(self.path)
        stem = os.path.splitext(os.path.basename(self.path))[0]
        # An export folder's model.tflite is named after its folder.
        self.name = os.path.basename(os.path.dirname(os.path.abspath(self.path))) if stem == "model" else stem

    @property
    def input_dtype(self) -> str:
        return np.dtype(self.runner.input["dtype"]).name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if self.input_dtype == "uint8":
            mean, std = np.asarray(self.normalization.mean, np.float32), np.asarray(self.normalization.std, np.float32)
            images = np.clip(np.rint((images * std + mean) * 255.0), 0, 255).astype(np.uint8)
        return self.runner(images)


def _normalization_beside(path: str) -> Normalization:
    report = os.path.join(os.path.dirname(os.path.abspath(path)), REPORT_FILE)
    if not os.path.isfile(report):
        return CIFAR
    with open(report, encoding="utf-8") as handle:
        described = json.load(handle).get("input", {})
    if "mean" not in described or "std" not in described:
        return CIFAR
    return Normalization(tuple(described["mean"]), tuple(described["std"]), described.get("preprocess", "cifar"))
