"""Recipes: named, complete experiments that ``model.fit`` runs as they are."""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from importlib import resources

import keras
import yaml

from pcw_keras.choices import CANVAS_TASKS
from pcw_keras.recipes.schema import SCHEMA, defaults, validate

IMAGE_SIDE = 32  # CIFAR images: a canvas cell, or the classification input
AUTO_STEPS_PER_EXECUTION = 32
"""``training.steps_per_execution: auto``: measured in ``docs/benchmarks.md`` (host time per training step)."""


def _gpu_visible() -> bool:
    """Whether the Keras backend sees an accelerator."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    return False


def _distributed() -> bool:
    """Whether the model is built for several replicas: a TensorFlow strategy in scope, or a Keras distribution (JAX)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1
    return keras.distribution.distribution() is not None


def recipe_dir():
    """The folder of the recipes shipped with the package."""
    return resources.files("pcw_keras.recipes").joinpath("configs")


def list_recipes() -> dict[str, str]:
    """Shipped recipe names and their one-line descriptions, sorted by name."""
    found = {}
    for entry in recipe_dir().iterdir():
        if entry.name.endswith(".yaml"):
            found[entry.name[: -len(".yaml")]] = yaml.safe_load(entry.read_text()).get("description", "")
    return dict(sorted(found.items()))


