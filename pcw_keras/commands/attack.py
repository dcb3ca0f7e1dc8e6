"""``pcw attack``: switch off the top-k position channels versus k random ones, and measure the task."""
from __future__ import annotations

import os

import click

from pcw_keras.choices import CANVAS_TASKS
from pcw_keras.commands.rank import common_options, compute_ranking, default_method, ranking_path, resolve_target


def parse_ks(text: str, num_channels: int) -> list[int]:
    """``"10,50,5%"`` -> channel counts; a percentage is of ``num_channels``, rounded, at least 1."""
    ks = []
    for part in text.split(","):
        part = part.strip()
        try:
            k = max(1, round(float(part[:-1]) / 100 * num_channels)) if part.endswith("%") else int(part)
        except ValueError:
            raise click.BadParameter(f"expected counts or percentages like 10,50,5%. Received: {text!r}", param_hint="--top") from None
        if not 1 <= k <= num_channels:
            raise click.BadParameter(f"each k must lie in [1, {num_channels}] (the layer's channels). Received: {part!r}", param_hint="--top")
        ks.append(k)
    return sorted(set(ks))


def parse_region(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise click.BadParameter(f"expected cell indices like 0,1,2. Received: {text!r}", param_hint="--region") from None


@click.command("attack")
@click.argument("target", metavar="MODEL")
@common_options
@click.option("--top", "top", default="5%", show_default=True, metavar="K,K,...",
              help="Channel counts to switch off; N% is a share of the layer's channels.")
@click.option("--random-draws", type=click.IntRange(min=1), default=5, show_default=True, help="Random channel sets per k.")
@click.option("--ranking", "ranking_file", type=click.Path(exists=True, dir_okay=False),
              help="A ranking JSON from `pcw rank` (default: OUT/ranking_<method>[_<layer>].json if present, else ranked now).")
@click.option("--ranking-name", default="overall", show_default=True,
              help="Which ranking of the file: overall, position_std, cell_K, left, right.")
@click.option("--region", metavar="CELLS", help="Canvas cells of a region attack, e.g. 0,1,2: scores them apart from the other cells.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True, help="Test images (class-balanced subset).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the random channel draws.")
def command(target, which, data, preprocess, input_size, task, grid, layer, method, rank_limit, batch_size, precision,
            out, top,
            random_draws, ranking_file, ranking_name, region, limit, seed) -> None:
    """Switch off the top-k ranked channels of MODEL versus k random ones, for each k.

    MODEL is a run directory or a .keras file (see
    pcw rank). Canvas tasks are scored with every test image placed in every
    cell (the accuracy is the mean over cells); classification by top-1
    accuracy; a model of its own (task features) by how often its top-1 on
    test canvases stays what it was (agreement). With
    --region (canvas), the accuracy of patches in those cells is reported
    apart from the others; rank the region's channels with --ranking-name
    cell_K. Writes attack.json, attack.md (the table) and attack.png (metric
    versus k) into the output folder (attack_<layer>_<ranking-name>_region<cells>.*
    for a --layer, other rankings and regions).

    \b
    Example:
      pcw attack runs/location-3x3-gapnet --top 5%,10%,25% --random-draws 5
      pcw attack runs/location-3x3-gapnet --top 1,5 --region 0 --ranking-name cell_0
    """
    from pcw_keras.io import write_text_atomic
    from pcw_keras.evaluation.attacks import evaluate_attacks
    from pcw_keras.evaluation.position_channels import ChannelRanking
    from pcw_keras.evaluation.task_metrics import attack_metric

    resolved = resolve_target(target, which, data, task, grid, out, preprocess, input_size)
    method = default_method(resolved.task, method)
    cells = parse_region(region)
    if cells is not None and resolved.task not in CANVAS_TASKS:
        raise click.UsageError(f"--region needs a canvas task (location or image). Received: task={resolved.task!r}")
    model = resolved.load_model(precision)
    try:
        stored = ranking_path(resolved.out, method, layer)
        ranking_file = ranking_file or (stored if os.path.isfile(stored) else None)
        if ranking_file:
            ranking = ChannelRanking.load_json(ranking_file)
            click.echo(f"Ranking: {ranking_file} ({ranking.method}, layer `{ranking.layer}`)")
        else:
            ranking = compute_ranking(resolved, model, method, layer, rank_limit, batch_size)
            ranking_file = ranking.save_json(stored)
            ranking.save_plot(os.path.splitext(ranking_file)[0] + ".png")
        if layer and layer != ranking.layer:
            raise click.UsageError(f"The ranking is of layer {ranking.layer!r}. Received: --layer {layer}")
        if ranking_name not in ranking.rankings:
            raise click.BadParameter(f"must be one of {list(ranking.rankings)}. Received: {ranking_name!r}", param_hint="--ranking-name")
        ks = parse_ks(top, ranking.num_channels)
        images = resolved.load_images("test", limit)
        metric = attack_metric(resolved.task, model, images, grid=resolved.grid, region=cells, batch_size=batch_size,
                               seed=seed, normalization=resolved.normalization)
        report = evaluate_attacks(model, metric, ranking, ks, ranking_name=ranking_name, random_draws=random_draws, seed=seed)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    stem = "attack" + (f"_{layer}" if layer else "") + ("" if ranking_name == "overall" else f"_{ranking_name}")
    stem += "" if cells is None else "_region" + "-".join(map(str, cells))
    json_path = report.save_json(os.path.join(resolved.out, f"{stem}.json"))
    keys = [report.metric] + (["loss"] if "loss" in report.baseline else [])
    if cells is not None:
        keys = [f"{key}_{where}" for key in keys for where in ("in_region", "elsewhere")]
    table = report.table(keys)
    md_path = os.path.join(resolved.out, f"{stem}.md")
    write_text_atomic(md_path, table + "\n")
    png_path = report.save_curve(os.path.join(resolved.out, f"{stem}.png"), keys=keys)
    click.echo(table)
    click.echo(f"Written: {json_path}, {md_path}, {png_path}")
