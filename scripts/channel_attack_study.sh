#!/usr/bin/env bash
# Position-channel attack study: rank the position channels of trained location-3x3 runs with `canvas`,
# then switch off the top-k versus k random channels and measure location accuracy: at `stage4` (the
# default layer, 5 random draws; plus a cell-4 region attack) and at `stage2` (20 random draws), then
# every stage with other scores and the accuracy bound (scripts/channel_attack_layers.py).
# Usage: scripts/channel_attack_study.sh RUN_DIR [RUN_DIR ...]   (runs made by `pcw train`)
# Writes RUN_DIR/channels/{ranking_canvas,attack,attack_cell_4_region4}.{json,png,md},
# RUN_DIR/channels-stage2/{ranking_canvas,attack}.{json,png,md} and appends to
# docs/studies/channel_attack_layers.jsonl.
set -euo pipefail
for run in "$@"; do
  pcw rank "$run" --rank-limit 200
  pcw attack "$run" --top 5%,10%,25%,50%,75%,90% --random-draws 5 --limit 100
  pcw attack "$run" --top 5%,10%,25% --random-draws 5 --limit 100 --region 4 --ranking-name cell_4
  pcw rank "$run" --layer stage2 --rank-limit 200 --out "$run/channels-stage2"
  pcw attack "$run" --layer stage2 --top 5%,10%,25%,50% --random-draws 20 --limit 100 --out "$run/channels-stage2"
  python scripts/channel_attack_layers.py "$run" --out docs/studies/channel_attack_layers.jsonl
done
