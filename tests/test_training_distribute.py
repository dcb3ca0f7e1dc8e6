"""Strategy choice, and ``model.fit`` under ``MultiWorkerMirroredStrategy`` with two local workers."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pcw_keras.training import _keras_patches
from pcw_keras.training.strategy import (
    STRATEGY_NAMES,
    choose_strategy,
    cluster_size,
    describe_strategy,
    is_chief,
    write_dir,
)

SCRIPTS = Path(__file__).parent / "scripts"
WORKER_TIMEOUT_S = 180


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _run_two_workers(tmp_path: Path, *extra_args: str, shared: bool = True) -> list[subprocess.CompletedProcess]:
    """Starts two workers of ``train_multi_worker.py`` on localhost; returns both results.

    ``shared=False`` gives each worker its own run directory, as workers on
    machines without a shared file system would have.
    """
    hosts = [f"localhost:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
        env["TMPDIR"] = str(tmp_path / f"tmp{index}")  # where a worker's private scratch folders go
        env["PCW_SHARED_FOLDER_TIMEOUT_S"] = "5"
        os.makedirs(env["TMPDIR"], exist_ok=True)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(SCRIPTS / "train_multi_worker.py"),
                    str(tmp_path / f"worker{index}.npz"),
                    str(tmp_path / ("run" if shared else f"run{index}")),
                    *extra_args,
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    results = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=WORKER_TIMEOUT_S)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def test_two_workers_fit_identical_weights(tmp_path):
    results = _run_two_workers(tmp_path)
    for index, result in enumerate(results):
        assert result.returncode == 0, f"worker {index} failed:\n{result.stdout[-4000:]}"
    assert "MultiWorkerMirroredStrategy: 2 replicas, worker 0 of 2 tasks (chief)" in results[0].stdout
    assert "worker 1 of 2 tasks (not chief)" in results[1].stdout
    first, second = (np.load(tmp_path / f"worker{index}.npz") for index in range(2))
    assert first.files == second.files
    assert np.all(np.isfinite(first["loss"])) and first["loss"].shape == (2,)
    # Every weight, BatchNorm moving statistics included (synchronised at epoch end).
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    # The chief alone wrote the run directory; training completed, so no backup is left.
    run_dir = tmp_path / "run"
    assert sorted(path.name for path in run_dir.iterdir() if path.name != "logs") == ["last.keras", "metrics.csv"]
    with (run_dir / "metrics.csv").open() as handle:
        assert [line.split(",")[0] for line in handle.read().splitlines()] == ["epoch", "0", "1"]
    # The non-chief worker's private scratch folders (saves, backups, logs) are all removed.
    for index in range(2):
        assert not [p.name for p in (tmp_path / f"tmp{index}").iterdir() if p.name.startswith("pcw_keras_")]


def test_two_workers_fit_fails_unpatched(tmp_path):
    """Without the project's fixes, Keras 3.15's fit fails under the multi-worker strategy."""
    if not _keras_patches.needs_patch():
        pytest.skip("this Keras version is outside the patched range")
    results = _run_two_workers(tmp_path, "--unpatched")
    for result in results:
        assert result.returncode != 0
        assert "PerReplica" in result.stdout and "unsupported type" in result.stdout


def test_choose_strategy_auto_without_cluster_is_default(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = choose_strategy()
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert is_chief(strategy)
    assert describe_strategy(strategy) == "default strategy: 1 replica"


def test_choose_strategy_auto_single_task_cluster_is_default(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}))
    assert cluster_size() == 1
    assert choose_strategy("auto") is tf.distribute.get_strategy()


@pytest.mark.parametrize("name", ["default", "one_device"])
def test_choose_strategy_one_device_names(name):
    assert choose_strategy(name).num_replicas_in_sync == 1


def test_choose_strategy_mirrored_on_cpu(tmp_path):
    strategy = choose_strategy("mirrored")
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert describe_strategy(strategy) == "MirroredStrategy: 1 replica"
    assert is_chief(strategy)
    assert write_dir(tmp_path, strategy) == str(tmp_path)
    with strategy.scope():
        import keras

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse")
    history = model.fit(np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_choose_strategy_unknown_name():
    with pytest.raises(ValueError, match="Received: name='ring'") as info:
        choose_strategy("ring")
    for name in STRATEGY_NAMES:
        assert name in str(info.value)


def test_choose_strategy_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        choose_strategy("multi_worker")


def test_bad_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        choose_strategy("auto")


def test_patch_version_guard():
    low, high = _keras_patches.PATCHED_VERSIONS
    assert _keras_patches.needs_patch((3, 15))
    assert not _keras_patches.needs_patch(high)
    assert not _keras_patches.needs_patch((low[0], low[1] - 1))
    assert not _keras_patches.needs_patch((4, 0))


def test_patch_is_idempotent():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if not _keras_patches.apply():
        pytest.skip("this Keras version is outside the patched range")
    patched = (tf_trainer.TensorFlowTrainer._maybe_symbolic_build, tf_trainer.reduce_per_replica)
    assert _keras_patches.apply() and _keras_patches.is_applied()
    assert (tf_trainer.TensorFlowTrainer._maybe_symbolic_build, tf_trainer.reduce_per_replica) == patched
    assert "keras-team/keras/issues/20585" in tf_trainer.reduce_per_replica.__doc__


def test_a_keras_outside_the_patched_range_refuses_a_multi_worker_run_up_front(monkeypatch):
    import keras

    from pcw_keras.training import _keras_patches
    from pcw_keras.training.strategy import choose_strategy

    monkeypatch.setattr(keras, "__version__", "3.10.0")  # its epoch iterator yields pairs: the fix does not fit
    monkeypatch.setitem(_keras_patches._state, "applied", False)
    assert not _keras_patches.needs_patch() and _keras_patches.apply() is False
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 0}}')
    with pytest.raises(RuntimeError, match=r"Keras 3\.10\.0.*3\.11 to <3\.16.*JAX backend"):
        choose_strategy("auto")


def test_workers_that_do_not_share_the_run_directory_stop_with_a_clear_error(tmp_path):
    results = _run_two_workers(tmp_path, shared=False)
    for index, result in enumerate(results):
        assert result.returncode != 0, f"worker {index} should have stopped:\n{result.stdout[-3000:]}"
        assert "1 worker(s) cannot see the chief's run directory" in result.stdout, result.stdout[-3000:]
