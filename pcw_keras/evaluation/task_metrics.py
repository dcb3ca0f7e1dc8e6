"""Task metrics as callables ``metric(model) -> dict of floats``, for the attack evaluator.

Each returns the metric on the whole data and, for region attacks, inside and
outside the targeted region: the first key of the dict is the task's primary
metric.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from pcw_keras.choices import CANVAS_TASKS
from pcw_keras.evaluation.inputs import canvases, infer_grid, input_batches, uint8_patches
from pcw_keras.normalization import CIFAR, Normalization

Metric = Callable[[keras.Model], dict]


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    return batch_size


def _predict_logits(model: keras.Model, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([keras.ops.convert_to_numpy(model.predict_on_batch(inputs[i:i + batch_size]))
                           for i in range(0, len(inputs), batch_size)])


def _predict_labels(model: keras.Model, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    return np.argmax(_predict_logits(model, inputs, batch_size), axis=-1)


def _cross_entropy(logits: np.ndarray, labels) -> np.ndarray:
    """Per-sample softmax cross-entropy of logits (float64, numerically stable)."""
    logits = np.asarray(logits, "float64")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=-1))
    labels = np.broadcast_to(np.asarray(labels), (len(logits),))
    return log_norm - shifted[np.arange(len(logits)), labels]


def canvas_cell_scores(
    model: keras.Model, imageset, *, grid: int | None = None, task: str = "location", batch_size: int = 256,
    normalization: Normalization = CIFAR,
) -> dict:
    """Accuracy and cross-entropy of ``model`` with every image of ``imageset`` placed in each cell in turn.

    The paper draws a random cell per image and averages ``grid * grid``
    passes; placing every image in every cell is the same number of canvases
    and gives the exact per-cell accuracy, with no placement noise between
    the attacked models being compared. The canvases are the pipelines' own
    (:func:`pcw_keras.data.place_on_canvas` of normalised patches, no flip).
    The model's outputs are taken as logits.

    Returns
    -------
    dict
        ``accuracy`` and ``loss`` (mean softmax cross-entropy): ``(grid * grid,)``
        arrays, cell ``k`` = row ``k // grid``, column ``k % grid``.
    """
    if task not in CANVAS_TASKS:
        raise ValueError(f"`task` must be one of {CANVAS_TASKS}. Received: task={task!r}")
    batch_size = _check_batch_size(batch_size)
    patches = uint8_patches(imageset)
    grid = infer_grid(model, patches.shape[2], grid)
    classes = np.asarray(getattr(imageset, "labels", np.zeros(len(patches), "int64")))
    accuracy, loss = np.zeros(grid * grid), np.zeros(grid * grid)
    for cell in range(grid * grid):
        correct, total_loss = 0, 0.0
        for start in range(0, len(patches), batch_size):
            chunk = patches[start:start + batch_size]
            logits = _predict_logits(model, canvases(chunk, cell, grid, normalization), batch_size)
            expected = cell if task == "location" else classes[start:start + batch_size]
            correct += int(np.sum(np.argmax(logits, axis=-1) == expected))
            total_loss += float(_cross_entropy(logits, expected).sum())
        accuracy[cell], loss[cell] = correct / len(patches), total_loss / len(patches)
    return {"accuracy": accuracy, "loss": loss}


def canvas_metric(
    imageset,
    *,
    grid: int | None = None,
    task: str = "location",
    region: Sequence[int] | None = None,
    batch_size: int = 256,
    normalization: Normalization = CIFAR,
) -> Metric:
    """Canvas-task accuracy (every image in every cell), optionally split by a region of cells.

    Returns
    -------
    callable
        ``metric(model)`` -> ``{"accuracy", "loss", "per_cell_accuracy"}``
        plus, with ``region``, ``accuracy_in_region`` and ``loss_in_region``
        (patches in the targeted cells), ``accuracy_elsewhere`` and
        ``loss_elsewhere`` (patches in the other cells). The
        cross-entropy ``loss`` still moves when accuracy is saturated at 100%.
    """
    region = None if region is None else sorted({int(c) for c in region})

    def metric(model: keras.Model) -> dict:
        scores = canvas_cell_scores(model, imageset, grid=grid, task=task, batch_size=batch_size,
                                    normalization=normalization)
        per_cell = scores["accuracy"]
        result = {"accuracy": float(per_cell.mean()), "loss": float(scores["loss"].mean())}
        if region is not None:
            if not region or region[0] < 0 or region[-1] >= len(per_cell):
                raise ValueError(f"`region` must hold cells in [0, {len(per_cell)}). Received: region={region}")
            inside = np.zeros(len(per_cell), bool)
            inside[region] = True
            for suffix, cells in (("in_region", inside), ("elsewhere", ~inside)):
                for key in ("accuracy", "loss"):
                    result[f"{key}_{suffix}"] = float(scores[key][cells].mean()) if cells.any() else float("nan")
        result["per_cell_accuracy"] = [float(a) for a in per_cell]
        return result

    return metric


def agreement_metric(model: keras.Model, inputs, *, batch_size: int = 256) -> Metric:
    """Top-1 agreement with the unattacked ``model`` on ``inputs``: the metric of a model without a task of ours.

    A model of its own (an ImageNet classifier, a random network) has no
    labels for our inputs; switching off channels is then scored by how
    often its top-1 stays what it was.
    """
    inputs = np.asarray(inputs)
    if not len(inputs):
        raise ValueError("`inputs` must not be empty.")
    batch_size = _check_batch_size(batch_size)
    reference = _predict_labels(model, inputs, batch_size)

    def metric(candidate: keras.Model) -> dict:
        return {"agreement": float(np.mean(_predict_labels(candidate, inputs, batch_size) == reference))}

    return metric


def classification_metric(inputs, labels, *, batch_size: int = 256) -> Metric:
    """Top-1 accuracy of the model's argmax on ``inputs`` (model-ready float arrays) against ``labels``."""
    inputs, labels = np.asarray(inputs), np.asarray(labels)
    if len(inputs) != len(labels) or not len(inputs):
        raise ValueError(f"`inputs` and `labels` must be non-empty and as long. Received: {len(inputs)} and {len(labels)}")
    batch_size = _check_batch_size(batch_size)

    def metric(model: keras.Model) -> dict:
        return {"accuracy": float(np.mean(_predict_labels(model, inputs, batch_size) == labels))}

    return metric


