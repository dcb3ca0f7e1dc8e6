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
from pcw_keras.export.graph import INPUT_DTYPES, PERMUTATIONS, inference_model, normalize_tf, random_permutation_layers
from pcw_keras.export.op_versions import builtin_ops, check_runtime_compat, oldest_runtime
from pcw_keras.export.savedmodel import SavedModelRunner, directory_size, is_saved_model, write_saved_model
from pcw_keras.export.served import REPORT_FILE
from pcw_keras.export.source import LABELS_FILE, SavedModelSource, load_saved_model, load_source
from pcw_keras.export.staging import check_destination, staged_directory
from pcw_keras.export.tflite import QUANTIZE_MODES, LiteRTModel, convert_saved_model

FORMATS = ("savedmodel", "tflite")
TFLITE_FILE = "model.tflite"
# Default gates on top-1 agreement with the reference (Keras, or the SavedModel converted), up to
# its own ties (check.parity): float exports must agree on 99% of the test inputs, exports with
# int8 weights (dynamic range, int8, int16x8) on 97%.
DEFAULT_MIN_AGREEMENT = {"none": 0.99, "float16": 0.99, "dynamic": 0.97, "int8": 0.97, "int16x8": 0.97}


class ExportCheckError(RuntimeError):
    """The exported model disagrees with Keras (or the SavedModel converted) more than allowed; nothing was written."""


def _check_arguments(format, quantize, input_dtype, permutation, int8_io, numbers, min_agreement, runtime_compat) -> None:
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
    canvases of the recipe's test split (TFLite through the LiteRT
    interpreter) and compared with Keras on the same inputs: max and mean
    absolute difference of the logits, top-1 agreement, both accuracies, file
    size and single-image latency go into the report. Everything is written in
    a hidden folder that becomes ``out`` only when the check passed.

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
        compares top-1 with the model's own predictions.
    preprocess : {"cifar", "imagenet", "unit", "none"}, optional
        How a model of no recipe wants its pixels (default ``cifar``);
        a uint8 export normalises them so inside the model. For a SavedModel
        ``source`` the name its ``export_report.json`` records, if any.
    input_size : int, optional
        Input size of a model whose input shape leaves it open (not for a SavedModel).
    check_samples, check_batch_size : int
        Test canvases compared, and how many per call.
    min_agreement : float, optional
        Least top-1 agreement with Keras (or the SavedModel ``source``), up to its own ties
        (:func:`pcw_keras.export.check.parity`); default 0.99 for float
        exports and 0.97 for int8 weights (``"dynamic"``, ``"int8"``, ``"int16x8"``).
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
        Top-1 agreement below ``min_agreement``; nothing is left at ``out``.

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
                     min_agreement, runtime_compat)
    check_destination(out, overwrite)
    gate = DEFAULT_MIN_AGREEMENT[quantize] if min_agreement is None else float(min_agreement)
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
                "check_inputs": f"{served.calibration} (labels: the SavedModel's top-1)", **served.described}
        return _publish(out, overwrite, lambda stage: _export_saved_model_tflite(
            served, stage, images, quantize, int8_io, bias_correction, runtime_compat, calibration_steps,
            check_batch_size, latency_runs, threads, seed, verbose,
        ), head, served.labels, samples=len(images), seed=seed, gate=gate, reference="the SavedModel", verbose=verbose)

    resolved = load_source(source, recipe=recipe, checkpoint=checkpoint, calibration=calibration,
                           preprocess=preprocess, input_size=input_size)
    model = resolved.model
    permuted = bool(random_permutation_layers(model))
    inputs = check_inputs(resolved, check_samples, input_dtype=input_dtype, seed=seed, batch_size=check_batch_size)

    def export(stage: str) -> dict:
        if format == "savedmodel":
            return _export_savedmodel(model, resolved.normalization, stage, input_dtype, permutation,
                                      permutation_seed, inputs, check_batch_size, latency_runs, verbose)
        return _export_tflite(model, resolved, stage, quantize, input_dtype, int8_io, bias_correction, runtime_compat,
                              calibration_steps, permutation, permutation_seed, inputs, check_batch_size,
                              latency_runs, threads, seed, verbose)

    head = {
        "format": format,
        "quantize": quantize,
        "source": resolved.origin,
        "recipe": resolved.name,
        "task": resolved.task,
        "check_inputs": {"canvas": "canvases of the recipe's test split", "images": "the recipe's test images",
                         "calibration": f"{resolved.calibration} (labels: Keras' top-1)"}[resolved.kind],
        "permutation": (
            {"mode": permutation, **({"seed": permutation_seed} if permutation == "frozen" else {})}
            if permuted else None
        ),
    }
    return _publish(out, overwrite, export, head, resolved.labels, samples=len(inputs.labels), seed=seed, gate=gate,
                    reference="Keras", verbose=verbose)


