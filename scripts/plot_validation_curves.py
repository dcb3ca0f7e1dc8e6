"""Plot validation-accuracy curves from run directories (metrics.csv) and/or a JSON of curves; one PNG.

Usage::

    python scripts/plot_validation_curves.py --out docs/figures/x.png --title "..." \
        --run "width 1/8=docs/studies/image3x3_step_budget/permutenet" --run "width 1/4=runs/width_probe/permutenet-w0.25"

The JSON maps a label to a list of validation accuracies in percent (one per
epoch); a ``--run LABEL=DIR`` reads ``DIR/metrics.csv``'s ``val_accuracy``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os

from pcw_keras.io import save_figure


def read_run(path: str) -> list[float]:
    """``val_accuracy`` (percent) per epoch of a run directory or of its ``metrics.csv`` file."""
    path = os.path.join(path, "metrics.csv") if os.path.isdir(path) else path
    with open(path, newline="", encoding="utf-8") as handle:
        return [100 * float(row["val_accuracy"]) for row in csv.DictReader(handle)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="validation accuracy per epoch")
    parser.add_argument("--json", action="append", default=[], help="A JSON file {label: [percent per epoch]}.")
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--chance", type=float, help="Draw chance level (percent).")
    args = parser.parse_args()
    curves: dict[str, list[float]] = {}
    for path in args.json:
        with open(path, encoding="utf-8") as handle:
            curves.update(json.load(handle)["curves"])
    for item in args.run:
        label, path = item.split("=", 1)
        curves[label] = read_run(path)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for label, values in curves.items():
        axes.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
    if args.chance is not None:
        axes.axhline(args.chance, color="#999999", linestyle="--", label="chance")
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title(args.title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, args.out, dpi=110)
    print(json.dumps({label: [round(v, 1) for v in values] for label, values in curves.items()}))


if __name__ == "__main__":
    main()
