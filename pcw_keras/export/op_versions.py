"""Which TFLite runtimes can load a ``.tflite`` file: its builtin op versions against measured runtimes.

A runtime loads a model only if it registers every ``(builtin op, version)``
pair of the model's operator codes; otherwise loading fails with "Didn't find
op for builtin opcode 'X' version 'N'". The converter writes the op versions it
needs (e.g. full int8 ``SQRT`` is version 2, which ``tflite-runtime`` 2.14 does
not know).

The ``min_runtime_version`` entry that the converter writes into the model's
metadata is not used: it comes from a table in TensorFlow
(``tensorflow/lite/tools/versioning/runtime_version.cc``) with no entry
after 2.11, which skips op versions it does not list, and it is computed
before post-training quantisation rewrites the ops. A TensorFlow 2.21 full
int8 model that ``tflite-runtime`` 2.14 cannot load (``SQRT`` version 2)
still says "1.14.0" there.

:data:`RUNTIME_OP_VERSIONS` is measured instead: for every builtin op of the
schema, a one-op model was loaded at each version in each runtime
(``tests/scripts/probe_op_versions.py``; ``tests/test_op_versions.py``
measures again and compares).
"""
from __future__ import annotations

import re
from collections import Counter

from tensorflow.lite.python import schema_py_generated as schema

