"""`pcw reproduce`: the paper's tables, their scales, the report, and a resumable run of two cells."""
import json
import os

import pytest
from click.testing import CliRunner

from pcw_keras import reproduce
from pcw_keras.choices import REPRODUCE_TABLES
from pcw_keras.cli import main


def test_tables_hold_the_papers_cells_and_values():
    channels = {cell.recipe: cell.paper["accuracy"] for cell in reproduce.TABLES["channels"]}
    assert len(channels) == 8 and channels["location-7x7-permutenet"] == 21.4 and channels["image-3x3-gapnet"] == 82.6
    translation = {cell.recipe: cell.paper for cell in reproduce.TABLES["translation"]}
    assert len(translation) == 8 and translation["cifar100-resnet18-augshift"] == {"top1": 72.6, "consistency": 85.6}
    # The APS rows follow CIFAR-10's paper rows, with no paper values.
    assert list(translation)[2:5] == ["cifar10-resnet18-augshift", "cifar10-resnet18-aps", "cifar10-resnet18-aps-blur"]
    assert translation["cifar10-resnet18-aps"] == translation["cifar10-resnet18-aps-blur"] == {}
    with pytest.raises(ValueError, match="Its cells: location-3x3-gapnet"):
        reproduce.table_cells("channels", ["location-3x3-resnet"])
    with pytest.raises(ValueError, match="channels, translation"):
        reproduce.table_cells("segmentation")
    assert tuple(reproduce.TABLES) == REPRODUCE_TABLES  # what the Keras-free CLI offers


def test_scales_set_width_epochs_and_sources():
    cell = reproduce.table_cells("channels", ["image-3x3-permutenet"])[0]
    paper = reproduce.cell_recipe(cell, "paper", seed=2)
    assert (paper["model"]["width"], paper.epochs, paper["training"]["seed"]) == (1.0, 20, 2)
    reduced = reproduce.cell_recipe(cell, "reduced", seed=0, data={"cifar10": "/data/cifar10"})
    assert (reduced["model"]["width"], reduced.epochs, reduced["data"]["source"]) == (0.125, 20, "/data/cifar10")
    assert reduced["data"]["limit"] is None  # every training image: the paper's step count
    demo = reproduce.cell_recipe(cell, "demo", seed=0)
    assert (demo["model"]["width"], demo.epochs, demo["data"]["source"]) == (0.125, 10, "cifar10-mini")
    assert (demo["data"]["validation_fraction"], demo["evaluation"]["passes"]) == (0.05, 3)  # pcw demo's own
    c100 = reproduce.cell_recipe(reproduce.table_cells("translation", ["cifar100-resnet18"])[0], "reduced", 0,
                                 data={"cifar10": "/data/cifar10"})
    assert c100["data"]["source"] == "cifar100"  # a CIFAR-10 source is not given to a CIFAR-100 cell
    with pytest.raises(ValueError, match="paper, reduced, demo"):
        reproduce.cell_recipe(cell, "tiny", seed=0)


def test_the_demo_scale_is_pcw_demos_default_plan():
    from pcw_keras.demo import PLANS, plan_recipe

    for cell in reproduce.table_cells("channels", ["location-3x3-gapnet", "image-3x3-permutenet"]):
        task, _, net = cell.recipe.split("-")
        demo = plan_recipe(task, net, PLANS["default"], source=None, seed=1)
        assert reproduce.cell_recipe(cell, "demo", seed=1).config == demo.config


def test_the_papers_kept_share_uses_the_papers_chance_whatever_the_runs_data(tmp_path):
    out = str(tmp_path)
    _fake_run(out, "channels", "image-3x3-gapnet", 0, 0.6, 1 / 4)  # a 4-class data set: chance 25%
    _fake_run(out, "channels", "image-3x3-permutenet", 0, 0.4, 1 / 4)
    cells = reproduce.table_cells("channels", ["image-3x3-gapnet", "image-3x3-permutenet"])
    lines = reproduce.kept_share_lines(reproduce.summarize("channels", cells, "demo", [0], out))
    assert lines == ["image-3x3: PermuteNet keeps 43% of GAPNet's above-chance accuracy here, 99% in the paper."]


