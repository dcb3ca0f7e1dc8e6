"""``pcw report``: one folder per model with its page (Markdown, self-contained HTML), figures and raw files.

A canvas run, a CIFAR classifier run and a ``keras.applications`` model each
get the whole page; the command lines it prints give its figures' numbers
again; bad input ends with exit 2 and nothing written.
"""
import base64
import json
import shlex
from html.parser import HTMLParser

import keras
import pytest
from click.testing import CliRunner
from PIL import Image

from pcw_keras import recipes
from pcw_keras.cli import main
from pcw_keras.evaluation.model_layers import stage_layers

SMALL = ["--quick", "--rank-limit", "4", "--limit", "8", "--top", "25%", "--random-draws", "1", "--passes", "1",
         "--curve-max-shift", "2", "--precision", "float32"]
SECTIONS = ("## The model", "## How much each stage encodes position", "## Switching position channels off",
            "## Shift consistency", "## Reproduce")


def _cli(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _run(tiny_npz, tmp_path_factory, name):
    """A run directory as ``pcw train`` begins it (its recipe and a model at its initial weights): what the report reads."""
    recipe = recipes.load(name, **{"data.source": tiny_npz, "model.width": 0.0625})
    run_dir = tmp_path_factory.mktemp(name)
    (run_dir / "recipe.yaml").write_text(recipe.to_yaml())
    recipe.build_model(class_names=list("abcd"), steps_per_epoch=10).save(run_dir / "best.keras")
    return run_dir


class _Page(HTMLParser):
    """The tags, the attributes that could fetch something, and the images of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tags, self.references, self.images = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "action", "poster"):
                self.references.append(value)
                if tag == "img" and name == "src":
                    self.images.append(value)


def _check_report(out, figures):
    """The page, its figures (valid PNGs, each embedded in the HTML) and its sections; returns the report's JSON."""
    markdown = (out / "report.md").read_text()
    for section in SECTIONS:
        assert section in markdown, section
    assert "pcw rank " in markdown and "pcw attack " in markdown and "pcw report " in markdown
    for name in figures:
        assert f"]({name})" in markdown, name
        with Image.open(out / name) as image:
            image.verify()
            assert image.format == "PNG"
    page = _Page()
    page.feed((out / "report.html").read_text())
    page.close()
    assert {"html", "head", "style", "body", "table", "figure"} <= set(page.tags)
    assert not {"script", "link", "iframe"} & set(page.tags)
    assert page.references == page.images  # nothing but the embedded figures is referenced
    embedded = [base64.b64decode(src.removeprefix("data:image/png;base64,")) for src in page.images]
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert embedded == [(out / name).read_bytes() for name in figures]
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def location_run(tiny_npz, tmp_path_factory):
    return _run(tiny_npz, tmp_path_factory, "location-3x3-gapnet")


def test_the_report_of_a_canvas_run_and_its_command_lines_give_its_numbers(location_run, tmp_path):
    out = tmp_path / "report"
    result = _cli("report", location_run, *SMALL, "--out", out)
    assert result.exit_code == 0, result.output
    assert "pcw report: [5/5] attack on `stage4`" in result.output  # progress, step by step
    report = _check_report(out, ["stages.png", "ranking_stage4.png", "attack.png"])
    assert [stage["layer"] for stage in report["stages"]] == ["stage1", "stage2", "stage3", "stage4"]
    assert report["model"]["task"] == "location" and report["model"]["input_shape"] == [96, 96, 3]
    assert report["model"]["parameters"] > 0 and report["model"]["flops"] > 0 and report["consistency"] is None
    assert "Not measured" in (out / "report.md").read_text()

    # The attack's command line, run as it is written, gives the report's figures again.
    line = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("pcw attack "))
    again = _cli(*shlex.split(line)[1:])
    assert again.exit_code == 0, again.output
    reproduced = json.loads((out / "reproduced" / "attack_stage4.json").read_text())
    measured = json.loads((out / "attack.json").read_text())
    assert reproduced["rows"] == measured["rows"] and reproduced["baseline"] == measured["baseline"]


@pytest.mark.jax  # the report runs under JAX too
def test_the_report_of_a_cifar_classifier_has_its_shift_consistency(tiny_npz, tmp_path_factory, tmp_path):
    run = _run(tiny_npz, tmp_path_factory, "cifar10-resnet18")
    result = _cli("report", run, *SMALL)  # default --out: RUN_DIR/report
    assert result.exit_code == 0, result.output
    out = run / "report"
    report = _check_report(out, ["stages.png", "ranking_stage4.png", "attack.png", "consistency_curve.png"])
    assert report["options"]["method"] == "mirror" and report["attack"]["metric"] == "accuracy"
    measured = json.loads((out / "consistency.json").read_text())
    assert report["consistency"]["consistency"] == measured["consistency"] and measured["images"] == 8
    assert measured["curve"]["shift"] == [1, 2]
    assert report["consistency"]["circular_consistency"] == measured["circular_consistency"]

    # The consistency command line, run as it is written, gives the report's figures again.
    line = next(line for line in (out / "report.md").read_text().splitlines()
                if line.startswith("pcw evaluate consistency "))
    again = _cli(*shlex.split(line)[1:])
    assert again.exit_code == 0, again.output
    reproduced = json.loads((out / "reproduced" / "consistency.json").read_text())
    assert {key: reproduced[key] for key in measured if key != "model"} == {
        key: value for key, value in measured.items() if key != "model"}


