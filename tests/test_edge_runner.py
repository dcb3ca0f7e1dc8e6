"""export/pcw_tflite_runner.py runs exports without TensorFlow and agrees with Keras."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pcw_keras import recipes
from pcw_keras.export.graph import normalize_tf
from pcw_keras.export import LiteRTModel, export_model
from pcw_keras.models import create_model

RUNNER = os.path.join(os.path.dirname(__file__), os.pardir, "export", "pcw_tflite_runner.py")
FAST = {"check_samples": 32, "calibration_steps": 16, "latency_runs": 3, "verbose": False}


@pytest.fixture(scope="module")
def setup(tiny_npz, tmp_path_factory):
    """A small GAPNet (grid 2, 64x64), exported twice: default uint8 input, and full int8 with int8 I/O."""
    root = tmp_path_factory.mktemp("edge")
    recipe = recipes.load("location-3x3-gapnet", **{"data.source": tiny_npz, "task.grid": 2})
    model = create_model("gapnet_resnet18", num_classes=4, input_shape=(64, 64, 3), width=0.0625)
    export_model(model, root / "float", recipe=recipe, **FAST)
    export_model(model, root / "int8", recipe=recipe, quantize="int8", input_dtype="float32", int8_io=True, **FAST)
    # A TensorFlow that cannot be imported, first on the path.
    blocker = root / "blocker" / "tensorflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('TensorFlow is not available on this device')\n")
    rng = np.random.default_rng(3)
    canvas = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(canvas).save(root / "canvas.png")
    patch = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(patch).save(root / "patch.png")
    return {"root": root, "model": model, "canvas": canvas, "patch": patch, "blocker": str(root / "blocker")}


def run_without_tensorflow(setup, *args):
    env = {**os.environ, "PYTHONPATH": setup["blocker"]}
    return subprocess.run([sys.executable, RUNNER, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def keras_probabilities(model, image):
    logits = model.predict_on_batch(normalize_tf(image[None]).numpy())[0]
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def test_tensorflow_is_really_blocked(setup):
    env = {**os.environ, "PYTHONPATH": setup["blocker"]}
    result = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, env=env)
    assert result.returncode != 0 and "not available on this device" in result.stderr


@pytest.mark.parametrize("export", ["float", "int8"])
def test_runner_classifies_an_image_file_like_keras(setup, export):
    result = run_without_tensorflow(setup, setup["root"] / export, setup["root"] / "canvas.png", "--json", "--top", "4")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    if export == "float":  # uint8 input: the same numbers as Keras
        expected = keras_probabilities(setup["model"], setup["canvas"])
    else:  # float input, int8 I/O: the runner normalises and quantises as the exporter's own check does
        model = LiteRTModel((setup["root"] / export / "model.tflite").read_bytes())
        logits = model(normalize_tf(setup["canvas"][None]).numpy())[0]
        expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    best = int(np.argmax(expected))
    assert predictions[0]["label"] == f"cell {best} (row {best // 2}, col {best % 2})"
    confidences = {p["index"]: p["confidence"] for p in predictions}
    for index, probability in enumerate(expected):
        assert confidences[index] == pytest.approx(probability, abs=1e-4)


def test_runner_places_a_patch_in_a_cell(setup):
    result = run_without_tensorflow(setup, setup["root"] / "float", "--cell", "3", setup["root"] / "patch.png")
    assert result.returncode == 0, result.stderr
    canvas = np.empty((64, 64, 3), np.uint8)
    canvas[:] = np.rint(np.array([0.4914, 0.4822, 0.4465]) * 255).astype(np.uint8)
    canvas[32:, 32:] = setup["patch"]
    expected = keras_probabilities(setup["model"], canvas)
    assert result.stdout.startswith(f"{setup['root'] / 'patch.png'}: cell {np.argmax(expected)} ")
    assert f"({100 * expected.max():.1f}%)" in result.stdout


def test_runner_benchmark_prints_json(setup):
    result = run_without_tensorflow(setup, setup["root"] / "int8" / "model.tflite", "--benchmark", "--runs", "5", "--warmup", "1")
    assert result.returncode == 0, result.stderr
    timing = json.loads(result.stdout)
    assert timing["median_ms"] > 0 and timing["runs"] == 5
    assert timing["size_bytes"] == os.path.getsize(setup["root"] / "int8" / "model.tflite")


def test_runner_errors_name_the_problem(setup):
    result = run_without_tensorflow(setup, setup["root"] / "nowhere")
    assert result.returncode != 0 and "No model at" in result.stderr
    result = run_without_tensorflow(setup, setup["root"] / "float", setup["root"] / "missing.png")
    assert result.returncode != 0 and "No image at" in result.stderr
