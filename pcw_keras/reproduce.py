"""``pcw reproduce``: the paper's two tables, cell by cell, each cell a resumable recipe run.

The *channels* table (Islam et al., ICCV 2021, Table 1) has 8 cells: the
location and the image task on 3x3 and 7x7 canvases, for GAPNet and
PermuteNet. The *translation* table (Table 2) has 6: ResNet-18, BlurPool and
AugShift on CIFAR-10 and CIFAR-100, each with top-1 accuracy and shift
consistency; two rows beyond the paper follow them, the APS ResNet-18
(adaptive polyphase sampling, Chaman and Dokmanić 2021) without and with a
blur filter on CIFAR-10 (no paper values: "—"), and every row gets the
circular-shift consistency beside Zhang's (not in the paper either). Every (cell, seed) is a ``pcw train`` run in
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

from pcw_keras import machine, paper, recipes
from pcw_keras.choices import REPRODUCE_SCALES
from pcw_keras.io import pyplot, save_figure, write_text_atomic
from pcw_keras.runs import read_results
from pcw_keras.scales import SCALES, shrink


@dataclass(frozen=True)
class Cell:
    """One cell of a paper table: the recipe that fills it and the paper's values (percent)."""

    recipe: str
    paper: dict


BEYOND_PAPER: dict[str, tuple[str, ...]] = {
    "translation": ("cifar10-resnet18-aps", "cifar10-resnet18-aps-blur"),
}
"""Rows each table adds to the paper's, after its rows of the same data set: recipes with no paper values."""


def _with_beyond(table: str, cells: list[Cell]) -> tuple[Cell, ...]:
    """``cells`` with :data:`BEYOND_PAPER`'s rows of ``table`` after the last paper row of their data set."""
    for recipe in BEYOND_PAPER.get(table, ()):
        dataset = recipe.split("-")[0]
        rows = [index for index, cell in enumerate(cells) if cell.recipe.split("-")[0] == dataset]
        if not rows:
            raise ValueError(f"BEYOND_PAPER[{table!r}] has {recipe!r}, but the {table} table has no paper row of "
                             f"its data set {dataset!r} to place it after. Received: recipe={recipe!r}")
        last = max(rows)
        cells.insert(last + 1, Cell(recipe, {}))
    return tuple(cells)


TABLES: dict[str, tuple[Cell, ...]] = {
    "channels": tuple(Cell(f"{task}-{grid}x{grid}-{net}", {"accuracy": accuracy})
                      for (task, grid, net), accuracy in paper.CHANNELS.items()),
    "translation": _with_beyond("translation", [Cell(f"{dataset}-{net}", dict(values))
                                                for (dataset, net), values in paper.TRANSLATION.items()]),
}
TABLE_METRICS: dict[str, tuple[str, ...]] = {
    "channels": ("accuracy",),
    "translation": ("top1", "consistency", "circular_consistency"),
}
"""The metrics of each table's rows, the paper's and those beyond it (``circular_consistency``: all rows, no paper value)."""
NOT_IN_PAPER = "—"
PAPER_KEPT_SHARES = {f"{task}-{grid}x{grid}": paper.channels_kept_share(task, grid) for task, grid, _ in paper.CHANNELS}
"""The paper's own kept share per channels-table task (``location-3x3``...), from its Table 1 and its chance."""
METRIC_KEYS = {"accuracy": "test_accuracy_best", "top1": "test_accuracy_best", "consistency": "consistency_best",
               "circular_consistency": "circular_consistency_best"}


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


def cell_recipe(cell: Cell, scale: str, seed: int, data: dict[str, str] | None = None,
                overrides: dict[str, object] | None = None) -> recipes.Recipe:
    """The recipe of ``cell`` at ``scale`` (:data:`pcw_keras.scales.SCALES`) with ``seed``; ``data`` maps a recipe
    source (``cifar10``...) to another; ``overrides`` (``section.field: value``) come last."""
    if scale not in REPRODUCE_SCALES:
        raise ValueError(f"Unknown scale {scale!r}. Expected one of: {', '.join(REPRODUCE_SCALES)}")
    return shrink(cell.recipe, SCALES[scale], seed=seed, sources=data, overrides=overrides)


def run_dir(out: str, table: str, cell: Cell, seed: int) -> str:
    return os.path.join(out, table, cell.recipe, f"seed-{seed}")


def _step_model(recipe: recipes.Recipe, class_names: list[str]) -> keras.Model:
    return recipe.build_model(class_names=class_names, steps_per_epoch=1)


