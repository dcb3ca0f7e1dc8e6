"""The verdict over several ``pcw demo`` seeds: mean table, seed spread of the gaps, and the verdict with it.

Usage::

    python scripts/demo_seeds.py docs/studies/demo/seed0 docs/studies/demo/seed1 docs/studies/demo/seed2 \
        --out docs/studies/demo/seeds.json

Each folder holds a demo run's own ``results.json``. The output keeps the
per-seed accuracies, their means, the sample standard deviation (points) of
the GAPNet - PermuteNet gap per task, and
:func:`pcw_keras.demo_verdict.verdict` on the mean table (and PermuteNet's
mean image validation curve) with that spread.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from pcw_keras.choices import CANVAS_TASKS
from pcw_keras.demo_verdict import verdict

NETWORKS = ("GAPNet", "PermuteNet")


def summarize(runs: list[dict]) -> dict:
    """Per-seed accuracies, their means, the gaps' seed spread (points) and the verdict on the mean table."""
    mean = {net: {task: statistics.fmean(run[net][task] for run in runs) for task in CANVAS_TASKS} for net in NETWORKS}
    gaps = {task: [100 * (run["GAPNet"][task] - run["PermuteNet"][task]) for run in runs] for task in CANVAS_TASKS}
    spread = {task: statistics.stdev(values) for task, values in gaps.items()}
    curves = [run["runs"]["image-permutenet"]["validation_curve"] for run in runs]
    mean_curve = [statistics.fmean(epoch) for epoch in zip(*curves)]
    table = {**mean, "grid": runs[0]["grid"], "chance": runs[0]["chance"],
             "runs": {"image-permutenet": {"validation_curve": mean_curve}}}
    decided = verdict(table, spread=spread)
    return {"seeds": [run["seed"] for run in runs],
            "per_seed": [{net: run[net] for net in NETWORKS} for run in runs],
            "mean": mean, "gap_points": gaps, "gap_spread_points": spread,
            "verdict": decided.kind, "summary": decided.sentence}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("runs", nargs="+", type=Path, help="demo run folders (each with results.json)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = [json.loads((folder / "results.json").read_text()) for folder in args.runs]
    args.out.write_text(json.dumps(summarize(runs), indent=2) + "\n")
    print(f"Written {args.out}")


if __name__ == "__main__":
    main()
