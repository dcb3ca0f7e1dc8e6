"""Does position information survive TFLite export? Keras vs TFLite float32, dynamic, int8 and int16x8.

For RUN_DIR (a location-task run), exports TFLite float32, dynamic-range,
full int8 without and with bias correction, and int16x8 (float32 input, so
that the package's evaluators can feed them; the agreement gate is off so
that failing exports are measured too), then measures the location accuracy
of Keras and of each export on ``--passes`` random placements of the test
split, and, for a GAPNet, ranks the position channels of the ``pool`` layer
(its outputs) in Keras and in the quantized models with
``rank_position_channels(method="canvas")``. Prints JSON.

Usage::

    python scripts/export_position_study.py RUN_DIR --out exports/study [--passes 1] [--rank-images 100]
"""
from __future__ import annotations

import argparse
import json
import os

# label: (quantize, bias_correction)
EXPORTS = {"none": ("none", True), "dynamic": ("dynamic", True), "int8_no_bias_correction": ("int8", False),
           "int8": ("int8", True), "int16x8": ("int16x8", True)}
RANKED = ("int8_no_bias_correction", "int8", "int16x8")


class TFLiteAsKeras:
    """``predict_on_batch`` over a float-input LiteRT model, for :func:`pcw_keras.evaluation.evaluate_canvas`."""

    def __init__(self, path: str):
        from pcw_keras.export import LiteRTModel

        with open(path, "rb") as handle:
            self.model = LiteRTModel(handle.read())

    def predict_on_batch(self, inputs):
        return self.model(inputs)


def tflite_layer_model(path: str, input_shape, classes: int):
    """A Keras model whose ``pool`` layer is the TFLite model's output (for the ranking evaluator)."""
    import keras
    import tensorflow as tf

    runner = TFLiteAsKeras(path)

    class TFLiteOutputs(keras.layers.Layer):
        def call(self, images):
            out = tf.numpy_function(lambda x: runner.predict_on_batch(x), [images], tf.float32)
            return tf.ensure_shape(out, (None, classes))

        def compute_output_shape(self, shape):
            return (shape[0], classes)

    inputs = keras.Input(input_shape)
    return keras.Model(inputs, TFLiteOutputs(name="pool")(inputs))


def per_channel(ranking):
    """The ``overall`` scores of a ranking, indexed by channel."""
    import numpy as np

    overall = ranking.rankings["overall"]
    scores = np.empty(ranking.num_channels)
    scores[np.asarray(overall["channels"])] = overall["scores"]
    return scores


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", required=True, help="folder for the exports")
    parser.add_argument("--passes", type=int, default=1, help="random placements of the test split per model")
    parser.add_argument("--rank-images", type=int, default=100, help="test images placed in every cell for the ranking")
    parser.add_argument("--top", type=int, default=3, help="size of the top-k sets compared")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from pcw_keras.evaluation import evaluate_canvas
    from pcw_keras.runs import export
    from pcw_keras.runs import Run

    recipe = Run(args.run_dir).recipe
    test_images = recipe.load_images("test")
    model = keras.models.load_model(os.path.join(args.run_dir, "best.keras"))
    result = {"run_dir": args.run_dir, "recipe": recipe.name, "model_width": recipe["model"]["width"],
              "test_images": len(test_images), "exports": {}, "location_accuracy": {}}
    task = recipe["task"]

    def accuracy(predictor):
        return evaluate_canvas(predictor, test_images, grid=task["grid"], task=task["kind"], passes=args.passes,
                               seed=recipe["training"]["seed"])["accuracy"]

    result["passes"] = args.passes
    result["location_accuracy"]["keras"] = accuracy(model)
    for label, (quantize, bias_correction) in EXPORTS.items():
        out = os.path.join(args.out, f"tflite-{label}-float-input")
        report = export(args.run_dir, out, format="tflite", quantize=quantize, bias_correction=bias_correction,
                              input_dtype="float32", overwrite=True, min_agreement=0.0, verbose=False)
        result["exports"][label] = {key: report["check"][key] for key in
                                    ("top1_agreement", "max_abs_diff", "accuracy_keras", "accuracy_exported")}
        result["exports"][label].update(size_bytes=report["file_size_bytes"], latency_ms=report["latency"]["median_ms"])
        path = os.path.join(out, "model.tflite")
        result["location_accuracy"][f"tflite_{label}"] = accuracy(TFLiteAsKeras(path))

    if recipe["model"]["name"].startswith("gapnet"):
        from pcw_keras.evaluation.position_channels import rank_position_channels

        patches = test_images.subset(np.arange(min(args.rank_images, len(test_images))))
        classes = model.output.shape[-1]
        a = per_channel(rank_position_channels(model, patches, layer="pool", method="canvas", verbose=False))
        order_a = np.argsort(-a)
        result["position_channels"] = {"layer": "pool", "method": "canvas", "channels": int(len(a)),
                                       "patches": len(patches), "scores_keras": [round(float(v), 4) for v in a]}
        for label in RANKED:
            wrapped = tflite_layer_model(os.path.join(args.out, f"tflite-{label}-float-input", "model.tflite"),
                                         model.input_shape[1:], classes)
            b = per_channel(rank_position_channels(wrapped, patches, layer="pool", method="canvas", verbose=False))
            order_b = np.argsort(-b)
            result["position_channels"][label] = {
                "scores": [round(float(v), 4) for v in b],
                "max_abs_score_diff": float(np.abs(a - b).max()),
                "spearman": float(np.corrcoef(np.argsort(order_a), np.argsort(order_b))[0, 1]),
                f"top{args.top}_overlap": len(set(order_a[: args.top]) & set(order_b[: args.top])) / args.top,
            }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
