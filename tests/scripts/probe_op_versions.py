"""Which builtin op versions a TFLite interpreter registers, measured by loading one-op models.

Usage::

    python probe_op_versions.py PROBE_DIR {tflite_runtime,ai_edge_litert,tensorflow}

``PROBE_DIR`` holds ``NAME.VERSION.tflite`` files, each a model whose only
operator code is builtin op ``NAME`` at ``VERSION`` (tests/test_op_versions.py
writes them). An interpreter resolves every operator code when it loads a
model, so a file loads exactly when the runtime registers that op version.
Prints JSON ``{"runtime": "tflite-runtime 2.14.0", "highest": {"ADD": 5, ...}}``.
Needs only NumPy and the named interpreter (no TensorFlow unless it is the one probed).
"""
import json
import os
import sys
from importlib import metadata


def interpreter_of(package: str) -> tuple[type, str]:
    """``(Interpreter class, "package version")``."""
    if package == "tflite_runtime":
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, f"tflite-runtime {metadata.version('tflite-runtime')}"
    if package == "ai_edge_litert":
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, f"ai-edge-litert {metadata.version('ai-edge-litert')}"
    if package == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        return tf.lite.Interpreter, f"tensorflow {tf.__version__}"
    raise SystemExit(f"The interpreter must be tflite_runtime, ai_edge_litert or tensorflow. Received: {package!r}")


def main() -> None:
    folder, package = sys.argv[1:3]
    interpreter, runtime = interpreter_of(package)
    highest = {}
    for name in sorted(os.listdir(folder)):
        op, version, _ = name.rsplit(".", 2)
        try:
            interpreter(model_path=os.path.join(folder, name))
        except (ValueError, RuntimeError):  # "Didn't find op for builtin opcode ..."
            continue
        highest[op] = max(highest.get(op, 0), int(version))
    print(json.dumps({"runtime": runtime, "highest": highest}))


if __name__ == "__main__":
    main()
