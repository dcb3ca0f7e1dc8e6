"""export/pcw_tflite_runner.py runs exports without TensorFlow, agrees with Keras, and refuses what it cannot run."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tensorflow.lite.python import schema_py_generated as schema

from pcw_keras import recipes
from pcw_keras.normalization import normalize
from pcw_keras.export import LiteRTModel
from pcw_keras.runs import export
from pcw_keras.export.op_versions import builtin_ops, custom_ops
from pcw_keras.models import create_model

RUNNER = os.path.join(os.path.dirname(__file__), os.pardir, "export", "pcw_tflite_runner.py")
FAST = {"check_samples": 32, "calibration_steps": 16, "latency_runs": 3, "verbose": False}


@pytest.fixture(scope="module")
def setup(tiny_npz, tmp_path_factory):
    """A small GAPNet (grid 2, 64x64), exported twice: default uint8 input, and full int8 with int8 I/O."""
    root = tmp_path_factory.mktemp("edge")
    recipe = recipes.load("location-3x3-gapnet", **{"data.source": tiny_npz, "task.grid": 2})
    model = create_model("gapnet_resnet18", num_classes=4, input_shape=(64, 64, 3), width=0.0625)
    export(model, root / "float", recipe=recipe, **FAST)
    export(model, root / "int8", recipe=recipe, quantize="int8", input_dtype="float32", int8_io=True, **FAST)
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


def last_line(stderr):
    """The runner's own message: the runtime may log a line (XNNPACK) before it."""
    return stderr.strip().splitlines()[-1]


def keras_probabilities(model, image):
    logits = model.predict_on_batch(normalize(image[None]))[0]
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
        logits = model(normalize(setup["canvas"][None]))[0]
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


def test_runner_benchmark_prints_percentiles_and_size(setup):
    model = setup["root"] / "int8" / "model.tflite"
    result = run_without_tensorflow(setup, model, "--benchmark", "--runs", "20", "--warmup", "1", "--json")
    assert result.returncode == 0, result.stderr
    timing = json.loads(result.stdout)
    assert 0 < timing["p50_ms"] <= timing["p90_ms"] <= timing["p99_ms"] and timing["runs"] == 20
    assert timing["size_bytes"] == os.path.getsize(model)
    assert timing["size_mb"] == pytest.approx(os.path.getsize(model) / 1e6)
    assert timing["runtime"].startswith("ai-edge-litert ")
    text = run_without_tensorflow(setup, model, "--benchmark", "--runs", "5", "--warmup", "0")
    assert text.returncode == 0, text.stderr
    line, = text.stdout.splitlines()
    assert f"{timing['size_mb']:.2f} MB ({timing['size_bytes']} bytes)" in line
    assert all(f" {name} " in line for name in ("p50", "p90", "p99"))


def test_runner_errors_name_the_problem(setup):
    result = run_without_tensorflow(setup, setup["root"] / "nowhere")
    assert result.returncode != 0 and "No model at" in result.stderr
    result = run_without_tensorflow(setup, setup["root"] / "float", setup["root"] / "missing.png")
    assert result.returncode != 0 and "No image at" in result.stderr
    result = run_without_tensorflow(setup, setup["root"] / "float", "--benchmark", "--runs", "0")
    assert result.returncode != 0 and "--runs: must be an integer >= 1, got 0" in result.stderr


