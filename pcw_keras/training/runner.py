"""Run a recipe end to end: ``model.fit`` under a strategy, into a resumable run directory.

A run directory holds ``recipe.yaml`` (the resolved recipe), ``metrics.csv``,
TensorBoard logs in ``logs/``, ``best.keras`` (best validation accuracy),
``last.keras`` and ``results.json`` (test accuracy of both, as the paper
measures it). Started again with the same command, a killed run resumes where
its last completed epoch left it; a finished run says so and is left as it
is; a larger ``training.epochs`` (``--epochs``) continues a finished run from
its last epoch; ``force=True`` (``--force``) trains it again from scratch.
"""
from __future__ import annotations

import json
import os
import time

import keras

from pcw_keras.evaluation.evaluators import evaluate
from pcw_keras.io import remove_stale_temporaries, write_text_atomic
from pcw_keras.recipes import Recipe
from pcw_keras.runs import (
    BACKUP_DIR,
    RECIPE_FILE,
    RESULTS_FILE,
    RUN_FILES,
    Run,
    best_epoch,
    checkpoint_file,
    completed_epochs,
    load_model,
)
from pcw_keras.training.callbacks import SyncDataEpoch, resume_callbacks
from pcw_keras.training.callbacks.metrics_log import progress_verbosity
from pcw_keras.training.distribution import KerasDistribution
from pcw_keras.training.strategy import choose_strategy, describe_strategy, is_chief, write_dir

def _stored_epochs(run_dir: str, recipe: Recipe) -> int | None:
    """The ``training.epochs`` of the run already in ``run_dir`` (None for a new run directory).

    Raises
    ------
    ValueError
        The run directory holds another recipe (anything but the epoch count
        and ``training.steps_per_execution``, which trains the same steps, differs).
    """
    path = os.path.join(run_dir, RECIPE_FILE)
    if not os.path.exists(path):
        return None
    from pcw_keras.recipes import load

    existing = load(path)
    may_differ = {key: recipe["training"][key] for key in ("epochs", "steps_per_execution")}
    if dict(existing.config, training={**existing["training"], **may_differ}) != recipe.config:
        raise ValueError(
            f"Run directory {run_dir!r} holds a run of a different recipe (see its {RECIPE_FILE}). "
            "Use a new --out, or --force to train it again from scratch."
        )
    return existing.epochs


def _finished_epochs(run_dir: str) -> int:
    """Epochs a run has finished and left no backup for (0 while a backup says it is in progress)."""
    if os.path.exists(os.path.join(run_dir, BACKUP_DIR)) or not os.path.isfile(os.path.join(run_dir, checkpoint_file("last"))):
        return 0
    return completed_epochs(run_dir)


