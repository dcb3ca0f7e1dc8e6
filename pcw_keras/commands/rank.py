"""``pcw rank``: which channels of a trained model encode position (JSON ranking + PNG)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import click

from pcw_keras.choices import CANVAS_TASKS, INFERENCE_PRECISIONS, PREPROCESS

PRECISION_HELP = ("The model's inference form: BatchNorm folded into the convolutions, weights in float32 or bfloat16. "
                  "auto: bfloat16 where it is faster (a GPU; a CPU with bfloat16 instructions under TensorFlow), "
                  "else float32.")

METHODS = ("canvas", "mirror")
TASKS = (*CANVAS_TASKS, "classification", "features")


@dataclass
class Target:
    """What a MODEL argument resolves to: the opened run or model file, and the options that complete it."""

    source: object  # pcw_keras.runs.Run or ModelFile
    which: str
    task: str
    grid: int | None
    seed: int
    out: str

    @property
    def normalization(self):
        return self.source.normalization

    def load_model(self, precision: str = "auto"):
        """The model in its inference form in ``precision`` (see ``--precision``)."""
        try:
            return self.source.model(self.which, precision=precision)
        except (ValueError, FileNotFoundError) as error:
            raise click.ClickException(str(error)) from None

    def load_images(self, split: str, limit: int | None):
        """A class-balanced subset of one split (a run's recipe falls back to its fallback source)."""
        return self.source.images(split, limit)


def resolve_target(target: str, which: str, images: str | None, task: str | None, grid: int | None, out: str | None,
                   preprocess: str | None = None, input_size: int | None = None) -> Target:
    """A run directory (its recipe gives task, grid and data) or a model file (the options give them)."""
    from pcw_keras.runs import Run, open_model

    try:
        source = open_model(target, preprocess=preprocess, images=images, input_size=input_size, task=task, grid=grid,
                            **{"data.source": images})
    except (ValueError, FileNotFoundError) as error:
        raise click.BadParameter(str(error), param_hint="MODEL") from None
    if isinstance(source, Run):
        return Target(source, which, task or source.task, grid or source.grid, source.recipe["training"]["seed"],
                      out or source.default_out("channels"))
    return Target(source, which, source.task, grid, 0, out or source.default_out("channels"))


def ranking_path(out: str, method: str, layer: str | None = None) -> str:
    """``OUT/ranking_<method>.json`` for the default layer, ``OUT/ranking_<method>_<layer>.json`` for a named one."""
    from pcw_keras.evaluation.position_channels import ranking_filename

    return os.path.join(out, ranking_filename(method, layer))


def compute_ranking(target: Target, model, method: str, layer: str | None, limit: int, batch_size: int, verbose: bool = True):
    """Ranks ``model``'s channels on ``limit`` training images of the target's data."""
    from pcw_keras.evaluation.position_channels import rank_position_channels

    if method == "canvas" and target.task == "classification":
        raise click.UsageError("--method canvas needs a canvas task or a model of its own (location, image, features). "
                               "Received: task='classification'")
    images = target.load_images("train", limit)
    grid = target.grid if target.task in (*CANVAS_TASKS, "features") else None
    if method == "mirror" and target.task in CANVAS_TASKS and grid is None:
        from pcw_keras.evaluation.inputs import infer_grid

        grid = infer_grid(model, images.images.shape[2], None)
    return rank_position_channels(model, images, layer=layer, method=method, grid=grid, batch_size=batch_size,
                                  seed=target.seed, normalization=target.normalization, verbose=verbose)


MODEL_CLICK_OPTIONS = [
    click.option("--which", type=click.Choice(["best", "last"]), default="best", show_default=True,
                 help="Which model of a run directory."),
    click.option("--images", "--data", "data", metavar="FOLDER|TARBALL|NPZ",
                 help="Images to probe with (default: the run's recipe's data; cifar10-mini for a model file)."),
    click.option("--preprocess", type=click.Choice(PREPROCESS), default=None,
                 help="How a model file wants its pixels [default: cifar]; a run's recipe says it."),
    click.option("--input-size", type=click.IntRange(min=1), help="Input size of a model file whose input shape leaves it open."),
    click.option("--task", type=click.Choice(TASKS),
                 help="What a model file's outputs mean (default: features, a model of its own; a run's recipe says it)."),
    click.option("--grid", type=click.IntRange(min=1), help="Canvas cells per side (default: the recipe's, or input width / 32)."),
]
"""The options that complete MODEL (which checkpoint; a model file's images, pixels, input size, task and grid),
as click decorators: the one list of them (:data:`MODEL_OPTION_NAMES` are their parameter names)."""

COMMON_OPTIONS = [
    *MODEL_CLICK_OPTIONS,
    click.option("--layer", help="Layer to rank (default: stage4 or pool in our ResNets, else the last 4-D layer before "
                                 "global pooling; 4-D outputs are averaged over space)."),
    click.option("--method", type=click.Choice(METHODS),
                 help="canvas (default, but for classifiers) or mirror (the paper's; default for classifiers)."),
    click.option("--rank-limit", type=click.IntRange(min=1), default=200, show_default=True,
                 help="Training images used for the ranking (class-balanced subset)."),
    click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Inputs per forward pass."),
    click.option("--precision", type=click.Choice(INFERENCE_PRECISIONS), default="auto", show_default=True,
                 help=PRECISION_HELP),
    click.option("--out", "out", type=click.Path(file_okay=False),
                 help="Output folder (default: RUN_DIR/channels, or MODEL-channels beside a model file)."),
]


def common_options(function, options=COMMON_OPTIONS):
    """Adds ``options`` (default: those of ``pcw rank`` and ``pcw attack``) to a command function."""
    for option in reversed(options):
        function = option(function)
    return function


def model_options(function):
    """Adds the options that complete MODEL (:data:`MODEL_CLICK_OPTIONS`) to a command function."""
    return common_options(function, MODEL_CLICK_OPTIONS)


MODEL_OPTION_NAMES = tuple(param.name for param in click.command()(model_options(lambda **_: None)).params)
"""The parameter names of :data:`MODEL_CLICK_OPTIONS`, in their order: ``("which", "data", "preprocess", ...)``."""


def default_method(task: str, method: str | None) -> str:
    return method or ("mirror" if task == "classification" else "canvas")


@click.command("rank")
@click.argument("target", metavar="MODEL")
@common_options
@click.option("--show", type=click.IntRange(min=1), default=10, show_default=True, help="Channels to print and mark in the plot.")
def command(target, which, data, preprocess, input_size, task, grid, layer, method, rank_limit, batch_size, precision,
            out, show) -> None:
    """Rank the channels of MODEL by how much they encode position.

    MODEL is a run directory or a .keras file; a
    model file of your own comes with --preprocess and --images.

    canvas: the same training images placed in every cell; a channel's score
    is the share of its pooled value's variance explained by the cell (1: pure
    position, 0: blind to it), plus per-cell rankings. mirror (the paper's):
    mean |f(x) - f(mirror x)|, plus left/right-specific rankings. Writes
    ranking_<method>.json (ordered channels and scores per ranking) and
    ranking_<method>.png (score bars; cells x top channels heat map);
    ranking_<method>_<layer>.* for a --layer.

    \b
    Example:
      pcw rank runs/location-3x3-gapnet
      pcw rank resnet50.keras --preprocess imagenet --images cifar10-jpeg.tar.gz --layer conv4_block6_out
    """
    resolved = resolve_target(target, which, data, task, grid, out, preprocess, input_size)
    method = default_method(resolved.task, method)
    model = resolved.load_model(precision)
    try:
        ranking = compute_ranking(resolved, model, method, layer, rank_limit, batch_size)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    json_path = ranking.save_json(ranking_path(resolved.out, method, layer))
    png_path = ranking.save_plot(os.path.splitext(json_path)[0] + ".png", top=show)
    overall = ranking.rankings["overall"]
    top = ", ".join(f"{c} ({s:.3f})" for c, s in zip(overall["channels"][:show], overall["scores"][:show]))
    click.echo(f"{method} ranking of `{ranking.layer}` ({ranking.num_channels} channels, {ranking.samples} images); top {show}: {top}")
    click.echo(f"Written: {json_path}, {png_path}")
