"""Plots test accuracy per epoch from ``demo_budget_study.py`` JSON lines (one curve per file and network).

    python scripts/plot_learning_curves.py docs/studies/image_*.jsonl --out docs/figures/demo_budget_curves.png
"""
from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pcw_keras.io import save_figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for path in args.files:
        curves: dict[str, list[tuple[int, float]]] = {}
        for line in open(path, encoding="utf-8"):
            row = json.loads(line)
            label = f"{row['net']} w={row['width']} ({os.path.basename(path).split('_lr')[-1].replace('.jsonl', '')})"
            curves.setdefault(label, []).append((row["epoch"], 100 * row["test_accuracy"]))
        for label, points in curves.items():
            epochs, accuracy = zip(*points)
            ax.plot(epochs, accuracy, marker="o", markersize=3, label=label,
                    linestyle="-" if "gapnet" in label else "--")
    ax.axhline(10, color="grey", linewidth=0.8, linestyle=":", label="chance (10%)")
    ax.set_xlabel("epoch (4,500 training images)")
    ax.set_ylabel("image-task test accuracy (%)")
    ax.set_title("Image task, 3x3 canvas, cifar10-mini: learning curves", fontsize=10)
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    save_figure(fig, args.out)


if __name__ == "__main__":
    main()
