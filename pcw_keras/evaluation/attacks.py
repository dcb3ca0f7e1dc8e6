"""Switching position-encoding channels off, and measuring what the task loses.

:func:`attack` returns a copy of any functional Keras model with a
:class:`~pcw_keras.layers.ChannelMask` inserted after a named layer: a normal
model that evaluates, saves and exports. :func:`evaluate_attacks` compares,
for each ``k``, the task metric with the top-``k`` ranked channels off against
``k`` random channels off (several draws: mean and spread), as a table and a
curve. :func:`accuracy_bound` says how much accuracy *any* ``k`` channels
could take away, where the rest of the model is affine in the layer.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from pcw_keras.io import pyplot, save_figure, write_json_atomic
from pcw_keras.evaluation.model_layers import default_layer
from pcw_keras.evaluation.position_channels import ChannelRanking
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
        return save_figure(figure, path, dpi=120, bbox_inches="tight")


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


def accuracy_bound(
    model: keras.Model,
    inputs: np.ndarray,
    labels: np.ndarray,
    ks: Sequence[int],
    *,
    layer: str | None = None,
    batch_size: int = 256,
) -> dict[int, float]:
    """Lower bound on the accuracy left after switching off *any* ``k`` channels of ``layer``, for each ``k``.

    When the part of ``model`` after ``layer`` is affine in the layer's channels
    (GAP -> dense, or GAPNet's zero-padded convolution -> GAP), each logit is a
    bias plus one contribution per channel, so the best ``k`` channels to
    switch off *for one input* are found exactly: for every wrong class, the
    ``k`` largest drops of the margin to the true class. An input counts as
    lost when some ``k`` channels, chosen for it alone, close one of its
    margins (a tie counts as lost); one set of ``k`` channels for all inputs,
    such as a ranking's top ``k``, can only lose fewer.

    Parameters
    ----------
    model : keras.Model
        A functional model whose single output is logits.
    inputs : np.ndarray
        Model-ready inputs.
    labels : np.ndarray
        Integer labels of ``inputs``.
    ks : list of int
        Numbers of channels, each in ``[0, C]``.
    layer : str, optional
        Defaults to :func:`~pcw_keras.evaluation.default_layer`.
    batch_size : int
        Inputs per forward pass.

    Returns
    -------
    dict
        ``k`` -> the lowest accuracy any ``k`` channels off can give is at
        least this; ``k = 0`` gives the model's accuracy.

    Raises
    ------
    ValueError
        The model after ``layer`` depends on more than the layer's output, or
        is not affine in it (e.g. a ReLU or a random permutation follows).
    """
    layer = layer or default_layer(model)
    names = [candidate.name for candidate in model.layers]
    if layer not in names:
        raise ValueError(f"`layer` must name a layer of {model.name!r}, one of {names}. Received: layer={layer!r}")
    inputs, labels = np.asarray(inputs), np.asarray(labels, "int64")
    if len(inputs) != len(labels) or not len(inputs):
        raise ValueError(f"`inputs` and `labels` must be non-empty and as long. Received: {len(inputs)} and {len(labels)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    tensor = model.get_layer(layer).output
    try:
        tail = keras.Model(tensor, model.outputs[0])
    except ValueError:
        raise ValueError(f"The model after `layer` must depend on its output alone (no skip connection around "
                         f"it). Received: layer={layer!r}") from None
    body = keras.Model(model.inputs, tensor)
    features = np.concatenate([keras.ops.convert_to_numpy(body.predict_on_batch(inputs[i:i + batch_size]))
                               for i in range(0, len(inputs), batch_size)])
    num_channels = features.shape[-1]
    ks = [int(k) for k in ks]
    if not ks or any(k < 0 or k > num_channels for k in ks):
        raise ValueError(f"`ks` must be integers in [0, {num_channels}]. Received: ks={ks}")

    def logits(maps: np.ndarray) -> np.ndarray:
        return np.concatenate([keras.ops.convert_to_numpy(tail.predict_on_batch(maps[i:i + batch_size]))
                               for i in range(0, len(maps), batch_size)]).astype("float64")

    full = logits(features)
    bias = logits(np.zeros_like(features[:1]))
    tolerance = 1e-4 * max(1.0, float(np.abs(full).max()))
    not_affine = (f"The model after `layer` must be affine in its channels (no ReLU or random permutation "
                  f"after it). Received: layer={layer!r}")
    even = np.arange(num_channels) % 2 == 0
    if not np.allclose(logits(features * even) + logits(features * ~even) - bias, full, rtol=0, atol=tolerance):
        raise ValueError(not_affine)  # checked on two halves first: cheap where the tail is not affine
    contributions = np.stack([logits(features * (np.arange(num_channels) == c)) - bias for c in range(num_channels)], 1)
    if not np.allclose(bias + contributions.sum(1), full, rtol=0, atol=tolerance * num_channels):
        raise ValueError(not_affine)
    rows = np.arange(len(labels))
    correct = np.argmax(full, -1) == labels
    margins = full[rows, labels][:, None] - full  # (N, classes)
    drops = contributions[rows, :, labels][:, :, None] - contributions  # (N, C, classes): margin lost per channel
    best = np.cumsum(-np.sort(-np.maximum(drops, 0.0), axis=1), axis=1)  # best[:, k - 1]: the k largest drops
    others = np.ones_like(margins, bool)
    others[rows, labels] = False
    bounds = {}
    for k in ks:
        if k == 0:
            bounds[k] = float(correct.mean())
            continue
        lost = ((margins - best[:, k - 1]) <= 0) & others
        bounds[k] = float(np.mean(correct & ~lost.any(-1)))
    return bounds
