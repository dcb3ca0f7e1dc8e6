"""Resumable training: killed runs resume exactly, and the run directory stays consistent."""
import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from pcw_keras.training.callbacks import (
    AtomicModelCheckpoint,
    ResumableBackup,
    ResumableCSVLogger,
    SyncWorkerStatistics,
    resume_callbacks,
)

SCRIPT = Path(__file__).parent / "scripts" / "train_resumable.py"
TIMEOUT_S = 120


def _start(run_dir: Path, kill_at: str = "", *extra: str) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PCW_TEST_KILL_AT=kill_at, CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(run_dir), "--epochs", "4", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str, int]:
    """Waits; returns (returncode, output, first epoch trained)."""
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    starts = [int(line.split()[1]) for line in out.splitlines() if line.startswith("START_EPOCH ")]
    return proc.returncode, out, starts[0] if starts else -1


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_resume_after_three_kills_equals_uninterrupted_run(tmp_path):
    reference = _start(tmp_path / "reference")  # runs beside the killed chain
    run_dir = tmp_path / "run"
    # Mid-epoch 1; end of epoch 2 before its backup is committed (epoch 2 is
    # replayed); start of epoch 3. Then the same command runs to the end.
    starts = []
    for kill_at, expected_rc in [("1:3", -signal.SIGKILL), ("2:end", -signal.SIGKILL), ("3:0", -signal.SIGKILL), ("", 0)]:
        returncode, out, start = _finish(_start(run_dir, kill_at))
        assert returncode == expected_rc, f"kill_at={kill_at!r}:\n{out[-4000:]}"
        starts.append(start)
    assert starts == [0, 1, 2, 3]
    returncode, out, _ = _finish(reference)
    assert returncode == 0, out[-4000:]

    rows, expected = _rows(run_dir / "metrics.csv"), _rows(tmp_path / "reference" / "metrics.csv")
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2, 3]
    assert rows[0].keys() == expected[0].keys()
    for row, ref in zip(rows, expected):
        for key in ref:
            np.testing.assert_allclose(float(row[key]), float(ref[key]), rtol=0, atol=1e-6, err_msg=key)

    final = np.load(run_dir / "final_weights.npz")
    ref_final = np.load(tmp_path / "reference" / "final_weights.npz")
    assert final.files == ref_final.files
    for key in final.files:
        np.testing.assert_allclose(final[key], ref_final[key], rtol=0, atol=1e-6)

    last = keras.saving.load_model(run_dir / "last.keras")
    for saved, trained in zip(last.get_weights(), (final[key] for key in final.files)):
        np.testing.assert_array_equal(saved, trained)
    keras.saving.load_model(run_dir / "best.keras")
    record = json.loads((run_dir / "best.json").read_text())
    val_accuracy = [float(row["val_accuracy"]) for row in expected]
    assert record["epoch"] == int(np.argmax(val_accuracy)) and record["value"] == max(val_accuracy)
    assert not (run_dir / "backup").exists()
    assert not list(run_dir.glob(".*"))  # no temporary or half-written files


def test_upstream_backup_restarts_from_epoch_zero_after_second_kill(tmp_path):
    """keras.callbacks.BackupAndRestore(save_freq=3): the defect ResumableBackup avoids."""
    starts = []
    for kill_at in ["1:5", "1:6", ""]:
        returncode, out, start = _finish(_start(tmp_path, kill_at, "--upstream-backup"))
        assert returncode == (0 if not kill_at else -signal.SIGKILL), out[-4000:]
        starts.append(start)
    # The second run resumes in epoch 1 but its backups record epoch 0.
    assert starts == [0, 1, 0]
    epochs = [int(row["epoch"]) for row in _rows(tmp_path / "metrics.csv")]
    assert epochs == [0, 0, 1, 2, 3]  # and CSVLogger(append=True) duplicates rows


