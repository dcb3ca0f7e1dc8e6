#!/usr/bin/env python3
"""Classify image files with a ``.tflite`` model from ``pcw export``, or time it: no TensorFlow needed.

Needs NumPy and one of ``ai-edge-litert`` or ``tflite-runtime``; Pillow, if
installed, reads JPEG/PNG/... and resizes. Without Pillow it reads ``.npy``
arrays and binary PPM (``P6``) files of the model's input size.

Usage::

    python pcw_tflite_runner.py EXPORT_DIR_or_MODEL.tflite IMAGE [IMAGE ...] [--top 3] [--json]
    python pcw_tflite_runner.py EXPORT_DIR --cell 4 patch.png   # paste a patch into cell 4 of a canvas
    python pcw_tflite_runner.py EXPORT_DIR --benchmark [--runs 100] [--threads 1]

Labels come from ``labels.txt`` beside the model (``--labels`` to choose
another file). Float-input exports normalise images with the mean/std in the
``export_report.json`` beside the model; uint8-input exports (the default of
``pcw export``) normalise inside the model.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def load_interpreter_class():
    """``Interpreter`` from ai-edge-litert, else from tflite-runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise SystemExit("pcw_tflite_runner needs `pip install ai-edge-litert` (or tflite-runtime).") from None
    return Interpreter


def resolve_model(path: str) -> tuple[str, str]:
    """``(model file, folder)`` from an export folder or a ``.tflite`` file."""
    if os.path.isdir(path):
        model = os.path.join(path, "model.tflite")
        if not os.path.isfile(model):
            raise SystemExit(f"{path!r} has no model.tflite: pass a TFLite export folder or a .tflite file.")
        return model, path
    if not os.path.isfile(path):
        raise SystemExit(f"No model at {path!r}.")
    return path, os.path.dirname(os.path.abspath(path))


def read_labels(folder: str, labels_path: str | None) -> list[str] | None:
    path = labels_path or os.path.join(folder, "labels.txt")
    if not os.path.isfile(path):
        if labels_path:
            raise SystemExit(f"No labels file at {labels_path!r}.")
        return None
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


