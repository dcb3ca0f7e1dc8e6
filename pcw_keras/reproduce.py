"""``pcw reproduce``: the paper's two tables, cell by cell, each cell a resumable recipe run.

The *channels* table (Islam et al., ICCV 2021, Table 1) has 8 cells: the
location and the image task on 3x3 and 7x7 canvases, for GAPNet and
PermuteNet. The *translation* table (Table 2) has 6: ResNet-18, BlurPool and
AugShift on CIFAR-10 and CIFAR-100, each with top-1 accuracy and shift
consistency. Every (cell, seed) is a ``pcw train`` run in
``<out>/<table>/<cell>/seed-<n>``: a killed ``pcw reproduce`` resumes the
cell it was in and skips the finished ones. After each cell,
``<out>/<table>/results.md`` and ``results.png`` put the paper's value
beside the mean and std over the finished seeds.

Scales (``--scale``):

- ``paper``: the recipes as they are (full width, the paper's epochs);
- ``reduced``: width 1/8, every training image, the paper's epochs, so the
  paper's step count is kept;
- ``demo``: the budget of ``pcw demo`` (width 1/8; location 1 epoch, the
  image task and classification 10; 5% of the training images held out for
  validation; 3 placements of the test split; ``cifar10-mini`` unless
  ``--data`` says otherwise).

The scales are :data:`pcw_keras.scales.SCALES`, the paper's values
:mod:`pcw_keras.paper`.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass

import keras
import numpy as np

from pcw_keras import paper, recipes
from pcw_keras.choices import REPRODUCE_SCALES
from pcw_keras.io import pyplot, save_figure, write_text_atomic
from pcw_keras.runs import read_results
from pcw_keras.scales import SCALES, shrink


@dataclass(frozen=True)
class Cell:
    """One cell of a paper table: the recipe that fills it and the paper's values (percent)."""

    recipe: str
    paper: dict


TABLES: dict[str, tuple[Cell, ...]] = {
    "channels": tuple(Cell(f"{task}-{grid}x{grid}-{net}", {"accuracy": accuracy})
                      for (task, grid, net), accuracy in paper.CHANNELS.items()),
    "translation": tuple(Cell(f"{dataset}-{net}", dict(values)) for (dataset, net), values in paper.TRANSLATION.items()),
}
PAPER_KEPT_SHARES = {f"{task}-{grid}x{grid}": paper.channels_kept_share(task, grid) for task, grid, _ in paper.CHANNELS}
"""The paper's own kept share per channels-table task (``location-3x3``...), from its Table 1 and its chance."""
METRIC_KEYS = {"accuracy": "test_accuracy_best", "top1": "test_accuracy_best", "consistency": "consistency_best"}


def table_cells(table: str, names: list[str] | None = None) -> tuple[Cell, ...]:
    """The cells of ``table``, all or those ``names`` picks (in the table's order).

    Raises
    ------
    ValueError
        An unknown table or cell, naming what is allowed.
    """
    if table not in TABLES:
        raise ValueError(f"Unknown table {table!r}. Expected one of: {', '.join(TABLES)}")
    cells = TABLES[table]
    if not names:
        return cells
    known = [cell.recipe for cell in cells]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"Unknown cell(s) {', '.join(unknown)} for table {table!r}. Its cells: {', '.join(known)}")
    return tuple(cell for cell in cells if cell.recipe in names)


def cell_recipe(cell: Cell, scale: str, seed: int, data: dict[str, str] | None = None) -> recipes.Recipe:
    """The recipe of ``cell`` at ``scale`` (:data:`pcw_keras.scales.SCALES`) with ``seed``; ``data`` maps a recipe
    source (``cifar10``...) to another."""
    if scale not in REPRODUCE_SCALES:
        raise ValueError(f"Unknown scale {scale!r}. Expected one of: {', '.join(REPRODUCE_SCALES)}")
    return shrink(cell.recipe, SCALES[scale], seed=seed, sources=data)


def run_dir(out: str, table: str, cell: Cell, seed: int) -> str:
    return os.path.join(out, table, cell.recipe, f"seed-{seed}")


