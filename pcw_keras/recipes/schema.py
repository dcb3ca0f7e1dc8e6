"""The recipe schema: every field, its default and what it accepts.

A recipe is a nested mapping ``section -> field -> value``. Loading checks every
field against :data:`SCHEMA` and fails with the field's dotted name
(``model.width``) and what is allowed, before anything is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pcw_keras.choices import APS_BLUR_SIZES, CANVAS_TASKS


@dataclass(frozen=True)
class Field:
    """One recipe field: its default, accepted type(s), and an optional check.

    ``choices`` restricts the value to a set; ``low``/``high`` bound numbers
    (inclusive unless ``open_low``); ``optional`` admits ``None``.
    """

    default: Any
    types: tuple = ()
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    optional: bool = False
    help: str = ""

    def check(self, name: str, value):
        if value is None and self.optional:
            return None
        if self.types and (isinstance(value, bool) and bool not in self.types or not isinstance(value, self.types)):
            names = " or ".join(t.__name__ for t in self.types) + (" or null" if self.optional else "")
            raise ValueError(f"Recipe field `{name}` must be {names}. Received: {name}={value!r}")
        if float in self.types and isinstance(value, int):
            value = float(value)
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"Recipe field `{name}` must be one of {self.choices}. Received: {name}={value!r}")
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            raise ValueError(f"Recipe field `{name}` must be {'>' if self.open_low else '>='} {self.low}. Received: {name}={value!r}")
        if self.high is not None and value > self.high:
            raise ValueError(f"Recipe field `{name}` must be <= {self.high}. Received: {name}={value!r}")
        return value


INT, FLOAT, NUM, STR, BOOL = (int,), (float, int), (float, int), (str,), (bool,)
TASK_KINDS = CANVAS_TASKS + ("classification",)

SCHEMA: dict[str, Any] = {
    "name": Field("", STR, help="Recipe name."),
    "description": Field("", STR, help="One line on what the experiment shows."),
    "task": {
        "kind": Field("location", STR, choices=TASK_KINDS,
                      help="Canvas task (label = cell or class) or plain 32x32 classification."),
        "grid": Field(3, INT, low=1, high=16, help="Canvas tasks: cells per side of the canvas (3 -> 96x96)."),
    },
    "data": {
        "source": Field("cifar10", STR, help="tfds name, cifar10-mini, image folder, .tar.gz or .npz."),
        "fallback": Field("cifar10-mini", STR, optional=True,
                          help="Source used (with a one-line notice) when a tfds source cannot be downloaded; null: fail."),
        "limit": Field(None, INT, low=1, optional=True, help="Class-balanced training subset size."),
        "test_limit": Field(None, INT, low=1, optional=True, help="Class-balanced test subset size."),
        "validation_fraction": Field(0.1, FLOAT, low=0.0, high=0.5, open_low=True, help="Carved from train, fixed seed."),
        "flip": Field(True, BOOL, help="Random horizontal flip in training."),
        "crop_padding": Field(4, INT, low=0, help="Classification: pad by this much and crop at random in training (0: off)."),
    },
    "model": {
        "name": Field("gapnet_resnet18", STR, help="A name from pcw_keras.models.list_models()."),
        "width": Field(1.0, NUM, low=0.0, open_low=True, help="Channel multiplier."),
        "padding": Field("zero", STR, choices=("zero", "reflect", "replicate", "circular", "none")),
        "permute_at": Field("pool", STR, choices=("pool", "stage1", "stage2", "stage3", "stage4")),
        "permutation_mode": Field("batch", STR, choices=("batch", "sample")),
        "antialias": Field(None, BOOL, optional=True, help="BlurPool; null keeps the model's default."),
        "aps": Field(None, BOOL, optional=True,
                     help="Adaptive polyphase sampling wherever the network downsamples (not with antialias); "
                          "null keeps the model's default."),
        "aps_norm": Field(None, STR, choices=("l2", "linf"), optional=True,
                          help="With aps: the norm that picks the polyphase component; null: the model's (l2)."),
        "aps_blur": Field(None, INT, low=APS_BLUR_SIZES[0], high=APS_BLUR_SIZES[1], optional=True,
                          help="With aps: side of the binomial blur before each selection; null: the model's."),
    },
    "augshift": {
        "enabled": Field(False, BOOL, help="Train with AugShift (two shifted views, CE + weight * latent MSE)."),
        "max_shift": Field(4, INT, low=0, help="Largest shift of a view, pixels per axis."),
        "fill": Field("reflect", STR, choices=("zero", "reflect", "replicate"), help="What enters at the border."),
        "weight": Field(1.0, FLOAT, low=0.0, help="lambda: weight of the MSE between the views' pooled latents."),
        "feature_layer": Field("pool", STR, help="Layer whose output is the latent."),
    },
    "optimizer": {
        "name": Field("adam", STR, choices=("adam", "adamw", "sgd")),
        "learning_rate": Field(1e-3, FLOAT, low=0.0, open_low=True),
        "beta_1": Field(0.5, FLOAT, low=0.0, high=1.0),
        "beta_2": Field(0.999, FLOAT, low=0.0, high=1.0),
        "momentum": Field(0.9, FLOAT, low=0.0, high=1.0, help="SGD only."),
        "weight_decay": Field(None, FLOAT, low=0.0, optional=True),
        "schedule": Field("constant", STR, choices=("constant", "cosine")),
    },
    "training": {
        "epochs": Field(20, INT, low=1),
        "batch_size": Field(48, INT, low=1),
        "seed": Field(0, INT, low=0),
        "jit_compile": Field("auto", (str, bool), help="true, false or auto (XLA where a GPU is visible; on CPUs it was measured slower)."),
        "steps_per_execution": Field("auto", (str, int),
                                     help="Training steps per call of the compiled step (Keras' callbacks run once per call): "
                                          "a positive integer or auto (docs/benchmarks.md); the steps, and so the run, "
                                          "are the same for every value."),
        "precision": Field("float32", STR, choices=("float32", "mixed_bfloat16", "mixed_float16"),
                           help="Keras dtype policy: mixed_* compute in 16 bits with float32 weights "
                                "(faster on CPUs and GPUs with 16-bit units: docs/benchmarks.md; the paper's runs are float32)."),
    },
    "evaluation": {
        "type": Field(None, STR, optional=True, choices=("canvas", "consistency"),
                      help="Evaluator (pcw_keras.evaluation.EVALUATORS); null: canvas for the canvas tasks, "
                           "consistency for classification."),
        "passes": Field(None, INT, low=1, optional=True, help="Random placements of the test split; null = grid*grid."),
        "batch_size": Field(256, INT, low=1),
        "consistency_max_shift": Field(4, INT, low=1, help="Classification: shift range of the consistency test."),
        "consistency_passes": Field(5, INT, low=1, help="Classification: draws of two shifts per test image."),
    },
}


def defaults(schema: dict | None = None) -> dict:
    """The recipe with every field at its default."""
    schema = SCHEMA if schema is None else schema
    return {key: defaults(value) if isinstance(value, dict) else value.default for key, value in schema.items()}


def validate(recipe: dict, schema: dict | None = None, prefix: str = "") -> dict:
    """Returns ``recipe`` merged over the defaults and checked; raises ``ValueError`` naming the field."""
    schema = SCHEMA if schema is None else schema
    if not isinstance(recipe, dict):
        raise ValueError(f"Recipe section `{prefix.rstrip('.') or 'recipe'}` must be a mapping. Received: {recipe!r}")
    unknown = sorted(set(recipe) - set(schema))
    if unknown:
        name = prefix + unknown[0]
        raise ValueError(f"Unknown recipe field `{name}`. Known fields here: {', '.join(prefix + k for k in schema)}")
    resolved = {}
    for key, spec in schema.items():
        if isinstance(spec, dict):
            resolved[key] = validate(recipe.get(key, {}), spec, prefix + key + ".")
        else:
            resolved[key] = spec.check(prefix + key, recipe.get(key, spec.default))
    if not prefix:
        _check_cross_fields(resolved)
    return resolved


def _check_cross_fields(recipe: dict) -> None:
    from pcw_keras.models import list_models

    name = recipe["model"]["name"]
    if name not in list_models():
        raise ValueError(f"Recipe field `model.name` must be one of {tuple(list_models())}. Received: model.name={name!r}")
    jit = recipe["training"]["jit_compile"]
    if jit not in ("auto", True, False):
        raise ValueError(f"Recipe field `training.jit_compile` must be true, false or 'auto'. Received: training.jit_compile={jit!r}")
    steps = recipe["training"]["steps_per_execution"]
    if steps != "auto" and (isinstance(steps, str) or steps < 1):
        raise ValueError("Recipe field `training.steps_per_execution` must be a positive integer or 'auto'. "
                         f"Received: training.steps_per_execution={steps!r}")
