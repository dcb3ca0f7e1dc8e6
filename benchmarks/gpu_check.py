"""The grid-3 half of the paper's Table 1 in one accelerator call: four ``pcw reproduce`` cells side by side.

GAPNet and PermuteNet on the location and the image task, 3x3 canvases, at
the paper's scale (full width, 20 epochs of the 45,000 training images,
batch 48, the mean over 9 placements of the test split), each cell a
``pcw reproduce channels --scale paper --cells CELL`` process under JAX.
The processes share the accelerator (each may take ``0.9 / --parallel`` of
its memory: ``XLA_PYTHON_CLIENT_MEM_FRACTION``), so one cell's host work
(Python, the input feed) overlaps another's device work. Every process gets
what is left of ``--budget`` as its ``--time-budget``: a cell that would not
finish stops between two epochs, and the same command resumes it.

At the end, ``pcw reproduce --report-only`` writes the four cells'
``results.md`` (the paper's values beside), and ``--report`` (default
``$OUT``, else the runs folder) receives ``results.md``, ``results.png``,
``gpu_check.json`` (the command's timings, each cell's ``results.json`` and
``metrics.csv`` rows) and ``cells.tar.gz`` (each cell's recipe, metrics,
results and log).

``--estimate DEVICE`` trains nothing: it prints, as JSON, the estimate of
this check for a named device (``pcw reproduce --device``: FLOPs counted
from the models, the device's peak times an assumed share, a per-step
overhead: ``--step-overhead-ms``, or ``--step-overhead-from`` a
``benchmarks/host_overhead.py`` JSON, whose JAX ``pcw train`` host time per
step it takes), one cell after another and side by side. Side by side, the
cells' arithmetic queues on the one device while each cell's per-step
overhead overlaps the others' arithmetic: the wall time is taken as the
larger of the summed arithmetic and the slowest cell alone (compilation and
data loading left out).

Usage (``benchmarks/gpu_check.sh`` wraps it; ``--dry-run`` is the CI's
check on a CPU)::

    KERAS_BACKEND=jax python benchmarks/gpu_check.py --data .gpu/cifar10-jpeg.tar.gz
    KERAS_BACKEND=jax python benchmarks/gpu_check.py --dry-run --runs /tmp/gpu_check
    python benchmarks/gpu_check.py --estimate h100-sxm --step-overhead-from docs/bench/host_overhead_cpu.json \
        --data cifar10-jpeg.tar.gz
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

CELLS = ("location-3x3-gapnet", "location-3x3-permutenet", "image-3x3-gapnet", "image-3x3-permutenet")
TABLE = "channels"
SEED = 0
DRY_RUN = ("model.width=0.0625", "data.limit=120", "data.test_limit=40", "training.epochs=1", "evaluation.passes=1")
"""The dry run's recipe fields: width 1/16, 120 training images (108 after validation: 2 steps), one epoch,
one placement of 40 test images."""
REPORT_RESERVE_S = 45.0
"""Seconds kept back from ``--budget`` for the report, the archive and the copies."""
CELL_FILES = ("recipe.yaml", "metrics.csv", "results.json", "best.json")
HOST_OVERHEAD_KEY = ("backends", "jax", "pcw_train", "host_ms_per_step")
"""Where ``--step-overhead-from`` finds the per-step overhead in ``benchmarks/host_overhead.py``'s JSON."""


def reproduce_command(cells: tuple[str, ...], args: argparse.Namespace, *extra: str) -> list[str]:
    """The ``pcw reproduce channels --scale paper`` command line for ``cells`` with this check's data and fields."""
    sets = [f"--set={field}" for field in (*args.set, *(DRY_RUN if args.dry_run else ()))]
    return [sys.executable, "-m", "pcw_keras.cli", "reproduce", TABLE, "--scale", "paper", "--cells", ",".join(cells),
            "--seeds", str(SEED), "--data", args.data, "--out", args.runs, *sets, *extra]


def cell_dir(args: argparse.Namespace, cell: str) -> str:
    """The run directory ``pcw reproduce`` gives ``cell`` (``OUT/TABLE/CELL/seed-N``)."""
    return os.path.join(args.runs, TABLE, cell, f"seed-{SEED}")


