"""benchmarks/gpu_check.sh, as the device call runs it, dry on the CPU under JAX without TensorFlow; then resumed.

The four grid-3 cells of Table 1 at width 1/16, 120 training images, one epoch
and one placement of 40 test images (``--dry-run``), on ``cifar10-mini``:
the NumPy data pipeline, ``pcw reproduce`` side by side, the report with the
paper's values, the timings and the archive. Run again, it skips the finished
cells and writes the same report.
"""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import keras
import pytest

pytestmark = [
    pytest.mark.jax,
    pytest.mark.skipif(
        keras.backend.backend() != "jax",
        reason="the JAX run: KERAS_BACKEND=jax python -m pytest -m jax (.ci/run, in a TensorFlow-free venv)",
    ),
]
ROOT = Path(__file__).resolve().parents[1]
CELLS = {"location-3x3-gapnet": 100.0, "location-3x3-permutenet": 78.8, "image-3x3-gapnet": 82.6, "image-3x3-permutenet": 82.1}


def _gpu_check(tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OUT=str(tmp_path / "out"), PYTHON=sys.executable)
    command = ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--runs", str(tmp_path / "runs")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_gpu_check_dry_run_writes_the_four_cells_beside_the_paper_and_resumes(tmp_path):
    _gpu_check(tmp_path)
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["cells.tar.gz", "gpu_check.json", "results.md", "results.png"]
    report = (out / "results.md").read_text()
    assert "paper scale" in report and "model.width=0.0625" in report and "training.precision=mixed_bfloat16" in report
    for cell, paper in CELLS.items():  # one row per cell: the paper's value, this run's, one seed of one done
        row = next(line for line in report.splitlines() if line.startswith(f"| {cell} |"))
        assert row.startswith(f"| {cell} | accuracy | {paper:.1f} | ") and row.endswith(" | 1/1 |")
    timings = json.loads((out / "gpu_check.json").read_text())
    assert timings["finished"] == 4 and timings["dry_run"] and timings["parallel"] == 4
    for cell in timings["cells"]:
        assert cell["returncode"] == 0 and cell["wall_s"] > 0 and cell["epochs_done"] == 1
        assert cell["results"]["test_images"] == 40 and len(cell["metrics"]) == 1
    with tarfile.open(out / "cells.tar.gz") as archive:
        names = set(archive.getnames())
    assert {f"{cell}/{name}" for cell in CELLS for name in ("metrics.csv", "results.json", "reproduce.log")} <= names

    stamps = {cell: (tmp_path / "runs" / "channels" / cell / "seed-0" / "results.json").stat().st_mtime_ns for cell in CELLS}
    again = _gpu_check(tmp_path)
    assert again.stdout.count("is finished") == 4 and "4/4 cells finished" in again.stdout
    assert all((tmp_path / "runs" / "channels" / cell / "seed-0" / "results.json").stat().st_mtime_ns == stamp
               for cell, stamp in stamps.items())
    assert (out / "results.md").read_text().split("\n", 3)[3] == report.split("\n", 3)[3]  # the table, unchanged
