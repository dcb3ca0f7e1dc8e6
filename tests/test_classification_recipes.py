"""CIFAR classification: the six recipes, the NumPy pipeline, and a CIFAR-100 run on synthetic data."""
import json

import keras
import numpy as np
import pytest

from pcw_keras import recipes
from pcw_keras.data import CIFAR_MEAN, CIFAR_STD, load_split
from pcw_keras.data.classification import classification_dataset, shift_images
from pcw_keras.layers import BlurPool2D
from pcw_keras.training import AugShiftModel
from pcw_keras.training.runner import train

NAMES = [f"{ds}-resnet18{suffix}" for ds in ("cifar10", "cifar100") for suffix in ("", "-blurpool", "-augshift")]


@pytest.mark.parametrize("name", NAMES)
def test_recipes_are_shipped_with_the_standard_cifar_schedule(name):
    assert recipes.list_recipes()[name]
    recipe = recipes.load(name)
    assert recipe["task"]["kind"] == "classification" and recipe.input_shape == (32, 32, 3)
    optimizer = recipe["optimizer"]
    assert (optimizer["name"], optimizer["learning_rate"], optimizer["momentum"], optimizer["schedule"]) == ("sgd", 0.1, 0.9, "cosine")
    assert (recipe["training"]["batch_size"], recipe.epochs, recipe["data"]["crop_padding"]) == (128, 200, 4)
    assert recipe["model"]["name"] == ("resnet18_cifar_blur" if "blurpool" in name else "resnet18_cifar")
    assert recipe["augshift"]["enabled"] == ("augshift" in name)
    assert recipe["data"]["source"] == name.split("-")[0]
    # CIFAR-100 has no stand-in: a 10-class fallback would silently train the wrong task.
    assert recipe["data"]["fallback"] == ("cifar10-mini" if name.startswith("cifar10-") else None)


def test_built_models_match_their_recipes():
    common = {"model.width": 0.0625}
    plain = recipes.load("cifar100-resnet18", **common).build_model(num_classes=100, steps_per_epoch=10)
    assert plain.input_shape == (None, 32, 32, 3) and plain.output_shape == (None, 100)
    assert isinstance(plain.optimizer, keras.optimizers.SGD) and float(plain.optimizer.weight_decay) == 0.005
    blur = recipes.load("cifar10-resnet18-blurpool", **common).build_model(num_classes=10, steps_per_epoch=10)
    assert sum(isinstance(layer, BlurPool2D) for layer in blur.layers) == 6  # 3 strided blocks x (main path + shortcut)
    aug = recipes.load("cifar10-resnet18-augshift", **common, **{"augshift.weight": 2.0}).build_model(num_classes=10, steps_per_epoch=10)
    assert isinstance(aug, AugShiftModel) and (aug.weight, aug.max_shift, aug.fill) == (2.0, 4, "reflect")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        recipes.load("cifar10-resnet18").build_model(num_classes=10)


@pytest.mark.parametrize(
    "overrides, match",
    [({"task.kind": "segmentation"}, "task.kind"), ({"augshift.fill": "wrap"}, "augshift.fill"),
     ({"augshift.weight": -1}, "augshift.weight"), ({"data.crop_padding": -1}, "data.crop_padding")],
)
def test_bad_fields_fail_at_load_time(overrides, match):
    with pytest.raises(ValueError, match=match):
        recipes.load("cifar10-resnet18-augshift", **overrides)


def test_shift_images_moves_pixels_exactly_and_pads_zeros():
    x = np.arange(1.0, 17.0, dtype="float32").reshape(1, 4, 4, 1)
    moved = shift_images(x, np.array([[0, 2]]), 1)[0, :, :, 0]  # down 1, left 1
    np.testing.assert_array_equal(moved[0], [0, 0, 0, 0])
    np.testing.assert_array_equal(moved[1:, :3], x[0, :3, 1:, 0])
    np.testing.assert_array_equal(moved[1:, 3], [0, 0, 0])
    np.testing.assert_array_equal(shift_images(x, np.array([[1, 1]]), 1), x)  # the centre crop is the image


@pytest.fixture(scope="module")
def mini():
    return load_split("cifar10-mini", "test", limit=100)


def normalized(images):
    return (images.astype("float32") / 255.0 - np.array(CIFAR_MEAN, "float32")) / np.array(CIFAR_STD, "float32")


def test_evaluation_batches_are_normalised_in_order_and_complete(mini):
    batches = list(classification_dataset(mini, batch_size=32, training=False))
    assert [len(labels) for _, labels in batches] == [32, 32, 32, 4]
    images = np.concatenate([b for b, _ in batches])
    np.testing.assert_allclose(images, normalized(mini.images), atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([l for _, l in batches]), mini.labels)


