"""Canvas-task scores recomputed from a saved model's own predictions, for checking what a run reports.

The recomputation shares only the placements with
:func:`pcw_keras.evaluation.evaluate_canvas` (the canvases of
:func:`pcw_keras.data.evaluation_passes`, same seed): it reads each sample's
cell from where its canvas is non-zero, predicts batch by batch
(``predict_on_batch``: a model that draws at random in inference, like
PermuteNet, draws as it did in the evaluation when its random state is set
back), and counts hits per pass and per cell itself.
"""
import numpy as np

from pcw_keras.data import evaluation_passes


def cells_of(canvases: np.ndarray, grid: int) -> np.ndarray:
    """The cell holding each canvas' image: the only cell with non-zero pixels (row-major index)."""
    size, height, width, channels = canvases.shape
    blocks = np.abs(canvases).reshape(size, grid, height // grid, grid, width // grid, channels).sum(axis=(2, 4, 5))
    assert (np.count_nonzero(blocks.reshape(size, -1), axis=1) == 1).all(), "a canvas with content in several cells"
    return np.argmax(blocks.reshape(size, -1), axis=1)


def recompute(model, imageset, *, grid: int, task: str, passes: int | None, seed: int, batch_size: int) -> dict:
    """``accuracy`` (mean over passes), ``accuracy_per_pass``, ``per_cell_accuracy`` and ``per_cell_count``."""
    hits, seen, per_pass = np.zeros(grid * grid), np.zeros(grid * grid), []
    for dataset in evaluation_passes(imageset, grid=grid, task=task, batch_size=batch_size, passes=passes, seed=seed):
        right = 0
        for canvases, labels in dataset:
            cells = cells_of(canvases, grid)
            if task == "location":
                np.testing.assert_array_equal(cells, labels)  # the location label is the cell
            correct = np.argmax(np.asarray(model.predict_on_batch(canvases)), axis=-1) == labels
            right += int(correct.sum())
            hits += np.bincount(cells, weights=correct, minlength=grid * grid)
            seen += np.bincount(cells, minlength=grid * grid)
        per_pass.append(right / len(imageset))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_cell = hits / seen
    return {"accuracy": float(np.mean(per_pass)), "accuracy_per_pass": per_pass,
            "per_cell_accuracy": [float(v) for v in per_cell], "per_cell_count": seen}


def weighted_cell_mean(per_cell_accuracy, per_cell_count) -> float:
    """The per-cell accuracies averaged with their sample counts (cells never drawn left out)."""
    accuracy, count = np.asarray(per_cell_accuracy, float), np.asarray(per_cell_count, float)
    drawn = count > 0
    return float((accuracy[drawn] * count[drawn]).sum() / count[drawn].sum())
