"""``pcw consistency`` (also ``pcw evaluate consistency``): shift consistency of a run or a model file."""
from __future__ import annotations

import os

import click

from pcw_keras.choices import FILLS, INFERENCE_PRECISIONS, PREPROCESS
from pcw_keras.commands.rank import PRECISION_HELP

RESULT_FILE = "consistency.json"
CURVE_CSV = "consistency_curve.csv"
CURVE_PNG = "consistency_curve.png"


def _resolve(target: str, which: str, data: str | None, limit: int | None, seed: int, preprocess: str | None,
             precision: str | None):
    """``(model, its path, test images, label, normalisation)`` from a run, a model file or a ``.tflite`` file.

    A Keras model comes in its inference form in ``precision`` (default ``auto``); an export runs as it was
    exported, so a ``precision`` for it is refused.
    """
    from pcw_keras.data import load_split
    from pcw_keras.runs import Run, open_model

    exported = target.endswith(".tflite") or os.path.isfile(os.path.join(target, "saved_model.pb"))
    if exported:
        from pcw_keras.export.served import SavedModelClassifier, TFLiteClassifier

        if not data:
            raise click.UsageError("An exported model needs --data SOURCE (the test split to shift).")
        if precision is not None:
            raise click.UsageError(f"An export runs in the precision it was exported in: --precision is for .keras "
                                   f"models and runs. Received: --precision {precision} for {target!r}")
        classifier = TFLiteClassifier(target) if target.endswith(".tflite") else SavedModelClassifier(target)
        return classifier, target, load_split(data, "test", limit=limit, seed=seed), classifier.name, classifier.normalization
    source = open_model(target, preprocess=preprocess, **{"data.source": data, "data.test_limit": limit})
    if isinstance(source, Run):
        if source.recipe.is_canvas:
            raise click.UsageError(
                f"{target!r} is a run of the canvas task {source.task!r}; consistency is measured "
                "on classification runs (task.kind: classification)."
            )
        return (source.model(which, precision=precision or "auto"), source.model_path(which), source.test_images(),
                source.recipe.name, source.normalization)
    if not data:
        raise click.UsageError("A model file needs --data SOURCE (the test split to shift).")
    name = os.path.splitext(os.path.basename(os.path.normpath(target)))[0]
    return source.model(precision=precision or "auto"), target, load_split(data, "test", limit=limit, seed=seed), name, source.normalization


@click.command("consistency")
@click.argument("target", metavar="MODEL")
@click.option("--which", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Which model of a run directory.")
@click.option("--data", "--images", "data", metavar="SOURCE", help="Test data (default for a run: its recipe's; required for a model file).")
@click.option("--preprocess", type=click.Choice(PREPROCESS), default=None,
              help="How a .keras file wants its pixels [default: cifar]; an export's report says it.")
@click.option("--limit", type=click.IntRange(min=1), help="Class-balanced subset of the test split.")
@click.option("--max-shift", type=click.IntRange(min=1), default=4, show_default=True,
              help="Largest shift (pixels per axis) of the two random shifts.")
@click.option("--passes", type=click.IntRange(min=1), default=5, show_default=True, help="Draws of two shifts per image.")
@click.option("--curve-max-shift", type=click.IntRange(min=1), default=8, show_default=True,
              help="Largest distance of the consistency-versus-shift curve.")
@click.option("--fill", type=click.Choice(FILLS), default="zero", show_default=True, help="What enters at the border.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--precision", type=click.Choice(INFERENCE_PRECISIONS), default=None,
              help=PRECISION_HELP + " [default: auto; an export runs as exported]")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the shifts.")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Folder for the results (default: the run directory or the model's folder).")
def command(target, which, data, preprocess, limit, max_shift, passes, curve_max_shift, fill, batch_size, precision, seed,
            out) -> None:
    """Shift consistency of MODEL: how often two random shifts of a test image get the same class.

    MODEL is a classification run directory, a .keras file, or an export:
    a SavedModel directory or a .tflite file (float32 or int8, through the
    LiteRT interpreter), whose normalisation comes from the export_report.json
    beside it. The same images and shifts score every one of them alike.

    Zhang (2019)'s protocol adapted to 32x32 images (pad, two different random
    crops, several passes; see pcw_keras.evaluation.consistency), the
    circular consistency (the same offsets with the opposite sign as
    circular shifts, np.roll: the same distribution of shifts; an
    APS network with circular padding keeps 100%), the accuracy alongside,
    and the consistency-versus-shift-distance curve.
    Writes consistency.json, consistency_curve.csv and consistency_curve.png.

    \b
    Example:
      pcw evaluate consistency runs/cifar10-resnet18-augshift
      pcw consistency model.keras --data ../shared/data/cifar10-jpeg.tar.gz --limit 2000
      pcw evaluate consistency exports/cls/model.tflite --data ../shared/data/cifar10-jpeg.tar.gz --limit 2000
    """
    from pcw_keras.evaluation import consistency, consistency_curve, plot_curves, write_curves_csv

    try:
        model, model_path, test_images, label, normalization = _resolve(target, which, data, limit, seed, preprocess,
                                                                             precision)
        out = out or os.path.dirname(os.path.abspath(model_path))
        os.makedirs(out, exist_ok=True)
        click.echo(f"pcw: consistency of {model_path} on {len(test_images)} test images")
        statistics = {"mean": normalization.mean, "std": normalization.std}
        scores = consistency(model, test_images, max_shift=max_shift, passes=passes, fill=fill, batch_size=batch_size,
                             seed=seed, **statistics)
        curve = consistency_curve(model, test_images, max_shift=curve_max_shift, fill=fill, batch_size=batch_size,
                                  seed=seed, **statistics)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    from pcw_keras.io import write_json_atomic

    write_json_atomic(os.path.join(out, RESULT_FILE), {"model": model_path, **scores, "curve": curve})
    write_curves_csv({label: curve}, os.path.join(out, CURVE_CSV))
    plot_curves({label: curve}, os.path.join(out, CURVE_PNG))
    click.echo(
        f"{label}: consistency {100 * scores['consistency']:.1f}% (shifts up to {max_shift} px, {passes} passes), "
        f"circular consistency {100 * scores['circular_consistency']:.1f}% (the same offsets, opposite sign, as circular shifts), "
        f"accuracy {100 * scores['accuracy']:.1f}% unshifted, {100 * scores['accuracy_shifted']:.1f}% shifted. "
        f"Written to {out}/: {RESULT_FILE}, {CURVE_CSV}, {CURVE_PNG}"
    )
