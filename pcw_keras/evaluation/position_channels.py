"""Which channels of a layer encode position: the paper's channel ranking, for any Keras model.

Two ways to change *where* the content is while keeping *what* it is:

- ``"mirror"`` (the paper's): an input and its horizontal mirror. The mean
  absolute difference of a channel's pooled activation ranks channels overall;
  the signed difference ranks ``left``- and ``right``-specific channels.
- ``"canvas"``: the same patches placed in every cell of a canvas. A channel's
  pooled value is split into the part explained by the cell (position), by the
  patch (semantics) and the rest; the score is the share explained by the cell.
  Per-cell rankings say which channels fire for each cell.

A 4-D layer output is averaged over height and width first (the pooled
activation the paper measures); a 2-D output is used as it is.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import keras
import numpy as np

from pcw_keras.io import pyplot, save_figure, write_json_atomic
from pcw_keras.evaluation.inputs import canvases, infer_grid, input_batches, uint8_patches
from pcw_keras.evaluation.model_layers import default_layer, feature_model
from pcw_keras.normalization import CIFAR, Normalization

METHODS = ("mirror", "canvas")


@dataclass
class ChannelRanking:
    """Channels of one layer ordered by how much they encode position.

    Attributes
    ----------
    method : {"mirror", "canvas"}
    layer : str
        The ranked layer.
    num_channels : int
    rankings : dict
        Ranking name -> ``{"channels": [...], "scores": [...]}``, best first.
        ``mirror``: ``overall`` (mean absolute difference), ``left``, ``right``
        (signed difference). ``canvas``: ``overall`` (share of the variance
        explained by the cell), ``position_std`` (standard deviation of the
        cell effect, in activation units), ``cell_0`` .. ``cell_{K-1}``
        (standardised cell effect: how far above its mean the channel fires
        when the patch is in that cell).
    samples : int
        Inputs (mirror) or patches (canvas) measured.
    grid : int or None
        Cells per side of the canvas (canvas method, or mirror on canvases).
    cell_effects : list of list of float or None
        ``canvas``: ``(grid * grid, num_channels)`` standardised cell effects.
    """

    method: str
    layer: str
    num_channels: int
    rankings: dict
    samples: int
    grid: int | None = None
    cell_effects: list | None = field(default=None, repr=False)

    def top(self, k: int, ranking: str = "overall") -> list[int]:
        """The ``k`` best channels of ``ranking``."""
        if ranking not in self.rankings:
            raise ValueError(f"`ranking` must be one of {list(self.rankings)}. Received: ranking={ranking!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= self.num_channels:
            raise ValueError(f"`k` must be an integer in [0, {self.num_channels}]. Received: k={k!r}")
        return list(self.rankings[ranking]["channels"][:k])

    def to_dict(self) -> dict:
        return {
            "method": self.method, "layer": self.layer, "num_channels": self.num_channels,
            "samples": self.samples, "grid": self.grid, "rankings": self.rankings,
            "cell_effects": self.cell_effects,
        }

    @classmethod
    def from_dict(cls, payload: dict) -> "ChannelRanking":
        missing = {"method", "layer", "num_channels", "rankings", "samples"} - set(payload)
        if missing:
            raise ValueError(f"Not a channel ranking: keys {sorted(missing)} are missing.")
        return cls(**{key: payload.get(key) for key in (
            "method", "layer", "num_channels", "rankings", "samples", "grid", "cell_effects")})

    def save_json(self, path: str | os.PathLike) -> str:
        """Writes the ranking as JSON (atomically); returns the path."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "ChannelRanking":
        import json

        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))

    def save_plot(self, path: str | os.PathLike, top: int = 20) -> str:
        """PNG: every channel's overall score, sorted, with the ``top`` channels marked; for
        ``canvas``, a heat map of cells x top channels; for ``mirror``, the top channels'
        left-versus-right signed scores."""
        plt = pyplot()
        top = min(top, self.num_channels)
        overall = self.rankings["overall"]
        figure, (bars, detail) = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [1, 1.2], "wspace": 0.45})
        scores = np.asarray(overall["scores"])
        colours = ["tab:red" if i < top else "tab:gray" for i in range(len(scores))]
        bars.bar(np.arange(len(scores)), scores, color=colours, width=1.0)
        bars.set_xlabel(f"channel rank (top {top} in red)")
        bars.set_ylabel(SCORE_LABELS[self.method])
        bars.set_title(f"{self.method} ranking of `{self.layer}` ({self.num_channels} channels)")
        channels = overall["channels"][:top]
        if self.method == "canvas" and self.cell_effects is not None:
            effects = np.asarray(self.cell_effects)[:, channels]
            limit = float(np.abs(effects).max()) or 1.0
            image = detail.imshow(effects, cmap="coolwarm", vmin=-limit, vmax=limit, aspect="auto")
            detail.set_yticks(range(effects.shape[0]))
            detail.set_yticklabels([f"cell {k} (r{k // self.grid},c{k % self.grid})" for k in range(effects.shape[0])])
            detail.set_xticks(range(len(channels)))
            detail.set_xticklabels(channels, rotation=90, fontsize=7)
            detail.set_xlabel("top channels (overall)")
            detail.set_title("standardised cell effect")
            figure.colorbar(image, ax=detail)
        else:
            left = dict(zip(self.rankings["left"]["channels"], self.rankings["left"]["scores"]))
            signed = [left[c] for c in channels]
            detail.bar(range(len(channels)), signed, color=["tab:blue" if s > 0 else "tab:orange" for s in signed])
            detail.axhline(0, color="black", linewidth=0.5)
            detail.set_xticks(range(len(channels)))
            detail.set_xticklabels(channels, rotation=90, fontsize=7)
            detail.set_xlabel("top channels (overall)")
            detail.set_title("signed difference: > 0 left-specific, < 0 right-specific")
        return save_figure(figure, path, dpi=120, bbox_inches="tight")


