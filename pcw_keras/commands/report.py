"""``pcw report``: rank every stage, attack the last one and (for a classifier) measure shift consistency, as one page."""
from __future__ import annotations

import click

from pcw_keras.choices import FILLS, INFERENCE_PRECISIONS
from pcw_keras.commands.attack import parse_ks
from pcw_keras.commands.rank import (
    METHODS,
    MODEL_OPTION_NAMES,
    PRECISION_HELP,
    compute_ranking,
    default_method,
    model_options,
    resolve_target,
)

DEFAULTS = {"rank_limit": 200, "limit": 100, "top": "5%,10%,25%,50%", "random_draws": 3, "passes": 5,
            "curve_max_shift": 8}
"""The measured amounts of a full report."""
QUICK = {"rank_limit": 32, "limit": 40, "top": "10%,50%", "random_draws": 2, "passes": 2, "curve_max_shift": 4}
"""Those of ``--quick`` (timed in docs/bench/report_quick_cpu.json, see :data:`QUICK_SECONDS`)."""
QUICK_SECONDS = 30
"""What ``--quick`` was measured under, from start to exit on a 2-core CPU, for each model of
``benchmarks/report_quick.py``: a canvas GAPNet run (96x96), a CIFAR ResNet-18 run (32x32) and
Keras' ResNet-50 at 96x96 as a classifier, all full width (tests/test_docs.py checks it against
docs/bench/report_quick_cpu.json)."""


def _amount(name: str) -> str:
    return f"[default: {DEFAULTS[name]}; --quick: {QUICK[name]}]"


@click.command("report")
@click.argument("target", metavar="MODEL")
@model_options
@click.option("--quick", is_flag=True, help=f"Fewer images, channel counts, draws and shifts: under {QUICK_SECONDS} s "
                                            "from start to exit on a 2-core CPU for a canvas GAPNet run (96x96), a "
                                            "CIFAR ResNet-18 run (32x32) and Keras' ResNet-50 classifier at 96x96, "
                                            "all full width (docs/bench/report_quick_cpu.json).")
@click.option("--layers", metavar="LAYER,LAYER,...",
              help="The stages to rank, input to output; the last one is attacked (default: stage1..stage4 of the "
                   "package's ResNets, else the last layer at each spatial size of the body).")
@click.option("--method", type=click.Choice(METHODS),
              help="canvas (default, but for classifiers) or mirror (the paper's; default for classifiers).")
@click.option("--rank-limit", type=click.IntRange(min=1), help="Training images each stage is ranked on " + _amount("rank_limit"))
@click.option("--limit", type=click.IntRange(min=1), help="Test images attacked and shifted " + _amount("limit"))
@click.option("--top", metavar="K,K,...", help="Channel counts switched off; N% is a share of the last stage's channels " + _amount("top"))
@click.option("--random-draws", type=click.IntRange(min=1), help="Random channel sets per k " + _amount("random_draws"))
@click.option("--max-shift", type=click.IntRange(min=1), default=4, show_default=True,
              help="Classifiers: the largest shift (pixels per axis) of the two random shifts.")
@click.option("--passes", type=click.IntRange(min=1), help="Classifiers: draws of two shifts per image " + _amount("passes"))
@click.option("--curve-max-shift", type=click.IntRange(min=1),
              help="Classifiers: the largest distance of the consistency curve " + _amount("curve_max_shift"))
@click.option("--fill", type=click.Choice(FILLS), default="zero", show_default=True, help="What enters at a shifted border.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Inputs per forward pass.")
@click.option("--precision", type=click.Choice(INFERENCE_PRECISIONS), default="auto", show_default=True, help=PRECISION_HELP)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the random channels and shifts.")
@click.option("--out", "out", type=click.Path(file_okay=False),
              help="The report folder (default: RUN_DIR/report, or MODEL-report beside a model file).")
@click.option("--overwrite", is_flag=True, help="Replace an existing report folder.")
def command(target, which, data, preprocess, input_size, task, grid, quick, layers, method, rank_limit, limit, top,
            random_draws, max_shift, passes, curve_max_shift, fill, batch_size, precision, seed, out, overwrite) -> None:
    """Write a report on MODEL: where it encodes position, and what that is worth.

    MODEL is a run directory or a .keras file (as for pcw rank; a model file
    of your own comes with --preprocess and --images, and --task
    classification if it classifies those images). The report folder gets:

    \b
      report.md, report.html  the page (the HTML is self-contained: open it from the disk)
      stages.png              each stage's channel ranking scores (the paper's layer study)
      ranking_<layer>.png     the last stage's ranking
      attack.png              the task metric with the top-k ranked channels of the
                              last stage off, against k random channels
      consistency_curve.png   classifiers: consistency against shift distance
      report.json, rankings/, attack.json, consistency.json, consistency_curve.csv
                              the raw results every figure is drawn from

    The page gives the model's facts (parameters, FLOPs, input, preprocessing)
    and the pcw command line behind each figure. Nothing appears at --out
    until the whole report is written.

    \b
    Example:
      pcw report runs/location-3x3-gapnet --quick
      pcw report mobilenet.keras --preprocess imagenet --images cifar10-jpeg.tar.gz --input-size 96
    """
    from pcw_keras.evaluation.model_layers import check_layer, stage_layers
    from pcw_keras.io import check_destination
    from pcw_keras.models.inference import resolve_precision
    from pcw_keras.report import ReportOptions, build_report

    amounts = {**(QUICK if quick else DEFAULTS), **{key: value for key, value in (
        ("rank_limit", rank_limit), ("limit", limit), ("top", top), ("random_draws", random_draws), ("passes", passes),
        ("curve_max_shift", curve_max_shift)) if value is not None}}
    resolved = resolve_target(target, which, data, task, grid, None, preprocess, input_size)
    out = out or resolved.source.default_out("report")
    try:
        check_destination(out, overwrite)
    except (FileExistsError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint="--out") from None
    method = default_method(resolved.task, method)
    precision = resolve_precision(precision)
    model = resolved.load_model(precision)
    try:
        stages = layers.split(",") if layers else stage_layers(model)
        for layer in stages:
            check_layer(model, layer)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--layers") from None
    ks = parse_ks(amounts["top"], int(model.get_layer(stages[-1]).output.shape[-1]))
    try:
        test_images = resolved.load_images("test", amounts["limit"])
    except (ValueError, FileNotFoundError) as error:
        raise click.BadParameter(str(error), param_hint="--data") from None
    options = ReportOptions(method, tuple(stages), tuple(ks), amounts["rank_limit"], amounts["limit"],
                            amounts["random_draws"], max_shift, amounts["passes"], amounts["curve_max_shift"], fill,
                            batch_size, precision, seed)
    given = click.get_current_context().params
    completing = {name: given[name] for name in MODEL_OPTION_NAMES}  # in their order on the command lines
    if resolved.source.recipe is None:
        completing["which"] = None  # a model file has one model
    try:
        build_report(resolved, model, resolved.source.model(which), lambda layer: compute_ranking(
            resolved, model, method, layer, options.rank_limit, batch_size), test_images, options, out, argument=target,
            model_options=completing, overwrite=overwrite, echo=click.echo)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Written to {out}/: report.md, report.html (open it in a browser), the figures and their raw files.")
