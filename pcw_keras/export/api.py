"""``export_model``: SavedModel or TFLite, checked against Keras (or its SavedModel) on real inputs, with a report."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from importlib import metadata

import keras
import numpy as np
import tensorflow as tf

from pcw_keras.export.check import batches, check_inputs, keras_logits, median_latency_ms, parity
from pcw_keras.export.gate import summary
from pcw_keras.export.graph import inference_model, random_permutation_layers
from pcw_keras.export.op_versions import builtin_ops, check_runtime_compat, oldest_runtime
from pcw_keras.export.options import ExportOptions
from pcw_keras.export.savedmodel import SavedModelRunner, directory_size, write_saved_model
from pcw_keras.export.served import REPORT_FILE
from pcw_keras.export.source import LABELS_FILE, ExportSource, SavedModelSource
from pcw_keras.export.tflite import QUANTIZE_MODES, LiteRTModel, convert_saved_model
from pcw_keras.io import check_destination, staged_directory

TFLITE_FILE = "model.tflite"


class ExportCheckError(RuntimeError):
    """The exported model does not compute what Keras (or the SavedModel converted) computes; nothing was written."""


def _versions() -> dict:
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__}
    try:
        versions["ai_edge_litert"] = metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        pass
    return versions


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(f"pcw export: {text}", flush=True)


def export_model(
    source: ExportSource | SavedModelSource,
    out: str | os.PathLike,
    options: ExportOptions | None = None,
    *,
    overwrite: bool = False,
    verbose: bool = True,
    **option_values,
) -> dict:
    """Exports a model as a SavedModel or a ``.tflite`` file, checks it against its reference, and reports.

    The export folder ``out`` holds the model (the SavedModel itself, or
    ``model.tflite``), ``labels.txt`` (one name per output) and
    ``export_report.json``. The exported model is run on
    ``options.check_samples`` inputs of its own kind (canvases or images of
    the recipe's test split, else calibration images; TFLite through the
    LiteRT interpreter) and compared with Keras on the same inputs by the
    gate of :mod:`pcw_keras.export.gate`: plain top-1 agreement, the relative
    error of the outputs in the space the model emits (logits or
    probabilities), the share of inputs on which Keras is decided and the
    agreement there, and, with a recipe's labels, both accuracies; file size
    and single-image latency go into the report. The check's ``outcome`` is
    ``"passed"``, ``"inconclusive"`` (close outputs, but Keras is undecided on
    most inputs: the export is written and the report says so) or
    ``"failed"`` (``ExportCheckError``). Everything is written in a hidden
    folder that becomes ``out`` only when the check did not fail.

    A SavedModel source (a ``serve`` endpoint, as ``format="savedmodel"``
    writes) converts to TFLite as it is, with its own input dtype and
    permutation: the check compares the TFLite model with the SavedModel on
    its calibration images.

    Parameters
    ----------
    source : ExportSource or SavedModelSource
        What to export, resolved: :func:`pcw_keras.runs.export_source` makes
        one from a run directory, a ``.keras`` file, a SavedModel directory or
        an in-memory model.
    out : path
        The export folder to create.
    options : ExportOptions, optional
        How to export and check (:class:`pcw_keras.export.ExportOptions`);
        or give its fields as keyword arguments (``quantize="int8"``).
    overwrite : bool
        Replace an existing ``out``.
    verbose : bool
        Print progress.

    Returns
    -------
    dict
        The report (also written to ``out/export_report.json``).

    Raises
    ------
    FileExistsError
        ``out`` exists and ``overwrite`` is false.
    ValueError
        A bad option, a SavedModel source with ``format="savedmodel"``, or
        (as ``UnsupportedOpsError``) ops that TFLite builtins cannot run.
    ExportCheckError
        The check failed (outputs not close, or top-1 agreement on the
        decided inputs below ``min_agreement``); nothing is left at ``out``.

    Example
    -------
    >>> from pcw_keras.runs import export_source
    >>> report = export_model(export_source("runs/gapnet-loc"), "exports/gapnet-int8",
    ...                       quantize="int8")  # doctest: +SKIP
    >>> report["check"]["top1_agreement"], report["check"]["outcome"]  # doctest: +SKIP
    (1.0, 'passed')
    """
    if options is not None and option_values:
        raise ValueError(f"Pass options= or option keywords, not both. Received: {sorted(option_values)}")
    options = options or ExportOptions(**option_values)
    check_destination(out, overwrite)
    if isinstance(source, SavedModelSource):
        if options.format != "tflite":
            raise ValueError(f"{source.path!r} is a SavedModel: it exports to TFLite (format='tflite'). "
                             f"Received: format={options.format!r}")
        images = source.inputs(source.pixels("test", options.check_samples, seed=options.seed)[0])
        head = {"format": options.format, "quantize": options.quantize, "source": source.path,
                "check_inputs": f"{source.calibration} (no labels: compared with the SavedModel)", **source.described}
        return _publish(out, overwrite, lambda stage: _export_saved_model_tflite(source, stage, options, images, verbose),
                        head, source.labels, samples=len(images), seed=options.seed, reference="the SavedModel")
    if not isinstance(source, ExportSource):
        raise ValueError("`source` must be resolved by pcw_keras.runs.export_source (an ExportSource or a "
                         f"SavedModelSource). Received: {type(source).__name__}")
    inputs = check_inputs(source, options.check_samples, input_dtype=options.input_dtype, seed=options.seed)
    write = _export_savedmodel if options.format == "savedmodel" else _export_tflite
    permuted = bool(random_permutation_layers(source.model))
    head = {
        "format": options.format,
        "quantize": options.quantize,
        "source": source.origin,
        "recipe": source.name,
        "task": source.task,
        "check_inputs": {"canvas": "canvases of the recipe's test split", "images": "the recipe's test images",
                         "calibration": f"{source.calibration} (no labels: compared with Keras)"}[source.kind],
        "permutation": (
            {"mode": options.permutation, **({"seed": options.permutation_seed} if options.permutation == "frozen" else {})}
            if permuted else None
        ),
    }
    return _publish(out, overwrite, lambda stage: write(source, stage, options, inputs, verbose), head, source.labels,
                    samples=len(inputs.keras_inputs), seed=options.seed, reference="Keras")


def _publish(out, overwrite: bool, export: Callable[[str], dict], head: dict, labels: list[str], *, samples: int,
             seed: int, reference: str) -> dict:
    """Runs ``export(stage)`` in a staged folder, gates its check, writes labels and report there, and publishes it.

    ``export`` writes the model into the folder and returns the report's
    details, ``"check"`` included (:func:`parity` figures against
    ``reference`` on ``samples`` inputs); the report is ``head``, the
    details, the labels file, the check and the versions. A failed check
    raises :class:`ExportCheckError` and publishes nothing; a passed or
    inconclusive one is published, its outcome in the report.
    """
    with staged_directory(out, overwrite) as stage:
        details = export(stage)
        check = details.pop("check")
        check.update({"samples": int(samples), "split": "test", "seed": seed})
        report = {**head, **details, "labels_file": LABELS_FILE, "check": check, "versions": _versions()}
        if check["outcome"] == "failed":
            raise ExportCheckError(
                f"The export does not compute what {reference} computes: {summary(check, reference)}. "
                f"Nothing was written to {os.fspath(out)!r}; to keep it anyway, raise the tolerance "
                "(max_error, CLI --max-error) or lower the gate (min_agreement, CLI --min-agreement)."
            )
        with open(os.path.join(stage, LABELS_FILE), "w", encoding="utf-8") as handle:
            handle.write("".join(f"{label}\n" for label in labels))
        with open(os.path.join(stage, REPORT_FILE), "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return report


def _input_description(input_dtype: str, normalization) -> dict:
    if input_dtype == "uint8":
        return {"pixels": "uint8 0-255, normalised inside the model", **normalization.to_dict()}
    return {"pixels": "float32 (x / 255 - mean) / std, as the Keras model takes them", **normalization.to_dict()}


def _seed_states(model: keras.Model) -> list:
    return [layer.seed_generator.state for layer in random_permutation_layers(model)]


def _export_savedmodel(source: ExportSource, stage: str, options: ExportOptions, inputs, verbose: bool) -> dict:
    """``source``'s model as a SavedModel in ``stage``, checked against Keras on ``inputs``, same permutation draws."""
    model, normalization, input_dtype = source.model, source.normalization, options.input_dtype
    batch_size = options.check_batch_size
    frozen = options.permutation == "frozen"
    exported = inference_model(model, "frozen", seed=options.permutation_seed) if frozen else model
    states = _seed_states(exported)
    saved = [np.array(state.numpy()) for state in states]
    _say(verbose, "writing the SavedModel")
    write_saved_model(exported, stage, input_dtype=input_dtype, normalization=normalization)
    runner = SavedModelRunner(stage)
    _say(verbose, f"checking it on {len(inputs.keras_inputs)} test inputs")
    outputs = np.concatenate([runner(batch) for batch in batches(inputs.images, batch_size)])
    # A random permutation's stream restarts from the saved seed state: Keras replays the same draws.
    for state, value in zip(states, saved):
        state.assign(value)
    reference = keras_logits(exported, inputs.keras_inputs, batch_size=batch_size)
    for state, value in zip(states, saved):
        state.assign(value)
    check = parity(outputs, reference, outputs, reference, inputs.labels, **options.gate)
    if frozen and exported is not model and inputs.labels is not None:
        own = keras_logits(model, inputs.keras_inputs, batch_size=batch_size)
        check["accuracy_keras_random_permutation"] = float(np.mean(own.argmax(-1) == inputs.labels))
    single = inputs.images[:1]
    return {
        "file": ".",
        "file_size_bytes": directory_size(stage),
        "input": {"dtype": input_dtype, "shape": [None, *map(int, inputs.images.shape[1:])],
                  **_input_description(input_dtype, normalization)},
        "output": {"name": "logits", "dtype": "float32"},
        "signature": "serve (also serving_default)",
        "check": {**check, "compared_with": "Keras, same inputs and same permutation draws"},
        "latency": {**median_latency_ms(lambda: runner(single), runs=options.latency_runs), "runtime": "tensorflow"},
    }


