"""Bring your own model: every command takes a run directory or a model file, every run exports, bad input says so.

CIFAR classifiers (plain, BlurPool, AugShift-trained) export as the plain
classifier, checked on their recipe's test images; a Keras ResNet-50 with
random weights is ranked and attacked by its own layer names; exported
``.tflite`` files are scored for shift consistency on the same images and
shifts as Keras; each bad case ends in one error line and an empty ``--out``.
"""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from pcw_keras import recipes
from pcw_keras.cli import main
from pcw_keras.evaluation import consistency
from pcw_keras.export.served import TFLiteClassifier
from pcw_keras.export.tflite import LiteRTModel
from pcw_keras.normalization import Normalization
from pcw_keras.runs import Run, open_model
from pcw_keras.training import train

RUNNER = os.path.join(os.path.dirname(__file__), os.pardir, "export", "pcw_tflite_runner.py")
FAST = ["--check-samples", "40", "--calibration-steps", "16", "--latency-runs", "3"]


def _run(tiny_npz, tmp_path_factory, name):
    recipe = recipes.load(name, **{"data.source": tiny_npz, "model.width": 0.0625, "training.epochs": 1,
                                   "training.batch_size": 16, "training.jit_compile": False})
    run_dir = tmp_path_factory.mktemp(name)
    train(recipe, run_dir, verbose=0)
    return str(run_dir)


@pytest.fixture(scope="module")
def augshift_run(tiny_npz, tmp_path_factory):
    return _run(tiny_npz, tmp_path_factory, "cifar10-resnet18-augshift")


@pytest.fixture(scope="module")
def plain_run(tiny_npz, tmp_path_factory):
    return _run(tiny_npz, tmp_path_factory, "cifar10-resnet18")


def _cli(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _one_error_line(result) -> str:
    """The command failed with one ``Error:`` line, no traceback and no serialized config."""
    assert result.exit_code != 0, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "Traceback" not in result.output and "config" not in errors[0], result.output
    return errors[0]


@pytest.fixture(scope="module")
def int8_exports(augshift_run, plain_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    for name, run in (("augshift", augshift_run), ("plain", plain_run)):
        result = _cli("export", run, "--format", "tflite", "--quantize", "int8", "--out", root / name, *FAST)
        assert result.exit_code == 0, result.output
    return root


def test_augshift_and_plain_cifar_runs_export_as_plain_classifiers(int8_exports, augshift_run):
    report = json.loads((int8_exports / "augshift" / "export_report.json").read_text())
    assert report["recipe"] == "cifar10-resnet18-augshift" and report["check_inputs"] == "the recipe's test images"
    assert report["check"]["passed"] and report["input"]["shape"] == [None, 32, 32, 3]
    assert report["input"]["preprocess"] == "cifar" and report["bias_correction"] is True
    assert (int8_exports / "augshift" / "labels.txt").read_text().split() == ["0", "1", "2", "3"]
    # The exported file is the classifier alone: its logits follow the Keras classifier's on test images.
    classifier = Run(augshift_run).model("best")
    assert type(classifier).__name__ == "Functional"
    images = Run(augshift_run).test_images().images[:16]
    exported = LiteRTModel((int8_exports / "augshift" / "model.tflite").read_bytes())(images)
    reference = classifier.predict_on_batch(Normalization.named("cifar").apply(images))
    assert np.abs(exported - reference).max() < 0.25 * (np.abs(reference).max() + 1e-6) + 0.05


def test_the_int8_export_runs_in_the_edge_runner_without_tensorflow(int8_exports, tmp_path):
    blocker = tmp_path / "blocker" / "tensorflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('TensorFlow is not on this device')\n")
    np.save(tmp_path / "image.npy", np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    result = subprocess.run([sys.executable, RUNNER, str(int8_exports / "plain"), str(tmp_path / "image.npy"), "--json"],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path / "blocker")},
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["predictions"][0]["label"] in ("0", "1", "2", "3")


def test_a_blurpool_run_exports(tiny_npz, tmp_path_factory, tmp_path):
    run = _run(tiny_npz, tmp_path_factory, "cifar10-resnet18-blurpool")
    result = _cli("export", run, "--format", "tflite", "--out", tmp_path / "blur", *FAST)
    assert result.exit_code == 0, result.output
    check = json.loads((tmp_path / "blur" / "export_report.json").read_text())["check"]
    assert check["top1_agreement"] == 1.0 and check["max_abs_diff"] < 1e-3


def _sequential() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((64, 64, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a"),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv_b"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        # A wide head makes the untrained model decided on its inputs (its top class leads), as a trained one is.
        keras.layers.Dense(5, name="head", kernel_initializer=keras.initializers.RandomNormal(stddev=20.0, seed=0)),
    ], name="small_cnn")


def test_a_foreign_keras_file_exports_on_calibration_images(tiny_npz, tmp_path):
    path = tmp_path / "small.keras"
    _sequential().save(path)
    result = _cli("export", path, "--calibration", tiny_npz, "--preprocess", "unit", "--quantize", "int8",
                  "--out", tmp_path / "small", *FAST)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "small" / "export_report.json").read_text())
    assert report["input"]["preprocess"] == "unit" and report["input"]["std"] == [1.0, 1.0, 1.0]
    check = report["check"]
    # No labels but Keras' own: agreement is the figure, and there is no accuracy line.
    assert check["outcome"] == "passed" and "accuracy_keras" not in check and "accuracy_exported" not in check
    assert report["check_inputs"].endswith("(no labels: compared with Keras)")
    assert (tmp_path / "small" / "labels.txt").read_text().split("\n")[4] == "output 4"