def _fake_run(out, table, cell, seed, accuracy, chance, consistency=None, circular=None):
    path = reproduce.run_dir(out, table, reproduce.table_cells(table, [cell])[0], seed)
    os.makedirs(path)
    results = {"test_accuracy_best": accuracy, "chance": chance}
    if consistency is not None:
        results["consistency_best"] = consistency
    if circular is not None:
        results["circular_consistency_best"] = circular
    with open(os.path.join(path, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle)


def test_report_puts_mean_and_std_over_seeds_beside_the_paper(tmp_path):
    out = str(tmp_path)
    for seed, (g, p) in enumerate([(1.0, 0.2), (1.0, 0.3)]):
        _fake_run(out, "channels", "location-3x3-gapnet", seed, g, 1 / 9)
        _fake_run(out, "channels", "location-3x3-permutenet", seed, p, 1 / 9)
    cells = reproduce.table_cells("channels", ["location-3x3-gapnet", "location-3x3-permutenet"])
    rows = reproduce.summarize("channels", cells, "demo", [0, 1, 2], out)
    permutenet = rows[1]
    assert permutenet["seeds"] == 2 and permutenet["mean"] == pytest.approx(25.0)
    assert permutenet["std"] == pytest.approx(7.0711, abs=1e-3) and permutenet["paper"] == 78.8
    markdown, chart = reproduce.write_report("channels", rows, "demo", [0, 1, 2], out)
    text = open(markdown, encoding="utf-8").read()
    assert "| location-3x3-permutenet | accuracy | 78.8 | 25.0 ± 7.1 | 2/3 |" in text
    assert "demo scale" in text and "CPU cores" in text
    assert "PermuteNet keeps 16% of GAPNet's above-chance accuracy here, 76% in the paper" in text
    assert os.path.getsize(chart) > 1000


def test_translation_report_shows_aps_rows_and_circular_consistency_beside_the_paper(tmp_path):
    out = str(tmp_path)
    _fake_run(out, "translation", "cifar10-resnet18", 0, 0.5, 0.1, consistency=0.8, circular=0.7)
    _fake_run(out, "translation", "cifar10-resnet18-aps", 0, 0.45, 0.1, consistency=0.85, circular=1.0)
    cells = reproduce.table_cells("translation", ["cifar10-resnet18", "cifar10-resnet18-aps"])
    rows = reproduce.summarize("translation", cells, "reduced", [0], out)
    assert [(row["cell"], row["metric"]) for row in rows] == [
        (cell, metric) for cell in ("cifar10-resnet18", "cifar10-resnet18-aps")
        for metric in ("top1", "consistency", "circular_consistency")]
    markdown, chart = reproduce.write_report("translation", rows, "reduced", [0], out)
    with open(markdown, encoding="utf-8") as handle:
        text = handle.read()
    assert "| cifar10-resnet18 | consistency | 90.8 | 80.0 ± 0.0 | 1/1 |" in text
    assert "| cifar10-resnet18 | circular_consistency | — | 70.0 ± 0.0 | 1/1 |" in text
    assert "| cifar10-resnet18-aps | top1 | — | 45.0 ± 0.0 | 1/1 |" in text
    assert "| cifar10-resnet18-aps | circular_consistency | — | 100.0 ± 0.0 | 1/1 |" in text
    assert "—: not in the paper" in text and os.path.getsize(chart) > 1000


def test_reproduce_runs_cells_then_skips_them_when_rerun(tmp_path, tiny_npz):
    args = ["reproduce", "channels", "--scale", "demo", "--cells", "location-3x3-gapnet", "--data", tiny_npz,
            "--out", str(tmp_path)]
    estimate = ["--device", "h100-sxm", "--step-overhead-ms", "6"]  # FLOPs at a named device: nothing measured
    first = CliRunner().invoke(main, args + estimate, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "NVIDIA H100 SXM (bfloat16 peak" not in first.output  # the recipe computes in float32
    assert "NVIDIA H100 SXM (float32 peak; the share 0.1 assumed)" in first.output and "6.0 ms per step" in first.output
    assert "| location-3x3-gapnet | accuracy | 100.0 |" in first.output
    run = tmp_path / "channels" / "location-3x3-gapnet" / "seed-0"
    assert (run / "results.json").is_file() and (tmp_path / "channels" / "results.png").is_file()
    stamp = (run / "results.json").stat().st_mtime_ns
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert again.exit_code == 0 and "is finished" in again.output and "done" in again.output
    assert (run / "results.json").stat().st_mtime_ns == stamp


def test_bad_seeds_and_cells_are_named(tmp_path):
    result = CliRunner().invoke(main, ["reproduce", "channels", "--seeds", "0,x", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "0,x" in result.output
    result = CliRunner().invoke(main, ["reproduce", "channels", "--cells", "nope", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "nope" in result.output


def test_a_named_device_sets_the_rate_from_its_peak_and_the_assumed_share():
    speed = reproduce.device_speed("h100-sxm", "bfloat16", overhead=0.006)
    assert speed.rate == pytest.approx(0.1 * 989.4e12) and speed.fraction == pytest.approx(0.1)
    assert speed.seconds(flops=98.94e12, steps=1000) == pytest.approx(6.0 + 1.0)
    assert reproduce.device_speed("500", "float32", 0.0, fraction=0.5).rate == pytest.approx(250e12)
    with pytest.raises(ValueError, match="Unknown device 'tpu9'.*h100-sxm"):
        reproduce.device_speed("tpu9", "bfloat16", 0.0)
    with pytest.raises(ValueError, match="fraction=1.5"):
        reproduce.device_speed("a100", "bfloat16", 0.0, fraction=1.5)
    with pytest.raises(ValueError, match="needs a named device"):
        reproduce.estimator(fraction=0.2)


def test_the_time_budget_stops_before_an_epoch_that_would_not_end_in_time(monkeypatch):
    clock = iter([100.0, 110.0, 120.0])
    monkeypatch.setattr(reproduce.time, "perf_counter", lambda: next(clock))
    budget = reproduce.TimeBudget(deadline=135.0)
    budget.on_epoch_begin(0)  # the first epoch always starts
    budget.on_epoch_begin(1)  # 110 + 2 x 10 s (an epoch and the evaluation) <= 135
    with pytest.raises(reproduce.BudgetSpent, match="stopped before epoch 3"):
        budget.on_epoch_begin(2)  # 120 + 2 x 10 s > 135


def test_fields_set_on_the_command_line_reach_every_cell_and_the_report(tmp_path):
    _fake_run(str(tmp_path), "channels", "image-3x3-gapnet", 0, 0.5, 0.1)
    args = ["reproduce", "channels", "--cells", "image-3x3-gapnet", "--out", str(tmp_path), "--report-only",
            "--set", "training.precision=mixed_bfloat16"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "recipe fields set: training.precision=mixed_bfloat16" in result.output
    assert "| image-3x3-gapnet | accuracy | 82.6 | 50.0 ± 0.0 | 1/1 |" in result.output
    cell = reproduce.table_cells("channels", ["image-3x3-gapnet"])[0]
    recipe = reproduce.cell_recipe(cell, "paper", 0, overrides={"training.precision": "mixed_bfloat16"})
    assert (recipe["training"]["precision"], recipe["model"]["width"]) == ("mixed_bfloat16", 1.0)
    bad = CliRunner().invoke(main, ["reproduce", "channels", "--set", "width", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "section.field=value" in bad.output


def test_the_measured_step_time_counts_one_step_per_call_whatever_steps_per_execution(monkeypatch):
    from pcw_keras import recipes

    recipe = recipes.load("location-3x3-gapnet", **{"model.width": 1 / 64, "training.batch_size": 4})
    built = []
    step_model = reproduce._step_model
    monkeypatch.setattr(reproduce, "_step_model", lambda *args: built.append(step_model(*args)) or built[-1])
    assert reproduce.seconds_per_step(recipe, [str(label) for label in range(10)], steps=2, warmup=1) > 0
    model = built[0]
    assert model.steps_per_execution == recipe.steps_per_execution() > 1
    assert int(model.optimizer.iterations) == 3  # train_on_batch: one step per call, as seconds_per_step counts


def test_a_beyond_paper_row_without_a_paper_row_of_its_data_set_is_refused(monkeypatch):
    monkeypatch.setitem(reproduce.BEYOND_PAPER, "translation", ("imagenet-resnet18-aps",))
    with pytest.raises(ValueError, match="'imagenet-resnet18-aps'.*no paper row of its data set 'imagenet'"):
        reproduce._with_beyond("translation", [reproduce.Cell("cifar10-resnet18", {})])
