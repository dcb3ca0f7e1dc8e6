"""``export_model``: SavedModel or TFLite, checked against Keras (or its SavedModel) on real inputs, with a report."""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from importlib import metadata

import keras
import numpy as np
import tensorflow as tf

from pcw_keras.export.check import batches, check_inputs, keras_logits, median_latency_ms, parity
from pcw_keras.export.gate import summary
from pcw_keras.export.graph import INPUT_DTYPES, PERMUTATIONS, inference_model, random_permutation_layers
from pcw_keras.export.op_versions import builtin_ops, check_runtime_compat, oldest_runtime
from pcw_keras.export.savedmodel import SavedModelRunner, directory_size, is_saved_model, write_saved_model
from pcw_keras.export.served import REPORT_FILE
from pcw_keras.export.source import LABELS_FILE, SavedModelSource, load_saved_model, load_source
from pcw_keras.export.staging import check_destination, staged_directory
from pcw_keras.export.tflite import QUANTIZE_MODES, LiteRTModel, convert_saved_model

FORMATS = ("savedmodel", "tflite")
TFLITE_FILE = "model.tflite"


class ExportCheckError(RuntimeError):
    """The exported model does not compute what Keras (or the SavedModel converted) computes; nothing was written."""


def _check_arguments(format, quantize, input_dtype, permutation, int8_io, numbers, min_agreement, max_error,
                     runtime_compat) -> None:
    choices = {"format": (format, FORMATS), "quantize": (quantize, QUANTIZE_MODES),
               "input_dtype": (input_dtype, INPUT_DTYPES), "permutation": (permutation, PERMUTATIONS)}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"`{name}` must be one of {allowed}. Received: {name}={value!r}")
    if format == "savedmodel" and quantize != "none":
        raise ValueError(f"A SavedModel is float32: quantization is for TFLite. Received: quantize={quantize!r}")
    if int8_io and quantize != "int8":
        raise ValueError(f"`int8_io` needs quantize='int8'. Received: quantize={quantize!r}")
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    if min_agreement is not None and not 0.0 <= min_agreement <= 1.0:
        raise ValueError(f"`min_agreement` must be in [0, 1]. Received: min_agreement={min_agreement!r}")
    if max_error is not None and not max_error > 0.0:
        raise ValueError(f"`max_error` must be a number > 0. Received: max_error={max_error!r}")
    if runtime_compat is not None and (format != "tflite" or not re.fullmatch(r"\d+\.\d+(\.\d+)?", str(runtime_compat))):
        raise ValueError("`runtime_compat` is a TFLite runtime version X.Y (format='tflite'). "
                         f"Received: runtime_compat={runtime_compat!r}, format={format!r}")


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
    source,
    out: str | os.PathLike,
    *,
    format: str = "tflite",
    quantize: str = "none",
    input_dtype: str = "uint8",
    int8_io: bool = False,
    bias_correction: bool = True,
    calibration_steps: int = 200,
    permutation: str = "random",
    permutation_seed: int = 0,
    recipe=None,
    checkpoint: str = "best",
    calibration: str | None = None,
    preprocess: str | None = None,
    input_size: int | None = None,
    check_samples: int = 512,
    check_batch_size: int = 32,
    min_agreement: float | None = None,
    max_error: float | None = None,
    runtime_compat: str | None = None,
    latency_runs: int = 50,
    threads: int = 1,
    seed: int = 0,
    overwrite: bool = False,
    verbose: bool = True,
) -> dict:
    """Exports a trained model as a SavedModel or a ``.tflite`` file, checks it, and reports.

    The export folder ``out`` holds the model (the SavedModel itself, or
    ``model.tflite``), ``labels.txt`` (one name per output) and
    ``export_report.json``. The exported model is run on ``check_samples``
    inputs of its own kind (canvases or images of the recipe's test split,
    else calibration images; TFLite through the LiteRT interpreter) and
    compared with Keras on the same inputs by the gate of
    :mod:`pcw_keras.export.gate`: plain top-1 agreement, the relative error of
    the outputs in the space the model emits (logits or probabilities), the
    share of inputs on which Keras is decided and the agreement there, and,
    with a recipe's labels, both accuracies; file size and single-image
    latency go into the report. The check's ``outcome`` is ``"passed"``,
    ``"inconclusive"`` (close outputs, but Keras is undecided on most inputs:
    the export is written and the report says so) or ``"failed"``
    (``ExportCheckError``). Everything is written in a hidden folder that
    becomes ``out`` only when the check did not fail.

    A SavedModel directory (with a ``serve`` endpoint, as ``format="savedmodel"``
    writes) converts to TFLite as it is, with its own input dtype and
    permutation: the check compares the TFLite model with the SavedModel on
    the ``calibration`` images (required), resized to its input, labelled
    with the SavedModel's top-1. Its normalisation, and its ``recipe``,
    ``task`` and ``permutation`` entries, come from the ``export_report.json``
    in it, else from ``preprocess``; its ``labels.txt`` is kept.

    Parameters
    ----------
    source : path or keras.Model
        A run directory, a ``.keras`` file, a SavedModel directory or a
        model. A model of no run directory is checked on ``recipe``'s test
        split, or else on the ``calibration`` images; a SavedModel on the
        ``calibration`` images.
    out : path
        The export folder to create.
    format : {"savedmodel", "tflite"}
        A SavedModel ``source`` exports to ``"tflite"`` only.
    quantize : {"none", "float16", "dynamic", "int8", "int16x8"}
        TFLite only. ``"int8"`` (int8 weights and activations) and
        ``"int16x8"`` (int8 weights, int16 activations) calibrate on
        ``calibration_steps`` canvases drawn from the recipe's training split.
        Full int8 then corrects its biases (``bias_correction``).
    input_dtype : {"uint8", "float32"}
        ``"uint8"`` (default): the model takes pixels 0-255 and normalises them
        itself, ready for images from files or cameras. ``"float32"``: the
        model takes what Keras takes, images normalised with the CIFAR mean/std.
        A SavedModel ``source`` keeps its own.
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
        Representative samples for full int8 (one sample per step).
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
    recipe : str, path or Recipe, optional
        The recipe whose data checks and calibrates the export (default: the
        run directory's; not for a SavedModel).
    checkpoint : {"best", "last"}
        Which model of a run directory.
    calibration : str, optional
        Images (a folder, ``.tar.gz`` or ``.npz``; see
        :func:`pcw_keras.data.load_split`) that check and calibrate a model
        of no recipe or a SavedModel, resized to its input; the check then
        compares the export with the model alone (no labels, no accuracy).
    preprocess : {"cifar", "imagenet", "unit", "none"}, optional
        How a model of no recipe wants its pixels (default ``cifar``);
        a uint8 export normalises them so inside the model. For a SavedModel
        ``source`` the name its ``export_report.json`` records, if any.
    input_size : int, optional
        Input size of a model whose input shape leaves it open (not for a SavedModel).
    check_samples, check_batch_size : int
        Test canvases compared, and how many per call.
    min_agreement : float, optional
        Least top-1 agreement with Keras (or the SavedModel ``source``) on the
        inputs where it is decided (:func:`pcw_keras.export.gate.judge`);
        default 0.99 for float exports and 0.97 for int8 weights
        (``"dynamic"``, ``"int8"``, ``"int16x8"``).
    max_error : float, optional
        Largest relative error of the outputs
        (:func:`pcw_keras.export.gate.relative_error`); default per
        quantisation mode, :data:`pcw_keras.export.gate.MAX_RELATIVE_ERROR`.
    runtime_compat : str, optional
        TFLite only: an older runtime (``"2.14"``) that must load the model.
        The export is refused, naming the ops and versions that runtime
        lacks, when the model needs a newer one. Every TFLite report records
        ``builtin_ops`` (name, version, count) and ``oldest_runtime``
        (:mod:`pcw_keras.export.op_versions`, measured runtimes).
    latency_runs : int
        Timed single-image calls (after 5 warm-up calls); the report gives the median.
    threads : int
        LiteRT interpreter threads.
    seed : int
        Seed of the placements of the check and calibration canvases.
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
    FileNotFoundError
        ``source`` does not exist.
    FileExistsError
        ``out`` exists and ``overwrite`` is false.
    ValueError
        A bad argument (e.g. a SavedModel ``source`` with ``format="savedmodel"``
        or without ``calibration``), or (as ``UnsupportedOpsError``) ops that TFLite builtins cannot run.
    ExportCheckError
        The check failed (outputs not close, or top-1 agreement on the
        decided inputs below ``min_agreement``); nothing is left at ``out``.

    Example
    -------
    >>> report = export_model("runs/gapnet-loc", "exports/gapnet-int16x8",
    ...                       format="tflite", quantize="int16x8")  # doctest: +SKIP
    >>> report["check"]["top1_agreement"]  # doctest: +SKIP
    1.0
    """
    _check_arguments(format, quantize, input_dtype, permutation, int8_io,
                     {"calibration_steps": calibration_steps, "check_samples": check_samples,
                      "check_batch_size": check_batch_size, "latency_runs": latency_runs, "threads": threads},
                     min_agreement, max_error, runtime_compat)
    check_destination(out, overwrite)
    gate = {"quantize": quantize, "min_agreement": min_agreement, "max_error": max_error}
    if is_saved_model(source):
        if format != "tflite" or recipe is not None or input_size is not None:
            raise ValueError(
                f"{os.fspath(source)!r} is a SavedModel: it exports to TFLite (format='tflite'), checked on "
                "calibration images at its own input size. "
                f"Received: format={format!r}, recipe={recipe!r}, input_size={input_size!r}"
            )
        served = load_saved_model(source, calibration=calibration, preprocess=preprocess)
        images = served.inputs(served.pixels("test", check_samples, seed=seed)[0])
        head = {"format": format, "quantize": quantize, "source": served.path,
                "check_inputs": f"{served.calibration} (no labels: compared with the SavedModel)", **served.described}
        return _publish(out, overwrite, lambda stage: _export_saved_model_tflite(
            served, stage, images, gate, int8_io, bias_correction, runtime_compat, calibration_steps,
            check_batch_size, latency_runs, threads, seed, verbose,
        ), head, served.labels, samples=len(images), seed=seed, reference="the SavedModel", verbose=verbose)

    resolved = load_source(source, recipe=recipe, checkpoint=checkpoint, calibration=calibration,
                           preprocess=preprocess, input_size=input_size)
    model = resolved.model
    permuted = bool(random_permutation_layers(model))
    inputs = check_inputs(resolved, check_samples, input_dtype=input_dtype, seed=seed)

    def export(stage: str) -> dict:
        if format == "savedmodel":
            return _export_savedmodel(model, resolved.normalization, stage, input_dtype, permutation,
                                      permutation_seed, inputs, gate, check_batch_size, latency_runs, verbose)
        return _export_tflite(model, resolved, stage, gate, input_dtype, int8_io, bias_correction, runtime_compat,
                              calibration_steps, permutation, permutation_seed, inputs, check_batch_size,
                              latency_runs, threads, seed, verbose)

    head = {
        "format": format,
        "quantize": quantize,
        "source": resolved.origin,
        "recipe": resolved.name,
        "task": resolved.task,
        "check_inputs": {"canvas": "canvases of the recipe's test split", "images": "the recipe's test images",
                         "calibration": f"{resolved.calibration} (no labels: compared with Keras)"}[resolved.kind],
        "permutation": (
            {"mode": permutation, **({"seed": permutation_seed} if permutation == "frozen" else {})}
            if permuted else None
        ),
    }
    return _publish(out, overwrite, export, head, resolved.labels, samples=len(inputs.keras_inputs), seed=seed,
                    reference="Keras", verbose=verbose)


