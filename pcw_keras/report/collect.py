"""Run the package's analyses on one model and keep their raw results: the content of ``pcw report``.

Each analysis is the library function its own command calls, with the same
inputs, so that the command line written beside each figure
(:mod:`pcw_keras.report.command_lines`) gives the same numbers:

- the channel ranking of each stage (``pcw rank --layer``), saved as
  ``rankings/ranking_<method>_<layer>.json``;
- the attack on the last stage with that stage's ranking (``pcw attack``),
  saved as ``attack.json``;
- for a classifier, shift consistency and its curve over distance
  (``pcw evaluate consistency``), saved as ``consistency.json`` and
  ``consistency_curve.csv``.

``report.json`` holds the model's facts, the options and where each raw file
is; the figures and pages are drawn from these files alone
(:func:`pcw_keras.report.render`).
"""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

import keras
import numpy as np

from pcw_keras.evaluation.attacks import evaluate_attacks
from pcw_keras.evaluation.consistency import (
    consistency,
    consistency_curve,
    write_curves_csv,
)
from pcw_keras.evaluation.position_channels import ChannelRanking, ranking_filename
from pcw_keras.evaluation.task_metrics import attack_metric
from pcw_keras.io import write_json_atomic
from pcw_keras.machine import describe
from pcw_keras.models.flops import count_flops

if TYPE_CHECKING:
    from pcw_keras.data import ImageSet
    from pcw_keras.normalization import Normalization
    from pcw_keras.runs import ModelFile, Run

REPORT_FILE = "report.json"
RANKINGS_DIR = "rankings"
ATTACK_FILE = "attack.json"
CONSISTENCY_FILE = "consistency.json"
CURVE_CSV = "consistency_curve.csv"


class ModelTarget(Protocol):
    """What the report reads of a resolved MODEL (``pcw_keras.commands.rank.Target`` is one).

    Attributes
    ----------
    source : Run or ModelFile
        The opened run directory or model file.
    which : str
        Which model of a run directory (``"best"`` or ``"last"``).
    task : str
        What the model's outputs mean (``"location"``, ``"image"``, ``"classification"``, ``"features"``).
    grid : int or None
        Canvas cells per side.
    normalization : Normalization
        How the model wants its pixels.
    """

    source: Run | ModelFile
    which: str
    task: str
    grid: int | None

    @property
    def normalization(self) -> Normalization: ...


@dataclass(frozen=True)
class ReportOptions:
    """What ``pcw report`` measures, every value resolved (the command lines repeat them).

    Attributes
    ----------
    method : {"canvas", "mirror"}
        How channels are ranked (see :mod:`pcw_keras.evaluation.position_channels`).
    layers : tuple of str
        The stages ranked, input to output; the last one is attacked.
    ks : tuple of int
        Channel counts switched off in the attack.
    rank_limit, limit : int
        Training images ranked with; test images attacked and shifted.
    random_draws : int
        Random channel sets per ``k``.
    max_shift, passes, curve_max_shift : int
        Shift consistency: largest shift, draws per image, and the curve's
        largest distance.
    fill : str
        What enters at the border of a shifted image.
    batch_size : int
    precision : {"float32", "bfloat16"}
        The inference form's precision.
    seed : int
        Seed of the random channel draws and of the shifts.
    """

    method: str
    layers: tuple[str, ...]
    ks: tuple[int, ...]
    rank_limit: int
    limit: int
    random_draws: int
    max_shift: int
    passes: int
    curve_max_shift: int
    fill: str
    batch_size: int
    precision: str
    seed: int


def ranking_file(method: str, layer: str) -> str:
    """Where a stage's ranking lies in the report folder: ``pcw rank --layer``'s own file name."""
    return os.path.join(RANKINGS_DIR, ranking_filename(method, layer))


def model_facts(target: ModelTarget, trained: keras.Model, argument: str) -> dict:
    """Name, origin, task, input, parameters, FLOPs, preprocessing and (for a run) recipe and test scores."""
    source = target.source
    recipe = getattr(source, "recipe", None)
    normalization = target.normalization
    facts = {
        "argument": argument,
        "kind": "run" if recipe is not None else "model file",
        "name": recipe.name if recipe is not None else os.path.splitext(os.path.basename(os.path.normpath(argument)))[0],
        "which": target.which if recipe is not None else None,
        "task": target.task,
        "grid": target.grid,
        "input_shape": [int(d) for d in trained.inputs[0].shape[1:]],
        "parameters": int(trained.count_params()),
        "flops": int(count_flops(trained)),
        "preprocess": {"name": normalization.name, "mean": list(normalization.mean), "std": list(normalization.std)},
        "data": recipe["data"]["source"] if recipe is not None else source.source,
    }
    results = getattr(source, "results", None)
    if results:
        facts["test_accuracy"] = {key: results[key] for key in ("test_accuracy_best", "test_accuracy_last", "chance")
                                  if key in results}
    return facts


def _summary(ranking: ChannelRanking, file: str) -> dict:
    scores = np.asarray(ranking.rankings["overall"]["scores"], "float64")
    return {"layer": ranking.layer, "file": file, "num_channels": ranking.num_channels, "samples": ranking.samples,
            "median": float(np.median(scores)), "q90": float(np.quantile(scores, 0.9)), "max": float(scores.max()),
            "top_channels": ranking.rankings["overall"]["channels"][:5]}


