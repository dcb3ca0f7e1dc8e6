"""How to export and check a model: one validated options object for every export path."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from pcw_keras.export.graph import INPUT_DTYPES, PERMUTATIONS
from pcw_keras.export.tflite import QUANTIZE_MODES

FORMATS = ("savedmodel", "tflite")


@dataclass(frozen=True)
class ExportOptions:
    """What :func:`pcw_keras.export.export_model` writes and how it checks it; validated on construction.

    Parameters
    ----------
    format : {"savedmodel", "tflite"}
        A SavedModel source exports to ``"tflite"`` only.
    quantize : {"none", "float16", "dynamic", "int8", "int16x8"}
        TFLite only. ``"int8"`` (int8 weights and activations) and
        ``"int16x8"`` (int8 weights, int16 activations) calibrate on
        ``calibration_steps`` inputs drawn from the source's training split.
        Full int8 then corrects its biases (``bias_correction``).
    input_dtype : {"uint8", "float32"}
        ``"uint8"`` (default): the model takes pixels 0-255 and normalises them
        itself, ready for images from files or cameras. ``"float32"``: the
        model takes what Keras takes, normalised images. A SavedModel source
        keeps its own.
    int8_io : bool
        With ``quantize="int8"``: int8 input (if float) and int8 output
        instead of float32; the report records the quantisation parameters.
    bias_correction : bool
        With ``quantize="int8"`` (ignored otherwise): remove the systematic
        error that 8-bit rounding leaves in each layer's output, through its
        bias (:func:`pcw_keras.export.bias_correction.correct_biases`). Without
        it, a location-task GAPNet predicted one cell for every canvas
        (docs/results.md, section 4): rounding the constant activations of
        the empty cells shifts every logit the same way.
    calibration_steps : int
        Representative samples for int8 and int16x8 (one sample per step).
    permutation : {"random", "frozen"}
        PermuteNet only. ``"random"`` (default) runs it as the paper does: a
        new permutation at every call (TFLite: at every ``invoke()``; a
        SavedModel continues the model's seeded stream from its saved state).
        ``"frozen"``: one fixed permutation drawn from ``permutation_seed``,
        the same for every call and sample: deterministic outputs. The
        network was trained to be indifferent to the order, so its expected
        accuracy is the random one, but a given frozen permutation scores a
        little above or below it; the report gives both.
    permutation_seed : int
        Seed of the frozen permutation.
    check_samples, check_batch_size : int
        Inputs compared with the reference, and how many per call.
    min_agreement : float, optional
        Least top-1 agreement with the reference on the inputs where it is
        decided (:func:`pcw_keras.export.gate.judge`); default 0.99 for float
        exports and 0.97 for int8 weights.
    max_error : float, optional
        Largest relative error of the outputs
        (:func:`pcw_keras.export.gate.relative_error`); default per
        quantisation mode, :data:`pcw_keras.export.gate.MAX_RELATIVE_ERROR`.
    runtime_compat : str, optional
        TFLite only: an older runtime (``"2.14"``) that must load the model.
        The export is refused, naming the ops and versions that runtime lacks
        and the quantize modes that do load there, when the model needs a
        newer one (:mod:`pcw_keras.export.op_versions`, measured runtimes).
    latency_runs : int
        Timed single-image calls (after 5 warm-up calls); the report gives the median.
    threads : int
        LiteRT interpreter threads.
    seed : int
        Seed of the check and calibration inputs (placements, image draws).

    Raises
    ------
    ValueError
        A value outside what is allowed (the message names it and the choices).
    """

    format: str = "tflite"
    quantize: str = "none"
    input_dtype: str = "uint8"
    int8_io: bool = False
    bias_correction: bool = True
    calibration_steps: int = 200
    permutation: str = "random"
    permutation_seed: int = 0
    check_samples: int = 512
    check_batch_size: int = 32
    min_agreement: float | None = None
    max_error: float | None = None
    runtime_compat: str | None = None
    latency_runs: int = 50
    threads: int = 1
    seed: int = 0

    def __post_init__(self):
        choices = {"format": FORMATS, "quantize": QUANTIZE_MODES, "input_dtype": INPUT_DTYPES,
                   "permutation": PERMUTATIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}. Received: {name}={getattr(self, name)!r}")
        if self.format == "savedmodel" and self.quantize != "none":
            raise ValueError(f"A SavedModel is float32: quantization is for TFLite. Received: quantize={self.quantize!r}")
        if self.int8_io and self.quantize != "int8":
            raise ValueError(f"`int8_io` needs quantize='int8'. Received: quantize={self.quantize!r}")
        for name in ("calibration_steps", "check_samples", "check_batch_size", "latency_runs", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
        for name in ("permutation_seed", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be an integer >= 0. Received: {name}={value!r}")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"`min_agreement` must be in [0, 1]. Received: min_agreement={self.min_agreement!r}")
        if self.max_error is not None and not self.max_error > 0.0:
            raise ValueError(f"`max_error` must be a number > 0. Received: max_error={self.max_error!r}")
        if self.runtime_compat is not None and (
                self.format != "tflite" or not re.fullmatch(r"\d+\.\d+(\.\d+)?", str(self.runtime_compat))):
            raise ValueError("`runtime_compat` is a TFLite runtime version X.Y (format='tflite'). "
                             f"Received: runtime_compat={self.runtime_compat!r}, format={self.format!r}")

    @property
    def gate(self) -> dict:
        """The check's arguments for :func:`pcw_keras.export.gate.judge` (a SavedModel is judged as float32)."""
        quantize = self.quantize if self.format == "tflite" else "none"
        return {"quantize": quantize, "min_agreement": self.min_agreement, "max_error": self.max_error}

    def to_dict(self) -> dict:
        return asdict(self)
