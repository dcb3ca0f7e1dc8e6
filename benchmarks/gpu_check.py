"""One epoch of the paper's 3x3 location task per network on this machine's accelerator; prints one JSON object.

For GAPNet and PermuteNet (ResNet-18 at ``--width``, ``--precision``): a
real ``pcw train`` run (:func:`pcw_keras.training.runner.train`) of one epoch
over the 45,000-image training split, then the paper's test protocol. It
reports the training images/s after ``--warmup`` steps (compilation
excluded), the model FLOP utilisation of those steps (3 x the counted
forward FLOPs per image, over the matrix-product rate of the compute dtype
measured in the same process), and the test accuracy.

Usage (``benchmarks/gpu_check.sh`` wraps it for the GPU machines)::

    KERAS_BACKEND=jax python benchmarks/gpu_check.py --data cifar10-jpeg.tar.gz --out runs/gpu_check
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import keras

from pcw_keras import recipes
from pcw_keras.models import count_flops, unwrap
from pcw_keras.models.flops import matmul_gflops
from pcw_keras.training import runner


class StepTimer(keras.callbacks.Callback):
    """Wall time of the training steps after the first ``warmup`` ones (which include compilation)."""

    def __init__(self, warmup: int):
        super().__init__()
        self.warmup, self.steps, self.began, self.seconds = warmup, 0, None, 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == self.warmup:
            keras.ops.convert_to_numpy(self.model.trainable_weights[0])  # wait for the queued steps
            self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.began is not None:
            keras.ops.convert_to_numpy(self.model.trainable_weights[0])
            self.seconds = time.perf_counter() - self.began

    @property
    def timed_steps(self) -> int:
        return max(0, self.steps - self.warmup)


def check_network(net: str, args, matmul_rate: float) -> dict:
    overrides = {"data.source": args.data, "model.width": args.width, "training.epochs": 1,
                 "training.precision": args.precision, "data.limit": args.limit, "data.test_limit": args.test_limit}
    recipe = recipes.load(f"location-3x3-{net}", **overrides)
    timer = StepTimer(args.warmup)
    began = time.perf_counter()
    results = runner.train(recipe, os.path.join(args.out, net), verbose=2, extra_callbacks=[timer])
    wall = time.perf_counter() - began
    batch = recipe["training"]["batch_size"]
    model = unwrap(keras.models.load_model(os.path.join(args.out, net, "last.keras")))
    flops = count_flops(model)
    images_per_s = timer.timed_steps * batch / timer.seconds if timer.seconds else float("nan")
    return {
        "net": net, "width": args.width, "precision": args.precision, "batch": batch,
        "train_images": timer.steps * batch, "timed_steps": timer.timed_steps,
        "train_images_per_s": round(images_per_s, 1),
        "forward_gflop_per_image": round(flops / 1e9, 4),
        "train_mfu": round(3 * flops * images_per_s / 1e9 / matmul_rate, 4),
        "test_accuracy": results["test_accuracy_last"], "chance": results["chance"],
        "test_images": results["test_images"], "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Source: the CIFAR-10 tarball, an image folder, a tfds name...")
    parser.add_argument("--out", default=os.path.join("runs", "gpu_check"), help="Parent of the two run directories.")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--precision", default="mixed_bfloat16", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--limit", type=int, default=None, help="Training images (default: all 50,000, 45,000 after validation).")
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=10, help="Steps left out of the rate (compilation).")
    parser.add_argument("--nets", nargs="+", default=["gapnet", "permutenet"], choices=["gapnet", "permutenet"])
    parser.add_argument("--matmul-size", type=int, default=8192, help="Side of the matrix product that sets the peak rate.")
    args = parser.parse_args()
    compute_dtype = keras.dtype_policies.get(args.precision).compute_dtype
    rate = matmul_gflops(args.matmul_size, dtype=compute_dtype)
    rows = [check_network(net, args, rate) for net in args.nets]
    devices = []
    if keras.backend.backend() == "jax":
        import jax

        devices = [f"{d.platform}:{getattr(d, 'device_kind', '')}" for d in jax.devices()]
    print(json.dumps({
        "backend": keras.backend.backend(), "keras": keras.__version__, "devices": devices,
        "machine": platform.machine(), "cpus": os.cpu_count(),
        f"matmul_gflops_{compute_dtype}": round(rate, 1), "results": rows,
    }, indent=1))


if __name__ == "__main__":
    main()