def forward_flops(recipe: recipes.Recipe, class_names: list[str]) -> int:
    """Forward FLOPs per sample of ``recipe``'s network (:func:`pcw_keras.models.count_flops`)."""
    from pcw_keras.models import count_flops, unwrap

    return count_flops(unwrap(_step_model(recipe, class_names)))


def seconds_per_step(recipe: recipes.Recipe, class_names: list[str], steps: int = 3, warmup: int = 2) -> float:
    """Median seconds of one training step of ``recipe``'s model on this machine (random inputs, compilation excluded).

    Each ``train_on_batch`` call trains one step, whatever the recipe's
    ``training.steps_per_execution``: the per-call costs that ``fit`` spreads
    over that many steps are counted in full, so the step time is an upper
    bound of ``pcw train``'s.
    """
    model = _step_model(recipe, class_names)
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


@dataclass(frozen=True)
class Device:
    """A named accelerator for estimates: its dense matrix-product peak per compute dtype, in FLOP/s."""

    name: str
    peak: dict[str, float]


KNOWN_DEVICES: dict[str, Device] = {
    "h100-sxm": Device("NVIDIA H100 SXM", {"bfloat16": 989.4e12, "float16": 989.4e12, "float32": 66.9e12}),
    "h100-pcie": Device("NVIDIA H100 PCIe", {"bfloat16": 756.5e12, "float16": 756.5e12, "float32": 51.2e12}),
    "h200": Device("NVIDIA H200 SXM", {"bfloat16": 989.4e12, "float16": 989.4e12, "float32": 66.9e12}),
    "a100": Device("NVIDIA A100 SXM", {"bfloat16": 312e12, "float16": 312e12, "float32": 19.5e12}),
}
"""``--device`` names: NVIDIA's data-sheet peaks, dense (without the 2:4 sparsity doubling); float32 is the rate
without tensor cores (XLA may run float32 products as TF32 on tensor cores, faster than this)."""

ASSUMED_FRACTION = 0.10
"""The share of a named device's peak that a ResNet-18 canvas step at batch 48 is assumed to reach.

Tuned large-batch ResNet-50 training on H100s runs at roughly 15-20% of the
dense bfloat16 peak (images/s of published MLPerf results x the FLOPs per
image); a ResNet-18 at batch 48 on 96x96 canvases has smaller matrix products
(6x6 to 48x48 maps, 64 to 512 channels), and its BatchNorm and ReLU passes are
memory-bound, so half of that is assumed. Measure instead where the device is
at hand: ``pcw reproduce --estimate-only`` there.
"""
OVERHEAD_WIDTH = 1 / 32
"""The width whose step time is taken as the per-step overhead: its arithmetic is about 1/650 of full width's."""


@dataclass(frozen=True)
class Speed:
    """How fast a machine runs a recipe's steps: ``overhead`` seconds per step plus the FLOPs at ``rate``.

    Attributes
    ----------
    rate : float
        FLOP/s at which the model's arithmetic runs.
    overhead : float
        Seconds per training step beside the arithmetic (Python, the input feed, dispatch).
    peak : float
        The matrix-product rate of the compute dtype, FLOP/s: measured here, or a named device's peak.
    source : str
        One line on where the figures come from.
    """

    rate: float
    overhead: float
    peak: float
    source: str

    @property
    def fraction(self) -> float:
        """The share of the matrix-product rate the model's arithmetic reaches."""
        return self.rate / self.peak

    def seconds(self, flops: float, steps: int) -> float:
        """Seconds for ``steps`` training steps of ``flops`` in total."""
        return steps * self.overhead + flops / self.rate


def compute_dtype(recipe: recipes.Recipe) -> str:
    """The dtype ``recipe``'s model computes in (``training.precision``'s compute dtype)."""
    return keras.dtype_policies.get(recipe["training"]["precision"]).compute_dtype


def narrow_recipe(recipe: recipes.Recipe) -> recipes.Recipe:
    """``recipe`` at width :data:`OVERHEAD_WIDTH`: the yardstick of the per-step overhead."""
    return recipes.Recipe({**recipe.config, "model": {**recipe["model"], "width": OVERHEAD_WIDTH}})


