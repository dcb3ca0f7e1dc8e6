"""What an export starts from: a model, its input normalisation, and real inputs of its own kind to check it on."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from pcw_keras.recipes import Recipe
from pcw_keras.runs import CHECKPOINTS, CIFAR, ModelFile, Normalization, Run, open_model, output_labels


@dataclass
class ExportSource:
    """The plain float32 model to export, how it wants its pixels, and where its check inputs come from.

    ``kind`` is ``"canvas"`` (a location or image task: canvases of the
    recipe's test split), ``"images"`` (a classifier: the recipe's test
    images) or ``"calibration"`` (any other model: the ``--calibration``
    images, resized to its input, scored by agreement with Keras).
    """

    model: keras.Model
    normalization: Normalization
    kind: str
    labels: list[str]
    origin: str
    name: str
    task: dict
    recipe: Recipe | None = None
    images: Callable | None = None
    calibration: str | None = None

    def pixels(self, split: str, count: int, *, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``count`` uint8 model inputs of ``split`` and their labels (None for calibration images).

        Canvas tasks place test images as in evaluation (no flip, a uniform
        random cell each); the empty cells take the mean colour rounded to
        integers, as a uint8 export sees them.
        """
        from pcw_keras.export.check import canvas_samples, to_uint8

        if self.kind == "canvas":
            canvases, labels = canvas_samples(self.recipe, self.images(split), count, seed=seed)
            return to_uint8(canvases), labels
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


def load_source(
    source: str | os.PathLike | keras.Model,
    *,
    recipe: str | os.PathLike | None = None,
    checkpoint: str = "best",
    calibration: str | None = None,
    preprocess: str | None = None,
    input_size: int | None = None,
) -> ExportSource:
    """Resolves what to export: the plain classifier, in float32, and its check data.

    A training wrapper (AugShift's two-view trainer) gives its classifier,
    and a mixed-precision model its float32 copy (same weights), which the
    export formats serve or quantize.

    Parameters
    ----------
    source : path or keras.Model
        A run directory (its ``best.keras`` or ``last.keras``), a ``.keras``
        file inside one, any ``.keras`` file (with
        ``calibration``), or an in-memory model (with ``recipe`` or ``calibration``).
    recipe : str or path, optional
        A recipe whose test split checks a model that is not in a run directory.
    checkpoint : {"best", "last"}
        Which model of a run directory.
    calibration : str, optional
        Images (folder, ``.tar.gz``, ``.npz``) that check and calibrate a
        model of no recipe; they are resized to its input size.
    preprocess : str, optional
        How such a model wants its pixels (:data:`pcw_keras.runs.PREPROCESS`; default ``cifar``).
    input_size : int, optional
        Its input size, when its input shape leaves it open.

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist, or a run directory lacks the checkpoint.
    ValueError
        ``source`` is not a model, or a model of no run and no recipe has no ``calibration``.
    """
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"`checkpoint` must be one of {CHECKPOINTS}. Received: checkpoint={checkpoint!r}")
    if isinstance(source, keras.Model):
        opened, model, origin = None, source, f"<in-memory model {source.name!r}>"
    else:
        opened = open_model(source, preprocess=preprocess, input_size=input_size)
        model, origin = opened.model(checkpoint), opened.origin
        if isinstance(opened, Run):
            return _from_recipe(opened.recipe, opened.images, model, origin)
    if recipe is not None:
        from pcw_keras.recipes import Recipe, load

        recipe = recipe if isinstance(recipe, Recipe) else load(recipe)
        return _from_recipe(recipe, recipe.load_images, _plain(model), origin)
    if calibration is None:
        raise ValueError(
            f"{origin} comes with no recipe, so its export is checked and calibrated on images you give: "
            "pass calibration= (CLI: --calibration FOLDER|TARBALL|NPZ), or a run directory."
        )
    normalization = opened.normalization if isinstance(opened, ModelFile) else Normalization.named(preprocess or "cifar")
    model = _plain(model)
    outputs = int(model.outputs[0].shape[-1])
    return ExportSource(model=model, normalization=normalization, kind="calibration",
                        labels=[f"output {k}" for k in range(outputs)], origin=origin,
                        name=os.path.splitext(os.path.basename(os.path.normpath(origin)))[0],
                        task={"kind": "model"}, calibration=calibration)


def _plain(model: keras.Model) -> keras.Model:
    from pcw_keras.models.precision import as_float32
    from pcw_keras.training import unwrap

    return as_float32(unwrap(model))


def _from_recipe(recipe, images: Callable, model: keras.Model, origin: str) -> ExportSource:
    return ExportSource(model=model, normalization=CIFAR, kind="canvas" if recipe.is_canvas else "images",
                        labels=output_labels(recipe, images("test").class_names), origin=origin, name=recipe.name,
                        task=dict(recipe["task"]), recipe=recipe, images=images)
