"""The `pcw` command line end to end: train, evaluate, demo, and its errors."""
import json

import pytest
from click.testing import CliRunner
from PIL import Image

from pcw_keras.cli import main

TINY = ["--set", "model.width=0.0625", "--batch-size", "16", "--set", "evaluation.passes=2", "--set", "training.jit_compile=false"]


def invoke(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_recipes_lists_names_and_descriptions():
    result = invoke("recipes")
    assert result.exit_code == 0
    assert "location-3x3-gapnet" in result.output and "PermuteNet" in result.output


def test_train_writes_a_complete_run_directory_and_evaluate_reads_it(tiny_npz, tmp_path):
    run_dir = tmp_path / "run"
    result = invoke("train", "location-3x3-gapnet", "--data", tiny_npz, "--epochs", "2", "--out", str(run_dir), *TINY)
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    for name in ("recipe.yaml", "metrics.csv", "best.keras", "last.keras", "results.json", "logs"):
        assert (run_dir / name).exists(), name
    rows = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch") and [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["recipe"] == "location-3x3-gapnet" and results["epochs"] == 2
    assert results["chance"] == pytest.approx(1 / 9) and len(results["per_cell_accuracy_last"]) == 9
    assert not (run_dir / "backup").exists()
    _check_reported_scores(run_dir, results)
    # 18 steps of training already locate the image above chance: 22-72% test accuracy (measured over training
    # seeds 0-7 and five other draws of the tiny data set), chance 11%.
    assert results["test_accuracy_best"] > results["chance"] + 0.05, results

    printed = f"{100 * results['test_accuracy_best']:.1f}% (best validation epoch), {100 * results['test_accuracy_last']:.1f}% (last"
    assert f"test accuracy: {printed} epoch); chance 11.1%" in result.output

    evaluated = invoke("evaluate", str(run_dir))
    assert evaluated.exit_code == 0 and f"location-3x3-gapnet: test accuracy {printed}); chance 11.1%" in evaluated.output
    again = json.loads((run_dir / "results.json").read_text())
    assert again["test_accuracy_best"] == pytest.approx(results["test_accuracy_best"])  # same placements, same model


def _check_reported_scores(run_dir, results):
    """results.json against the saved models' own predictions on the same placements, and against metrics.csv."""
    import csv

    import keras
    import numpy as np

    from canvas_scores import recompute, weighted_cell_mean
    from pcw_keras.data import canvas_dataset
    from pcw_keras.models.inference import inference_model
    from pcw_keras.runs import Run

    recipe = Run(str(run_dir)).recipe
    test_images = recipe.load_images("test")
    assert results["test_images"] == len(test_images)
    passes, seed = recipe["evaluation"]["passes"], recipe["training"]["seed"]
    models = {which: keras.models.load_model(run_dir / f"{which}.keras", compile=False) for which in ("best", "last")}
    for which, model in models.items():
        # The evaluation runs the model's inference form in the precision results.json records.
        again = recompute(inference_model(model, results["precision"]), test_images, grid=3, task="location", passes=passes, seed=seed,
                          batch_size=recipe["evaluation"]["batch_size"])
        assert results[f"test_accuracy_{which}"] == pytest.approx(again["accuracy"], abs=1e-12), which
        np.testing.assert_allclose(results[f"per_cell_accuracy_{which}"], again["per_cell_accuracy"], rtol=0, atol=1e-12)
        # The per-cell accuracies, weighted by how often each cell was drawn, average to the overall accuracy.
        assert weighted_cell_mean(results[f"per_cell_accuracy_{which}"], again["per_cell_count"]) == pytest.approx(
            results[f"test_accuracy_{which}"], abs=1e-12)

    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as handle:
        val_accuracy = [float(row["val_accuracy"]) for row in csv.DictReader(handle)]
    assert results["best_epoch"] == int(np.argmax(val_accuracy))
    # best.keras is the model of that epoch: its accuracy on the validation placements is the logged one.
    # (The validation split and its placements as training drew them: seed + 1, the training batches, no flips.)
    images = recipe.datasets().validation_images
    validation = canvas_dataset(images, grid=3, task="location", batch_size=recipe["training"]["batch_size"],
                                training=False, seed=seed + 1, flip=False)
    right = sum(int((np.argmax(models["best"].predict_on_batch(canvases), axis=-1) == labels).sum())
                for canvases, labels in validation)
    assert right / len(images) == pytest.approx(max(val_accuracy), abs=1e-6)


def test_same_seed_same_metrics(tiny_npz, tmp_path):
    metrics = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert invoke("train", "image-3x3-permutenet", "--data", tiny_npz, "--epochs", "1", "--seed", "3", "--out", str(out), *TINY).exit_code == 0
        metrics.append([float(v) for v in (out / "metrics.csv").read_text().splitlines()[1].split(",")])
    assert metrics[0] == pytest.approx(metrics[1], abs=1e-6)


def test_a_run_directory_refuses_another_recipe(tiny_npz, tmp_path):
    out = str(tmp_path / "run")
    assert invoke("train", "location-3x3-gapnet", "--data", tiny_npz, "--epochs", "1", "--out", out, *TINY).exit_code == 0
    result = invoke("train", "location-3x3-permutenet", "--data", tiny_npz, "--epochs", "1", "--out", out, *TINY)
    assert result.exit_code == 1 and "different recipe" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "location-4x4"], "Unknown recipe 'location-4x4'"),
        (["train", "location-3x3-gapnet", "--set", "model.widht=1"], "model.widht"),
        (["train", "location-3x3-gapnet", "--set", "model.width"], "section.field=value"),
        (["train", "location-3x3-gapnet", "--epochs", "0"], "--epochs"),
        (["evaluate", "."], "not a run directory"),
        (["demo", "--quick", "--full"], "one of --quick and --full"),
    ],
)
def test_bad_input_gives_a_clear_error(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert message in result.output


def test_missing_data_names_the_path(tmp_path):
    result = CliRunner().invoke(main, ["train", "location-3x3-gapnet", "--data", str(tmp_path / "nope.tar.gz"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "nope.tar.gz" in result.output


def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = invoke("demo", "--quick", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "GAPNet" in result.output and "PermuteNet" in result.output and "chance" in result.output
    results = json.loads((out / "results.json").read_text())
    table = (out / "results.md").read_text().splitlines()
    for name, net in (("GAPNet", "gapnet"), ("PermuteNet", "permutenet")):
        assert set(results[name]) == {"location", "image"}
        row = next(line for line in table if line.startswith(f"| {name} |"))
        for task in ("location", "image"):
            run = results["runs"][f"{task}-{net}"]
            # The accuracy shown is the run's: the mean of its passes, each a count of right answers on the test images.
            assert results[name][task] == run["test_accuracy"] == pytest.approx(sum(run["accuracy_per_pass"]) / len(run["accuracy_per_pass"]))
            hits = [accuracy * results["plan"]["test_limit"] for accuracy in run["accuracy_per_pass"]]
            assert all(abs(h - round(h)) < 1e-9 for h in hits), hits
            assert f"| {100 * results[name][task]:.1f} |" in row, (row, results[name])
            # Each network is a pcw train run of its own; the demo scores its last epoch's model.
            trained = json.loads((out / f"{task}-{net}" / "results.json").read_text())
            assert trained["recipe"] == run["recipe"] and trained["test_accuracy_last"] == run["test_accuracy"]
            assert len(run["validation_curve"]) == run["epochs"]
    assert results["chance"]["location"] == pytest.approx(1 / 9)
    assert len(results["runs"]["location-gapnet"]["per_cell_accuracy"]) == 9
    assert "| GAPNet |" in (out / "results.md").read_text() and "| PermuteNet (paper) |" in (out / "results.md").read_text()
    assert "GAPNet's above-chance location accuracy" in result.output and set(results["kept_share"]) == {"location", "image"}
    for picture in ("location_cells_gapnet.png", "location_cells_permutenet.png", "location_examples.png"):
        with Image.open(out / picture) as image:
            assert image.format == "PNG" and image.size[0] > 200


def _demo_results(gap_location, perm_location, gap_image, perm_image, curve):
    return {"grid": 3, "GAPNet": {"location": gap_location, "image": gap_image},
            "PermuteNet": {"location": perm_location, "image": perm_image},
            "chance": {"location": 1 / 9, "image": 0.1}, "runs": {"image-permutenet": {"validation_curve": curve}}}


def test_demo_summary_follows_the_numbers():
    from pcw_keras.demo import format_table, is_rising, summary_line

    both = summary_line(_demo_results(1.0, 0.2, 0.5, 0.45, [0.1, 0.3, 0.45]))
    assert "80 points" in both and "semantics survive" in both
    rising = summary_line(_demo_results(1.0, 0.2, 0.4, 0.18, [0.1, 0.12, 0.11, 0.15, 0.17, 0.19]))
    assert "still rising" in rising
    flat = summary_line(_demo_results(1.0, 0.2, 0.4, 0.18, [0.2, 0.3, 0.2, 0.1, 0.2, 0.1]))
    assert "not yet caught up" in flat
    assert "not yet apart" in summary_line(_demo_results(0.3, 0.2, 0.1, 0.1, []))
    assert is_rising([0.1, 0.2, 0.3]) and not is_rising([0.3, 0.3, 0.2, 0.2, 0.1, 0.1])
    assert is_rising([0.084, 0.04, 0.156, 0.104, 0.18, 0.196, 0.152, 0.176, 0.2, 0.124])  # a measured demo curve
    table = format_table(_demo_results(1.0, 0.2, 0.5, 0.45, []))
    assert "GAPNet" in table and "100.0%" in table and "11.1%" in table
    assert "PermuteNet (paper)" in table and "78.8%" in table and "82.1%" in table


def test_demo_states_the_kept_share_asymmetry_and_the_papers():
    from pcw_keras.demo import kept_shares, share_line

    # The demo budget's measured figures: location 100 / 11.6, image 41.3 / 23.6.
    results = _demo_results(1.0, 0.116, 0.413, 0.236, [])
    shares = kept_shares(results)
    assert shares["location"] == pytest.approx(0.0056, abs=1e-3) and shares["image"] == pytest.approx(0.435, abs=1e-3)
    line = share_line(results)
    assert "keeps 1% of GAPNet's above-chance location accuracy and 43% of its image accuracy" in line
    assert "the paper, full scale: 76% and 99%" in line and "costs position more than semantics" in line


def test_demo_progress_prints_lines_every_five_percent_in_a_log():
    import io

    from pcw_keras.demo import _ProgressBar

    log = io.StringIO()
    bar = _ProgressBar(total_steps=200, total_models=1, stream=log)
    bar.start_model("location GAPNet")
    for step in range(200):
        bar.on_train_batch_end(step)
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and 20 <= len(lines) <= 23 and lines[-1].startswith("[####")


def test_demo_progress_puts_what_training_prints_above_the_bar():
    import contextlib
    import io

    from pcw_keras.demo import BAR_WIDTH, _ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream in (io.StringIO(), Terminal()):
        bar = _ProgressBar(total_steps=10, total_models=1, stream=stream)
        bar.start_model("location GAPNet")
        with contextlib.redirect_stdout(bar):
            print("pcw: location-3x3-gapnet", end="")
            print(" -> runs/demo/location-gapnet")
        text = "pcw: location-3x3-gapnet -> runs/demo/location-gapnet"
        if isinstance(stream, Terminal):  # the bar is overwritten by the line, then drawn again below it
            drawn = stream.getvalue().split("\rpcw:")[0]
            assert drawn.startswith("\r[....") and stream.getvalue() == f"{drawn}\r{text:<{BAR_WIDTH}}\n{drawn}"
        else:
            assert stream.getvalue().splitlines()[-1] == text


def test_help_imports_neither_keras_nor_tensorflow():
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from pcw_keras.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\n"
        "assert result.exit_code == 0 and '--backend' in result.output, result.output\n"
        "print(sorted(name for name in ('keras', 'tensorflow', 'jax') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_backend_option_names_a_backend_that_is_not_installed(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real_find_spec(name, *a))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    result = CliRunner().invoke(main, ["--backend", "jax", "recipes"])
    assert result.exit_code != 0 and "'jax'" in result.output and "not installed" in result.output
    assert invoke("--backend", "nope", "recipes").exit_code != 0


def test_commands_do_not_print_tensorflows_start_up_notices(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "pcw_keras.cli", "evaluate", str(tmp_path / "none")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "does not exist" in result.stderr
    assert "oneDNN" not in result.stderr and "InitializeLog" not in result.stderr, result.stderr


def _snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_finished_run_is_left_alone_and_more_epochs_train_on(tiny_npz, tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", "location-3x3-gapnet", "--data", tiny_npz, "--out", str(run_dir), *TINY]
    assert invoke(*args, "--epochs", "1").exit_code == 0
    before = _snapshot(run_dir)
    again = invoke(*args, "--epochs", "1")
    assert again.exit_code == 0 and "is finished" in again.output and "test accuracy" in again.output
    assert _snapshot(run_dir) == before  # not a byte, not a modification time

    more = invoke(*args, "--epochs", "2")
    assert more.exit_code == 0 and "continuing from epoch 1" in more.output, more.output
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["epoch", "0", "1"]  # exactly one more epoch
    assert json.loads((run_dir / "results.json").read_text())["epochs"] == 2

    fewer = invoke(*args, "--epochs", "1")
    assert fewer.exit_code != 0 and "--force" in fewer.output
    forced = invoke(*args, "--epochs", "1", "--force")
    assert forced.exit_code == 0 and len((run_dir / "metrics.csv").read_text().splitlines()) == 2


def test_a_run_killed_during_its_evaluation_is_evaluated_not_retrained(tiny_npz, tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", "location-3x3-gapnet", "--data", tiny_npz, "--out", str(run_dir), "--epochs", "1", *TINY]
    assert invoke(*args).exit_code == 0
    (run_dir / "results.json").unlink()  # as if killed after training, before results.json
    stamp = (run_dir / "last.keras").stat().st_mtime_ns
    again = invoke(*args)
    assert again.exit_code == 0 and "evaluating" in again.output and (run_dir / "results.json").is_file()
    assert (run_dir / "last.keras").stat().st_mtime_ns == stamp
