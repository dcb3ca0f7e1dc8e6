"""op_versions: a model's builtin op versions against runtimes measured for real, one an old tflite-runtime.

The old-runtime tests run a second Python, given by ``PCW_OLD_TFLITE_PYTHON``,
that has ``tflite-runtime`` 2.14 and NumPy only (see .ci/run).
"""
import json
import os
import subprocess
import sys
from collections import Counter

import flatbuffers
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from pcw_keras.export import LiteRTModel, convert_saved_model
from pcw_keras.export.op_versions import (
    RUNTIME_OP_VERSIONS,
    RUNTIMES,
    builtin_ops,
    check_runtime_compat,
    custom_ops,
    oldest_runtime,
)
from pcw_keras.export.savedmodel import write_saved_model
from pcw_keras.models import create_model

SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")
RUNNER = os.path.join(os.path.dirname(__file__), os.pardir, "export", "pcw_tflite_runner.py")
OLD_PYTHON = os.environ.get("PCW_OLD_TFLITE_PYTHON")
needs_old_runtime = pytest.mark.skipif(
    not OLD_PYTHON, reason="PCW_OLD_TFLITE_PYTHON is unset: no Python with an old tflite-runtime (2.14) to test against")
OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
QUANTIZE_BOUNDARY = {"CAST", "QUANTIZE", "DEQUANTIZE"}  # uint8 pixels in, float logits out


def pixels(count, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def representative(size):
    return lambda: ([batch[None]] for batch in pixels(16, size))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A small project GAPNet as float32 and full int8, and a model with a square root (int8 SQRT is version 2)."""
    root = tmp_path_factory.mktemp("op_versions")
    gapnet = create_model("gapnet_resnet18", num_classes=4, input_shape=(32, 32, 3), width=0.0625)
    write_saved_model(gapnet, str(root / "gapnet"))
    inputs = keras.Input((16, 16, 3))
    features = keras.ops.sqrt(keras.layers.Conv2D(4, 3, activation="relu")(inputs) + 1.0)
    rooted = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features)))
    write_saved_model(rooted, str(root / "sqrt"))

    converters = []
    from_saved_model = tf.lite.TFLiteConverter.from_saved_model

    def recording(directory):
        converters.append(from_saved_model(directory))
        return converters[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf.lite.TFLiteConverter, "from_saved_model", recording)
        gapnet_int8 = convert_saved_model(str(root / "gapnet"), "int8", representative_data=representative(32))
    return {
        "float32": convert_saved_model(str(root / "gapnet"), "none"),
        "int8": gapnet_int8,
        "int8_converter": converters[0],
        "sqrt_float32": convert_saved_model(str(root / "sqrt"), "none"),
        "sqrt_int8": convert_saved_model(str(root / "sqrt"), "int8", representative_data=representative(16),
                                         bias_correction=False),
        "root": root,
    }


def one_op_model(code: int, version: int) -> bytes:
    """A model with no operators whose only operator code is builtin ``code`` at ``version``."""
    operator_code = schema.OperatorCodeT()
    operator_code.builtinCode, operator_code.deprecatedBuiltinCode, operator_code.version = code, min(code, 127), version
    tensor = schema.TensorT()
    tensor.shape, tensor.type, tensor.buffer, tensor.name = [1], schema.TensorType.FLOAT32, 0, b"x"
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.inputs, subgraph.outputs, subgraph.operators = [tensor], [0], [0], []
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [operator_code], [subgraph], [schema.BufferT()]
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    """One-op models for every builtin op of the schema at versions 1 to a few above the table's highest."""
    folder = tmp_path_factory.mktemp("probe")
    top = max(max(versions) for versions in RUNTIME_OP_VERSIONS.values()) + 3
    for code, name in OP_NAMES.items():
        if name not in ("CUSTOM", "DELEGATE", "PLACEHOLDER_FOR_GREATER_OP_CODES"):
            for version in range(1, top + 1):
                (folder / f"{name}.{version}.tflite").write_bytes(one_op_model(code, version))
    return folder


def probe(python, folder, package):
    result = subprocess.run([python, os.path.join(SCRIPTS, "probe_op_versions.py"), str(folder), package],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def column(runtime):
    index = list(RUNTIMES).index(runtime)
    return {name: versions[index] for name, versions in RUNTIME_OP_VERSIONS.items() if versions[index]}


def release(runtime_name):
    """``"2.14"`` from ``"tflite-runtime 2.14.0"``."""
    return ".".join(runtime_name.split()[-1].split(".")[:2])


def tensor_types(content):
    """``(op name, {tensor types})`` per operator of the main subgraph."""
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    graph = model.subgraphs[0]
    found = []
    for operator in graph.operators:
        code = model.operatorCodes[operator.opcodeIndex]
        tensors = [index for index in list(operator.inputs) + list(operator.outputs) if index >= 0]
        found.append((OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)],
                      {graph.tensors[index].type for index in tensors}))
    return found


