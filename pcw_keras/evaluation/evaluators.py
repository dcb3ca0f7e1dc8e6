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

    Each batch goes through one compiled scorer that places the uint8
    patches on their canvases (:class:`~pcw_keras.layers.CanvasPlacement`),
    runs the model and takes the argmax on the device: the host sends 32x32
    uint8 patches and cell indices (a ninth of a 3x3 canvas's pixels, a
    quarter of its bytes per pixel) and receives one label per canvas; a
    short last batch is padded to a multiple of :data:`PAD_MULTIPLE`.
    ``benchmarks/canvas_evaluation.py`` measures it beside the model's own
    inference rate (``docs/benchmarks.md``); one ``predict`` call per pass
    measured slower than a ``predict_on_batch`` per batch.

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
        correct = 0
        for (patches, cells), labels in batches:
            right = _predict_padded(scorer, patches, cells) == labels
            correct += int(right.sum())
            hits += np.bincount(cells, weights=right, minlength=cells_total)
            seen += np.bincount(cells, minlength=cells_total)
        per_pass.append(correct / len(imageset))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_cell = hits / seen
    return {
        "accuracy": float(np.mean(per_pass)),
        "accuracy_per_pass": [float(a) for a in per_pass],
        "per_cell_accuracy": [float(a) for a in per_cell],
    }


PAD_MULTIPLE = 32
"""A short last batch is padded to a multiple of this many canvases: at most one more traced shape, and at most
``PAD_MULTIPLE - 1`` canvases computed in vain per pass."""


def _predict_padded(scorer: keras.Model, patches: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The scorer's labels for one batch, padded to a multiple of :data:`PAD_MULTIPLE` canvases."""
    size = len(patches)
    padding = -size % PAD_MULTIPLE
    if padding:
        patches = np.concatenate([patches, np.zeros((padding, *patches.shape[1:]), patches.dtype)])
        cells = np.concatenate([cells, np.zeros(padding, cells.dtype)])
    return np.asarray(scorer.predict_on_batch((patches, cells)))[:size]


def _placement_scorer(model, grid: int, patch_shape: tuple, feed: str) -> keras.Model:
    """``(uint8 patches, cells) -> predicted label``: canvas placement, ``model`` and argmax in one graph.

    The placement computes in the model's compute dtype, so that a bfloat16 model gets a bfloat16 canvas.
    """
    patches = keras.Input(tuple(patch_shape), dtype="uint8", name="patches")
    cells = keras.Input((), dtype="int32", name="cells")
    if feed == "patches":
        scores = model((patches, cells), training=False)
    else:
        compute_dtype = next((layer.compute_dtype for layer in model.layers if layer.weights), "float32")
        canvases = CanvasPlacement(grid, dtype=compute_dtype, name="placement")((patches, cells))
        scores = model(canvases, training=False)
    return keras.Model((patches, cells), keras.ops.argmax(scores, axis=-1), name=f"{model.name}_scorer")