def seconds_per_step(recipe: recipes.Recipe, class_names: list[str], steps: int = 3, warmup: int = 2) -> float:
    """Median seconds of one training step of ``recipe``'s model on this machine (random inputs, compilation excluded)."""
    model = recipe.build_model(class_names=class_names, steps_per_epoch=1)
    batch = recipe["training"]["batch_size"]
    rng = np.random.default_rng(0)
    labels = rng.integers(0, recipe.num_classes(class_names), batch)
    if recipe.is_canvas:
        inputs = (rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8), labels % recipe["task"]["grid"] ** 2)
    else:
        inputs = rng.normal(size=(batch, *recipe.input_shape)).astype("float32")
    times = []
    for index in range(warmup + steps):
        began = time.perf_counter()
        model.train_on_batch(inputs, labels)
        if index >= warmup:
            times.append(time.perf_counter() - began)
    return float(np.median(times))


def hardware() -> str:
    """One line naming the machine, the backend and its accelerators."""
    accelerators = "none"
    if keras.backend.backend() == "jax":
        import jax

        kinds = sorted({d.device_kind for d in jax.devices() if d.platform != "cpu"})
        accelerators = ", ".join(kinds) or "none"
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        accelerators = f"{len(gpus)} GPU(s)" if gpus else "none"
    return (f"{platform.machine()} {platform.processor() or ''} with {os.cpu_count()} CPU cores, "
            f"accelerators: {accelerators}; Keras {keras.__version__}, {keras.backend.backend()} backend").replace("  ", " ")


def summarize(table: str, cells: tuple[Cell, ...], scale: str, seeds: list[int], out: str) -> list[dict]:
    """Per cell and metric: the paper's value and the mean and std over the finished seeds (percent)."""
    rows = []
    for cell in cells:
        done = [r for r in (read_results(run_dir(out, table, cell, seed)) for seed in seeds) if r]
        for metric, reported in cell.paper.items():
            values = [100 * r[METRIC_KEYS[metric]] for r in done if METRIC_KEYS[metric] in r]
            rows.append({
                "cell": cell.recipe, "metric": metric, "paper": reported, "seeds": len(values),
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
                "chance": 100 * done[0]["chance"] if done else None,
            })
    return rows


def kept_share_lines(rows: list[dict]) -> list[str]:
    """Lines comparing PermuteNet's kept share of GAPNet's above-chance accuracy, here and in the paper."""
    by_cell = {row["cell"]: row for row in rows if row["metric"] == "accuracy"}
    lines = []
    for name, gapnet in by_cell.items():
        if not name.endswith("-gapnet"):
            continue
        permutenet = by_cell.get(name.replace("-gapnet", "-permutenet"))
        if permutenet is None or gapnet["mean"] is None or permutenet["mean"] is None:
            continue
        here = paper.kept_share(permutenet["mean"], gapnet["mean"], gapnet["chance"])
        task = name.removesuffix("-gapnet")
        lines.append(f"{task}: PermuteNet keeps {_percent(here)} of GAPNet's above-chance accuracy here, "
                     f"{_percent(PAPER_KEPT_SHARES[task])} in the paper.")
    return lines


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.0f}%"


def write_report(table: str, rows: list[dict], scale: str, seeds: list[int], out: str) -> tuple[str, str]:
    """``<out>/<table>/results.md`` and ``results.png`` (paper vs here, per cell); returns both paths."""
    folder = os.path.join(out, table)
    os.makedirs(folder, exist_ok=True)
    lines = [
        f"# pcw reproduce {table} ({scale} scale)", "",
        f"Seeds {', '.join(map(str, seeds))}; {hardware()}.", "",
        "| cell | metric | paper | here (mean ± std) | seeds done |", "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        here = "-" if row["mean"] is None else f"{row['mean']:.1f} ± {row['std']:.1f}"
        lines.append(f"| {row['cell']} | {row['metric']} | {row['paper']:.1f} | {here} | {row['seeds']}/{len(seeds)} |")
    shares = kept_share_lines(rows)
    if shares:
        lines += ["", *(f"- {line}" for line in shares)]
    markdown = os.path.join(folder, "results.md")
    write_text_atomic(markdown, "\n".join(lines) + "\n")
    chart = os.path.join(folder, "results.png")
    _plot(rows, f"{table} ({scale} scale): paper vs here", chart)
    return markdown, chart


def _plot(rows: list[dict], title: str, path: str) -> None:
    plt = pyplot()

    labels = [row["cell"] if row["metric"] in ("accuracy", "top1") and len(rows) == len({r["cell"] for r in rows})
              else f"{row['cell']}\n{row['metric']}" for row in rows]
    positions = np.arange(len(rows))
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(rows)), 4.2))
    axes.bar(positions - 0.2, [row["paper"] for row in rows], 0.4, label="paper", color="#999999")
    here = [np.nan if row["mean"] is None else row["mean"] for row in rows]
    errors = [0.0 if row["std"] is None else row["std"] for row in rows]
    axes.bar(positions + 0.2, here, 0.4, yerr=errors, label="here (mean ± std)", color="#1f77b4")
    axes.set_xticks(positions, labels, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("%")
    axes.set_ylim(0, 105)
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path, dpi=110)


