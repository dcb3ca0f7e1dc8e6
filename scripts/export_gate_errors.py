"""Relative error and top-1 agreement of every package model kind at every quantize mode: the export gate's basis.

Trains small runs of each model kind (width 1/16 on a synthetic 4-class
dataset: what the test suite trains), exports each at every format and
quantize mode with the gate, and writes one JSON line per export with its
check figures. ``pcw_keras.export.gate.MAX_RELATIVE_ERROR`` is chosen above
the largest relative error measured here, with a margin.

Usage: python scripts/export_gate_errors.py OUT.jsonl
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

KINDS = {
    "location-3x3-gapnet": {"task.grid": 2, "training.epochs": 3},
    "location-3x3-permutenet": {"task.grid": 2, "training.epochs": 3},
    "cifar10-resnet18": {"training.epochs": 1},
    "cifar10-resnet18-blurpool": {"training.epochs": 1},
    "cifar10-resnet18-augshift": {"training.epochs": 1},
}
EXPORTS = [("savedmodel", "none"), ("tflite", "none"), ("tflite", "float16"), ("tflite", "dynamic"),
           ("tflite", "int8"), ("tflite", "int16x8")]
FIGURES = ("outcome", "top1_agreement", "relative_error", "max_relative_error", "decided_share", "max_abs_diff")


def main(out: str) -> None:
    import keras

    from pcw_keras import machine, recipes
    from pcw_keras.runs import export
    from pcw_keras.training import train

    root = tempfile.mkdtemp()
    rng = np.random.default_rng(0)
    data = os.path.join(root, "tiny.npz")
    np.savez(data, x_train=rng.integers(0, 256, (160, 32, 32, 3), dtype=np.uint8), y_train=np.arange(160) % 4,
             x_test=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), y_test=np.arange(40) % 4)
    with open(out, "w", encoding="utf-8") as handle:
        for name, overrides in KINDS.items():
            keras.utils.set_random_seed(1234)
            recipe = recipes.load(name, **{"data.source": data, "model.width": 0.0625, "training.batch_size": 16,
                                           "training.jit_compile": False, "evaluation.passes": 1, **overrides})
            run = os.path.join(root, name)
            train(recipe, run, verbose=0)
            for format, quantize in EXPORTS:
                row = {"recipe": name, "format": format, "quantize": quantize, "width": 0.0625,
                       "cpu": machine.cpu_model()}
                try:
                    check = export(run, os.path.join(root, f"{name}-{format}-{quantize}"), format=format,
                                         quantize=quantize, check_samples=48, calibration_steps=16, latency_runs=3,
                                         verbose=False)["check"]
                    row.update({key: check[key] for key in FIGURES})
                except Exception as error:  # noqa: BLE001 -- recorded: a mode that does not convert this model
                    row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
                handle.write(json.dumps(row) + "\n")
                handle.flush()
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1])
