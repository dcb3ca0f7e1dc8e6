"""The ResNets: the paper's sizes, PyTorch's padding, stable names, clear errors."""
import sys

import keras
import numpy as np
import pytest
from model_harness import with_trained_statistics

from pcw_keras import models
from pcw_keras.layers import ChannelPermutation, Padding2D, PermutedGlobalAveragePooling2D
from pcw_keras.models.registry import ALIASES


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def torch_resnet18_body_params():
    """Parameters of torchvision's ResNet-18 without its fc, counted by hand.

    PyTorch counts BatchNorm's weight and bias (2 per channel); its running
    statistics are buffers, as Keras' are non-trainable weights.
    """
    conv = lambda cin, cout, k: cin * cout * k * k  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    total = conv(3, 64, 7) + bn(64)  # stem
    cin = 64
    for cout in (64, 128, 256, 512):
        for block in range(2):
            total += conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout)
            if cin != cout:  # 1x1 projection shortcut in the first block of stages 2-4
                total += conv(cin, cout, 1) + bn(cout)
            cin = cout
    return total


def test_torch_count_matches_the_published_resnet18_size():
    # torchvision's resnet18 has 11,689,512 parameters with its 512 -> 1000 fc.
    assert torch_resnet18_body_params() + 512 * 1000 + 1000 == 11_689_512


def test_permutenet_parameter_count_equals_the_reference():
    model = models.permutenet_resnet18(9)
    assert trainable_count(model) == torch_resnet18_body_params() + 512 * 9 + 9


def test_gapnet_parameter_count_equals_the_reference():
    # GAPNet: a 3x3 conv (with bias) from 512 channels to the classes, no dense layer.
    model = models.gapnet_resnet18(9)
    assert trainable_count(model) == torch_resnet18_body_params() + 512 * 9 * 3 * 3 + 9
    assert not any(isinstance(layer, keras.layers.Dense) for layer in model.layers)


@pytest.mark.parametrize("size, final", [(96, 6), (224, 14)])
@pytest.mark.parametrize("builder", [models.gapnet_resnet18, models.permutenet_resnet18])
def test_output_shapes(builder, size, final):
    model = builder(9, input_shape=(size, size, 3), width=0.125)
    assert model.get_layer("stage4").output.shape == (None, final, final, 64)
    assert model.output.shape == (None, 9)
    assert model(np.zeros((2, size, size, 3), "float32")).shape == (2, 9)


def test_paper_layer_sizes_and_names():
    model = models.permutenet_resnet18(9)
    expected = {"stem": (48, 48, 64), "stage1": (48, 48, 64), "stage2": (24, 24, 128),
                "stage3": (12, 12, 256), "stage4": (6, 6, 512)}
    for name, shape in expected.items():
        assert model.get_layer(name).output.shape[1:] == shape
    assert model.get_layer("pool").output.shape == (None, 512)
    assert isinstance(model.get_layer("pool"), PermutedGlobalAveragePooling2D)
    assert model.get_layer("head").output.shape == (None, 9)


def set_all_weights_to_ones(model):
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.kernel.assign(np.full(layer.kernel.shape, 1e-2, "float32"))
            if layer.bias is not None:
                layer.bias.assign(np.zeros(layer.bias.shape, "float32"))


