"""Attacks: zeroing ranked channels in a copy of the model, and top-k versus random-k evaluations."""
import json

import keras
import numpy as np
import pytest

from layer_harness import run_layer_test
from position_probe import GRID, PATCH, POSITION_CHANNEL, locating_probe_model, patches, probe_model
from pcw_keras.evaluation.attacks import accuracy_bound, attack, evaluate_attacks, mask_layer
from pcw_keras.evaluation.inputs import canvases as place_patches
from pcw_keras.evaluation.model_layers import feature_model
from pcw_keras.evaluation.position_channels import rank_position_channels
from pcw_keras.evaluation.task_metrics import canvas_metric, classification_metric, confusion, mean_iou
from pcw_keras.layers import ChannelMask
from pcw_keras.models import create_model


def canvases(count=6, seed=0):
    return np.random.default_rng(seed).normal(size=(count, GRID * PATCH, GRID * PATCH, 3)).astype("float32")


def test_channel_mask_layer_harness(tmp_path):
    run_layer_test(ChannelMask, {"channels": [0, 2]}, (2, 4, 4, 3), (2, 4, 4, 3), tmp_dir=str(tmp_path))
    run_layer_test(ChannelMask, {"channels": []}, (2, 5), (2, 5))


def test_channel_mask_zeroes_exactly_its_channels_and_can_be_retargeted():
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 5)).astype("float32")
    layer = ChannelMask([3, 1])
    out = keras.ops.convert_to_numpy(layer(x))
    assert layer.channels == (1, 3)
    np.testing.assert_array_equal(out[..., [1, 3]], 0.0)
    np.testing.assert_array_equal(out[..., [0, 2, 4]], x[..., [0, 2, 4]])
    layer.set_channels([4])
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(out[..., 4], 0.0)
    np.testing.assert_array_equal(out[..., :4], x[..., :4])
    assert layer.get_config()["channels"] == [4]


@pytest.mark.parametrize("channels, message", [([1, 1], "repeat"), ([-1], "non-negative"), ("ab", "list"), ([0.5], "integers")])
def test_channel_mask_rejects_bad_channels(channels, message):
    with pytest.raises(ValueError, match=message):
        ChannelMask(channels)


def test_channel_mask_rejects_channels_beyond_the_input():
    with pytest.raises(ValueError, match=r"\[0, 3\).*channels=\[3\]"):
        ChannelMask([3])(np.zeros((1, 3), "float32"))


@pytest.mark.parametrize("layer, channels", [("features", [0, 5]), ("pool", [POSITION_CHANNEL])])
def test_attack_changes_only_the_chosen_channels_of_the_layer(layer, channels):
    model = probe_model()
    x = canvases()
    before = keras.ops.convert_to_numpy(feature_model(model, layer)(x))
    attacked = attack(model, channels, layer=layer)
    mask = attacked.get_layer(f"{layer}_channel_mask")
    assert attacked.name == "probe_attacked" and mask.channels == tuple(sorted(channels))
    attacked_features = keras.Model(attacked.input, mask.output)
    after = keras.ops.convert_to_numpy(attacked_features(x))
    raw = keras.ops.convert_to_numpy(keras.Model(model.input, model.get_layer(layer).output)(x))
    kept = [c for c in range(raw.shape[-1]) if c not in channels]
    np.testing.assert_array_equal(after[..., channels], 0.0)
    np.testing.assert_allclose(after[..., kept], raw[..., kept], rtol=1e-6, atol=1e-6)
    assert np.abs(raw[..., channels]).max() > 0  # the attack did remove something
    # The original is untouched and the copy's other layers hold the same weights.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(feature_model(model, layer)(x)), before, rtol=1e-6)
    assert attacked.get_layer("head") is not model.get_layer("head")
    for original, copy in zip(model.get_layer("head").get_weights(), attacked.get_layer("head").get_weights()):
        np.testing.assert_array_equal(original, copy)


