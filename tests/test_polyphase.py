"""Adaptive polyphase sampling: the kept component, exact invariance to circular shifts, serialisation."""
import keras
import numpy as np
import pytest
from layer_harness import run_layer_test

from pcw_keras.layers.polyphase import PolyphaseDownsample2D

pytestmark = pytest.mark.jax  # keras.ops only: runs in the JAX run too


@pytest.mark.parametrize("kwargs", [{}, {"norm": "linf"}, {"blur": 3}])
def test_layer_harness(kwargs, tmp_path):
    run_layer_test(PolyphaseDownsample2D, kwargs, (2, 8, 6, 3), (2, 4, 3, 3), tmp_dir=str(tmp_path))


def test_each_sample_keeps_its_component_of_largest_norm():
    x = np.random.default_rng(0).normal(0, 0.1, (4, 6, 6, 2)).astype("float32")
    offsets = [(0, 0), (0, 1), (1, 0), (1, 1)]
    for sample, (i, j) in enumerate(offsets):
        x[sample, i::2, j::2, :] *= 10.0  # the component (i, j) of sample k dominates
    out = keras.ops.convert_to_numpy(PolyphaseDownsample2D()(x))
    for sample, (i, j) in enumerate(offsets):
        np.testing.assert_array_equal(out[sample], x[sample, i::2, j::2, :])


def test_linf_and_l2_can_choose_differently():
    x = np.zeros((1, 4, 4, 1), "float32")
    x[0, 0::2, 0::2] = 1.0  # l2: 4 ones (norm 4)
    x[0, 1, 1] = 1.5  # linf: one larger value in component (1, 1)
    l2 = keras.ops.convert_to_numpy(PolyphaseDownsample2D("l2")(x))
    linf = keras.ops.convert_to_numpy(PolyphaseDownsample2D("linf")(x))
    np.testing.assert_array_equal(l2[0], x[0, 0::2, 0::2])
    np.testing.assert_array_equal(linf[0], x[0, 1::2, 1::2])


def _is_circular_shift(a: np.ndarray, b: np.ndarray) -> bool:
    return any(np.allclose(np.roll(a, (dy, dx), axis=(0, 1)), b, rtol=0, atol=1e-6)
               for dy in range(a.shape[0]) for dx in range(a.shape[1]))


@pytest.mark.parametrize("kwargs", [{}, {"norm": "linf"}, {"blur": 4}])
def test_a_circular_shift_of_the_input_circularly_shifts_the_output(kwargs):
    layer = PolyphaseDownsample2D(**kwargs)
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 3)).astype("float32")
    reference = keras.ops.convert_to_numpy(layer(x))[0]
    for dy in range(4):
        for dx in range(4):
            shifted = keras.ops.convert_to_numpy(layer(np.roll(x, (dy, dx), axis=(1, 2))))[0]
            assert _is_circular_shift(reference, shifted), (dy, dx)
            # Global pooling after it is exactly invariant (float32 sums of the same values, in another order).
            np.testing.assert_allclose(shifted.mean(axis=(0, 1)), reference.mean(axis=(0, 1)), rtol=0, atol=1e-6)


def test_plain_stride_two_subsampling_is_not_shift_invariant():
    """The control: keeping component (0, 0) always loses the invariance that APS keeps."""
    x = np.random.default_rng(1).normal(size=(8, 8, 3)).astype("float32")
    plain = x[0::2, 0::2]
    shifted = np.roll(x, (1, 1), axis=(0, 1))[0::2, 0::2]
    assert not _is_circular_shift(plain, shifted)


def test_bad_arguments_and_odd_sizes_are_refused():
    with pytest.raises(ValueError, match=r"`norm` must be one of \('l2', 'linf'\)"):
        PolyphaseDownsample2D(norm="l1")
    with pytest.raises(ValueError, match=r"`blur` must be an integer in \[2, 7\]"):
        PolyphaseDownsample2D(blur=1)
    with pytest.raises(ValueError, match="needs an even height"):
        PolyphaseDownsample2D()(keras.Input((7, 8, 3)))