def test_training_batches_are_full_shuffled_crops_and_flips_of_the_images(mini):
    data = classification_dataset(mini, batch_size=32, training=True, seed=3)
    batches = list(data)
    assert [len(labels) for _, labels in batches] == [32, 32, 32]  # no ragged batch
    labels = np.concatenate([l for _, l in batches])
    assert not np.array_equal(labels, mini.labels[: len(labels)])
    # Each training image is a flipped or unflipped shift (by <= 4 px, zero fill) of an original.
    originals = normalized(mini.images)
    image = batches[0][0][0]
    candidates = []
    for source in originals:
        for flipped in (source, source[:, ::-1]):
            padded = np.pad(flipped, ((4, 4), (4, 4), (0, 0)))
            candidates += [padded[r : r + 32, c : c + 32] for r in range(9) for c in range(9)]
    assert min(np.abs(c - image).max() for c in candidates) < 1e-5
    again = list(classification_dataset(mini, batch_size=32, training=True, seed=3))
    np.testing.assert_array_equal(again[0][0], batches[0][0])  # same seed, same batches
    second_pass = list(data)
    assert not np.array_equal(second_pass[0][1], batches[0][1])  # a new order at every pass


def test_pipeline_errors_name_the_value(mini):
    with pytest.raises(ValueError, match="crop_padding=-1"):
        classification_dataset(mini, batch_size=8, training=True, crop_padding=-1)
    with pytest.raises(ValueError, match="full batch of 512"):
        classification_dataset(mini, batch_size=512, training=True, drop_remainder=True)


@pytest.fixture(scope="module")
def cifar100_like(tmp_path_factory):
    """A synthetic 100-class 32x32 dataset: 3 training and 1 test image per class."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("c100") / "c100.npz"
    np.savez(path, x_train=rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8), y_train=np.arange(300) % 100,
             x_test=rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8), y_test=np.arange(100) % 100)
    return str(path)


def test_cifar100_augshift_recipe_trains_end_to_end_on_synthetic_data(cifar100_like, tmp_path):
    recipe = recipes.load("cifar100-resnet18-augshift", **{
        "data.source": cifar100_like, "model.width": 0.0625, "training.epochs": 1, "training.batch_size": 32,
        "training.jit_compile": False, "evaluation.consistency_passes": 1,
    })
    results = train(recipe, tmp_path / "run", verbose=0)
    assert results["chance"] == pytest.approx(0.01) and results["test_images"] == 100
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == results
    model = keras.models.load_model(tmp_path / "run" / "last.keras")
    assert isinstance(model, AugShiftModel) and model.classifier.output_shape == (None, 100)
    # One epoch: the best epoch is the last one, and both report the same model.
    assert results["best_epoch"] == 0 and results["test_accuracy_best"] == results["test_accuracy_last"]
    assert results["consistency_best"] == results["consistency_last"]

    # The reported scores are the saved classifier's on the test split: its argmax on the unshifted,
    # normalised images, and the consistency of that classifier under the recipe's shifts.
    from pcw_keras.evaluation import consistency
    from pcw_keras.models.inference import inference_model

    # The evaluation runs the classifier's inference form in the precision results.json records.
    classifier = inference_model(model.classifier, results["precision"])
    test = load_split(cifar100_like, "test")
    right = sum(int((np.argmax(classifier.predict_on_batch(images), axis=-1) == labels).sum())
                for images, labels in classification_dataset(test, batch_size=64, training=False))
    assert results["test_accuracy_last"] == pytest.approx(right / len(test), abs=1e-12)
    evaluation = recipe["evaluation"]
    again = consistency(classifier, test, max_shift=evaluation["consistency_max_shift"], passes=evaluation["consistency_passes"],
                        seed=recipe["training"]["seed"], verbose=0)
    assert results["consistency_last"] == again["consistency"] and again["accuracy"] == results["test_accuracy_last"]


def test_classification_refuses_images_of_another_size(tmp_path):
    path = tmp_path / "big.npz"
    np.savez(path, x_train=np.zeros((20, 40, 40, 3), np.uint8), y_train=np.arange(20) % 2,
             x_test=np.zeros((4, 40, 40, 3), np.uint8), y_test=np.arange(4) % 2)
    with pytest.raises(ValueError, match="32x32"):
        recipes.load("cifar10-resnet18", **{"data.source": str(path), "training.batch_size": 4}).datasets()
