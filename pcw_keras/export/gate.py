"""The export gate: does an exported model compute what its reference (Keras, or a SavedModel) computes?

Pure NumPy: it reads two arrays of outputs on the same inputs and decides one
of three outcomes.

- ``"failed"``: the outputs are not numerically close (their relative error
  is above the tolerance of the quantisation mode), or, on the inputs where
  the reference is decided, top-1 agreement is below the required share.
- ``"inconclusive"``: the outputs are close, but the reference is undecided
  on most check inputs (a random or barely trained model), so top-1
  agreement says nothing about the export.
- ``"passed"``: close, decided, and agreeing.

Outputs are compared in the space the model emits: probabilities (every
entry non-negative, each row summing to 1) or logits. Nothing here looks at
the exported outputs to decide which inputs count, so a poor export cannot
widen its own criterion.
"""
from __future__ import annotations

import numpy as np

OUTCOMES = ("passed", "inconclusive", "failed")
PROBABILITY_SUM_TOLERANCE = 1e-3
"""Rows summing to 1 within this (and no negative entry) make an output a probability output."""

MAX_RELATIVE_ERROR = {"none": 0.01, "float16": 0.01, "dynamic": 0.1, "int16x8": 0.1, "int8": 0.25}
"""Largest relative error (see :func:`relative_error`) each quantisation mode may leave.

Chosen at least 2.5 times above the largest error measured on every package
model kind at every mode (``scripts/export_gate_errors.py``, raw file
``docs/studies/export_gate/errors.jsonl``: float32 under 1e-6, float16 under
1e-3, dynamic range under 0.01, int16x8 under 0.04, full int8 under 0.06; a
test holds the margin against that file), and far below what an export that
does not compute the model leaves: noise, permuted classes or a constant
answer score near 1.
"""

DEFAULT_MIN_AGREEMENT = {"none": 0.99, "float16": 0.99, "dynamic": 0.97, "int8": 0.97, "int16x8": 0.97}
"""Least top-1 agreement on the reference's decided inputs: 99% for float exports, 97% with int8 weights."""

DECISION_MARGIN = 0.01
"""An input is decided when the reference's top-1 probability leads its second by more than this (1 point)."""

MIN_DECIDED_SHARE = 0.5
"""Below this share of decided check inputs, top-1 agreement cannot judge an export: the outcome is inconclusive."""


def output_space(outputs: np.ndarray) -> str:
    """``"probabilities"`` if every entry is >= 0 and every row sums to 1 (within 1e-3), else ``"logits"``."""
    rows = np.asarray(outputs, np.float64).reshape(-1, np.shape(outputs)[-1])
    if rows.shape[-1] > 1 and rows.min() >= 0.0 and np.all(np.abs(rows.sum(-1) - 1.0) <= PROBABILITY_SUM_TOLERANCE):
        return "probabilities"
    return "logits"


def relative_error(exported: np.ndarray, reference: np.ndarray) -> float:
    """Root-mean-square difference of the row-centred outputs over the reference's own spread.

    Each row is centred on its mean first, so a shift that changes no
    softmax (the same constant added to every logit) is not an error. The
    spread is the root-mean-square of the centred reference: 0 means
    identical, 1 means an error as large as the differences between the
    reference's own classes. A reference without spread (every class equal)
    gives 0 for an identical export and infinity otherwise.
    """
    exported, reference = _rows(exported), _rows(reference)
    error = np.sqrt(np.mean(np.square(_centred(exported) - _centred(reference))))
    spread = np.sqrt(np.mean(np.square(_centred(reference))))
    if spread == 0.0:
        return 0.0 if error == 0.0 else float("inf")
    return float(error / spread)


def decided(reference: np.ndarray, space: str) -> np.ndarray:
    """Per input, whether the reference's top-1 probability leads its second by more than :data:`DECISION_MARGIN`.

    Logits are turned into probabilities by a softmax; probabilities are
    read as they are. With a single output there is no second class and
    every input counts as decided.
    """
    rows = _rows(reference)
    if rows.shape[-1] < 2:
        return np.ones(len(rows), bool)
    probabilities = rows if space == "probabilities" else _softmax(rows)
    top_two = np.sort(probabilities, axis=-1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0] > DECISION_MARGIN