def test_a_model_of_no_recipe_needs_calibration_images(tmp_path):
    path = tmp_path / "small.keras"
    _sequential().save(path)
    line = _one_error_line(_cli("export", path, "--out", tmp_path / "out"))
    assert "--calibration FOLDER|TARBALL|NPZ" in line and not (tmp_path / "out").exists()


def test_consistency_of_tflite_exports_is_measured_on_the_same_images_and_shifts(augshift_run, int8_exports, tiny_npz,
                                                                                   tmp_path):
    float_export = tmp_path / "f32"
    assert _cli("export", augshift_run, "--format", "tflite", "--out", float_export, *FAST).exit_code == 0
    scores = {}
    for name, model in (("keras", augshift_run), ("float32", float_export / "model.tflite"),
                        ("int8", int8_exports / "augshift" / "model.tflite")):
        result = _cli("evaluate", "consistency", model, "--data", tiny_npz, "--passes", "2", "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        scores[name] = json.loads((tmp_path / name / "consistency.json").read_text())
    # A float32 export predicts as Keras does: same consistency on the same shifted images, to one image in 40.
    assert scores["float32"]["consistency"] == pytest.approx(scores["keras"]["consistency"], abs=1 / 40)
    assert scores["float32"]["accuracy"] == pytest.approx(scores["keras"]["accuracy"], abs=1 / 40)
    assert scores["int8"]["model"].endswith("model.tflite")

    # int8 may move consistency only through the crops whose top-1 it changes: a pair of views changes its
    # agreement only if one of its two predictions changed, so |int8 - Keras| <= changed crops / (images * passes).
    int8 = TFLiteClassifier(int8_exports / "augshift" / "model.tflite")
    assert int8.name == "augshift"
    classifier, changed = Run(augshift_run).model("best"), []

    def int8_beside_keras(images):
        outputs = int8(images)
        changed.append(int((outputs.argmax(-1) != classifier.predict_on_batch(images).argmax(-1)).sum()))
        return outputs

    data = np.load(tiny_npz)
    replayed = consistency(int8_beside_keras, (data["x_test"], data["y_test"]), passes=2, verbose=0)
    assert replayed["consistency"] == scores["int8"]["consistency"]  # the CLI's crops, replayed
    bound = sum(changed) / (replayed["images"] * replayed["passes"])
    assert abs(scores["int8"]["consistency"] - scores["keras"]["consistency"]) <= bound + 1e-12, (scores, bound)


def test_a_savedmodel_export_scores_as_keras_and_refuses_layer_questions(plain_run, tiny_npz, tmp_path):
    assert _cli("export", plain_run, "--format", "savedmodel", "--out", tmp_path / "sm", *FAST).exit_code == 0
    scores = []
    for model in (plain_run, tmp_path / "sm"):
        result = _cli("evaluate", "consistency", model, "--data", tiny_npz, "--passes", "1", "--out", tmp_path / "c")
        assert result.exit_code == 0, result.output
        scores.append(json.loads((tmp_path / "c" / "consistency.json").read_text()))
    assert scores[1]["consistency"] == scores[0]["consistency"] and scores[1]["accuracy"] == scores[0]["accuracy"]
    assert "serves outputs only" in _one_error_line(_cli("rank", tmp_path / "sm"))


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    path = tmp_path_factory.mktemp("r50") / "resnet50.keras"
    model.save(path)
    return path


def test_rank_and_attack_a_keras_applications_resnet50_by_its_layer_names(resnet50_file, tiny_npz, tmp_path):
    common = ["--images", tiny_npz, "--preprocess", "imagenet", "--rank-limit", "8", "--batch-size", "32"]
    result = _cli("rank", resnet50_file, *common, "--out", tmp_path / "default")
    assert result.exit_code == 0, result.output
    ranking = json.loads((tmp_path / "default" / "ranking_canvas.json").read_text())
    assert ranking["layer"] == "conv5_block3_out" and ranking["num_channels"] == 2048 and ranking["grid"] == 2

    # Beside the default layer's ranking, another layer is ranked anew and reported apart.
    result = _cli("attack", resnet50_file, *common, "--layer", "conv4_block6_out", "--limit", "8", "--top", "1,5%",
                  "--random-draws", "1", "--out", tmp_path / "default")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "default" / "ranking_canvas_conv4_block6_out.json").is_file()
    report = json.loads((tmp_path / "default" / "attack_conv4_block6_out.json").read_text())
    assert report["layer"] == "conv4_block6_out" and report["metric"] == "agreement"
    assert report["baseline"]["agreement"] == 1.0 and [row["k"] for row in report["rows"]] == [1, 51]