def test_attacked_resnet_saves_loads_evaluates_and_exports(tmp_path):
    model = create_model("gapnet_resnet18", num_classes=9, input_shape=(32, 32, 3), width=0.0625)
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    attacked = attack(model, [0, 3, 7])  # default layer: stage4
    assert mask_layer(attacked).name == "stage4_channel_mask"
    expected = keras.ops.convert_to_numpy(attacked(x))
    assert not np.allclose(expected, keras.ops.convert_to_numpy(model(x)))
    path = tmp_path / "attacked.keras"
    attacked.save(path)
    loaded = keras.models.load_model(path)
    assert mask_layer(loaded).channels == (0, 3, 7)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), expected, rtol=1e-5, atol=1e-5)
    loaded.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    labels = np.argmax(expected, axis=-1)
    labels[0] = (labels[0] + 1) % 9  # the attacked model is right on 3 of the 4 images
    scores = loaded.evaluate(x, labels, verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(0.75)
    export_dir = tmp_path / "saved_model"
    attacked.export(str(export_dir), verbose=False)
    import tensorflow as tf

    reloaded = tf.saved_model.load(str(export_dir))
    served = reloaded.serve(tf.constant(x))
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_attack_rejects_unknown_layers_and_channels():
    with pytest.raises(ValueError, match="layer='nope'"):
        attack(probe_model(), [0], layer="nope")
    with pytest.raises(ValueError, match="channels=\\[8\\]"):
        attack(probe_model(), [8], layer="features")


def test_top_k_canvas_channels_hurt_location_more_than_random_ones(tmp_path):
    model = locating_probe_model()
    images = patches(9)
    ranking = rank_position_channels(model, images, layer="features", method="canvas", verbose=False)
    assert ranking.top(1) == [POSITION_CHANNEL]
    report = evaluate_attacks(model, canvas_metric(images, task="location"), ranking, [1, 2], random_draws=4,
                              seed=0, verbose=False)
    assert report.metric == "accuracy" and report.layer == "features" and report.num_channels == 8
    assert report.baseline["accuracy"] == pytest.approx(1 / 3)
    first = report.rows[0]
    assert first["top_channels"] == [POSITION_CHANNEL]
    assert first["top"]["accuracy"] == pytest.approx(1 / 9)
    assert len(first["random"]) == 4 and all(len(c) == 1 for c in first["random_channels"])
    summary = first["summary"]["accuracy"]
    hits = sum(c == [POSITION_CHANNEL] for c in first["random_channels"])
    assert summary["random_mean"] == pytest.approx((hits / 9 + (4 - hits) / 3) / 4)
    assert summary["random_mean"] > summary["top"]
    table = report.table()
    assert "| 1 | 12.5 | 11.1 |" in table and "± " in table
    payload = json.loads(open(report.save_json(tmp_path / "attack.json")).read())
    assert payload["rows"][1]["k"] == 2
    assert open(report.save_curve(tmp_path / "curve.png"), "rb").read(4) == b"\x89PNG"
    # evaluate_attacks leaves the model as it was.
    assert canvas_metric(images)(model)["accuracy"] == pytest.approx(1 / 3)


def test_region_attack_scores_the_targeted_cells_apart():
    model = locating_probe_model()
    images = patches(9)
    metric = canvas_metric(images, task="location", region=[0])
    baseline = metric(model)
    assert baseline["accuracy_in_region"] == pytest.approx(1.0)  # cell 0 is predicted right
    assert baseline["accuracy_elsewhere"] == pytest.approx(2 / 8)  # cells 1 and 2 only
    ranking = rank_position_channels(model, images, layer="features", method="canvas", verbose=False)
    report = evaluate_attacks(model, metric, ranking, [1], ranking_name="cell_2", random_draws=2, verbose=False)
    assert report.rows[0]["top_channels"] == [POSITION_CHANNEL]  # fires most for the right column
    assert report.rows[0]["top"]["accuracy_in_region"] == 0.0
    assert report.rows[0]["top"]["accuracy_elsewhere"] == pytest.approx(1 / 8)
    assert "accuracy_in_region, top-k off" in report.table()


def test_accuracy_bound_is_reached_by_the_best_channels_of_an_affine_readout():
    inputs = keras.Input((3,))
    features = keras.layers.Identity(name="features")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(features))
    # Class 0 scores x0 + x1 + x2, class 1 scores 1.5: margins 1.5 and 4.5, each channel takes 1 or 2 off.
    model.get_layer("head").set_weights([np.array([[1, 0], [1, 0], [1, 0]], "float32"), np.array([0, 1.5], "float32")])
    x, y = np.array([[1, 1, 1], [2, 2, 2]], "float32"), np.array([0, 0])
    bounds = accuracy_bound(model, x, y, [0, 1, 2, 3], layer="features", batch_size=1)
    assert bounds == {0: 1.0, 1: 1.0, 2: 0.5, 3: 0.0}
    metric = classification_metric(x, y)
    for k, channels in ((1, [2]), (2, [0, 1]), (3, [0, 1, 2])):
        assert metric(attack(model, channels, layer="features"))["accuracy"] == bounds[k]

    # A 4-D layer read through GAP -> dense is affine too; a bound never exceeds a measured attack.
    images = patches(9)
    probe = locating_probe_model()
    grid_inputs = np.concatenate([place_patches(images.images, cell, GRID) for cell in range(GRID * GRID)])
    cells = np.repeat(np.arange(GRID * GRID), len(images))
    probe_bounds = accuracy_bound(probe, grid_inputs, cells, [0, 1], layer="features")
    assert probe_bounds[0] == pytest.approx(1 / 3)
    assert probe_bounds[1] <= 1 / 9  # channel 0 off: accuracy 1/9


