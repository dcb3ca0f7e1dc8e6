"""What the commands analyse: a run directory that ``pcw train`` wrote, or any model file.

:func:`open_model` is the one seam between a ``MODEL`` argument and the
evaluators and exporters, which then take a model plus data and never read
a run directory themselves:

- a **run directory** (:class:`Run`) brings its resolved recipe: the task,
  the canvas grid, the data with its fallback, the CIFAR normalisation;
- a **model file** (:class:`ModelFile`), a ``.keras`` file, brings only
  its input size; the caller names how it wants its
  pixels (``preprocess``, one of :data:`pcw_keras.normalization.PREPROCESS`) and the images to probe
  it with. A ``.keras`` file with a ``recipe.yaml`` beside it is read as
  that run's model.

Both load models the same way (:func:`load_model`): the package's layers and
training wrappers registered, a training wrapper unwrapped to the plain
classifier, a mixed-precision model as its float32 copy.

Example
-------
>>> source = open_model("runs/location-3x3-gapnet")  # doctest: +SKIP
>>> model = source.model("best")  # doctest: +SKIP
>>> images = source.images("test", limit=200)  # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence

import keras

from pcw_keras import io
from pcw_keras.choices import CANVAS_TASKS
from pcw_keras.normalization import CIFAR, Normalization

RECIPE_FILE = "recipe.yaml"
"""The resolved recipe a run was trained with."""
RESULTS_FILE = "results.json"
"""Test scores of the run's checkpoints (written when training ends)."""
METRICS_FILE = "metrics.csv"
"""One row per finished epoch: training and validation metrics."""
BEST_EPOCH_FILE = "best.json"
"""The epoch and validation score of ``best.keras``."""
BACKUP_DIR = "backup"
"""Keras' mid-epoch backup; present while an epoch is unfinished."""
LOGS_DIR = "logs"
"""TensorBoard event files."""
CHECKPOINTS = ("best", "last")
"""``best.keras`` (best validation score) and ``last.keras`` (the last finished epoch)."""


def checkpoint_file(which: str) -> str:
    """``best.keras`` or ``last.keras``."""
    if which not in CHECKPOINTS:
        raise ValueError(f"`which` must be one of {CHECKPOINTS}. Received: which={which!r}")
    return f"{which}.keras"


RUN_FILES = (METRICS_FILE, *map(checkpoint_file, CHECKPOINTS), BEST_EPOCH_FILE, RESULTS_FILE, BACKUP_DIR, LOGS_DIR)
"""Everything training writes into a run directory besides its recipe."""


def completed_epochs(run_dir: str | os.PathLike) -> int:
    """Rows of ``metrics.csv``: the epochs the run has finished."""
    path = os.path.join(os.fspath(run_dir), METRICS_FILE)
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as handle:
        return max(0, sum(1 for line in handle if line.strip()) - 1)