def _check_sizes(model: keras.Model, images) -> None:
    """A classifier's test images must be of its input size: consistency shifts them as they are."""
    shape = tuple(model.inputs[0].shape[1:3])
    if None not in shape and tuple(images.images.shape[1:3]) != shape:
        raise ValueError(f"Shift consistency shifts test images of the model's input size {shape[0]}x{shape[1]}; "
                         f"the data's are {images.images.shape[1]}x{images.images.shape[2]}: give data of that size.")


def _consistency(model, images, options: ReportOptions, normalization, folder: str, label: str) -> dict:
    statistics = {"mean": normalization.mean, "std": normalization.std}
    common = {"fill": options.fill, "batch_size": options.batch_size, "seed": options.seed, **statistics}
    scores = consistency(model, images, max_shift=options.max_shift, passes=options.passes, **common)
    curve = consistency_curve(model, images, max_shift=options.curve_max_shift, **common)
    write_json_atomic(os.path.join(folder, CONSISTENCY_FILE), {"model": label, **scores, "curve": curve})
    write_curves_csv({label: curve}, os.path.join(folder, CURVE_CSV))
    return {"file": CONSISTENCY_FILE, "csv": CURVE_CSV, **{key: scores[key] for key in (
        "consistency", "circular_consistency", "accuracy", "accuracy_shifted")}}


def collect(
    target: ModelTarget,
    model: keras.Model,
    trained: keras.Model,
    rank: Callable[[str], ChannelRanking],
    test_images: ImageSet,
    options: ReportOptions,
    folder: str,
    *,
    argument: str,
    model_options: dict,
    out: str,
    echo: Callable[[str], None] = print,
) -> dict:
    """Runs every analysis on ``model`` and writes the raw files and ``report.json`` into ``folder``.

    Parameters
    ----------
    target : ModelTarget
        The resolved MODEL (``pcw_keras.commands.rank.Target``): its source
        (a run or a model file), checkpoint, task, grid and normalisation.
    model : keras.Model
        The model in its inference form (what is measured).
    trained : keras.Model
        The float32 model as saved (its parameters and FLOPs are reported).
    rank : callable
        ``rank(layer) -> ChannelRanking``: ``pcw rank``'s ranking of a layer.
    test_images : pcw_keras.data.ImageSet
        The target's test images (``options.limit`` of them) that the attack and the shifts score.
    options : ReportOptions
    folder : str
        An empty folder to write into.
    argument : str
        MODEL as the user wrote it.
    model_options : dict
        The options that complete MODEL, ``{name: value}`` in the order the command lines write them
        (:data:`pcw_keras.commands.rank.MODEL_OPTION_NAMES`: ``which``, ``data``, ``preprocess`` ...;
        None where not given).
    out : str
        Where the report will be (the command lines write beside it).
    echo : callable
        Where the progress lines go.

    Returns
    -------
    dict
        The content of ``report.json``.
    """
    began = time.perf_counter()
    classifier = target.task == "classification"
    steps = len(options.layers) + 1 + classifier
    if classifier:
        _check_sizes(model, test_images)
    facts = model_facts(target, trained, argument)
    stages, ranking = [], None
    for step, layer in enumerate(options.layers, 1):
        echo(f"pcw report: [{step}/{steps}] {options.method} ranking of `{layer}` on {options.rank_limit} training images")
        ranking = rank(layer)
        path = ranking.save_json(os.path.join(folder, ranking_file(options.method, layer)))
        stages.append(_summary(ranking, os.path.relpath(path, folder)))
    echo(f"pcw report: [{len(stages) + 1}/{steps}] attack on `{ranking.layer}`: top-k versus k random channels off, "
         f"k = {', '.join(map(str, options.ks))}, on {len(test_images)} test images")
    metric = attack_metric(target.task, model, test_images, grid=target.grid, batch_size=options.batch_size,
                           seed=options.seed, normalization=target.normalization)
    attack = evaluate_attacks(model, metric, ranking, list(options.ks), random_draws=options.random_draws,
                              seed=options.seed)
    attack.save_json(os.path.join(folder, ATTACK_FILE))
    report = {
        "model": facts,
        "options": {**asdict(options), "layers": list(options.layers), "ks": list(options.ks)},
        "model_options": model_options,
        "out": out,
        "stages": stages,
        "attack": {"file": ATTACK_FILE, "layer": attack.layer, "metric": attack.metric,
                   "baseline": attack.baseline[attack.metric]},
        "consistency": None,
    }
    if classifier:
        echo(f"pcw report: [{steps}/{steps}] shift consistency and its curve on {len(test_images)} test images")
        report["consistency"] = _consistency(model, test_images, options, target.normalization, folder, facts["name"])
    report["environment"] = {"backend": keras.backend.backend(), "keras": keras.__version__,
                             "python": platform.python_version(), **describe()}
    report["seconds"] = round(time.perf_counter() - began, 1)
    write_json_atomic(os.path.join(folder, REPORT_FILE), report)
    return report