@pytest.mark.parametrize("padding", ["zero", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("size", [97, 225])
def test_padding_is_symmetric(padding, size):
    """A network of constant weights fed ones gives a spatially symmetric map.

    Sizes where every stride-2 window grid fits exactly (97, 225), as in PyTorch.
    """
    model = models.resnet(18, 9, (size, size, 3), padding=padding, head="gap", width=0.125)
    set_all_weights_to_ones(model)
    features = keras.Model(model.input, [model.get_layer(f"stage{i}").output for i in range(1, 5)])
    for fmap in features(np.ones((1, size, size, 3), "float32")):
        fmap = keras.ops.convert_to_numpy(fmap)[0]
        np.testing.assert_allclose(fmap, fmap[::-1], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(fmap, fmap[:, ::-1], rtol=1e-4, atol=1e-6)
    if padding == "zero":  # the border really differs from the centre: zero padding leaks position
        assert not np.allclose(fmap[0, 0], fmap[fmap.shape[0] // 2, fmap.shape[1] // 2])


def test_stem_corner_sees_pytorch_window_not_keras_same():
    """At 96 px, PyTorch pads 3 on each side: the corner window holds 4x4 image pixels.

    Keras' 'same' would pad 2 before and 3 after, so the corner would hold 5x5.
    """
    model = models.resnet(18, 9, (96, 96, 3), width=0.125)
    set_all_weights_to_ones(model)
    stem_conv = keras.Model(model.input, model.get_layer("stem_conv").output)
    fmap = keras.ops.convert_to_numpy(stem_conv(np.ones((1, 96, 96, 3), "float32")))[0, :, :, 0]
    assert fmap.shape == (48, 48)
    assert fmap[0, 0] == pytest.approx(4 * 4 * 3 * 1e-2, rel=1e-5)
    assert fmap[-1, -1] == pytest.approx(5 * 5 * 3 * 1e-2, rel=1e-5)  # the last row is dropped, as in PyTorch
    assert fmap[24, 24] == pytest.approx(7 * 7 * 3 * 1e-2, rel=1e-5)


def _explicitly_padded_conv(x, filters, kernel_size, strides, padding_mode, pad, name, pad_name, dilation=1,
                            use_bias=False):
    """The earlier layout: every padding a Padding2D layer, every convolution ``valid``."""
    if padding_mode != "none" and pad:
        x = Padding2D(pad, mode=padding_mode, name=pad_name)(x)
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, dilation_rate=dilation, padding="valid",
                               use_bias=use_bias, name=name)(x)


@pytest.mark.parametrize("name", ["gapnet_resnet18", "deeplabv3_resnet18"])
def test_same_padded_convolutions_compute_what_explicit_symmetric_paddings_compute(name, monkeypatch):
    """The stride-1 zero paddings are the convolutions' own "same" padding; the strided ones (where "same"
    pads 0 before and 1 after on an even map) keep a Padding2D; the function is the explicit layout's."""
    keras.utils.set_random_seed(0)
    model = models.create_model(name, num_classes=9, input_shape=(64, 64, 3), width=0.125)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    same = [conv for conv in convs if conv.padding == "same"]
    assert same and all(conv.strides == (1, 1) for conv in same)
    for conv in convs:
        if conv.padding == "valid" and conv.kernel_size[0] > 1:
            assert conv.strides == (2, 2) and isinstance(conv.input._keras_history.operation, Padding2D), conv.name
    if name == "gapnet_resnet18":  # the 13 stride-1 3x3 convolutions of the blocks and the head
        assert len(same) == 14
    with_trained_statistics(model)

    for module in ("pcw_keras.models.resnet", "pcw_keras.models.segmentation"):
        monkeypatch.setattr(sys.modules[module], "apply_padded_conv", _explicitly_padded_conv)
    explicit = models.create_model(name, num_classes=9, input_shape=(64, 64, 3), width=0.125)
    assert not any(getattr(layer, "padding", None) == "same" for layer in explicit.layers)
    explicit.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(explicit(x, training=False))
    actual = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_a_resnet_with_unknown_spatial_sizes_builds_and_computes_the_fixed_size_function():
    keras.utils.set_random_seed(0)
    fixed = models.resnet(18, 9, (64, 64, 3), width=0.125)
    free = models.resnet(18, 9, (None, None, 3), width=0.125)
    assert free.output.shape == (None, 9)
    free.set_weights(fixed.get_weights())
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(free(x)), keras.ops.convert_to_numpy(fixed(x)),
                               rtol=1e-5, atol=1e-6)
    assert free(np.zeros((1, 96, 80, 3), "float32")).shape == (1, 9)


def test_circular_padding_is_translation_equivariant_to_the_stage_outputs():
    model = models.resnet(18, 4, (32, 32, 3), stem="cifar", padding="circular", head="gap", width=0.125)
    stage1 = keras.Model(model.input, model.get_layer("stage1").output)
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    shifted = np.roll(x, 5, axis=2)
    a = keras.ops.convert_to_numpy(stage1(x))
    b = keras.ops.convert_to_numpy(stage1(shifted))
    np.testing.assert_allclose(np.roll(a, 5, axis=2), b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stage", ["stage1", "stage2", "stage3", "stage4"])
def test_permutation_before_a_stage(stage):
    model = models.resnet(18, 9, (64, 64, 3), head="permuted_gap", permute_at=stage, width=0.125)
    permute = model.get_layer("permute")
    assert isinstance(permute, ChannelPermutation)
    assert not isinstance(model.get_layer("pool"), PermutedGlobalAveragePooling2D)
    assert model.output.shape == (None, 9)


@pytest.mark.parametrize("depth", [18, 34, 50])
@pytest.mark.parametrize("antialias", [False, True])
def test_max_pooled_stem_at_every_depth_builds_and_runs(depth, antialias):
    """The ImageNet stem's max-pool, which no registered name uses (tests/test_registered_models.py runs those)."""
    model = models.resnet(depth, 5, (64, 64, 3), maxpool=True, antialias=antialias, width=0.0625)
    expected_channels = max(1, round(512 * 0.0625)) * (4 if depth == 50 else 1)
    assert model.get_layer("stage4").output.shape[-1] == expected_channels
    assert keras.ops.convert_to_numpy(model(np.zeros((1, 64, 64, 3), "float32"))).shape == (1, 5)
    if antialias:
        assert any(layer.name.endswith("blurpool") for layer in model.layers)


def test_padding_none_shrinks_and_crops_the_residuals():
    model = models.resnet(18, 9, (224, 224, 3), padding="none", head="gap", width=0.125)
    assert model.get_layer("stage4").output.shape == (None, 1, 1, 64)


def test_width_multiplier():
    model = models.resnet(18, 9, (96, 96, 3), width=0.25)
    assert model.get_layer("stage1").output.shape[-1] == 16
    assert model.get_layer("pool").output.shape == (None, 128)


def test_registry():
    assert {"gapnet_resnet18", "permutenet_resnet18", "resnet50_blur"} <= set(models.list_models())
    model = models.create_model("resnet18_permutenet", num_classes=3, width=0.125, input_shape=None)
    assert isinstance(model.get_layer("pool"), PermutedGlobalAveragePooling2D)
    with pytest.raises(ValueError, match="Unknown model 'resnet19'"):
        models.create_model("resnet19")


@pytest.mark.parametrize("alias, canonical", sorted(ALIASES.items()))
def test_an_alias_builds_its_canonical_model_and_recipes_accept_both_names(alias, canonical, tmp_path):
    from pcw_keras import recipes

    built = [models.create_model(name, num_classes=3, input_shape=(32, 32, 3), width=0.0625, permutation_seed=0)
             for name in (alias, canonical)]
    assert built[0].get_config() == built[1].get_config()
    for name in (alias, canonical):
        assert recipes.load("location-3x3-gapnet", **{"model.name": name})["model"]["name"] == name
    # A .keras file saved under the alias' own model name (as before the alias) loads as the same network.
    old = getattr(models, canonical)(3, input_shape=(32, 32, 3), width=0.0625, permutation_seed=0, name=alias)
    old.save(tmp_path / "old.keras")
    assert keras.models.load_model(tmp_path / "old.keras").count_params() == built[1].count_params()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"depth": 19}, r"depth.*\(18, 34, 50\).*Received: depth=19"),
        ({"padding": "mirror"}, r"padding.*Received: padding='mirror'"),
        ({"width": 0}, r"width.*> 0.*Received: width=0"),
        ({"head": "dense"}, r"head.*Received: head='dense'"),
        ({"stem": "tiny"}, r"stem.*Received: stem='tiny'"),
        ({"num_classes": 0}, r"num_classes.*Received: num_classes=0"),
        ({"permute_at": "stage5"}, r"permute_at.*Received: permute_at='stage5'"),
        ({"padding": "none", "input_shape": (96, 96, 3)}, r"too small for padding='none'.*stage"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, match):
    kwargs = {"depth": 18, "num_classes": 9, "input_shape": (64, 64, 3), **kwargs}
    with pytest.raises(ValueError, match=match):
        models.resnet(**kwargs)


def test_subsampled_projection_equals_a_strided_1x1_convolution():
    model = models.resnet(18, 9, (64, 64, 3), width=0.125)
    shortcut_in = model.get_layer("stage1").output
    projection = keras.Model(model.input, [shortcut_in, model.get_layer("stage2_block1_downsample_conv").output])
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype("float32")
    features, projected = (keras.ops.convert_to_numpy(t) for t in projection(x))
    kernel = model.get_layer("stage2_block1_downsample_conv").kernel
    reference = keras.ops.conv(features, kernel, strides=2, padding="valid")
    np.testing.assert_allclose(projected, keras.ops.convert_to_numpy(reference), rtol=1e-5, atol=1e-5)


def test_training_without_xla_at_the_demo_shape_runs(tmp_path):
    """Regression: a strided 1x1 convolution's oneDNN backward pass crashed this (width 1/8, 96 px)."""
    import subprocess
    import sys

    script = (
        "import numpy as np, keras, pcw_keras as p\n"
        "m = p.models.resnet(18, 9, (96, 96, 3), head='gapnet', width=0.125)\n"
        "m.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)\n"
        "m.fit(np.random.rand(96, 96, 96, 3).astype('float32'), np.arange(96) % 9, batch_size=48, epochs=1, verbose=0)\n"
        "print('trained')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "trained" in result.stdout, result.stderr[-2000:]


def test_flop_count_matches_the_published_resnet18_figure():
    # torchvision's ResNet-18 at 224x224: 1.814 GMACs, i.e. 3.63 GFLOP per image.
    model = models.resnet(18, 1000, (224, 224, 3), maxpool=True, head="gap")
    assert models.count_flops(model) == pytest.approx(3.628e9, rel=2e-3)
    dense = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    assert models.count_flops(dense) == 2 * 8 * 4
