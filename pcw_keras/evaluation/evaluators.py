"""Test-time evaluators found by type: what a recipe's ``evaluation:`` section names, run on a saved model.

Each evaluator takes a model, the test images and the recipe's ``task`` and
``evaluation`` sections, and returns one result shape: a dict with
``evaluator`` (its type), ``accuracy`` (the test accuracy as the paper
measures it) and the evaluator's own figures beside. :func:`evaluate` picks
the evaluator from ``evaluation["type"]`` (by default, from the task: the
canvas tasks use ``"canvas"``, classification ``"consistency"``), as
big_vision's evaluators are built from their config.

Example
-------
>>> scores = evaluate(model, test_images, task={"kind": "location", "grid": 3},
...                   evaluation={"batch_size": 256, "passes": None}, seed=0)  # doctest: +SKIP
>>> scores["evaluator"], scores["accuracy"]  # doctest: +SKIP
('canvas', 0.97)
"""
from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from pcw_keras.choices import CANVAS_TASKS
from pcw_keras.data.canvas import FEEDS, CanvasBatches, pass_seeds
from pcw_keras.data.imageset import ImageSet
from pcw_keras.layers import CanvasPlacement

EVALUATORS: dict[str, Callable[..., dict]] = {}
"""Evaluator type -> ``evaluator(model, test_images, *, task, evaluation, seed) -> dict``."""

TASKS_OF: dict[str, tuple[str, ...]] = {}
"""Evaluator type -> the task kinds it evaluates."""


def register_evaluator(name: str, tasks: tuple[str, ...]) -> Callable:
    """Registers ``evaluator(model, test_images, *, task, evaluation, seed) -> dict`` under ``name``, for ``tasks``."""
    def register(evaluator: Callable[..., dict]) -> Callable[..., dict]:
        if name in EVALUATORS:
            raise ValueError(f"An evaluator named {name!r} is already registered.")
        EVALUATORS[name], TASKS_OF[name] = evaluator, tuple(tasks)
        return evaluator

    return register


def evaluator_type(task: dict, evaluation: dict) -> str:
    """The evaluator a recipe names: ``evaluation["type"]``, else the task's own (canvas or consistency).

    Raises
    ------
    ValueError
        An unknown type, or one that does not evaluate the recipe's task.
    """
    name = evaluation.get("type") or ("canvas" if task["kind"] in CANVAS_TASKS else "consistency")
    if name not in EVALUATORS:
        raise ValueError(f"`evaluation.type` must be one of {tuple(EVALUATORS)}. Received: type={name!r}")
    if task["kind"] not in TASKS_OF[name]:
        raise ValueError(f"The {name!r} evaluator evaluates the tasks {TASKS_OF[name]}. "
                         f"Received: evaluation.type={name!r} for task.kind={task['kind']!r}")
    return name


def evaluate(model, test_images: ImageSet, *, task: dict, evaluation: dict, seed: int) -> dict:
    """Test scores of ``model`` by the evaluator that ``evaluation`` names (see the module's docstring)."""
    name = evaluator_type(task, evaluation)
    return {"evaluator": name, **EVALUATORS[name](model, test_images, task=task, evaluation=evaluation, seed=seed)}


@register_evaluator("canvas", tasks=CANVAS_TASKS)
def _canvas(model, test_images: ImageSet, *, task: dict, evaluation: dict, seed: int) -> dict:
    """The paper's canvas protocol: mean accuracy over random placements (:func:`evaluate_canvas`)."""
    return evaluate_canvas(model, test_images, grid=task["grid"], task=task["kind"],
                           batch_size=evaluation["batch_size"], passes=evaluation.get("passes"), seed=seed)