def measure_speed(recipe: recipes.Recipe, class_names: list[str], matmul_size: int = 2048) -> Speed:
    """This machine's :class:`Speed` for ``recipe``'s model, measured.

    Two real training steps are timed (:func:`seconds_per_step`): the
    recipe's model and the same at width :data:`OVERHEAD_WIDTH`. A line
    through the two (seconds against FLOPs per step) gives the rate of the
    arithmetic (its slope) and the per-step overhead (the narrow model's time
    less its arithmetic). The matrix-product rate of the compute dtype is
    measured too (:func:`pcw_keras.models.flops.matmul_gflops`), as the
    yardstick of the fraction.
    """
    from pcw_keras.models.flops import matmul_gflops

    batch = recipe["training"]["batch_size"]
    narrow = narrow_recipe(recipe)
    full_flops, narrow_flops = (3 * batch * forward_flops(r, class_names) for r in (recipe, narrow))
    full_seconds, narrow_seconds = (seconds_per_step(r, class_names) for r in (recipe, narrow))
    peak = matmul_gflops(matmul_size, dtype=compute_dtype(recipe)) * 1e9
    if full_flops > narrow_flops and full_seconds > narrow_seconds:
        rate = (full_flops - narrow_flops) / (full_seconds - narrow_seconds)
    else:  # the recipe is as narrow as the yardstick, or timing noise hid the difference: all of it is overhead
        rate = peak
    overhead = max(0.0, narrow_seconds - narrow_flops / rate)
    source = (f"measured here (steps of {1e3 * full_seconds:.1f} ms at width {recipe['model']['width']:g} and "
              f"{1e3 * narrow_seconds:.1f} ms at width {OVERHEAD_WIDTH:g}; {compute_dtype(recipe)} matrix products)")
    return Speed(rate=rate, overhead=overhead, peak=peak, source=source)