# Runtimes in TensorFlow Lite numbering (tflite-runtime and TensorFlow releases share it), oldest first,
# with the package whose interpreter was measured. ai-edge-litert is numbered apart; its 2.3.0 knows
# every op version of "2.21" and more.
RUNTIMES = {"2.14": "tflite-runtime 2.14.0", "2.21": "tensorflow-cpu 2.21.0 (tf.lite.Interpreter)"}
# The highest version of each builtin op that each runtime of RUNTIMES registers (0: not at all); every
# version below the highest is registered too, except BROADCAST_TO's version 1, which no converter writes.
RUNTIME_OP_VERSIONS = {
    "ABS": (5, 5), "ADD": (5, 5), "ADD_N": (1, 1), "ARG_MAX": (3, 3), "ARG_MIN": (3, 3), "ASSIGN_VARIABLE": (1, 1),
    "ATAN2": (1, 1), "AVERAGE_POOL_2D": (3, 3), "BATCH_MATMUL": (4, 4), "BATCH_TO_SPACE_ND": (4, 4),
    "BIDIRECTIONAL_SEQUENCE_LSTM": (3, 3), "BIDIRECTIONAL_SEQUENCE_RNN": (3, 3), "BITCAST": (1, 1),
    "BITWISE_XOR": (1, 1), "BROADCAST_ARGS": (1, 1), "BROADCAST_TO": (3, 3), "BUCKETIZE": (1, 1), "CALL_ONCE": (1, 1),
    "CAST": (5, 8), "CEIL": (1, 1), "COMPLEX_ABS": (1, 1), "CONCATENATION": (4, 5), "CONV_2D": (7, 8),
    "CONV_3D": (1, 1), "CONV_3D_TRANSPOSE": (1, 1), "COS": (1, 1), "CUMSUM": (1, 1), "DENSIFY": (1, 1),
    "DEPTHWISE_CONV_2D": (7, 7), "DEPTH_TO_SPACE": (2, 2), "DEQUANTIZE": (5, 7), "DILATE": (0, 1), "DIV": (2, 2),
    "DYNAMIC_UPDATE_SLICE": (1, 5), "ELU": (1, 1), "EMBEDDING_LOOKUP": (3, 5), "EMBEDDING_LOOKUP_SPARSE": (1, 1),
    "EQUAL": (4, 5), "EXP": (2, 2), "EXPAND_DIMS": (1, 1), "FAKE_QUANT": (2, 2), "FILL": (4, 4), "FLOOR": (1, 1),
    "FLOOR_DIV": (3, 3), "FLOOR_MOD": (2, 2), "FULLY_CONNECTED": (10, 14), "GATHER": (6, 7), "GATHER_ND": (4, 5),
    "GELU": (2, 2), "GREATER": (2, 2), "GREATER_EQUAL": (3, 3), "HARD_SWISH": (1, 1), "HASHTABLE": (1, 1),
    "HASHTABLE_FIND": (1, 1), "HASHTABLE_IMPORT": (1, 1), "HASHTABLE_LOOKUP": (1, 1), "HASHTABLE_SIZE": (1, 1),
    "IF": (1, 1), "IMAG": (1, 1), "L2_NORMALIZATION": (2, 2), "L2_POOL_2D": (1, 1), "LEAKY_RELU": (2, 2),
    "LESS": (3, 3), "LESS_EQUAL": (2, 2), "LOCAL_RESPONSE_NORMALIZATION": (1, 1), "LOG": (1, 2),
    "LOGICAL_AND": (1, 1), "LOGICAL_NOT": (1, 1), "LOGICAL_OR": (1, 1), "LOGISTIC": (3, 3), "LOG_SOFTMAX": (2, 2),
    "LSH_PROJECTION": (1, 1), "LSTM": (4, 4), "MATRIX_DIAG": (1, 1), "MATRIX_SET_DIAG": (1, 1), "MAXIMUM": (4, 4),
    "MAX_POOL_2D": (3, 3), "MEAN": (3, 3), "MINIMUM": (4, 4), "MIRROR_PAD": (3, 3), "MUL": (7, 7),
    "MULTINOMIAL": (1, 1), "NEG": (1, 1), "NON_MAX_SUPPRESSION_V4": (1, 1), "NON_MAX_SUPPRESSION_V5": (1, 1),
    "NOT_EQUAL": (3, 4), "ONE_HOT": (1, 1), "PACK": (4, 4), "PAD": (4, 5), "PADV2": (4, 5), "POW": (1, 1),
    "PRELU": (1, 1), "QUANTIZE": (3, 4), "RANDOM_STANDARD_NORMAL": (1, 1), "RANDOM_UNIFORM": (1, 1), "RANGE": (2, 2),
    "RANK": (1, 1), "READ_VARIABLE": (1, 1), "REAL": (1, 1), "REDUCE_ALL": (1, 1), "REDUCE_ANY": (1, 1),
    "REDUCE_MAX": (3, 3), "REDUCE_MIN": (3, 3), "REDUCE_PROD": (2, 2), "REDUCE_WINDOW": (0, 1), "RELU": (3, 3),
    "RELU6": (3, 3), "RELU_0_TO_1": (1, 1), "RELU_N1_TO_1": (1, 1), "RESHAPE": (1, 1), "RESIZE_BILINEAR": (4, 4),
    "RESIZE_NEAREST_NEIGHBOR": (4, 4), "REVERSE_SEQUENCE": (1, 1), "REVERSE_V2": (3, 3), "RFFT2D": (1, 1),
    "RIGHT_SHIFT": (1, 1), "RNN": (3, 3), "ROUND": (1, 1), "RSQRT": (2, 3), "SCATTER_ND": (1, 1),
    "SEGMENT_SUM": (1, 1), "SELECT": (4, 4), "SELECT_V2": (2, 2), "SHAPE": (1, 1), "SIGN": (2, 2), "SIN": (1, 1),
    "SKIP_GRAM": (1, 1), "SLICE": (6, 7), "SOFTMAX": (3, 3), "SPACE_TO_BATCH_ND": (4, 4), "SPACE_TO_DEPTH": (2, 2),
    "SPARSE_TO_DENSE": (3, 3), "SPLIT": (4, 4), "SPLIT_V": (2, 2), "SQRT": (1, 2), "SQUARE": (1, 1),
    "SQUARED_DIFFERENCE": (2, 2), "SQUEEZE": (2, 2), "STABLEHLO_ADD": (0, 1), "STABLEHLO_AND": (0, 1),
    "STABLEHLO_CASE": (0, 1), "STABLEHLO_COMPOSITE": (0, 1), "STABLEHLO_GATHER": (0, 1), "STABLEHLO_MAXIMUM": (0, 1),
    "STABLEHLO_MINIMUM": (0, 1), "STABLEHLO_MULTIPLY": (0, 1), "STABLEHLO_PAD": (0, 1),
    "STABLEHLO_REDUCE_WINDOW": (0, 1), "STABLEHLO_RNG_BIT_GENERATOR": (0, 1), "STABLEHLO_SCATTER": (0, 1),
    "STABLEHLO_SHIFT_LEFT": (0, 1), "STRIDED_SLICE": (8, 8), "SUB": (5, 5), "SUM": (2, 2), "SVDF": (4, 4),
    "TANH": (3, 3), "TILE": (3, 3), "TOPK_V2": (3, 3), "TRANSPOSE": (6, 7), "TRANSPOSE_CONV": (4, 5),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (4, 4), "UNIDIRECTIONAL_SEQUENCE_RNN": (3, 3), "UNIQUE": (1, 1), "UNPACK": (4, 4),
    "UNSORTED_SEGMENT_MAX": (1, 1), "UNSORTED_SEGMENT_MIN": (1, 1), "UNSORTED_SEGMENT_PROD": (1, 1),
    "UNSORTED_SEGMENT_SUM": (1, 1), "VAR_HANDLE": (1, 1), "WHERE": (2, 2), "WHILE": (1, 1), "ZEROS_LIKE": (1, 1),
}
_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_RUNTIME_FORMAT = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?")


def _model(content: bytes) -> schema.Model:
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ValueError(f"Not a .tflite flatbuffer (no 'TFL3' identifier). Received: {len(content)} bytes "
                         f"starting {bytes(content[:8])!r}")
    return schema.Model.GetRootAs(content, 0)


def _op_uses(model: schema.Model) -> Counter:
    """How many operators, over all subgraphs, use each operator code (by index)."""
    uses = Counter()
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        uses.update(subgraph.Operators(k).OpcodeIndex() for k in range(subgraph.OperatorsLength()))
    return uses


def _operator_codes(content: bytes) -> list[tuple[schema.OperatorCode, int]]:
    model = _model(content)
    uses = _op_uses(model)
    return [(model.OperatorCodes(i), uses[i]) for i in range(model.OperatorCodesLength())]


