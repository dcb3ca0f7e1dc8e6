"""Collects classification runs into a markdown table and one consistency-versus-shift plot.

Each run directory needs ``results.json`` (from ``pcw train``) and
``consistency.json`` (from ``pcw evaluate consistency``). Run::

    python scripts/translation_report.py plain=runs/t/plain blurpool=runs/t/blurpool \\
        augshift=runs/t/augshift --out docs/studies/translation_curve
"""
from __future__ import annotations

import argparse
import json
import os

from pcw_keras.evaluation import plot_curves, write_curves_csv


def read(run_dir: str, name: str) -> dict:
    with open(os.path.join(run_dir, name), encoding="utf-8") as handle:
        return json.load(handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    parser.add_argument("--out", required=True, help="Path prefix of the .csv and .png written.")
    args = parser.parse_args()

    curves = {}
    print("| model | top-1 best-val epoch | top-1 last | consistency best-val epoch | consistency last | train s |")
    print("|---|---:|---:|---:|---:|---:|")
    for item in args.runs:
        label, run_dir = item.split("=", 1)
        results, shifted = read(run_dir, "results.json"), read(run_dir, "consistency.json")
        curves[label] = shifted["curve"]
        print(
            f"| {label} | {100 * results['test_accuracy_best']:.1f} | {100 * results['test_accuracy_last']:.1f} "
            f"| {100 * results['consistency_best']:.1f} | {100 * results['consistency_last']:.1f} "
            f"| {results.get('train_seconds_this_session', float('nan')):.0f} |"
        )
    write_curves_csv(curves, f"{args.out}.csv")
    plot_curves(curves, f"{args.out}.png", title="CIFAR-10 test subset, ResNet-18 (reduced)")
    print(f"Written {args.out}.csv and {args.out}.png")


if __name__ == "__main__":
    main()
