"""Test accuracy of trained runs in each inference precision: the measurement behind ``--precision auto``.

For each run directory, evaluates its ``best.keras`` with the run's own
evaluator (the paper's protocol for canvas runs: ``grid * grid`` placements
of the test split) in the inference form of every precision
(:func:`pcw_keras.models.inference.inference_model`), on the test split of
``--data``, and writes one JSON object: per run, the accuracy in each
precision, the difference to float32 in points, and the seconds each took.
``tests/test_inference_form.py`` holds the committed file to the 0.2-point
criterion.

Usage::

    python scripts/inference_precision_study.py runs/demo/*-* --data ../shared/data/cifar10-jpeg.tar.gz \\
        --out docs/studies/inference_precision/accuracy.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pcw_keras import machine

PRECISIONS = ("float32", "bfloat16")


def study_run(run_dir: str, data: str | None) -> dict:
    """The accuracy of one run's ``best.keras`` in each precision."""
    from pcw_keras.evaluation.evaluators import evaluate
    from pcw_keras.runs import Run

    run = Run(run_dir, **{"data.source": data})
    test_images = run.test_images()
    row = {"run": os.path.relpath(run_dir), "recipe": run.recipe.name, "width": run.recipe["model"]["width"],
           "test_images": len(test_images), "accuracy": {}, "seconds": {}}
    for precision in PRECISIONS:
        model = run.model("best", precision=precision)
        began = time.perf_counter()
        scores = evaluate(model, test_images, task=run.recipe["task"], evaluation=run.recipe["evaluation"],
                          seed=run.recipe["training"]["seed"])
        row["seconds"][precision] = round(time.perf_counter() - began, 1)
        row["accuracy"][precision] = scores["accuracy"]
        print(f"{run_dir}: {precision} {100 * scores['accuracy']:.2f}%", file=sys.stderr, flush=True)
    row["bfloat16_minus_float32_points"] = round(100 * (row["accuracy"]["bfloat16"] - row["accuracy"]["float32"]), 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="Run directories (with best.keras).")
    parser.add_argument("--data", help="Test data source (default: each run's recipe's).")
    parser.add_argument("--out", required=True, help="JSON file to write.")
    args = parser.parse_args()

    import keras

    from pcw_keras.io import write_json_atomic

    rows = [study_run(run_dir, args.data) for run_dir in args.runs]
    report = {
        "command": " ".join(["python", os.path.relpath(__file__), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "backend": keras.backend.backend(),
        "keras": keras.__version__, "cpu": machine.cpu_model(), "cpus": os.cpu_count(), "precisions": list(PRECISIONS),
        "runs": rows,
        "largest_difference_points": max(abs(row["bfloat16_minus_float32_points"]) for row in rows),
    }
    write_json_atomic(args.out, report)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
