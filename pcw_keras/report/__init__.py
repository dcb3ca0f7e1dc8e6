"""``pcw report``: the package's analyses of one model, as a folder with a Markdown page, a web page and figures.

- :mod:`~pcw_keras.report.collect` runs the analyses and writes their raw files and ``report.json``;
- :mod:`~pcw_keras.report.figures` draws the figures from the raw files;
- :mod:`~pcw_keras.report.document` writes the page as blocks and as Markdown;
- :mod:`~pcw_keras.report.html` renders the blocks as a self-contained web page;
- :mod:`~pcw_keras.report.command_lines` gives the ``pcw`` commands behind each figure.

Example
-------
>>> render("runs/location-3x3-gapnet/report")  # doctest: +SKIP  (redraws the figures and pages from the raw files)
['stages.png', 'ranking_stage4.png', 'attack.png', 'report.md', 'report.html']
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from pcw_keras.io import staged_directory, write_text_atomic
from pcw_keras.report.collect import REPORT_FILE, ModelTarget, ReportOptions, collect
from pcw_keras.report.document import blocks, to_markdown
from pcw_keras.report.figures import draw
from pcw_keras.report.html import to_html

if TYPE_CHECKING:
    import keras

    from pcw_keras.data import ImageSet
    from pcw_keras.evaluation.position_channels import ChannelRanking

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"

__all__ = ["HTML_FILE", "MARKDOWN_FILE", "REPORT_FILE", "ModelTarget", "ReportOptions", "build_report", "render"]


def render(folder: str) -> list[str]:
    """Draws the figures and writes ``report.md`` and ``report.html`` from the raw files in ``folder``.

    Returns
    -------
    list of str
        The files written, relative to ``folder``.
    """
    with open(os.path.join(folder, REPORT_FILE), encoding="utf-8") as handle:
        report = json.load(handle)
    figures = draw(folder, report)
    page = blocks(report, folder)
    write_text_atomic(os.path.join(folder, MARKDOWN_FILE), to_markdown(page))
    write_text_atomic(os.path.join(folder, HTML_FILE), to_html(page, folder, f"Position report: {report['model']['name']}"))
    return [*figures, MARKDOWN_FILE, HTML_FILE]


def build_report(target: ModelTarget, model: keras.Model, trained: keras.Model, rank: Callable[[str], ChannelRanking],
                 test_images: ImageSet, options: ReportOptions, out: str, *,
                 argument: str, model_options: dict, overwrite: bool = False,
                 echo: Callable[[str], None] = print) -> dict:
    """Runs :func:`~pcw_keras.report.collect.collect` and :func:`render` in a hidden folder beside ``out``,
    which becomes ``out`` only once everything is written (an error leaves nothing behind).

    The parameters are :func:`~pcw_keras.report.collect.collect`'s; ``overwrite`` replaces an existing ``out``.

    Returns
    -------
    dict
        The content of ``report.json``.
    """
    with staged_directory(out, overwrite) as folder:
        report = collect(target, model, trained, rank, test_images, options, folder, argument=argument,
                         model_options=model_options, out=out, echo=echo)
        echo("pcw report: drawing the figures and writing report.md and report.html")
        render(folder)
    return report