def attack_metric(task: str, model: keras.Model, images, *, grid: int | None = None,
                  region: Sequence[int] | None = None, batch_size: int = 256, seed: int = 0,
                  normalization: Normalization = CIFAR) -> Metric:
    """The metric an attack on ``model`` is scored by, chosen by its ``task``.

    The canvas tasks (``location``, ``image``): :func:`canvas_metric` over
    every cell (``region`` splits it); ``classification``: top-1 accuracy of
    the test ``images`` (:func:`classification_metric`); ``features`` (a model
    without a task of ours): top-1 agreement with its intact self on canvases
    of the images (:func:`agreement_metric`).

    Raises
    ------
    ValueError
        An unknown task, or a ``region`` outside a canvas task.
    """
    if region is not None and task not in CANVAS_TASKS:
        raise ValueError(f"A region of cells needs a canvas task {CANVAS_TASKS}. Received: task={task!r}")
    if task in CANVAS_TASKS:
        return canvas_metric(images, grid=grid, task=task, region=region, batch_size=batch_size,
                             normalization=normalization)
    if task == "features":
        grid = infer_grid(model, images.images.shape[2], grid)
        inputs = np.concatenate(list(input_batches(images, batch_size, grid, seed, normalization)))
        return agreement_metric(model, inputs, batch_size=batch_size)
    if task == "classification":
        inputs = np.concatenate(list(input_batches(images, batch_size, normalization=normalization)))
        return classification_metric(inputs, images.labels, batch_size=batch_size)
    raise ValueError(f"`task` must be one of {CANVAS_TASKS + ('classification', 'features')}. Received: task={task!r}")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` counts, rows = true class, columns = predicted."""
    index = np.asarray(y_true, "int64").ravel() * num_classes + np.asarray(y_pred, "int64").ravel()
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def mean_iou(matrix: np.ndarray) -> float:
    """Mean over classes of ``TP / (TP + FP + FN)``, skipping classes absent from both truth and prediction.

    Example
    -------
    >>> mean_iou(confusion(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2))
    0.5833333333333333
    """
    tp = np.diag(matrix).astype("float64")
    union = matrix.sum(0) + matrix.sum(1) - tp
    present = union > 0
    return float(np.mean(tp[present] / union[present])) if present.any() else float("nan")


def segmentation_metric(
    images, masks, num_classes: int, *, region: np.ndarray | None = None, batch_size: int = 16
) -> Metric:
    """mIoU of a segmentation model's per-pixel argmax against integer ``masks``.

    Parameters
    ----------
    images : array ``(N, H, W, C)``
        Model-ready inputs.
    masks : array ``(N, H, W)``
        Class per pixel, in ``[0, num_classes)``.
    num_classes : int
    region : bool array ``(H, W)``, optional
        Pixels of the targeted region: adds ``miou_in_region`` and ``miou_elsewhere``.

    Returns
    -------
    callable
        ``metric(model)`` -> ``{"miou", "pixel_accuracy"[, "miou_in_region", "miou_elsewhere"]}``.
    """
    images, masks = np.asarray(images), np.asarray(masks)
    if images.ndim != 4 or masks.shape != images.shape[:3]:
        raise ValueError(
            f"`masks` must be (N, H, W) for images (N, H, W, C). Received: images {images.shape}, masks {masks.shape}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2. Received: num_classes={num_classes!r}")
    if masks.min() < 0 or masks.max() >= num_classes:
        raise ValueError(f"`masks` must lie in [0, {num_classes}). Received: [{masks.min()}, {masks.max()}]")
    batch_size = _check_batch_size(batch_size)
    if region is not None:
        region = np.asarray(region, bool)
        if region.shape != masks.shape[1:]:
            raise ValueError(f"`region` must be (H, W) = {masks.shape[1:]}. Received: shape={region.shape}")

    def metric(model: keras.Model) -> dict:
        predicted = _predict_labels(model, images, batch_size)
        result = {"miou": mean_iou(confusion(masks, predicted, num_classes)),
                  "pixel_accuracy": float(np.mean(predicted == masks))}
        if region is not None:
            inside = np.broadcast_to(region, masks.shape)
            result["miou_in_region"] = mean_iou(confusion(masks[inside], predicted[inside], num_classes))
            result["miou_elsewhere"] = mean_iou(confusion(masks[~inside], predicted[~inside], num_classes))
        return result

    return metric