def run_cells(args: argparse.Namespace, deadline: float) -> dict[str, dict]:
    """Trains the unfinished cells, ``--parallel`` at a time, each with the budget left; returns each one's exit code
    and wall time. A cell whose run has its ``results.json`` is finished, as ``pcw reproduce`` decides, and skipped."""
    env = dict(os.environ)
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / args.parallel:.2f}")
    logs = os.path.join(args.runs, "logs")
    os.makedirs(logs, exist_ok=True)
    waiting, running, finished = list(args.cells), {}, {}
    while waiting or running:
        while waiting and len(running) < args.parallel:
            cell = waiting.pop(0)
            budget = deadline - time.perf_counter()
            if os.path.isfile(os.path.join(cell_dir(args, cell), "results.json")):  # as pcw reproduce decides
                finished[cell] = {"returncode": None, "wall_s": 0.0, "note": "finished earlier: skipped"}
                print(f"gpu_check: {cell} is finished ({cell_dir(args, cell)}); skipped.", flush=True)
                continue
            if budget <= 1:
                finished[cell] = {"returncode": None, "wall_s": 0.0, "note": "not started: the budget is spent"}
                continue
            log = open(os.path.join(logs, f"{cell}.log"), "w", encoding="utf-8")
            command = reproduce_command((cell,), args, "--no-estimate", f"--time-budget={budget:.0f}")
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            running[cell] = (process, log, time.perf_counter())
            print(f"gpu_check: {cell} started, {budget:.0f} s of budget (log: {log.name})", flush=True)
        time.sleep(0.5)
        for cell, (process, log, began) in list(running.items()):
            overdue = time.perf_counter() > deadline + args.grace
            if process.poll() is None and not overdue:
                continue
            if process.poll() is None:  # past the budget and its grace: killed, resumable like any killed run
                process.kill()
                process.wait()
            log.close()
            del running[cell]
            finished[cell] = {"returncode": process.returncode, "wall_s": round(time.perf_counter() - began, 1)}
            print(f"gpu_check: {cell} ended (exit {process.returncode}) after {finished[cell]['wall_s']} s", flush=True)
    return finished


def cell_record(args: argparse.Namespace, cell: str, process: dict) -> dict:
    """What ``gpu_check.json`` says of ``cell``: the process, and its run's results and metrics rows."""
    path = cell_dir(args, cell)
    record = {"cell": cell, **process, "results": None, "metrics": []}
    if os.path.isfile(os.path.join(path, "results.json")):
        with open(os.path.join(path, "results.json"), encoding="utf-8") as handle:
            record["results"] = json.load(handle)
    if os.path.isfile(os.path.join(path, "metrics.csv")):
        with open(os.path.join(path, "metrics.csv"), encoding="utf-8", newline="") as handle:
            record["metrics"] = list(csv.DictReader(handle))
    record["epochs_done"] = len(record["metrics"])
    return record


def accelerator() -> str:
    """``nvidia-smi``'s name, memory and driver of the GPUs, or ``none`` where there is none."""
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "none"
    return result.stdout.strip() or "none"


def archive(args: argparse.Namespace, path: str) -> None:
    """``cells.tar.gz``: each cell's recipe, metrics, results and best epoch, and its log (no model files)."""
    with tarfile.open(path, "w:gz") as tar:
        for cell in args.cells:
            for name in CELL_FILES:
                source = os.path.join(cell_dir(args, cell), name)
                if os.path.isfile(source):
                    tar.add(source, arcname=f"{cell}/{name}")
            log = os.path.join(args.runs, "logs", f"{cell}.log")
            if os.path.isfile(log):
                tar.add(log, arcname=f"{cell}/reproduce.log")


def measured_step_overhead_ms(path: str) -> float:
    """``pcw train``'s host time per training step under JAX (ms) in a ``benchmarks/host_overhead.py`` JSON.

    That is the CPU time of the thread that runs the training loop (Python,
    the batch draw, the dispatch of each step), measured on the benchmark's
    machine: the work an accelerator waits on when its own step is shorter.

    Raises
    ------
    ValueError
        A file without that figure, naming the file and the key.
    """
    with open(path, encoding="utf-8") as handle:
        value = json.load(handle)
    for key in HOST_OVERHEAD_KEY:
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"{path} has no {'.'.join(HOST_OVERHEAD_KEY)} (benchmarks/host_overhead.py's JSON, "
                             f"JAX measured). Missing: {key!r}")
        value = value[key]
    return float(value)


