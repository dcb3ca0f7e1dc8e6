"""Load a ``.tflite`` file in tflite-runtime (else ai-edge-litert) and run it on one batch: a check for old runtimes.

Usage::

    python old_runtime_load.py MODEL.tflite INPUT.npy

Prints JSON: ``{"runtime": ..., "loaded": true, "output": [...]}``, or
``{"runtime": ..., "loaded": false, "error": "<the runtime's first line>"}``.
Needs only NumPy and the interpreter.
"""
import json
import sys
from importlib import metadata

import numpy as np

try:
    from tflite_runtime.interpreter import Interpreter

    RUNTIME = f"tflite-runtime {metadata.version('tflite-runtime')}"
except ImportError:
    from ai_edge_litert.interpreter import Interpreter

    RUNTIME = f"ai-edge-litert {metadata.version('ai-edge-litert')}"


def main() -> None:
    model_path, input_path = sys.argv[1:3]
    try:
        interpreter = Interpreter(model_path=model_path)
    except ValueError as error:
        print(json.dumps({"runtime": RUNTIME, "loaded": False, "error": str(error).strip().splitlines()[0]}))
        return
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.load(input_path))
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    print(json.dumps({"runtime": RUNTIME, "loaded": True, "output": output.astype(float).tolist()}))


if __name__ == "__main__":
    main()
