"""Export: every format checked against Keras, PermuteNet's permutation in TFLite, clean errors."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from pcw_keras import recipes
from pcw_keras.cli import main
from pcw_keras.export import (
    ExportCheckError,
    LiteRTModel,
    UnsupportedOpsError,
    convert_saved_model,
    frozen_permutation,
)
from pcw_keras.export.bias_correction import correct_biases
from pcw_keras.export.check import check_inputs
from pcw_keras.export.gate import MAX_RELATIVE_ERROR, relative_error
from pcw_keras.runs import export, export_source
from pcw_keras.export.savedmodel import write_saved_model
from pcw_keras.training.runner import train

FAST = {"check_samples": 48, "calibration_steps": 16, "latency_runs": 3, "verbose": False}


def _train(tiny_npz, tmp_path_factory, name):
    recipe = recipes.load(name, **{
        "data.source": tiny_npz, "task.grid": 2, "model.width": 0.0625, "training.epochs": 3,
        "training.batch_size": 16, "training.jit_compile": False, "evaluation.passes": 1,
    })
    run_dir = tmp_path_factory.mktemp(name)
    train(recipe, run_dir, verbose=0)
    return str(run_dir)


@pytest.fixture(scope="module")
def gapnet_run(tiny_npz, tmp_path_factory):
    return _train(tiny_npz, tmp_path_factory, "location-3x3-gapnet")


@pytest.fixture(scope="module")
def permutenet_run(tiny_npz, tmp_path_factory):
    return _train(tiny_npz, tmp_path_factory, "location-3x3-permutenet")


def _no_leftovers(parent):
    return [name for name in os.listdir(parent) if name.endswith((".partial", ".old"))]


@pytest.mark.parametrize(
    "format, quantize, floor",
    [("savedmodel", "none", 0.99), ("tflite", "none", 0.99), ("tflite", "float16", 0.99), ("tflite", "int8", 0.97),
     pytest.param("tflite", "int16x8", 0.97, marks=pytest.mark.slow)],  # beyond the four modes
)
def test_export_matches_keras_and_the_report_says_so(gapnet_run, tmp_path, format, quantize, floor):
    out = tmp_path / "export"
    report = export(gapnet_run, out, format=format, quantize=quantize, **FAST)
    assert json.loads((out / "export_report.json").read_text()) == report
    assert (out / "labels.txt").read_text().splitlines()[3] == "cell 3 (row 1, col 1)"

    # Recompute the report's figures independently: same test inputs, the Keras model, the exported file.
    model = keras.models.load_model(os.path.join(gapnet_run, "best.keras"))
    inputs = check_inputs(export_source(gapnet_run), 48, input_dtype="uint8", seed=0)
    expected = model.predict_on_batch(inputs.keras_inputs)
    if format == "tflite":
        exported = LiteRTModel((out / "model.tflite").read_bytes())(inputs.images)
        assert report["file_size_bytes"] == os.path.getsize(out / "model.tflite")
    else:
        served = tf.saved_model.load(str(out))  # keep a reference: its variables die with it
        exported = served.serve(inputs.images)["logits"].numpy()
    check = report["check"]
    assert check["samples"] == 48 and check["outcome"] == "passed" and check["passed"] and check["min_agreement"] == floor
    assert next(iter(check)) == "top1_agreement" and check["output_space"] == "logits"
    assert check["decided_share"] >= 0.5 and check["top1_agreement_decided"] >= floor
    assert check["top1_agreement"] == pytest.approx(np.mean(exported.argmax(-1) == expected.argmax(-1)), abs=1 / 48 + 1e-9)
    assert check["relative_error"] == pytest.approx(relative_error(exported, expected), rel=0.05, abs=1e-6)
    assert check["relative_error"] <= MAX_RELATIVE_ERROR[quantize] == check["max_relative_error"]
    assert check["accuracy_keras"] == pytest.approx(np.mean(expected.argmax(-1) == inputs.labels))
    assert check["accuracy_exported"] == pytest.approx(np.mean(exported.argmax(-1) == inputs.labels), abs=1 / 48 + 1e-9)
    assert check["max_abs_diff"] == pytest.approx(np.abs(exported - expected).max(), abs=1e-4)
    # Quantization error scales with the logits' range: tolerances are relative to it.
    relative = {"none": 1e-5, "float16": 2e-3, "int16x8": 0.05, "int8": 0.15}[quantize]
    logit_range = float(np.ptp(expected))
    assert check["max_abs_diff"] <= relative * max(logit_range, 1.0), (check["max_abs_diff"], logit_range)
    assert report["latency"]["median_ms"] > 0 and report["latency"]["runs"] == 3
    if quantize in ("int8", "int16x8"):
        assert report["file_size_bytes"] < 0.5 * 4 * model.count_params()  # int8 weights, not float32


def test_cli_exports_dynamic_range_and_reports(gapnet_run, tmp_path):
    out = tmp_path / "dyn"
    result = CliRunner().invoke(main, ["export", gapnet_run, "--format", "tflite", "--quantize", "dynamic",
                                       "--check-samples", "32", "--latency-runs", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert ": top-1 agreement 100.00% with Keras" in result.output and "passed" in result.output
    report = json.loads((out / "export_report.json").read_text())
    assert report["quantize"] == "dynamic" and report["check"]["min_agreement"] == 0.97 and report["check"]["passed"]
    assert report["check"]["max_relative_error"] == 0.1


def test_permutenet_tflite_draws_a_new_permutation_at_every_invoke(permutenet_run, tmp_path):
    report = export(permutenet_run, tmp_path / "random", format="tflite", quantize="int8", **FAST)
    # The check replays in Keras the permutation that the interpreter drew at each call.
    assert report["permutation"] == {"mode": "random"} and report["check"]["top1_agreement"] >= 0.97
    model = LiteRTModel((tmp_path / "random" / "model.tflite").read_bytes(), read_permutations=True)
    assert model.permutation_ops == 1
    image = np.full((1, 64, 64, 3), 120, np.uint8)
    first = model(image)
    drawn = model.last_permutation.copy()
    second = model(image)
    channels = keras.models.load_model(os.path.join(permutenet_run, "best.keras")).get_layer("pool").output.shape[-1]
    assert sorted(drawn.tolist()) == list(range(channels))
    assert not np.array_equal(drawn, model.last_permutation)
    assert not np.array_equal(first, second)


def test_frozen_permutenet_is_deterministic_and_uses_the_seeded_permutation(permutenet_run, tmp_path):
    report = export(permutenet_run, tmp_path / "frozen", format="tflite", permutation="frozen",
                          permutation_seed=5, **FAST)
    assert report["permutation"] == {"mode": "frozen", "seed": 5}
    assert report["check"]["max_abs_diff"] < 1e-4 and report["check"]["top1_agreement"] == 1.0
    # Keras' own accuracy with random draws, on the same canvases: recomputed here.
    inputs = check_inputs(export_source(permutenet_run), 48, input_dtype="uint8", seed=0)
    own = keras.models.load_model(os.path.join(permutenet_run, "best.keras")).predict_on_batch(inputs.keras_inputs)
    assert report["check"]["accuracy_keras_random_permutation"] == pytest.approx(
        np.mean(own.argmax(-1) == inputs.labels), abs=4 / 48)  # each call draws anew: a few canvases may change
    model = LiteRTModel((tmp_path / "frozen" / "model.tflite").read_bytes(), read_permutations=True)
    assert model.permutation_ops == 0
    images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    first, second = model(images), model(images)
    np.testing.assert_array_equal(first, second)

    # The same as the Keras body, then the seeded permutation, then the head.
    keras_model = keras.models.load_model(os.path.join(permutenet_run, "best.keras"))
    body = keras.Model(keras_model.input, keras_model.get_layer("stage4").output)
    pooled = np.mean(body.predict_on_batch(check_inputs_normalised(images)), axis=(1, 2))
    permuted = pooled[:, frozen_permutation(pooled.shape[-1], 5)]
    expected = keras_model.get_layer("head")(permuted).numpy()
    np.testing.assert_allclose(first, expected, atol=1e-4)


def check_inputs_normalised(images):
    from pcw_keras.normalization import normalize

    return normalize(images)


def test_permutenet_savedmodel_stays_random_and_matches_keras_draw_for_draw(permutenet_run, tmp_path):
    report = export(permutenet_run, tmp_path / "sm", format="savedmodel", **FAST)
    assert report["check"]["max_abs_diff"] < 1e-4 and report["check"]["top1_agreement"] == 1.0
    served = tf.saved_model.load(str(tmp_path / "sm"))
    images = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    first, second = served.serve(images)["logits"].numpy(), served.serve(images)["logits"].numpy()
    assert not np.allclose(first, second)


@pytest.mark.parametrize("corrupt", ["permuted classes", "noise", "one class"])
def test_an_export_that_does_not_compute_the_model_raises_and_writes_nothing(gapnet_run, tmp_path, monkeypatch,
                                                                              corrupt):
    call, rng = LiteRTModel.__call__, np.random.default_rng(0)
    corrupted = {
        "permuted classes": lambda outputs: np.roll(outputs, 1, axis=-1),
        "noise": lambda outputs: rng.normal(0.0, outputs.std(), outputs.shape).astype(np.float32),
        "one class": lambda outputs: np.where(np.arange(outputs.shape[-1]) == 2, outputs.max(), 0.0).astype(np.float32)
        * np.ones_like(outputs),
    }[corrupt]
    monkeypatch.setattr(LiteRTModel, "__call__", lambda self, images: corrupted(call(self, images)))
    with pytest.raises(ExportCheckError, match=r"computes: top-1 agreement [\d.]+% with Keras .*failed: the outputs differ"):
        export(gapnet_run, tmp_path / "bad", format="tflite", **FAST)
    assert not (tmp_path / "bad").exists() and not _no_leftovers(tmp_path)


def test_runtime_compat_refusal_names_the_quantisation_modes_that_load(tiny_npz, tmp_path):
    from pcw_keras.models import create_model

    # 64 classes: a head of 2,048 weights, which dynamic-range quantisation turns into FULLY_CONNECTED version 12.
    path = tmp_path / "permutenet.keras"
    create_model("permutenet_resnet18", num_classes=64, input_shape=(32, 32, 3), width=0.0625).save(path)
    common = {**FAST, "calibration": tiny_npz, "runtime_compat": "2.14"}
    with pytest.raises(ValueError) as refused:
        export(str(path), tmp_path / "dyn", format="tflite", quantize="dynamic", **common)
    message = str(refused.value)
    assert "TFLite runtime 2.14 cannot load this model: it does not know FULLY_CONNECTED version 12" in message
    assert message.endswith("The quantize modes that load on TFLite 2.14: none, float16, int8."), message
    assert not (tmp_path / "dyn").exists() and not _no_leftovers(tmp_path)
    # What the message offers does load there.
    report = export(str(path), tmp_path / "f16", format="tflite", quantize="float16", **common)
    assert report["runtime_compat"] == "2.14" and report["oldest_runtime"] == "2.14"


def _background_model(channels: int = 8) -> keras.Model:
    """Conv -> ReLU -> 1x1 conv -> GAP whose output comes from small constants on an empty canvas.

    Channel 0 of the first conv sees the image (and sets a wide 8-bit step for
    all channels); the others are constants below that step, which the second
    conv weighs heavily: the GAPNet situation on a location canvas, in small.
    """
    inputs = keras.Input((16, 16, 1))
    first = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")
    second = keras.layers.Conv2D(2, 1)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(second(first(inputs))))
    kernel = np.zeros((3, 3, 1, channels), np.float32)
    kernel[..., 0] = 1.0
    first.set_weights([kernel, np.linspace(0.02, 0.3, channels, dtype=np.float32)])
    weights = np.random.default_rng(0).normal(0, 5, (1, 1, channels, 2)).astype(np.float32)
    weights[:, :, 0] = 0.01
    second.set_weights([weights, np.zeros(2, np.float32)])
    return model


def _canvases(count: int, seed: int) -> np.ndarray:
    """Zero canvases, each with one 4x4 patch of values up to 20."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 16, 16, 1), np.float32)
    for image in images:
        row, col = rng.integers(0, 12, 2)
        image[row : row + 4, col : col + 4] = rng.uniform(0, 20, (4, 4, 1))
    return images


