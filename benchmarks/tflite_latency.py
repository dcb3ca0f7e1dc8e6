"""Latency and size of ResNet-18 in Keras and as TFLite float32, float16, int8 and int16x8, measured in one run.

Prints one JSON object: for each of Keras (a traced inference call), TFLite
float32, float16, full int8 and int16x8 (int8 weights, int16 activations;
LiteRT interpreter, builtin ops), the median
single-image latency and the model size, plus the ratios against Keras.
The weights are untrained (latency and size do not depend on them); full
int8 and int16x8 are calibrated on canvases of the recipe's data. Keras and the
interpreter get the same number of threads.

Usage::

    python benchmarks/tflite_latency.py [--model gapnet_resnet18] [--size 96] [--runs 100] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gapnet_resnet18", help="a name from pcw_keras.models.list_models()")
    parser.add_argument("--size", type=int, default=96, help="input height and width (96: the 3x3 canvas)")
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    parser.add_argument("--runs", type=int, default=100, help="timed single-image calls per model")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="threads for Keras (intra-op) and the interpreter")
    parser.add_argument("--calibration", type=int, default=100, help="int8 representative samples")
    parser.add_argument("--data", default="cifar10-mini", help="data source of the calibration canvases")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    import numpy as np

    from pcw_keras import recipes
    from pcw_keras.export.check import canvas_samples, median_latency_ms
    from pcw_keras.export.graph import inference_model
    from pcw_keras.export.savedmodel import write_saved_model
    from pcw_keras.export.tflite import LiteRTModel, convert_saved_model
    from pcw_keras.models import create_model
    from pcw_keras.normalization import CIFAR, normalize

    keras.utils.set_random_seed(args.seed)
    grid = max(1, args.size // 32)
    recipe = recipes.load("location-3x3-gapnet", **{"data.source": args.data, "task.grid": grid})
    model = create_model(args.model, num_classes=args.classes, input_shape=(args.size, args.size, 3), width=args.width)
    canvases, _ = canvas_samples(recipe["task"], recipe.load_images("train"), args.calibration + 1, seed=args.seed)
    pixels = CIFAR.pixels(canvases)
    image = pixels[:1]

    results = {}
    with tempfile.TemporaryDirectory() as work:
        keras_path = os.path.join(work, "model.keras")
        model.save(keras_path)
        call = tf.function(lambda x: model(normalize(tf.cast(x, tf.float32)), training=False))
        results["keras"] = {
            **median_latency_ms(lambda: call(image).numpy(), runs=args.runs, warmup=args.warmup),
            "size_bytes": os.path.getsize(keras_path),
        }
        saved_model = os.path.join(work, "saved_model")
        write_saved_model(inference_model(model, "stateful"), saved_model, input_dtype="uint8")

        def representative():
            for index in range(1, len(pixels)):
                yield [pixels[index : index + 1]]

        for name, quantize in (("tflite_float32", "none"), ("tflite_float16", "float16"), ("tflite_int8", "int8"),
                               ("tflite_int16x8", "int16x8")):
            content = convert_saved_model(saved_model, quantize, representative_data=representative)
            runner = LiteRTModel(content, threads=args.threads)
            results[name] = {
                **median_latency_ms(lambda: runner(image), runs=args.runs, warmup=args.warmup),
                "size_bytes": len(content),
            }
            print(f"{name}: {results[name]['median_ms']:.2f} ms", file=sys.stderr, flush=True)

    base = results["keras"]
    for entry in results.values():
        entry["latency_vs_keras"] = round(entry["median_ms"] / base["median_ms"], 3)
        entry["size_vs_keras"] = round(entry["size_bytes"] / base["size_bytes"], 3)
    from importlib import metadata

    report = {
        "benchmark": "tflite_latency",
        "model": args.model,
        "input": [1, args.size, args.size, 3],
        "width": args.width,
        "parameters": int(model.count_params()),
        "threads": args.threads,
        "runs": args.runs,
        "calibration_samples": args.calibration,
        "keras_call": "tf.function(model(normalize(uint8), training=False)), batch 1",
        "tflite_call": "ai_edge_litert Interpreter invoke(), uint8 input, batch 1",
        "results": results,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "ai_edge_litert": metadata.version("ai-edge-litert"), "numpy": np.__version__},
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
