"""Seeded batches of indices into an in-memory image array: the part every pipeline shares."""
from __future__ import annotations

import tensorflow as tf


def index_batches(count: int, *, batch_size: int, training: bool, seed: int, drop_remainder: bool | None = None) -> tf.data.Dataset:
    """Batches of ``(int32 indices (B,), int64 step key (2,))`` covering ``count`` items once per pass.

    Training shuffles the order anew at every pass over the dataset (one key
    per pass, from ``seed``: the same seed repeats the same sequence of
    passes); ``drop_remainder`` defaults to ``training`` so a compiled step sees
    one shape. The step key seeds whatever a pipeline draws per batch (cells,
    flips, crops) with ``tf.random.stateless_*``. The cardinality is declared,
    so Keras knows an epoch's length.

    Raises
    ------
    ValueError
        A bad ``batch_size``, or fewer items than one full batch with ``drop_remainder``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    drop_remainder = training if drop_remainder is None else drop_remainder
    if drop_remainder and count < batch_size:
        raise ValueError(
            f"Cannot make a full batch of {batch_size} from {count} images "
            "(drop_remainder=True). Use a smaller `batch_size` or more images."
        )

    def one_pass(key):
        order = tf.range(count, dtype=tf.int32)
        if training:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([key, -1]))
        return (
            tf.data.Dataset.from_tensor_slices(order)
            .batch(batch_size, drop_remainder=drop_remainder)
            .enumerate()
            .map(lambda step, indices: (indices, tf.stack([key, step])))
        )

    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    batches = count // batch_size if drop_remainder else -(-count // batch_size)
    return keys.flat_map(one_pass).apply(tf.data.experimental.assert_cardinality(batches))
