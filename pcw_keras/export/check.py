"""Real inputs for checking an export, Keras' reference outputs, parity figures and latency."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from pcw_keras.data import canvas_dataset
from pcw_keras.export.gate import judge


@dataclass
class CheckInputs:
    """Check inputs: as the export takes them (``images``), as Keras takes them, and their labels (None without a recipe)."""

    images: np.ndarray
    keras_inputs: np.ndarray
    labels: np.ndarray | None


def canvas_samples(task: dict, imageset, count: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` normalised float32 canvases of a canvas ``task`` (a recipe's task section) and their labels.

    The images are placed as in evaluation (no flip, a uniform random cell
    each); passes over ``imageset`` with seeds ``seed``, ``seed + 1``... are
    concatenated until ``count`` samples are reached.
    """
    canvases, labels, pass_seed = [], [], seed
    total = 0
    while total < count:
        data = canvas_dataset(
            imageset, grid=task["grid"], task=task["kind"], batch_size=256, training=False, seed=pass_seed, flip=False
        )
        for batch, batch_labels in data:
            canvases.append(batch)
            labels.append(batch_labels)
            total += len(batch)
            if total >= count:
                break
        pass_seed += 1
    return np.concatenate(canvases)[:count], np.concatenate(labels)[:count]


def check_inputs(source, count: int, *, input_dtype: str, seed: int = 0) -> CheckInputs:
    """Test inputs of ``source``'s own kind for a parity check, in the export's input dtype.

    Keras gets the pixels normalised as the exported graph normalises them
    (:func:`pcw_keras.normalization.normalize` with the source's mean and std,
    bit-identical in NumPy and TensorFlow), so both see identical inputs. Inputs of no recipe (calibration images) have no
    labels (``None``): the check then compares with Keras alone.
    """
    pixels, labels = source.pixels("test", count, seed=seed)
    normalization = source.normalization
    keras_inputs = normalization.apply(pixels)
    return CheckInputs(pixels if input_dtype == "uint8" else keras_inputs, keras_inputs,
                       None if labels is None else np.asarray(labels))


def keras_logits(model: keras.Model, inputs: np.ndarray, *, batch_size: int, after_batch: Callable | None = None) -> np.ndarray:
    """Inference-mode outputs of ``model`` in batches, one traced call per batch.

    ``after_batch(index)`` runs before each batch (the check uses it to set
    the permutation that the exported model drew for that batch).
    """
    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    outputs = []
    for index, start in enumerate(range(0, len(inputs), batch_size)):
        if after_batch is not None:
            after_batch(index)
        outputs.append(np.asarray(call(tf.constant(inputs[start : start + batch_size]))))
    return np.concatenate(outputs)


def batches(array: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``batch_size`` (the last one may be shorter)."""
    for start in range(0, len(array), batch_size):
        yield array[start : start + batch_size]


def parity(exported: np.ndarray, reference: np.ndarray, exported_for_accuracy: np.ndarray,
           keras_for_accuracy: np.ndarray, labels: np.ndarray | None, *, quantize: str,
           min_agreement: float | None = None, max_error: float | None = None) -> dict:
    """The gate's figures (:func:`pcw_keras.export.gate.judge`) and, with real labels, both accuracies.

    ``reference`` is Keras run on the same inputs with the same permutations
    as the export; the accuracies are each model's own (for a random
    permutation, each with its own draws). Without labels (check inputs of
    no recipe) there is no accuracy: agreement with Keras is the figure.
    """
    check = judge(exported, reference, quantize=quantize, min_agreement=min_agreement, max_error=max_error)
    if labels is not None:
        check["accuracy_keras"] = float(np.mean(keras_for_accuracy.argmax(-1) == labels))
        check["accuracy_exported"] = float(np.mean(exported_for_accuracy.argmax(-1) == labels))
    return check


def median_latency_ms(call: Callable[[], object], *, runs: int, warmup: int = 5) -> dict:
    """Median (and 10th/90th percentile) wall time of ``call()`` in milliseconds over ``runs`` calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return {
        "median_ms": float(np.median(times)),
        "p10_ms": float(np.percentile(times, 10)),
        "p90_ms": float(np.percentile(times, 90)),
        "runs": runs,
        "batch": 1,
    }
