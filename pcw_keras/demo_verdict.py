"""What a ``pcw demo`` table shows, decided by stated thresholds on its own numbers.

The claim "position lives in the order of the channels" needs two things of the
table: shuffling the pooled channels (PermuteNet) takes location away
(GAPNet locates far better), while it leaves semantics (both recognise the
image about as well). A table that shows only the first cannot tell a loss of
position from a loss of everything, and says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcw_keras import paper
from pcw_keras.choices import CANVAS_TASKS

LOCATION_GAP_POINTS = 30.0
"""GAPNet's location accuracy must exceed PermuteNet's by at least this many points (plus the seed margin)."""

LOCATION_SAME_POINTS = 10.0
"""A location gap at most this many points (less the seed margin), with PermuteNet above twice chance, means
shuffling did not take position away."""

IMAGE_CLOSE_POINTS = 10.0
"""Both networks recognise the image "about as well" when their image accuracies differ by at most this many points."""

LEARNT_FACTOR = 2.0
"""A network has learnt a task when its accuracy is at least this many times chance."""

SPREAD_FACTOR = 2.0
"""A gap is compared with a threshold widened by this many seed standard deviations (when there is a spread)."""


@dataclass(frozen=True)
class Verdict:
    """The table's verdict: ``kind`` is ``supports``, ``contradicts`` or ``inconclusive``; ``sentence`` says why."""

    kind: str
    sentence: str


def is_rising(curve: list[float]) -> bool:
    """Whether a validation curve climbs: the least-squares slope over its epochs is positive.

    The slope over the whole curve, not the last few points: the demo's
    validation split is small (250 images), so epoch-to-epoch noise is a few points.
    """
    if len(curve) < 3:
        return True
    return float(np.polyfit(np.arange(len(curve)), np.asarray(curve, dtype="float64"), 1)[0]) > 0


def verdict(results: dict, spread: dict[str, float] | None = None) -> Verdict:
    """Decide what a demo table shows.

    Parameters
    ----------
    results : dict
        ``results.json``'s shape: ``grid``; ``GAPNet``, ``PermuteNet`` and ``chance``,
        each ``{"location": fraction, "image": fraction}``; and optionally
        ``runs["image-permutenet"]["validation_curve"]``.
    spread : dict, optional
        Seed standard deviation, in points, of the ``location`` and ``image``
        gaps (GAPNet - PermuteNet); each threshold is widened by
        :data:`SPREAD_FACTOR` of it. Without it (one seed) the thresholds are used as they are.
    """
    gap, perm, chance = results["GAPNet"], results["PermuteNet"], results["chance"]
    margin = {task: SPREAD_FACTOR * (spread or {}).get(task, 0.0) for task in CANVAS_TASKS}
    location_gap = 100 * (gap["location"] - perm["location"])
    image_gap = 100 * (gap["image"] - perm["image"])
    if gap["location"] < LEARNT_FACTOR * chance["location"]:
        return Verdict("inconclusive", "GAPNet has not learnt the location task at this budget (a --quick run proves the "
                                       "path, not the science; run `pcw demo` without --quick): inconclusive.")
    if perm["location"] >= LEARNT_FACTOR * chance["location"] and location_gap <= LOCATION_SAME_POINTS - margin["location"]:
        return Verdict("contradicts", f"PermuteNet locates the image within {location_gap:.0f} points of GAPNet: here "
                                      "shuffling the channels does not take position away, against the paper's claim.")
    if location_gap < LOCATION_GAP_POINTS + margin["location"]:
        return Verdict("inconclusive", f"At this budget the networks are not yet apart on location: GAPNet locates the "
                                       f"image {location_gap:.0f} points better than PermuteNet, less than the "
                                       f"{LOCATION_GAP_POINTS:.0f} points this verdict needs (inconclusive).")
    position = f"GAPNet locates the image {location_gap:.0f} points better than PermuteNet"
    perm_learnt = perm["image"] >= LEARNT_FACTOR * chance["image"]
    if perm_learnt and abs(image_gap) <= IMAGE_CLOSE_POINTS - margin["image"]:
        return Verdict("supports", f"{position}, and both recognise the image within {abs(image_gap):.0f} points: "
                                   "semantics survive the shuffle, position lives in the order of the channels.")
    curve = results.get("runs", {}).get("image-permutenet", {}).get("validation_curve", [])
    trend = "still rising" if is_rising(curve) else "not yet caught up"
    theirs = {net: paper.CHANNELS[("image", results["grid"], net)] for net in ("permutenet", "gapnet")}
    return Verdict("inconclusive", f"{position}, but PermuteNet also recognises the image {image_gap:.0f} points worse "
                                   f"(more than {IMAGE_CLOSE_POINTS:.0f}): shuffling costs semantics too, so this table "
                                   "cannot tell whether position lives in the order of the channels (inconclusive). "
                                   f"PermuteNet's image accuracy is {trend} at this budget (the paper: "
                                   f"{theirs['permutenet']:.1f}% vs {theirs['gapnet']:.1f}% after 20 full epochs; "
                                   "see docs/results.md).")