def _publish(out, overwrite: bool, export: Callable[[str], dict], head: dict, labels: list[str], *, samples: int,
             seed: int, gate: float, reference: str, verbose: bool) -> dict:
    """Runs ``export(stage)`` in a staged folder, gates its check, writes labels and report there, and publishes it.

    ``export`` writes the model into the folder and returns the report's
    details, ``"check"`` included (:func:`parity` figures against
    ``reference`` on ``samples`` inputs); the report is ``head``, the
    details, the labels file, the check and the versions.
    """
    with staged_directory(out, overwrite) as stage:
        details = export(stage)
        check = details.pop("check")
        check.update({"samples": int(samples), "split": "test", "seed": seed, "min_agreement": gate,
                      "passed": check["top1_agreement_up_to_ties"] >= gate})
        report = {**head, **details, "labels_file": LABELS_FILE, "check": check, "versions": _versions()}
        if not check["passed"]:
            raise ExportCheckError(
                f"The exported model agrees with {reference} (top-1, up to ties) on "
                f"{100 * check['top1_agreement_up_to_ties']:.2f}% of {check['samples']} test inputs, below the "
                f"required {100 * gate:.2f}% (max |diff| {check['max_abs_diff']:.4g}, accuracy {reference} "
                f"{100 * check['accuracy_keras']:.2f}% vs exported {100 * check['accuracy_exported']:.2f}%). "
                f"Nothing was written to {os.fspath(out)!r}; "
                "lower the gate with min_agreement (CLI: --min-agreement) to keep it anyway."
            )
        with open(os.path.join(stage, LABELS_FILE), "w", encoding="utf-8") as handle:
            handle.write("".join(f"{label}\n" for label in labels))
        with open(os.path.join(stage, REPORT_FILE), "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    _say(verbose, f"{os.fspath(out)}: top-1 agreement {100 * check['top1_agreement']:.2f}% "
                  f"({100 * check['top1_agreement_up_to_ties']:.2f}% up to ties), "
                  f"accuracy {100 * check['accuracy_exported']:.2f}% "
                  f"({reference} {100 * check['accuracy_keras']:.2f}%), "
                  f"{report['file_size_bytes'] / 1e6:.2f} MB, {report['latency']['median_ms']:.2f} ms per image")
    return report


def _input_description(input_dtype: str, normalization) -> dict:
    if input_dtype == "uint8":
        return {"pixels": "uint8 0-255, normalised inside the model", **normalization.to_dict()}
    return {"pixels": "float32 (x / 255 - mean) / std, as the Keras model takes them", **normalization.to_dict()}


def _seed_states(model: keras.Model) -> list:
    return [layer.seed_generator.state for layer in random_permutation_layers(model)]


