"""The canvas evaluation's images/s beside the model's own inference images/s; prints one JSON object.

``pcw evaluate`` on a canvas run scores ``grid * grid`` placements of the
test split (:func:`pcw_keras.evaluation.evaluate_canvas`). This script times,
in one process, on the same model (GAPNet ResNet-18 in its inference form,
:func:`pcw_keras.models.inference.inference_model`):

- ``inference``: ``predict_on_batch`` on canvases already built, batch after
  batch (the model's own rate, the ceiling);
- ``evaluate_canvas``: the whole evaluation as ``pcw evaluate`` calls it
  (its scorer built and traced, placements drawn, patches placed on the
  device, argmax), as canvases per second;
- ``host_loop``: the evaluation as it was written before, for reference: per
  batch, canvases built in NumPy on the host, then ``predict_on_batch``.

Each figure is the median of ``--repeats`` timings after one warm-up. The
images are random uint8 patches (the speed does not depend on them).

Usage::

    python benchmarks/canvas_evaluation.py --width 1.0 --precision bfloat16 --images 480 --passes 9
    KERAS_BACKEND=jax python benchmarks/canvas_evaluation.py --width 1.0 --precision float32
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from pcw_keras import machine


def seconds(run) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--grid", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--images", type=int, default=480, help="Test images per pass.")
    parser.add_argument("--passes", type=int, default=9, help="Placements of the test images (the paper: grid * grid).")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import keras
    import numpy as np

    from pcw_keras.data.canvas import CanvasBatches, pass_seeds, place_on_canvas_np
    from pcw_keras.data.imageset import ImageSet
    from pcw_keras.evaluation import evaluate_canvas
    from pcw_keras.models import create_model
    from pcw_keras.models.inference import inference_model, resolve_precision
    from pcw_keras.normalization import normalize

    precision = resolve_precision(args.precision)
    keras.utils.set_random_seed(0)
    side = 32 * args.grid
    model = create_model("gapnet_resnet18", num_classes=args.grid ** 2, input_shape=(side, side, 3), width=args.width)
    model = inference_model(model, precision)
    rng = np.random.default_rng(0)
    images = ImageSet(rng.integers(0, 256, size=(args.images, 32, 32, 3), dtype=np.uint8),
                      rng.integers(0, 10, size=args.images), [str(k) for k in range(10)])
    canvases = rng.normal(size=(args.batch_size, side, side, 3)).astype("float32")
    batches = -(-args.images // args.batch_size) * args.passes
    canvases_scored = args.images * args.passes

    def inference():
        for _ in range(batches):
            model.predict_on_batch(canvases)

    def evaluation():
        evaluate_canvas(model, images, grid=args.grid, task="location", batch_size=args.batch_size,
                        passes=args.passes, seed=0)

    def host_loop():
        for pass_seed in pass_seeds(args.grid, args.passes, 0):
            for (patches, cells), _ in CanvasBatches(images, grid=args.grid, task="location", batch_size=args.batch_size,
                                                     training=False, seed=pass_seed, flip=False, feed="patches"):
                np.argmax(np.asarray(model.predict_on_batch(
                    place_on_canvas_np(normalize(patches), cells, args.grid))), axis=-1)

    runs = {"inference": inference, "evaluate_canvas": evaluation, "host_loop": host_loop}
    for run in runs.values():  # warm-up: compilation excluded
        run()
    # Interleaved, so that a change in the machine's load touches all three alike.
    timings = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            timings[name].append(seconds(run))
    # ``inference`` runs whole batches: its rate is per canvas it computed.
    computed = {"inference": batches * args.batch_size, "evaluate_canvas": canvases_scored, "host_loop": canvases_scored}
    rates = {name: round(computed[name] / statistics.median(times), 2) for name, times in timings.items()}
    print(json.dumps({
        "backend": keras.backend.backend(), "keras": keras.__version__, "cpu": machine.cpu_model(), "cpus": os.cpu_count(),
        "model": "gapnet_resnet18", "width": args.width, "grid": args.grid, "precision": precision,
        "batch_size": args.batch_size, "images": args.images, "passes": args.passes, "repeats": args.repeats,
        "images_per_s": rates,
        "evaluate_over_inference": round(rates["evaluate_canvas"] / rates["inference"], 3),
        "host_loop_over_inference": round(rates["host_loop"] / rates["inference"], 3),
        "seconds": {name: [round(t, 4) for t in times] for name, times in timings.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
