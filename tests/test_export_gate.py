"""The export gate refuses exports that do not compute what Keras computes, and says when it cannot judge.

Each refusal case here passed the earlier gate (top-1 agreement "up to
ties", read from a softmax of the outputs): a softmax output made every
class of every input a tie, and near-uniform logits did the same.
"""
import numpy as np
import pytest

from pcw_keras.export.gate import (
    DECISION_MARGIN,
    MAX_RELATIVE_ERROR,
    decided,
    judge,
    output_space,
    relative_error,
    summary,
)

SAMPLES = 512


def _softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _confident_logits(classes=10, seed=0, scale=6.0):
    """Logits of a decided model: one class well ahead on every input."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.0, (SAMPLES, classes))
    logits[np.arange(SAMPLES), rng.integers(0, classes, SAMPLES)] += scale
    return logits.astype(np.float32)


def _noise_like(reference, seed=1):
    """A random-noise "export" of the reference's shape and output space."""
    rng = np.random.default_rng(seed)
    if output_space(reference) == "probabilities":
        return rng.dirichlet(np.ones(reference.shape[-1]), len(reference)).astype(np.float32)
    return rng.normal(0.0, reference.std(), reference.shape).astype(np.float32)


@pytest.mark.parametrize("quantize", sorted(MAX_RELATIVE_ERROR))
def test_random_noise_against_a_confident_softmax_model_with_many_classes_is_refused(quantize):
    reference = _softmax(_confident_logits(classes=1000, scale=12.0))
    assert output_space(reference) == "probabilities" and decided(reference, "probabilities").mean() > 0.99
    check = judge(_noise_like(reference), reference, quantize=quantize)
    assert check["outcome"] == "failed" and not check["passed"] and check["relative_error"] > 0.9


@pytest.mark.parametrize("quantize", sorted(MAX_RELATIVE_ERROR))
def test_random_noise_against_a_flat_near_uniform_model_is_refused(quantize):
    rng = np.random.default_rng(3)
    reference = _softmax(rng.normal(0.0, 1e-3, (SAMPLES, 10))).astype(np.float32)  # every class about 10%
    check = judge(_noise_like(reference), reference, quantize=quantize)
    assert check["outcome"] == "failed" and check["output_space"] == "probabilities"


@pytest.mark.parametrize("decided_model", [False, True])  # near-uniform logits (all ties before) and decided ones
def test_a_logits_model_with_its_classes_permuted_is_refused(decided_model):
    rng = np.random.default_rng(11)
    reference = _confident_logits() if decided_model else rng.normal(0.0, 0.01, (SAMPLES, 10)).astype(np.float32)
    permuted = reference[:, np.roll(np.arange(10), 3)]
    check = judge(permuted, reference, quantize="int8")
    assert check["outcome"] == "failed" and check["relative_error"] > 1.0


@pytest.mark.parametrize("model", ["softmax over 1000 classes", "near-uniform logits", "decided logits"])
def test_an_export_that_always_answers_one_class_is_refused(model):
    rng = np.random.default_rng(13)
    reference = {"softmax over 1000 classes": lambda: _softmax(_confident_logits(classes=1000, scale=12.0)),
                 "near-uniform logits": lambda: rng.normal(0.0, 0.01, (SAMPLES, 10)).astype(np.float32),
                 "decided logits": _confident_logits}[model]()
    constant = np.zeros_like(reference)
    constant[:, 4] = reference.max()
    check = judge(constant, reference, quantize="int8")
    assert check["outcome"] == "failed" and check["top1_agreement"] < 0.2


def test_a_close_export_of_a_decided_model_passes_and_agreement_comes_first():
    reference = _confident_logits()
    rng = np.random.default_rng(5)
    for quantize, limit in MAX_RELATIVE_ERROR.items():
        error = rng.normal(0.0, 0.3 * limit * reference.std(), reference.shape)  # well within the mode's tolerance
        check = judge(reference + error, reference, quantize=quantize)
        assert check["outcome"] == "passed" and check["passed"], (quantize, check["reason"])
        assert next(iter(check)) == "top1_agreement" and check["top1_agreement"] > 0.97