def builtin_ops(content: bytes) -> list[dict]:
    """Every builtin op of a ``.tflite`` model, with its version and how many operators use it.

    The flatbuffer is read with the reader that TensorFlow generates from the
    TFLite schema (``tensorflow.lite.python.schema_py_generated``): TensorFlow
    is a dependency of this package, and the generated reader follows every
    schema rule (op codes above 127 live in ``builtin_code``, older files
    only fill ``deprecated_builtin_code``). The TensorFlow-free runner
    (``export/pcw_tflite_runner.py``) carries its own few-line reader of the
    operator codes; the tests check that both agree.

    Parameters
    ----------
    content : bytes
        The flatbuffer.

    Returns
    -------
    list of dict
        ``{"name": "CONV_2D", "version": 3, "count": 20}`` per operator code,
        sorted by name then version. Custom ops (e.g. Flex) are not included:
        see :func:`custom_ops`.

    Raises
    ------
    ValueError
        ``content`` is not a ``.tflite`` flatbuffer.
    """
    ops = []
    for code, count in _operator_codes(content):
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin != schema.BuiltinOperator.CUSTOM:
            ops.append({"name": _OP_NAMES.get(builtin, f"BUILTIN_{builtin}"), "version": code.Version(), "count": count})
    return sorted(ops, key=lambda op: (op["name"], op["version"]))


def custom_ops(content: bytes) -> list[str]:
    """The custom op names of a ``.tflite`` model (Flex ops are ``"Flex..."``), sorted; empty for builtins only."""
    return sorted(code.CustomCode().decode() for code, _ in _operator_codes(content)
                  if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == schema.BuiltinOperator.CUSTOM)


def _unknown_ops(ops: list[dict], column: int) -> list[dict]:
    return [op for op in ops if op["version"] > RUNTIME_OP_VERSIONS.get(op["name"], (0,) * len(RUNTIMES))[column]]


def _described(ops: list[dict]) -> str:
    return ", ".join(f"{op['name']} version {op['version']}" for op in ops)


def oldest_runtime(content: bytes) -> str:
    """The oldest runtime of :data:`RUNTIMES` that knows every builtin op version of a ``.tflite`` model.

    Runtimes older than the oldest measured one (``"2.14"``) are not
    measured: ``"2.14"`` means "2.14 or older".

    Parameters
    ----------
    content : bytes
        The flatbuffer.

    Returns
    -------
    str
        ``"X.Y"``, a key of :data:`RUNTIMES`.

    Raises
    ------
    ValueError
        Not a ``.tflite`` flatbuffer, or no measured runtime knows some op
        version (the message names them).
    """
    ops = builtin_ops(content)
    for column, runtime in enumerate(RUNTIMES):
        if not _unknown_ops(ops, column):
            return runtime
    newest = list(RUNTIMES)[-1]
    raise ValueError(f"No measured TFLite runtime knows {_described(_unknown_ops(ops, len(RUNTIMES) - 1))} "
                     f"(newest measured: {newest}, {RUNTIMES[newest]}).")


def _version(runtime: str) -> tuple[int, int]:
    match = _RUNTIME_FORMAT.fullmatch(runtime) if isinstance(runtime, str) else None
    if match is None:
        raise ValueError(f"`runtime` must be a TFLite runtime version 'X.Y' or 'X.Y.Z', e.g. '2.14'. "
                         f"Received: runtime={runtime!r}")
    return int(match[1]), int(match[2])


def check_runtime_compat(content: bytes, runtime: str) -> None:
    """Refuses a ``.tflite`` model that TFLite runtime ``runtime`` cannot load.

    ``runtime`` is judged by the newest runtime of :data:`RUNTIMES` that is
    not newer than it (a release between two measured ones may know more op
    versions than the older one, never fewer; a refusal then says which
    measured runtime it relied on).

    Parameters
    ----------
    content : bytes
        The flatbuffer.
    runtime : str
        ``"X.Y"`` or ``"X.Y.Z"`` in TensorFlow Lite numbering (tflite-runtime
        and TensorFlow releases); the patch number is ignored.

    Raises
    ------
    ValueError
        ``runtime`` is malformed or older than every measured runtime; or
        the model has op versions the runtime does not know (the one-line
        message names each op and version, and the oldest runtime that
        loads the model).
    """
    wanted = _version(runtime)
    measured = [(column, name) for column, name in enumerate(RUNTIMES) if _version(name) <= wanted]
    if not measured:
        oldest = next(iter(RUNTIMES))
        raise ValueError(f"Cannot vouch for TFLite runtime {runtime}: the oldest runtime whose op versions were "
                         f"measured is {oldest} ({RUNTIMES[oldest]}).")
    column, judged_by = measured[-1]
    unknown = _unknown_ops(builtin_ops(content), column)
    if unknown:
        basis = "" if _version(judged_by) == wanted else f" (judged by {judged_by}, the newest measured runtime up to it)"
        raise ValueError(f"TFLite runtime {runtime}{basis} cannot load this model: it does not know "
                         f"{_described(unknown)}; the oldest runtime that can is {oldest_runtime(content)}.")
