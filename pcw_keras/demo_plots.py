"""Pictures written by ``pcw demo``: per-cell accuracy heat maps and example canvases."""
from __future__ import annotations

import numpy as np

from pcw_keras.io import pyplot, save_figure


def plot_cell_heatmap(per_cell_accuracy, grid: int, title: str, path: str) -> None:
    """A ``grid x grid`` heat map of location accuracy per cell, each cell annotated in %."""
    plt = pyplot()
    values = 100 * np.asarray(per_cell_accuracy, dtype="float64").reshape(grid, grid)
    fig, ax = plt.subplots(figsize=(3.6, 3.4), dpi=120)
    image = ax.imshow(values, vmin=0, vmax=100, cmap="viridis")
    for row in range(grid):
        for col in range(grid):
            value = values[row, col]
            text = "n/a" if np.isnan(value) else f"{value:.0f}"
            ax.text(col, row, text, ha="center", va="center", color="white" if value < 60 else "black", fontsize=11)
    ax.set_xticks(range(grid))
    ax.set_yticks(range(grid))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="accuracy %")
    fig.tight_layout()
    save_figure(fig, path)


def plot_examples(canvases, true_cells, predictions: dict, grid: int, mean, std, path: str) -> None:
    """Example canvases with the true cell (green) and each network's predicted cell.

    ``predictions`` maps a network name to its predicted cells; canvases are
    normalised float arrays, shown de-normalised (empty cells are the mean colour).
    """
    plt = pyplot()
    colours = ["#ff3b30", "#0a84ff", "#ff9f0a"]
    count = len(canvases)
    fig, axes = plt.subplots(1, count, figsize=(2.4 * count, 3.3), dpi=120)
    axes = np.atleast_1d(axes)
    cell = canvases.shape[1] // grid
    for index, ax in enumerate(axes):
        picture = np.clip(canvases[index] * np.asarray(std) + np.asarray(mean), 0, 1)
        ax.imshow(picture)
        boxes = [("true", true_cells[index], "#30d158", 3.5, 0)]
        boxes += [(name, cells[index], colours[i % len(colours)], 1.8, 2 + 2 * i) for i, (name, cells) in enumerate(predictions.items())]
        for _, k, colour, width, inset in boxes:
            row, col = divmod(int(k), grid)
            ax.add_patch(plt.Rectangle((col * cell - 0.5 + inset, row * cell - 0.5 + inset), cell - 2 * inset, cell - 2 * inset,
                                       fill=False, edgecolor=colour, linewidth=width))
        label = ", ".join(f"{name}: {int(cells[index])}" for name, cells in predictions.items())
        ax.set_title(f"true cell {int(true_cells[index])}\n{label}", fontsize=7)
        ax.axis("off")
    handles = [plt.Line2D([], [], color="#30d158", linewidth=3.5, label="true cell")]
    handles += [plt.Line2D([], [], color=colours[i % len(colours)], linewidth=1.8, label=f"{name} prediction") for i, name in enumerate(predictions)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    save_figure(fig, path)
