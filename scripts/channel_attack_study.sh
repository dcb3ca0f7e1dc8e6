#!/usr/bin/env bash
# Issue 7's measured result: rank the position channels of trained location-3x3 runs with `canvas`,
# then switch off the top-k versus k random channels (5 draws) and measure location accuracy.
# Usage: scripts/channel_attack_study.sh RUN_DIR [RUN_DIR ...]   (runs made by `pcw train`)
# Writes RUN_DIR/channels/{ranking_canvas,attack,attack_cell_4_region4}.{json,png,md}.
set -euo pipefail
for run in "$@"; do
  pcw rank "$run" --rank-limit 200
  pcw attack "$run" --top 5%,10%,25%,50%,75%,90% --random-draws 5 --limit 100
  pcw attack "$run" --top 5%,10%,25% --random-draws 5 --limit 100 --region 4 --ranking-name cell_4
done