def best_epoch(run_dir: str | os.PathLike) -> int | None:
    """The epoch of ``best.keras`` (None before one is saved)."""
    path = os.path.join(os.fspath(run_dir), BEST_EPOCH_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get("epoch")

def read_results(run_dir: str | os.PathLike) -> dict | None:
    """The ``results.json`` of a finished (evaluated) run directory, else None."""
    path = os.path.join(os.fspath(run_dir), RESULTS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def output_labels(recipe, class_names: Sequence[str]) -> list[str]:
    """One name per output of ``recipe``'s model: the classes, or ``cell k (row r, col c)`` for the location task."""
    task = recipe["task"]
    if task["kind"] != "location":
        return list(class_names)
    grid = task["grid"]
    return [f"cell {k} (row {k // grid}, col {k % grid})" for k in range(grid * grid)]


def load_model(path: str | os.PathLike, *, inference: bool = True, precision: str | None = None) -> keras.Model:
    """A model from a ``.keras`` file, with one clear error when it is not one.

    Parameters
    ----------
    path : path
        A ``.keras`` file.
    inference : bool
        Unwrap a training wrapper (AugShift's two-view trainer, the canvas
        placement front) to the plain model, and give a mixed-precision
        model as its float32 copy (same weights).
    precision : {"auto", "float32", "bfloat16"}, optional
        With ``inference``, the model's inference form in this precision
        (BatchNorm folded, weights in the compute dtype;
        :func:`pcw_keras.models.inference.inference_model`) instead of the
        float32 copy.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    ValueError
        ``path`` is not a Keras model (the message says what was found), or
        is a SavedModel, which serves outputs only.
    """
    import pcw_keras.layers  # noqa: F401  (registers the package's layers)

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a SavedModel, which serves outputs only: rank and attack need the .keras "
                         "model; pcw export converts the SavedModel to TFLite and pcw evaluate consistency takes it.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model at {path!r}.")
    if not path.endswith(".keras"):
        raise ValueError(f"A model file must be a .keras file. Received: {path!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a Keras model: a .keras file is a zip archive, and this one is not.")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001  (a corrupt or foreign file: one line, not a config dump)
        reason = str(error).split("\n", 1)[0]
        raise ValueError(f"{path!r} is not a Keras model that loads here: {reason[:300]}") from None
    return plain_model(model, precision) if inference else model


def plain_model(model: keras.Model, precision: str | None = None) -> keras.Model:
    """The inference model: a training wrapper's inner model, in float32 (a mixed-precision model's copy),
    or in its inference form in ``precision`` (:func:`pcw_keras.models.inference.inference_model`)."""
    from pcw_keras.models.inference import inference_model
    from pcw_keras.models.precision import as_float32
    from pcw_keras.models.wrappers import unwrap

    inner = unwrap(model)
    return as_float32(inner) if precision is None else inference_model(inner, precision)


class Run:
    """A run directory: its recipe, models, test images and results, and atomic writes into it.

    Parameters
    ----------
    path : path
        A directory holding the ``recipe.yaml`` that ``pcw train`` wrote.
    model_file : path, optional
        A ``.keras`` file to use instead of ``best.keras``/``last.keras``.
    **overrides
        Recipe overrides, e.g. ``{"data.source": ...}`` to evaluate on other data.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a directory or has no ``recipe.yaml``.
    """

    def __init__(self, path: str | os.PathLike, *, model_file: str | os.PathLike | None = None, **overrides):
        from pcw_keras.recipes import load

        self.path = os.fspath(path)
        self._recipe_path = os.path.join(self.path, RECIPE_FILE)
        if not os.path.isdir(self.path):
            raise FileNotFoundError(f"No run directory at {self.path!r}.")
        if not os.path.isfile(self._recipe_path):
            raise FileNotFoundError(f"{self.path!r} is not a run directory: it has no {RECIPE_FILE}.")
        self._overrides = {key: value for key, value in overrides.items() if value is not None}
        self.recipe = load(self._recipe_path, **self._overrides)
        task = self.recipe["task"]
        self.task = task["kind"]
        self.grid = task.get("grid") if self.task in CANVAS_TASKS else None
        self.normalization = CIFAR
        self.model_file = None if model_file is None else os.fspath(model_file)
        self.origin = self.model_file or self.path

    def model_path(self, which: str = "best") -> str:
        """The model file: ``model_file`` if given, else ``best.keras`` or ``last.keras``."""
        return self.model_file or os.path.join(self.path, checkpoint_file(which))

    def model(self, which: str = "best", *, inference: bool = True, precision: str | None = None) -> keras.Model:
        """``best.keras`` or ``last.keras``; see :func:`load_model`."""
        path = self.model_path(which)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path!r} is missing: has the run in {self.path!r} finished an epoch?")
        return load_model(path, inference=inference, precision=precision)

    def images(self, split: str, limit: int | None = None):
        """A split of the recipe's data (its fallback when the source cannot be downloaded), class-balanced to ``limit``."""
        if limit is None:
            return self.recipe.load_images(split)
        from pcw_keras.recipes import load

        key = "data.limit" if split == "train" else "data.test_limit"
        return load(self._recipe_path, **{**self._overrides, key: limit}).load_images(split)

    def test_images(self):
        return self.images("test")

    @property
    def results(self) -> dict | None:
        """``results.json`` (None before the run is evaluated)."""
        return read_results(self.path)

    def write_json(self, name: str, payload: dict) -> str:
        """Writes ``payload`` to ``name`` in the run directory, atomically; returns the path."""
        path = os.path.join(self.path, name)
        io.write_json_atomic(path, payload)
        return path

    def default_out(self, name: str) -> str:
        """``RUN_DIR/name``, or ``<model>-name`` beside a ``model_file``."""
        if self.model_file:
            return f"{os.path.splitext(self.model_file)[0]}-{name}"
        return os.path.join(self.path, name)


