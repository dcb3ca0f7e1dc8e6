"""Switching position-encoding channels off, and measuring what the task loses.

:func:`attack` returns a copy of any functional Keras model with a
:class:`~pcw_keras.layers.ChannelMask` inserted after a named layer: a normal
model that evaluates, saves and exports. :func:`evaluate_attacks` compares,
for each ``k``, the task metric with the top-``k`` ranked channels off against
``k`` random channels off (several draws: mean and spread), as a table and a
curve.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from pcw_keras.evaluation._io import pyplot, save_figure_atomic, write_json_atomic
from pcw_keras.evaluation.position_channels import ChannelRanking, default_layer
from pcw_keras.layers import ChannelMask

MASK_SUFFIX = "_channel_mask"


def attack(model: keras.Model, channels: Sequence[int], *, layer: str | None = None, name: str | None = None) -> keras.Model:
    """A copy of ``model`` whose ``layer`` output has ``channels`` set to zero.

    The copy has new layers with the original's weights (the original is left
    untouched) and a :class:`~pcw_keras.layers.ChannelMask` named
    ``<layer>_channel_mask`` right after ``layer``, feeding everything that
    ``layer`` fed. It is uncompiled; compile it to ``evaluate`` or ``fit``.

    Parameters
    ----------
    model : keras.Model
        A functional model.
    channels : list of int
        Channels of ``layer``'s output (last axis) to switch off.
    layer : str, optional
        Defaults to :func:`~pcw_keras.evaluation.default_layer` (``stage4``,
        else ``pool``). Any rank works: a 4-D map has the channels zeroed at
        every position.
    name : str, optional
        Name of the copy (default ``<model>_attacked``).

    Example
    -------
    >>> attacked = attack(model, ranking.top(10), layer="stage4")  # doctest: +SKIP
    >>> attacked.save("attacked.keras")  # doctest: +SKIP
    """
    layer = layer or default_layer(model)
    names = [candidate.name for candidate in model.layers]
    if layer not in names:
        raise ValueError(f"`layer` must name a layer of {model.name!r}, one of {names}. Received: layer={layer!r}")
    if layer in {candidate.name for candidate in model.layers if isinstance(candidate, keras.layers.InputLayer)}:
        raise ValueError(f"`layer` must not be an input layer; attack the input by naming the layer after it. Received: layer={layer!r}")
    mask = ChannelMask(channels, name=f"{layer}{MASK_SUFFIX}")

    def call(clone, *args, **kwargs):
        outputs = clone(*args, **kwargs)
        return mask(outputs) if clone.name == layer else outputs

    attacked = keras.models.clone_model(model, call_function=call)
    for original in model.layers:
        if original.weights:
            attacked.get_layer(original.name).set_weights(original.get_weights())
    attacked.name = name or f"{model.name}_attacked"
    return attacked


def mask_layer(model: keras.Model) -> ChannelMask:
    """The :class:`~pcw_keras.layers.ChannelMask` of an attacked model (exactly one expected)."""
    masks = [layer for layer in model.layers if isinstance(layer, ChannelMask)]
    if len(masks) != 1:
        raise ValueError(f"Expected one ChannelMask in {model.name!r}. Received: {len(masks)}")
    return masks[0]


@dataclass
class AttackReport:
    """Task metric with top-k ranked versus k random channels off.

    Attributes
    ----------
    layer : str
    num_channels : int
    metric : str
        The primary metric's key (the curve's y axis).
    ranking : str
        The ranking the top-k channels came from.
    baseline : dict
        The metric of the unattacked model.
    rows : list of dict
        Per ``k``: ``k``, ``top_channels``, ``top`` (metric dict),
        ``random_channels`` (one list per draw), ``random`` (one metric dict
        per draw), and ``summary``: per scalar key, ``top``, ``random_mean``,
        ``random_std`` (sample std over draws; 0 for one draw),
        ``random_min``, ``random_max``.
    random_draws : int
    seed : int
    """

    layer: str
    num_channels: int
    metric: str
    ranking: str
    baseline: dict
    rows: list
    random_draws: int
    seed: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def save_json(self, path: str | os.PathLike) -> str:
        """Writes the report as JSON (atomically); returns the path."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "AttackReport":
        """Reads a report written by :meth:`save_json` (e.g. to redraw its curve)."""
        import json

        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
        try:
            return cls(**payload)
        except TypeError as error:
            raise ValueError(f"{os.fspath(path)!r} is not an attack report: {error}") from None

    def table(self, keys: Sequence[str] | None = None) -> str:
        """Markdown table: for each ``k``, the metric with top-k channels off and with k random ones off
        (accuracies and IoUs in percent; the first row is the unattacked model)."""
        keys = list(keys or _scalar_keys(self.baseline))
        header = ["k", "% of channels"]
        for key in keys:
            header += [f"{key}, top-k off", f"{key}, k random off (mean ± std)"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
        baseline = ["0", "0"]
        for key in keys:
            baseline += [_format(key, self.baseline[key])] * 2
        lines.append("| " + " | ".join(baseline) + " |")
        for row in self.rows:
            cells = [str(row["k"]), f"{100 * row['k'] / self.num_channels:.1f}"]
            for key in keys:
                s = row["summary"][key]
                cells += [_format(key, s["top"]), f"{_format(key, s['random_mean'])} ± {_format(key, s['random_std'])}"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def save_curve(self, path: str | os.PathLike, keys: Sequence[str] | None = None) -> str:
        """PNG, one panel per metric key: metric versus k, top-k (line) against k random (mean, band =
        min..max over draws)."""
        plt = pyplot()
        keys = list(keys or [self.metric])
        figure, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
        ks = [0] + [row["k"] for row in self.rows]
        for axis, key in zip(axes[0], keys):
            def series(field):
                return [self.baseline[key]] + [row["summary"][key][field] for row in self.rows]

            axis.plot(ks, series("top"), "o-", color="tab:red", label=f"top-k off ({self.ranking} ranking)")
            axis.plot(ks, series("random_mean"), "s--", color="tab:blue", label="k random off (mean; band: min-max)")
            axis.fill_between(ks, series("random_min"), series("random_max"), color="tab:blue", alpha=0.15)
            axis.set_xlabel(f"k: channels of `{self.layer}` switched off (of {self.num_channels})")
            axis.set_ylabel(key)
            if "loss" in key:
                axis.set_yscale("log")
            else:
                axis.set_ylim(bottom=0)
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
            axis.set_title(f"{key}: {self.random_draws} random draws per k")
        return save_figure_atomic(figure, path)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _format(key: str, value: float) -> str:
    """Losses as they are (4 significant digits); accuracies and IoUs in percent."""
    return f"{value:.4g}" if "loss" in key else _pct(value)


def _scalar_keys(metrics: dict) -> list[str]:
    return [key for key, value in metrics.items() if isinstance(value, (int, float))]


def _summary(top: dict, draws: list[dict]) -> dict:
    summary = {}
    for key in _scalar_keys(top):
        values = np.array([draw[key] for draw in draws], "float64")
        summary[key] = {
            "top": float(top[key]),
            "random_mean": float(values.mean()),
            "random_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "random_min": float(values.min()),
            "random_max": float(values.max()),
        }
    return summary


def evaluate_attacks(
    model: keras.Model,
    metric: Callable[[keras.Model], dict],
    ranking: ChannelRanking | Sequence[int],
    ks: Sequence[int],
    *,
    layer: str | None = None,
    ranking_name: str = "overall",
    random_draws: int = 5,
    seed: int = 0,
    verbose: bool = True,
) -> AttackReport:
    """Metric with the top-``k`` ranked channels off versus ``k`` random channels off, for each ``k``.

    Parameters
    ----------
    model : keras.Model
        The unattacked model.
    metric : callable
        ``metric(model) -> dict of floats``; its first key is the primary
        metric (see :mod:`pcw_keras.evaluation.task_metrics`).
    ranking : ChannelRanking or list of int
        Channels best first. A :class:`ChannelRanking` also gives the layer.
    ks : list of int
        Numbers of channels to switch off, each in ``[1, C]``.
    layer : str, optional
        The attacked layer (default: the ranking's, else :func:`default_layer`).
    ranking_name : str
        Which ranking of a :class:`ChannelRanking` (e.g. ``"cell_4"`` for a
        region attack).
    random_draws : int
        Random channel sets per ``k``. Random channels are drawn uniformly
        without replacement from all ``C`` channels (they may include ranked
        ones: the paper's baseline is "k random channels").
    seed : int
        Seed of the random draws.
    verbose : bool
        Progress bar over the attacked evaluations.

    Returns
    -------
    AttackReport

    Example
    -------
    >>> metric = canvas_metric(test_images, grid=3, task="location")  # doctest: +SKIP
    >>> report = evaluate_attacks(model, metric, ranking, [2, 6, 13])  # doctest: +SKIP
    >>> print(report.table())  # doctest: +SKIP
    """
    if isinstance(ranking, ChannelRanking):
        if layer is not None and layer != ranking.layer:
            raise ValueError(f"The ranking is of layer {ranking.layer!r}. Received: layer={layer!r}")
        layer = ranking.layer
        order = ranking.top(ranking.num_channels, ranking_name)
    else:
        order = [int(c) for c in ranking]
        layer = layer or default_layer(model)
    if isinstance(random_draws, bool) or not isinstance(random_draws, int) or random_draws < 1:
        raise ValueError(f"`random_draws` must be a positive integer. Received: random_draws={random_draws!r}")
    attacked = attack(model, [], layer=layer)
    mask = mask_layer(attacked)
    num_channels = int(mask.keep.shape[0])
    ks = [int(k) for k in ks]
    if not ks or any(k < 1 or k > min(num_channels, len(order)) for k in ks):
        raise ValueError(f"`ks` must be integers in [1, {min(num_channels, len(order))}]. Received: ks={ks}")
    baseline = metric(model)
    primary = next(iter(baseline))
    rng = np.random.default_rng(seed)
    progress = keras.utils.Progbar(len(ks) * (1 + random_draws), verbose=1 if verbose else 0, unit_name="attack")
    rows = []
    for k in ks:
        top_channels = sorted(order[:k])
        mask.set_channels(top_channels)
        top = metric(attacked)
        progress.add(1)
        random_channels, draws = [], []
        for _ in range(random_draws):
            channels = sorted(int(c) for c in rng.choice(num_channels, size=k, replace=False))
            mask.set_channels(channels)
            draws.append(metric(attacked))
            random_channels.append(channels)
            progress.add(1)
        rows.append({"k": k, "top_channels": top_channels, "top": top, "random_channels": random_channels,
                     "random": draws, "summary": _summary(top, draws)})
    return AttackReport(layer, num_channels, primary, ranking_name, baseline, rows, random_draws, seed)
