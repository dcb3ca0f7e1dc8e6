"""An APS ResNet-18 exports to builtin-only TFLite, and the float32 export keeps its invariance to circular shifts.

A randomly initialised network (CIFAR stem, circular padding, width 1/16,
32x32) exported through `pcw export`'s path (SavedModel, then builtin-only
conversion, then the gate against Keras). The exported model takes uint8
pixels; every circular shift of an image's pixels must give the same logits
to float32 rounding, stated as in ``tests/test_aps_resnet.py``:
``max |logits(shifted) - logits(x)| <= RTOL * max |logits(x)|``, ``RTOL = 1e-5``.
"""
import numpy as np
import pytest

from pcw_keras import models, recipes
from pcw_keras.export import LiteRTModel
from pcw_keras.export.op_versions import builtin_ops, custom_ops
from pcw_keras.runs import export

pytest.importorskip("tensorflow")

RTOL = 1e-5
FAST = {"check_samples": 16, "latency_runs": 1, "verbose": False}


def test_aps_resnet18_exports_builtin_only_and_keeps_circular_invariance(tiny_npz, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = models.create_model("resnet18_cifar_aps_blur", num_classes=4, input_shape=(32, 32, 3), width=1 / 16,
                                padding="circular")
    head = model.get_layer("head")  # logits spread wide enough for the gate to judge top-1 (a random head is undecided)
    head.kernel.assign(head.kernel * 100.0)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipes.load("cifar10-resnet18-aps-blur", **{"data.source": tiny_npz}).to_yaml())
    report = export(model, tmp_path / "aps", recipe=str(recipe), format="tflite", quantize="none", **FAST)
    assert report["check"]["outcome"] == "passed", report["check"]

    content = (tmp_path / "aps" / "model.tflite").read_bytes()
    assert custom_ops(content) == []
    ops = {op["name"]: op["count"] for op in builtin_ops(content)}
    assert ops["ARG_MAX"] == 3 and "ONE_HOT" in ops, ops  # three APS choices (stages 2-4), in the graph
    runner = LiteRTModel(content)
    image = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    reference = runner(image)
    shifts = [(1, 0), (0, 1), (1, 1), (3, 5), (16, 16), (31, 7), (2, 30)]
    shifted = runner(np.concatenate([np.roll(image, shift, axis=(1, 2)) for shift in shifts]))
    assert np.abs(shifted - reference).max() <= RTOL * np.abs(reference).max()