def _publish(out, overwrite: bool, export: Callable[[str], dict], head: dict, labels: list[str], *, samples: int,
             seed: int, reference: str, verbose: bool) -> dict:
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


def _export_savedmodel(model, normalization, stage, input_dtype, permutation, permutation_seed, inputs, gate,
                       batch_size, latency_runs, verbose) -> dict:
    exported = inference_model(model, "frozen", seed=permutation_seed) if permutation == "frozen" else model
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
    check = parity(outputs, reference, outputs, reference, inputs.labels, **{**gate, "quantize": "none"})
    if permutation == "frozen" and exported is not model and inputs.labels is not None:
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
        "latency": {**median_latency_ms(lambda: runner(single), runs=latency_runs), "runtime": "tensorflow"},
    }


def _representative_data(source, count: int, input_dtype: str, seed: int):
    pixels, _ = source.pixels("train", count, seed=seed + 10_000)
    normalization = source.normalization
    samples = pixels if input_dtype == "uint8" else normalization.apply(pixels)

    def generate():
        for index in range(len(samples)):
            yield [samples[index : index + 1]]

    return generate


def _convert(saved_model, source, quantize, input_dtype, int8_io, bias_correction, runtime_compat, calibration_steps,
             seed, verbose) -> bytes:
    """``saved_model`` as TFLite: calibrated on ``source``'s training pixels (int8, int16x8), checked for ``runtime_compat``."""
    representative = None
    if quantize in ("int8", "int16x8"):
        _say(verbose, f"drawing {calibration_steps} calibration inputs from the training split")
        representative = _representative_data(source, calibration_steps, input_dtype, seed)
    _say(verbose, f"converting to TFLite (quantize={quantize})")
    content = convert_saved_model(saved_model, quantize, representative_data=representative, int8_io=int8_io,
                                  bias_correction=bias_correction)
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


