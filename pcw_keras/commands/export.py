"""``pcw export``: SavedModel or TFLite, checked against Keras (or the SavedModel converted), with export_report.json."""
from __future__ import annotations

import click

from pcw_keras.choices import PREPROCESS

FORMATS = ("savedmodel", "tflite")
QUANTIZE = ("none", "float16", "dynamic", "int8", "int16x8")
INCONCLUSIVE_EXIT_STATUS = 3
"""Exit status of an export whose check is inconclusive (written, but not judged)."""


@click.command("export")
@click.argument("source", metavar="MODEL")
@click.option("--format", "format_", type=click.Choice(FORMATS), default="tflite", show_default=True, help="Export format.")
@click.option("--quantize", type=click.Choice(QUANTIZE), default="none", show_default=True,
              help="TFLite: float32 (none), float16 weights, dynamic-range int8 weights, full int8, "
                          "or int8 weights with int16 activations (int16x8).")
@click.option("--calibration-steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="int8/int16x8: representative canvases from the recipe's training split.")
@click.option("--int8-io", is_flag=True, help="Full int8: int8 output (and input, if float) instead of float32.")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="Full int8: remove the systematic error of 8-bit rounding from each layer's output, through its bias.")
@click.option("--input-dtype", type=click.Choice(("uint8", "float32")), default="uint8", show_default=True,
              help="uint8: pixels 0-255, normalised inside the model; float32: normalised images as Keras takes them. "
                   "A SavedModel keeps its own.")
@click.option("--permutation", type=click.Choice(("random", "frozen")), default="random", show_default=True,
              help="PermuteNet: a new permutation at every call (the paper), or one fixed one (deterministic).")
@click.option("--permutation-seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of a frozen permutation.")
@click.option("--recipe", help="Recipe (name or .yaml) whose data checks the export; default: the run directory's.")
@click.option("--checkpoint", type=click.Choice(("best", "last")), default="best", show_default=True,
              help="Which model of a run directory.")
@click.option("--calibration", metavar="FOLDER|TARBALL|NPZ",
              help="A model file of no recipe, or a SavedModel: images that check and calibrate it (resized to its input).")
@click.option("--preprocess", type=click.Choice(PREPROCESS), default=None,
              help="A model file of no recipe, or a SavedModel without export_report.json: how it wants its pixels "
                   "[default: cifar].")
@click.option("--input-size", type=click.IntRange(min=1), help="A model file whose input shape leaves the size open.")
@click.option("--check-samples", type=click.IntRange(min=1), default=512, show_default=True,
              help="Test inputs compared with Keras (or the SavedModel).")
@click.option("--min-agreement", type=click.FloatRange(0.0, 1.0), default=None,
              help="Least top-1 agreement with Keras or the SavedModel on the inputs where it is decided "
                   "[default: 0.99 float, 0.97 int8 weights].")
@click.option("--max-error", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Largest relative error of the outputs (RMS difference over the spread of Keras' outputs) "
                   "[default: 0.01 float32/float16, 0.1 dynamic/int16x8, 0.25 int8].")
@click.option("--runtime-compat", metavar="X.Y",
              help="TFLite: refuse (naming the ops) unless a runtime this old can load the model, e.g. 2.14.")
@click.option("--latency-runs", type=click.IntRange(min=1), default=50, show_default=True, help="Timed single-image calls.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="LiteRT interpreter threads.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the check and calibration placements.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--out", "out", required=True, type=click.Path(), help="Export folder to create.")
def command(source, format_, quantize, calibration_steps, int8_io, bias_correction, input_dtype, permutation,
            permutation_seed, recipe, checkpoint, calibration, preprocess, input_size, check_samples, min_agreement,
            max_error, runtime_compat, latency_runs, threads, seed, overwrite, out) -> None:
    """Export MODEL (a run directory, a .keras file or a SavedModel) for deployment, checked against it.

    Every model of a run exports: canvas networks, CIFAR classifiers,
    AugShift-trained ones (as the plain classifier) and BlurPool networks.
    They are checked on inputs of their own kind from their recipe's test
    split: canvases, or images. Any other model is checked and calibrated on
    --calibration images, with --preprocess saying how it wants its pixels.

    A SavedModel directory (as --format savedmodel writes it) converts to
    TFLite as it is, calibrated on --calibration images and checked against
    the SavedModel itself on them; its normalisation comes from the
    export_report.json in it, else from --preprocess.

    The folder --out gets the model (the SavedModel itself, or model.tflite),
    labels.txt and export_report.json: top-1 agreement with Keras (or the
    SavedModel), the relative error of the outputs in the space the model
    emits (logits or probabilities), the share of inputs on which Keras is
    decided and the agreement there, both accuracies when a recipe gives
    labels, size and single-image latency.

    \b
    The check has three outcomes (exit status):
      passed (0)        the outputs are close and top-1 agrees;
      inconclusive (3)  the outputs are close, but Keras is undecided on most
                        check inputs (a random or barely trained model): top-1
                        agreement cannot judge it; the export is written, its
                        report says so;
      failed (1)        the outputs differ more than --max-error, or top-1
                        agreement on the decided inputs is below
                        --min-agreement; nothing is written.
    An op that cannot convert also fails, writing nothing.

    \b
    Examples:
      pcw export runs/gapnet-loc --format tflite --quantize int8 --out exports/gapnet-int8
      pcw export runs/permutenet --format savedmodel --permutation frozen --out exports/permutenet-sm
      pcw export resnet50.keras --calibration photos.tar.gz --preprocess imagenet --out exports/r50
      pcw export exports/r50-sm --calibration photos.tar.gz --quantize int8 --out exports/r50-int8
    """
    import importlib.util

    import keras

    if importlib.util.find_spec("tensorflow") is None or keras.backend.backend() != "tensorflow":
        raise click.ClickException(
            "pcw export converts with TensorFlow (SavedModel, TFLite): run it under KERAS_BACKEND=tensorflow "
            "with TensorFlow installed (pip install -e \".[cpu]\"). A run trained under JAX exports as it is: "
            f"its .keras files are backend-neutral. Here: backend {keras.backend.backend()!r}, "
            f"TensorFlow {'installed' if importlib.util.find_spec('tensorflow') else 'not installed'}."
        )
    from pcw_keras.export import ExportCheckError
    from pcw_keras.export.gate import summary
    from pcw_keras.export.savedmodel import is_saved_model
    from pcw_keras.runs import export

    try:
        report = export(
            source, out, format=format_, quantize=quantize, input_dtype=input_dtype, int8_io=int8_io,
            bias_correction=bias_correction,
            calibration_steps=calibration_steps, permutation=permutation, permutation_seed=permutation_seed,
            recipe=recipe, checkpoint=checkpoint, calibration=calibration, preprocess=preprocess, input_size=input_size,
            check_samples=check_samples, min_agreement=min_agreement, max_error=max_error, runtime_compat=runtime_compat,
            latency_runs=latency_runs, threads=threads, seed=seed, overwrite=overwrite,
        )
    except (ValueError, FileNotFoundError, FileExistsError, ExportCheckError) as error:
        raise click.ClickException(str(error)) from None
    reference = "the SavedModel" if is_saved_model(source) else "Keras"
    click.echo(
        f"Exported {report['format']} ({report['quantize']}) to {out}: {summary(report['check'], reference)}; "
        f"{report['file_size_bytes'] / 1e6:.2f} MB; {report['latency']['median_ms']:.2f} ms per image."
    )
    if report["check"]["outcome"] == "inconclusive":
        raise SystemExit(INCONCLUSIVE_EXIT_STATUS)