def _export_savedmodel(model, normalization, stage, input_dtype, permutation, permutation_seed, inputs, batch_size,
                       latency_runs, verbose) -> dict:
    exported = inference_model(model, "frozen", seed=permutation_seed) if permutation == "frozen" else model
    states = _seed_states(exported)
    saved = [np.array(state.numpy()) for state in states]
    _say(verbose, "writing the SavedModel")
    write_saved_model(exported, stage, input_dtype=input_dtype, normalization=normalization)
    runner = SavedModelRunner(stage)
    _say(verbose, f"checking it on {len(inputs.labels)} test inputs")
    outputs = np.concatenate([runner(batch) for batch in batches(inputs.images, batch_size)])
    # A random permutation's stream restarts from the saved seed state: Keras replays the same draws.
    for state, value in zip(states, saved):
        state.assign(value)
    reference = keras_logits(exported, inputs.keras_inputs, batch_size=batch_size)
    for state, value in zip(states, saved):
        state.assign(value)
    check = parity(outputs, reference, outputs, reference, inputs.labels)
    if permutation == "frozen" and exported is not model:
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
    samples = pixels if input_dtype == "uint8" else normalize_tf(pixels, normalization.mean, normalization.std).numpy()

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
        check_runtime_compat(content, runtime_compat)
    return content


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


def _export_tflite(model, source, stage, quantize, input_dtype, int8_io, bias_correction, runtime_compat, calibration_steps,
                   permutation, permutation_seed, inputs, batch_size, latency_runs, threads, seed, verbose) -> dict:
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
    _say(verbose, f"checking it on {len(inputs.labels)} test inputs through the LiteRT interpreter")
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
        check = parity(outputs, reference, outputs, own, inputs.labels)
        check["compared_with"] = "Keras, same inputs, replaying the permutation the interpreter drew at each call"
    else:
        reference = keras_logits(exported, inputs.keras_inputs, batch_size=batch_size)
        check = parity(outputs, reference, outputs, reference, inputs.labels)
        check["compared_with"] = "Keras, same inputs" + (", same frozen permutation" if exported is not model else "")
        if exported is not model:
            own = keras_logits(model, inputs.keras_inputs, batch_size=batch_size)
            check["accuracy_keras_random_permutation"] = float(np.mean(own.argmax(-1) == inputs.labels))
    return _tflite_details(content, stage, check, input_dtype, source.normalization, quantize, int8_io, bias_correction,
                           calibration_steps, runtime_compat, inputs.images[:1], latency_runs, threads)


def _export_saved_model_tflite(source: SavedModelSource, stage, images, quantize, int8_io, bias_correction, runtime_compat,
                               calibration_steps, batch_size, latency_runs, threads, seed, verbose) -> dict:
    """The SavedModel ``source`` as TFLite, checked against the SavedModel's own outputs on ``images``."""
    content = _convert(source.path, source, quantize, source.input_dtype, int8_io, bias_correction, runtime_compat,
                       calibration_steps, seed, verbose)
    runner = LiteRTModel(content, threads=threads)
    _say(verbose, f"checking it on {len(images)} calibration images against the SavedModel")
    outputs = np.concatenate([runner(batch) for batch in batches(images, batch_size)])
    reference = np.concatenate([source.runner(batch) for batch in batches(images, batch_size)])
    check = {**parity(outputs, reference, outputs, reference, reference.argmax(-1)),
             "compared_with": "the SavedModel, same inputs"}
    return _tflite_details(content, stage, check, source.input_dtype, source.normalization, quantize, int8_io,
                           bias_correction, calibration_steps, runtime_compat, images[:1], latency_runs, threads)


def export_savedmodel(source, out: str | os.PathLike, **kwargs) -> dict:
    """:func:`export_model` with ``format="savedmodel"`` (float32; a ``serve`` signature)."""
    return export_model(source, out, format="savedmodel", **kwargs)


def export_tflite(source, out: str | os.PathLike, *, quantize: str = "none", **kwargs) -> dict:
    """:func:`export_model` with ``format="tflite"`` and the given quantization."""
    return export_model(source, out, format="tflite", quantize=quantize, **kwargs)