def ranking_filename(method: str, layer: str | None = None) -> str:
    """``ranking_<method>.json`` for a default layer, ``ranking_<method>_<layer>.json`` for a named one."""
    return f"ranking_{method}" + (f"_{layer}" if layer else "") + ".json"


SCORE_LABELS = {
    "mirror": "mean |f(x) - f(mirror x)|",
    "canvas": "share of variance explained by the cell",
}


def rank_position_channels(
    model: keras.Model,
    dataset,
    *,
    layer: str | None = None,
    method: str = "mirror",
    grid: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    normalization: Normalization = CIFAR,
    verbose: bool = True,
) -> ChannelRanking:
    """Ranks the channels of ``layer`` by how much they encode position.

    Parameters
    ----------
    model : keras.Model
        Any functional model with image inputs ``(batch, H, W, C)``.
    dataset
        ``method="canvas"``: the patches to place, an
        :class:`~pcw_keras.data.ImageSet` or a uint8 array ``(N, h, w, 3)``;
        they are normalised with ``normalization``.
        ``method="mirror"``: the model's inputs, a float array
        ``(N, H, W, C)``, a ``tf.data.Dataset`` of inputs or of
        ``(inputs, labels)`` batches, or uint8 images (an ImageSet or array),
        normalised as above and, with ``grid``, placed at random cells of a
        canvas.
    layer : str, optional
        The layer whose channels are ranked; 4-D outputs are averaged over
        space. Defaults to :func:`default_layer`.
    method : {"mirror", "canvas"}
        See the module docstring.
    grid : int, optional
        Cells per side of the canvas. ``canvas`` infers it from the model's
        input width and the patch width when not given.
    batch_size : int
        Inputs per forward pass.
    seed : int
        Seed of the random cells when ``mirror`` places uint8 images on a canvas.
    normalization : pcw_keras.normalization.Normalization
        How the model wants uint8 pixels (default CIFAR's mean and std, as
        the package's pipelines; e.g. ``Normalization.named("imagenet")``).
    verbose : bool
        Progress bar.

    Returns
    -------
    ChannelRanking

    Notes
    -----
    Where the paper is silent, this package chooses: (1) the ``left`` and
    ``right`` rankings compare an input whose right half is set to zero
    (content on the left) with its mirror (content on the right), so that the
    sign of the difference has a meaning for any input: ``left`` orders
    channels by the mean of ``f(left) - f(right)``, ``right`` by its negative;
    (2) the ``canvas`` score is a two-way (cell x patch) variance split of each
    channel's pooled value, ``var(cell effect) / total variance``, in ``[0, 1]``
    (1: a pure function of position; 0: blind to position; constant channels
    score 0).

    Example
    -------
    >>> ranking = rank_position_channels(model, load_split("cifar10-mini", "test", limit=200),
    ...                                  method="canvas")  # doctest: +SKIP
    >>> ranking.top(5)  # doctest: +SKIP
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}. Received: method={method!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    layer = layer or default_layer(model)
    features = feature_model(model, layer)
    if method == "canvas":
        return _rank_canvas(features, layer, dataset, grid, batch_size, normalization, verbose)
    return _rank_mirror(features, layer, dataset, grid, batch_size, seed, normalization, verbose)


# --- inputs -------------------------------------------------------------------------------------------


# --- methods ------------------------------------------------------------------------------------------


def _ordered(scores: np.ndarray) -> dict:
    """Channels by decreasing score (ties: lower index first)."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    return {"channels": [int(c) for c in order], "scores": [float(scores[c]) for c in order]}