def _representative_data(source, count: int, input_dtype: str, seed: int):
    pixels, _ = source.pixels("train", count, seed=seed + 10_000)
    normalization = source.normalization
    samples = pixels if input_dtype == "uint8" else normalization.apply(pixels)

    def generate():
        for index in range(len(samples)):
            yield [samples[index : index + 1]]

    return generate


def _convert(saved_model: str, source, options: ExportOptions, input_dtype: str, verbose: bool) -> bytes:
    """``saved_model`` as TFLite: calibrated on ``source``'s training pixels (int8, int16x8), checked for ``runtime_compat``."""
    quantize, runtime_compat, seed = options.quantize, options.runtime_compat, options.seed
    representative = None
    if quantize in ("int8", "int16x8"):
        _say(verbose, f"drawing {options.calibration_steps} calibration inputs from the training split")
        representative = _representative_data(source, options.calibration_steps, input_dtype, seed)
    _say(verbose, f"converting to TFLite (quantize={quantize})")
    content = convert_saved_model(saved_model, quantize, representative_data=representative, int8_io=options.int8_io,
                                  bias_correction=options.bias_correction)
    if runtime_compat is not None:
        try:
            check_runtime_compat(content, runtime_compat)
        except ValueError as error:
            _say(verbose, f"trying the other quantize modes on TFLite {runtime_compat}")
            loading = _modes_that_load(saved_model, source, quantize, input_dtype, runtime_compat, seed)
            offer = ", ".join(loading) if loading else "none of them (no quantize mode loads there)"
            raise ValueError(f"{error} The quantize modes that load on TFLite {runtime_compat}: {offer}.") from None
    return content