@register_evaluator("consistency", tasks=("classification",))
def _consistency(model, test_images: ImageSet, *, task: dict, evaluation: dict, seed: int) -> dict:
    """Classification: unshifted accuracy and shift consistency (:func:`pcw_keras.evaluation.consistency`)."""
    from pcw_keras.evaluation.consistency import consistency

    return consistency(model, test_images, max_shift=evaluation["consistency_max_shift"],
                       passes=evaluation["consistency_passes"], batch_size=evaluation["batch_size"], seed=seed,
                       verbose=0)


def evaluate_canvas(
    model,
    imageset: ImageSet,
    *,
    grid: int,
    task: str,
    batch_size: int = 256,
    passes: int | None = None,
    seed: int = 0,
    feed: str = "canvas",
) -> dict:
    """Accuracy of ``model``'s argmax over :func:`pcw_keras.data.evaluation_passes`.

    Each pass is one ``predict`` call of a scorer that places the uint8
    patches on their canvases (:class:`~pcw_keras.layers.CanvasPlacement`),
    runs the model and takes the argmax on the device, over batches of
    ``batch_size``: the host sends 32x32 uint8 patches and cell indices and
    receives one label per canvas, with no round trip per batch
    (``benchmarks/canvas_evaluation.py`` measures it beside the model's own
    inference rate).

    Parameters
    ----------
    model : keras.Model
        Maps canvases (``feed="canvas"``) or ``(uint8 patches, cells)``
        (``feed="patches"``, a model starting with ``CanvasPlacement``)
        to one score per label.
    imageset, grid, task, batch_size, passes, seed
        As in :func:`pcw_keras.data.evaluation_passes`; the same seeds give
        the same canvases.
    feed : {"canvas", "patches"}
        What the model takes.

    Returns
    -------
    dict
        ``accuracy`` (mean over passes), ``accuracy_per_pass`` (list) and
        ``per_cell_accuracy`` (``grid * grid`` floats, row-major: the accuracy
        over all passes of the samples whose image was in that cell; NaN for a
        cell never drawn).
    """
    if feed not in FEEDS:
        raise ValueError(f"`feed` must be one of {FEEDS}. Received: feed={feed!r}")
    scorer = _placement_scorer(model, grid, imageset.images.shape[1:], feed)
    cells_total = grid * grid
    hits = np.zeros(cells_total)
    seen = np.zeros(cells_total)
    per_pass = []
    for pass_seed in pass_seeds(grid, passes, seed):
        batches = CanvasBatches(imageset, grid=grid, task=task, batch_size=batch_size, training=False,
                                seed=pass_seed, flip=False, feed="patches")
        drawn = [batches[index] for index in range(len(batches))]
        patches = np.concatenate([batch_patches for (batch_patches, _), _ in drawn])
        cells = np.concatenate([batch_cells for (_, batch_cells), _ in drawn])
        labels = np.concatenate([batch_labels for _, batch_labels in drawn])
        predicted = np.asarray(scorer.predict((patches, cells), batch_size=batch_size, verbose=0))
        right = predicted == labels
        hits += np.bincount(cells, weights=right, minlength=cells_total)
        seen += np.bincount(cells, minlength=cells_total)
        per_pass.append(int(right.sum()) / len(imageset))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_cell = hits / seen
    return {
        "accuracy": float(np.mean(per_pass)),
        "accuracy_per_pass": [float(a) for a in per_pass],
        "per_cell_accuracy": [float(a) for a in per_cell],
    }


def _placement_scorer(model, grid: int, patch_shape: tuple, feed: str) -> keras.Model:
    """``(uint8 patches, cells) -> predicted label``: canvas placement, ``model`` and argmax in one graph."""
    patches = keras.Input(tuple(patch_shape), dtype="uint8", name="patches")
    cells = keras.Input((), dtype="int32", name="cells")
    if feed == "patches":
        scores = model((patches, cells), training=False)
    else:
        scores = model(CanvasPlacement(grid, dtype="float32", name="placement")((patches, cells)), training=False)
    return keras.Model((patches, cells), keras.ops.argmax(scores, axis=-1), name=f"{model.name}_scorer")
