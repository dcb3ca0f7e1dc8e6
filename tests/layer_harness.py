"""A small layer test harness modelled on Keras' and keras-hub's ``run_layer_test``."""
from __future__ import annotations

import os

import keras
import numpy as np


def run_layer_test(
    layer_cls,
    init_kwargs: dict,
    input_shape: tuple,
    expected_output_shape: tuple,
    expected_num_seed_generators: int = 0,
    tmp_dir: str | None = None,
):
    """Builds, calls (symbolic and eager), round-trips the config and a ``.keras`` file, fits one step,
    checks mixed precision (``mixed_float16``/``mixed_bfloat16`` outputs in the compute dtype) and, on
    TensorFlow, a ``tf.data.Dataset.map(layer)``."""
    layer = layer_cls(**init_kwargs)
    inputs = keras.Input(batch_shape=input_shape)
    symbolic = layer(inputs)
    assert tuple(symbolic.shape) == tuple(expected_output_shape)
    assert tuple(layer.compute_output_shape(input_shape)) == tuple(expected_output_shape)

    data = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    eager = keras.ops.convert_to_numpy(layer(data))
    assert eager.shape == tuple(expected_output_shape)

    seed_generators = [v for v in layer.variables if "seed_generator" in v.path]
    assert len(seed_generators) == expected_num_seed_generators

    clone = layer_cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    model = keras.Sequential([keras.Input(batch_shape=input_shape), layer_cls(**init_kwargs)])
    if tmp_dir is not None:
        path = os.path.join(tmp_dir, f"{layer_cls.__name__}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        assert type(loaded.layers[0]) is layer_cls
        assert loaded.layers[0].get_config() == model.layers[0].get_config()
        if expected_num_seed_generators == 0:
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(loaded(data)), keras.ops.convert_to_numpy(model(data)), atol=1e-6
            )

    trainable = keras.Sequential(
        [keras.Input(batch_shape=input_shape), layer_cls(**init_kwargs), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    trainable.compile(optimizer="sgd", loss="mse")
    trainable.fit(data, np.zeros((input_shape[0], 1), "float32"), epochs=1, batch_size=input_shape[0], verbose=0)

    # Mixed precision, as Keras' run_layer_test checks it: float outputs in the policy's compute dtype.
    for policy in ("mixed_float16", "mixed_bfloat16"):
        mixed = layer_cls(**init_kwargs, dtype=policy)
        output = mixed(data)
        assert keras.backend.standardize_dtype(output.dtype) == mixed.compute_dtype, (policy, output.dtype)

    # Inside a tf.data map (TensorFlow only), where layers run as graph functions on the input pipeline.
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        mapped_layer = layer_cls(**init_kwargs)
        mapped = tf.data.Dataset.from_tensor_slices(data).batch(input_shape[0]).map(mapped_layer)
        assert tuple(next(iter(mapped)).shape) == tuple(expected_output_shape)
    return layer
