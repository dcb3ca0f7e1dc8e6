"""Evaluators found by type: the recipe's evaluation section picks one, each returns the same result shape."""
import keras
import numpy as np
import pytest

from pcw_keras import recipes
from pcw_keras.data.imageset import ImageSet
from pcw_keras.evaluation import EVALUATORS, evaluate, register_evaluator
from pcw_keras.evaluation.evaluators import evaluator_type

pytestmark = pytest.mark.jax  # backend-neutral


def _images(count=12, classes=3):
    rng = np.random.default_rng(0)
    return ImageSet(rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), np.arange(count) % classes,
                    [f"c{k}" for k in range(classes)])


def _constant(shape, classes, answer):
    """A model that always answers ``answer``: its accuracy is the share of that label."""
    inputs = keras.Input(shape)
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    head = keras.layers.Dense(classes, kernel_initializer="zeros",
                              bias_initializer=keras.initializers.Constant(np.eye(classes)[answer] * 5.0))
    return keras.Model(inputs, head(pooled))


def test_the_task_picks_the_evaluator_unless_the_recipe_names_one():
    assert set(EVALUATORS) >= {"canvas", "consistency"}
    evaluation = {"type": None}
    assert evaluator_type({"kind": "location"}, evaluation) == "canvas"
    assert evaluator_type({"kind": "image"}, evaluation) == "canvas"
    assert evaluator_type({"kind": "classification"}, evaluation) == "consistency"
    assert recipes.load("cifar10-resnet18", **{"evaluation.type": "consistency"})["evaluation"]["type"] == "consistency"


def test_an_evaluator_that_does_not_serve_the_task_is_refused_at_recipe_load():
    with pytest.raises(ValueError, match=r"The 'canvas' evaluator evaluates the tasks \('location', 'image'\)"):
        recipes.load("cifar10-resnet18", **{"evaluation.type": "canvas"})
    with pytest.raises(ValueError, match="must be one of"):
        recipes.load("location-3x3-gapnet", **{"evaluation.type": "bleu"})
    with pytest.raises(ValueError, match="already registered"):
        register_evaluator("canvas", tasks=("location",))(lambda *a, **k: {})


def test_every_evaluator_returns_its_type_and_the_accuracy():
    images = _images()
    canvas = evaluate(_constant((64, 64, 3), 4, answer=2), images, task={"kind": "location", "grid": 2},
                      evaluation={"type": None, "batch_size": 8, "passes": 3}, seed=0)
    assert canvas["evaluator"] == "canvas" and len(canvas["accuracy_per_pass"]) == 3
    # Always cell 2: right exactly when the image was placed there; the per-cell accuracies say where.
    assert canvas["per_cell_accuracy"] == [0.0, 0.0, 1.0, 0.0] and 0.0 < canvas["accuracy"] < 1.0
    classification = evaluate(_constant((32, 32, 3), 3, answer=1), images, task={"kind": "classification"},
                              evaluation={"type": "consistency", "batch_size": 8, "consistency_max_shift": 2,
                                          "consistency_passes": 2}, seed=0)
    assert classification["evaluator"] == "consistency"
    assert classification["accuracy"] == pytest.approx(1 / 3) and classification["consistency"] == 1.0