def read_normalisation(folder: str) -> tuple[np.ndarray, np.ndarray] | None:
    path = os.path.join(folder, "export_report.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        described = json.load(handle).get("input", {})
    if "mean" not in described:
        return None
    return np.asarray(described["mean"], np.float32), np.asarray(described["std"], np.float32)


def _read_ppm(path: str) -> np.ndarray:
    with open(path, "rb") as handle:
        data = handle.read()
    fields, position = [], 0
    while len(fields) < 4:  # magic, width, height, maxval; '#' comments allowed
        while data[position : position + 1].isspace():
            position += 1
        if data[position : position + 1] == b"#":
            position = data.index(b"\n", position)
            continue
        end = position
        while not data[end : end + 1].isspace():
            end += 1
        fields.append(data[position:end])
        position = end
    if fields[0] != b"P6" or int(fields[3]) != 255:
        raise SystemExit(f"{path!r}: only binary 8-bit PPM (P6) is read without Pillow.")
    width, height = int(fields[1]), int(fields[2])
    return np.frombuffer(data, np.uint8, width * height * 3, position + 1).reshape(height, width, 3)


def read_image(path: str, size: tuple[int, int] | None) -> np.ndarray:
    """``(H, W, 3)`` uint8 pixels, resized to ``size`` (height, width) when given and Pillow is present."""
    if not os.path.isfile(path):
        raise SystemExit(f"No image at {path!r}.")
    if path.endswith(".npy"):
        image = np.load(path)
    else:
        try:
            from PIL import Image
        except ImportError:
            image = _read_ppm(path)
        else:
            with Image.open(path) as opened:
                picture = opened.convert("RGB")
                if size is not None and picture.size != (size[1], size[0]):
                    picture = picture.resize((size[1], size[0]), Image.BILINEAR)
                return np.asarray(picture, np.uint8)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise SystemExit(f"{path!r}: expected (height, width, 3) uint8 pixels, got {image.dtype} {image.shape}.")
    if size is not None and image.shape[:2] != tuple(size):
        raise SystemExit(f"{path!r} is {image.shape[0]}x{image.shape[1]}, the model takes {size[0]}x{size[1]}: "
                         "install Pillow to resize, or pass images of that size.")
    return image


class Classifier:
    """A ``.tflite`` classifier on single uint8 images: preprocessing, (de)quantisation, softmax."""

    def __init__(self, model_path: str, folder: str, threads: int = 1):
        self.interpreter = load_interpreter_class()(model_path=model_path, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.height, self.width = (int(n) for n in self.input["shape"][1:3])
        self.normalisation = read_normalisation(folder)
        if self.input["dtype"] != np.uint8 and self.normalisation is None:
            raise SystemExit("This model takes normalised images and no export_report.json gives their mean/std: "
                             "keep the export folder together, or export with --input-dtype uint8.")

    def prepare(self, image: np.ndarray) -> np.ndarray:
        batch = image[None]
        if self.input["dtype"] == np.uint8:
            return batch
        mean, std = self.normalisation
        values = (batch.astype(np.float32) / 255.0 - mean) / std
        if self.input["dtype"] == np.int8:
            scale, zero_point = self.input["quantization"]
            return np.clip(np.rint(values / scale + zero_point), -128, 127).astype(np.int8)
        return values.astype(np.float32)

    def logits(self, image: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], self.prepare(image))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])[0]
        if self.output["dtype"] == np.int8:
            scale, zero_point = self.output["quantization"]
            return (out.astype(np.float32) - zero_point) * scale
        return out.astype(np.float32)

    def canvas(self, patch: np.ndarray, cell: int, grid: int) -> np.ndarray:
        """``patch`` in cell ``cell`` of a ``grid x grid`` canvas whose other cells are the mean colour."""
        if not 0 <= cell < grid * grid:
            raise SystemExit(f"--cell must be in [0, {grid * grid - 1}] for a {grid}x{grid} grid. Received: {cell}")
        h, w = self.height // grid, self.width // grid
        if patch.shape[:2] != (h, w):
            raise SystemExit(f"A patch for a {grid}x{grid} canvas is {h}x{w}. Received: {patch.shape[0]}x{patch.shape[1]}")
        mean = self.normalisation[0] if self.normalisation else np.array([0.4914, 0.4822, 0.4465], np.float32)
        canvas = np.empty((self.height, self.width, 3), np.uint8)
        canvas[:] = np.clip(np.rint(mean * 255), 0, 255).astype(np.uint8)
        row, col = divmod(cell, grid)
        canvas[row * h : (row + 1) * h, col * w : (col + 1) * w] = patch
        return canvas


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def benchmark(classifier: Classifier, runs: int, warmup: int) -> dict:
    """Median and percentiles of single-image ``invoke()`` times on a random image."""
    image = np.random.default_rng(0).integers(0, 256, (classifier.height, classifier.width, 3), dtype=np.uint8)
    for _ in range(warmup):
        classifier.logits(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier.logits(image)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": float(np.median(times)), "p10_ms": float(np.percentile(times, 10)),
            "p90_ms": float(np.percentile(times, 90)), "runs": runs, "warmup": warmup}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="TFLite export folder (from pcw export) or a .tflite file")
    parser.add_argument("images", nargs="*", help="image files to classify")
    parser.add_argument("--labels", help="labels file, one name per line (default: labels.txt beside the model)")
    parser.add_argument("--top", type=int, default=1, help="how many classes to print per image")
    parser.add_argument("--cell", type=int, help="paste each image (a patch) into this cell of a canvas first")
    parser.add_argument("--grid", type=int, help="cells per side of that canvas (default: the export's recipe grid)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    parser.add_argument("--benchmark", action="store_true", help="time single-image invocations and print JSON")
    parser.add_argument("--runs", type=int, default=100, help="timed invocations (benchmark)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed invocations first (benchmark)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads")
    args = parser.parse_intermixed_args(argv)

    model_path, folder = resolve_model(args.model)
    classifier = Classifier(model_path, folder, threads=args.threads)
    if args.benchmark:
        result = benchmark(classifier, args.runs, args.warmup)
        result.update({"model": model_path, "size_bytes": os.path.getsize(model_path), "threads": args.threads})
        print(json.dumps(result))
        return 0
    if not args.images:
        parser.error("give image files to classify, or --benchmark")
    labels = read_labels(folder, args.labels)
    grid = args.grid
    if args.cell is not None and grid is None:
        report = os.path.join(folder, "export_report.json")
        if os.path.isfile(report):
            with open(report, encoding="utf-8") as handle:
                grid = json.load(handle).get("task", {}).get("grid")
        if grid is None:
            parser.error("--cell needs --grid (no export_report.json gives it)")
    for path in args.images:
        if args.cell is not None:
            patch = read_image(path, (classifier.height // grid, classifier.width // grid))
            image = classifier.canvas(patch, args.cell, grid)
        else:
            image = read_image(path, (classifier.height, classifier.width))
        probabilities = softmax(classifier.logits(image))
        best = np.argsort(-probabilities)[: max(1, args.top)]
        names = [labels[i] if labels and i < len(labels) else str(i) for i in best]
        if args.json:
            print(json.dumps({"image": path, "predictions": [
                {"index": int(i), "label": name, "confidence": float(probabilities[i])} for i, name in zip(best, names)]}))
        else:
            print(f"{path}: " + ", ".join(f"{name} ({100 * probabilities[i]:.1f}%)" for i, name in zip(best, names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
