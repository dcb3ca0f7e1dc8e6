"""``pcw demo``: GAPNet versus PermuteNet on the canvas tasks, in one command.

It trains the paper's two networks (ResNet-18, reduced width by default) on
the location task and on the image task at grid 3, evaluates each over several
random placements of the test split, and prints the paper's table. A network
that keeps its channel order (GAPNet) tells where the image is; one whose
pooled channels are shuffled at every pass (PermuteNet) cannot, yet both learn
what the image is.

The budget is spent where the science needs it (measured on a 2-core CPU, see
``docs/results.md``): location separates within one epoch, while PermuteNet's
image accuracy climbs far more slowly than GAPNet's.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass

import keras
import numpy as np

from pcw_keras import machine, paper, recipes
from pcw_keras.choices import CANVAS_TASKS
from pcw_keras.demo_verdict import is_rising, verdict  # noqa: F401 (is_rising: part of the demo's API)
from pcw_keras.io import write_text_atomic
from pcw_keras.models.flops import matmul_gflops
from pcw_keras.scales import SCALES, Scale, shrink

NETWORKS = (("gapnet", "GAPNet"), ("permutenet", "PermuteNet"))
REFERENCE_GFLOPS = 89.9
"""``matmul_gflops()`` as measured by the run that timed the default plan (``machine.matmul_gflops`` in
``docs/studies/demo/seed0/results.json``; a 2-core CPU under a concurrent load, which slows both the
product and the run)."""


@dataclass(frozen=True)
class DemoPlan:
    """What a demo run trains: its recipes' scale, the canvas grid, and the time it takes."""

    scale: Scale
    grid: int = 3
    estimate_minutes: float = 0.0  # at REFERENCE_GFLOPS (see PLANS); the progress bar refines it once training starts


# estimate_minutes, measured (``wall_seconds`` of the plan's own run, scaled by its ``machine.matmul_gflops`` /
# REFERENCE_GFLOPS): quick, docs/studies/demo/quick/results.json (61.5 s at 95.2 GFLOP/s); default,
# docs/studies/demo/seed0/results.json (456.0 s at 89.9 GFLOP/s). tests/test_docs.py checks them against the files.
PLANS = {
    "quick": DemoPlan(SCALES["quick"], estimate_minutes=1.09),
    # XLA follows the recipes' "auto" (off on a CPU, where it measured slower: docs/benchmarks.md).
    "default": DemoPlan(SCALES["demo"], estimate_minutes=7.6),
    "full": DemoPlan(SCALES["paper"]),
}


BAR_WIDTH = 74
"""Characters of the progress line (a printed line is padded to it, to cover the bar it replaces)."""


