"""A report as a list of blocks (headings, paragraphs, tables, figures, command lines), and its Markdown.

:func:`blocks` writes the page from ``report.json`` and the raw files it
names; :func:`to_markdown` prints it, :func:`pcw_keras.report.html.to_html`
renders the same blocks as a self-contained web page.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from pcw_keras.evaluation.attacks import AttackReport
from pcw_keras.report.command_lines import command_lines
from pcw_keras.report.figures import ATTACK_PNG, CURVE_PNG, STAGES_PNG, ranking_png


@dataclass(frozen=True)
class Heading:
    """A heading: ``level`` 1 is the page's title, 2 a section (Markdown's ``#``, ``##``)."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """Text; words between backticks are code."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table of text cells: a header row, then rows of as many cells."""

    header: list[str]
    rows: list[list[str]]

    @classmethod
    def from_markdown(cls, text: str) -> Table:
        """A table from a Markdown pipe table (its header, a rule, then rows)."""
        lines = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.strip().splitlines()]
        return cls(lines[0], lines[2:])


@dataclass(frozen=True)
class Figure:
    """An image of the report folder (``file``, relative to it) with its caption."""

    file: str
    caption: str


@dataclass(frozen=True)
class Code:
    """``pcw`` command lines, one a line, shown verbatim."""

    text: str


Block = Heading | Paragraph | Table | Figure | Code

METRICS = {
    "location": "location accuracy with every test image placed in every cell",
    "image": "image accuracy with every test image placed in every cell",
    "classification": "top-1 accuracy on the test images",
    "features": "agreement of the top-1 output with the intact model's, on test canvases",
}
METHODS = {
    "canvas": "the same training images placed in every cell of a canvas; a channel's score is the share of its "
              "pooled value's variance that the cell explains (1: position alone, 0: blind to position)",
    "mirror": "each training image beside its horizontal mirror; a channel's score is the mean absolute change of "
              "its pooled value, in the layer's own units (compare the spread within a stage, not heights across "
              "stages)",
}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _facts(model: dict, options: dict) -> Table:
    height, width, channels = model["input_shape"]
    preprocess = model["preprocess"]
    statistics = ", ".join(f"{key} {tuple(round(v, 4) for v in preprocess[key])}" for key in ("mean", "std"))
    task = model["task"] + (f", {model['grid']}x{model['grid']} canvas" if model["grid"] else "")
    rows = [
        ["model", f"`{model['argument']}` ({model['kind']}" + (f", {model['which']} checkpoint)" if model["which"] else ")")],
        ["name", model["name"]],
        ["task", task],
        ["input", f"{height}x{width}x{channels}"],
        ["parameters", f"{model['parameters']:,}"],
        ["FLOPs per image", f"{model['flops'] / 1e9:.3f} G (forward; convolutions and dense layers)"],
        ["preprocessing", f"{preprocess['name']}: (pixels / 255 - mean) / std, {statistics}"],
        ["data", f"`{model['data']}`"],
        ["inference form", f"BatchNorm folded, {options['precision']}"],
    ]
    accuracy = model.get("test_accuracy")
    if accuracy:
        rows.append(["test accuracy (run)", ", ".join(f"{key.removeprefix('test_accuracy_')} {_pct(value)}"
                                                     for key, value in accuracy.items())])
    return Table(["fact", "value"], rows)


def _stages(report: dict, lines: dict) -> list[Block]:
    options, stages = report["options"], report["stages"]
    last = stages[-1]["layer"]
    table = Table(["stage", "channels", "median score", "90th percentile", "max", "top channels"],
                  [[f"`{s['layer']}`", str(s["num_channels"]), f"{s['median']:.3g}", f"{s['q90']:.3g}",
                    f"{s['max']:.3g}", ", ".join(map(str, s["top_channels"]))] for s in stages])
    return [
        Heading(2, "How much each stage encodes position"),
        Paragraph(f"The {options['method']} ranking of each stage on {stages[0]['samples']} images: "
                  f"{METHODS[options['method']]}."),
        Figure(STAGES_PNG, "Every channel's score, stage by stage (boxes: quartiles; whiskers: 5th to 95th percentile)."),
        table,
        Figure(ranking_png(last), f"The ranking of `{last}`, whose channels the attack below switches off."),
        Paragraph("Each stage's ranking alone:"),
        Code("\n".join(lines["rank"])),
    ]


