"""The shift-consistency evaluator, its curve, and `pcw evaluate consistency`."""
import json
import shutil

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pcw_keras import recipes
from pcw_keras.cli import main
from pcw_keras.evaluation import consistency, consistency_curve, plot_curves, write_curves_csv
from pcw_keras.evaluation.consistency import ring, roll

RAW = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # images in [0, 1]; padding 0 is black


def functional(fn, classes, shape=(16, 16, 3)):
    inputs = keras.Input(shape)
    return keras.Model(inputs, keras.layers.Lambda(fn, output_shape=(classes,))(inputs))


def ignores_input():
    return functional(lambda x: keras.ops.zeros_like(x[:, 0, 0, :2]) + keras.ops.convert_to_tensor([0.0, 1.0]), 2)


def reads_one_pixel():
    """Class 1 when the centre pixel's red value exceeds 0.5, else class 0."""
    return functional(lambda x: keras.ops.stack([0.5 + 0 * x[:, 8, 8, 0], x[:, 8, 8, 0]], axis=-1), 2)


def locates_bright_pixel():
    """Class = the flat index of the brightest pixel of channel 0 (256 classes on 16x16)."""
    return functional(lambda x: keras.ops.reshape(x[..., 0], (-1, 256)), 256)


def constant_model():
    """Class 2 of 4 whatever the image (built from serialisable layers, for `pcw consistency MODEL.keras`)."""
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)])
    model.layers[-1].set_weights([np.zeros((3, 4), "float32"), np.array([0.0, 0.0, 1.0, 0.0], "float32")])
    return model


def one_pixel_model():
    """Class 0 when the normalised red value of pixel (16, 16) is positive, else class 1."""
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Cropping2D(((16, 15), (16, 15))),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    kernel = np.zeros((3, 4), "float32")
    kernel[0, :2] = [1.0, -1.0]
    model.layers[-1].set_weights([kernel, np.zeros(4, "float32")])
    return model


@pytest.fixture()
def noise():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8), np.arange(40) % 2


@pytest.fixture()
def dots():
    """Black images with one white pixel at the centre (label: its flat index)."""
    images = np.zeros((12, 16, 16, 3), np.uint8)
    images[:, 8, 8, :] = 255
    return images, np.full(12, 8 * 16 + 8)


def test_a_model_that_ignores_its_input_is_fully_consistent(noise):
    scores = consistency(ignores_input(), noise, max_shift=3, passes=2, verbose=0, **RAW)
    assert scores["consistency"] == 1.0 and scores["consistency_per_pass"] == [1.0, 1.0]
    assert scores["accuracy"] == pytest.approx(0.5)  # it always says class 1; half the labels are 1
    assert scores["accuracy_shifted"] == pytest.approx(0.5)
    curve = consistency_curve(ignores_input(), noise, max_shift=3, verbose=0, **RAW)
    assert curve["shift"] == [1, 2, 3] and curve["consistency"] == [1.0, 1.0, 1.0]


def test_a_model_that_reads_one_pixel_is_not(noise):
    scores = consistency(reads_one_pixel(), noise, max_shift=2, passes=3, verbose=0, **RAW)
    assert 0.2 < scores["consistency"] < 1.0
    assert (scores["images"], scores["passes"], scores["max_shift"]) == (40, 3, 2)


def test_the_two_shifts_always_differ(dots):
    # The model reports where the dot is: equal predictions would mean equal shifts.
    scores = consistency(locates_bright_pixel(), dots, max_shift=2, passes=4, verbose=0, **RAW)
    assert scores["consistency"] == 0.0
    assert scores["accuracy"] == 1.0  # unshifted, the dot is where the label says
    # Every distance moves the dot; shifts stay within the pad (the dot never leaves the image).
    curve = consistency_curve(locates_bright_pixel(), dots, max_shift=4, verbose=0, **RAW)
    assert curve["consistency"] == [0.0] * 4 and curve["accuracy_unshifted"] == 1.0