@pytest.mark.parametrize("name", ["float32", "int8"])
def test_builtin_ops_count_what_the_interpreter_runs(models, name):
    ops = builtin_ops(models[name])
    interpreter = LiteRTModel(models[name]).interpreter
    run = [op["op_name"] for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]  # XNNPACK's nodes
    assert Counter(run) == Counter(
        {op["name"]: op["count"] for op in ops})
    assert all(op["version"] >= 1 for op in ops) and ops == sorted(ops, key=lambda op: (op["name"], op["version"]))


def test_builtin_ops_read_the_version_the_converter_chose(models):
    assert {"name": "SQRT", "version": 1, "count": 1} in builtin_ops(models["sqrt_float32"])
    assert {"name": "SQRT", "version": 2, "count": 1} in builtin_ops(models["sqrt_int8"])
    with pytest.raises(ValueError, match=r"Not a \.tflite flatbuffer \(no 'TFL3' identifier\)\. Received: 12 bytes"):
        builtin_ops(b"not a model!")


def test_full_int8_export_is_builtin_int8_ops_only(models):
    converter = models["int8_converter"]
    assert set(converter.target_spec.supported_ops) == {tf.lite.OpsSet.TFLITE_BUILTINS_INT8}
    assert converter.optimizations == [tf.lite.Optimize.DEFAULT]
    assert custom_ops(models["int8"]) == []
    int8_only = {schema.TensorType.INT8, schema.TensorType.INT32}  # int32: biases
    quantized = [(name, types) for name, types in tensor_types(models["int8"]) if name not in QUANTIZE_BOUNDARY]
    assert {name for name, _ in quantized} >= {"CONV_2D", "ADD", "MEAN"}
    assert all(types <= int8_only for _, types in quantized), quantized
    # The same test on the float32 conversion finds float tensors: it can fail.
    floats = [types for name, types in tensor_types(models["float32"]) if name == "CONV_2D"]
    assert all(schema.TensorType.FLOAT32 in types for types in floats)


def test_oldest_runtime_of_project_models_and_of_newer_op_versions(models):
    assert list(RUNTIMES) == sorted(RUNTIMES, key=lambda runtime: tuple(map(int, runtime.split("."))))
    assert oldest_runtime(models["float32"]) == "2.14"
    assert oldest_runtime(models["int8"]) == "2.14"
    assert oldest_runtime(models["sqrt_float32"]) == "2.14"
    assert oldest_runtime(models["sqrt_int8"]) == "2.21"
    with pytest.raises(ValueError, match=r"^No measured TFLite runtime knows ADD version 99 \(newest measured: 2\.21"):
        oldest_runtime(one_op_model(schema.BuiltinOperator.ADD, 99))


