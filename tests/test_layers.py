"""Behaviour of the package's layers that users rely on."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_harness import run_layer_test
from pcw_keras.layers import (
    AugShift,
    BatchNorm,
    BlurPool2D,
    ChannelPermutation,
    Padding2D,
    PermutedGlobalAveragePooling2D,
    binomial_filter,
    pad2d,
)
from pcw_keras.models.precision import dtype_policy


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


# --- harness: build, call, config, .keras round trip, one fit step ---------------------------------

@pytest.mark.parametrize(
    "layer_cls, kwargs, shape, out_shape, seeds",
    [
        (ChannelPermutation, {"seed": 7}, (2, 512), (2, 512), 1),
        (ChannelPermutation, {"mode": "sample", "seed": 7}, (3, 4, 4, 8), (3, 4, 4, 8), 1),
        (PermutedGlobalAveragePooling2D, {"seed": 7}, (2, 6, 6, 16), (2, 16), 1),
        (AugShift, {"max_shift": 3, "fill": "reflect", "seed": 1}, (2, 8, 8, 3), (2, 8, 8, 3), 1),
        (BlurPool2D, {"filter_size": 3}, (2, 8, 8, 3), (2, 4, 4, 3), 0),
        (Padding2D, {"padding": ((1, 2), (0, 1)), "mode": "circular"}, (2, 5, 5, 3), (2, 8, 6, 3), 0),
        (BatchNorm, {"momentum": 0.9, "epsilon": 1e-5}, (2, 5, 5, 3), (2, 5, 5, 3), 0),
    ],
)
def test_layer_harness(layer_cls, kwargs, shape, out_shape, seeds, tmp_path):
    run_layer_test(layer_cls, kwargs, shape, out_shape, seeds, tmp_dir=str(tmp_path))


# --- ChannelPermutation ------------------------------------------------------------------------------

def test_permutation_keeps_multiset_and_changes_order():
    x = np.random.default_rng(0).normal(size=(4, 64)).astype("float32")
    y = to_numpy(ChannelPermutation(seed=3)(x))
    np.testing.assert_array_equal(np.sort(y, axis=-1), np.sort(x, axis=-1))
    assert not np.array_equal(y, x)


def test_batch_mode_uses_one_permutation_for_all_samples():
    x = np.tile(np.arange(32, dtype="float32"), (5, 1)) + 100 * np.arange(5, dtype="float32")[:, None]
    y = to_numpy(ChannelPermutation(mode="batch", seed=0)(x))
    order = (y - 100 * np.arange(5)[:, None]).astype(int)
    assert (order == order[0]).all()
    assert sorted(order[0]) == list(range(32))


def test_batch_mode_permutes_feature_maps_channelwise():
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 16)).astype("float32")
    layer = ChannelPermutation(seed=5)
    layer.build(x.shape)
    permutation = to_numpy(layer.draw_permutation())
    np.testing.assert_array_equal(to_numpy(layer.apply_permutation(x, permutation)), x[..., permutation])


def test_sample_mode_draws_one_permutation_per_sample():
    x = np.tile(np.arange(64, dtype="float32"), (8, 2, 2, 1))
    y = to_numpy(ChannelPermutation(mode="sample", seed=0)(x))
    np.testing.assert_array_equal(np.sort(y, axis=-1), x)
    assert len({tuple(row) for row in y[:, 0, 0].astype(int)}) == 8
    # The same permutation at every spatial position of a sample.
    assert (y == y[:, :1, :1]).all()


def test_permutes_in_inference_by_default_and_training_only_switch():
    x = np.arange(64, dtype="float32")[None]
    assert not np.array_equal(to_numpy(ChannelPermutation(seed=0)(x, training=False)), x)
    only = ChannelPermutation(training_only=True, seed=0)
    np.testing.assert_array_equal(to_numpy(only(x, training=False)), x)
    assert not np.array_equal(to_numpy(only(x, training=True)), x)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_new_permutation_at_every_call_of_a_compiled_model(jit_compile):
    model = keras.Sequential([keras.Input((128,)), ChannelPermutation(seed=11)])
    model.compile(jit_compile=jit_compile)
    x = np.arange(128, dtype="float32")[None]
    outputs = {tuple(model.predict_on_batch(x)[0].astype(int)) for _ in range(4)}
    assert len(outputs) > 1

    layer = ChannelPermutation(seed=11)
    layer.build((1, 128))
    step = tf.function(lambda t: layer(t), jit_compile=jit_compile)
    outputs = {tuple(step(x).numpy()[0].astype(int)) for _ in range(4)}
    assert len(outputs) > 1


def test_same_seed_same_permutations():
    x = np.arange(32, dtype="float32")[None]
    a, b = ChannelPermutation(seed=4), ChannelPermutation(seed=4)
    np.testing.assert_array_equal(to_numpy(a(x)), to_numpy(b(x)))


def test_permuted_gap_is_gap_then_permutation():
    x = np.random.default_rng(2).normal(size=(3, 5, 5, 24)).astype("float32")
    y = to_numpy(PermutedGlobalAveragePooling2D(seed=2)(x))
    gap = x.mean(axis=(1, 2))
    np.testing.assert_allclose(np.sort(y, axis=-1), np.sort(gap, axis=-1), rtol=1e-5, atol=1e-6)
    assert not np.allclose(y, gap)


# --- AugShift --------------------------------------------------------------------------------------

def test_augshift_zero_shift_is_identity():
    x = np.random.default_rng(0).normal(size=(4, 9, 9, 3)).astype("float32")
    np.testing.assert_array_equal(to_numpy(AugShift(max_shift=0)(x, training=True)), x)


@pytest.mark.parametrize("fill", ["zero", "reflect", "replicate"])
def test_augshift_is_identity_in_inference(fill):
    x = np.random.default_rng(0).normal(size=(4, 9, 9, 3)).astype("float32")
    np.testing.assert_array_equal(to_numpy(AugShift(max_shift=3, fill=fill)(x, training=False)), x)
    np.testing.assert_array_equal(to_numpy(AugShift(max_shift=3, fill=fill)(x)), x)


def test_augshift_moves_each_sample_by_a_whole_shift_within_range():
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 2, size=(16, 12, 12, 1)).astype("float32")
    y = to_numpy(AugShift(max_shift=2, fill="zero", seed=3)(x, training=True))
    shifts = set()
    for sample, shifted in zip(x, y):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                padded = np.pad(sample, ((2, 2), (2, 2), (0, 0)))
                crop = padded[2 - dy : 2 - dy + 12, 2 - dx : 2 - dx + 12]
                if np.array_equal(crop, shifted):
                    matches.append((dy, dx))
        assert len(matches) == 1, "each output must be the input moved by one integer shift"
        shifts.add(matches[0])
    assert len(shifts) > 3, "shifts must be drawn per sample"


def test_augshift_reflect_fill_contains_only_image_values():
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 2)).astype("float32")
    y = to_numpy(AugShift(max_shift=3, fill="reflect", seed=0)(x, training=True))
    for sample, shifted in zip(x, y):
        assert set(np.round(shifted.ravel(), 6)) <= set(np.round(sample.ravel(), 6))


# --- BlurPool --------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", range(1, 8))
def test_blurpool_of_constant_is_constant(size):
    x = np.full((1, 12, 12, 3), 2.5, "float32")
    y = to_numpy(BlurPool2D(filter_size=size)(x))
    assert y.shape == (1, 6, 6, 3)
    np.testing.assert_allclose(y, 2.5, rtol=1e-6)


def test_binomial_filter_values():
    np.testing.assert_allclose(binomial_filter(3), np.outer([1, 2, 1], [1, 2, 1]) / 16)
    np.testing.assert_allclose(binomial_filter(4).sum(), 1.0, rtol=1e-6)


def test_blurpool_blurs_then_subsamples():
    x = np.zeros((1, 8, 8, 1), "float32")
    x[0, 4, 4, 0] = 16.0
    y = to_numpy(BlurPool2D(filter_size=3)(x))[0, :, :, 0]
    # The impulse at (4, 4) is sampled at output (2, 2) with weight 4/16 of the 3x3 filter centre.
    assert y[2, 2] == pytest.approx(4.0)
    assert y.sum() == pytest.approx(4.0)


# --- Padding ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "mode, numpy_mode", [("zero", "constant"), ("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")]
)
def test_padding_matches_numpy(mode, numpy_mode):
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype("float32")
    expected = np.pad(x, ((0, 0), (2, 1), (1, 3), (0, 0)), mode=numpy_mode)
    np.testing.assert_array_equal(to_numpy(pad2d(x, ((2, 1), (1, 3)), mode)), expected)


# --- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: AugShift(max_shift=-1), r"max_shift.*Received: max_shift=-1"),
        (lambda: AugShift(fill="wrap"), r"fill.*'zero'.*Received: fill='wrap'"),
        (lambda: ChannelPermutation(mode="channel"), r"mode.*'batch', 'sample'.*Received: mode='channel'"),
        (lambda: BlurPool2D(filter_size=8), r"filter_size.*\[1, 7\].*Received: filter_size=8"),
        (lambda: BlurPool2D(strides=0), r"strides.*Received: strides=0"),
        (lambda: Padding2D(1, mode="mirror"), r"mode.*Received: mode='mirror'"),
        (lambda: Padding2D(-1), r"padding.*Received"),
    ],
)
def test_bad_arguments_raise_value_error(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_reflect_padding_larger_than_the_side_raises():
    """BlurPool's reflect pad of 2 on a 2-pixel map (a ResNet's stage 4 at a 16-pixel input): an error, not garbage."""
    with pytest.raises(ValueError, match=r"padding \(1, 2\) on a side of 2"):
        BlurPool2D()(np.zeros((1, 2, 2, 1), "float32"))
    assert tuple(BlurPool2D()(np.zeros((1, 3, 3, 1), "float32")).shape) == (1, 2, 2, 1)


def test_augshift_reflect_too_large_for_image():
    with pytest.raises(ValueError, match="max_shift"):
        AugShift(max_shift=8, fill="reflect")(np.zeros((1, 8, 8, 1), "float32"), training=True)


# --- BatchNorm (the fused kernel on TensorFlow) -------------------------------------------------------

@pytest.mark.parametrize("precision, tolerance", [("float32", 2e-5), ("mixed_bfloat16", 3e-2)])
def test_batch_norm_matches_keras_batch_normalization(precision, tolerance):
    """Same outputs, gradients and moving statistics as Keras' layer, in training and in inference."""
    kwargs = {"momentum": 0.9, "epsilon": 1e-5}
    with dtype_policy(precision):
        ours, reference = BatchNorm(**kwargs), keras.layers.BatchNormalization(**kwargs)
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(4, 6, 6, 5)).astype("float32")
    gamma = rng.uniform(0.5, 1.5, 5).astype("float32")
    for layer in (ours, reference):
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(np.linspace(-1, 1, 5).astype("float32"))
    for _ in range(3):
        trained = [np.asarray(keras.ops.convert_to_numpy(layer(x, training=True)), "float32") for layer in (ours, reference)]
        np.testing.assert_allclose(trained[0], trained[1], atol=tolerance, rtol=tolerance)
    assert keras.backend.standardize_dtype(ours(x, training=False).dtype) == ours.compute_dtype
    np.testing.assert_allclose(to_numpy(ours.moving_mean), to_numpy(reference.moving_mean), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(to_numpy(ours.moving_variance), to_numpy(reference.moving_variance), rtol=1e-3, atol=1e-4)
    inferred = [np.asarray(keras.ops.convert_to_numpy(layer(x, training=False)), "float32") for layer in (ours, reference)]
    np.testing.assert_allclose(inferred[0], inferred[1], atol=tolerance, rtol=tolerance)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        grads = []
        for layer in (ours, reference):
            with tf.GradientTape() as tape:
                tape.watch(layer.gamma.value)
                loss = tf.reduce_sum(tf.cast(layer(x, training=True), tf.float32) ** 2)
            grads.append(tape.gradient(loss, layer.trainable_variables))
        for a, b in zip(*grads):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=max(tolerance, 1e-4) * 10, atol=tolerance * 10)


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_permuted_gap_returns_the_compute_dtype_like_keras_pooling(precision):
    with dtype_policy(precision):
        ours, keras_pool = PermutedGlobalAveragePooling2D(seed=0), keras.layers.GlobalAveragePooling2D()
        inputs = keras.Input((4, 4, 3))
        symbolic = ours(inputs)
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    assert keras.backend.standardize_dtype(ours(x).dtype) == keras.backend.standardize_dtype(keras_pool(x).dtype)
    assert keras.backend.standardize_dtype(symbolic.dtype) == ours.compute_dtype != "float32"