def test_int8_bias_correction_removes_the_offset_of_a_constant_background(tmp_path):
    model = _background_model()
    write_saved_model(model, str(tmp_path / "sm"), input_dtype="float32")
    calibration, test = _canvases(32, seed=1), _canvases(32, seed=2)
    expected = model.predict_on_batch(test)

    def convert(bias_correction):
        content = convert_saved_model(str(tmp_path / "sm"), "int8", bias_correction=bias_correction,
                                      representative_data=lambda: ([image[None]] for image in calibration))
        return LiteRTModel(content)(test)

    # Without correction the background constants round to zero at every position: the output loses them all.
    offset = np.abs((convert(False) - expected).mean(axis=0))
    assert offset.min() > 0.2 * np.abs(expected).mean(axis=0).min()
    corrected = convert(True)
    assert np.abs(corrected - expected).max() < 0.01 * np.abs(expected).max()


def test_bias_correction_refuses_models_that_do_not_pair(tmp_path):
    for name, channels in (("a", 8), ("b", 4)):
        write_saved_model(_background_model(channels), str(tmp_path / name), input_dtype="float32")
    samples = _canvases(4, seed=1)
    quantized = convert_saved_model(str(tmp_path / "a"), "int8", bias_correction=False,
                                    representative_data=lambda: ([image[None]] for image in samples))
    with pytest.raises(ValueError, match="pairs the layers of the int8 and float32 models"):
        correct_biases(quantized, convert_saved_model(str(tmp_path / "b")), samples)


