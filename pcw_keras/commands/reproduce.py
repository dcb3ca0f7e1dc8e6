"""``pcw reproduce TABLE``: fill one of the paper's tables, cell by cell, resumably."""
from __future__ import annotations

import os
import time

import click

from pcw_keras.choices import REPRODUCE_SCALES, REPRODUCE_TABLES
from pcw_keras.commands import parse_sets


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in _names(text)]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers >= 0, e.g. 0,1,2. Received: {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"expected distinct integers >= 0, e.g. 0,1,2. Received: {text!r}")
    return seeds


@click.command("reproduce")
@click.argument("table", type=click.Choice(REPRODUCE_TABLES))
@click.option("--scale", type=click.Choice(REPRODUCE_SCALES), default="reduced", show_default=True,
              help="paper: the recipes as they are. reduced: width 1/8, all images, the paper's epochs. "
                   "demo: pcw demo's budget.")
@click.option("--cells", metavar="NAME,NAME", help="Only these cells (recipe names; default: the whole table).")
@click.option("--seeds", "seeds_text", default="0", show_default=True, metavar="0,1,2", help="One run per seed and cell.")
@click.option("--data", metavar="SOURCE", help="CIFAR-10 source for the cells that train on CIFAR-10 (image folder, .tar.gz, ...).")
@click.option("--data-cifar100", metavar="SOURCE", help="CIFAR-100 source for the CIFAR-100 cells.")
@click.option("--out", default=os.path.join("runs", "reproduce"), show_default=True, type=click.Path(file_okay=False),
              help="Runs go to OUT/TABLE/CELL/seed-N; results.md and results.png to OUT/TABLE.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set a recipe field in every cell, over the scale, e.g. --set training.precision=mixed_bfloat16.")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Start no run after SECONDS and stop a run between epochs rather than pass it (resumable).")
@click.option("--estimate-only", is_flag=True, help="Print the time estimate and stop.")
@click.option("--no-estimate", is_flag=True, help="Start training without measuring the estimate first.")
@click.option("--report-only", is_flag=True, help="Rewrite results.md and results.png from the finished runs; train nothing.")
@click.option("--device", metavar="NAME|TFLOPS",
              help="Estimate for this device instead of measuring here: h100-sxm, h100-pcie, h200, a100, "
                   "or a dense peak in TFLOP/s of the compute dtype.")
@click.option("--device-fraction", type=click.FloatRange(min=0, max=1, min_open=True), metavar="F",
              help="With --device: the share of its peak the model's arithmetic reaches (default 0.10).")
@click.option("--step-overhead-ms", type=click.FloatRange(min=0), metavar="MS",
              help="With --device: milliseconds per step beside the arithmetic (default: a width-1/32 step measured here).")
def command(table, scale, cells, seeds_text, data, data_cifar100, out, sets, time_budget, estimate_only, no_estimate,
            report_only, device, device_fraction, step_overhead_ms) -> None:
    """Reproduce TABLE of the paper: channels (Table 1, 8 cells) or translation (Table 2, 6 cells, and 2 APS rows beyond it).

    Each cell is a `pcw train` run of its recipe in its own run directory. Before
    starting, it prints an estimate: the FLOPs of every run at the rate and
    per-step overhead measured here in two real training steps (or those of
    --device), in minutes. Killed, or stopped by --time-budget, the same
    command resumes the cell it was in and skips the finished ones. After each
    cell it rewrites OUT/TABLE/results.md (the paper's value beside the mean ±
    std over seeds, with the scale, the fields set and the hardware) and a bar
    chart, results.png.

    \b
    Example:
      pcw reproduce channels --scale demo --cells location-3x3-gapnet,location-3x3-permutenet \\
          --data ../shared/data/cifar10-jpeg.tar.gz
    """
    from pcw_keras import reproduce

    deadline = time.perf_counter() + time_budget if time_budget else None
    seeds = _seeds(seeds_text)
    if estimate_only and no_estimate:
        raise click.UsageError("--estimate-only and --no-estimate exclude each other.")
    sources = {key: value for key, value in (("cifar10", data), ("cifar100", data_cifar100)) if value}
    overrides = parse_sets(sets)
    try:
        chosen = reproduce.table_cells(table, _names(cells))
        if report_only:
            reproduce.run(table, chosen, scale, seeds, [], out, echo=click.echo, overrides=overrides)
            return
        speed = None if no_estimate else reproduce.estimator(device, device_fraction, step_overhead_ms)
        plan = reproduce.plan(table, chosen, scale, seeds, sources, out, overrides, speed)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    if speed is not None:
        click.echo(reproduce.format_plan(plan))
    if estimate_only:
        return
    try:
        reproduce.run(table, chosen, scale, seeds, plan, out, echo=click.echo, deadline=deadline, overrides=overrides)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