PROBE_CALIBRATION_STEPS = 4
"""Calibration samples when probing which quantize modes an older runtime loads: op versions do not depend on them."""


def _modes_that_load(saved_model, source, refused: str, input_dtype: str, runtime: str, seed: int) -> list[str]:
    """The quantize modes other than ``refused`` whose conversion of ``saved_model`` TFLite ``runtime`` can load."""
    loading = []
    for mode in QUANTIZE_MODES:
        if mode == refused:
            continue
        representative = (_representative_data(source, PROBE_CALIBRATION_STEPS, input_dtype, seed)
                          if mode in ("int8", "int16x8") else None)
        try:
            check_runtime_compat(convert_saved_model(saved_model, mode, representative_data=representative,
                                                     bias_correction=False), runtime)
        except Exception:  # noqa: BLE001 -- refused by the runtime, or this mode does not convert the model
            continue
        loading.append(mode)
    return loading


def _tflite_details(content: bytes, stage: str, check: dict, options: ExportOptions, input_dtype: str,
                    normalization, single: np.ndarray) -> dict:
    """Writes ``model.tflite`` into ``stage`` and returns the report's details: file, input, ops, ``check``, latency on ``single``."""
    path = os.path.join(stage, TFLITE_FILE)
    with open(path, "wb") as handle:
        handle.write(content)
    timer = LiteRTModel(content, threads=options.threads)
    latency = median_latency_ms(lambda: timer(single), runs=options.latency_runs)
    quantize = options.quantize
    return {
        "file": TFLITE_FILE,
        "file_size_bytes": os.path.getsize(path),
        "int8_io": options.int8_io,
        "bias_correction": options.bias_correction if quantize == "int8" else None,
        "calibration_samples": options.calibration_steps if quantize in ("int8", "int16x8") else None,
        "input": {**timer.input_description(), **_input_description(input_dtype, normalization)},
        "output": timer.output_description(),
        "builtin_ops": builtin_ops(content),
        "oldest_runtime": oldest_runtime(content),
        "runtime_compat": options.runtime_compat,
        "check": check,
        "latency": {**latency, "runtime": "ai_edge_litert", "threads": options.threads},
    }


