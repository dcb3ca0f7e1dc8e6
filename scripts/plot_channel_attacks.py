"""Redraw the figures of a `pcw rank` / `pcw attack` output folder from its JSON files.

Usage: python scripts/plot_channel_attacks.py RUN_DIR/channels OUT_DIR PREFIX
Writes OUT_DIR/PREFIX_ranking.png, OUT_DIR/PREFIX_attack.png and, if present,
OUT_DIR/PREFIX_region.png (the cell-4 region attack of scripts/channel_attack_study.sh).
"""
import os
import sys

from pcw_keras.evaluation.attacks import AttackReport
from pcw_keras.evaluation.position_channels import ChannelRanking


def main(folder: str, out: str, prefix: str) -> None:
    ChannelRanking.load_json(os.path.join(folder, "ranking_canvas.json")).save_plot(os.path.join(out, f"{prefix}_ranking.png"))
    AttackReport.load_json(os.path.join(folder, "attack.json")).save_curve(
        os.path.join(out, f"{prefix}_attack.png"), keys=["accuracy", "loss"])
    region = os.path.join(folder, "attack_cell_4_region4.json")
    if os.path.isfile(region):
        AttackReport.load_json(region).save_curve(
            os.path.join(out, f"{prefix}_region.png"), keys=["accuracy_in_region", "accuracy_elsewhere", "loss_in_region"])


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