class ModelFile:
    """A model file that ``pcw train`` did not write: its input description comes from the caller.

    Parameters
    ----------
    path : path
        A ``.keras`` file (a SavedModel directory is refused when its model is loaded).
    preprocess : str
        How the model wants its pixels, one of :data:`pcw_keras.normalization.PREPROCESS`.
    images : str, optional
        Where probe images come from (a folder, ``.tar.gz`` or ``.npz``; see
        :func:`pcw_keras.data.load_split`); default ``cifar10-mini``.
    input_size : int, optional
        The square input size, for a model whose input shape leaves it open.
    task : str
        What the outputs mean: ``"features"`` (a model of its own: scored by
        agreement with its unattacked self), ``"location"``, ``"image"`` or
        ``"classification"``.
    grid : int, optional
        Canvas cells per side (default: input size / 32).
    """

    def __init__(self, path: str | os.PathLike, *, preprocess: str = "cifar", images: str | None = None,
                 input_size: int | None = None, task: str = "features", grid: int | None = None):
        self.path = self.origin = os.fspath(path)
        self.normalization = Normalization.named(preprocess)
        self.source = images or "cifar10-mini"
        self.input_size = input_size
        self.task = task
        self.grid = grid
        self.recipe = None
        self._model: keras.Model | None = None

    def model(self, which: str = "best", *, inference: bool = True, precision: str | None = None) -> keras.Model:
        if self._model is None:  # loaded once; each call makes its own inference form
            self._model = _with_input_size(load_model(self.path, inference=inference), self.input_size)
        return plain_model(self._model, precision) if inference and precision is not None else self._model

    def images(self, split: str, limit: int | None = None):
        from pcw_keras.data import load_split

        return load_split(self.source, split, limit=limit)

    def test_images(self):
        return self.images("test")

    def default_out(self, name: str) -> str:
        stem = os.path.splitext(os.path.normpath(self.path))[0]
        return f"{stem}-{name}"


def _with_input_size(model: keras.Model, size: int | None) -> keras.Model:
    """``model`` itself, or rebuilt on a fixed ``size`` x ``size`` input when its shape leaves the size open."""
    shape = tuple(model.inputs[0].shape)
    if size is None:
        if None in shape[1:3]:
            raise ValueError(f"The model's input shape {shape} leaves the image size open: pass input_size (CLI: --input-size).")
        return model
    if shape[1:3] == (size, size):
        return model
    if None not in shape[1:3]:
        raise ValueError(f"The model takes {shape[1]}x{shape[2]} inputs. Received: input_size={size}")
    # A clone on the fixed input keeps every layer at the top level, by name (a nested call would hide them).
    clone = keras.models.clone_model(model, input_tensors=keras.Input(shape=(size, size, shape[3]), dtype=model.inputs[0].dtype))
    clone.set_weights(model.get_weights())
    return clone


def open_model(
    target: str | os.PathLike,
    *,
    preprocess: str | None = None,
    images: str | None = None,
    input_size: int | None = None,
    task: str | None = None,
    grid: int | None = None,
    **overrides,
) -> Run | ModelFile:
    """A :class:`Run` for a run directory (or a ``.keras`` file inside one), else a :class:`ModelFile`.

    Raises
    ------
    FileNotFoundError
        Nothing at ``target``.
    ValueError
        ``target`` is a folder that is neither a run directory nor a
        SavedModel, or a file that is not ``.keras``; or a bad ``preprocess``.
    """
    target = os.fspath(target)
    if not os.path.exists(target):
        raise FileNotFoundError(f"No run directory or model at {target!r}.")
    if os.path.isdir(target) and os.path.isfile(os.path.join(target, RECIPE_FILE)):
        return Run(target, **overrides)
    beside = os.path.dirname(os.path.abspath(target))
    if os.path.isfile(target) and target.endswith(".keras") and os.path.isfile(os.path.join(beside, RECIPE_FILE)):
        return Run(beside, model_file=target, **overrides)
    if os.path.isdir(target) and not os.path.isfile(os.path.join(target, "saved_model.pb")):
        raise ValueError(f"{target!r} is neither a run directory (no {RECIPE_FILE}) nor a SavedModel (no saved_model.pb).")
    return ModelFile(target, preprocess=preprocess or "cifar", images=images, input_size=input_size,
                     task=task or "features", grid=grid)