def device_speed(device: str, dtype: str, overhead: float, fraction: float = ASSUMED_FRACTION) -> Speed:
    """The :class:`Speed` of a named device (:data:`KNOWN_DEVICES`) or of a peak rate in TFLOP/s (``"500"``).

    Parameters
    ----------
    device : str
        A key of :data:`KNOWN_DEVICES`, or the dense peak of the compute dtype in TFLOP/s.
    dtype : str
        The compute dtype (``bfloat16``, ``float16``, ``float32``).
    overhead : float
        Seconds per step beside the arithmetic.
    fraction : float
        The share of the peak the arithmetic reaches (:data:`ASSUMED_FRACTION`).

    Raises
    ------
    ValueError
        An unknown device name, a rate that is not a positive number, a fraction outside (0, 1] or a
        negative overhead, naming the value.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"The device fraction must be in (0, 1]. Received: fraction={fraction!r}")
    if overhead < 0:
        raise ValueError(f"The per-step overhead must be >= 0 seconds. Received: overhead={overhead!r}")
    if device in KNOWN_DEVICES:
        known = KNOWN_DEVICES[device]
        if dtype not in known.peak:
            raise ValueError(f"No peak rate of {known.name} for {dtype!r}. Known: {', '.join(known.peak)}")
        peak, name = known.peak[dtype], known.name
    else:
        try:
            peak, name = float(device) * 1e12, f"a device of {float(device):g} TFLOP/s"
        except ValueError:
            peak = float("nan")
        if not peak > 0:
            raise ValueError(f"Unknown device {device!r}. Expected one of {', '.join(KNOWN_DEVICES)} "
                             "or a peak rate in TFLOP/s (e.g. 989)")
    source = f"{name} ({dtype} peak; the share {fraction:g} assumed)"
    return Speed(rate=peak * fraction, overhead=overhead, peak=peak, source=source)


def estimator(device: str | None = None, fraction: float | None = None, overhead_ms: float | None = None):
    """``speed(recipe, class_names) -> Speed`` for :func:`plan`: measured here, or for a named ``device``.

    For a named device (:func:`device_speed`) the per-step overhead is
    ``overhead_ms`` if given, else the step time of the recipe at
    :data:`OVERHEAD_WIDTH` measured here (an upper bound: on a CPU most of it
    is that narrow model's arithmetic).
    """
    if device is None:
        if fraction is not None or overhead_ms is not None:
            raise ValueError("A device fraction or a per-step overhead needs a named device (--device). "
                             f"Received: fraction={fraction!r}, overhead_ms={overhead_ms!r}")
        return measure_speed

    def named(recipe: recipes.Recipe, class_names: list[str]) -> Speed:
        overhead = overhead_ms / 1e3 if overhead_ms is not None else seconds_per_step(narrow_recipe(recipe), class_names)
        return device_speed(device, compute_dtype(recipe), overhead, ASSUMED_FRACTION if fraction is None else fraction)

    return named


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
    return (f"{machine.cpu_model()} ({platform.machine()}) with {os.cpu_count()} CPU cores, "
            f"accelerators: {accelerators}; Keras {keras.__version__}, {keras.backend.backend()} backend").replace("  ", " ")


def summarize(table: str, cells: tuple[Cell, ...], scale: str, seeds: list[int], out: str) -> list[dict]:
    """Per cell and metric (:data:`TABLE_METRICS`): the paper's value (None where the paper has none) and the mean
    and std over the finished seeds (percent)."""
    rows = []
    for cell in cells:
        done = [r for r in (read_results(run_dir(out, table, cell, seed)) for seed in seeds) if r]
        for metric in TABLE_METRICS[table]:
            reported = cell.paper.get(metric)
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


def write_report(table: str, rows: list[dict], scale: str, seeds: list[int], out: str,
                 overrides: dict[str, object] | None = None) -> tuple[str, str]:
    """``<out>/<table>/results.md`` and ``results.png`` (paper vs here, per cell); returns both paths.

    ``overrides`` (the recipe fields set over the scale) are listed under the title.
    """
    folder = os.path.join(out, table)
    os.makedirs(folder, exist_ok=True)
    changed = "; recipe fields set: " + ", ".join(f"{key}={value}" for key, value in overrides.items()) if overrides else ""
    lines = [
        f"# pcw reproduce {table} ({scale} scale)", "",
        f"Seeds {', '.join(map(str, seeds))}{changed}; {hardware()}.", "",
        "| cell | metric | paper | here (mean ± std) | seeds done |", "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        here = "-" if row["mean"] is None else f"{row['mean']:.1f} ± {row['std']:.1f}"
        reported = NOT_IN_PAPER if row["paper"] is None else f"{row['paper']:.1f}"
        lines.append(f"| {row['cell']} | {row['metric']} | {reported} | {here} | {row['seeds']}/{len(seeds)} |")
    if any(row["paper"] is None for row in rows):
        lines += ["", f"{NOT_IN_PAPER}: not in the paper (a row or a metric beyond its table)."]
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
    axes.bar(positions - 0.2, [np.nan if row["paper"] is None else row["paper"] for row in rows], 0.4, label="paper",
             color="#999999")
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
    """One (cell, seed) run: its recipe, directory, training steps, FLOPs and estimated seconds (0 when finished).

    ``train_flops`` counts a training step as three forward passes;
    ``eval_flops`` the validation split at every epoch and the test passes of
    ``best.keras`` and ``last.keras``.
    """

    cell: Cell
    seed: int
    recipe: recipes.Recipe
    path: str
    steps: int
    done: bool
    train_flops: float = 0.0
    eval_flops: float = 0.0
    seconds: float = 0.0
    speed: Speed | None = None


def evaluation_passes(recipe: recipes.Recipe) -> int:
    """Forward passes over the test split in one evaluation: the canvas placements, or the consistency test's
    unshifted pass and its pairs of shifts."""
    evaluation = recipe["evaluation"]
    if recipe.is_canvas:
        return evaluation["passes"] or recipe["task"]["grid"] ** 2
    return 1 + 2 * evaluation["consistency_passes"]


def plan(table: str, cells: tuple[Cell, ...], scale: str, seeds: list[int], data: dict[str, str], out: str,
         overrides: dict[str, object] | None = None, speed=None) -> list[PlannedRun]:
    """Every (cell, seed) run with its step count and, given ``speed``, its FLOPs and the time it should take.

    Parameters
    ----------
    speed : callable, optional
        ``speed(recipe, class_names) -> Speed`` (:func:`measure_speed`, or a
        named device's :func:`device_speed`); called once per distinct model
        of an unfinished run. Without it nothing is measured or built.
    """
    runs, speeds = [], {}
    for cell in cells:
        for seed in seeds:
            recipe = cell_recipe(cell, scale, seed, data, overrides)
            path = run_dir(out, table, cell, seed)
            train = recipe.load_images("train")
            validation = int(round(len(train) * recipe["data"]["validation_fraction"]))
            steps = recipe.epochs * ((len(train) - validation) // recipe["training"]["batch_size"])
            planned = PlannedRun(cell, seed, recipe, path, steps, done=read_results(path) is not None)
            if speed is not None and not planned.done:
                key = (recipe["model"]["name"], recipe["model"]["width"], recipe.input_shape, recipe["training"]["batch_size"],
                       recipe["training"]["precision"], recipe["augshift"]["enabled"])
                if key not in speeds:
                    speeds[key] = (speed(recipe, train.class_names), forward_flops(recipe, train.class_names))
                run_speed, forward = speeds[key]
                test_images = len(recipe.load_images("test"))
                planned.train_flops = 3.0 * forward * steps * recipe["training"]["batch_size"]
                planned.eval_flops = float(forward) * (recipe.epochs * validation + 2 * evaluation_passes(recipe) * test_images)
                planned.seconds = run_speed.seconds(planned.train_flops + planned.eval_flops, steps)
                planned.speed = run_speed
            runs.append(planned)
    return runs


def format_plan(runs: list[PlannedRun]) -> str:
    """The estimate: how it was made, one line per run and a total."""
    lines = ["pcw reproduce: estimate (steps x overhead + FLOPs / rate, the FLOPs counted from the model):"]
    for speed in runs_speeds(runs):
        lines.append(f"  {speed.source}: the arithmetic at {speed.rate / 1e12:.3g} TFLOP/s = {100 * speed.fraction:.0f}% "
                     f"of {speed.peak / 1e12:.4g} TFLOP/s, and {1e3 * speed.overhead:.1f} ms per step beside it")
    for run in runs:
        status = "done" if run.done else f"{(run.train_flops + run.eval_flops) / 1e15:.3g} PFLOP, {_duration(run.seconds)}"
        lines.append(f"  {run.cell.recipe:<28} seed {run.seed}: {run.recipe.epochs} epoch(s), {run.steps} steps, {status}")
    lines.append(f"  total, one run after another: {_duration(sum(run.seconds for run in runs))} (computed on {hardware()})")
    return "\n".join(lines)


def runs_speeds(runs: list[PlannedRun]) -> list[Speed]:
    """The distinct speeds of ``runs``' estimates, in order."""
    distinct = []
    for run in runs:
        if run.speed is not None and run.speed not in distinct:
            distinct.append(run.speed)
    return distinct


def _duration(seconds: float) -> str:
    if seconds < 600:
        return f"{seconds / 60:.1f} min"
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min"


class BudgetSpent(Exception):
    """Raised between two epochs when the next would not end within the time budget (the run resumes there)."""


class TimeBudget(keras.callbacks.Callback):
    """Stops training before an epoch that would not end, with the run's evaluation, by ``deadline``.

    The next epoch is taken to last as long as the one before, and the
    evaluation as long as one epoch. The first epoch of a session always
    starts (its length, compilation included, is not known yet). Stopping
    raises :class:`BudgetSpent` at the start of an epoch, after the previous
    epoch's backup is written and before anything of the new one is: the
    run directory is then as a kill at that moment leaves it, and the same
    command resumes it exactly.
    """

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline, self._began = deadline, None

    def on_epoch_begin(self, epoch, logs=None):
        now = time.perf_counter()
        if self._began is not None and now + 2 * (now - self._began) > self.deadline:
            raise BudgetSpent(f"the time budget ends in {max(0.0, self.deadline - now):.0f} s, "
                              f"less than an epoch ({now - self._began:.0f} s) and the evaluation; stopped before epoch {epoch + 1}")
        self._began = now


def run(table: str, cells: tuple[Cell, ...], scale: str, seeds: list[int], runs: list[PlannedRun], out: str, echo=print,
        deadline: float | None = None, overrides: dict[str, object] | None = None) -> list[dict]:
    """Trains every unfinished run in order (each resumes if it was interrupted) and rewrites the report after each.

    With ``deadline`` (a :func:`time.perf_counter` value), no run starts
    after it and a run stops between two epochs rather than pass it
    (:class:`TimeBudget`); the report is then written with what is finished,
    and the same command resumes where this one stopped.
    """
    from pcw_keras.training import train

    for planned in runs:
        if planned.done:
            echo(f"pcw reproduce: {planned.cell.recipe} seed {planned.seed} is finished ({planned.path}); skipped.")
            continue
        if deadline is not None and time.perf_counter() >= deadline:
            echo(f"pcw reproduce: the time budget is spent; {planned.cell.recipe} seed {planned.seed} not started.")
            break
        keras.utils.clear_session()
        try:
            train(planned.recipe, planned.path, extra_callbacks=[TimeBudget(deadline)] if deadline is not None else None)
        except BudgetSpent as stop:
            echo(f"pcw reproduce: {planned.cell.recipe} seed {planned.seed}: {stop}. Run the same command to resume it.")
            break
        markdown, chart = write_report(table, summarize(table, cells, scale, seeds, out), scale, seeds, out, overrides)
        echo(f"pcw reproduce: {planned.cell.recipe} seed {planned.seed} done; {markdown}, {chart} updated.")
    rows = summarize(table, cells, scale, seeds, out)
    markdown, chart = write_report(table, rows, scale, seeds, out, overrides)
    with open(markdown, encoding="utf-8") as handle:
        echo(handle.read())
    return rows
