"""How far a recipe is shrunk: the scales of ``pcw reproduce`` and the plans of ``pcw demo``, in one place.

A :class:`Scale` names what it changes in a recipe (width, epochs per task,
data sizes, validation split, evaluation passes, TensorFlow's XLA switch, a
smaller CIFAR-10 source); a field left ``None`` keeps the recipe's value.
:func:`shrink` loads a recipe at a scale.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import keras

from pcw_keras import recipes
from pcw_keras.choices import CANVAS_TASKS


@dataclass(frozen=True)
class Scale:
    """What a scale changes in a recipe; ``None`` keeps the recipe's value.

    Attributes
    ----------
    width : float, optional
        ``model.width``.
    location_epochs, image_epochs : int, optional
        ``training.epochs`` of the location task, and of the tasks that learn
        what the image is (the image task and classification).
    train_limit, test_limit : int, optional
        ``data.limit`` and ``data.test_limit``.
    validation_fraction : float, optional
        ``data.validation_fraction``.
    passes : int, optional
        ``evaluation.passes`` of the canvas tasks.
    jit_compile : bool, optional
        ``training.jit_compile`` under TensorFlow (JAX always compiles: off would run op by op).
    cifar10 : str, optional
        The source that replaces a recipe's ``cifar10``.
    """

    width: float | None = None
    location_epochs: int | None = None
    image_epochs: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    validation_fraction: float | None = None
    passes: int | None = None
    jit_compile: bool | None = None
    cifar10: str | None = None

    def overrides(self, kind: str) -> dict[str, object]:
        """The recipe overrides (``section.field: value``) of this scale for a recipe of task ``kind``."""
        fields = {
            "model.width": self.width,
            "training.epochs": self.location_epochs if kind == "location" else self.image_epochs,
            "data.limit": self.train_limit,
            "data.test_limit": self.test_limit,
            "data.validation_fraction": self.validation_fraction,
            "evaluation.passes": self.passes if kind in CANVAS_TASKS else None,
            "training.jit_compile": self.jit_compile if keras.backend.backend() == "tensorflow" else None,
        }
        return {key: value for key, value in fields.items() if value is not None}


SCALES: dict[str, Scale] = {
    "paper": Scale(),
    # Every training image and the paper's epochs: the paper's step count, on a network 1/8 as wide.
    "reduced": Scale(width=0.125),
    # pcw demo's budget, chosen by experiment (docs/results.md, "How the budget was chosen").
    "demo": Scale(width=0.125, location_epochs=1, image_epochs=10, validation_fraction=0.05, passes=3,
                  cifar10="cifar10-mini"),
    # pcw demo --quick: a smoke run that proves the path, not the science.
    "quick": Scale(width=0.0625, location_epochs=1, image_epochs=1, train_limit=600, test_limit=200,
                   validation_fraction=0.05, passes=1, jit_compile=False, cifar10="cifar10-mini"),
}
"""The named scales: ``paper``, ``reduced`` and ``demo`` are ``pcw reproduce --scale``'s; ``demo`` and ``quick``
are ``pcw demo``'s default and ``--quick`` plans (``pcw demo --full`` is ``paper``)."""


def shrink(name: str, scale: Scale, *, seed: int, sources: Mapping[str, str] | None = None,
           overrides: Mapping[str, object] | None = None) -> recipes.Recipe:
    """The shipped recipe ``name`` at ``scale``, trained with ``seed``.

    Parameters
    ----------
    name : str
        A name from :func:`pcw_keras.recipes.list_recipes`.
    scale : Scale
        What to change (see :data:`SCALES`).
    seed : int
        ``training.seed``.
    sources : mapping, optional
        A recipe source (``cifar10``, ``cifar100``) to the source to use
        instead; it takes precedence over the scale's ``cifar10``.
    overrides : mapping, optional
        Recipe fields (``section.field: value``) set last, over the scale's
        (e.g. ``training.precision``).
    """
    base = recipes.load(name)
    source = base["data"]["source"]
    fields = {**scale.overrides(base["task"]["kind"]), "training.seed": seed}
    replacement = (sources or {}).get(source) or (scale.cifar10 if source == "cifar10" else None)
    if replacement:
        fields["data.source"] = replacement
    return recipes.load(name, **{**fields, **(overrides or {})})