def _attack(report: dict, folder: str, lines: dict) -> list[Block]:
    attack = AttackReport.load_json(os.path.join(folder, report["attack"]["file"]))
    last = attack.rows[-1]["summary"][attack.metric]
    task = report["model"]["task"]
    return [
        Heading(2, "Switching position channels off"),
        Paragraph(f"The top-k channels of `{attack.layer}` by its ranking are set to zero, against k random channels "
                  f"({attack.random_draws} draws per k); the metric is the {METRICS[task]} "
                  f"({report['options']['limit']} test images). Intact: {_pct(attack.baseline[attack.metric])}; "
                  f"with {attack.rows[-1]['k']} of {attack.num_channels} channels off: {_pct(last['top'])} for the "
                  f"top-ranked, {_pct(last['random_mean'])} (mean; {_pct(last['random_min'])} to "
                  f"{_pct(last['random_max'])}) for random ones."),
        Figure(ATTACK_PNG, f"{attack.metric} against k: top-k (red) versus k random channels off (blue: mean, "
                           "band: min to max)."),
        Table.from_markdown(attack.table([attack.metric])),
        Code(lines["attack"]),
    ]


def _consistency(report: dict, folder: str, lines: dict) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Shift consistency")]
    scores = report["consistency"]
    if scores is None:
        return blocks + [Paragraph(
            f"Not measured: shift consistency asks whether a classifier keeps its class, and this model's task is "
            f"`{report['model']['task']}`. For a model file of your own, pass `--task classification` with test "
            "data of its classes and input size.")]
    with open(os.path.join(folder, scores["file"]), encoding="utf-8") as handle:
        measured = json.load(handle)
    curve = measured["curve"]
    return blocks + [
        Paragraph(f"Consistency {_pct(scores['consistency'])}: how often two different random shifts of a test image "
                  f"(up to {measured['max_shift']} pixels per axis, {measured['passes']} draws per image, "
                  f"{measured['fill']} fill) get the same class (Zhang, 2019); "
                  f"{_pct(scores['circular_consistency'])} when the same offsets, opposite sign, roll the image circularly "
                  f"(what leaves one side enters at the other). Accuracy {_pct(scores['accuracy'])} "
                  f"unshifted, {_pct(scores['accuracy_shifted'])} shifted ({measured['images']} test images)."),
        Figure(CURVE_PNG, "Consistency with the unshifted image against shift distance."),
        Table(["shift (pixels)", "consistency", "accuracy"],
              [[str(d), _pct(c), _pct(a)] for d, c, a in zip(curve["shift"], curve["consistency"], curve["accuracy"])]),
        Code(lines["consistency"]),
    ]


def blocks(report: dict, folder: str) -> list[Block]:
    """The page of ``report`` (the content of ``report.json``), whose raw files are in ``folder``."""
    lines = command_lines(report)
    model, environment = report["model"], report["environment"]
    raw = ["report.json", *(stage["file"] for stage in report["stages"]), report["attack"]["file"]]
    if report["consistency"] is not None:
        raw += [report["consistency"]["file"], report["consistency"]["csv"]]
    return [
        Heading(1, f"Position report: {model['name']}"),
        Paragraph(f"What `pcw report` measures of `{model['argument']}`: where its stages encode position, what "
                  "switching the most position-specific channels off costs, and, for a classifier, how its class "
                  f"survives shifts. Measured in {report['seconds']:.0f} s on {environment['cpu']} "
                  f"({environment['cores']} cores, Keras {environment['keras']} on {environment['backend']}); every "
                  "figure is drawn from the raw files beside this page."),
        Heading(2, "The model"),
        _facts(model, report["options"]),
        *_stages(report, lines),
        *_attack(report, folder, lines),
        *_consistency(report, folder, lines),
        Heading(2, "Reproduce"),
        Paragraph("The whole report, with the same values (the command lines above write into `reproduced/`):"),
        Code(lines["report"]),
        Paragraph("Raw files: " + ", ".join(f"`{name}`" for name in raw) + "."),
    ]


def _cells(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def to_markdown(page: list[Block]) -> str:
    """The blocks as Markdown (figures as relative image links)."""
    parts = []
    for block in page:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Table):
            rule = "|" + "---|" * len(block.header)
            parts.append("\n".join([_cells(block.header), rule, *map(_cells, block.rows)]))
        elif isinstance(block, Figure):
            parts.append(f"![{block.caption}]({block.file})\n\n*{block.caption}*")
        else:
            parts.append(f"```bash\n{block.text}\n```")
    return "\n\n".join(parts) + "\n"
