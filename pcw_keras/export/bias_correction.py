"""Empirical bias correction of a full-int8 ``.tflite`` model.

Post-training int8 rounds every activation to a per-tensor grid whose step is
set by the largest activations of the calibration data. Where a large part of
the input is one constant (the 8 empty cells of a location canvas), the
network's activations there are constants too, and rounding them gives the
same error at every position of the region and for every input: a systematic
offset per channel, not noise that averages out. A GAPNet averages its class
maps over the whole canvas, so these offsets go straight into the logits and
grow layer after layer (measured in docs/results.md, section 4).

:func:`correct_biases` removes them as Nagel et al. (2019, "Data-free
quantization through weight equalization and bias correction") do
empirically: layer by layer in execution order, the mean pre-activation of
each convolution or fully connected layer of the int8 model (its own int8
inputs, int8 weights) is compared with the float model's on the same samples,
and the difference per output channel is subtracted from the layer's int32
bias. Each layer is corrected after the ones before it, so it also takes up
the offsets they could not remove (the rounding of their own outputs).
"""
from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

CORRECTED_OPS = ("CONV_2D", "FULLY_CONNECTED")
RANDOM_OPS = ("RANDOM_UNIFORM", "RANDOM_STANDARD_NORMAL", "MULTINOMIAL")


def _op_name(model, operator) -> str:
    return flatbuffer_utils.opcode_to_name(model, operator.opcodeIndex) or ""


def _corrected_operators(model) -> list[tuple[int, object]]:
    """``(index, operator)`` of the layers with a bias that no random op feeds, in execution order."""
    found, tainted = [], set()
    for index, operator in enumerate(model.subgraphs[0].operators):
        name = _op_name(model, operator)
        inputs = [int(i) for i in operator.inputs if i >= 0]
        if name in RANDOM_OPS or tainted.intersection(inputs):
            tainted.update(int(i) for i in operator.outputs)
        elif name in CORRECTED_OPS and len(operator.inputs) > 2 and operator.inputs[2] >= 0:
            found.append((index, operator))
    return found