def mean_red_above(threshold: float):
    """Class 1 when the image's mean red value exceeds ``threshold``: a circular shift keeps the mean, a zero fill lowers it."""
    return functional(lambda x: keras.ops.stack([threshold + 0 * x[:, 0, 0, 0], keras.ops.mean(x[..., 0], axis=(1, 2))],
                                                axis=-1), 2)


def test_circular_consistency_rolls_the_same_offsets(noise, dots):
    # Invariant to circular shifts, not to zero-filled ones: the two columns part.
    scores = consistency(mean_red_above(0.45), noise, max_shift=3, passes=2, verbose=0, **RAW)
    assert scores["circular_consistency"] == 1.0 and scores["circular_consistency_per_pass"] == [1.0, 1.0]
    assert scores["consistency"] < 0.9
    # The two rolls differ (the dot lands on two different pixels) and stay in the image: never consistent.
    located = consistency(locates_bright_pixel(), dots, max_shift=2, passes=3, verbose=0, **RAW)
    assert located["circular_consistency"] == 0.0
    # A model that reads one pixel of noise agrees on a roll about as often as on a zero-filled shift.
    assert 0.2 < consistency(reads_one_pixel(), noise, max_shift=2, passes=3, verbose=0, **RAW)["circular_consistency"] < 1.0


def test_roll_moves_each_image_by_its_own_offset():
    images = np.arange(2 * 4 * 5 * 1).reshape(2, 4, 5, 1)
    rolled = roll(images, np.array([[1, -2], [0, 3]]))
    np.testing.assert_array_equal(rolled[0], np.roll(images[0], (1, -2), axis=(0, 1)))
    np.testing.assert_array_equal(rolled[1], np.roll(images[1], (0, 3), axis=(0, 1)))


def test_same_seed_same_scores(noise):
    a = consistency(reads_one_pixel(), noise, max_shift=2, passes=2, seed=5, verbose=0, **RAW)
    b = consistency(reads_one_pixel(), noise, max_shift=2, passes=2, seed=5, verbose=0, **RAW)
    assert a == b


def test_ring_holds_every_vector_at_that_distance_once():
    for d in (1, 2, 3):
        vectors = ring(d)
        assert len(vectors) == 8 * d == len({tuple(v) for v in vectors})
        assert (np.abs(vectors).max(axis=1) == d).all()


def test_curves_are_written_as_csv_and_png(noise, tmp_path):
    curve = consistency_curve(reads_one_pixel(), noise, max_shift=3, verbose=0, **RAW)
    write_curves_csv({"plain": curve, "other": curve}, tmp_path / "curve.csv")
    rows = (tmp_path / "curve.csv").read_text().strip().splitlines()
    assert rows[0] == "model,shift,consistency,accuracy" and len(rows) == 7
    assert rows[1].startswith("plain,1,")
    plot_curves({"plain": curve}, tmp_path / "curve.png")
    with Image.open(tmp_path / "curve.png") as image:
        assert image.format == "PNG" and image.size[0] > 300
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"max_shift": 0}, "max_shift=0"), ({"passes": 0}, "passes=0"), ({"fill": "wrap"}, "fill='wrap'"),
     ({"max_shift": 16, "fill": "reflect"}, "max_shift=16")],
)
def test_bad_arguments_name_the_value(noise, kwargs, message):
    with pytest.raises(ValueError, match=message):
        consistency(ignores_input(), noise, verbose=0, **kwargs)


def test_bad_dataset_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        consistency(ignores_input(), (np.zeros((2, 16, 16, 3), "float32"), np.zeros(2)), verbose=0)
    with pytest.raises(ValueError, match="ImageSet"):
        consistency(ignores_input(), [1, 2, 3], verbose=0)


