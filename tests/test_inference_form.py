"""The inference form (BatchNorm folded, weights in the compute dtype) computes the model's function."""
import json

import keras
import numpy as np
import pytest
from model_harness import with_trained_statistics

from pcw_keras.models import create_model
from pcw_keras.models.inference import (
    Folded,
    default_precision,
    foldable_pairs,
    foldable_paddings,
    inference_model,
    resolve_precision,
)


def _relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual, "float64"), np.asarray(expected, "float64")
    return float(np.sqrt(np.mean((actual - expected) ** 2)) / np.sqrt(np.mean(expected ** 2)))


@pytest.fixture(scope="module")
def gapnet():
    keras.utils.set_random_seed(0)
    return with_trained_statistics(create_model("gapnet_resnet18", num_classes=9, input_shape=(64, 64, 3), width=0.125))


@pytest.fixture(scope="module")
def canvases():
    return np.random.default_rng(0).normal(size=(16, 64, 64, 3)).astype("float32")


@pytest.mark.jax
def test_every_batchnorm_of_a_resnet18_folds_and_float32_keeps_the_function(gapnet, canvases):
    # 20 convolution -> BatchNorm pairs: the stem, 16 in the blocks, 3 projection shortcuts.
    assert len(foldable_pairs(gapnet)) == 20
    folded = inference_model(gapnet, "float32", fold=True)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    # Layers found by name are still there: the folded BatchNorms and the stage outputs.
    assert isinstance(folded.get_layer("stem_bn"), Folded)
    # The ResNet's stride-1 convolutions already pad "same": there is no padding left to fold.
    assert foldable_paddings(gapnet) == {}
    assert folded.get_layer("stage2_block1_1_conv").padding == "valid"  # strided: padded apart
    assert folded.get_layer("stage4").output.shape == gapnet.get_layer("stage4").output.shape
    expected = gapnet.predict_on_batch(canvases)
    actual = folded.predict_on_batch(canvases)
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    assert _relative_error(actual, expected) < 1e-5
    # The original is untouched.
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in gapnet.layers)


def _explicitly_padded_net() -> keras.Model:
    """Zero paddings as separate layers (as models built before the ResNets padded "same" have them)."""
    from pcw_keras.layers import BatchNorm, Padding2D

    x = inputs = keras.Input((24, 24, 3))
    x = Padding2D(1, name="a_pad")(x)
    x = keras.layers.Conv2D(8, 3, use_bias=False, name="a_conv")(x)
    x = BatchNorm(name="a_bn")(x)
    x = Padding2D(2, name="b_pad")(x)
    x = keras.layers.Conv2D(8, 5, name="b_conv")(x)  # 5x5 padded by 2: folds
    x = Padding2D(1, name="c_pad")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, name="c_conv")(x)  # strided: "same" would pad 0 before, 1 after
    x = Padding2D(1, mode="reflect", name="d_pad")(x)
    x = keras.layers.Conv2D(4, 3, name="d_conv")(x)  # another mode
    return with_trained_statistics(keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)))


@pytest.mark.jax
def test_a_symmetric_zero_padding_before_a_stride1_convolution_folds_into_same_padding():
    keras.utils.set_random_seed(0)
    model = _explicitly_padded_net()
    assert foldable_paddings(model) == {"a_pad": "a_conv", "b_pad": "b_conv"}
    folded = inference_model(model, "float32", fold=True)
    assert folded.get_layer("a_conv").padding == folded.get_layer("b_conv").padding == "same"
    assert folded.get_layer("c_conv").padding == folded.get_layer("d_conv").padding == "valid"
    assert isinstance(folded.get_layer("a_pad"), Folded) and not isinstance(folded.get_layer("c_pad"), Folded)
    x = np.random.default_rng(0).normal(size=(4, 24, 24, 3)).astype("float32")
    assert _relative_error(folded.predict_on_batch(x), model.predict_on_batch(x)) < 1e-5


@pytest.mark.jax
@pytest.mark.parametrize("fold", [True, False])
def test_bfloat16_holds_its_weights_in_bfloat16_and_agrees_to_bfloat16_rounding(gapnet, canvases, fold):
    fast = inference_model(gapnet, "bfloat16", fold=fold)
    assert {weight.dtype for weight in fast.get_layer("stem_conv").weights} == {"bfloat16"}
    expected = gapnet.predict_on_batch(canvases)
    actual = fast.predict_on_batch(canvases)
    assert actual.dtype == np.float32
    # 8 bits of mantissa through 20 layers: a few percent of the outputs' scale, not more.
    error = _relative_error(actual, expected)
    assert 0 < error < 0.05, error


@pytest.mark.jax
def test_a_permutenet_draws_the_same_permutations_and_keeps_its_function():
    keras.utils.set_random_seed(0)
    model = with_trained_statistics(create_model("permutenet_resnet18", num_classes=9, input_shape=(64, 64, 3),
                                                  width=0.125, permutation_seed=3, permutation_mode="sample"))
    x = np.random.default_rng(1).normal(size=(8, 64, 64, 3)).astype("float32")
    folded = inference_model(model, "float32", fold=True)
    # PermuteNet permutes at inference too: the copy draws from the same seed state, so the same permutations.
    assert _relative_error(folded.predict_on_batch(x), model.predict_on_batch(x)) < 1e-5


