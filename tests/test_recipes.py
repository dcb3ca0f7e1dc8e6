"""Recipes: every shipped experiment loads, overrides apply, bad fields fail at load time."""
import keras
import numpy as np
import pytest

from pcw_keras import recipes

PAPER_RECIPES = [f"{task}-{g}x{g}-{net}" for task in ("location", "image") for g in (3, 7) for net in ("gapnet", "permutenet")]


def test_paper_recipes_are_shipped_with_descriptions():
    shipped = recipes.list_recipes()
    assert set(PAPER_RECIPES) <= set(shipped)
    assert all(shipped[name] for name in PAPER_RECIPES)


def test_the_package_holds_the_recipe_files_and_the_root_folder_links_to_them():
    """One copy: real files in the package (a wheel, or a checkout without symlinks, ships them); ``recipes/`` links there."""
    from pathlib import Path

    shipped = Path(str(recipes.recipe_dir()))
    assert shipped.is_dir() and not shipped.is_symlink()
    root = Path(__file__).resolve().parent.parent / "recipes"
    if root.exists():  # a source checkout
        assert root.is_symlink() and root.resolve() == shipped.resolve()


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_paper_hyperparameters(name):
    recipe = recipes.load(name)
    assert (recipe["optimizer"]["name"], recipe["optimizer"]["learning_rate"]) == ("adam", 1e-3)
    assert (recipe["optimizer"]["beta_1"], recipe["optimizer"]["beta_2"]) == (0.5, 0.999)
    assert (recipe["training"]["batch_size"], recipe["training"]["epochs"]) == (48, 20)
    assert recipe["model"]["name"].split("_")[0] in name
    grid = recipe["task"]["grid"]
    assert recipe.input_shape == (32 * grid, 32 * grid, 3)


def test_built_model_matches_the_recipe():
    recipe = recipes.load("location-7x7-permutenet", **{"model.width": 0.0625})
    model = recipe.build_model()
    canvas_model = model.canvas_model  # trained on uint8 patches and cells, placed on the device
    assert canvas_model.input_shape == (None, 224, 224, 3)
    assert canvas_model.output_shape == (None, 49)
    patches, cells = np.zeros((2, 32, 32, 3), "uint8"), np.array([0, 48], "int32")
    assert tuple(model((patches, cells)).shape) == (2, 49)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert float(optimizer.beta_1) == 0.5 and float(optimizer.beta_2) == 0.999
    image = recipes.load("image-3x3-gapnet", **{"model.width": 0.0625})
    assert image.build_model(class_names=list("abcdefghij")).canvas_model.output_shape == (None, 10)


@pytest.mark.parametrize(
    "overrides",
    [{"model.width": 0.25, "training.epochs": 2}, {"model": {"width": 0.25}, "training": {"epochs": 2}},
     {"model__width": 0.25, "training__epochs": 2}],
)
def test_override_forms(overrides):
    recipe = recipes.load("location-3x3-gapnet", **overrides)
    assert recipe["model"]["width"] == 0.25 and recipe.epochs == 2
    assert recipe["optimizer"]["learning_rate"] == 1e-3  # untouched fields keep the recipe's values


def test_parse_override_reads_yaml_values():
    assert recipes.parse_override("model.width=0.25") == ("model.width", 0.25)
    assert recipes.parse_override("data.limit=null") == ("data.limit", None)
    assert recipes.parse_override("data.flip=false") == ("data.flip", False)
    with pytest.raises(ValueError, match="section.field=value"):
        recipes.parse_override("model.width")


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"model.widht": 1}, r"Unknown recipe field `model.widht`.*model.width"),
        ({"modle.width": 1}, r"Unknown recipe field `modle.width`"),
        ({"model.width": 0}, r"`model.width` must be > 0"),
        ({"training.epochs": "ten"}, r"`training.epochs` must be int.*'ten'"),
        ({"training.batch_size": 0}, r"`training.batch_size` must be >= 1"),
        ({"task.kind": "segmentation"}, r"`task.kind` must be one of \('location', 'image', 'classification'\)"),
        ({"model.name": "resnet19"}, r"`model.name` must be one of"),
        ({"model.padding": "mirror"}, r"`model.padding`.*'mirror'"),
        ({"training.jit_compile": "sometimes"}, r"`training.jit_compile`"),
        ({"training.steps_per_execution": 0}, r"`training.steps_per_execution` must be a positive integer or 'auto'.*=0"),
        ({"training.steps_per_execution": "often"}, r"`training.steps_per_execution`.*'often'"),
        ({"training.steps_per_execution": True}, r"`training.steps_per_execution` must be str or int.*True"),
        ({"data.flip": "yes"}, r"`data.flip` must be bool"),
    ],
)
def test_bad_fields_fail_at_load_time_with_their_name(overrides, match):
    with pytest.raises(ValueError, match=match):
        recipes.load("location-3x3-gapnet", **overrides)


def test_unknown_recipe_lists_known_ones():
    with pytest.raises(ValueError, match="Unknown recipe 'location-4x4'.*location-3x3-gapnet"):
        recipes.load("location-4x4")


def test_recipe_file_round_trip(tmp_path):
    recipe = recipes.load("image-3x3-permutenet", **{"model.width": 0.5})
    path = tmp_path / "mine.yaml"
    path.write_text(recipe.to_yaml())
    assert recipes.load(str(path)).config == recipe.config
    (tmp_path / "bad.yaml").write_text("task: {kind: location, grdi: 3}\n")
    with pytest.raises(ValueError, match="task.grdi"):
        recipes.load(str(tmp_path / "bad.yaml"))
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        recipes.load(str(tmp_path / "missing.yaml"))


def test_jit_auto_is_on_only_with_a_gpu():
    import tensorflow as tf

    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert recipes.load("location-3x3-gapnet", **{"model.width": 0.125}).jit_compile() is on_gpu
    assert recipes.load("location-3x3-gapnet", **{"training.jit_compile": False}).jit_compile() is False
    assert recipes.load("location-3x3-gapnet", **{"training.jit_compile": True}).jit_compile() is True


def test_steps_per_execution_auto_resolves_to_the_measured_default_and_reaches_compile():
    from pcw_keras.recipes.recipe import AUTO_STEPS_PER_EXECUTION

    assert recipes.load("location-3x3-gapnet").steps_per_execution() == AUTO_STEPS_PER_EXECUTION > 1
    recipe = recipes.load("location-3x3-gapnet", **{"training.steps_per_execution": 3, "model.width": 0.0625})
    assert recipe.steps_per_execution() == 3 and recipe.build_model(num_classes=9).steps_per_execution == 3


def test_datasets_feed_model_fit(tiny_npz):
    recipe = recipes.load("location-3x3-gapnet", **{"data.source": tiny_npz, "model.width": 0.0625, "training.batch_size": 16})
    data = recipe.datasets()
    (patches, cells), labels = data.train[0]  # the device places the uint8 patches
    assert patches.shape == (16, 32, 32, 3) and patches.dtype == np.uint8
    np.testing.assert_array_equal(cells, labels)  # the location task's label is the cell
    assert labels.shape == (16,) and int(np.max(labels)) < 9
    model = recipe.build_model()
    history = model.fit(data.train, validation_data=data.validation, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "val_accuracy" in history.history