def test_a_sequential_model_is_ranked_at_its_last_map_before_pooling(tiny_npz, tmp_path):
    path = tmp_path / "small.keras"
    _sequential().save(path)
    result = _cli("rank", path, "--images", tiny_npz, "--rank-limit", "8", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "ranking_canvas.json").read_text())["layer"] == "conv_b"


def test_a_layer_that_does_not_exist_names_the_nearest(resnet50_file, tiny_npz, tmp_path):
    line = _one_error_line(_cli("rank", resnet50_file, "--images", tiny_npz, "--layer", "conv4_block6",
                                "--out", tmp_path / "out"))
    assert "has no layer 'conv4_block6' (closest: conv4_block6_out" in line
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_model_says_so(tmp_path):
    path = tmp_path / "notes.keras"
    path.write_text("not a model")
    for command in (["rank", path], ["export", path, "--calibration", "cifar10-mini"]):
        line = _one_error_line(_cli(*command, "--out", tmp_path / "out"))
        assert "is not a Keras model" in line and not (tmp_path / "out").exists()


@keras.saving.register_keras_serializable(package="tests")
class RandomShuffle(keras.layers.Layer):
    """A layer of an op that TFLite builtins cannot run (stateless random numbers)."""

    def call(self, inputs):
        order = keras.ops.argsort(keras.random.uniform((inputs.shape[-1],), seed=0))
        return keras.ops.take(inputs, order, axis=-1)


def test_a_non_convertible_op_is_named_and_nothing_is_written(tmp_path):
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    path = tmp_path / "shuffle.keras"
    keras.Model(inputs, keras.layers.Dense(4)(RandomShuffle()(pooled))).save(path)
    line = _one_error_line(_cli("export", path, "--calibration", "cifar10-mini", "--out", tmp_path / "out", *FAST))
    assert "builtin-only TFLite cannot run" in line and "StatelessRandom" in line
    assert sorted(os.listdir(tmp_path)) == ["shuffle.keras"]


def test_an_export_below_the_gate_gives_the_figures_and_writes_nothing(plain_run, tmp_path, monkeypatch):
    call = LiteRTModel.__call__
    monkeypatch.setattr(LiteRTModel, "__call__", lambda self, images: np.roll(call(self, images), 1, axis=-1))
    line = _one_error_line(_cli("export", plain_run, "--min-agreement", "0.99", "--out", tmp_path / "out", *FAST))
    assert line.startswith("Error: The export does not compute what Keras computes: top-1 agreement ")
    assert "relative error" in line and "max |diff|" in line and not (tmp_path / "out").exists()


def test_close_figures_that_change_decided_answers_still_fail(plain_run, tmp_path, monkeypatch):
    """Swapping the top two outputs on 1 input in 8: a small error overall, but decided answers change."""
    call = LiteRTModel.__call__

    def swap_some(self, images):
        outputs = call(self, images).copy()
        rows = np.arange(0, len(outputs), 8)
        top = np.argsort(outputs[rows], axis=-1)[:, -2:]
        outputs[rows[:, None], top] = outputs[rows[:, None], top[:, ::-1]]
        return outputs

    monkeypatch.setattr(LiteRTModel, "__call__", swap_some)
    line = _one_error_line(_cli("export", plain_run, "--max-error", "10", "--out", tmp_path / "out", *FAST))
    assert "top-1 agreement on the decided inputs" in line and "below the required 99.00%" in line
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def random_softmax_file(tmp_path_factory):
    """A keras.applications model with random weights and its softmax: undecided on every input."""
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3), classes=10,
                                                include_preprocessing=False)
    path = tmp_path_factory.mktemp("mnv3") / "mobilenet_v3_small.keras"
    model.save(path)
    return path