class _ProgressBar(keras.callbacks.Callback):
    """One progress bar over every training step of the demo, with the time left.

    The time left is the steady step time (median, compilation excluded) times
    the steps left, plus, for each model still to come, the overhead measured
    on the models done so far (compilation and evaluation). Text printed while
    it is redirected to the bar (:meth:`write`) appears above it.
    """

    def __init__(self, total_steps: int, total_models: int, stream=sys.stderr):
        super().__init__()
        self.total, self.done, self.stream = total_steps, 0, stream
        self.models_left = total_models
        self.label, self.last_print = "", 0.0
        self.interactive = getattr(stream, "isatty", lambda: False)()
        self._last_logged = -1  # in a log: the last 5% step printed
        self.step_seconds: list[float] = []
        self.overheads: list[float] = []
        self._last_step_end = 0.0
        self._epoch_steps = 0  # steps of the current epoch counted so far
        self._pending = ""  # printed text not yet ended by a newline

    def start_model(self, label: str) -> None:
        self.label, self._model_start, self._model_steps = label, time.perf_counter(), 0
        self._render(force=True)

    def end_model(self) -> None:
        """Call after a model is trained and evaluated: its overhead calibrates the estimate."""
        per_step = self.seconds_per_step() or 0.0
        self.overheads.append(max(0.0, time.perf_counter() - self._model_start - per_step * self._model_steps))
        self.models_left -= 1

    def on_epoch_begin(self, epoch, logs=None):
        self._last_step_end = time.perf_counter()
        self._epoch_steps = 0

    def on_train_batch_end(self, batch, logs=None):
        # Called once per `steps_per_execution` steps; `batch` is the last one's index (counted past the epoch's end
        # by a short last call). Timed from the previous call's end: includes waiting for the input pipeline.
        epoch_steps = min(batch + 1, (self.params or {}).get("steps") or batch + 1)
        steps, self._epoch_steps = epoch_steps - self._epoch_steps, epoch_steps
        now = time.perf_counter()
        self.step_seconds.append((now - self._last_step_end) / steps)
        self._last_step_end = now
        self.done += steps
        self._model_steps += steps
        self._render()

    def seconds_per_step(self) -> float | None:
        """Median step time once compilation is past."""
        steady = self.step_seconds[3:]
        return float(np.median(steady)) if len(steady) >= 5 else None

    def seconds_left(self) -> float | None:
        per_step = self.seconds_per_step()
        if per_step is None:
            return None
        overhead = float(np.mean(self.overheads)) if self.overheads else 0.0
        return per_step * (self.total - self.done) + overhead * max(0, self.models_left - 1)

    def _render(self, force: bool = False) -> None:
        now = time.perf_counter()
        fraction = min(1.0, self.done / max(1, self.total))
        if not self.interactive:  # a log file: one line at every 5% (and at each new model), no redrawing
            step = int(20 * fraction)
            if step == self._last_logged and not force:
                return
            self._last_logged = step
        elif not force and now - self.last_print < 0.25 and self.done < self.total:
            return
        self.last_print = now
        seconds = self.seconds_left()
        left = "" if seconds is None else f" ~{_minutes(seconds)} left"
        bar = "#" * int(28 * fraction) + "." * (28 - int(28 * fraction))
        line = f"[{bar}] {100 * fraction:5.1f}% {self.label:<22}{left:<14}"  # BAR_WIDTH characters
        self.stream.write(f"\r{line}" if self.interactive else f"{line.rstrip()}\n")
        self.stream.flush()

    def close(self) -> None:
        self._render(force=True)
        if self.interactive:
            self.stream.write("\n")

    def write(self, text: str) -> int:
        """Takes what training prints (``contextlib.redirect_stdout``): each line goes above the bar."""
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self.stream.write(f"\r{line:<{BAR_WIDTH}}\n" if self.interactive else f"{line}\n")
        if lines and self.interactive:
            self._render(force=True)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def expected_minutes(plan: DemoPlan, gflops: float) -> float:
    """The plan's time measured on the reference 2-core CPU, scaled by this machine's matmul rate."""
    return plan.estimate_minutes * REFERENCE_GFLOPS / max(gflops, 1e-3)


