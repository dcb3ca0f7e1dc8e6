#!/usr/bin/env python3
"""Classify image files with a ``.tflite`` model from ``pcw export``, or time it: no TensorFlow needed.

Needs NumPy and one of ``ai-edge-litert`` or ``tflite-runtime``; Pillow, if
installed, reads JPEG/PNG/... and resizes. Without Pillow it reads ``.npy``
arrays and binary PPM (``P6``) files of the model's input size.

Usage::

    python pcw_tflite_runner.py EXPORT_DIR_or_MODEL.tflite IMAGE [IMAGE ...] [--top 3] [--json]
    python pcw_tflite_runner.py EXPORT_DIR --cell 4 patch.png   # paste a patch into cell 4 of a canvas
    python pcw_tflite_runner.py EXPORT_DIR --benchmark [--runs 100] [--threads 1] [--json]
    python pcw_tflite_runner.py model.tflite IMAGE --mean 0.485 0.456 0.406 --std 0.229 0.224 0.225

Labels come from ``labels.txt`` beside the model (``--labels`` to choose
another file). The input size and dtype come from the model itself. Images
become ``(pixels / 255 - mean) / std`` for float and int8 inputs, with the
mean/std of ``export_report.json`` beside the model (``input.mean``,
``input.std``) or of ``--mean``/``--std``; uint8 inputs (the default of
``pcw export``) take the pixels as they are and normalise inside the model.
Models that need TensorFlow (Flex) ops, or op versions the installed runtime
does not know, are refused with the reason.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import struct
import sys
import time
from importlib import metadata

import numpy as np

REPORT_FILE = "export_report.json"
CUSTOM_OPCODE = 32  # BuiltinOperator.CUSTOM in the TFLite schema


def load_interpreter_class() -> tuple[type, str]:
    """``(Interpreter, "package version")`` from ai-edge-litert, else from tflite-runtime."""
    for module, package in (("ai_edge_litert.interpreter", "ai-edge-litert"),
                            ("tflite_runtime.interpreter", "tflite-runtime")):
        try:
            interpreter = importlib.import_module(module).Interpreter
        except ImportError:
            continue
        try:
            return interpreter, f"{package} {metadata.version(package)}"
        except metadata.PackageNotFoundError:
            return interpreter, package
    raise SystemExit("pcw_tflite_runner needs `pip install ai-edge-litert` (or tflite-runtime).")


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


def read_report(folder: str) -> dict:
    """``export_report.json`` beside the model, or ``{}`` when there is none."""
    path = os.path.join(folder, REPORT_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def operator_codes(content: bytes) -> list[tuple[int, str | None, int]]:
    """``(builtin code, custom code, version)`` of each operator code of a ``.tflite`` flatbuffer.

    A reader of the few TFLite schema fields needed (``Model.operator_codes``:
    ``deprecated_builtin_code``, ``custom_code``, ``version``,
    ``builtin_code``), so that no TensorFlow or flatbuffers package is needed.
    """
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise SystemExit("Not a .tflite model: the file lacks the 'TFL3' identifier.")

    def u32(at: int) -> int:
        return struct.unpack_from("<I", content, at)[0]

    def field(table: int, index: int) -> int | None:  # absolute position of a table's field, None when absent
        vtable = table - struct.unpack_from("<i", content, table)[0]
        size = struct.unpack_from("<H", content, vtable)[0]
        if 4 + 2 * index >= size:
            return None
        offset = struct.unpack_from("<H", content, vtable + 4 + 2 * index)[0]
        return table + offset if offset else None

    def vector(at: int) -> list[int]:  # positions of the tables a vector field points to
        start = at + u32(at)
        return [start + 4 + 4 * k + u32(start + 4 + 4 * k) for k in range(u32(start))]

    model = u32(0)
    codes_field = field(model, 1)
    codes = []
    for table in vector(codes_field) if codes_field is not None else []:
        deprecated, custom, version, builtin = (field(table, index) for index in range(4))
        code = max(struct.unpack_from("<b", content, deprecated)[0] if deprecated is not None else 0,
                   struct.unpack_from("<i", content, builtin)[0] if builtin is not None else 0)
        name = None
        if custom is not None:
            start = custom + u32(custom)
            name = content[start + 4 : start + 4 + u32(start)].decode("utf-8")
        codes.append((code, name, struct.unpack_from("<i", content, version)[0] if version is not None else 1))
    return codes


def flex_ops(content: bytes) -> list[str]:
    """The TensorFlow (Flex) ops a model needs: custom ops whose name starts with ``Flex``."""
    return sorted({name for code, name, _ in operator_codes(content)
                   if code == CUSTOM_OPCODE and name and name.startswith("Flex")})


def normalisation(report_input: dict, mean: list[float] | None,
                  std: list[float] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mean, std)`` per channel from ``--mean``/``--std``, else from the report's ``input``; None if neither has them."""
    if (mean is None) != (std is None):
        raise SystemExit("Give --mean and --std together.")
    source = "--mean/--std"
    if mean is None:
        if "mean" not in report_input or "std" not in report_input:
            return None
        mean, std, source = report_input["mean"], report_input["std"], f"{REPORT_FILE} input.mean/std"
    mean, std = np.asarray(mean, np.float32).reshape(-1), np.asarray(std, np.float32).reshape(-1)
    if mean.size not in (1, 3) or std.size not in (1, 3) or not np.all(std > 0):
        raise SystemExit(f"{source} must be 1 or 3 numbers each, std > 0. Received: mean={mean.tolist()}, std={std.tolist()}")
    return mean, std


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
    """A ``.tflite`` classifier on single uint8 images: preprocessing, (de)quantisation, softmax.

    The input size and dtype are the model's own; ``report_input`` (the
    report's ``input`` section) must agree with them when it states them.
    """

    def __init__(self, model_path: str, report_input: dict, mean_std: tuple[np.ndarray, np.ndarray] | None, threads: int = 1):
        with open(model_path, "rb") as handle:
            content = handle.read()
        flex = flex_ops(content)
        if flex:
            raise SystemExit(f"{model_path} needs TensorFlow (Flex) ops, which the LiteRT and tflite-runtime pip "
                             f"interpreters cannot run: {', '.join(flex)}. Export it with TFLite builtin ops only.")
        interpreter_class, self.runtime = load_interpreter_class()
        try:
            self.interpreter = interpreter_class(model_content=content, num_threads=threads)
        except ValueError as error:
            unknown = re.search(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'", str(error))
            if unknown is None:
                raise
            raise SystemExit(f"{self.runtime} does not know op {unknown[1]} version {unknown[2]}, which {model_path} "
                             "uses: run it with a newer runtime, or export it for this one.") from None
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.dtype = np.dtype(self.input["dtype"])
        if self.dtype not in (np.uint8, np.int8, np.float32):
            raise SystemExit(f"{model_path} takes {self.dtype.name} input: the runner feeds uint8, int8 or float32.")
        shape = [int(n) for n in self.input["shape"]]
        if len(shape) != 4 or shape[3] != 3:
            raise SystemExit(f"{model_path} takes input of shape {shape}: the runner feeds (1, height, width, 3) images.")
        dtype, stated_shape = report_input.get("dtype"), report_input.get("shape")
        if (dtype is not None and dtype != self.dtype.name) or (
                stated_shape is not None and list(stated_shape[1:]) != shape[1:]):
            raise SystemExit(f"{REPORT_FILE} describes a {dtype} {stated_shape} input, but {model_path} takes "
                             f"{self.dtype.name} {[None] + shape[1:]}: keep each model with its own report.")
        self.height, self.width = shape[1:3]
        self.normalisation = mean_std

    @property
    def needs_normalisation(self) -> bool:
        """Float and int8 inputs take normalised images; uint8 inputs normalise inside the model."""
        return self.dtype != np.uint8

    def prepare(self, image: np.ndarray) -> np.ndarray:
        batch = image[None]
        if self.dtype == np.uint8:
            return batch
        mean, std = self.normalisation
        values = (batch.astype(np.float32) / 255.0 - mean) / std
        if self.dtype == np.int8:
            scale, zero_point = self.input["quantization"]
            return np.clip(np.rint(values / scale + zero_point), -128, 127).astype(np.int8)
        return values.astype(np.float32)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The raw output for one prepared batch."""
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])[0]

    def logits(self, image: np.ndarray) -> np.ndarray:
        out = self.run(self.prepare(image))
        if self.output["dtype"] == np.int8:
            scale, zero_point = self.output["quantization"]
            return (out.astype(np.float32) - zero_point) * scale
        return out.astype(np.float32)

    def canvas(self, patch: np.ndarray, cell: int, grid: int) -> np.ndarray:
        """``patch`` in cell ``cell`` of a ``grid x grid`` canvas whose other cells are the mean colour."""
        if not 0 <= cell < grid * grid:
            raise SystemExit(f"--cell must be in [0, {grid * grid - 1}] for a {grid}x{grid} grid. Received: {cell}")
        if self.normalisation is None:
            raise SystemExit(f"--cell fills the other cells with the dataset's mean colour: keep {REPORT_FILE} "
                             "beside the model, or pass --mean and --std.")
        h, w = self.height // grid, self.width // grid
        if patch.shape[:2] != (h, w):
            raise SystemExit(f"A patch for a {grid}x{grid} canvas is {h}x{w}. Received: {patch.shape[0]}x{patch.shape[1]}")
        canvas = np.empty((self.height, self.width, 3), np.uint8)
        canvas[:] = np.clip(np.rint(self.normalisation[0] * 255), 0, 255).astype(np.uint8)
        row, col = divmod(cell, grid)
        canvas[row * h : (row + 1) * h, col * w : (col + 1) * w] = patch
        return canvas


def confidences(outputs: np.ndarray, output_space: str | None) -> np.ndarray:
    """The model's outputs as probabilities: as they are if it emits probabilities, else their softmax.

    ``output_space`` is what the export's check recorded (``"probabilities"``
    or ``"logits"``); without a report, outputs that are non-negative and sum
    to 1 (within 1e-3) are taken as probabilities.
    """
    if output_space is None:
        output_space = "probabilities" if outputs.min() >= 0 and abs(outputs.sum() - 1.0) <= 1e-3 else "logits"
    if output_space == "probabilities":
        return outputs
    shifted = np.exp(outputs - outputs.max())
    return shifted / shifted.sum()


def benchmark(classifier: Classifier, runs: int, warmup: int) -> dict:
    """Latency percentiles of single-image calls (set input, ``invoke()``, read output) on random input.

    The input is drawn in the model's own dtype, so no normalisation is needed.
    """
    rng = np.random.default_rng(0)
    shape = (1, classifier.height, classifier.width, 3)
    if classifier.dtype == np.float32:
        batch = rng.standard_normal(shape).astype(np.float32)
    else:
        limits = np.iinfo(classifier.dtype)
        batch = rng.integers(limits.min, limits.max + 1, shape).astype(classifier.dtype)
    for _ in range(warmup):
        classifier.run(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier.run(batch)
        times.append((time.perf_counter() - start) * 1000.0)
    p50, p90, p99 = (float(value) for value in np.percentile(times, [50, 90, 99]))
    return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "mean_ms": float(np.mean(times)), "runs": runs, "warmup": warmup}


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="TFLite export folder (from pcw export) or a .tflite file")
    parser.add_argument("images", nargs="*", help="image files to classify")
    parser.add_argument("--labels", help="labels file, one name per line (default: labels.txt beside the model)")
    parser.add_argument("--top", type=int, default=1, help="how many classes to print per image")
    parser.add_argument("--cell", type=int, help="paste each image (a patch) into this cell of a canvas first")
    parser.add_argument("--grid", type=int, help="cells per side of that canvas (default: the export's recipe grid)")
    parser.add_argument("--mean", type=float, nargs="+", help="per-channel mean of pixels / 255 (1 or 3 numbers; "
                        f"default: {REPORT_FILE} beside the model)")
    parser.add_argument("--std", type=float, nargs="+", help="per-channel std, with --mean")
    parser.add_argument("--json", action="store_true", help="print JSON: one object per image, or the benchmark's")
    parser.add_argument("--benchmark", action="store_true", help="time single-image invocations, print percentiles and size")
    parser.add_argument("--runs", type=positive, default=100, help="timed invocations (benchmark)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed invocations first (benchmark)")
    parser.add_argument("--threads", type=positive, default=1, help="interpreter threads")
    args = parser.parse_intermixed_args(argv)

    model_path, folder = resolve_model(args.model)
    report = read_report(folder)
    classifier = Classifier(model_path, report.get("input", {}), normalisation(report.get("input", {}), args.mean, args.std),
                            threads=args.threads)
    if args.benchmark:
        size = os.path.getsize(model_path)
        result = {"model": model_path, "size_bytes": size, "size_mb": size / 1e6,
                  **benchmark(classifier, args.runs, args.warmup), "threads": args.threads, "runtime": classifier.runtime}
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{model_path}: {result['size_mb']:.2f} MB ({size} bytes); per image p50 {result['p50_ms']:.3f} ms, "
                  f"p90 {result['p90_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms over {args.runs} runs "
                  f"({args.threads} thread{'s' if args.threads > 1 else ''}, {classifier.runtime})")
        return 0
    if not args.images:
        parser.error("give image files to classify, or --benchmark")
    if classifier.needs_normalisation and classifier.normalisation is None:
        raise SystemExit(f"{model_path} takes {classifier.dtype.name} images normalised as (pixels / 255 - mean) / std, "
                         f"and no {REPORT_FILE} beside it gives mean/std: keep the export folder together, "
                         "or pass --mean and --std.")
    labels = read_labels(folder, args.labels)
    grid = args.grid
    if args.cell is not None and grid is None:
        grid = report.get("task", {}).get("grid")
        if grid is None:
            parser.error(f"--cell needs --grid (no {REPORT_FILE} gives it)")
    for path in args.images:
        if args.cell is not None:
            patch = read_image(path, (classifier.height // grid, classifier.width // grid))
            image = classifier.canvas(patch, args.cell, grid)
        else:
            image = read_image(path, (classifier.height, classifier.width))
        probabilities = confidences(classifier.logits(image), report.get("check", {}).get("output_space"))
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