def _export_unnormalised(path, images, out):
    """``pcw export`` of a model file taking raw pixels, checked on ``images``."""
    return _cli("export", path, "--calibration", images, "--preprocess", "none", "--out", out, *FAST)


def test_an_undecided_keras_applications_model_is_inconclusive_not_passed(random_softmax_file, tiny_npz, tmp_path):
    result = _export_unnormalised(random_softmax_file, tiny_npz, tmp_path / "f32")
    assert result.exit_code == 3, result.output
    assert "inconclusive: the model is undecided on these inputs" in result.output
    check = json.loads((tmp_path / "f32" / "export_report.json").read_text())["check"]
    assert check["outcome"] == "inconclusive" and not check["passed"] and check["output_space"] == "probabilities"
    assert check["decided_share"] < 0.5 and check["relative_error"] <= check["max_relative_error"]


def test_random_noise_in_place_of_a_softmax_export_is_refused(random_softmax_file, tiny_npz, tmp_path, monkeypatch):
    """The earlier gate passed it: a softmax of probabilities ties every class."""
    rng = np.random.default_rng(0)
    monkeypatch.setattr(LiteRTModel, "__call__",
                        lambda self, images: rng.dirichlet(np.ones(10), len(images)).astype(np.float32))
    line = _one_error_line(_export_unnormalised(random_softmax_file, tiny_npz, tmp_path / "out"))
    assert "failed: the outputs differ" in line and not (tmp_path / "out").exists()


def test_open_model_tells_runs_from_model_files(plain_run, tmp_path):
    assert isinstance(open_model(plain_run), Run)
    assert isinstance(open_model(os.path.join(plain_run, "last.keras")), Run)  # a .keras inside a run keeps its recipe
    with pytest.raises(ValueError, match="neither a run directory"):
        open_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="No run directory or model"):
        open_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match=r"`preprocess` must be one of \('cifar', 'imagenet', 'unit', 'none'\)"):
        Normalization.named("caffe")


@keras.saving.register_keras_serializable(package="tests")
class SquareRoot(keras.layers.Layer):
    """``sqrt(x)``: full int8 converts it to SQRT version 2, which TFLite runtime 2.14 does not know."""

    def call(self, inputs):
        return keras.ops.sqrt(inputs)


def test_runtime_compat_refuses_an_export_an_older_runtime_cannot_load(int8_exports, tmp_path):
    report = json.loads((int8_exports / "plain" / "export_report.json").read_text())
    assert report["oldest_runtime"] == "2.14" and {"name": "CONV_2D", "version": 3, "count": 20} in report["builtin_ops"]

    inputs = keras.Input((32, 32, 3))
    features = SquareRoot()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    path = tmp_path / "sqrt.keras"
    keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features))).save(path)
    line = _one_error_line(_cli("export", path, "--calibration", "cifar10-mini", "--quantize", "int8",
                                "--runtime-compat", "2.14", "--out", tmp_path / "out", *FAST))
    assert "TFLite runtime 2.14 cannot load this model: it does not know SQRT version 2" in line
    assert not (tmp_path / "out").exists()