def export_source(
    source: str | os.PathLike | keras.Model,
    *,
    recipe=None,
    checkpoint: str = "best",
    calibration: str | None = None,
    preprocess: str | None = None,
    input_size: int | None = None,
):
    """What to export, resolved for :func:`pcw_keras.export.export_model`: the plain float32 model and its check data.

    A training wrapper (AugShift's two-view trainer) gives its classifier,
    and a mixed-precision model its float32 copy (same weights), which the
    export formats serve or quantize. A run's model is checked on its
    recipe's test split; any other model on ``recipe``'s, else on the
    ``calibration`` images; a SavedModel directory on the ``calibration``
    images (:func:`pcw_keras.export.source.load_saved_model`).

    Parameters
    ----------
    source : path or keras.Model
        A run directory (its ``best.keras`` or ``last.keras``), a ``.keras``
        file inside one, any ``.keras`` file (with ``calibration``), a
        SavedModel directory (with ``calibration``), or an in-memory model
        (with ``recipe`` or ``calibration``).
    recipe : str, path or Recipe, optional
        A recipe whose test split checks a model that is not in a run directory.
    checkpoint : {"best", "last"}
        Which model of a run directory.
    calibration : str, optional
        Images (folder, ``.tar.gz``, ``.npz``) that check and calibrate a
        model of no recipe or a SavedModel; they are resized to its input size.
    preprocess : str, optional
        How such a model wants its pixels (:data:`pcw_keras.normalization.PREPROCESS`;
        default ``cifar``, or what a SavedModel's ``export_report.json`` records).
    input_size : int, optional
        Its input size, when its input shape leaves it open (not for a SavedModel).

    Returns
    -------
    ExportSource or SavedModelSource

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist, or a run directory lacks the checkpoint.
    ValueError
        ``source`` is not a model; a model of no run and no recipe, or a
        SavedModel, has no ``calibration``; or a SavedModel with a ``recipe``
        or ``input_size``.
    """
    from pcw_keras.export.savedmodel import is_saved_model
    from pcw_keras.export.source import ExportSource, load_saved_model

    checkpoint_file(checkpoint)  # validates it
    if not isinstance(source, keras.Model) and is_saved_model(source):
        if recipe is not None or input_size is not None:
            raise ValueError(f"{os.fspath(source)!r} is a SavedModel: it is checked on calibration images at its own "
                             f"input size. Received: recipe={recipe!r}, input_size={input_size!r}")
        return load_saved_model(source, calibration=calibration, preprocess=preprocess)
    if isinstance(source, keras.Model):
        opened, model, origin = None, plain_model(source), f"<in-memory model {source.name!r}>"
    else:
        opened = open_model(source, preprocess=preprocess, input_size=input_size)
        model, origin = opened.model(checkpoint), opened.origin
    if isinstance(opened, Run) or recipe is not None:
        from pcw_keras.recipes import Recipe, load

        if isinstance(opened, Run):
            recipe, images = opened.recipe, opened.images
        else:
            recipe = recipe if isinstance(recipe, Recipe) else load(recipe)
            images = recipe.load_images
        return ExportSource(model=model, normalization=CIFAR, kind="canvas" if recipe.is_canvas else "images",
                            labels=output_labels(recipe, images("test").class_names), origin=origin,
                            name=recipe.name, task=dict(recipe["task"]), images=images)
    if calibration is None:
        raise ValueError(
            f"{origin} comes with no recipe, so its export is checked and calibrated on images you give: "
            "pass calibration= (CLI: --calibration FOLDER|TARBALL|NPZ), or a run directory."
        )
    normalization = opened.normalization if isinstance(opened, ModelFile) else Normalization.named(preprocess or "cifar")
    outputs = int(model.outputs[0].shape[-1])
    return ExportSource(model=model, normalization=normalization, kind="calibration",
                        labels=[f"output {k}" for k in range(outputs)], origin=origin,
                        name=os.path.splitext(os.path.basename(os.path.normpath(origin)))[0],
                        task={"kind": "model"}, calibration=calibration)


def export(
    source: str | os.PathLike | keras.Model,
    out: str | os.PathLike,
    *,
    recipe=None,
    checkpoint: str = "best",
    calibration: str | None = None,
    preprocess: str | None = None,
    input_size: int | None = None,
    overwrite: bool = False,
    verbose: bool = True,
    **options,
) -> dict:
    """Exports ``source`` (what :func:`export_source` takes) to ``out``: :func:`pcw_keras.export.export_model` on it.

    ``options`` are the fields of :class:`pcw_keras.export.ExportOptions`
    (``format``, ``quantize``, ...), validated before anything is loaded.

    Example
    -------
    >>> report = export("runs/location-3x3-gapnet", "exports/gapnet-int8", quantize="int8")  # doctest: +SKIP
    >>> report["check"]["outcome"]  # doctest: +SKIP
    'passed'
    """
    from pcw_keras.export import ExportOptions, export_model
    from pcw_keras.io import check_destination

    export_options = ExportOptions(**options)
    check_destination(out, overwrite)
    resolved = export_source(source, recipe=recipe, checkpoint=checkpoint, calibration=calibration,
                             preprocess=preprocess, input_size=input_size)
    return export_model(resolved, out, export_options, overwrite=overwrite, verbose=verbose)