def test_accuracy_bound_refuses_readouts_it_cannot_bound():
    inputs = keras.Input((3,))
    features = keras.layers.Identity(name="features")(inputs)
    hidden = keras.layers.Dense(4, activation="relu", kernel_initializer="he_normal", bias_initializer="ones")(features)
    relu_model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    with pytest.raises(ValueError, match="must be affine"):
        accuracy_bound(relu_model, x, np.zeros(16, "int64"), [1], layer="features")
    skip = keras.layers.Add()([keras.layers.Dense(3, name="inner")(inputs), inputs])
    skip_model = keras.Model(inputs, keras.layers.Dense(2)(skip))
    with pytest.raises(ValueError, match="layer='inner'"):
        accuracy_bound(skip_model, x, np.zeros(16, "int64"), [1], layer="inner")
    with pytest.raises(ValueError, match="ks=\\[4\\]"):
        accuracy_bound(relu_model, x, np.zeros(16, "int64"), [4], layer="features")


def test_classification_metric_and_mean_iou():
    model = probe_model()
    x = canvases(8)
    predicted = np.argmax(keras.ops.convert_to_numpy(model(x)), -1)
    assert classification_metric(x, predicted, batch_size=3)(model)["accuracy"] == 1.0
    matrix = confusion(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), 3)
    assert mean_iou(matrix) == pytest.approx(np.mean([1 / 3, 2 / 3, 0.0]))
    assert mean_iou(confusion(np.array([0, 0]), np.array([0, 0]), 3)) == 1.0  # absent classes are skipped


def test_evaluate_attacks_rejects_bad_k_and_draws():
    model = locating_probe_model()
    metric = classification_metric(canvases(2), [0, 0])
    with pytest.raises(ValueError, match="ks=\\[9\\]"):
        evaluate_attacks(model, metric, list(range(8)), [9], layer="features", verbose=False)
    with pytest.raises(ValueError, match="random_draws=0"):
        evaluate_attacks(model, metric, list(range(8)), [1], layer="features", random_draws=0, verbose=False)


def test_pcw_attack_reports_top_k_against_random_k(tiny_npz, tmp_path):
    from click.testing import CliRunner

    from pcw_keras.cli import main
    from test_position_channels import make_run_dir

    run_dir = make_run_dir(tmp_path / "run", tiny_npz)
    args = ["attack", str(run_dir), "--top", "1,10%", "--random-draws", "2", "--limit", "4", "--rank-limit", "4"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "accuracy, top-k off" in result.output
    out = run_dir / "channels"
    report = json.loads((out / "attack.json").read_text())
    assert [row["k"] for row in report["rows"]] == [1, 3] and report["layer"] == "stage4"  # 10% of 32 channels
    assert all(len(row["random"]) == 2 for row in report["rows"])
    assert (out / "ranking_canvas.json").exists() and (out / "attack.png").exists() and (out / "attack.md").exists()

    region = CliRunner().invoke(main, args[:2] + ["--top", "2", "--random-draws", "1", "--limit", "4",
                                                  "--region", "0,1", "--ranking-name", "cell_0"], catch_exceptions=False)
    assert region.exit_code == 0, region.output
    assert "Ranking: " in region.output  # reuses the saved ranking
    payload = json.loads((out / "attack_cell_0_region0-1.json").read_text())
    assert {"accuracy_in_region", "accuracy_elsewhere"} <= set(payload["baseline"])

    bad = CliRunner().invoke(main, args[:2] + ["--top", "1,999"])
    assert bad.exit_code == 2 and "[1, 32]" in bad.output
