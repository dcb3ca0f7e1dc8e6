"""Wall time of ``pcw report --quick`` on a full-width ResNet-18 at 96x96; prints (and writes) one JSON object.

The run directory is made here as ``pcw train`` begins one: the recipe's
``recipe.yaml`` and its model at initial weights as ``best.keras`` (the time
does not depend on the weights). ``pcw report RUN --quick`` then runs in a
child process, timed from its start to its exit: Python and Keras imports,
loading the model, every analysis, the figures and the pages. The report's
own ``seconds`` (the analyses alone) is recorded beside it.

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
"""The issue's bound for ``--quick`` on this model and CPU."""


def make_run(recipe_name: str, folder: str) -> None:
    """A run directory of ``recipe_name`` at full width: its recipe and its initial model."""
    from pcw_keras import recipes

    recipe = recipes.load(recipe_name)
    with open(os.path.join(folder, "recipe.yaml"), "w", encoding="utf-8") as handle:
        handle.write(recipe.to_yaml())
    classes = recipe.num_classes([str(k) for k in range(10)])
    recipe.build_model(num_classes=classes, steps_per_epoch=10).save(os.path.join(folder, "best.keras"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="location-3x3-gapnet", help="A 96x96 canvas recipe (full width).")
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        run = os.path.join(scratch, "run")
        os.mkdir(run)
        make_run(args.recipe, run)
        report = os.path.join(scratch, "report")
        command = [sys.executable, "-m", "pcw_keras.cli", "report", run, "--quick", "--out", report]
        began = time.perf_counter()
        finished = subprocess.run(command, check=False, capture_output=True, text=True)
        wall = time.perf_counter() - began
        if finished.returncode != 0:
            raise SystemExit(finished.stdout[-2000:] + finished.stderr[-2000:])
        with open(os.path.join(report, "report.json"), encoding="utf-8") as handle:
            measured = json.load(handle)
    result = {
        "command": f"pcw report RUN --quick  (RUN: {args.recipe}, full width, initial weights)",
        "wall_seconds": round(wall, 1),
        "analysis_seconds": measured["seconds"],
        "limit_seconds": LIMIT_SECONDS,
        "under_limit": wall < LIMIT_SECONDS,
        "model": {key: measured["model"][key] for key in ("name", "input_shape", "parameters", "flops")},
        "options": measured["options"],
        "backend": measured["environment"]["backend"],
        "machine": machine.describe(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
