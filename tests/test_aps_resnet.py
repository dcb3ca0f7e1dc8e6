"""An APS ResNet-18 with circular padding gives the same logits for every circular shift of its input; the plain one does not.

Randomly initialised networks (nothing trained, nothing to fit to the test),
CIFAR stem, width 1/16, 32x32 inputs, inference mode. Tolerance: float32
rounding, stated as ``max |logits(shifted) - logits(x)| <= RTOL * max |logits(x)|``
with ``RTOL = 1e-5`` (the shifted input reaches the same values through
sums in another order). The plain network (same padding,
strided subsampling) must miss it by far: more than ``100 * RTOL``.
"""
import keras
import numpy as np
import pytest

from pcw_keras import models
from pcw_keras.layers import PolyphaseDownsample2D, PolyphaseSelect2D
from pcw_keras.models.resnet import resnet

RTOL = 1e-5
SIDE = 32
ALL_SHIFTS = [(dy, dx) for dy in range(SIDE) for dx in range(SIDE)]


def _network(name: str, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return models.create_model(name, num_classes=10, input_shape=(SIDE, SIDE, 3), width=1 / 16, padding="circular")


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(1, SIDE, SIDE, 3)).astype("float32")


def _worst_relative_change(model: keras.Model, image: np.ndarray, shifts) -> float:
    """``max |logits(roll(image, s)) - logits(image)| / max |logits(image)|`` over ``shifts``, in inference mode."""
    reference = keras.ops.convert_to_numpy(model(image, training=False))
    worst = 0.0
    for start in range(0, len(shifts), 256):
        batch = np.concatenate([np.roll(image, shift, axis=(1, 2)) for shift in shifts[start:start + 256]])
        logits = keras.ops.convert_to_numpy(model(batch, training=False))
        worst = max(worst, float(np.abs(logits - reference).max()))
    return worst / float(np.abs(reference).max())


def _random_shifts(count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` distinct shifts drawn at random, always with (1, 0), (0, 1) and (1, 1) (odd ones)."""
    rng = np.random.default_rng(seed)
    drawn = [ALL_SHIFTS[i] for i in rng.choice(len(ALL_SHIFTS), count, replace=False)]
    return [(1, 0), (0, 1), (1, 1)] + [s for s in drawn if s not in ((1, 0), (0, 1), (1, 1))]


@pytest.mark.jax
def test_aps_resnet18_is_invariant_to_every_circular_shift():
    model = _network("resnet18_cifar_aps")
    assert _worst_relative_change(model, _image(), ALL_SHIFTS) <= RTOL


@pytest.mark.jax
def test_aps_with_blur_is_invariant_to_circular_shifts():
    model = _network("resnet18_cifar_aps_blur", seed=1)
    assert _worst_relative_change(model, _image(1), _random_shifts(96, seed=1)) <= RTOL


@pytest.mark.jax
def test_the_plain_network_is_not_invariant():
    """The control: same padding, same width, strided subsampling. Fails the tolerance by more than 100x."""
    model = _network("resnet18_cifar")
    assert _worst_relative_change(model, _image(), _random_shifts(96, seed=0)) > 100 * RTOL


def test_shortcuts_keep_the_main_paths_component():
    model = _network("resnet18_cifar_aps")
    selects = [layer for layer in model.layers if isinstance(layer, PolyphaseSelect2D)]
    assert [layer.name for layer in selects] == [f"stage{i}_block1_downsample_aps" for i in (2, 3, 4)]
    for layer in selects:
        index = layer._inbound_nodes[0].input_tensors[1]._keras_history.operation
        assert isinstance(index, PolyphaseDownsample2D) and index.name == layer.name.replace("downsample", "1")


@pytest.mark.jax
def test_saved_aps_model_loads_and_stays_invariant(tmp_path):
    model = _network("resnet18_cifar_aps_blur")
    path = str(tmp_path / "aps.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    image = _image(2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(image)), keras.ops.convert_to_numpy(model(image)),
                               rtol=0, atol=1e-6)
    assert _worst_relative_change(loaded, image, _random_shifts(13, seed=2)) <= RTOL


def test_imagenet_stem_maxpool_and_bottlenecks_downsample_by_aps_too():
    keras.utils.set_random_seed(0)
    model = resnet(50, 10, (SIDE, SIDE, 3), stem="imagenet", maxpool=True, aps=True, padding="circular", width=1 / 16)
    names = [layer.name for layer in model.layers if isinstance(layer, PolyphaseDownsample2D)]
    assert names == ["stem_aps", "stem_maxpool_aps"] + [f"stage{i}_block1_2_aps" for i in (2, 3, 4)]
    assert model.get_layer("stage4").output.shape[1:3] == (1, 1)  # 32 / 32, as the strided network
    assert _worst_relative_change(model, _image(), _random_shifts(29, seed=3)) <= RTOL


@pytest.mark.parametrize("kwargs, message", [
    ({"aps": True, "antialias": True}, "`aps` and `antialias` are two ways to downsample"),
    ({"aps": True, "padding": "none"}, "`aps` needs a padding mode"),
    ({"aps_blur": 3}, "need `aps=True`"),
    ({"aps": True, "aps_norm": "l1"}, r"`aps_norm` must be one of \('l2', 'linf'\)"),
    ({"aps": True, "aps_blur": 9}, r"`aps_blur` must be an integer in \[2, 7\]"),
])
def test_bad_aps_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resnet(18, 10, (SIDE, SIDE, 3), stem="cifar", width=1 / 16, **kwargs)


@pytest.mark.jax
def test_invariance_on_any_backend():
    """The same property under the backend the suite runs on (the JAX CI runs it under JAX)."""
    aps, plain = _network("resnet18_cifar_aps_blur"), _network("resnet18_cifar")
    shifts = _random_shifts(21, seed=4)
    assert _worst_relative_change(aps, _image(3), shifts) <= RTOL
    assert _worst_relative_change(plain, _image(3), shifts) > 100 * RTOL


def test_recipes_choose_aps_by_model_name_or_by_fields():
    from pcw_keras import recipes
    from pcw_keras.layers import Padding2D

    cases = [("cifar10-resnet18-aps", {}, None), ("cifar10-resnet18-aps-blur", {}, 3),
             ("cifar10-resnet18", {"model.aps": True, "model.aps_blur": 5, "model.padding": "circular"}, 5)]
    for name, fields, blur in cases:
        model = recipes.load(name, **{"model.width": 1 / 16, **fields}).build_model(num_classes=10, steps_per_epoch=1)
        aps = [layer for layer in model.layers if isinstance(layer, PolyphaseDownsample2D)]
        assert len(aps) == 3 and {layer.blur for layer in aps} == {blur}, name
        assert {layer.mode for layer in model.layers if isinstance(layer, Padding2D)} == {"circular"}, name
    with pytest.raises(ValueError, match="`model.aps_blur` must be <= 7"):
        recipes.load("cifar10-resnet18-aps", **{"model.aps_blur": 8})
