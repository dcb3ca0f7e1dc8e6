"""TFLite conversion (builtin ops only) and running ``.tflite`` files through the LiteRT interpreter."""
from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable

import numpy as np
import tensorflow as tf

from pcw_keras.export.bias_correction import correct_biases

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8", "int16x8")
BIAS_CORRECTION_SAMPLES = 64  # the first representative samples, for full int8's bias correction


class UnsupportedOpsError(ValueError):
    """The model uses operations that builtin-only TFLite cannot run."""


def _unsupported_ops(message: str) -> str:
    found = re.findall(r"(?:TF Select|Flex|custom) ops: ([^\n]+)", message)
    return ", ".join(found) if found else message.strip().splitlines()[0][:300]


def convert_saved_model(
    saved_model_dir: str,
    quantize: str = "none",
    *,
    representative_data: Callable[[], Iterable[list[np.ndarray]]] | None = None,
    int8_io: bool = False,
    bias_correction: bool = True,
) -> bytes:
    """Converts a SavedModel's default signature to a builtin-only ``.tflite`` flatbuffer.

    Parameters
    ----------
    saved_model_dir : str
        From :func:`pcw_keras.export.savedmodel.write_saved_model`.
    quantize : {"none", "float16", "dynamic", "int8", "int16x8"}
        ``"none"``: float32. ``"float16"``: float16 weights. ``"dynamic"``:
        int8 weights, float activations (dynamic-range). ``"int8"``: int8
        weights and activations, calibrated on ``representative_data``.
        ``"int16x8"``: int8 weights, int16 activations, calibrated likewise
        (ops without a 16x8 kernel, e.g. the uint8 input's cast, stay float).
    representative_data : callable, optional
        Required for ``"int8"``: yields ``[input batch]`` lists.
    int8_io : bool
        With ``"int8"``: float inputs and the outputs become int8 too
        (quantisation parameters in the model). uint8 pixel inputs stay uint8.
    bias_correction : bool
        With ``"int8"``: remove the systematic error that 8-bit rounding
        leaves in each layer's output, through its bias, measured on the first
        :data:`BIAS_CORRECTION_SAMPLES` representative samples against the
        float32 conversion (:func:`pcw_keras.export.bias_correction.correct_biases`).

    Raises
    ------
    UnsupportedOpsError
        The graph has ops outside the TFLite builtins; the message names them.
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"`quantize` must be one of {QUANTIZE_MODES}. Received: quantize={quantize!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize in ("int8", "int16x8"):
        if representative_data is None:
            raise ValueError(f"quantize={quantize!r} needs `representative_data`.")
        converter.representative_dataset = representative_data
    if quantize == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    if quantize == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    try:
        content = converter.convert()
    except Exception as error:  # the converter raises its own ConverterError with MLIR text
        text = str(error)
        if "not supported by the native TFLite runtime" in text or "neither a custom op nor a flex op" in text:
            raise UnsupportedOpsError(
                f"The model uses operations that builtin-only TFLite cannot run: {_unsupported_ops(text)}. "
                "Replace them with TFLite-compatible ops (PermuteNet's permutation is handled by the exporter)."
            ) from None
        raise
    if quantize == "int8" and bias_correction:
        batches = itertools.islice(representative_data(), BIAS_CORRECTION_SAMPLES)
        samples = np.concatenate([np.asarray(batch[0]) for batch in batches])[:BIAS_CORRECTION_SAMPLES]
        content = correct_biases(content, convert_saved_model(saved_model_dir, "none"), samples)
    return content


class LiteRTModel:
    """A ``.tflite`` model in the LiteRT interpreter, called like a function on NumPy batches.

    Inputs are given in the export's own input dtype (uint8 pixels or float
    normalised images); an int8 input is quantised here, and an int8 output
    dequantised, so :meth:`__call__` always returns float32 logits.

    Parameters
    ----------
    content : bytes
        The flatbuffer.
    threads : int
        Interpreter threads.
    read_permutations : bool
        Keep the interpreter's intermediate tensors so that the indices drawn
        by a random permutation (the TOPK_V2 output) can be read after each
        call (:attr:`last_permutation`). For checking, not for timing.
    """

    def __init__(self, content: bytes, *, threads: int = 1, read_permutations: bool = False):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(
            model_content=content, num_threads=threads, experimental_preserve_all_tensors=read_permutations
        )
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = int(self.input["shape"][0])
        self._topk = [op["outputs"][1] for op in self.interpreter._get_ops_details() if op["op_name"] == "TOPK_V2"]
        self.last_permutation: np.ndarray | None = None

    @property
    def permutation_ops(self) -> int:
        """How many random permutations (TOPK_V2 ops) the graph draws per call."""
        return len(self._topk)

    def _quantize(self, images: np.ndarray) -> np.ndarray:
        dtype = self.input["dtype"]
        if dtype == np.int8 and images.dtype != np.int8:
            scale, zero_point = self.input["quantization"]
            images = np.clip(np.rint(images / scale + zero_point), -128, 127)
        return images.astype(dtype)

    def _dequantize(self, outputs: np.ndarray) -> np.ndarray:
        if self.output["dtype"] == np.int8:
            scale, zero_point = self.output["quantization"]
            return (outputs.astype(np.float32) - zero_point) * scale
        return outputs.astype(np.float32)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if len(images) != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], (len(images),) + tuple(self.input["shape"][1:]))
            self.interpreter.allocate_tensors()
            self._batch = len(images)
        self.interpreter.set_tensor(self.input["index"], self._quantize(images))
        self.interpreter.invoke()
        if self._topk:
            self.last_permutation = np.array(self.interpreter.get_tensor(self._topk[0]))
        return self._dequantize(self.interpreter.get_tensor(self.output["index"]))

    def input_description(self) -> dict:
        """dtype, shape and (for int8) quantisation of the input, as the report records it."""
        description = {"dtype": np.dtype(self.input["dtype"]).name, "shape": [None] + [int(n) for n in self.input["shape"][1:]]}
        if self.input["dtype"] == np.int8:
            description["quantization"] = {"scale": float(self.input["quantization"][0]),
                                           "zero_point": int(self.input["quantization"][1])}
        return description

    def output_description(self) -> dict:
        """dtype and (for int8) quantisation of the logits."""
        description = {"name": "logits", "dtype": np.dtype(self.output["dtype"]).name}
        if self.output["dtype"] == np.int8:
            description["quantization"] = {"scale": float(self.output["quantization"][0]),
                                           "zero_point": int(self.output["quantization"][1])}
        return description