def _export_tflite(source: ExportSource, stage: str, options: ExportOptions, inputs, verbose: bool) -> dict:
    """``source``'s model as TFLite in ``stage``, checked against Keras on ``inputs`` through the LiteRT interpreter."""
    model, input_dtype, batch_size = source.model, options.input_dtype, options.check_batch_size
    frozen = options.permutation == "frozen"
    exported = inference_model(model, "frozen" if frozen else "stateful", seed=options.permutation_seed)
    with tempfile.TemporaryDirectory() as saved_model:
        write_saved_model(exported, saved_model, input_dtype=input_dtype, normalization=source.normalization)
        content = _convert(saved_model, source, options, input_dtype, verbose)

    random_draws = not frozen and exported is not model
    runner = LiteRTModel(content, threads=options.threads, read_permutations=random_draws)
    if random_draws and runner.permutation_ops != 1:
        raise ValueError(
            f"Checking a random permutation needs exactly one in the graph. Received: {runner.permutation_ops} "
            "TOPK_V2 ops; export with permutation='frozen'."
        )
    _say(verbose, f"checking it on {len(inputs.keras_inputs)} test inputs through the LiteRT interpreter")
    outputs, drawn = [], []
    for batch in batches(inputs.images, batch_size):
        outputs.append(runner(batch))
        drawn.append(runner.last_permutation)
    outputs = np.concatenate(outputs)

    if random_draws:
        # Replay each call's permutation, read from the interpreter, in Keras.
        replay = tf.Variable(drawn[0], shape=tf.TensorShape(None), dtype=tf.int32, trainable=False)
        reference_model = inference_model(
            model, lambda channels, mode, batch_size: tf.reshape(replay, [channels] if mode == "batch" else [-1, channels])
        )
        reference = keras_logits(reference_model, inputs.keras_inputs, batch_size=batch_size,
                                 after_batch=lambda index: replay.assign(drawn[index]))
        own = keras_logits(model, inputs.keras_inputs, batch_size=batch_size)
        check = parity(outputs, reference, outputs, own, inputs.labels, **options.gate)
        check["compared_with"] = "Keras, same inputs, replaying the permutation the interpreter drew at each call"
    else:
        reference = keras_logits(exported, inputs.keras_inputs, batch_size=batch_size)
        check = parity(outputs, reference, outputs, reference, inputs.labels, **options.gate)
        check["compared_with"] = "Keras, same inputs" + (", same frozen permutation" if exported is not model else "")
        if exported is not model and inputs.labels is not None:
            own = keras_logits(model, inputs.keras_inputs, batch_size=batch_size)
            check["accuracy_keras_random_permutation"] = float(np.mean(own.argmax(-1) == inputs.labels))
    return _tflite_details(content, stage, check, options, input_dtype, source.normalization, inputs.images[:1])


def _export_saved_model_tflite(source: SavedModelSource, stage: str, options: ExportOptions, images: np.ndarray,
                               verbose: bool) -> dict:
    """The SavedModel ``source`` as TFLite, checked against the SavedModel's own outputs on ``images``."""
    content = _convert(source.path, source, options, source.input_dtype, verbose)
    runner = LiteRTModel(content, threads=options.threads)
    _say(verbose, f"checking it on {len(images)} calibration images against the SavedModel")
    batch_size = options.check_batch_size
    outputs = np.concatenate([runner(batch) for batch in batches(images, batch_size)])
    reference = np.concatenate([source.runner(batch) for batch in batches(images, batch_size)])
    check = {**parity(outputs, reference, outputs, reference, None, **options.gate),
             "compared_with": "the SavedModel, same inputs"}
    return _tflite_details(content, stage, check, options, source.input_dtype, source.normalization, images[:1])
