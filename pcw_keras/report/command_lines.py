"""The ``pcw`` command lines that reproduce each figure of a report, with every value it was measured with.

Each line repeats MODEL, the options that complete it (``--which``,
``--data``, ``--preprocess`` ...: ``report.json``'s ``model_options``, in
their order, which ``pcw report`` names after its click options; only those
its command takes) and the report's resolved options, and writes into
``REPORT/reproduced`` so that running it leaves the report as it is.
"""
from __future__ import annotations

import os
import shlex

CONSISTENCY_TAKES = ("which", "data", "preprocess")
"""The options that complete MODEL which ``pcw evaluate consistency`` takes too."""


def _flags(values: dict, names=None) -> list[str]:
    """``--name value`` for each of ``names`` (default: every key of ``values``, in order) whose value is not None."""
    words = []
    for name in values if names is None else names:
        if values.get(name) is not None:
            words += [f"--{name.replace('_', '-')}", str(values[name])]
    return words


def _line(words: list[str]) -> str:
    return " ".join(shlex.quote(word) for word in words)


def command_lines(report: dict) -> dict:
    """``{"report": line, "rank": [line per stage], "attack": line, "consistency": line or None}``.

    Parameters
    ----------
    report : dict
        The content of ``report.json`` (:func:`pcw_keras.report.collect.collect`).
    """
    options, model_options = report["options"], report["model_options"]
    model = report["model"]["argument"]
    out = os.path.join(report["out"], "reproduced")
    precision = ["--precision", options["precision"], "--batch-size", str(options["batch_size"])]
    ranked = ["--method", options["method"], "--rank-limit", str(options["rank_limit"])]
    shifts = ["--max-shift", str(options["max_shift"]), "--passes", str(options["passes"]),
              "--curve-max-shift", str(options["curve_max_shift"]), "--fill", options["fill"]]
    model_flags = _flags(model_options)
    ks = ",".join(map(str, options["ks"]))
    draws = ["--top", ks, "--random-draws", str(options["random_draws"]), "--limit", str(options["limit"]),
             "--seed", str(options["seed"])]
    lines = {
        "report": _line(["pcw", "report", model, *model_flags, "--layers", ",".join(options["layers"]), *ranked,
                         *draws, *(shifts if report["consistency"] is not None else []), *precision,
                         "--out", report["out"], "--overwrite"]),
        "rank": [_line(["pcw", "rank", model, *model_flags, "--layer", layer, *ranked, *precision, "--out", out])
                 for layer in options["layers"]],
        "attack": _line(["pcw", "attack", model, *model_flags, "--layer", report["attack"]["layer"], *ranked, *draws,
                         *precision, "--out", out]),
        "consistency": None,
    }
    if report["consistency"] is not None:
        data = {**model_options, "data": model_options.get("data") or (
            report["model"]["data"] if report["model"]["kind"] == "model file" else None)}
        lines["consistency"] = _line(["pcw", "evaluate", "consistency", model, *_flags(data, CONSISTENCY_TAKES),
                                      "--limit", str(options["limit"]), *shifts, *precision,
                                      "--seed", str(options["seed"]), "--out", out])
    return lines