def test_the_report_of_a_keras_applications_model_ranks_its_stages_by_size(tiny_npz, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3), classes=10,
                                                include_preprocessing=False)
    path = tmp_path / "mobilenet_v3_small.keras"
    model.save(path)
    result = _cli("report", path, "--images", tiny_npz, "--preprocess", "imagenet", *SMALL)
    assert result.exit_code == 0, result.output
    out = tmp_path / "mobilenet_v3_small-report"
    report = _check_report(out, ["stages.png", f"ranking_{report_layer(out)}.png", "attack.png"])
    layers = [stage["layer"] for stage in report["stages"]]
    assert layers == stage_layers(model)  # the inference form keeps the stages' names
    sizes = [model.get_layer(layer).output.shape[1] for layer in layers]
    assert sizes == [32, 16, 8, 4, 2]  # one per spatial size; no squeeze-and-excitation branch (1x1)
    assert report["model"]["task"] == "features" and report["attack"]["metric"] == "agreement"
    assert report["model"]["parameters"] == model.count_params()


def test_the_command_lines_complete_model_with_the_options_of_its_commands():
    from pcw_keras.commands import consistency, report
    from pcw_keras.commands.rank import MODEL_OPTION_NAMES
    from pcw_keras.report.command_lines import CONSISTENCY_TAKES

    assert [param.name for param in report.command.params[1:len(MODEL_OPTION_NAMES) + 1]] == list(MODEL_OPTION_NAMES)
    assert set(CONSISTENCY_TAKES) == {param.name for param in consistency.command.params} & set(MODEL_OPTION_NAMES)


def test_the_stages_of_an_encoder_decoder_end_at_its_bottleneck():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="enc1")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="enc2")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="bottleneck")(x)
    x = keras.layers.UpSampling2D(name="up2")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="dec2")(x)
    x = keras.layers.UpSampling2D(name="up1")(x)
    outputs = keras.layers.Conv2D(1, 3, padding="same", name="dec1")(x)
    model = keras.Model(inputs, outputs)
    # The decoder's 16x16 and 32x32 maps are not the encoder's stages; the last stage (attacked) is the deepest.
    assert stage_layers(model) == ["enc1", "enc2", "bottleneck"]


def report_layer(out) -> str:
    return json.loads((out / "report.json").read_text())["attack"]["layer"]


def test_bad_input_exits_2_and_writes_nothing(location_run, tmp_path):
    missing = _cli("report", tmp_path / "no_such_run", "--out", tmp_path / "out")
    assert missing.exit_code == 2 and "No run directory or model at" in missing.output and "no_such_run" in missing.output
    layer = _cli("report", location_run, "--layers", "stage1,stage9", "--out", tmp_path / "out")
    assert layer.exit_code == 2 and "'stage9'" in layer.output
    top = _cli("report", location_run, "--top", "0", "--out", tmp_path / "out")
    assert top.exit_code == 2 and "'0'" in top.output
    data = _cli("report", location_run, "--data", tmp_path / "none.npz", "--out", tmp_path / "out")
    assert data.exit_code == 2 and "none.npz" in data.output
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    taken = _cli("report", location_run, "--out", tmp_path / "out")
    assert taken.exit_code == 2 and "--overwrite" in taken.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


@pytest.mark.jax
def test_the_readme_example_is_what_its_raw_files_render(tmp_path):
    """docs/report_example: its page and figures come from its raw files alone (``render``)."""
    import shutil
    from pathlib import Path

    from pcw_keras.report import render

    example = Path(__file__).parents[1] / "docs" / "report_example"
    copy = shutil.copytree(example, tmp_path / "example")
    for name in ("report.md", "report.html", "stages.png", "attack.png", "ranking_stage4.png"):
        (copy / name).unlink()
    assert render(str(copy)) == ["stages.png", "ranking_stage4.png", "attack.png", "report.md", "report.html"]
    assert (copy / "report.md").read_text() == (example / "report.md").read_text()
    _check_report(copy, ["stages.png", "ranking_stage4.png", "attack.png"])


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def test_the_page_renders_in_a_headless_browser(tmp_path):
    """The README example's report.html, opened from the disk by a headless Chromium, draws text and figures."""
    import shutil
    import subprocess
    from pathlib import Path

    import numpy as np

    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        pytest.skip(f"no headless browser on PATH (looked for {', '.join(BROWSERS)})")
    page = Path(__file__).parents[1] / "docs" / "report_example" / "report.html"
    shot = tmp_path / "page.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,1800", f"--screenshot={shot}",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1800, 1100)
    # Text (dark pixels) and the embedded figures (their red: the top-ranked channels' bars and dots) are drawn.
    assert (pixels.sum(-1) < 200).mean() > 0.005
    assert ((pixels[..., 0] > 180) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)).sum() > 500