def _minutes(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def plan_recipe(task: str, net: str, plan: DemoPlan, *, source: str | None, seed: int) -> recipes.Recipe:
    """The recipe the demo trains for ``task`` and ``net`` under ``plan``; ``source`` replaces CIFAR-10."""
    return shrink(f"{task}-{plan.grid}x{plan.grid}-{net}", plan.scale, seed=seed, sources={"cifar10": source} if source else None)


def plan_record(plan: DemoPlan, location: recipes.Recipe, image: recipes.Recipe) -> dict:
    """``results.json``'s ``plan``: what the run trained and how it scored, read from its location and image recipes."""
    return {"width": location["model"]["width"], "location_epochs": location.epochs, "image_epochs": image.epochs,
            "train_limit": location["data"]["limit"], "test_limit": location["data"]["test_limit"],
            "passes": location["evaluation"]["passes"] or plan.grid ** 2, "grid": plan.grid,
            "jit_compile": location["training"]["jit_compile"], "estimate_minutes": plan.estimate_minutes}


def kept_shares(results: dict) -> dict[str, float | None]:
    """Per task, the share of GAPNet's above-chance accuracy that PermuteNet keeps (:func:`pcw_keras.paper.kept_share`)."""
    return {task: paper.kept_share(results["PermuteNet"][task], results["GAPNet"][task], results["chance"][task])
            for task in CANVAS_TASKS}


def share_line(results: dict) -> str:
    """The asymmetry the numbers support: PermuteNet's kept share per task, here and in the paper."""
    here = kept_shares(results)
    theirs = {task: paper.channels_kept_share(task, results["grid"]) for task in CANVAS_TASKS}
    text = lambda share: "n/a" if share is None else f"{100 * share:.0f}%"  # noqa: E731
    return (f"PermuteNet keeps {text(here['location'])} of GAPNet's above-chance location accuracy and "
            f"{text(here['image'])} of its image accuracy (the paper, full scale: {text(theirs['location'])} and "
            f"{text(theirs['image'])}): shuffling the channels costs position {'more' if _less(here) else 'no more'} "
            "than semantics.")


def _less(shares: dict) -> bool:
    location, image = shares["location"], shares["image"]
    return location is not None and image is not None and location < image


def summary_line(results: dict) -> str:
    """One line on what the table shows, decided by :func:`pcw_keras.demo_verdict.verdict`'s stated thresholds."""
    return verdict(results).sentence


def format_table(results: dict) -> str:
    """The paper's layout: rows GAPNet and PermuteNet (here, then the paper's), columns location and image accuracy, chance."""
    grid = results["grid"]
    head = f"{'':<20}{f'location {grid}x{grid}':>14}{f'image {grid}x{grid}':>12}"
    rows = [head]
    for label, values in _table_rows(results):
        rows.append(f"{label:<20}{100 * values['location']:>13.1f}%{100 * values['image']:>11.1f}%")
    return "\n".join(rows)


def _table_rows(results: dict) -> list[tuple[str, dict]]:
    return [("GAPNet", results["GAPNet"]), ("PermuteNet", results["PermuteNet"]),
            *((f"{label} (paper)", values) for label, values in _paper_rows(results["grid"]).items()),
            ("chance", results["chance"])]


def _paper_rows(grid: int) -> dict[str, dict[str, float]]:
    """The paper's Table 1 at ``grid`` in the demo's rows (fractions); none for a grid the paper did not train."""
    if not any(key[1] == grid for key in paper.CHANNELS):
        return {}
    return {label: {task: paper.CHANNELS[(task, grid, net)] / 100 for task in CANVAS_TASKS} for net, label in NETWORKS}


def run_demo(
    out_dir: str,
    *,
    mode: str = "default",
    source: str | None = None,
    seed: int = 0,
    stream=sys.stderr,
) -> dict:
    """Trains and evaluates the four networks, writes the run folder, returns ``results.json``'s content.

    Parameters
    ----------
    out_dir : str
        Run folder: ``results.json``, ``results.md``, ``location_cells_gapnet.png``,
        ``location_cells_permutenet.png``, ``location_examples.png``, and one
        ``pcw train`` run directory per network and task (``location-gapnet/``
        ...; :func:`pcw_keras.training.train`, trained afresh each time).
    mode : {"quick", "default", "full"}
        ``quick``: a smoke run under a minute (proves the path, not the
        science); ``default``: the budget chosen by experiment (see
        :data:`PLANS`); ``full``: the paper's recipes as they are.
    source : str, optional
        Data source. Default: ``cifar10-mini`` (shipped with the package),
        and for ``full`` the recipes' own (CIFAR-10 from tfds, falling back to
        ``cifar10-mini`` with a notice where it cannot be downloaded).
    seed : int
        Seed of data order, placements and initial weights.
    """
    from pcw_keras.demo_plots import plot_cell_heatmap, plot_examples

    if mode not in PLANS:
        raise ValueError(f"`mode` must be one of {tuple(PLANS)}. Received: mode={mode!r}")
    plan = PLANS[mode]
    os.makedirs(out_dir, exist_ok=True)
    runs = {(task, net): plan_recipe(task, net, plan, source=source, seed=seed)
            for task in CANVAS_TASKS for net, _ in NETWORKS}
    data = {task: runs[(task, "gapnet")].datasets() for task in CANVAS_TASKS}
    steps = {(task, net): recipe.epochs * len(data[task].train) for (task, net), recipe in runs.items()}
    width = runs[("location", "gapnet")]["model"]["width"]
    source = runs[("location", "gapnet")]["data"]["source"]
    stream.write(
        f"pcw demo ({mode}): GAPNet and PermuteNet, ResNet-18 at width {width:g}, on {source} "
        f"({len(data['location'].train_images)} training images): location {runs[('location', 'gapnet')].epochs} epoch(s), "
        f"image {runs[('image', 'gapnet')].epochs} epoch(s) per network.\n"
    )
    gflops = matmul_gflops()
    if plan.estimate_minutes:
        stream.write(f"Expected time on this machine: about {expected_minutes(plan, gflops):.0f} min "
                     f"({plan.estimate_minutes:g} min on the reference 2-core CPU, scaled by this machine's "
                     f"{gflops:.0f} GFLOP/s matrix product); the bar shows the time left.\n")
    else:
        stream.write("Expected time: the paper's full recipes; the bar below shows the time left on this machine.\n")

    progress = _ProgressBar(sum(steps.values()), len(runs), stream)
    results: dict = {"mode": mode, "plan": plan_record(plan, runs[("location", "gapnet")], runs[("image", "gapnet")]),
                     "source": source, "seed": seed, "grid": plan.grid, "GAPNet": {}, "PermuteNet": {}, "chance": {}, "runs": {}}
    models = {}
    start = time.perf_counter()
    for task in CANVAS_TASKS:
        for net, label in NETWORKS:
            recipe = runs[(task, net)]
            progress.start_model(f"{task} {label}")
            run, model = _train_and_score(recipe, os.path.join(out_dir, f"{task}-{net}"), data[task].test_images, progress)
            progress.end_model()
            results[label][task] = run["test_accuracy"]
            results["chance"][task] = 1.0 / recipe.num_classes(data[task].train_images.class_names)
            results["runs"][f"{task}-{net}"] = run
            if task == "location":
                models[net] = model
    progress.close()
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    results["machine"] = {**machine.describe(), "matmul_gflops": round(gflops, 1)}
    decided = verdict(results)
    results["verdict"], results["summary"] = decided.kind, decided.sentence
    results["kept_share"] = kept_shares(results)
    results["kept_share_line"] = share_line(results)

    for net, label in NETWORKS:
        plot_cell_heatmap(results["runs"][f"location-{net}"]["per_cell_accuracy"], plan.grid,
                          f"{label}: location accuracy per cell (%)", os.path.join(out_dir, f"location_cells_{net}.png"))
    _plot_location_examples(models, data["location"].test_images, plan.grid, seed, os.path.join(out_dir, "location_examples.png"), plot_examples)
    write_text_atomic(os.path.join(out_dir, "results.json"), json.dumps(results, indent=2))
    write_text_atomic(os.path.join(out_dir, "results.md"), _markdown(results))
    return results


def _train_and_score(recipe: recipes.Recipe, run_dir: str, test_images, progress: _ProgressBar) -> tuple[dict, keras.Model]:
    """Trains ``recipe`` into ``run_dir`` (:func:`pcw_keras.training.train`) and scores its last epoch's model.

    Returns the run's entry in ``results.json``'s ``runs`` and the model.
    """
    from pcw_keras.evaluation import evaluate
    from pcw_keras.runs import load_model
    from pcw_keras.training import train

    history = keras.callbacks.History()  # the image task's validation curve shows whether PermuteNet is still rising
    with contextlib.redirect_stdout(progress):  # what train() prints goes above the bar
        trained = train(recipe, run_dir, verbose=0, extra_callbacks=[progress, history], force=True)
    model = load_model(os.path.join(run_dir, "last.keras"))
    scores = evaluate(model, test_images, task=recipe["task"], evaluation=recipe["evaluation"], seed=recipe["training"]["seed"])
    return {
        "recipe": recipe.name, "epochs": recipe.epochs, "width": recipe["model"]["width"],
        "train_seconds": trained["train_seconds_this_session"], "test_accuracy": scores["accuracy"],
        "accuracy_per_pass": scores["accuracy_per_pass"], "per_cell_accuracy": scores["per_cell_accuracy"],
        "validation_curve": [round(float(v), 4) for v in history.history.get("val_accuracy", [])],
    }, model


def _plot_location_examples(models: dict, test_images, grid: int, seed: int, path: str, plot_examples) -> None:
    from pcw_keras.data import CIFAR_MEAN, CIFAR_STD, canvas_dataset

    rng = np.random.default_rng(seed)
    examples = test_images.subset(np.sort(rng.choice(len(test_images), size=min(6, len(test_images)), replace=False)))
    canvases, cells = next(iter(canvas_dataset(examples, grid=grid, task="location", batch_size=len(examples),
                                               training=False, seed=seed + 99, flip=False)))
    canvases, cells = np.asarray(canvases), np.asarray(cells)
    predictions = {label: np.argmax(models[net].predict_on_batch(canvases), axis=-1) for net, label in NETWORKS}
    plot_examples(canvases, cells, predictions, grid, CIFAR_MEAN, CIFAR_STD, path)


def _markdown(results: dict) -> str:
    grid = results["grid"]
    lines = [
        f"# pcw demo ({results['mode']}, seed {results['seed']}, {results['source']})", "",
        f"| network | location {grid}x{grid} | image {grid}x{grid} |", "|---|---:|---:|",
    ]
    for label, values in _table_rows(results):
        lines.append(f"| {label} | {100 * values['location']:.1f} | {100 * values['image']:.1f} |")
    lines += ["", results["summary"], "", results["kept_share_line"], "", f"Wall time: {_minutes(results['wall_seconds'])} (min:s).", "",
              "![GAPNet per-cell location accuracy](location_cells_gapnet.png) "
              "![PermuteNet per-cell location accuracy](location_cells_permutenet.png)", "",
              "![Example canvases](location_examples.png)", ""]
    return "\n".join(lines)