def test_cli_evaluate_consistency_of_a_run_directory(tiny_npz, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    recipe = recipes.load("cifar10-resnet18", **{"data.source": tiny_npz, "model.width": 0.0625})
    (run_dir / "recipe.yaml").write_text(recipe.to_yaml())
    recipe.build_model(class_names=list("abcd"), steps_per_epoch=10).save(run_dir / "best.keras")

    result = CliRunner().invoke(main, ["evaluate", "consistency", str(run_dir), "--passes", "1", "--curve-max-shift", "2",
                                       "--limit", "20"])
    assert result.exit_code == 0, result.output
    assert "consistency" in result.output and "circular consistency" in result.output and "accuracy" in result.output
    scores = json.loads((run_dir / "consistency.json").read_text())
    assert 0.0 <= scores["circular_consistency"] <= 1.0
    assert scores["images"] == 20 and scores["curve"]["shift"] == [1, 2]
    # What the command reports is the library's measure of that model on the run's test images (its recipe's
    # data, 20 of them), with the same shifts.
    test = recipes.load("cifar10-resnet18", **{"data.source": tiny_npz, "data.test_limit": 20}).load_images("test")
    model = keras.models.load_model(run_dir / "best.keras", compile=False)
    again = consistency(model, test, max_shift=4, passes=1, verbose=0)
    assert {key: scores[key] for key in again} == again
    assert scores["curve"] == consistency_curve(model, test, max_shift=2, verbose=0)
    assert (run_dir / "consistency_curve.csv").read_text().startswith("model,shift")
    with Image.open(run_dir / "consistency_curve.png") as image:
        assert image.format == "PNG"

    # A constant model is shift-invariant by construction; a model that reads one fixed pixel is not.
    for name, build, expected in (("constant", constant_model, 1.0), ("one_pixel", one_pixel_model, None)):
        build().save(tmp_path / f"{name}.keras")
        result = CliRunner().invoke(main, ["consistency", str(tmp_path / f"{name}.keras"), "--data", tiny_npz, "--limit", "20",
                                           "--passes", "2", "--curve-max-shift", "2"])
        assert result.exit_code == 0, result.output
        scores = json.loads((tmp_path / "consistency.json").read_text())
        if expected is not None:
            assert scores["consistency"] == expected and scores["curve"]["consistency"] == [expected, expected]
            assert scores["accuracy"] == scores["accuracy_shifted"] == 0.25  # always class 2; 5 of the 20 labels are 2
        else:
            assert scores["consistency"] < 0.9 and max(scores["curve"]["consistency"]) < 0.9, scores

    shutil.copy(run_dir / "best.keras", tmp_path / "model.keras")  # a model file outside a run: no recipe, no data
    model_file = CliRunner().invoke(main, ["consistency", str(tmp_path / "model.keras")])
    assert model_file.exit_code != 0 and "--data" in model_file.output
    canvas = tmp_path / "canvas"
    canvas.mkdir()
    (canvas / "recipe.yaml").write_text(recipes.load("image-3x3-gapnet").to_yaml())
    refused = CliRunner().invoke(main, ["evaluate", "consistency", str(canvas)])
    assert refused.exit_code != 0 and "classification" in refused.output


def test_circular_roll_moves_content_opposite_to_the_zero_filled_shift():
    """On an image inside its border, the zero-filled shift at offset ``o`` equals ``roll(image, max_shift - o)``:
    ``consistency`` rolls by ``o - max_shift``, the same offsets with the opposite sign (the same distribution)."""
    from pcw_keras.evaluation.consistency import _shift, _shifter

    max_shift, side = 2, 12
    images = np.zeros((9, side, side, 1), "float32")
    images[:, max_shift:-max_shift, max_shift:-max_shift] = np.random.default_rng(0).normal(
        size=(9, side - 2 * max_shift, side - 2 * max_shift, 1))
    offsets = np.stack(np.divmod(np.arange(0, 25, 3), 5), axis=-1).astype("int32")
    shifted = _shift(_shifter(max_shift, "zero", images.shape), images, offsets)
    np.testing.assert_array_equal(shifted, roll(images, max_shift - offsets))
    assert not np.array_equal(shifted[offsets[:, 0] != max_shift], roll(images, offsets - max_shift)[offsets[:, 0] != max_shift])
