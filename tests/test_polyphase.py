"""Adaptive polyphase sampling: the kept component, exact invariance to circular shifts, serialisation."""
import keras
import numpy as np
import pytest
from layer_harness import run_layer_test

from pcw_keras.layers import binomial_filter
from pcw_keras.layers.polyphase import (
    COMPONENTS,
    PolyphaseDownsample2D,
    PolyphaseSelect2D,
)

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


def _circular_blur(x: np.ndarray, size: int) -> np.ndarray:
    """The binomial blur with circular padding, in NumPy: ``(size - 1) // 2`` pixels before, the rest after."""
    kernel, before = binomial_filter(size), (size - 1) // 2
    return sum(kernel[a, b] * np.roll(x, (before - a, before - b), axis=(1, 2)) for a in range(size) for b in range(size))


@pytest.mark.parametrize("blur", [None, 3, 4])
def test_the_returned_index_selects_the_same_component_of_another_tensor(blur, tmp_path):
    x = np.random.default_rng(2).normal(size=(5, 8, 6, 3)).astype("float32")
    other = np.random.default_rng(3).normal(size=(5, 8, 6, 4)).astype("float32")
    inputs, second = keras.Input((8, 6, 3)), keras.Input((8, 6, 4))
    kept, index = PolyphaseDownsample2D(blur=blur, return_index=True)(inputs)
    assert keras.backend.standardize_dtype(index.dtype) == "int32" and tuple(index.shape) == (None,)
    selected = PolyphaseSelect2D(blur=blur)([second, index])
    model = keras.Model([inputs, second], [kept, index, selected])
    path = str(tmp_path / "select.keras")
    model.save(path)
    for candidate in (model, keras.saving.load_model(path)):
        out, chosen, taken = (keras.ops.convert_to_numpy(t) for t in candidate([x, other]))
        np.testing.assert_array_equal(out, keras.ops.convert_to_numpy(PolyphaseDownsample2D(blur=blur)(x)))
        full = other if blur is None else _circular_blur(other, blur)
        blurred = x if blur is None else _circular_blur(x, blur)
        for sample, component in enumerate(chosen):
            i, j = COMPONENTS[component]
            # the index is the first argmax of the (blurred) input's component norms (l2), computed here in NumPy
            norms = [np.sqrt(np.sum(blurred[sample, a::2, b::2] ** 2)) for a, b in COMPONENTS]
            assert component == int(np.argmax(norms))
            np.testing.assert_allclose(out[sample], blurred[sample, i::2, j::2], rtol=0, atol=1e-6)
            np.testing.assert_allclose(taken[sample], full[sample, i::2, j::2], rtol=0, atol=1e-6)
    assert PolyphaseSelect2D.from_config(PolyphaseSelect2D(blur=4).get_config()).blur == 4


def test_select_refuses_what_it_cannot_subsample():
    with pytest.raises(ValueError, match=r"expects two inputs, \[x, index\]"):
        PolyphaseSelect2D()(keras.Input((8, 8, 3)))
    with pytest.raises(ValueError, match="needs an even width"):
        PolyphaseSelect2D()([keras.Input((8, 7, 3)), keras.Input((), dtype="int32")])
