"""Export trained models for deployment: SavedModel and TFLite (float32, float16, dynamic-range and full int8).

Every export is run on real test inputs and compared with the Keras model by
the gate of :mod:`pcw_keras.export.gate`; the figures go into
``export_report.json`` beside it, and an export that does not compute what
Keras computes is not written. PermuteNet keeps its random permutation in the
exported graph (TFLite builtins only), or freezes one. The exporter reads
saved models only: :func:`pcw_keras.runs.export_source` resolves a run
directory or a model file into an :class:`ExportSource`, and
:func:`pcw_keras.runs.export` does both steps. See :func:`export_model`.
"""
from pcw_keras.export.api import TFLITE_FILE, ExportCheckError, export_model
from pcw_keras.export.gate import DEFAULT_MIN_AGREEMENT, MAX_RELATIVE_ERROR
from pcw_keras.export.graph import INPUT_DTYPES, PERMUTATIONS, frozen_permutation, inference_model
from pcw_keras.export.options import FORMATS, ExportOptions
from pcw_keras.export.served import REPORT_FILE
from pcw_keras.export.source import LABELS_FILE, ExportSource, SavedModelSource, load_saved_model
from pcw_keras.export.tflite import QUANTIZE_MODES, LiteRTModel, UnsupportedOpsError, convert_saved_model

__all__ = [
    "DEFAULT_MIN_AGREEMENT",
    "ExportCheckError",
    "ExportOptions",
    "ExportSource",
    "FORMATS",
    "INPUT_DTYPES",
    "LABELS_FILE",
    "LiteRTModel",
    "MAX_RELATIVE_ERROR",
    "PERMUTATIONS",
    "QUANTIZE_MODES",
    "REPORT_FILE",
    "SavedModelSource",
    "TFLITE_FILE",
    "UnsupportedOpsError",
    "convert_saved_model",
    "export_model",
    "frozen_permutation",
    "inference_model",
    "load_saved_model",
]
