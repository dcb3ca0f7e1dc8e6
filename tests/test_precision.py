"""Mixed precision: recipes build under a dtype policy, export serves the float32 copy."""
import json

import keras
import numpy as np
import pytest

from pcw_keras import recipes
from pcw_keras.runs import export
from pcw_keras.models import create_model
from pcw_keras.models.precision import as_float32, dtype_policy, is_float32
from pcw_keras.training.runner import train


def test_dtype_policy_scope_restores_the_global_policy_and_rejects_unknown_names():
    with dtype_policy("mixed_bfloat16"):
        model = create_model("permutenet_resnet18", num_classes=4, input_shape=(64, 64, 3), width=0.0625,
                             permutation_seed=3)
    assert keras.config.dtype_policy().name == "float32"
    assert model.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert all(weight.dtype == "float32" for weight in model.weights)
    with pytest.raises(ValueError, match="precision.*'float8'"):
        with dtype_policy("float8"):
            pass
    assert keras.config.dtype_policy().name == "float32"


def test_as_float32_keeps_the_weights_and_the_function():
    with dtype_policy("mixed_bfloat16"):
        mixed = create_model("gapnet_resnet18", num_classes=4, input_shape=(64, 64, 3), width=0.0625)
    copy = as_float32(mixed)
    assert not is_float32(mixed) and is_float32(copy) and as_float32(copy) is copy
    for a, b in zip(mixed.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).normal(size=(4, 64, 64, 3)).astype("float32")
    full = copy.predict_on_batch(x)
    assert full.dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: the two agree to about 1% of the outputs' scale.
    np.testing.assert_allclose(mixed.predict_on_batch(x).astype("float32"), full, atol=0.02 * np.abs(full).max())


def test_a_mixed_bfloat16_recipe_trains_and_exports_in_float32(tiny_npz, tmp_path):
    recipe = recipes.load("location-3x3-gapnet", **{
        "data.source": tiny_npz, "task.grid": 2, "model.width": 0.0625, "training.epochs": 1,
        "training.batch_size": 16, "training.jit_compile": False, "evaluation.passes": 1,
        "training.precision": "mixed_bfloat16",
    })
    train(recipe, tmp_path / "run", verbose=0)
    trained = keras.models.load_model(tmp_path / "run" / "best.keras")
    assert trained.get_layer("stem_conv").compute_dtype == "bfloat16"
    report = export(tmp_path / "run", tmp_path / "export", format="tflite", quantize="none",
                          check_samples=16, latency_runs=2, min_agreement=0.0, verbose=False)
    assert json.loads((tmp_path / "export" / "export_report.json").read_text()) == report
    # The exported float32 copy is compared with the float32 copy in Keras: same function to float32 rounding.
    assert report["check"]["top1_agreement"] == 1.0 and report["check"]["max_abs_diff"] < 1e-4


def test_unknown_precision_is_refused_at_recipe_load():
    with pytest.raises(ValueError, match="precision"):
        recipes.load("location-3x3-gapnet", **{"training.precision": "half"})
