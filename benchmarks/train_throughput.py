"""Training-step and inference throughput of GAPNet and PermuteNet; prints one JSON object.

For each configuration (network, grid, width, XLA on/off, precision) it times
``--steps`` training steps and inference batches of ``--batch-size`` canvases
(after warm-up, so compilation is excluded) and reports the median images/s,
the FLOPs per image counted from the model (:func:`pcw_keras.models.count_flops`;
a training step is counted as three forward passes) and the model FLOP
utilisation: achieved FLOP/s over the matrix-product rate of the row's
compute dtype (float32, or bfloat16 under ``mixed_bfloat16``) measured in the
same run.

Backend-neutral (Keras 3): run it with ``KERAS_BACKEND=jax`` on a GPU, where
``--jit`` has no "off" (JAX always compiles).

Usage::

    python benchmarks/train_throughput.py --nets gapnet permutenet --grids 3 7 \
        --widths 1.0 0.125 --jit on off --precisions float32 mixed_bfloat16
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import keras
import numpy as np

from pcw_keras.models import count_flops, create_model
from pcw_keras.models.flops import matmul_gflops


def median_seconds(run, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(net: str, grid: int, width: float, jit: bool, precision: str, batch: int, steps: int, warmup: int) -> dict:
    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        side = 32 * grid
        model = create_model(f"{net}_resnet18", num_classes=grid * grid, input_shape=(side, side, 3), width=width)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.999),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        rng = np.random.default_rng(0)
        x = rng.normal(size=(batch, side, side, 3)).astype("float32")
        y = rng.integers(0, grid * grid, size=(batch,))
        train = median_seconds(lambda: model.train_on_batch(x, y), steps, warmup)
        infer = median_seconds(lambda: model.predict_on_batch(x), steps, warmup)
        flops = count_flops(model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {
        "net": net, "grid": grid, "input": 32 * grid, "width": width, "jit": jit, "precision": precision,
        "batch": batch, "forward_gflop_per_image": round(flops / 1e9, 4),
        "train_images_per_s": round(batch / train, 2), "infer_images_per_s": round(batch / infer, 2),
        "train_gflops": round(3 * flops * batch / train / 1e9, 2), "infer_gflops": round(flops * batch / infer / 1e9, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["gapnet", "permutenet"], choices=["gapnet", "permutenet"])
    parser.add_argument("--grids", nargs="+", type=int, default=[3])
    parser.add_argument("--widths", nargs="+", type=float, default=[1.0, 0.125])
    parser.add_argument("--jit", nargs="+", default=["on", "off"], choices=["on", "off"])
    parser.add_argument("--precisions", nargs="+", default=["float32"], help="Keras dtype policies, e.g. mixed_bfloat16.")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    # MFU of each row is over the matrix-product rate of its compute dtype.
    compute_dtypes = {keras.dtype_policies.get(precision).compute_dtype for precision in args.precisions}
    rates = {dtype: matmul_gflops(2048, dtype=dtype) for dtype in sorted(compute_dtypes | {"float32"})}
    jit_values = [True] if keras.backend.backend() == "jax" else [j == "on" for j in args.jit]
    results = []
    for net in args.nets:
        for grid in args.grids:
            for width in args.widths:
                for jit in jit_values:
                    for precision in args.precisions:
                        row = measure(net, grid, width, jit, precision, args.batch_size, args.steps, args.warmup)
                        rate = rates[keras.dtype_policies.get(precision).compute_dtype]
                        row["train_mfu"] = round(row["train_gflops"] / rate, 3)
                        row["infer_mfu"] = round(row["infer_gflops"] / rate, 3)
                        results.append(row)
                        print(json.dumps(row), flush=True, file=sys.stderr)
    print(json.dumps({
        "backend": keras.backend.backend(), "keras": keras.__version__, "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "matmul_gflops": round(rates["float32"], 1),
        "matmul_gflops_by_dtype": {dtype: round(rate, 1) for dtype, rate in rates.items()}, "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
