"""What an export starts from: a run directory, a ``.keras`` file or a model, and its recipe."""
from __future__ import annotations

import os
from dataclasses import dataclass

import keras

from pcw_keras.models.precision import as_float32
from pcw_keras.recipes import Recipe

CHECKPOINTS = ("best", "last")
RECIPE_FILE = "recipe.yaml"


@dataclass
class ExportSource:
    """The model to export, the recipe and test images that check it, and the label names.

    ``model`` is the plain classifier: a training wrapper is already unwrapped.
    """

    model: keras.Model
    recipe: Recipe
    test_images: object
    labels: list[str]
    origin: str


def _recipe_from(recipe, model_dir: str | None) -> Recipe:
    from pcw_keras.recipes import load

    if isinstance(recipe, Recipe):
        return recipe
    if recipe is not None:
        return load(recipe)
    if model_dir is not None and os.path.isfile(os.path.join(model_dir, RECIPE_FILE)):
        return load(os.path.join(model_dir, RECIPE_FILE))
    raise ValueError(
        "An export is checked on the test split of the model's recipe, and none was found: "
        f"pass a run directory, a .keras file inside one, or `recipe=` (CLI: --recipe). Received: recipe={recipe!r}"
    )


def plain_classifier(model: keras.Model) -> keras.Model:
    """The classifier inside a training wrapper (e.g. AugShift's two-view trainer), else ``model``."""
    inner = getattr(model, "classifier", None)
    return inner if isinstance(inner, keras.Model) else model


def labels_for(recipe: Recipe, class_names: list[str]) -> list[str]:
    """One name per output: the CIFAR classes (image task) or ``cell k (row r, col c)`` (location task)."""
    task = recipe["task"]
    if task["kind"] == "image":
        return list(class_names)
    grid = task["grid"]
    return [f"cell {k} (row {k // grid}, col {k % grid})" for k in range(grid * grid)]


def load_source(
    source: str | os.PathLike | keras.Model,
    *,
    recipe: str | os.PathLike | Recipe | None = None,
    checkpoint: str = "best",
) -> ExportSource:
    """Resolves what to export: the plain classifier, in float32.

    A training wrapper gives its classifier, and a mixed-precision model its
    float32 copy (same weights; :func:`pcw_keras.models.precision.as_float32`),
    which the export formats serve or quantize.

    Parameters
    ----------
    source : path or keras.Model
        A run directory (its ``best.keras`` or ``last.keras``), a ``.keras``
        file (its recipe is the ``recipe.yaml`` beside it unless ``recipe`` is
        given) or a model (``recipe`` required).
    recipe : str, path or Recipe, optional
        The recipe whose test split checks the export; a name or YAML file.
    checkpoint : {"best", "last"}
        Which model of a run directory.

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist, or a run directory lacks the checkpoint.
    ValueError
        ``source`` is neither a run directory nor a ``.keras`` file, or no
        recipe can be found.
    """
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"`checkpoint` must be one of {CHECKPOINTS}. Received: checkpoint={checkpoint!r}")
    if isinstance(source, keras.Model):
        model, model_dir, origin = source, None, f"<in-memory model {source.name!r}>"
    else:
        path = os.fspath(source)
        if os.path.isdir(path):
            model_dir = path
            path = os.path.join(path, f"{checkpoint}.keras")
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"{model_dir!r} has no {checkpoint}.keras: pass a run directory that finished an epoch, "
                    "or a .keras file."
                )
        elif os.path.isfile(path):
            if not path.endswith(".keras"):
                raise ValueError(f"Export takes a run directory or a .keras file. Received: source={path!r}")
            model_dir = os.path.dirname(os.path.abspath(path))
        else:
            raise FileNotFoundError(f"No run directory or .keras file at {path!r}.")
        model, origin = keras.models.load_model(path), path
    resolved = _recipe_from(recipe, model_dir)
    model = as_float32(plain_classifier(model))
    test_images = resolved.load_images("test")
    return ExportSource(
        model=model, recipe=resolved, test_images=test_images,
        labels=labels_for(resolved, test_images.class_names), origin=origin,
    )
