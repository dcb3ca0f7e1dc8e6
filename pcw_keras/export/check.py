"""Real inputs for checking an export, Keras' reference outputs, parity figures and latency."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from pcw_keras.data import CIFAR_MEAN, CIFAR_STD, canvas_dataset
from pcw_keras.export.graph import normalize_tf


@dataclass
class CheckInputs:
    """Canvases of a recipe's task: as the export takes them (``images``), as Keras takes them, and labels."""

    images: np.ndarray
    keras_inputs: np.ndarray
    labels: np.ndarray


def canvas_samples(recipe, imageset, count: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` normalised float32 canvases of ``recipe``'s task and their labels.

    The images are placed as in evaluation (no flip, a uniform random cell
    each); passes over ``imageset`` with seeds ``seed``, ``seed + 1``... are
    concatenated until ``count`` samples are reached.
    """
    task = recipe["task"]
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


def to_uint8(canvases: np.ndarray) -> np.ndarray:
    """Normalised canvases back to pixels: images exactly, empty cells as the rounded mean colour."""
    pixels = (canvases * np.asarray(CIFAR_STD, np.float32) + np.asarray(CIFAR_MEAN, np.float32)) * 255.0
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def check_inputs(source, count: int, *, input_dtype: str, seed: int = 0, batch_size: int = 32) -> CheckInputs:
    """Test inputs of ``source``'s own kind for a parity check, in the export's input dtype.

    Keras gets the pixels normalised by the same ops as the exported graph
    (:func:`normalize_tf` with the source's mean and std), so both see
    identical inputs. Inputs without labels (a model of no recipe) are
    labelled with Keras' own top-1.
    """
    pixels, labels = source.pixels("test", count, seed=seed)
    normalization = source.normalization
    keras_inputs = normalize_tf(pixels, normalization.mean, normalization.std).numpy()
    if labels is None:
        labels = keras_logits(source.model, keras_inputs, batch_size=batch_size).argmax(-1)
    return CheckInputs(pixels if input_dtype == "uint8" else keras_inputs, keras_inputs, np.asarray(labels))


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


TIE_TOLERANCE = 0.01
"""Softmax probability within which two of Keras' classes count as tied (see :func:`parity`)."""


def parity(exported: np.ndarray, reference: np.ndarray, exported_for_accuracy: np.ndarray,
           keras_for_accuracy: np.ndarray, labels: np.ndarray) -> dict:
    """Output differences and top-1 agreement against the reference, and both accuracies.

    ``reference`` is Keras run on the same inputs with the same permutations
    as the export; the accuracies are each model's own (for a random
    permutation, each with its own draws).

    ``top1_agreement`` counts exact argmax matches. ``top1_agreement_up_to_ties``,
    which the export gate uses, also accepts an exported top-1 that Keras
    itself ranks within :data:`TIE_TOLERANCE` (one percentage point of
    softmax probability) of its own top-1: a model still undecided between
    two classes (early in training, near chance) flips such ties under any
    rounding, while a decided model's flips all count. The criterion reads
    Keras' outputs only, so a poor export cannot widen it.
    """
    difference = np.abs(exported.astype(np.float64) - reference.astype(np.float64))
    chosen = exported.argmax(-1)
    probabilities = _softmax(reference.astype(np.float64))
    tied = probabilities[np.arange(len(chosen)), chosen] >= probabilities.max(-1) - TIE_TOLERANCE
    return {
        "max_abs_diff": float(difference.max()),
        "mean_abs_diff": float(difference.mean()),
        "top1_agreement": float(np.mean(chosen == reference.argmax(-1))),
        "top1_agreement_up_to_ties": float(np.mean(tied)),
        "tie_tolerance": TIE_TOLERANCE,
        "accuracy_keras": float(np.mean(keras_for_accuracy.argmax(-1) == labels)),
        "accuracy_exported": float(np.mean(exported_for_accuracy.argmax(-1) == labels)),
    }


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


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