def _tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(0.5), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_csv_logger_drops_replayed_epochs(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,loss\n0,1.5\n1,1.25\n2,1.0\n3,0.")  # epochs 2 and 3 are being replayed
    logger = ResumableCSVLogger(path)
    logger.set_model(_tiny_model())
    logger.on_train_begin()
    logger.on_epoch_begin(2)
    logger.on_epoch_end(2, {"loss": np.float32(0.75), "extra": 1.0})
    logger.on_epoch_begin(3)
    logger.on_epoch_end(3, {"loss": 0.5})
    assert path.read_text().splitlines() == ["epoch,loss", "0,1.5", "1,1.25", "2,0.75", "3,0.5"]


def test_backup_restores_seed_generator_state(tmp_path):
    model = _tiny_model()
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    backup = ResumableBackup(tmp_path / "backup")
    backup.set_model(model)
    model.fit(x, y, epochs=1, verbose=0)
    backup.on_epoch_end(0)
    state = [np.asarray(v.value) for v in model.variables]
    model.fit(x, y, epochs=1, verbose=0)  # moves weights and the dropout seed
    assert json.loads((tmp_path / "backup" / "state.json").read_text())["epoch"] == 1
    backup.on_train_begin()
    assert backup.resumed_epoch == 1 and model._initial_epoch == 1
    for saved, restored in zip(state, model.variables):
        np.testing.assert_array_equal(saved, np.asarray(restored.value))
    backup.on_train_end()
    assert not (tmp_path / "backup").exists() and model._initial_epoch is None


def test_resume_callbacks_order_and_paths(tmp_path):
    callbacks = resume_callbacks(tmp_path, monitor="val_loss", mode="min", tensorboard=False)
    kinds = [type(cb) for cb in callbacks]
    assert kinds == [SyncWorkerStatistics, ResumableCSVLogger, AtomicModelCheckpoint, AtomicModelCheckpoint, ResumableBackup]
    assert callbacks[1].path == tmp_path / "metrics.csv"
    assert callbacks[2].path == tmp_path / "last.keras" and callbacks[2].monitor is None
    assert callbacks[3].path == tmp_path / "best.keras" and callbacks[3].mode == "min"
    assert len(resume_callbacks(tmp_path, monitor=None, tensorboard=False)) == 4


def test_resume_callbacks_have_no_batch_hooks(tmp_path):
    """Keras waits for a step's result to call a batch hook; the run directory's callbacks work per epoch."""
    for callback in resume_callbacks(tmp_path):  # TensorBoard's included where it is installed
        for hook in ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"):
            assert getattr(type(callback), hook) is getattr(keras.callbacks.Callback, hook), (type(callback).__name__, hook)


def test_a_run_stored_with_another_steps_per_execution_is_the_same_recipe(tmp_path):
    from pcw_keras import recipes
    from pcw_keras.training.runner import _stored_epochs

    stored = recipes.load("location-3x3-gapnet", **{"training.steps_per_execution": 1, "training.epochs": 2})
    (tmp_path / "recipe.yaml").write_text(stored.to_yaml())
    assert _stored_epochs(str(tmp_path), recipes.load("location-3x3-gapnet")) == 2
    with pytest.raises(ValueError, match="different recipe"):
        _stored_epochs(str(tmp_path), recipes.load("location-3x3-gapnet", **{"training.seed": 1}))


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="Received: mode='up'"):
        resume_callbacks(tmp_path, mode="up")
    with pytest.raises(ValueError, match="Received: path="):
        AtomicModelCheckpoint(tmp_path / "model.h5")
    with pytest.raises(ValueError, match="Received: backup_dir=''"):
        ResumableBackup("")
    checkpoint = AtomicModelCheckpoint(tmp_path / "best.keras", monitor="val_accuracy")
    checkpoint.set_model(_tiny_model())
    with pytest.raises(KeyError, match="val_accuracy"):
        checkpoint.on_epoch_end(0, {"loss": 1.0})


def test_tensorboard_needs_its_package(tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        assert isinstance(resume_callbacks(tmp_path, tensorboard=True)[-2], keras.callbacks.TensorBoard)
    else:
        with pytest.raises(ImportError, match="tensorboard"):
            resume_callbacks(tmp_path, tensorboard=True)


def test_auto_progress_is_a_bar_on_a_terminal_and_a_line_per_epoch_in_a_log(monkeypatch):
    import io
    import sys

    from pcw_keras.training.callbacks.metrics_log import progress_verbosity

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    assert progress_verbosity("auto") == 1
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert progress_verbosity("auto") == 2
    assert progress_verbosity(0) == 0


REAL_RUN = ["train", "location-3x3-gapnet", "--data", "cifar10-mini", "--epochs", "3", "--set", "model.width=0.125",
            "--set", "data.limit=2000", "--set", "data.test_limit=200", "--set", "evaluation.passes=2"]


def _pcw(run_dir: Path, when: str) -> subprocess.CompletedProcess:
    script = Path(__file__).parent / "scripts" / "train_killed.py"
    return subprocess.run([sys.executable, str(script), when, "--", *REAL_RUN, "--out", str(run_dir)],
                          capture_output=True, text=True, timeout=300)


def test_pcw_train_killed_three_times_inside_writes_and_mid_epoch_ends_as_an_uninterrupted_run(tmp_path):
    """The real command: shuffled data, random placements, flips, a validation split, 3 epochs of 1,800 images.

    Kills: inside the write of last.keras after epoch 0; inside the backup's
    commit (state.json) after epoch 1; at a random training batch of the
    epoch after (seeded). Then a clean rerun finishes. The runs use the
    recipe's default loop: several steps per call of the compiled step
    (``training.steps_per_execution: auto``) and no batch hooks.
    """
    import random

    from pcw_keras.runs import Run

    whole = tmp_path / "whole"
    assert _pcw(whole, "none").returncode == 0
    killed = tmp_path / "killed"
    batch = 37 + random.Random(0).randint(2, 30)  # a batch of the second epoch this process trains
    for when in ("write:last.keras:1", "write:state.json:2", f"batch:{batch}"):
        result = _pcw(killed, when)
        assert result.returncode == -signal.SIGKILL, (when, result.stdout[-2000:], result.stderr[-2000:])
    result = _pcw(killed, "none")
    assert result.returncode == 0, result.stderr[-3000:]
    assert Run(str(killed)).recipe.steps_per_execution() > 1  # the fast loop

    expected, got = _rows(whole / "metrics.csv"), _rows(killed / "metrics.csv")
    assert [row["epoch"] for row in got] == ["0", "1", "2"]
    for want, have in zip(expected, got):
        for key in want:
            assert float(have[key]) == pytest.approx(float(want[key]), rel=1e-6, abs=1e-6), (key, want, have)
    final = [keras.models.load_model(run / "last.keras").get_weights() for run in (whole, killed)]
    for a, b in zip(*final):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    leftovers = [p.name for p in killed.rglob("*") if p.name.endswith((".tmp", ".tmp.keras")) or ".partial" in p.name]
    assert not leftovers and not (killed / "backup").exists()
