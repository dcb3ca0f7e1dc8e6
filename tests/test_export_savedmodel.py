"""``pcw export`` of a SavedModel directory: to TFLite, checked against the SavedModel itself on calibration images.

A small CNN is exported once as a uint8 SavedModel (``--preprocess unit``)
and once as a float32 one; each converts to TFLite (float32 and full int8)
with its normalisation read from the SavedModel's ``export_report.json``,
and the TFLite logits are recomputed here against the SavedModel's. Bad
cases end in one error line and no ``--out``.
"""
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_any_model import FAST, _cli, _one_error_line, _sequential

from pcw_keras.export.savedmodel import SavedModelRunner
from pcw_keras.export.tflite import LiteRTModel
from pcw_keras.normalization import Normalization


@pytest.fixture(scope="module")
def saved_models(tiny_npz, tmp_path_factory):
    """``{input dtype: SavedModel directory}`` of one small CNN that takes pixels in [0, 1] (``unit``)."""
    root = tmp_path_factory.mktemp("saved_models")
    path = root / "small.keras"
    _sequential().save(path)
    folders = {}
    for dtype in ("uint8", "float32"):
        folders[dtype] = root / f"sm-{dtype}"
        result = _cli("export", path, "--format", "savedmodel", "--input-dtype", dtype, "--calibration", tiny_npz,
                      "--preprocess", "unit", "--out", folders[dtype], *FAST)
        assert result.exit_code == 0, result.output
    return folders


def _test_pixels(tiny_npz) -> np.ndarray:
    """All 40 test images of ``tiny_npz``, resized to the CNN's 64x64 input as a photo would be."""
    images = np.load(tiny_npz)["x_test"]
    return np.stack([np.asarray(Image.fromarray(image).resize((64, 64), Image.BILINEAR)) for image in images])


def _report(folder) -> dict:
    return json.loads((folder / "export_report.json").read_text())


def test_a_uint8_savedmodel_converts_to_tflite_with_the_savedmodels_logits(saved_models, tiny_npz, tmp_path):
    saved_model = saved_models["uint8"]
    result = _cli("export", saved_model, "--format", "tflite", "--calibration", tiny_npz, "--out", tmp_path / "t32", *FAST)
    assert result.exit_code == 0, result.output
    assert ": top-1 agreement 100.00% with the SavedModel" in result.output
    report = _report(tmp_path / "t32")
    assert report["input"]["preprocess"] == "unit" and report["input"]["std"] == [1.0, 1.0, 1.0]  # from sm's report
    assert report["input"]["dtype"] == "uint8" and report["source"] == str(saved_model)
    assert report["check"]["compared_with"] == "the SavedModel, same inputs" and report["check"]["samples"] == 40
    assert report["check_inputs"] == f"{tiny_npz} (no labels: compared with the SavedModel)"
    assert report["check"]["max_abs_diff"] < 1e-4 and report["check"]["outcome"] == "passed"
    assert "accuracy_keras" not in report["check"]  # no labels: no accuracy against the SavedModel's own top-1
    assert report["recipe"] == "small" and report["task"] == {"kind": "model"} and report["permutation"] is None
    assert {"CONV_2D", "MEAN", "FULLY_CONNECTED"} <= {op["name"] for op in report["builtin_ops"]}
    assert report["oldest_runtime"] and report["runtime_compat"] is None and report["latency"]["runs"] == 3
    assert (tmp_path / "t32" / "labels.txt").read_text() == (saved_model / "labels.txt").read_text()

    pixels = _test_pixels(tiny_npz)
    module = tf.saved_model.load(str(saved_model))
    served = np.asarray(module.serve(tf.constant(pixels))["logits"])
    converted = LiteRTModel((tmp_path / "t32" / "model.tflite").read_bytes())(pixels)
    assert np.abs(converted - served).max() < 1e-4
    # The SavedModel normalises as "unit" inside, so it is the Keras CNN on pixels / 255.
    keras_logits = _sequential().predict_on_batch(Normalization.named("unit").apply(pixels))
    assert np.abs(served - keras_logits).max() < 1e-4

    result = _cli("export", saved_model, "--quantize", "int8", "--calibration", tiny_npz, "--out", tmp_path / "t8", *FAST)
    assert result.exit_code == 0, result.output
    report = _report(tmp_path / "t8")
    assert report["check"]["passed"] and report["check"]["min_agreement"] == 0.97 and report["quantize"] == "int8"
    assert report["bias_correction"] is True and report["calibration_samples"] == 16
    assert {op["name"] for op in report["builtin_ops"]} >= {"QUANTIZE", "CONV_2D"}