def _clear_run(run_dir: str) -> None:
    import shutil

    for name in RUN_FILES:
        path = os.path.join(run_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def _continue_from_last(model: keras.Model, run_dir: str, sample_inputs) -> None:
    """Loads ``last.keras`` into the training model ``model``: its weights, and its optimizer state where it has one.

    A canvas model's ``last.keras`` is the plain canvas network (see
    :class:`~pcw_keras.models.PlacementModel`), saved without an
    optimizer: its continuation starts the optimizer afresh (Adam's moments
    rebuild within a few dozen steps), which an uninterrupted longer run does not.
    """
    from pcw_keras.models.wrappers import unwrap

    last = keras.models.load_model(os.path.join(run_dir, checkpoint_file("last")))
    model(sample_inputs, training=False)  # build the wrapper's variables
    unwrap(model).set_weights(unwrap(last).get_weights())
    if getattr(last, "optimizer", None) is not None and last.optimizer.variables:
        model.optimizer.build(model.trainable_variables)
        for variable, value in zip(model.optimizer.variables, last.optimizer.variables):
            variable.assign(value)


def train(
    recipe: Recipe,
    run_dir: str | os.PathLike,
    *,
    strategy: str = "auto",
    verbose: int | str = "auto",
    extra_callbacks: list | None = None,
    force: bool = False,
) -> dict:
    """Trains ``recipe`` into ``run_dir`` (resuming it if it was interrupted) and evaluates it.

    Parameters
    ----------
    recipe : Recipe
        From :func:`pcw_keras.recipes.load`.
    run_dir : path
        Where the run lives; created if needed.
    strategy : str
        A name from :data:`pcw_keras.training.STRATEGY_NAMES`.
    verbose : int or "auto"
        Keras' progress display; ``"auto"`` is a progress bar on a terminal
        and one line per epoch otherwise (a log file, CI).
    extra_callbacks : list of keras.callbacks.Callback, optional
        Called before the run directory's own callbacks (e.g. a step timer).
    force : bool
        Delete what ``run_dir`` holds of an earlier run (its recipe, metrics,
        models, results, backup and logs) and train from scratch.

    Returns
    -------
    dict
        The content of ``results.json``.
    """
    distribution = choose_strategy(strategy)  # first: multi-worker setup must precede other TF ops
    run_dir = os.fspath(run_dir)
    out = write_dir(run_dir, distribution)
    os.makedirs(out, exist_ok=True)
    if force and is_chief(distribution):
        _clear_run(out)
        if os.path.exists(os.path.join(out, RECIPE_FILE)):
            os.remove(os.path.join(out, RECIPE_FILE))
    if is_chief(distribution):  # files a killed process was writing, never committed
        for folder in (out, os.path.join(out, BACKUP_DIR)):
            remove_stale_temporaries(folder)
    stored_epochs = _stored_epochs(run_dir, recipe)
    finished = _finished_epochs(run_dir) if stored_epochs is not None else 0
    if finished and finished >= recipe.epochs:
        if finished > recipe.epochs:
            raise ValueError(f"Run directory {run_dir!r} has finished {finished} epochs, more than the {recipe.epochs} asked "
                             "for. Use a new --out, or --force to train it again from scratch.")
        if os.path.isfile(os.path.join(run_dir, RESULTS_FILE)):
            print(f"pcw: {run_dir} is finished ({finished} epochs; {RESULTS_FILE}): nothing to do. "
                  "--epochs N > {0} trains it on, --force trains it again.".format(finished))
            with open(os.path.join(run_dir, RESULTS_FILE), encoding="utf-8") as handle:
                return json.load(handle)
        print(f"pcw: {run_dir} finished training ({finished} epochs) but not its evaluation: evaluating.")
        return _evaluate_on_chief(distribution, run_dir, recipe=recipe)
    write_text_atomic(os.path.join(out, RECIPE_FILE), recipe.to_yaml())
    print(f"pcw: {recipe.name} -> {run_dir} ({describe_strategy(distribution)})")

    seed = recipe["training"]["seed"]
    keras.utils.set_random_seed(seed)
    data = recipe.datasets()
    with distribution.scope():
        model = recipe.build_model(class_names=data.train_images.class_names)
    if finished:  # a finished run asked for more epochs: on from its last one
        print(f"pcw: continuing from epoch {finished} (last.keras) to {recipe.epochs}.")
        _continue_from_last(model, run_dir, data.train[0][0])
    start = time.perf_counter()
    model.fit(
        data.train,
        validation_data=data.validation,
        epochs=recipe.epochs,
        initial_epoch=finished,
        callbacks=[SyncDataEpoch(data.train), *(extra_callbacks or []),
                   *resume_callbacks(run_dir, monitor="val_accuracy", mode="max")],
        verbose=progress_verbosity(verbose),
        shuffle=False,  # the datasets shuffle per epoch themselves; Keras would reorder batches with Python's RNG
    )
    train_seconds = time.perf_counter() - start
    if not is_chief(distribution):
        import shutil

        shutil.rmtree(out, ignore_errors=True)  # this worker's private scratch folder
    return _evaluate_on_chief(distribution, run_dir, recipe=recipe, test_images=data.test_images,
                              extra={"train_seconds_this_session": round(train_seconds, 1)})


def _evaluate_on_chief(distribution, run_dir: str, **evaluate_args) -> dict:
    """The chief evaluates the run (:func:`evaluate_run`); the other processes return ``{}``.

    Processes of a multi-process JAX run leave the distribution first, so
    that the chief evaluates on its own devices, and wait for it at the end.
    """
    if isinstance(distribution, KerasDistribution):
        distribution.end_training()
    results = evaluate_run(run_dir, **evaluate_args) if is_chief(distribution) else {}
    if isinstance(distribution, KerasDistribution):
        distribution.wait_for_all("pcw-run-evaluated")
    return results


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    recipe: Recipe | None = None,
    test_images=None,
    extra: dict | None = None,
    precision: str = "auto",
) -> dict:
    """Evaluates ``best.keras`` and ``last.keras`` of a run on its test split; writes ``results.json``.

    The test score is the paper's: the mean accuracy over ``grid * grid``
    random placements of the test split. The paper picks its best epoch on the
    test split; here the best epoch is chosen on the validation split, and the
    final epoch is reported too. The models run in their inference form in
    ``precision`` (:func:`pcw_keras.models.inference.inference_model`; ``auto``
    is bfloat16 where it is the faster one), which ``results.json`` records.
    """
    from pcw_keras.models.inference import resolve_precision

    precision = resolve_precision(precision)
    run_dir = os.fspath(run_dir)
    recipe = recipe or Run(run_dir).recipe
    test_images = recipe.load_images("test") if test_images is None else test_images
    epochs = completed_epochs(run_dir)
    best = best_epoch(run_dir)
    results = {"recipe": recipe.name, "task": recipe["task"], "test_images": len(test_images),
               "epochs": epochs, "best_epoch": best, "precision": precision}
    for which in ("best", "last"):
        path = os.path.join(run_dir, checkpoint_file(which))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path!r} is missing: has the run in {run_dir!r} finished an epoch?")
        if which == "best" or best != epochs - 1:  # when the last epoch is the best, its scores are best's
            scores = evaluate(load_model(path, precision=precision), test_images, task=recipe["task"],
                              evaluation=recipe["evaluation"], seed=recipe["training"]["seed"])
        results[f"test_accuracy_{which}"] = scores["accuracy"]
        for key in ("per_cell_accuracy", "consistency", "circular_consistency"):  # canvas tasks / classification
            if key in scores:
                results[f"{key}_{which}"] = scores[key]
    results["chance"] = 1.0 / recipe.num_classes(test_images.class_names)
    results.update(extra or {})
    write_text_atomic(os.path.join(run_dir, RESULTS_FILE), json.dumps(results, indent=2))
    return results