def _progress(total: int, verbose: bool):
    return keras.utils.Progbar(total, verbose=1 if verbose else 0, unit_name="input")


def _predict(features: keras.Model, batch) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(features.predict_on_batch(batch)), "float64")


def _rank_mirror(features, layer, dataset, grid, batch_size, seed, normalization, verbose) -> ChannelRanking:
    absolute = signed = None
    count = 0
    progress = _progress(len(dataset) if hasattr(dataset, "__len__") else None, verbose)
    for batch in input_batches(dataset, batch_size, grid, seed, normalization):
        if batch.ndim != 4:
            raise ValueError(f"`mirror` flips images (batch, H, W, C). Received: batch shape {batch.shape}")
        mirrored = batch[:, :, ::-1]
        left = batch.copy()
        left[:, :, batch.shape[2] // 2:] = 0.0  # content on the left only
        stacked = _predict(features, np.concatenate([batch, mirrored, left, left[:, :, ::-1]]))
        n = len(batch)
        difference, side = stacked[:n] - stacked[n:2 * n], stacked[2 * n:3 * n] - stacked[3 * n:]
        absolute = np.abs(difference).sum(0) + (0 if absolute is None else absolute)
        signed = side.sum(0) + (0 if signed is None else signed)
        count += n
        progress.add(n)
    if not count:
        raise ValueError("`dataset` gave no inputs.")
    absolute, signed = absolute / count, signed / count
    rankings = {"overall": _ordered(absolute), "left": _ordered(signed), "right": _ordered(-signed)}
    return ChannelRanking("mirror", layer, len(absolute), rankings, count, grid)


def _rank_canvas(features, layer, dataset, grid, batch_size, normalization, verbose) -> ChannelRanking:
    patches = uint8_patches(dataset)
    grid = infer_grid(features, patches.shape[2], grid)
    cells = grid * grid
    chunk = max(1, batch_size // cells) if batch_size >= cells else 1
    pooled = []  # (patches, cells, channels)
    progress = _progress(len(patches) * cells, verbose)
    for start in range(0, len(patches), chunk):
        part = patches[start:start + chunk]
        # Every patch of the chunk in every cell: one forward pass of len(part) * cells canvases.
        tiled = np.repeat(part, cells, axis=0)
        placed = canvases(tiled, np.tile(np.arange(cells), len(part)), grid, normalization)
        values = []
        for begin in range(0, len(placed), batch_size):
            values.append(_predict(features, placed[begin:begin + batch_size]))
        pooled.append(np.concatenate(values).reshape(len(part), cells, -1))
        progress.add(len(placed))
    pooled = np.concatenate(pooled)
    mean = pooled.mean(axis=(0, 1))
    cell_effect = pooled.mean(axis=0) - mean  # (cells, channels)
    total = pooled.var(axis=(0, 1))
    position = (cell_effect ** 2).mean(axis=0)
    safe = np.where(total > 1e-12, total, 1.0)
    share = np.where(total > 1e-12, position / safe, 0.0)
    standardised = np.where(total > 1e-12, cell_effect / np.sqrt(safe), 0.0)
    rankings = {"overall": _ordered(share), "position_std": _ordered(np.sqrt(position))}
    for cell in range(cells):
        rankings[f"cell_{cell}"] = _ordered(standardised[cell])
    return ChannelRanking(
        "canvas", layer, pooled.shape[-1], rankings, len(patches), grid,
        cell_effects=[[float(v) for v in row] for row in standardised],
    )
