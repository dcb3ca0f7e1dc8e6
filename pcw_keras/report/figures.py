"""A report's figures, each drawn from its raw file in the report folder (PNG, Matplotlib's Agg backend).

- ``stages.png``: every channel's overall ranking score, stage by stage;
- ``ranking_<layer>.png``: the attacked stage's ranking, as ``pcw rank`` draws it;
- ``attack.png``: the task metric against k, top-k versus k random channels off, as ``pcw attack`` draws it;
- ``consistency_curve.png``: consistency against shift distance, as ``pcw evaluate consistency`` draws it.
"""
from __future__ import annotations

import json
import os

import numpy as np

from pcw_keras.evaluation.attacks import AttackReport
from pcw_keras.evaluation.consistency import plot_curves
from pcw_keras.evaluation.position_channels import SCORE_LABELS, ChannelRanking
from pcw_keras.io import pyplot, save_figure

STAGES_PNG = "stages.png"
ATTACK_PNG = "attack.png"
CURVE_PNG = "consistency_curve.png"


def ranking_png(layer: str) -> str:
    """The file name of ``layer``'s ranking figure in a report folder: ``ranking_<layer>.png``."""
    return f"ranking_{layer}.png"


def plot_stages(rankings: list[ChannelRanking], path: str) -> str:
    """Box plot (5th to 95th percentile whiskers) of each stage's overall scores, with every channel as a dot."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(max(5.0, 1.4 * len(rankings) + 2), 4))
    scores = [np.asarray(ranking.rankings["overall"]["scores"]) for ranking in rankings]
    positions = np.arange(1, len(rankings) + 1)
    axis.boxplot(scores, positions=positions, whis=(5, 95), showfliers=False, widths=0.5)
    rng = np.random.default_rng(0)  # the dots' horizontal jitter only
    for position, values in zip(positions, scores):
        axis.scatter(position + rng.uniform(-0.18, 0.18, len(values)), values, s=5, alpha=0.35, color="tab:red")
    axis.set_xticks(positions)
    axis.set_xticklabels([f"{ranking.layer}\n{ranking.num_channels} ch" for ranking in rankings], fontsize=8)
    method = rankings[0].method
    axis.set_ylabel(SCORE_LABELS[method])
    if method == "canvas":
        axis.set_ylim(0, 1)
    axis.grid(alpha=0.3, axis="y")
    axis.set_title(f"How much each stage encodes position ({method} ranking, {rankings[0].samples} images)")
    return save_figure(figure, path, dpi=120, bbox_inches="tight")


def _load(folder: str, name: str) -> dict:
    with open(os.path.join(folder, name), encoding="utf-8") as handle:
        return json.load(handle)


def draw(folder: str, report: dict) -> list[str]:
    """Draws every figure of the report in ``folder`` from its raw files; returns their file names."""
    rankings = [ChannelRanking.load_json(os.path.join(folder, stage["file"])) for stage in report["stages"]]
    names = [STAGES_PNG, ranking_png(rankings[-1].layer), ATTACK_PNG]
    plot_stages(rankings, os.path.join(folder, STAGES_PNG))
    rankings[-1].save_plot(os.path.join(folder, names[1]))
    attack = AttackReport.load_json(os.path.join(folder, report["attack"]["file"]))
    attack.save_curve(os.path.join(folder, ATTACK_PNG), keys=[attack.metric])
    if report["consistency"] is not None:
        curve = _load(folder, report["consistency"]["file"])["curve"]
        plot_curves({report["model"]["name"]: curve}, os.path.join(folder, CURVE_PNG))
        names.append(CURVE_PNG)
    return names