def load_runner():
    spec = importlib.util.spec_from_file_location("pcw_tflite_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def flex_model(tmp_path_factory):
    """A tiny image model whose cumulative product converts only to a Flex (Select TF) op."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.uint8)])
    def classify(images):
        return tf.reduce_mean(tf.math.cumprod(tf.cast(images, tf.float32) / 255.0, axis=1), axis=[1, 2])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([classify.get_concrete_function()], classify)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    path = tmp_path_factory.mktemp("flex") / "model.tflite"
    path.write_bytes(converter.convert())
    return path


def test_runner_refuses_flex_ops_in_one_line(setup, flex_model):
    assert custom_ops(flex_model.read_bytes()) == ["FlexCumprod"]
    result = run_without_tensorflow(setup, flex_model, "--benchmark")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"{flex_model} needs TensorFlow (Flex) ops, which the LiteRT and tflite-runtime pip interpreters cannot run: "
        "FlexCumprod. Export it with TFLite builtin ops only.")


@pytest.mark.parametrize("export", ["float", "int8"])
def test_runner_reads_operator_codes_as_the_tflite_schema_does(setup, flex_model, export):
    runner = load_runner()
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    for content in ((setup["root"] / export / "model.tflite").read_bytes(), flex_model.read_bytes()):
        codes = runner.operator_codes(content)
        builtins = sorted({(op["name"], op["version"]) for op in builtin_ops(content)})
        assert sorted((names[code], version) for code, _, version in codes if code != runner.CUSTOM_OPCODE) == builtins
        assert sorted(name for code, name, _ in codes if code == runner.CUSTOM_OPCODE) == custom_ops(content)
    assert runner.flex_ops(flex_model.read_bytes()) == ["FlexCumprod"]
    assert runner.flex_ops((setup["root"] / export / "model.tflite").read_bytes()) == []


def float_input_copy(setup, tmp_path, report=None):
    """The float-input int8 export's model in a new folder, with ``report`` as its export_report.json."""
    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy(setup["root"] / "int8" / "model.tflite", folder / "model.tflite")
    if report is not None:
        (folder / "export_report.json").write_text(json.dumps(report))
    return folder


def litert_probabilities(folder, image, mean, std):
    model = LiteRTModel((folder / "model.tflite").read_bytes())
    logits = model(((image[None] / 255.0 - np.asarray(mean)) / np.asarray(std)).astype(np.float32))[0]
    return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()


def test_runner_normalises_with_the_reports_mean_and_std(setup, tmp_path):
    imagenet = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    report = json.loads((setup["root"] / "int8" / "export_report.json").read_text())
    report["input"].update(imagenet)
    folder = float_input_copy(setup, tmp_path, report)
    result = run_without_tensorflow(setup, folder, setup["root"] / "canvas.png", "--json", "--top", "4")
    assert result.returncode == 0, result.stderr
    confidences = {p["index"]: p["confidence"] for p in json.loads(result.stdout)["predictions"]}
    expected = litert_probabilities(folder, setup["canvas"], **imagenet)
    cifar = litert_probabilities(folder, setup["canvas"], report["input"]["mean"], [0.2470, 0.2435, 0.2616])
    assert np.abs(expected - cifar).max() > 1e-3  # the statistics matter, so the check below can fail
    for index, probability in enumerate(expected):
        assert confidences[index] == pytest.approx(probability, abs=1e-4)


def test_runner_without_a_report_asks_for_mean_and_std(setup, tmp_path):
    folder = float_input_copy(setup, tmp_path)
    result = run_without_tensorflow(setup, folder, setup["root"] / "canvas.png")
    assert result.returncode == 1
    assert last_line(result.stderr) == (
        f"{folder / 'model.tflite'} takes int8 images normalised as (pixels / 255 - mean) / std, and no "
        "export_report.json beside it gives mean/std: keep the export folder together, or pass --mean and --std.")
    statistics = {"mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.3]}
    result = run_without_tensorflow(setup, folder, setup["root"] / "canvas.png", "--json", "--top", "4",
                                    "--mean", *statistics["mean"], "--std", *statistics["std"])
    assert result.returncode == 0, result.stderr
    confidences = {p["index"]: p["confidence"] for p in json.loads(result.stdout)["predictions"]}
    for index, probability in enumerate(litert_probabilities(folder, setup["canvas"], **statistics)):
        assert confidences[index] == pytest.approx(probability, abs=1e-4)
    result = run_without_tensorflow(setup, folder, setup["root"] / "canvas.png", "--mean", "0.5")
    assert result.returncode == 1 and result.stderr.strip() == "Give --mean and --std together."
    result = run_without_tensorflow(setup, folder, setup["root"] / "canvas.png", "--mean", "0.5", "--std", "0", "1", "1")
    assert result.returncode == 1 and "--mean/--std must be 1 or 3 numbers each, std > 0" in result.stderr


def test_runner_takes_size_and_dtype_from_the_model(setup, tmp_path):
    # No report: a uint8 model still classifies (its size and dtype are its own), but --cell needs the mean colour.
    folder = tmp_path / "bare"
    folder.mkdir()
    shutil.copy(setup["root"] / "float" / "model.tflite", folder / "model.tflite")
    small = Image.fromarray(setup["canvas"]).resize((20, 20))
    small.save(tmp_path / "small.png")
    result = run_without_tensorflow(setup, folder, tmp_path / "small.png", "--json")
    assert result.returncode == 0, result.stderr
    result = run_without_tensorflow(setup, folder, "--cell", "3", "--grid", "2", setup["root"] / "patch.png")
    assert result.returncode == 1 and "--cell fills the other cells with the dataset's mean colour" in result.stderr
    # A report that describes another model is refused rather than trusted.
    report = json.loads((setup["root"] / "float" / "export_report.json").read_text())
    report["input"]["shape"] = [None, 32, 32, 3]
    (folder / "export_report.json").write_text(json.dumps(report))
    result = run_without_tensorflow(setup, folder, setup["root"] / "canvas.png")
    assert result.returncode == 1
    assert last_line(result.stderr) == (
        f"export_report.json describes a uint8 [None, 32, 32, 3] input, but {folder / 'model.tflite'} takes "
        "uint8 [None, 64, 64, 3]: keep each model with its own report.")



def test_runner_reports_a_softmax_models_probabilities_as_they_are():
    runner = load_runner()
    probabilities = np.array([0.7, 0.2, 0.1], np.float32)
    # A softmax of probabilities would flatten them to about 0.43/0.26/0.31: the runner reads the emitted space.
    np.testing.assert_allclose(runner.confidences(probabilities, "probabilities"), probabilities)
    np.testing.assert_allclose(runner.confidences(probabilities, None), probabilities)
    logits = np.array([2.0, 0.0, -1.0], np.float32)
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(runner.confidences(logits, "logits"), expected, rtol=1e-6)
    np.testing.assert_allclose(runner.confidences(logits, None), expected, rtol=1e-6)