class _StatelessShuffle(keras.layers.Layer):
    def call(self, inputs):
        order = keras.ops.argsort(keras.random.uniform((inputs.shape[-1],), seed=0))
        return keras.ops.take(inputs, order, axis=-1)


def test_unsupported_ops_are_named_and_nothing_is_written(gapnet_run, tmp_path):
    inputs = keras.Input((64, 64, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4)(_StatelessShuffle()(pooled)))
    with pytest.raises(UnsupportedOpsError, match="StatelessRandom"):
        export(model, tmp_path / "x", recipe=os.path.join(gapnet_run, "recipe.yaml"), **FAST)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "source, kwargs, error, message",
    [
        ("missing", {}, FileNotFoundError, "No run directory or model at"),
        ("run", {"format": "onnx"}, ValueError, r"`format` must be one of \('savedmodel', 'tflite'\). Received: format='onnx'"),
        ("run", {"quantize": "int4"}, ValueError, "Received: quantize='int4'"),
        ("run", {"format": "savedmodel", "quantize": "int8"}, ValueError, "quantization is for TFLite"),
        ("run", {"permutation": "fixed"}, ValueError, "Received: permutation='fixed'"),
        ("run", {"max_error": 0.0}, ValueError, r"`max_error` must be a number > 0. Received: max_error=0.0"),
        ("run", {"min_agreement": 1.5}, ValueError, r"`min_agreement` must be in \[0, 1\]. Received: min_agreement=1.5"),
        ("run", {"runtime_compat": "latest"}, ValueError, "Received: runtime_compat='latest'"),
    ],
)
def test_bad_arguments_give_clear_errors_and_write_nothing(gapnet_run, tmp_path, source, kwargs, error, message):
    source = gapnet_run if source == "run" else str(tmp_path / "missing")
    with pytest.raises(error, match=message):
        export(source, tmp_path / "out", **{**FAST, **kwargs})
    assert not (tmp_path / "out").exists() and not _no_leftovers(tmp_path)