def judge(exported: np.ndarray, reference: np.ndarray, *, quantize: str, min_agreement: float | None = None,
          max_error: float | None = None) -> dict:
    """The gate's figures and outcome for ``exported`` against ``reference`` (same inputs, same output shape).

    Parameters
    ----------
    exported, reference : np.ndarray
        Outputs on the same check inputs, classes on the last axis.
    quantize : {"none", "float16", "dynamic", "int8", "int16x8"}
        Sets the default ``max_error`` and ``min_agreement``.
    min_agreement : float, optional
        Least top-1 agreement on the decided inputs
        (default :data:`DEFAULT_MIN_AGREEMENT`).
    max_error : float, optional
        Largest :func:`relative_error` (default :data:`MAX_RELATIVE_ERROR`).

    Returns
    -------
    dict
        ``top1_agreement`` first (plain argmax agreement on all inputs), then
        ``outcome`` and ``reason``, ``passed``, the output space, the relative
        error and its limit, the decided share and the agreement on it, and
        the max/mean absolute differences.

    Example
    -------
    >>> reference = np.eye(4)[[0, 1, 2, 3, 0, 1]] * 5.0
    >>> judge(reference + 0.01, reference, quantize="none")["outcome"]
    'passed'
    >>> judge(reference[:, ::-1], reference, quantize="none")["outcome"]
    'failed'
    """
    if np.shape(exported) != np.shape(reference):
        raise ValueError(f"The export's outputs have shape {np.shape(exported)}, the reference's "
                         f"{np.shape(reference)}: they must match.")
    if quantize not in MAX_RELATIVE_ERROR:
        raise ValueError(f"`quantize` must be one of {tuple(MAX_RELATIVE_ERROR)}. Received: quantize={quantize!r}")
    exported_rows, reference_rows = _rows(exported), _rows(reference)
    if not np.all(np.isfinite(exported_rows)):
        error = float("inf")
    else:
        error = relative_error(exported_rows, reference_rows)
    space = output_space(reference_rows)
    gate = DEFAULT_MIN_AGREEMENT[quantize] if min_agreement is None else float(min_agreement)
    limit = MAX_RELATIVE_ERROR[quantize] if max_error is None else float(max_error)
    agree = exported_rows.argmax(-1) == reference_rows.argmax(-1)
    is_decided = decided(reference_rows, space)
    decided_share = float(np.mean(is_decided))
    agreement_decided = float(np.mean(agree[is_decided])) if is_decided.any() else None
    difference = np.abs(exported_rows - reference_rows)

    if not error <= limit:
        outcome, reason = "failed", (f"the outputs differ: relative error {error:.3g} above the {limit:g} "
                                     f"allowed for quantize={quantize!r}")
    elif decided_share < MIN_DECIDED_SHARE:
        outcome, reason = "inconclusive", (
            f"the model is undecided on these inputs: its top-1 leads by more than {100 * DECISION_MARGIN:g} "
            f"point of probability on {100 * decided_share:.1f}% of them (at least {100 * MIN_DECIDED_SHARE:g}% "
            "needed to judge top-1 agreement)")
    elif agreement_decided < gate:
        outcome, reason = "failed", (f"top-1 agreement on the decided inputs {100 * agreement_decided:.2f}% below "
                                     f"the required {100 * gate:.2f}%")
    else:
        outcome, reason = "passed", (f"relative error {error:.3g} within {limit:g}, top-1 agreement on the decided "
                                     f"inputs {100 * agreement_decided:.2f}% at least {100 * gate:.2f}%")
    return {
        "top1_agreement": float(np.mean(agree)),
        "outcome": outcome,
        "reason": reason,
        "passed": outcome == "passed",
        "output_space": space,
        "relative_error": error,
        "max_relative_error": limit,
        "decided_share": decided_share,
        "decision_margin": DECISION_MARGIN,
        "top1_agreement_decided": agreement_decided,
        "min_agreement": gate,
        "max_abs_diff": float(difference.max()),
        "mean_abs_diff": float(difference.mean()),
    }


def summary(check: dict, reference: str) -> str:
    """One line, plain top-1 agreement first: ``top-1 agreement 98.44% with Keras (...) on 512 inputs, ...``.

    ``check`` is :func:`judge`'s result with ``samples`` added (and, with a
    recipe's labels, ``accuracy_keras``/``accuracy_exported``).
    """
    decided_part = (f" (Keras decided on {100 * check['decided_share']:.1f}% of them)"
                    if check["top1_agreement_decided"] is None else
                    f" ({100 * check['top1_agreement_decided']:.2f}% on the {100 * check['decided_share']:.1f}% "
                    "where Keras is decided)")
    accuracy = ""
    if "accuracy_exported" in check:
        accuracy = (f", accuracy {100 * check['accuracy_exported']:.2f}% "
                    f"({reference} {100 * check['accuracy_keras']:.2f}%)")
    return (f"top-1 agreement {100 * check['top1_agreement']:.2f}% with {reference}{decided_part} on "
            f"{check['samples']} inputs, relative error {check['relative_error']:.3g} "
            f"(max |diff| {check['max_abs_diff']:.3g}, {check['output_space']}){accuracy}: "
            f"{check['outcome']}: {check['reason']}")


def _rows(outputs: np.ndarray) -> np.ndarray:
    outputs = np.asarray(outputs, np.float64)
    return outputs.reshape(-1, outputs.shape[-1])


def _centred(rows: np.ndarray) -> np.ndarray:
    return rows - rows.mean(-1, keepdims=True)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)