def estimate(args: argparse.Namespace) -> dict:
    """The check's estimate for the device ``--estimate`` names, per cell and in total (see the module's docstring)."""
    from pcw_keras import reproduce
    from pcw_keras.recipes import parse_override

    overrides = dict(parse_override(field) for field in (*args.set, *(DRY_RUN if args.dry_run else ())))
    overhead_ms = args.step_overhead_ms
    if args.step_overhead_from:
        overhead_ms = measured_step_overhead_ms(args.step_overhead_from)
    speed = reproduce.estimator(args.estimate, args.device_fraction, overhead_ms)
    runs = reproduce.plan(TABLE, reproduce.table_cells(TABLE, list(args.cells)), "paper", [SEED], {"cifar10": args.data},
                          args.runs, overrides, speed)
    cells = []
    for run in runs:
        arithmetic = (run.train_flops + run.eval_flops) / run.speed.rate
        cells.append({"cell": run.cell.recipe, "steps": run.steps, "epochs": run.recipe.epochs,
                      "batch_size": run.recipe["training"]["batch_size"], "train_flops": run.train_flops,
                      "eval_flops": run.eval_flops, "step_flops": run.train_flops / run.steps,
                      "arithmetic_s": arithmetic, "overhead_s": run.steps * run.speed.overhead, "seconds": run.seconds})
    speeds = reproduce.runs_speeds(runs)
    return {
        "device": args.estimate, "source": speeds[0].source, "peak_flops": speeds[0].peak, "fraction": speeds[0].fraction,
        "rate_flops": speeds[0].rate, "step_overhead_s": speeds[0].overhead,
        "step_overhead_from": args.step_overhead_from and f"{args.step_overhead_from}#{'.'.join(HOST_OVERHEAD_KEY)}",
        "overrides": overrides, "cells": cells,
        "one_after_another_s": sum(cell["seconds"] for cell in cells),
        "arithmetic_s": sum(cell["arithmetic_s"] for cell in cells),
        "side_by_side_s": max(sum(cell["arithmetic_s"] for cell in cells), max(cell["seconds"] for cell in cells)),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="CIFAR-10 source (default: .gpu/cifar10-jpeg.tar.gz; the dry run: cifar10-mini).")
    parser.add_argument("--runs", default=os.path.join("runs", "gpu_check"), help="The runs' folder (pcw reproduce --out).")
    parser.add_argument("--report", default=os.environ.get("OUT"), help="Where the report files go (default: $OUT, else --runs).")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=CELLS)
    parser.add_argument("--parallel", type=int, default=4, help="Cells trained at once on the one device.")
    parser.add_argument("--budget", type=float, default=540.0,
                        help="Seconds for the whole check, the report included (a device call may run 600).")
    parser.add_argument("--grace", type=float, default=20.0, help="Seconds past the budget before a cell is killed.")
    parser.add_argument("--set", action="append", default=["training.precision=mixed_bfloat16"], metavar="FIELD=VALUE",
                        help="Recipe fields for every cell (default: training.precision=mixed_bfloat16).")
    parser.add_argument("--dry-run", action="store_true", help="Width 1/16, 120 images, 1 epoch, 40 test images (CPU).")
    parser.add_argument("--estimate", metavar="DEVICE", help="Print the estimate for DEVICE (pcw reproduce --device) as JSON; "
                                                             "train nothing.")
    parser.add_argument("--device-fraction", type=float, help="With --estimate: the assumed share of the peak.")
    overhead = parser.add_mutually_exclusive_group()
    overhead.add_argument("--step-overhead-ms", type=float, help="With --estimate: milliseconds per step beside the arithmetic.")
    overhead.add_argument("--step-overhead-from", metavar="JSON",
                          help="With --estimate: the per-step overhead from benchmarks/host_overhead.py's JSON "
                               f"({'.'.join(HOST_OVERHEAD_KEY)}).")
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error(f"--parallel must be >= 1. Received: {args.parallel}")
    if args.budget <= REPORT_RESERVE_S:
        parser.error(f"--budget must exceed the report's {REPORT_RESERVE_S:.0f} s. Received: {args.budget}")
    args.data = args.data or ("cifar10-mini" if args.dry_run else os.path.join(".gpu", "cifar10-jpeg.tar.gz"))
    args.report = args.report or args.runs
    return args


def main(argv: list[str] | None = None) -> int:
    began = time.perf_counter()
    args = parse_args(argv)
    if args.estimate:
        print(json.dumps(estimate(args), indent=1))
        return 0
    processes = run_cells(args, deadline=began + args.budget - REPORT_RESERVE_S)
    report = subprocess.run(reproduce_command(tuple(args.cells), args, "--report-only"), capture_output=True, text=True)
    print(report.stdout + report.stderr, flush=True)
    os.makedirs(args.report, exist_ok=True)
    for name in ("results.md", "results.png"):
        source = os.path.join(args.runs, TABLE, name)
        if os.path.isfile(source) and os.path.abspath(args.report) != os.path.abspath(os.path.dirname(source)):
            shutil.copy(source, os.path.join(args.report, name))
    archive(args, os.path.join(args.report, "cells.tar.gz"))
    cells = [cell_record(args, cell, processes[cell]) for cell in args.cells]
    summary = {
        "command": reproduce_command(tuple(args.cells), args)[2:], "parallel": args.parallel, "budget_s": args.budget,
        "dry_run": args.dry_run, "accelerator": accelerator(),
        "memory_fraction_per_process": os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / args.parallel:.2f}"),
        "wall_s": round(time.perf_counter() - began, 1), "finished": sum(cell["results"] is not None for cell in cells),
        "cells": cells,
    }
    with open(os.path.join(args.report, "gpu_check.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    print(f"gpu_check: {summary['finished']}/{len(cells)} cells finished in {summary['wall_s']} s; "
          f"report in {args.report}", flush=True)
    return report.returncode


if __name__ == "__main__":
    sys.exit(main())
