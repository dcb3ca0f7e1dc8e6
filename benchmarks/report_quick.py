"""Wall time of ``pcw report --quick`` on a canvas model and two classifiers; prints (and writes) one JSON object.

Each model is timed as ``pcw report`` meets it, at initial weights (the time
does not depend on the weights):

- ``location-3x3-gapnet``: a run directory of the canvas recipe at full
  width (96x96 canvases; ranking and attack, no consistency step);
- ``cifar10-resnet18``: a run directory of the CIFAR classifier recipe at
  full width (32x32 inputs; ranking, attack and shift consistency);
- ``resnet50-96``: ``keras.applications.ResNet50(weights=None,
  input_shape=(96, 96, 3), classes=10)`` saved as ``.keras``, reported as a
  classifier (``--task classification --preprocess imagenet``) on
  ``cifar10-mini`` resized to 96x96 (written here as an ``.npz``).

A run directory is made as ``pcw train`` begins one: the recipe's
``recipe.yaml`` (data: ``cifar10-mini``) and its model as ``best.keras``.
``pcw report MODEL --quick`` then runs in a child process, timed from its
start to its exit: Python and Keras imports, loading the model, every
analysis, the figures and the pages. The report's own ``seconds`` (the
analyses alone) is recorded beside it.

Usage::

    flock -x /work/cpu.lock python benchmarks/report_quick.py --out docs/bench/report_quick_cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from pcw_keras import machine

LIMIT_SECONDS = 120
"""The bound that ``--quick`` is held to on a 2-core CPU."""
CASES = ("location-3x3-gapnet", "cifar10-resnet18", "resnet50-96")
"""The models timed, in the order they run by default."""


def make_run(recipe_name: str, folder: str) -> list[str]:
    """A run directory of ``recipe_name`` at full width in ``folder``; returns MODEL and its options."""
    from pcw_keras import recipes

    recipe = recipes.load(recipe_name, **{"data.source": "cifar10-mini"})
    with open(os.path.join(folder, "recipe.yaml"), "w", encoding="utf-8") as handle:
        handle.write(recipe.to_yaml())
    classes = recipe.num_classes([str(k) for k in range(10)])
    recipe.build_model(num_classes=classes, steps_per_epoch=10).save(os.path.join(folder, "best.keras"))
    return [folder]


def make_resnet50(folder: str, size: int = 96) -> list[str]:
    """Keras' ResNet-50 at ``size`` x ``size``, 10 classes, and cifar10-mini resized to it; returns MODEL and its options."""
    import keras
    import numpy as np
    import tensorflow as tf

    from pcw_keras.data import load_split

    keras.utils.set_random_seed(0)
    path = os.path.join(folder, "resnet50.keras")
    keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=10).save(path)
    arrays = {}
    for split in ("train", "test"):
        images = load_split("cifar10-mini", split)
        resized = tf.image.resize(np.asarray(images.images), (size, size), method="bilinear")
        arrays[f"x_{split}"] = np.clip(np.round(resized.numpy()), 0, 255).astype("uint8")
        arrays[f"y_{split}"] = np.asarray(images.labels)
    data = os.path.join(folder, f"cifar10-mini-{size}.npz")
    np.savez(data, **arrays)
    return [path, "--task", "classification", "--preprocess", "imagenet", "--images", data]


MADE = {
    "location-3x3-gapnet": ("a run directory of recipes.load('location-3x3-gapnet'), full width", "cifar10-mini"),
    "cifar10-resnet18": ("a run directory of recipes.load('cifar10-resnet18'), full width", "cifar10-mini"),
    "resnet50-96": ("keras.applications.ResNet50(weights=None, input_shape=(96, 96, 3), classes=10)",
                    "cifar10-mini resized to 96x96"),
}
"""How each case's MODEL is made, and its images (recorded beside its time)."""


def time_report(case: str, scratch: str) -> dict:
    """Makes the model of ``case`` and times ``pcw report MODEL --quick`` on it in a child process."""
    folder = os.path.join(scratch, case)
    os.mkdir(folder)
    model = make_resnet50(folder) if case == "resnet50-96" else make_run(case, folder)
    report = os.path.join(scratch, f"{case}-report")
    command = [sys.executable, "-m", "pcw_keras.cli", "report", *model, "--quick", "--out", report]
    began = time.perf_counter()
    finished = subprocess.run(command, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if finished.returncode != 0:
        raise SystemExit(finished.stdout[-2000:] + finished.stderr[-2000:])
    with open(os.path.join(report, "report.json"), encoding="utf-8") as handle:
        measured = json.load(handle)
    words = [os.path.basename(word) if os.path.isabs(word) else word for word in command[3:]]
    return {
        "case": case,
        "made": MADE[case][0],
        "images": MADE[case][1],
        "command": "pcw " + " ".join(words),
        "wall_seconds": round(wall, 1),
        "analysis_seconds": measured["seconds"],
        "under_limit": wall < LIMIT_SECONDS,
        "consistency": measured["consistency"] is not None,
        "model": {key: measured["model"][key] for key in ("name", "kind", "task", "input_shape", "parameters", "flops")},
        "options": measured["options"],
        "backend": measured["environment"]["backend"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"Comma-separated, of {', '.join(CASES)}.")
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        runs = [time_report(case, scratch) for case in args.cases.split(",")]
    result = {
        "about": "pcw report MODEL --quick, timed from start to exit in a child process; models at initial weights",
        "limit_seconds": LIMIT_SECONDS,
        "runs": runs,
        "machine": machine.describe(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