def _tflite_details(content, stage, check, input_dtype, normalization, quantize, int8_io, bias_correction,
                    calibration_steps, runtime_compat, single, latency_runs, threads) -> dict:
    """Writes ``model.tflite`` into ``stage`` and returns the report's details: file, input, ops, ``check``, latency on ``single``."""
    path = os.path.join(stage, TFLITE_FILE)
    with open(path, "wb") as handle:
        handle.write(content)
    timer = LiteRTModel(content, threads=threads)
    latency = median_latency_ms(lambda: timer(single), runs=latency_runs)
    return {
        "file": TFLITE_FILE,
        "file_size_bytes": os.path.getsize(path),
        "int8_io": int8_io,
        "bias_correction": bias_correction if quantize == "int8" else None,
        "calibration_samples": calibration_steps if quantize in ("int8", "int16x8") else None,
        "input": {**timer.input_description(), **_input_description(input_dtype, normalization)},
        "output": timer.output_description(),
        "builtin_ops": builtin_ops(content),
        "oldest_runtime": oldest_runtime(content),
        "runtime_compat": runtime_compat,
        "check": check,
        "latency": {**latency, "runtime": "ai_edge_litert", "threads": threads},
    }


def _export_tflite(model, source, stage, gate, input_dtype, int8_io, bias_correction, runtime_compat, calibration_steps,
                   permutation, permutation_seed, inputs, batch_size, latency_runs, threads, seed, verbose) -> dict:
    quantize = gate["quantize"]
    exported = inference_model(model, "frozen" if permutation == "frozen" else "stateful", seed=permutation_seed)
    with tempfile.TemporaryDirectory() as saved_model:
        write_saved_model(exported, saved_model, input_dtype=input_dtype, normalization=source.normalization)
        content = _convert(saved_model, source, quantize, input_dtype, int8_io, bias_correction, runtime_compat,
                           calibration_steps, seed, verbose)

    random_draws = permutation == "random" and exported is not model
    runner = LiteRTModel(content, threads=threads, read_permutations=random_draws)
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
        check = parity(outputs, reference, outputs, own, inputs.labels, **gate)
        check["compared_with"] = "Keras, same inputs, replaying the permutation the interpreter drew at each call"
    else:
        reference = keras_logits(exported, inputs.keras_inputs, batch_size=batch_size)
        check = parity(outputs, reference, outputs, reference, inputs.labels, **gate)
        check["compared_with"] = "Keras, same inputs" + (", same frozen permutation" if exported is not model else "")
        if exported is not model and inputs.labels is not None:
            own = keras_logits(model, inputs.keras_inputs, batch_size=batch_size)
            check["accuracy_keras_random_permutation"] = float(np.mean(own.argmax(-1) == inputs.labels))
    return _tflite_details(content, stage, check, input_dtype, source.normalization, quantize, int8_io, bias_correction,
                           calibration_steps, runtime_compat, inputs.images[:1], latency_runs, threads)


