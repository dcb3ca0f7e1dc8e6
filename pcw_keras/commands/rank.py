"""``pcw rank``: which channels of a trained model encode position (JSON ranking + PNG)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import click

METHODS = ("canvas", "mirror")
TASKS = ("location", "image", "classification")
CANVAS_TASKS = ("location", "image")


@dataclass
class Target:
    """What a RUN_DIR_or_MODEL argument resolves to."""

    model_path: str
    task: str
    grid: int | None
    source: str
    fallback: str | None
    seed: int
    out: str

    def load_model(self):
        import keras

        import pcw_keras.layers  # noqa: F401  (registers the package's layers for loading)

        if not os.path.isfile(self.model_path):
            raise click.ClickException(f"{self.model_path!r} is missing: has the run finished an epoch?")
        return keras.models.load_model(self.model_path, compile=False)  # only predicted with

    def load_images(self, split: str, limit: int | None):
        """A class-balanced subset of one split (the recipe's fallback source when the first cannot be downloaded)."""
        from pcw_keras.data import SourceUnavailable, load_split

        try:
            return load_split(self.source, split, limit=limit, seed=self.seed)
        except SourceUnavailable:
            if not self.fallback:
                raise
            click.echo(f"pcw: {self.source!r} cannot be downloaded here; using {self.fallback!r} instead.")
            return load_split(self.fallback, split, limit=limit, seed=self.seed)


def resolve_target(target: str, which: str, data: str | None, task: str | None, grid: int | None, out: str | None) -> Target:
    """A run directory (its recipe gives task, grid and data) or a ``.keras`` file (options give them)."""
    from pcw_keras.training.runner import load_run_recipe

    if os.path.isdir(target):
        try:
            recipe = load_run_recipe(target)
        except (ValueError, FileNotFoundError) as error:
            raise click.BadParameter(str(error), param_hint="RUN_DIR_or_MODEL") from None
        kind = recipe["task"]["kind"]
        return Target(
            model_path=os.path.join(target, f"{which}.keras"),
            task=task or kind,
            grid=grid or (recipe["task"]["grid"] if kind in CANVAS_TASKS else None),
            source=data or recipe["data"]["source"],
            fallback=recipe["data"].get("fallback"),
            seed=recipe["training"]["seed"],
            out=out or os.path.join(target, "channels"),
        )
    if target.endswith(".keras") and os.path.isfile(target):
        stem = os.path.splitext(target)[0]
        return Target(target, task or "location", grid, data or "cifar10-mini", None, 0, out or f"{stem}-channels")
    raise click.BadParameter(f"expected a run directory or a .keras file. Received: {target!r}", param_hint="RUN_DIR_or_MODEL")


def ranking_path(out: str, method: str) -> str:
    return os.path.join(out, f"ranking_{method}.json")


def compute_ranking(target: Target, model, method: str, layer: str | None, limit: int, batch_size: int, verbose: bool = True):
    """Ranks ``model``'s channels on ``limit`` training images of the target's data."""
    from pcw_keras.evaluation.position_channels import rank_position_channels

    if method == "canvas" and target.task not in CANVAS_TASKS:
        raise click.UsageError(f"--method canvas needs a canvas task (location or image). Received: task={target.task!r}")
    images = target.load_images("train", limit)
    grid = target.grid if target.task in CANVAS_TASKS else None
    if method == "mirror" and target.task in CANVAS_TASKS and grid is None:
        from pcw_keras.evaluation.position_channels import infer_grid

        grid = infer_grid(model, images.images.shape[2], None)
    return rank_position_channels(
        model, images, layer=layer, method=method, grid=grid, batch_size=batch_size, seed=target.seed, verbose=verbose
    )


COMMON_OPTIONS = [
    click.option("--which", type=click.Choice(["best", "last"]), default="best", show_default=True,
                 help="Which model of a run directory."),
    click.option("--data", "data", metavar="SOURCE", help="Data source (default: the run's recipe's; cifar10-mini for a .keras file)."),
    click.option("--task", type=click.Choice(TASKS), help="Task of a .keras file (default: location; a run's recipe says it)."),
    click.option("--grid", type=click.IntRange(min=1), help="Canvas cells per side (default: the recipe's, or input width / 32)."),
    click.option("--layer", help="Layer to rank (default: stage4, else pool; 4-D outputs are averaged over space)."),
    click.option("--method", type=click.Choice(METHODS), help="canvas (default for canvas tasks) or mirror (the paper's; default otherwise)."),
    click.option("--rank-limit", type=click.IntRange(min=1), default=200, show_default=True,
                 help="Training images used for the ranking (class-balanced subset)."),
    click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True),
    click.option("--out", "out", type=click.Path(file_okay=False),
                 help="Output folder (default: RUN_DIR/channels, or MODEL-channels beside a .keras file)."),
]


def common_options(function):
    for option in reversed(COMMON_OPTIONS):
        function = option(function)
    return function


def default_method(task: str, method: str | None) -> str:
    return method or ("canvas" if task in CANVAS_TASKS else "mirror")


@click.command("rank")
@click.argument("target", metavar="RUN_DIR_or_MODEL")
@common_options
@click.option("--show", type=click.IntRange(min=1), default=10, show_default=True, help="Channels to print and mark in the plot.")
def command(target, which, data, task, grid, layer, method, rank_limit, batch_size, out, show) -> None:
    """Rank the channels of RUN_DIR_or_MODEL by how much they encode position.

    canvas: the same training images placed in every cell; a channel's score
    is the share of its pooled value's variance explained by the cell (1: pure
    position, 0: blind to it), plus per-cell rankings. mirror (the paper's):
    mean |f(x) - f(mirror x)|, plus left/right-specific rankings. Writes
    ranking_<method>.json (ordered channels and scores per ranking) and
    ranking_<method>.png (score bars; cells x top channels heat map).

    \b
    Example:
      pcw rank runs/location-3x3-gapnet
      pcw rank model.keras --task location --grid 3 --method mirror --layer stage3
    """
    resolved = resolve_target(target, which, data, task, grid, out)
    method = default_method(resolved.task, method)
    model = resolved.load_model()
    try:
        ranking = compute_ranking(resolved, model, method, layer, rank_limit, batch_size)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    json_path = ranking.save_json(ranking_path(resolved.out, method))
    png_path = ranking.save_plot(os.path.splitext(json_path)[0] + ".png", top=show)
    overall = ranking.rankings["overall"]
    top = ", ".join(f"{c} ({s:.3f})" for c, s in zip(overall["channels"][:show], overall["scores"][:show]))
    click.echo(f"{method} ranking of `{ranking.layer}` ({ranking.num_channels} channels, {ranking.samples} images); top {show}: {top}")
    click.echo(f"Written: {json_path}, {png_path}")
