"""The documents' figures are what their raw files say: every document equals its rendering.

Edit a template in ``docs/templates/`` and run ``python scripts/render_docs.py``;
a figure edited by hand in ``docs/results.md``, ``docs/benchmarks.md`` or the
rendered blocks of ``README.md`` fails here.
"""
from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _renderer():
    spec = importlib.util.spec_from_file_location("render_docs", ROOT / "scripts" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("render_docs", module)
    spec.loader.exec_module(module)
    return module


render_docs = _renderer()


def _copy_docs(tmp_path: Path) -> Path:
    """The documents, templates and raw files in a scratch repository root (no pictures)."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("*.png", "*.tflite"))
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    return tmp_path


def test_every_document_is_its_rendering():
    problems = render_docs.stale(ROOT)
    assert not problems, "run `python scripts/render_docs.py` (edit docs/templates/, not the documents):\n" + "\n\n".join(problems)


def test_rendered_documents_have_no_placeholder_left():
    for target in render_docs.TARGETS:
        assert "{{" not in (ROOT / target.document).read_text(), target.document


def test_a_figure_edited_by_hand_is_refused(tmp_path):
    root = _copy_docs(tmp_path)
    assert render_docs.stale(root) == []
    document = root / "docs" / "results.md"
    text = document.read_text()
    figure = render_docs.render("{{ pct(docs/studies/image3x3_step_budget/gapnet/results.json#test_accuracy_best) | .1f }}%", root)
    assert figure in text
    document.write_text(text.replace(figure, "82.6%", 1))
    problems = render_docs.stale(root)
    assert len(problems) == 1 and "docs/results.md" in problems[0] and "82.6%" in problems[0]


def test_a_figure_edited_in_a_readme_block_is_refused(tmp_path):
    root = _copy_docs(tmp_path)
    readme = root / "README.md"
    seconds = render_docs.render("{{ docs/studies/demo/seed0/results.json#wall_seconds | ms }}", root)
    readme.write_text(readme.read_text().replace(seconds, "6 min 14 s", 1))
    assert any("README.md" in problem and "6 min 14 s" in problem for problem in render_docs.stale(root))


def test_a_placeholder_naming_a_missing_file_or_key_is_refused_with_its_place():
    with pytest.raises(render_docs.RenderError, match=r"notes\.md:2: .*raw file docs/no_such_file\.json not found"):
        render_docs.render("text\n{{ docs/no_such_file.json#accuracy | .1f }}\n", ROOT, "notes.md")
    with pytest.raises(render_docs.RenderError, match=r"no key 'no_such_key' \(keys: recipe, task"):
        render_docs.render("{{ docs/studies/image3x3_step_budget/gapnet/results.json#no_such_key }}", ROOT)
    with pytest.raises(render_docs.RenderError, match=r"no row with layer=stage9"):
        render_docs.render("{{ docs/studies/channel_attack_layers.jsonl#[layer=stage9].num_channels }}", ROOT)


def test_placeholders_select_rows_compute_and_format():
    text = ("<!-- data g = docs/studies/image3x3_step_budget/gapnet/results.json -->\n"
            "{{ pct(g#test_accuracy_best) | .1f }} {{ g#epochs * (45000 // 48) | ,d }} {{ g#train_seconds_this_session | ms }}\n"
            "{{ pct(column(docs/studies/image3x3_step_budget/gapnet/metrics.csv#, 'val_accuracy')[:2]) | .1f }}\n")
    assert render_docs.render(text, ROOT) == "68.6 18,740 55 min 52 s\n41.6, 49.2\n"


def _demo_constants() -> tuple[float, dict[str, float]]:
    """``REFERENCE_GFLOPS`` and each plan's ``estimate_minutes`` from ``pcw_keras/demo.py``, without importing Keras."""
    import ast

    tree = ast.parse((ROOT / "pcw_keras" / "demo.py").read_text())
    values = {node.targets[0].id: node.value for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    estimates = {key.value: next(k.value.value for k in call.keywords if k.arg == "estimate_minutes")
                 for key, call in zip(values["PLANS"].keys, values["PLANS"].values)
                 if any(k.arg == "estimate_minutes" for k in call.keywords)}
    return values["REFERENCE_GFLOPS"].value, estimates


def test_the_demo_time_estimates_are_its_measured_runs():
    import json

    reference, estimates = _demo_constants()
    default = json.loads((ROOT / "docs/studies/demo/seed0/results.json").read_text())
    quick = json.loads((ROOT / "docs/studies/demo/quick/results.json").read_text())
    assert reference == default["machine"]["matmul_gflops"]
    assert estimates["default"] == pytest.approx(default["wall_seconds"] / 60, abs=0.01)
    assert estimates["quick"] == pytest.approx(quick["wall_seconds"] / 60 * quick["machine"]["matmul_gflops"] / reference, abs=0.01)


def test_the_backend_choice_constants_are_the_measured_rates():
    import ast
    import json

    tree = ast.parse((ROOT / "pcw_keras" / "backends.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.AnnAssign) and n.target.id == "CPU_TRAIN_IMAGES_PER_S")
    constants = ast.literal_eval(node.value)
    fused = json.loads((ROOT / "docs/bench/train_throughput_fused_bn_cpu.json").read_text())["rows"]
    backends = json.loads((ROOT / "docs/bench/train_throughput_backends_cpu.json").read_text())["rows"]
    for row in fused:
        assert constants["tensorflow"][row["precision"]] == pytest.approx(row["train_images_per_s"], abs=0.01)
    for row in (r for r in backends if r["backend"] == "jax"):
        assert constants["jax"][row["precision"]] == pytest.approx(row["train_images_per_s"], abs=0.01)


def test_the_quick_report_time_in_the_help_is_the_measured_one():
    import json

    from pcw_keras.commands.report import QUICK_SECONDS

    measured = json.loads((ROOT / "docs/bench/report_quick_cpu.json").read_text())
    assert measured["machine"]["cores"] == 2
    runs = {run["case"]: run for run in measured["runs"]}
    assert {case: tuple(run["model"]["input_shape"][:2]) for case, run in runs.items()} == {
        "location-3x3-gapnet": (96, 96), "cifar10-resnet18": (32, 32), "resnet50-96": (96, 96)}
    assert runs["resnet50-96"]["consistency"] and runs["cifar10-resnet18"]["consistency"]
    assert max(run["wall_seconds"] for run in runs.values()) < QUICK_SECONDS
