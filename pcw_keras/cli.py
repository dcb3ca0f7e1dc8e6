"""The ``pcw`` command line: train, evaluate and demonstrate the paper's experiments."""
from __future__ import annotations

import os
import sys

# Before TensorFlow is imported (through Keras): keep its C++ info logs off the terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import click  # noqa: E402

from pcw_keras import commands  # noqa: E402
from pcw_keras.backends import BACKEND_CHOICES, apply_backend  # noqa: E402
from pcw_keras.choices import INFERENCE_PRECISIONS, STRATEGY_NAMES  # noqa: E402
from pcw_keras.commands.rank import PRECISION_HELP  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pcw_keras")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto", show_default=True,
              help="Keras backend. auto: KERAS_BACKEND if set, JAX on an NVIDIA GPU, "
                   "else the installed backend measured faster on this kind of device.")
def main(backend: str) -> None:
    """pcw: position information encoded channel-wise in CNNs (Islam et al., ICCV 2021).

    Start with `pcw demo`: it trains GAPNet and PermuteNet on the canvas tasks
    and prints the paper's table. `pcw recipes` lists the named experiments;
    `pcw train NAME` runs one.
    """
    try:
        apply_backend(backend)
    except (ImportError, ValueError, RuntimeError) as error:
        raise click.UsageError(str(error)) from None
    context = click.get_current_context()
    if context.invoked_subcommand not in KERAS_FREE_COMMANDS and not HELP_OPTIONS & set(sys.argv[1:]):
        _import_keras_quietly()


KERAS_FREE_COMMANDS = {"recipes"}
HELP_OPTIONS = {"-h", "--help"}