@dataclass
class PlannedRun:
    """One (cell, seed) run: its recipe, directory, training steps and estimated seconds (0 when finished)."""

    cell: Cell
    seed: int
    recipe: recipes.Recipe
    path: str
    steps: int
    seconds: float
    done: bool


def plan(table: str, cells: tuple[Cell, ...], scale: str, seeds: list[int], data: dict[str, str], out: str) -> list[PlannedRun]:
    """Every (cell, seed) run with its step count and the time it should take here.

    The time is the run's training steps times a training step of its model
    measured on this machine (one measurement per distinct model), plus 10%
    for evaluation.
    """
    runs, step_seconds = [], {}
    for cell in cells:
        for seed in seeds:
            recipe = cell_recipe(cell, scale, seed, data)
            path = run_dir(out, table, cell, seed)
            done = read_results(path) is not None
            train = recipe.load_images("train")
            train_count = len(train) - int(round(len(train) * recipe["data"]["validation_fraction"]))
            steps = recipe.epochs * (train_count // recipe["training"]["batch_size"])
            seconds = 0.0
            if not done:
                key = (recipe["model"]["name"], recipe["model"]["width"], recipe.input_shape, recipe["training"]["batch_size"],
                       recipe["training"]["precision"], recipe["augshift"]["enabled"])
                if key not in step_seconds:
                    step_seconds[key] = seconds_per_step(recipe, train.class_names)
                seconds = 1.1 * steps * step_seconds[key]
            runs.append(PlannedRun(cell, seed, recipe, path, steps, seconds, done))
    return runs


def format_plan(runs: list[PlannedRun]) -> str:
    """The estimate, one line per run and a total."""
    lines = ["pcw reproduce: estimate for this machine (a measured training step x the steps, +10% evaluation):"]
    for run in runs:
        status = "done" if run.done else _duration(run.seconds)
        lines.append(f"  {run.cell.recipe:<28} seed {run.seed}: {run.recipe.epochs} epoch(s), {run.steps} steps, {status}")
    lines.append(f"  total: {_duration(sum(run.seconds for run in runs))} ({hardware()})")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 600:
        return f"{seconds / 60:.1f} min"
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min"


def run(table: str, cells: tuple[Cell, ...], scale: str, seeds: list[int], runs: list[PlannedRun], out: str, echo=print) -> list[dict]:
    """Trains every unfinished run in order (each resumes if it was interrupted) and rewrites the report after each."""
    from pcw_keras.training import train

    for planned in runs:
        if planned.done:
            echo(f"pcw reproduce: {planned.cell.recipe} seed {planned.seed} is finished ({planned.path}); skipped.")
            continue
        keras.utils.clear_session()
        train(planned.recipe, planned.path)
        markdown, chart = write_report(table, summarize(table, cells, scale, seeds, out), scale, seeds, out)
        echo(f"pcw reproduce: {planned.cell.recipe} seed {planned.seed} done; {markdown}, {chart} updated.")
    rows = summarize(table, cells, scale, seeds, out)
    markdown, chart = write_report(table, rows, scale, seeds, out)
    with open(markdown, encoding="utf-8") as handle:
        echo(handle.read())
    return rows