class _Runner:
    """Runs a ``.tflite`` model (no delegate) keeping all tensors, and reads them back in float."""

    def __init__(self, content: bytes):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        with warnings.catch_warnings():  # keeping the tensors is the point here, not a debugging leftover
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
            self.interpreter = Interpreter(
                model_content=content, experimental_preserve_all_tensors=True,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
        self.input = self.interpreter.get_input_details()[0]
        self.details = {detail["index"]: detail for detail in self.interpreter.get_tensor_details()}
        self._batch = None

    def invoke(self, batch: np.ndarray) -> None:
        if self._batch != len(batch):
            self.interpreter.resize_tensor_input(self.input["index"], (len(batch),) + tuple(self.input["shape"][1:]))
            self.interpreter.allocate_tensors()
            self._batch = len(batch)
        dtype = self.input["dtype"]
        if dtype == np.int8 and batch.dtype != np.int8:
            scale, zero_point = self.input["quantization"]
            batch = np.clip(np.rint(batch / scale + zero_point), -128, 127)
        self.interpreter.set_tensor(self.input["index"], batch.astype(dtype))
        self.interpreter.invoke()

    def value(self, index: int) -> np.ndarray:
        """The tensor in real numbers: dequantized (per tensor or per channel) when it is an integer tensor."""
        value = self.interpreter.get_tensor(index).astype(np.float32)
        parameters = self.details[index]["quantization_parameters"]
        scales = parameters["scales"]
        if len(scales) == 0:
            return value
        shape = [1] * value.ndim
        if len(scales) > 1:
            shape[parameters["quantized_dimension"]] = -1
        return (value - parameters["zero_points"].reshape(shape)) * scales.reshape(shape).astype(np.float32)


def _pre_activation_sum(name: str, operator, inputs: np.ndarray, weights: np.ndarray,
                        bias: np.ndarray) -> tuple[np.ndarray, int]:
    """Per channel, the sum over all positions of the layer's output before its fused activation; and their count."""
    if name == "CONV_2D":
        options = operator.builtinOptions
        outputs = tf.nn.conv2d(
            inputs, np.transpose(weights, (1, 2, 3, 0)),
            strides=[1, options.strideH, options.strideW, 1],
            padding="SAME" if options.padding == schema.Padding.SAME else "VALID",
            dilations=[1, options.dilationHFactor, options.dilationWFactor, 1],
        ).numpy()
    else:  # FULLY_CONNECTED: weights (units, features)
        outputs = inputs.reshape(-1, weights.shape[1]) @ weights.T
    outputs = outputs.reshape(-1, outputs.shape[-1]) + bias
    return outputs.sum(axis=0, dtype=np.float64), len(outputs)


def _mean_pre_activations(model, content: bytes, samples: np.ndarray, indices: list[int],
                          batch_size: int) -> list[np.ndarray]:
    """For the operators at ``indices`` of ``model`` (``content`` serialised): mean pre-activation per channel."""
    operators = model.subgraphs[0].operators
    runner = _Runner(content)
    sums, counts = [0.0] * len(indices), [0] * len(indices)
    for start in range(0, len(samples), batch_size):
        runner.invoke(samples[start : start + batch_size])
        for slot, index in enumerate(indices):
            operator = operators[index]
            inputs, weights, bias = (runner.value(int(i)) for i in operator.inputs[:3])
            total, count = _pre_activation_sum(_op_name(model, operator), operator, inputs, weights, bias)
            sums[slot] = sums[slot] + total
            counts[slot] += count
    return [total / count for total, count in zip(sums, counts)]


def correct_biases(quantized: bytes, reference: bytes, samples: np.ndarray, *, batch_size: int = 16) -> bytes:
    """Removes the systematic output error of each int8 layer through its bias.

    Parameters
    ----------
    quantized : bytes
        A full-int8 ``.tflite`` model (int8 activations, int32 biases).
    reference : bytes
        The same graph converted without quantization (float32).
    samples : np.ndarray
        Representative inputs, in the reference model's input dtype (an int8
        input of ``quantized`` is quantized from them).
    batch_size : int
        Samples per interpreter call.

    Returns
    -------
    bytes
        ``quantized`` with new int32 biases in its convolutions and fully
        connected layers; layers fed by a random op (PermuteNet's draw) keep theirs.

    Raises
    ------
    ValueError
        The two models do not have the same layers in the same order.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(quantized)
    float_model = flatbuffer_utils.convert_bytearray_to_object(reference)
    layers, float_layers = _corrected_operators(model), _corrected_operators(float_model)

    def signature(candidate, found):
        tensors = candidate.subgraphs[0].tensors
        return [(_op_name(candidate, op), tuple(tensors[op.inputs[1]].shape)) for _, op in found]

    if signature(model, layers) != signature(float_model, float_layers):
        raise ValueError(
            "Bias correction pairs the layers of the int8 and float32 models in order, and they differ. "
            f"Received: {signature(model, layers)} (int8) vs {signature(float_model, float_layers)} (float32)"
        )
    targets = _mean_pre_activations(float_model, reference, samples, [index for index, _ in float_layers], batch_size)
    tensors, buffers = model.subgraphs[0].tensors, model.buffers
    users = np.bincount([tensor.buffer for graph in model.subgraphs for tensor in graph.tensors], minlength=len(buffers))
    content = quantized
    for (index, operator), target in zip(layers, targets):
        bias = tensors[operator.inputs[2]]
        if bias.type != schema.TensorType.INT32:
            continue
        achieved = _mean_pre_activations(model, content, samples, [index], batch_size)[0]
        scales = np.asarray(bias.quantization.scale, np.float64)
        values = np.frombuffer(bytes(buffers[bias.buffer].data), "<i4").astype(np.float64)
        corrected = np.clip(np.rint(values - (achieved - target) / scales), -(2**31), 2**31 - 1).astype("<i4")
        if users[bias.buffer] > 1:  # a buffer shared with other tensors: give this bias its own
            buffers.append(schema.BufferT())
            bias.buffer = len(buffers) - 1
        buffers[bias.buffer].data = np.frombuffer(corrected.tobytes(), np.uint8)
        content = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return content