def test_check_runtime_compat_names_the_unknown_ops(models):
    for runtime in ("2.14", "2.14.0", "2.17", "2.21", "3.0"):
        check_runtime_compat(models["float32"], runtime)
    for runtime in ("2.21", "2.21.1", "2.25"):
        check_runtime_compat(models["sqrt_int8"], runtime)
    with pytest.raises(ValueError) as refused:
        check_runtime_compat(models["sqrt_int8"], "2.14")
    assert str(refused.value) == ("TFLite runtime 2.14 cannot load this model: it does not know SQRT version 2; "
                                  "the oldest runtime that can is 2.21.")
    with pytest.raises(ValueError, match=r"^TFLite runtime 2\.17 \(judged by 2\.14, the newest measured runtime up to "
                                         r"it\) cannot load this model: it does not know SQRT version 2;"):
        check_runtime_compat(models["sqrt_int8"], "2.17")
    with pytest.raises(ValueError, match=r"^Cannot vouch for TFLite runtime 2\.10: the oldest runtime whose op "
                                         r"versions were measured is 2\.14 \(tflite-runtime 2\.14\.0\)\.$"):
        check_runtime_compat(models["float32"], "2.10")
    for bad in ("2", "v2.14", "2.x", "2.14.0.1", 2.14):
        with pytest.raises(ValueError, match=r"^`runtime` must be a TFLite runtime version 'X\.Y' or 'X\.Y\.Z'"):
            check_runtime_compat(models["float32"], bad)


def test_the_table_is_what_the_installed_runtimes_register(probe_dir):
    litert = probe(sys.executable, probe_dir, "ai_edge_litert")["highest"]
    newest = list(RUNTIMES)[-1]
    behind = {name: (version, litert.get(name, 0)) for name, version in column(newest).items()
              if litert.get(name, 0) < version}
    assert not behind, f"{litert} knows fewer op versions than runtime {newest}: {behind}"
    measured = probe(sys.executable, probe_dir, "tensorflow")
    if release(measured["runtime"]) not in RUNTIMES:
        pytest.skip(f"{measured['runtime']} is not a runtime of the table: {list(RUNTIMES)}")
    assert measured["highest"] == column(release(measured["runtime"]))


@needs_old_runtime
def test_the_table_is_what_the_old_runtime_registers(probe_dir):
    measured = probe(OLD_PYTHON, probe_dir, "tflite_runtime")
    assert release(measured["runtime"]) in RUNTIMES, f"{measured['runtime']} is not in the table {list(RUNTIMES)}"
    assert RUNTIMES[release(measured["runtime"])] == measured["runtime"]
    assert measured["highest"] == column(release(measured["runtime"]))


def old_runtime_run(tmp_path, content, inputs):
    (tmp_path / "model.tflite").write_bytes(content)
    np.save(tmp_path / "inputs.npy", inputs)
    result = subprocess.run([OLD_PYTHON, os.path.join(SCRIPTS, "old_runtime_load.py"), str(tmp_path / "model.tflite"),
                             str(tmp_path / "inputs.npy")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_old_runtime
def test_old_runtime_runs_what_oldest_runtime_allows(models, tmp_path):
    content = models["float32"]
    ran = old_runtime_run(tmp_path, content, pixels(1, 32, seed=5))
    runtime = release(ran["runtime"])
    assert oldest_runtime(content) == runtime
    check_runtime_compat(content, runtime)
    assert ran["loaded"], ran
    expected = LiteRTModel(content)(pixels(1, 32, seed=5))
    np.testing.assert_allclose(np.array(ran["output"]), expected, atol=1e-4)


@needs_old_runtime
def test_old_runtime_fails_on_newer_op_versions_as_check_runtime_compat_says(models, tmp_path):
    content = models["sqrt_int8"]
    ran = old_runtime_run(tmp_path, content, pixels(1, 16))
    runtime = release(ran["runtime"])
    assert not ran["loaded"]
    assert ran["error"].startswith("Didn't find op for builtin opcode 'SQRT' version '2'.")
    assert oldest_runtime(content) != runtime
    with pytest.raises(ValueError, match=f"^TFLite runtime {runtime} cannot load this model: it does not know "
                                         "SQRT version 2;"):
        check_runtime_compat(content, runtime)
    # The edge runner says the same in one line instead of the runtime's message.
    result = subprocess.run([OLD_PYTHON, RUNNER, str(tmp_path / "model.tflite"), "--benchmark"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"{ran['runtime']} does not know op SQRT version 2, which {tmp_path / 'model.tflite'} uses: "
        "run it with a newer runtime, or export it for this one.")