def test_an_undecided_model_is_inconclusive_not_passed_even_for_an_identical_export():
    rng = np.random.default_rng(7)
    reference = rng.normal(0.0, 1e-3, (SAMPLES, 10)).astype(np.float32)  # softmax leads of about 0.03 points
    check = judge(reference.copy(), reference, quantize="none")
    assert check["outcome"] == "inconclusive" and not check["passed"]
    assert check["relative_error"] == 0.0 and check["decided_share"] < 0.05
    assert "undecided" in check["reason"]
    # The same model as probabilities (a softmax at its end): still undecided, judged in its own space.
    probabilities = _softmax(reference)
    assert judge(probabilities.copy(), probabilities, quantize="none")["outcome"] == "inconclusive"


def test_a_constant_model_is_inconclusive_and_any_difference_fails():
    reference = np.full((SAMPLES, 10), 0.1, np.float32)
    assert relative_error(reference, reference) == 0.0
    assert judge(reference.copy(), reference, quantize="none")["outcome"] == "inconclusive"
    other = reference.copy()
    other[:, 0] += 0.01
    assert relative_error(other, reference) == float("inf")
    assert judge(other, reference, quantize="int8")["outcome"] == "failed"


def test_flips_on_decided_inputs_fail_and_a_shift_of_every_logit_is_no_error():
    reference = _confident_logits()
    assert relative_error(reference + 3.0, reference) == pytest.approx(0.0, abs=1e-6)
    flipped = reference.copy()
    rows = np.arange(0, SAMPLES, 20)  # 5% of the inputs: their top two classes swapped, nothing else changed
    top = np.argsort(reference[rows], axis=-1)[:, -2:]
    flipped[rows[:, None], top] = flipped[rows[:, None], top[:, ::-1]]
    check = judge(flipped, reference, quantize="int8")
    assert check["relative_error"] <= MAX_RELATIVE_ERROR["int8"]  # close numbers overall...
    assert check["outcome"] == "failed" and "agreement" in check["reason"]  # ...but decided answers changed


def test_non_finite_outputs_and_mismatched_shapes_are_refused():
    reference = _confident_logits()
    broken = reference.copy()
    broken[0, 0] = np.nan
    assert judge(broken, reference, quantize="none")["outcome"] == "failed"
    with pytest.raises(ValueError, match="shape"):
        judge(reference[:, :5], reference, quantize="none")
    with pytest.raises(ValueError, match="quantize"):
        judge(reference, reference, quantize="int4")


def test_decided_reads_the_emitted_space():
    probabilities = np.array([[0.5, 0.495, 0.005], [0.9, 0.05, 0.05], [0.3, 0.3, 0.4]])
    assert decided(probabilities, "probabilities").tolist() == [False, True, True]
    assert DECISION_MARGIN == 0.01
    # Read as logits, the same rows soften: a 0.01 gap in logits is undecided.
    assert decided(np.array([[1.0, 0.99, 0.0]]), "logits").tolist() == [False]
    assert output_space(np.array([[0.5, 0.6]])) == "logits" and output_space(np.array([[-0.1, 1.1]])) == "logits"


def test_the_summary_starts_with_plain_top1_agreement_and_has_no_accuracy_without_labels():
    reference = _confident_logits()
    check = {**judge(reference, reference, quantize="none"), "samples": SAMPLES}
    line = summary(check, "Keras")
    assert line.startswith("top-1 agreement 100.00% with Keras (100.00% on the 100.0% where Keras is decided) on 512")
    assert "accuracy" not in line
    line = summary({**check, "accuracy_keras": 0.5, "accuracy_exported": 0.5}, "Keras")
    assert line.index("top-1 agreement") < line.index("accuracy 50.00%")


def test_the_tolerances_stand_above_every_measured_genuine_export():
    """The raw file behind MAX_RELATIVE_ERROR: each genuine export's error is at most 1/2.5 of its mode's tolerance."""
    import json
    from pathlib import Path

    path = Path(__file__).parents[1] / "docs" / "studies" / "export_gate" / "errors.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    measured = [row for row in rows if "relative_error" in row]
    assert {row["quantize"] for row in measured} == set(MAX_RELATIVE_ERROR) and len(measured) >= 25
    for row in measured:
        assert row["outcome"] == "passed" and 2.5 * row["relative_error"] <= MAX_RELATIVE_ERROR[row["quantize"]], row
