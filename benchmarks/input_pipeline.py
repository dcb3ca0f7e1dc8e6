"""Throughput of the canvas-task input pipelines; prints one JSON object.

Measured in one process on the same in-memory CIFAR-10 training images (the
shared tarball's train split, or ``cifar10-mini`` when it is absent), as
canvases per second, the median of ``--repeats`` interleaved rounds of ``--batches`` batches:

- ``numpy_loop``: the reference's way, one image at a time: draw a cell and a
  flip, normalise, paste into a zero canvas, then stack the batch;
- ``canvas_dataset``: the package's host pipeline (float32 canvases);
- ``placement_dataset``: the on-device path's host side (uint8 32x32 patches
  and cell indices; :class:`~pcw_keras.data.CanvasPlacement` does the rest);
- ``memcopy_bound``: NumPy copying batches of the same float32 canvas bytes
  into new arrays, from a source larger than the CPU caches, each freed at
  once (so the destination stays cache-hot: the strict bound);
- ``memcopy_queued``: the same copies, each kept alive while 8 more are made,
  as a prefetching pipeline's batches are;
- ``train_step``: what the training step consumes: GAPNet ResNet-18 of
  ``--train-width`` on the grid's canvases, the package's default settings on
  this machine (``benchmarks/train_throughput.py``'s measurement, no XLA on a
  CPU); ``--train-steps 0`` skips it.

Also the JPEG decode rate of ``load_split`` on the source (first load in the
process; the tarball's extraction is cached on disk and reported apart).

Usage::

    python benchmarks/input_pipeline.py --grid 3 --batch-size 48 --batches 200
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from train_throughput import measure

from pcw_keras.data import CIFAR_MEAN, CIFAR_STD, canvas_dataset, load_split, placement_dataset
from pcw_keras.data.archives import extract_archive

SHARED_TARBALL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar10-jpeg.tar.gz")


def interleaved_median_rates(runs: dict, repeats: int, settle: float = 0.5) -> dict:
    """Median ``items / seconds`` of each ``run() -> items``, the runs interleaved round by round.

    Interleaving exposes every measurement to the same drift of a shared
    machine, so their ratios hold better than their absolute values. Each run
    starts after a pause of ``settle`` seconds in which the pipelines'
    background threads refill their prefetch buffers, so that no measurement
    shares the CPU with that refill.
    """
    rates = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            time.sleep(settle)
            start = time.perf_counter()
            items = run()
            rates[name].append(items / (time.perf_counter() - start))
    return {name: float(np.median(values)) for name, values in rates.items()}


def numpy_loop(images, grid, batch_size, batches, rng):
    mean, std = np.float32(CIFAR_MEAN), np.float32(CIFAR_STD)
    h, w = images.shape[1:3]

    def run():
        for _ in range(batches):
            canvases = []
            for index in rng.integers(0, len(images), batch_size):
                image = images[index]
                if rng.random() < 0.5:
                    image = image[:, ::-1]
                row, col = divmod(int(rng.integers(grid * grid)), grid)
                canvas = np.zeros((grid * h, grid * w, 3), np.float32)
                canvas[row * h:(row + 1) * h, col * w:(col + 1) * w] = (image / np.float32(255) - mean) / std
                canvases.append(canvas)
            np.stack(canvases)
        return batches * batch_size

    return run


def dataset_loop(dataset, batches, batch_size, warmup: int = 20):
    """Times ``batches`` batches of the dataset, read in order epoch after epoch, as a training loop reads them.

    ``warmup`` batches are read first, so each timed run measures the steady state.
    """

    def endless():
        while True:
            yield from dataset

    iterator = endless()
    for _ in range(warmup):
        next(iterator)

    def run():
        for _ in range(batches):
            next(iterator)
        return batches * batch_size

    return run


def memcopy(canvas_shape, batches, batch_size, queued: int = 0):
    """Copies of float32 canvas batches from a source larger than the CPU caches.

    ``queued=0`` copies into a fresh array that is freed at once, so the
    allocator hands the same, cache-hot block back for the next batch: the
    strictest bound. ``queued=n`` keeps each copy alive while ``n`` later ones
    are made, as batches wait in a prefetch queue, so every copy writes
    memory that has left the cache.
    """
    batch_bytes = int(np.prod(canvas_shape)) * 4 * batch_size
    copies = max(2, int(512e6 // batch_bytes))
    source = np.random.default_rng(0).random((copies, batch_size) + canvas_shape, np.float32)

    def run():
        alive = []
        for k in range(batches):
            alive.append(source[k % copies].copy())
            if len(alive) > queued:
                alive.pop(0)
        return batches * batch_size

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-width", type=float, default=1.0, help="Width of the ResNet-18 whose training step is timed.")
    parser.add_argument("--train-steps", type=int, default=5, help="Timed training steps (0: skip the training step).")
    parser.add_argument("--source", default=SHARED_TARBALL if os.path.exists(SHARED_TARBALL) else "cifar10-mini")
    args = parser.parse_args()
    grid, batch_size, batches = args.grid, args.batch_size, args.batches

    start = time.perf_counter()
    if args.source.endswith((".tar.gz", ".tgz")):
        extract_archive(args.source)
    extract_s = time.perf_counter() - start
    start = time.perf_counter()
    data = load_split(args.source, "train")
    decode_s = time.perf_counter() - start
    canvas_shape = (32 * grid, 32 * grid, 3)

    kwargs = dict(grid=grid, task="location", batch_size=batch_size, training=True, seed=0)
    host = dataset_loop(canvas_dataset(data, **kwargs), batches, batch_size)
    device_feed = dataset_loop(placement_dataset(data, **kwargs), batches, batch_size)
    rates = interleaved_median_rates({
        "numpy_loop": numpy_loop(data.images, grid, batch_size, batches, np.random.default_rng(0)),
        "canvas_dataset": host,
        "placement_dataset": device_feed,
        "memcopy_bound": memcopy(canvas_shape, batches, batch_size),
        "memcopy_queued": memcopy(canvas_shape, batches, batch_size, queued=8),
    }, args.repeats)
    if args.train_steps:
        step = measure("gapnet", grid, args.train_width, jit=False, precision="float32", batch=batch_size,
                       steps=args.train_steps, warmup=2)
        rates["train_step"] = step["train_images_per_s"]
    float_bytes = batch_size * int(np.prod(canvas_shape)) * 4
    uint8_bytes = batch_size * (32 * 32 * 3 + 4)
    print(json.dumps({
        "source": args.source,
        "images": len(data),
        "grid": grid,
        "batch_size": batch_size,
        "batches": batches,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "decode_images_per_s": round(len(data) / decode_s, 1),
        "decode_s": round(decode_s, 2),
        "extract_s": round(extract_s, 2),
        "canvases_per_s": {k: round(v, 1) for k, v in rates.items()},
        "ratios": {
            "canvas_dataset_over_numpy_loop": round(rates["canvas_dataset"] / rates["numpy_loop"], 3),
            "canvas_dataset_over_memcopy_bound": round(rates["canvas_dataset"] / rates["memcopy_bound"], 3),
            "canvas_dataset_over_memcopy_queued": round(rates["canvas_dataset"] / rates["memcopy_queued"], 3),
            "placement_dataset_over_canvas_dataset": round(rates["placement_dataset"] / rates["canvas_dataset"], 3),
            **({"canvas_dataset_over_train_step": round(rates["canvas_dataset"] / rates["train_step"], 1)}
               if "train_step" in rates else {}),
        },
        "train_width": args.train_width if args.train_steps else None,
        "bytes_per_batch": {
            "float32_canvases": float_bytes,
            "uint8_patches_and_cells": uint8_bytes,
            "ratio": round(float_bytes / uint8_bytes, 1),
        },
    }, indent=2))


if __name__ == "__main__":
    main()