def test_a_float32_savedmodel_is_checked_on_normalised_images(saved_models, tiny_npz, tmp_path, monkeypatch):
    seen = []
    call = SavedModelRunner.__call__
    monkeypatch.setattr(SavedModelRunner, "__call__", lambda self, images: seen.append(images) or call(self, images))
    result = _cli("export", saved_models["float32"], "--calibration", tiny_npz, "--out", tmp_path / "t32", *FAST)
    assert result.exit_code == 0, result.output
    report = _report(tmp_path / "t32")
    assert report["input"]["dtype"] == "float32" and report["input"]["preprocess"] == "unit"
    assert report["check"]["top1_agreement"] == 1.0 and report["check"]["max_abs_diff"] < 1e-4
    # The SavedModel got the 40 test images as pixels / 255 ("unit"), in some order.
    checked = np.concatenate(seen)
    expected = Normalization.named("unit").apply(_test_pixels(tiny_npz))
    assert checked.dtype == np.float32 and checked.shape == expected.shape
    np.testing.assert_allclose(np.sort(checked.reshape(40, -1).sum(-1)), np.sort(expected.reshape(40, -1).sum(-1)),
                               rtol=1e-5)

    pixels = _test_pixels(tiny_npz)
    inputs = Normalization.named("unit").apply(pixels)
    served = SavedModelRunner(str(saved_models["float32"]))(inputs)
    converted = LiteRTModel((tmp_path / "t32" / "model.tflite").read_bytes())(inputs)
    assert np.abs(converted - served).max() < 1e-4


def test_a_savedmodel_without_a_report_takes_preprocess(saved_models, tiny_npz, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(saved_models["uint8"], bare, ignore=shutil.ignore_patterns("export_report.json", "labels.txt"))
    result = _cli("export", bare, "--calibration", tiny_npz, "--preprocess", "imagenet", "--out", tmp_path / "t", *FAST)
    assert result.exit_code == 0, result.output
    report = _report(tmp_path / "t")
    assert report["input"]["preprocess"] == "imagenet" and report["recipe"] == "bare"
    assert (tmp_path / "t" / "labels.txt").read_text().splitlines() == [f"output {k}" for k in range(5)]


@pytest.mark.parametrize("arguments, message", [
    ((), "--calibration FOLDER|TARBALL|NPZ"),
    (("--calibration", "{npz}", "--format", "savedmodel"), "is a SavedModel: it exports to TFLite (format='tflite')"),
    (("--calibration", "{npz}", "--input-size", "96"), "Received: recipe=None, input_size=96"),
    (("--calibration", "{npz}", "--preprocess", "cifar"), "records preprocess='unit' for this SavedModel. "
                                                          "Received: preprocess='cifar'"),
])
def test_a_savedmodel_refuses_in_one_line_and_writes_nothing(saved_models, tiny_npz, tmp_path, arguments, message):
    arguments = [argument.format(npz=tiny_npz) for argument in arguments]
    line = _one_error_line(_cli("export", saved_models["uint8"], *arguments, "--out", tmp_path / "out", *FAST))
    assert message in line and not (tmp_path / "out").exists()