def test_an_existing_export_is_not_overwritten_by_default(gapnet_run, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        export(gapnet_run, tmp_path / "out", **FAST)


def test_cli_errors_name_the_problem(gapnet_run, tmp_path):
    result = CliRunner().invoke(main, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "No run directory or model at" in result.output
    result = CliRunner().invoke(main, ["export", gapnet_run, "--format", "onnx", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "'onnx' is not one of" in result.output
    assert not (tmp_path / "o").exists()


def test_the_augshift_training_wrapper_exports_as_the_plain_classifier(gapnet_run, tmp_path):
    from pcw_keras.models import create_model
    from pcw_keras.models import AugShiftModel

    classifier = create_model("gapnet_resnet18", num_classes=4, input_shape=(64, 64, 3), width=0.0625)
    wrapper = AugShiftModel(classifier, feature_layer="pool", max_shift=4, seed=0)
    wrapper.save(tmp_path / "augshift.keras")
    report = export(str(tmp_path / "augshift.keras"), tmp_path / "out",
                          recipe=os.path.join(gapnet_run, "recipe.yaml"), **FAST)
    # Shifting is training-only: the exported model is the classifier, output for output.
    assert report["check"]["max_abs_diff"] < 1e-4 and report["check"]["top1_agreement"] == 1.0
    images = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    exported = LiteRTModel((tmp_path / "out" / "model.tflite").read_bytes())(images)
    np.testing.assert_allclose(exported, classifier.predict_on_batch(check_inputs_normalised(images)), atol=1e-4)
