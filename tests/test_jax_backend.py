"""The JAX backend end to end, without TensorFlow: layers, recipes, `pcw train` (resumed after SIGKILL), two devices.

Run by ``.ci/run`` in a virtual environment with the ``[jax]`` extra and no
TensorFlow: ``KERAS_BACKEND=jax python -m pytest -q -m jax`` (conftest.py
also blocks ``import tensorflow`` there).
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from canvas_scores import recompute, weighted_cell_mean

pytestmark = [
    pytest.mark.jax,
    pytest.mark.skipif(
        keras.backend.backend() != "jax",
        reason="the JAX run: KERAS_BACKEND=jax python -m pytest -m jax (.ci/run, in a TensorFlow-free venv)",
    ),
]
SCRIPTS = Path(__file__).parent / "scripts"


def test_tensorflow_cannot_be_imported_here():
    with pytest.raises(ImportError):
        import tensorflow  # noqa: F401


def test_models_layers_and_placement_run_on_jax():
    from pcw_keras.layers import CanvasPlacement
    from pcw_keras.models import count_flops, create_model
    from pcw_keras.models.precision import dtype_policy

    with dtype_policy("mixed_bfloat16"):
        model = create_model("permutenet_resnet18", num_classes=9, input_shape=(96, 96, 3), width=0.0625, permutation_seed=0)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    patches = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    canvases = CanvasPlacement(grid=3)((patches, np.arange(8) % 9))
    loss = float(model.train_on_batch(canvases, np.arange(8) % 9))
    assert np.isfinite(loss) and model.predict_on_batch(canvases).shape == (8, 9) and count_flops(model) > 0


def test_recipe_datasets_feed_model_fit_and_evaluate(tiny_npz):
    from pcw_keras import recipes

    recipe = recipes.load("image-3x3-permutenet", **{"data.source": tiny_npz, "model.width": 0.0625, "training.batch_size": 16})
    data = recipe.datasets()
    model = recipe.build_model(class_names=data.train_images.class_names)
    history = model.fit(data.train, validation_data=data.validation, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "val_accuracy" in history.history
    # PermuteNet draws a permutation at every call, in inference too: set its random state back after the
    # evaluation, and the recomputation draws the same permutations for the same batches.
    state = [keras.ops.convert_to_numpy(variable.value) for variable in model.non_trainable_variables]
    from pcw_keras.evaluation import evaluate

    scores = evaluate(model, data.test_images, task=recipe["task"], evaluation=recipe["evaluation"],
                      seed=recipe["training"]["seed"])
    for variable, value in zip(model.non_trainable_variables, state):
        variable.assign(value)
    evaluation = recipe["evaluation"]
    again = recompute(model, data.test_images, grid=3, task="image", passes=evaluation["passes"],
                      seed=recipe["training"]["seed"], batch_size=evaluation["batch_size"])
    assert scores["accuracy"] == pytest.approx(again["accuracy"], abs=1e-12)
    assert scores["accuracy_per_pass"] == pytest.approx(again["accuracy_per_pass"], abs=1e-12)
    np.testing.assert_allclose(scores["per_cell_accuracy"], again["per_cell_accuracy"], rtol=0, atol=1e-12)
    # The per-cell accuracies, weighted by how often each cell was drawn, average to the overall accuracy.
    assert weighted_cell_mean(scores["per_cell_accuracy"], again["per_cell_count"]) == pytest.approx(scores["accuracy"], abs=1e-12)


def _train(run_dir: Path, data: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "pcw_keras.cli", "train", "location-3x3-gapnet", "--data", data, "--epochs", "3",
               "--set", "model.width=0.0625", "--set", "training.batch_size=16", "--out", str(run_dir)]
    env = dict(os.environ, KERAS_BACKEND="jax")
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _saved_arrays(path: Path) -> dict:
    """Every array a ``.keras`` file stores (its ``model.weights.h5``), by name, read without building the model."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as archive:
        data = archive.read("model.weights.h5")
    arrays = {}
    with h5py.File(io.BytesIO(data), "r") as weights:
        weights.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_pcw_train_writes_a_run_and_resumes_it_exactly_after_sigkill(tmp_path, tiny_npz):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = _train(whole, tiny_npz)
    interrupted = _train(killed, tiny_npz)
    state = killed / "backup" / "state.json"
    deadline = time.monotonic() + 600
    while not (state.exists() and json.loads(state.read_text())["epoch"] >= 1):
        assert interrupted.poll() is None, interrupted.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.2)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    out, _ = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, out[-3000:]
    resumed = _train(killed, tiny_npz)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]

    for name in ("recipe.yaml", "metrics.csv", "best.keras", "last.keras", "best.json", "results.json"):
        assert (killed / name).is_file(), name
    assert not (killed / "backup").exists() and not list(killed.rglob("*.tmp"))
    expected, got = _rows(whole), _rows(killed)
    assert [row["epoch"] for row in got] == ["0", "1", "2"]
    for want, have in zip(expected, got):
        for key in want:
            assert float(have[key]) == pytest.approx(float(want[key]), rel=1e-6, abs=1e-6), (key, want, have)
    # The resumed run ends with the uninterrupted run's weights, not only its metrics.
    for name in ("last.keras", "best.keras"):
        want, have = _saved_arrays(whole / name), _saved_arrays(killed / name)
        assert have.keys() == want.keys() and want, name
        for key in want:
            np.testing.assert_allclose(have[key], want[key], rtol=1e-6, atol=1e-6, err_msg=f"{name}: {key}")
    results, reference = (json.loads((run / "results.json").read_text()) for run in (killed, whole))
    assert results["epochs"] == 3 and results["best_epoch"] == reference["best_epoch"]
    for key in ("test_accuracy_best", "test_accuracy_last", "per_cell_accuracy_best", "per_cell_accuracy_last"):
        assert results[key] == pytest.approx(reference[key], abs=1e-12), key

    # results.json is what best.keras predicts on the test placements, and best.keras is the model of the
    # epoch with the highest val_accuracy in metrics.csv.
    from pcw_keras.runs import Run

    recipe = Run(str(killed)).recipe
    assert recipe.steps_per_execution() > 1  # the default, fast loop: several steps per call, no batch hooks
    again = recompute(keras.models.load_model(killed / "best.keras", compile=False), recipe.load_images("test"), grid=3,
                      task="location", passes=recipe["evaluation"]["passes"], seed=recipe["training"]["seed"],
                      batch_size=recipe["evaluation"]["batch_size"])
    assert results["test_accuracy_best"] == pytest.approx(again["accuracy"], abs=1e-12)
    np.testing.assert_allclose(results["per_cell_accuracy_best"], again["per_cell_accuracy"], rtol=0, atol=1e-12)
    assert weighted_cell_mean(results["per_cell_accuracy_best"], again["per_cell_count"]) == pytest.approx(
        results["test_accuracy_best"], abs=1e-12)
    assert results["best_epoch"] == int(np.argmax([float(row["val_accuracy"]) for row in got]))
    # Three epochs of 9 steps locate the image: 52-98% (best epoch) and 70-98% (last) over training seeds 0-7
    # (measured), chance 11%.
    assert results["test_accuracy_best"] > results["chance"] + 0.3 and results["test_accuracy_last"] > results["chance"] + 0.5, results

    evaluate = subprocess.run([sys.executable, "-m", "pcw_keras.cli", "evaluate", str(killed)], env=dict(os.environ, KERAS_BACKEND="jax"),
                              capture_output=True, text=True, timeout=300)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert f"test accuracy {100 * results['test_accuracy_best']:.1f}% (best validation epoch)" in evaluate.stdout, evaluate.stdout