def _export_saved_model_tflite(source: SavedModelSource, stage, images, gate, int8_io, bias_correction, runtime_compat,
                               calibration_steps, batch_size, latency_runs, threads, seed, verbose) -> dict:
    """The SavedModel ``source`` as TFLite, checked against the SavedModel's own outputs on ``images``."""
    content = _convert(source.path, source, gate["quantize"], source.input_dtype, int8_io, bias_correction, runtime_compat,
                       calibration_steps, seed, verbose)
    runner = LiteRTModel(content, threads=threads)
    _say(verbose, f"checking it on {len(images)} calibration images against the SavedModel")
    outputs = np.concatenate([runner(batch) for batch in batches(images, batch_size)])
    reference = np.concatenate([source.runner(batch) for batch in batches(images, batch_size)])
    check = {**parity(outputs, reference, outputs, reference, None, **gate), "compared_with": "the SavedModel, same inputs"}
    return _tflite_details(content, stage, check, source.input_dtype, source.normalization, gate["quantize"], int8_io,
                           bias_correction, calibration_steps, runtime_compat, images[:1], latency_runs, threads)


def export_savedmodel(source, out: str | os.PathLike, **kwargs) -> dict:
    """:func:`export_model` with ``format="savedmodel"`` (float32; a ``serve`` signature)."""
    return export_model(source, out, format="savedmodel", **kwargs)


def export_tflite(source, out: str | os.PathLike, *, quantize: str = "none", **kwargs) -> dict:
    """:func:`export_model` with ``format="tflite"`` and the given quantization."""
    return export_model(source, out, format="tflite", quantize=quantize, **kwargs)