@pytest.mark.jax
def test_a_batchnorm_whose_convolution_feeds_another_layer_too_is_not_folded():
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.Conv2D(4, 3, use_bias=False, name="shared_conv")(inputs)
    normed = keras.layers.BatchNormalization(name="bn")(features)
    dense_normed = keras.layers.BatchNormalization(name="bn_after_dense")(keras.layers.Dense(5, name="dense")(
        keras.layers.GlobalAveragePooling2D()(normed)))
    outputs = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(features), dense_normed])
    model = with_trained_statistics(keras.Model(inputs, outputs))
    assert foldable_pairs(model) == {}
    converted = inference_model(model, "float32", fold=True)
    assert isinstance(converted.get_layer("bn"), keras.layers.BatchNormalization)
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    assert _relative_error(converted.predict_on_batch(x), model.predict_on_batch(x)) < 1e-6


@pytest.mark.jax
def test_a_keras_applications_model_keeps_its_function():
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), weights=None, classes=7,
                                                include_preprocessing=True)
    with_trained_statistics(model)
    x = np.random.default_rng(0).uniform(0, 255, size=(4, 64, 64, 3)).astype("float32")
    converted = inference_model(model, "float32", fold=True)
    assert len(foldable_pairs(model)) > 10
    np.testing.assert_allclose(converted.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)


@pytest.mark.jax
@pytest.mark.jax
def test_by_default_tensorflow_folds_and_jax_leaves_batchnorm_to_xla(gapnet, canvases):
    form = inference_model(gapnet, "float32")
    has_batchnorm = any(isinstance(layer, keras.layers.BatchNormalization) for layer in form.layers)
    assert has_batchnorm == (keras.backend.backend() == "jax")
    assert _relative_error(form.predict_on_batch(canvases), gapnet.predict_on_batch(canvases)) < 1e-5


def test_a_model_that_is_not_functional_is_returned_as_it_is():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, inputs):
            return self.dense(inputs)

    model = Subclassed()
    model(np.zeros((1, 4), "float32"))
    assert inference_model(model, "bfloat16") is model


@pytest.mark.jax
def test_precisions_are_checked_and_auto_resolves_to_this_machines_default():
    with pytest.raises(ValueError, match="precision.*'half'"):
        resolve_precision("half")
    with pytest.raises(ValueError, match="precision.*'float16'"):
        inference_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), "float16")
    assert resolve_precision("auto") == default_precision() in ("float32", "bfloat16")
    assert resolve_precision("float32") == "float32"


def test_evaluate_runs_the_precision_it_is_asked_for_and_records_it(tiny_npz, tmp_path):
    from click.testing import CliRunner

    from pcw_keras.cli import main

    run_dir = tmp_path / "run"
    tiny = ["--set", "task.grid=2", "--set", "model.width=0.0625", "--set", "training.batch_size=16",
            "--set", "evaluation.passes=1"]
    trained = CliRunner().invoke(main, ["train", "location-3x3-gapnet", "--data", tiny_npz, "--epochs", "1",
                                        "--out", str(run_dir), *tiny])
    assert trained.exit_code == 0, trained.output
    scores = {}
    for precision in ("float32", "bfloat16"):
        result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--precision", precision])
        assert result.exit_code == 0, result.output
        assert f"inference in {precision}" in result.output
        scores[precision] = json.loads((run_dir / "results.json").read_text())
        assert scores[precision]["precision"] == precision
    refused = CliRunner().invoke(main, ["evaluate", str(run_dir), "--precision", "half"])
    assert refused.exit_code == 2 and "'half' is not one of" in refused.output


@pytest.mark.jax
def test_the_measured_bfloat16_accuracy_is_within_the_criterion_that_auto_relies_on():
    """``--precision auto`` may pick bfloat16 because trained runs keep their test accuracy within 0.2 points."""
    from pathlib import Path

    study = json.loads((Path(__file__).parents[1] / "docs" / "studies" / "inference_precision" / "accuracy.json")
                       .read_text(encoding="utf-8"))
    rows = study["runs"]
    assert len(rows) >= 4 and {row["recipe"].split("-")[0] for row in rows} == {"location", "image"}
    for row in rows:
        assert row["test_images"] == 10_000, row["run"]  # the whole CIFAR-10 test split
        difference = 100 * (row["accuracy"]["bfloat16"] - row["accuracy"]["float32"])
        assert difference == pytest.approx(row["bfloat16_minus_float32_points"], abs=1e-3)
        assert abs(difference) <= 0.2, row
    assert study["largest_difference_points"] == max(abs(row["bfloat16_minus_float32_points"]) for row in rows)


def test_an_export_given_a_precision_is_refused_before_anything_loads(tmp_path):
    from click.testing import CliRunner

    from pcw_keras.cli import main

    result = CliRunner().invoke(main, ["consistency", str(tmp_path / "model.tflite"), "--data", "cifar10-mini",
                                       "--precision", "bfloat16"])
    assert result.exit_code == 2 and "An export runs in the precision it was exported in" in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written