def parse_override(text: str) -> tuple[str, object]:
    """Parses a CLI ``section.field=value`` (the value is read as YAML: ``0.25``, ``true``, ``null``)."""
    if "=" not in text:
        raise ValueError(f"An override must look like section.field=value. Received: {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _apply_overrides(raw: dict, overrides: dict) -> dict:
    raw = copy.deepcopy(raw)
    for key, value in overrides.items():
        path = key.replace("__", ".").split(".")
        if len(path) == 1 and isinstance(value, dict):  # a whole section: model={"width": 0.25}
            for field, field_value in value.items():
                raw.setdefault(key, {})[field] = field_value
            continue
        section = raw
        for part in path[:-1]:
            if part not in SCHEMA and section is raw:
                raise ValueError(f"Unknown recipe field `{key}`. Sections: {', '.join(k for k, v in SCHEMA.items() if isinstance(v, dict))}")
            section = section.setdefault(part, {})
        section[path[-1]] = value
    return raw


def load(name_or_path: str | os.PathLike, **overrides) -> "Recipe":
    """Loads a shipped recipe by name, or a YAML file, applying overrides.

    Parameters
    ----------
    name_or_path : str or path
        A name from :func:`list_recipes` or a path to a ``.yaml`` file.
    **overrides
        ``section={"field": value}``, ``section__field=value``, or
        ``**{"section.field": value}``.

    Returns
    -------
    Recipe

    Raises
    ------
    ValueError
        Unknown recipe, unknown field or bad value, naming it.

    Example
    -------
    >>> recipe = load("location-3x3-gapnet", **{"model.width": 0.25, "training.epochs": 1})
    >>> model = recipe.build_model()  # doctest: +SKIP
    >>> data = recipe.datasets()  # doctest: +SKIP
    >>> model.fit(data.train, validation_data=data.validation, epochs=recipe.epochs, shuffle=False)  # doctest: +SKIP
    """
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        if not os.path.isfile(text):
            raise FileNotFoundError(f"No recipe file at {text!r}.")
        with open(text, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle) or {}
        raw.setdefault("name", os.path.splitext(os.path.basename(text))[0])
    else:
        entry = recipe_dir().joinpath(f"{text}.yaml")
        if not entry.is_file():
            raise ValueError(f"Unknown recipe {text!r}. Known recipes: {', '.join(list_recipes())}")
        raw = yaml.safe_load(entry.read_text()) or {}
    config = validate(_apply_overrides(raw, overrides))
    from pcw_keras.evaluation.evaluators import evaluator_type

    evaluator_type(config["task"], config["evaluation"])  # the evaluator serves the task
    return Recipe(config)


@dataclass
class Datasets:
    """What a recipe trains and evaluates on.

    ``train`` and ``validation`` are :class:`keras.utils.PyDataset` batches
    for ``model.fit`` under any backend (canvas tasks: uint8 patches and
    cells, which the model from :meth:`Recipe.build_model` places on the
    device). They shuffle per epoch themselves: pass ``shuffle=False`` to
    ``model.fit``, or Keras reorders their batches once more with Python's
    global RNG. ``test_images`` is the in-memory test split, which
    :func:`pcw_keras.evaluation.evaluate` places anew for each evaluation pass (canvas
    tasks) or shifts for the consistency test (classification).
    """

    train: object
    validation: object
    train_images: object
    validation_images: object
    test_images: object


class Recipe:
    """A validated recipe. ``recipe.config`` holds every field (see :mod:`pcw_keras.recipes.schema`)."""

    def __init__(self, config: dict):
        self.config = config
        self.steps_per_epoch: int | None = None
        """Training batches per epoch, known once :meth:`datasets` has run (a cosine schedule needs it)."""

    def __getitem__(self, section: str) -> dict:
        return self.config[section]

    def __repr__(self) -> str:
        return f"Recipe({self.config['name']!r})"

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def epochs(self) -> int:
        return self.config["training"]["epochs"]

    @property
    def is_canvas(self) -> bool:
        """Whether the task is one of the paper's canvas tasks (else plain classification)."""
        return self.config["task"]["kind"] in CANVAS_TASKS

    @property
    def input_shape(self) -> tuple[int, int, int]:
        side = IMAGE_SIDE * self.config["task"]["grid"] if self.is_canvas else IMAGE_SIDE
        return (side, side, 3)

    def num_classes(self, class_names: list[str] | None = None) -> int:
        """Cells for the location task, classes (from the data) for the image and classification tasks."""
        if self.config["task"]["kind"] == "location":
            return self.config["task"]["grid"] ** 2
        if class_names is None:
            raise ValueError(f"The {self.config['task']['kind']} task needs the class names of its data to size the head.")
        return len(class_names)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.config, sort_keys=False)

    def jit_compile(self) -> bool:
        """The resolved XLA switch. ``auto``: on where a GPU is visible, and always under JAX.

        Measured on a 2-core CPU (``docs/benchmarks.md``): XLA slows this
        package's ResNets' TensorFlow training step at full width (16 vs 23
        images/s) and at width 1/8 (356 vs 505), so CPUs train without it
        there. JAX has no fast path without XLA (off means op-by-op).
        """
        jit = self.config["training"]["jit_compile"]
        if jit == "auto":
            return keras.backend.backend() == "jax" or _gpu_visible()
        return jit

    def steps_per_execution(self) -> int:
        """The resolved ``training.steps_per_execution``.

        ``auto`` is :data:`AUTO_STEPS_PER_EXECUTION` on one device, and 1 when
        the model is built for several replicas (:func:`_distributed`: Keras
        3.15's multi-step loop fails under ``MultiWorkerMirroredStrategy``,
        and the distributed runs are tested with one step per call).

        Keras runs its callbacks once per call of the compiled step, and its
        JAX trainer reattaches the state to the model after each call: per
        step, that is host time the device waits for (measured by
        ``benchmarks/host_overhead.py``, ``docs/benchmarks.md``). The steps
        themselves are the same for every value, and so are the weights and
        metrics of a run.
        """
        steps = self.config["training"]["steps_per_execution"]
        if steps == "auto":
            return 1 if _distributed() else AUTO_STEPS_PER_EXECUTION
        return steps

    # --- building -----------------------------------------------------------------------------------

    def datasets(self) -> Datasets:
        """Loads the data once and builds the pipelines (train shuffled, full batches only).

        Canvas tasks get :func:`pcw_keras.data.placement_dataset` (uint8
        patches and cells; :meth:`build_model`'s model places them on the
        device); classification gets
        :func:`pcw_keras.data.classification.classification_dataset`
        (pad-and-crop and flip in training, normalisation). Every draw is
        keyed by (``training.seed``, epoch, step), NumPy only, for any backend.
        """
        from pcw_keras.data import placement_dataset, split_validation
        from pcw_keras.data.classification import classification_dataset

        data, task, train = self.config["data"], self.config["task"], self.config["training"]
        full = self.load_images("train")
        train_images, validation_images = split_validation(full, data["validation_fraction"], seed=train["seed"])
        test_images = self.load_images("test")
        if self.is_canvas:
            common = {"grid": task["grid"], "task": task["kind"], "batch_size": train["batch_size"]}
            train_data = placement_dataset(train_images, training=True, seed=train["seed"], flip=data["flip"], **common)
            validation_data = placement_dataset(validation_images, training=False, seed=train["seed"] + 1, flip=False, **common)
        else:
            if full.image_shape[:2] != self.input_shape[:2]:
                raise ValueError(
                    f"The classification recipes take {IMAGE_SIDE}x{IMAGE_SIDE} images. "
                    f"Received: data.source={data['source']!r} with images of shape {full.image_shape}"
                )
            train_data = classification_dataset(
                train_images, batch_size=train["batch_size"], training=True, seed=train["seed"],
                crop_padding=data["crop_padding"], flip=data["flip"],
            )
            validation_data = classification_dataset(validation_images, batch_size=train["batch_size"], training=False)
        self.steps_per_epoch = len(train_data)
        return Datasets(
            train=train_data,
            validation=validation_data,
            train_images=train_images,
            validation_images=validation_images,
            test_images=test_images,
        )

    def load_images(self, split: str):
        """One split of the recipe's source (``data.limit`` for train, ``data.test_limit`` for test).

        A tfds source that cannot be downloaded here falls back to
        ``data.fallback`` (``cifar10-mini`` by default) with a one-line notice.
        """
        from pcw_keras.data import SourceUnavailable, load_split

        data = self.config["data"]
        limit = data["limit"] if split == "train" else data["test_limit"]
        try:
            return load_split(data["source"], split, limit=limit, seed=self.config["training"]["seed"])
        except SourceUnavailable:
            if not data["fallback"]:
                raise
            if split == "train":
                print(f"pcw: {data['source']!r} cannot be downloaded here; using {data['fallback']!r} instead.")
            return load_split(data["fallback"], split, limit=limit, seed=self.config["training"]["seed"])

    def build_model(
        self, num_classes: int | None = None, class_names: list[str] | None = None, steps_per_epoch: int | None = None
    ) -> keras.Model:
        """Builds and compiles the recipe's model (call inside ``strategy.scope()`` when distributing).

        ``steps_per_epoch`` sizes a cosine schedule (default: measured by :meth:`datasets`).

        ``training.precision`` sets the Keras dtype policy of the model's
        layers (float32 variables in every case).

        With ``augshift.enabled`` the classifier is wrapped in
        :class:`pcw_keras.models.AugShiftModel`, which trains with
        AugShift and saves, predicts and exports as the classifier. A canvas
        task's model is wrapped in
        :class:`pcw_keras.models.PlacementModel`, which takes
        :meth:`datasets`' patches and cells (or canvases) and saves and
        exports as the canvas model.
        """
        from pcw_keras.models import create_model
        from pcw_keras.models.precision import dtype_policy
        from pcw_keras.models.wrappers import AugShiftModel, PlacementModel

        model_config = dict(self.config["model"])
        name = model_config.pop("name")
        training = self.config["training"]
        with dtype_policy(training["precision"]):
            model = create_model(
                name,
                num_classes=num_classes or self.num_classes(class_names),
                input_shape=self.input_shape,
                permutation_seed=training["seed"] if "permut" in name else None,
                **{k: v for k, v in model_config.items() if not (k.startswith("permut") and "permut" not in name)},
            )
            augshift = dict(self.config["augshift"])
            if augshift.pop("enabled"):
                model = AugShiftModel(model, seed=training["seed"], **augshift)
            if self.is_canvas:
                model = PlacementModel(model, grid=self.config["task"]["grid"])
            model.compile(
                optimizer=self.build_optimizer(steps_per_epoch),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                jit_compile=self.jit_compile(),
                steps_per_execution=self.steps_per_execution(),
            )
        return model

    def build_optimizer(self, steps_per_epoch: int | None = None) -> keras.optimizers.Optimizer:
        """The recipe's optimizer; a cosine schedule decays to 0 over ``epochs * steps_per_epoch`` steps.

        ``steps_per_epoch`` defaults to the one :meth:`datasets` measured.
        """
        opt = self.config["optimizer"]
        rate = opt["learning_rate"]
        if opt["schedule"] == "cosine":
            steps_per_epoch = steps_per_epoch or self.steps_per_epoch
            if steps_per_epoch is None:
                raise ValueError("A cosine schedule needs `steps_per_epoch`: call `datasets()` first or pass it.")
            rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=steps_per_epoch * self.epochs)
        if opt["name"] == "sgd":
            return keras.optimizers.SGD(rate, momentum=opt["momentum"], nesterov=True, weight_decay=opt["weight_decay"])
        cls = keras.optimizers.AdamW if opt["name"] == "adamw" else keras.optimizers.Adam
        kwargs = {"weight_decay": opt["weight_decay"]} if opt["weight_decay"] is not None else {}
        return cls(rate, beta_1=opt["beta_1"], beta_2=opt["beta_2"], **kwargs)


__all__ = ["Datasets", "Recipe", "SCHEMA", "defaults", "list_recipes", "load", "parse_override"]