def _import_keras_quietly() -> None:
    """Import Keras (and its backend) with the native stderr muted.

    TensorFlow's C++ runtime prints its start-up notices (the oneDNN notice,
    absl's "log messages before InitializeLog" warning) straight to file
    descriptor 2 while it loads, before ``TF_CPP_MIN_LOG_LEVEL`` applies: they
    are noise for every command. Python's own errors still reach the user,
    raised after the descriptor is restored.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@main.command("recipes")
def list_recipes_command() -> None:
    """List the shipped recipes with a one-line description each."""
    from pcw_keras.recipes import list_recipes

    recipes = list_recipes()
    width = max(map(len, recipes))
    for name, description in recipes.items():
        click.echo(f"{name:<{width}}  {description}")


def _overrides(data, epochs, batch_size, seed, sets) -> dict:
    overrides = commands.parse_sets(sets)
    for key, value in (("data.source", data), ("training.epochs", epochs), ("training.batch_size", batch_size), ("training.seed", seed)):
        if value is not None:
            overrides[key] = value
    return overrides


@main.command("train")
@click.argument("recipe")
@click.option("--data", "data", metavar="SOURCE", help="tfds name, cifar10-mini, image folder, .tar.gz or .npz (default: the recipe's).")
@click.option("--epochs", type=click.IntRange(min=1), help="Number of epochs (default: the recipe's).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Global batch size (default: the recipe's).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of data order, placements and weights: same seed, same CPU run.")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Run directory (default: runs/<recipe>). Rerun to resume.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any recipe field, e.g. --set model.width=0.25.")
@click.option("--force", is_flag=True, help="Train again from scratch in a run directory that holds an earlier run.")
@click.option("--strategy", type=click.Choice(STRATEGY_NAMES), default="auto", show_default=True,
              help="TensorFlow: auto picks multi-worker from TF_CONFIG, mirrored on several GPUs. "
                   "JAX: auto is keras.distribution.DataParallel over all local devices.")
def train_command(recipe, data, epochs, batch_size, seed, out, sets, force, strategy) -> None:
    """Train RECIPE (a name from `pcw recipes` or a .yaml file) into a run directory.

    The run directory gets the resolved recipe.yaml, metrics.csv, TensorBoard
    logs, best.keras, last.keras and results.json. Killed, the same command
    resumes it from the last completed epoch. Run again once finished, it says
    so and changes nothing; with a larger --epochs it trains on from its last
    epoch; --force trains it again from scratch.

    \b
    Example:
      pcw train location-3x3-gapnet --data ../shared/data/cifar10-jpeg.tar.gz \\
          --epochs 1 --set model.width=0.25 --set data.limit=2000
    """
    from pcw_keras import recipes
    from pcw_keras.training import train

    try:
        resolved = recipes.load(recipe, **_overrides(data, epochs, batch_size, seed, sets))
    except (ValueError, FileNotFoundError) as error:
        raise click.UsageError(str(error)) from None
    run_dir = out or os.path.join("runs", resolved.name)
    try:
        results = train(resolved, run_dir, strategy=strategy, force=force)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    if results:
        click.echo(
            f"test accuracy: {100 * results['test_accuracy_best']:.1f}% (best validation epoch), "
            f"{100 * results['test_accuracy_last']:.1f}% (last epoch); chance {100 * results['chance']:.1f}%. "
            f"Results in {os.path.join(run_dir, 'results.json')}"
        )


@main.command("evaluate", context_settings={"ignore_unknown_options": True})
@click.argument("run_dir", metavar="RUN_DIR | consistency MODEL")
@click.argument("consistency_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--data", "data", metavar="SOURCE", help="Evaluate on another source's test split.")
@click.option("--precision", type=click.Choice(INFERENCE_PRECISIONS), default="auto", show_default=True,
              help=PRECISION_HELP)
def evaluate_command(run_dir, consistency_args, data, precision) -> None:
    """Evaluate a run directory's best and last models on the test split (writes results.json).

    `pcw evaluate consistency MODEL [OPTIONS]` measures shift
    consistency instead: the same as `pcw consistency` (see its --help).
    """
    from pcw_keras.commands.consistency import command as consistency_command
    from pcw_keras.runs import Run
    from pcw_keras.training import evaluate_run

    if run_dir == "consistency":
        args = list(consistency_args) + (["--data", data] if data else [])
        args += ["--precision", precision] if precision != "auto" else []
        consistency_command.main(args, prog_name="pcw evaluate consistency", standalone_mode=False)
        return
    if consistency_args:
        raise click.UsageError(f"Got unexpected extra arguments: {' '.join(consistency_args)}")
    if not os.path.isdir(run_dir):
        raise click.BadParameter(f"Directory {run_dir!r} does not exist.", param_hint="RUN_DIR")
    try:
        run = Run(run_dir, **{"data.source": data})
        results = evaluate_run(run.path, recipe=run.recipe, precision=precision)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    consistency = "".join(
        f", consistency {100 * results[f'consistency_{which}']:.1f}% ({which})"
        for which in ("best", "last") if f"consistency_{which}" in results
    )
    click.echo(
        f"{results['recipe']}: test accuracy {100 * results['test_accuracy_best']:.1f}% (best validation epoch), "
        f"{100 * results['test_accuracy_last']:.1f}% (last); chance {100 * results['chance']:.1f}%{consistency}; "
        f"inference in {results['precision']}"
    )


@main.command("demo")
@click.option("--quick", is_flag=True, help="Smoke run (width 1/16, 600 training images): proves the path, not the science.")
@click.option("--full", is_flag=True, help="The paper's recipes as they are (full width, 20 epochs): hours on a CPU.")
@click.option("--data", "data", metavar="SOURCE",
              help="Data source (default: cifar10-mini, shipped with the package; with --full, CIFAR-10 from tfds).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the whole run.")
@click.option("--out", "out", type=click.Path(file_okay=False), default=os.path.join("runs", "demo"), show_default=True,
              help="Folder for results.json, results.md, the pictures and a run directory per network and task.")
def demo_command(quick, full, data, seed, out) -> None:
    """Test whether a CNN knows where things are after global pooling, and whether it keeps this in channel order.

    Trains GAPNet and PermuteNet (ResNet-18, width 1/8) on the location and the
    image task on a 3x3 canvas of CIFAR-10 images, evaluates them over random
    placements, and prints its table beside the paper's, with a verdict that
    stated thresholds on its own numbers decide (pcw_keras.demo_verdict):
    whether GAPNet locates the image where PermuteNet (pooled channels
    shuffled) cannot, while both recognise it. It prints its time estimate for
    this machine when it starts (derived from the committed demo runs,
    docs/studies/demo/).
    """
    from pcw_keras.demo import format_table, run_demo

    if quick and full:
        raise click.UsageError("Choose one of --quick and --full.")
    mode = "quick" if quick else "full" if full else "default"
    try:
        results = run_demo(out, mode=mode, source=data, seed=seed)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    click.echo("")
    click.echo(format_table(results))
    click.echo("")
    click.echo(results["summary"])
    click.echo(results["kept_share_line"])
    click.echo(f"Written to {out}/: results.json, results.md, location_cells_*.png, location_examples.png, and a "
               "pcw train run directory per network and task (location-gapnet/ ...).")


commands.register(main)

if __name__ == "__main__":
    sys.exit(main())