def test_evaluators_and_exporters_never_import_the_trainer(plain_run):
    code = ("import sys; import pcw_keras.export, pcw_keras.evaluation, pcw_keras.commands.rank; "
            "from pcw_keras.runs import open_model; open_model(sys.argv[1]).model(); "
            "assert 'pcw_keras.training.runner' not in sys.modules, 'the trainer was imported'")
    result = subprocess.run([sys.executable, "-c", code, plain_run], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_module_outside_training_reaches_into_it():
    """Outside ``pcw_keras/training/``, the package imports only ``pcw_keras.training``'s public names."""
    import ast
    from pathlib import Path

    package = Path(__file__).parents[1] / "pcw_keras"
    offenders = []
    for path in package.rglob("*.py"):
        if "training" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pcw_keras.training"):
                if node.module != "pcw_keras.training" or any(alias.name.startswith("_") for alias in node.names):
                    offenders.append(f"{path.relative_to(package)}: from {node.module} import ...")
            elif isinstance(node, ast.Import):
                offenders += [f"{path.relative_to(package)}: import {a.name}" for a in node.names
                              if a.name.startswith("pcw_keras.training.")]
    assert offenders == []


def test_a_model_with_an_open_input_size_takes_input_size(tiny_npz, tmp_path):
    inputs = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    path = tmp_path / "open.keras"
    keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features))).save(path)
    line = _one_error_line(_cli("rank", path, "--images", tiny_npz, "--out", tmp_path / "r"))
    assert "leaves the image size open: pass input_size (CLI: --input-size)" in line
    result = _cli("rank", path, "--images", tiny_npz, "--input-size", "96", "--rank-limit", "4", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    ranking = json.loads((tmp_path / "r" / "ranking_canvas.json").read_text())
    assert ranking["layer"] == "conv" and ranking["grid"] == 3


def test_a_savedmodel_export_is_scored_with_its_own_normalisation(tiny_npz, tmp_path):
    from pcw_keras.export.served import SavedModelClassifier

    path = tmp_path / "small.keras"
    _sequential().save(path)
    result = _cli("export", path, "--format", "savedmodel", "--calibration", tiny_npz, "--preprocess", "imagenet",
                  "--out", tmp_path / "sm", *FAST)
    assert result.exit_code == 0, result.output
    served = SavedModelClassifier(tmp_path / "sm")
    assert served.normalization == Normalization.named("imagenet") and served.input_dtype == "uint8"
    pixels = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    normalized = Normalization.named("imagenet").apply(pixels)
    np.testing.assert_allclose(served(normalized), keras.models.load_model(path).predict_on_batch(normalized), atol=1e-4)


@pytest.fixture(scope="module")
def fitted_resnet50_file(tiny_npz, tmp_path_factory):
    """A keras.applications ResNet-50 backbone (random weights) with a softmax head fitted to it by least squares.

    The head makes the model decided on its inputs, as a trained one is,
    without the minutes of training.
    """
    keras.utils.set_random_seed(0)
    backbone = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), include_top=False, pooling="avg")
    data = np.load(tiny_npz)
    features = backbone.predict_on_batch(data["x_train"].astype(np.float32))  # --preprocess none: raw pixels
    targets = np.eye(4)[data["y_train"]] * 8.0
    weights, *_ = np.linalg.lstsq(features - features.mean(0), targets - targets.mean(0), rcond=None)
    inputs = keras.Input((32, 32, 3))
    head = keras.layers.Dense(4, activation="softmax", name="head")
    model = keras.Model(inputs, head(backbone(inputs)), name="resnet50_probe")
    head.set_weights([weights.astype(np.float32), (-features.mean(0) @ weights).astype(np.float32)])
    path = tmp_path_factory.mktemp("r50_probe") / "resnet50_probe.keras"
    model.save(path)
    return path


def test_a_decided_keras_applications_model_exports_and_passes(fitted_resnet50_file, tiny_npz, tmp_path):
    result = _export_unnormalised(fitted_resnet50_file, tiny_npz, tmp_path / "f32")
    assert result.exit_code == 0, result.output
    check = json.loads((tmp_path / "f32" / "export_report.json").read_text())["check"]
    assert check["outcome"] == "passed" and check["output_space"] == "probabilities"
    assert check["decided_share"] >= 0.5 and check["top1_agreement"] == 1.0 and check["relative_error"] < 1e-3


@pytest.fixture(scope="module")
def canvas_run(tiny_npz, tmp_path_factory):
    return _run(tiny_npz, tmp_path_factory, "location-3x3-gapnet")


@pytest.mark.parametrize("keras_first", [False, True])
def test_import_pcw_keras_then_plain_keras_loads_every_kind_of_run(canvas_run, plain_run, augshift_run, keras_first):
    """As with keras-hub: after ``import pcw_keras`` (before or after Keras), ``keras.saving.load_model`` works."""
    order = "import keras, pcw_keras" if keras_first else "import pcw_keras, keras"
    code = (f"import sys; {order}\n"
            "for path in sys.argv[1:]:\n"
            "    print(type(keras.saving.load_model(path)).__name__)")
    paths = [os.path.join(run, "best.keras") for run in (canvas_run, plain_run, augshift_run)]
    result = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.split()) == 3
    # Without the package, Keras cannot find its classes: the test above can fail.
    bare = subprocess.run([sys.executable, "-c", "import sys, keras; keras.saving.load_model(sys.argv[1])", paths[0]],
                          capture_output=True, text=True, timeout=300)
    assert bare.returncode != 0 and "Could not locate class" in bare.stderr


def test_the_command_line_does_not_import_keras_for_help():
    code = "import sys, pcw_keras.cli; assert 'keras' not in sys.modules, 'pcw --help would import Keras'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
