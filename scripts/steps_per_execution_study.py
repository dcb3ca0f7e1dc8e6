"""Does ``steps_per_execution`` speed up ``model.fit``? Prints one JSON object.

GAPNet ResNet-18 at grid 3 (96x96), batch 48, no XLA, fed one in-memory batch
repeated (so only the step and Keras' loop are timed). The settings alternate
``--rounds`` times so that both see the same drift of a shared machine.

Usage::

    python scripts/steps_per_execution_study.py --width 0.125 --steps 96 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import time

import keras
import numpy as np
import tensorflow as tf

from pcw_keras.models import create_model


def fit_rate(width: float, steps_per_execution: int, steps: int, dataset: tf.data.Dataset) -> float:
    """Images/s of ``steps`` training steps, after a warm-up of two executions."""
    keras.utils.set_random_seed(0)
    model = create_model("gapnet_resnet18", num_classes=9, input_shape=(96, 96, 3), width=width)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
        steps_per_execution=steps_per_execution,
    )
    model.fit(dataset, steps_per_epoch=2 * steps_per_execution, epochs=1, verbose=0)
    began = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * 48 / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--steps", type=int, default=96, help="Timed steps per run (a multiple of each setting).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settings", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(size=(48, 96, 96, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensors((x, np.arange(48) % 9)).repeat()
    rates = {setting: [] for setting in args.settings}
    for _ in range(args.rounds):
        for setting in args.settings:
            rates[setting].append(round(fit_rate(args.width, setting, args.steps, dataset), 1))
    print(json.dumps({"width": args.width, "steps": args.steps, "images_per_s": rates,
                      "best": {setting: max(values) for setting, values in rates.items()}}))


if __name__ == "__main__":
    main()