def test_two_devices_give_the_loss_curve_of_one_device():
    """``--strategy auto`` under JAX: DataParallel over two virtual CPU devices, same global batch of 16.

    Tolerance 1e-5 relative per step: the two runs differ only in the order
    of the floating-point reductions across devices.
    """
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    runs = {}
    for name in ("auto", "default"):
        result = subprocess.run([sys.executable, str(SCRIPTS / "train_data_parallel.py"), name], env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = json.loads(result.stdout.strip().splitlines()[-1])
    assert runs["auto"]["replicas"] == 2 and runs["default"]["replicas"] == 1
    assert len(runs["auto"]["losses"]) == 8
    np.testing.assert_allclose(runs["auto"]["losses"], runs["default"]["losses"], rtol=1e-5)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def test_two_processes_train_exactly_as_one_process_on_two_devices(tmp_path, tiny_npz):
    """``pcw train`` on two JAX processes (``jax.distributed``, one CPU device each, Gloo) = one process on two devices.

    Both processes write one shared run directory (the chief's files only);
    its metrics match the one-process run to rtol 1e-5 and its test results
    are the same.
    """
    args = [sys.executable, "-m", "pcw_keras.cli", "train", "location-3x3-gapnet", "--data", tiny_npz, "--epochs", "2",
            "--set", "model.width=0.0625", "--set", "training.batch_size=16", "--out"]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"KERAS_BACKEND": "jax"}
    one = subprocess.run([*args, str(tmp_path / "one")], env=env | {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    cluster = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{_free_port()}", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}
    processes = [subprocess.Popen([*args, str(tmp_path / "two")], env=env | cluster | {"KERAS_DISTRIBUTION_PROCESS_ID": str(i)},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    for process, out in zip(processes, outputs):
        assert process.returncode == 0, out[-3000:]
    assert "DataParallel: 2 devices (cpu), process 1 of 2" in outputs[1]

    for name in ("recipe.yaml", "metrics.csv", "best.keras", "last.keras", "best.json", "results.json"):
        assert (tmp_path / "two" / name).is_file(), name
    assert not (tmp_path / "two" / "backup").exists() and not list((tmp_path / "two").rglob("*.tmp"))
    expected, got = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert len(got) == 2
    for want, have in zip(expected, got):
        for key in want:
            assert float(have[key]) == pytest.approx(float(want[key]), rel=1e-5), (key, want, have)
    results = [json.loads((tmp_path / run / "results.json").read_text()) for run in ("one", "two")]
    assert results[0]["test_accuracy_best"] == results[1]["test_accuracy_best"]


def test_several_processes_need_every_variable_and_a_distributing_strategy(monkeypatch):
    from pcw_keras.training.strategy import choose_strategy

    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.delenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", raising=False)
    monkeypatch.delenv("KERAS_DISTRIBUTION_PROCESS_ID", raising=False)
    with pytest.raises(ValueError, match="Missing: KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_PROCESS_ID"):
        choose_strategy("auto")
    with pytest.raises(ValueError, match="Strategy 'default' trains on one device"):
        choose_strategy("default")
