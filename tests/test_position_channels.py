"""Ranking position-encoding channels: a hand-built model whose channel 0 is a pure function of position."""
import json

import numpy as np
import pytest

from position_probe import GRID, PATCH, POSITION_CHANNEL, patches, probe_model
from pcw_keras.evaluation.model_layers import default_layer, feature_model
from pcw_keras.evaluation.position_channels import ChannelRanking, rank_position_channels
from pcw_keras.models import create_model


@pytest.mark.parametrize("layer", ["features", "pool"])
def test_canvas_ranks_the_position_channel_first_at_a_4d_or_2d_layer(layer):
    ranking = rank_position_channels(probe_model(), patches(), layer=layer, method="canvas", verbose=False)
    assert ranking.grid == GRID and ranking.num_channels == 8 and ranking.samples == 12
    overall = ranking.rankings["overall"]
    assert overall["channels"][0] == POSITION_CHANNEL
    assert overall["scores"][0] == pytest.approx(1.0, abs=1e-6)  # all its variance is explained by the cell
    scores = dict(zip(overall["channels"], overall["scores"]))
    for colour in (1, 2, 3):
        assert scores[colour] == pytest.approx(0.0, abs=1e-6)  # the mean colour ignores the cell
    assert sorted(overall["channels"]) == list(range(8))
    # Per-cell rankings: channel 0 fires most for the right column, least for the left one.
    for cell in range(GRID * GRID):
        first = ranking.rankings[f"cell_{cell}"]["channels"][0]
        last = ranking.rankings[f"cell_{cell}"]["channels"][-1]
        if cell % GRID == GRID - 1:
            assert first == POSITION_CHANNEL
        if cell % GRID == 0:
            assert last == POSITION_CHANNEL
    effects = np.asarray(ranking.cell_effects)
    assert effects.shape == (GRID * GRID, 8)


def test_mirror_ranks_the_position_channel_first_and_knows_left_from_right():
    ranking = rank_position_channels(probe_model(), patches(30), layer="features", method="mirror", grid=GRID,
                                     batch_size=16, verbose=False)
    assert ranking.samples == 30
    assert ranking.rankings["overall"]["channels"][0] == POSITION_CHANNEL
    # Content on the left makes channel 0 negative: it is the most right-specific channel.
    assert ranking.rankings["right"]["channels"][0] == POSITION_CHANNEL
    assert ranking.rankings["left"]["channels"][-1] == POSITION_CHANNEL
    # The mean colour is the same for an input and its mirror.
    scores = dict(zip(ranking.rankings["overall"]["channels"], ranking.rankings["overall"]["scores"]))
    assert scores[1] == pytest.approx(0.0, abs=1e-5)


def test_mirror_takes_float_arrays_and_tf_data_alike():
    import tensorflow as tf

    model = probe_model()
    rng = np.random.default_rng(1)
    inputs = np.zeros((10, GRID * PATCH, GRID * PATCH, 3), "float32")
    inputs[:, :, :PATCH] = rng.normal(size=(10, GRID * PATCH, PATCH, 3))  # content in the left column
    from_array = rank_position_channels(model, inputs, layer="pool", verbose=False)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, np.zeros(10))).batch(4)
    from_dataset = rank_position_channels(model, dataset, layer="pool", verbose=False)
    assert from_array.rankings["overall"]["channels"][0] == POSITION_CHANNEL
    np.testing.assert_allclose(from_array.rankings["overall"]["scores"], from_dataset.rankings["overall"]["scores"], rtol=1e-5)


def test_ranking_round_trips_through_json_and_plots(tmp_path):
    ranking = rank_position_channels(probe_model(), patches(4), layer="features", method="canvas", verbose=False)
    path = ranking.save_json(tmp_path / "out" / "ranking.json")
    payload = json.loads(open(path).read())
    assert payload["method"] == "canvas" and payload["layer"] == "features"
    assert ChannelRanking.load_json(path) == ranking
    assert ranking.top(2) == ranking.rankings["overall"]["channels"][:2]
    png = ranking.save_plot(tmp_path / "ranking.png", top=5)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    mirror = rank_position_channels(probe_model(), patches(4), layer="pool", method="mirror", grid=GRID, verbose=False)
    assert open(mirror.save_plot(tmp_path / "mirror.png"), "rb").read(4) == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror.png", "out", "ranking.png"]  # no temp files left


def test_default_layers_of_the_package_models():
    gapnet = create_model("gapnet_resnet18", num_classes=9, input_shape=(32, 32, 3), width=0.0625)
    assert default_layer(gapnet) == "stage4"
    assert feature_model(gapnet, "stage4").output.shape == (None, 32)
    assert default_layer(probe_model()) == "pool"


def test_errors_name_the_bad_value():
    model = probe_model()
    with pytest.raises(ValueError, match="method='pixel'"):
        rank_position_channels(model, patches(2), method="pixel")
    with pytest.raises(ValueError, match="has no layer 'nope'"):
        rank_position_channels(model, patches(2), layer="nope")
    with pytest.raises(ValueError, match="grid=2"):
        rank_position_channels(model, patches(2), method="canvas", grid=2)
    with pytest.raises(ValueError, match="uint8"):
        rank_position_channels(model, np.zeros((2, PATCH, PATCH, 3), "float32"), method="canvas")
    with pytest.raises(ValueError, match="k=9"):
        rank_position_channels(model, patches(2), method="canvas", verbose=False).top(9)


def make_run_dir(path, tiny_npz):
    """A run directory as `pcw train` leaves it (recipe.yaml + best.keras), with an untrained tiny GAPNet."""
    from pcw_keras import recipes

    recipe = recipes.load("location-3x3-gapnet", **{"model.width": 0.0625, "data.source": tiny_npz})
    path.mkdir()
    (path / "recipe.yaml").write_text(recipe.to_yaml())
    recipe.build_model().save(path / "best.keras")
    return path


def test_pcw_rank_writes_json_and_png_for_a_run_directory(tiny_npz, tmp_path):
    from click.testing import CliRunner

    from pcw_keras.cli import main

    run_dir = make_run_dir(tmp_path / "run", tiny_npz)
    result = CliRunner().invoke(main, ["rank", str(run_dir), "--rank-limit", "8", "--show", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "canvas ranking of `stage4` (32 channels, 8 images)" in result.output
    ranking = ChannelRanking.load_json(run_dir / "channels" / "ranking_canvas.json")
    assert ranking.grid == 3 and sorted(ranking.rankings["overall"]["channels"]) == list(range(32))
    assert (run_dir / "channels" / "ranking_canvas.png").stat().st_size > 0

    model_file = run_dir / "best.keras"
    mirror = CliRunner().invoke(main, ["rank", str(model_file), "--data", tiny_npz, "--method", "mirror",
                                       "--layer", "stage3", "--rank-limit", "4"], catch_exceptions=False)
    assert mirror.exit_code == 0, mirror.output
    saved = ChannelRanking.load_json(tmp_path / "run" / "best-channels" / "ranking_mirror_stage3.json")
    assert saved.layer == "stage3" and saved.grid == 3 and set(saved.rankings) == {"overall", "left", "right"}

    bad = CliRunner().invoke(main, ["rank", str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and "No run directory or model at" in bad.output
