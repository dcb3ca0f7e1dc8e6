"""A model test harness modelled on keras-hub's ``run_backbone_test`` (as ``layer_harness`` is on ``run_layer_test``)."""
from __future__ import annotations

import json
import os

import keras
import numpy as np

from pcw_keras.models.precision import dtype_policy


def with_trained_statistics(model: keras.Model, seed: int = 1) -> keras.Model:
    """``model`` with moving statistics, scales and offsets away from their initial values, as training leaves them."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(size=n) * 0.2)
            layer.moving_variance.assign(rng.uniform(0.3, 3.0, size=n))
            layer.gamma.assign(rng.uniform(0.5, 1.5, size=n))
            layer.beta.assign(rng.normal(size=n) * 0.2)
    return model


def _numpy(tensor) -> np.ndarray:
    return keras.ops.convert_to_numpy(tensor)


def _dtype(tensor) -> str:
    return keras.backend.standardize_dtype(tensor.dtype)


def run_model_test(builder, init_kwargs: dict, input_data: np.ndarray, expected_output_shape: tuple, tmp_dir: str):
    """Checks what a Keras user relies on of a model that ``builder(**init_kwargs)`` builds.

    - it calls eagerly on ``input_data`` and gives ``expected_output_shape`` in float32;
    - ``get_config``/``from_config`` round-trips: the same config (as JSON), and with the weights
      copied over the same outputs;
    - a ``.keras`` file round-trips: the same config, the same outputs;
    - under ``mixed_bfloat16`` it builds and runs: float32 variables, bfloat16 convolutions and
      outputs (the policy's compute dtype: the package promises float32 variables, and float32 outputs
      from the float32 copy that export serves, which ``tests/test_precision.py`` checks), close to the
      float32 model's outputs with the same weights.

    A model that draws at random in inference (PermuteNet) must be seeded through ``init_kwargs``:
    the round trips compare each model's first call, which starts from the seed.
    """
    model = builder(**init_kwargs)
    output = model(input_data)
    assert tuple(output.shape) == tuple(expected_output_shape), (model.name, output.shape)
    assert _dtype(output) == "float32", (model.name, output.dtype)

    config = json.dumps(model.get_config(), sort_keys=True)
    clone = model.__class__.from_config(model.get_config())
    assert json.dumps(clone.get_config(), sort_keys=True) == config
    clone.set_weights(model.get_weights())
    path = os.path.join(tmp_dir, f"{model.name}.keras")
    clone.save(path)  # before its first call: the loaded model starts from the same seed state
    np.testing.assert_allclose(_numpy(clone(input_data)), _numpy(output), atol=1e-6)

    loaded = keras.models.load_model(path)
    assert json.dumps(loaded.get_config(), sort_keys=True) == config
    np.testing.assert_allclose(_numpy(loaded(input_data)), _numpy(output), atol=1e-6)

    with dtype_policy("mixed_bfloat16"):
        mixed = builder(**init_kwargs)
    assert all(_dtype(weight) == "float32" for weight in mixed.weights)
    convolutions = [layer for layer in mixed.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convolutions and all(layer.compute_dtype == "bfloat16" for layer in convolutions)
    mixed.set_weights(model.get_weights())  # float32 variables in both: the same function, computed in bfloat16
    mixed_output = mixed(input_data)
    assert tuple(mixed_output.shape) == tuple(expected_output_shape)
    assert _dtype(mixed_output) == "bfloat16"  # the policy's compute dtype, as Keras' layers give it
    # bfloat16 keeps 8 bits of mantissa: the two agree to a few percent of the outputs' scale.
    reference = _numpy(output)
    np.testing.assert_allclose(_numpy(mixed_output).astype("float32"), reference,
                               atol=0.05 * np.abs(reference).max() + 1e-6)
    return model
