"""Host time per training step: ``pcw train`` against plain ``model.fit`` and a jitted step; prints one JSON object.

At a width whose device work is small on an accelerator (by default
GAPNet ResNet-18 at width 1/64, the 3x3 location task, batch 48, the 4,500
training images of ``cifar10-mini``: 93 steps per epoch), what a training step costs beyond the
device work is the host's: Python in the fit loop, callbacks that wait for
the device, the data feed. Per backend, in a child process of its own
(Keras picks its backend once, at import), it measures milliseconds per
training step of

- ``pcw_train``: :func:`pcw_keras.training.runner.train` (what ``pcw
  train`` runs after parsing its arguments), with its callbacks, run
  directory and progress lines;
- ``model_fit``: plain ``model.fit`` on the same recipe's model and data,
  with Keras' defaults (``steps_per_execution=1``, no callbacks,
  ``verbose=0``);
- ``jitted_step``: the same model's forward pass, backward pass and
  optimizer update as one compiled function (JAX: ``jax.jit`` of
  ``stateless_call``, ``value_and_grad`` and ``stateless_apply``;
  TensorFlow: ``tf.function(jit_compile=False)`` of a ``GradientTape`` step,
  ``jit_compile`` as the recipe resolves it on this machine), called in a
  loop on one batch already on the device.

The fit figures time the training steps only: from each epoch's start to
the start of its validation (``on_test_begin``), the device waited for at
both ends, over the epoch's steps. Before each epoch's clock starts, a loop
of jitted steps runs (as many as an epoch has, unless ``--steps`` says
otherwise), so that every epoch has a jitted figure
measured in the same seconds of a shared machine: ``over_jit_ms`` is the
median over epochs of the epoch's figure less its jitted loop's, the host
time per step that the loop does not hide. The first epoch (compilation) is
left out; every figure is a median over the others. ``cpu_*`` figures are
the same in CPU time of the whole process (all threads, ``process_time``):
the host's work per step where host and device share the CPU's cores.

``host_*`` figures are the CPU time of the thread that runs the loop
(``thread_time``: ``fit``'s thread, which calls the callbacks, or the
thread that calls the jitted step): Python, the batch draw and the
dispatch of each step, without the device's work, which runs on the
backend's own threads. That is the host work a device waits on when it is
longer than the device's step, and, unlike the wall time on a shared CPU,
it hardly depends on what else runs: ``host_over_jit_ms`` resolves a
fraction of a millisecond where ``over_jit_ms`` spreads over several
(``over_jit_ms_range``: the smallest and largest epoch). The jitted loop
is as long as an epoch because that thread's time per step depends on how
many steps are in flight (the device's queue is deeper in a longer loop):
``jitted_step.depth_check`` times loops of 30 steps (this benchmark's
length before) and of an epoch's steps, interleaved.

Usage (one Python per backend: the JAX venv has no TensorFlow)::

    flock -x /work/cpu.lock python benchmarks/host_overhead.py \
        --python tensorflow=/work/venv/bin/python jax=/work/venv-jax/bin/python \
        --out docs/bench/host_overhead_cpu.json
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from pcw_keras import machine

BACKENDS = ("tensorflow", "jax")


def _recipe(args: argparse.Namespace, **overrides):
    from pcw_keras import recipes

    fields = {"data.source": args.data, "task.grid": args.grid, "model.width": args.width,
              "training.batch_size": args.batch_size, "training.epochs": args.epochs, "data.limit": args.limit,
              "data.test_limit": args.test_limit, "evaluation.passes": 1}
    for text in args.set:
        key, value = recipes.parse_override(text)
        fields[key] = value
    return recipes.load(args.recipe, **{**fields, **overrides})


def _jax_step(model):
    """``(step, to_device, wait)``: ``step(x, y)`` trains ``model`` one step, compiled by ``jax.jit``, and returns the loss."""
    import jax

    def loss_and_state(trainable, non_trainable, x, y):
        y_pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return model.loss(y, y_pred), non_trainable

    gradient = jax.value_and_grad(loss_and_state, has_aux=True)

    @functools.partial(jax.jit, donate_argnums=0)  # the state's buffers reused in place, as Keras' trainer does
    def step(state, x, y):
        trainable, non_trainable, optimizer = state
        (loss, non_trainable), grads = gradient(trainable, non_trainable, x, y)
        trainable, optimizer = model.optimizer.stateless_apply(optimizer, grads, trainable)
        return (trainable, non_trainable, optimizer), loss

    state = {"state": ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
                       [v.value for v in model.optimizer.variables])}

    def run(x, y):
        state["state"], loss = step(state["state"], x, y)
        return loss

    return run, jax.device_put, lambda value: value.block_until_ready()


def _tensorflow_step(model, jit_compile: bool):
    """``(step, to_device, wait)``: ``step(x, y)`` trains ``model`` one step in a ``tf.function`` and returns the loss."""
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = model.loss(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step, lambda batch: tf.nest.map_structure(tf.constant, batch), lambda value: value.numpy()


SHORT_LOOP = 30
"""Steps of the short jitted loops of :meth:`JittedLoop.depth_check` (this benchmark's loop length before it took an
epoch's)."""


class JittedLoop:
    """Times loops of a compiled training step (:func:`_jax_step`, :func:`_tensorflow_step`) on one device batch."""

    def __init__(self, args: argparse.Namespace):
        import keras

        recipe = _recipe(args)
        keras.utils.set_random_seed(recipe["training"]["seed"])
        data = recipe.datasets()
        model = recipe.build_model(class_names=data.train_images.class_names)
        x, y = data.train[0]
        model(x, training=False)
        model.optimizer.build(model.trainable_variables)
        if keras.backend.backend() == "jax":
            self.jit_compile = True
            self._run, to_device, self._wait = _jax_step(model)
        else:
            self.jit_compile = recipe.jit_compile()
            self._run, to_device, self._wait = _tensorflow_step(model, self.jit_compile)
        self._x, self._y = to_device(x), to_device(y)
        self.steps = args.steps or len(data.train)
        for _ in range(3):  # compile and warm up
            self._wait(self._run(self._x, self._y))

    def ms_per_step(self, steps: int | None = None) -> tuple[float, float, float]:
        """Wall, CPU (all threads) and this thread's CPU milliseconds per step of one loop of ``steps`` steps
        (default: :attr:`steps`), the device waited for."""
        steps = steps or self.steps
        began = clocks()
        for _ in range(steps):
            loss = self._run(self._x, self._y)
        self._wait(loss)
        return per_step(began, steps)

    def depth_check(self, short: int = SHORT_LOOP, rounds: int = 2) -> dict:
        """The loop thread's CPU ms per step of ``short``-step loops and of :attr:`steps`-step loops, interleaved
        (medians of ``rounds``): how much that figure depends on the steps in flight."""
        figures = {short: [], self.steps: []}
        for _ in range(rounds):
            for steps in figures:
                figures[steps].append(self.ms_per_step(steps)[2])
        return {f"steps_{steps}_host_ms_per_step": _round(statistics.median(values)) for steps, values in figures.items()}


def clocks() -> tuple[float, float, float]:
    """Wall time, CPU time of the process (all threads) and CPU time of the calling thread, in seconds."""
    return time.perf_counter(), time.process_time(), time.thread_time()


def per_step(began: tuple[float, float, float], steps: int) -> tuple[float, float, float]:
    """Milliseconds per step on each of :func:`clocks` since ``began``."""
    return tuple(1000 * (now - then) / steps for now, then in zip(clocks(), began))


def _paired_timer(jitted: JittedLoop, steps: int):
    """A callback that times each epoch's training steps, right after a loop of the jitted step.

    The training steps run from ``on_epoch_begin`` to ``on_test_begin`` (the
    start of validation), the device waited for at both ends; the jitted loop
    runs in ``on_epoch_begin`` before the clock starts, so that each epoch has
    a jitted figure measured in the same minute.
    """
    import keras

    class PairedStepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.fit: list[tuple[float, float, float]] = []  # (wall, CPU, loop thread's CPU) ms per step of each epoch
            self.jitted: list[tuple[float, float, float]] = []
            self._began: tuple[float, float, float] | None = None

        def _wait(self) -> None:
            keras.ops.convert_to_numpy(self.model.trainable_variables[0])

        def on_epoch_begin(self, epoch, logs=None):
            self._wait()
            self.jitted.append(jitted.ms_per_step())
            self._began = clocks()

        def on_test_begin(self, logs=None):
            if self._began is None:  # an evaluation outside fit's epochs
                return
            self._wait()
            self.fit.append(per_step(self._began, steps))
            self._began = None

        def summary(self) -> dict:
            """Medians over the epochs after the first (which compiles), and every epoch's figures."""
            if len(self.fit) < 2:
                raise ValueError(f"Need two epochs or more to leave out the compiling one. Received: {len(self.fit)}")
            fit, jit = self.fit[1:], self.jitted[1:]
            summary = {}
            for clock, prefix in enumerate(("", "cpu_", "host_")):
                over = [f[clock] - j[clock] for f, j in zip(fit, jit)]
                summary.update({
                    f"{prefix}ms_per_step": _round(statistics.median(f[clock] for f in fit)),
                    f"jitted_{prefix}ms_per_step": _round(statistics.median(j[clock] for j in jit)),
                    f"{prefix}over_jit_ms": _round(statistics.median(over)),
                    f"{prefix}over_jit_ms_range": [_round(min(over)), _round(max(over))],
                    f"{prefix}ms_per_step_epochs": [_round(f[clock]) for f in self.fit],
                    f"jitted_{prefix}ms_per_step_epochs": [_round(j[clock]) for j in self.jitted],
                })
            return summary

    return PairedStepTimer()


def _round(value: float) -> float:
    return round(value, 3)


def time_pcw_train(args: argparse.Namespace, jitted: JittedLoop) -> dict:
    """``runner.train`` of the recipe into a temporary run directory, its training steps timed."""
    from pcw_keras.training import runner

    recipe = _recipe(args)
    recipe.datasets()  # sizes the epoch for the timer (train() loads the data again)
    timer = _paired_timer(jitted, recipe.steps_per_epoch)
    with tempfile.TemporaryDirectory() as run_dir:
        runner.train(recipe, run_dir, verbose="auto", extra_callbacks=[timer])
    return {**timer.summary(), "steps_per_epoch": recipe.steps_per_epoch,
            "steps_per_execution": recipe.steps_per_execution()}


def time_model_fit(args: argparse.Namespace, jitted: JittedLoop) -> dict:
    """Plain ``model.fit`` (Keras' defaults, no callbacks but the timer) on the recipe's model and data."""
    import keras

    recipe = _recipe(args, **{"training.steps_per_execution": 1})
    keras.utils.set_random_seed(recipe["training"]["seed"])
    data = recipe.datasets()
    model = recipe.build_model(class_names=data.train_images.class_names)
    timer = _paired_timer(jitted, len(data.train))
    model.fit(data.train, validation_data=data.validation, epochs=recipe.epochs, callbacks=[timer], verbose=0,
              shuffle=False)
    return {**timer.summary(), "steps_per_epoch": len(data.train), "steps_per_execution": 1}


def run_here(args: argparse.Namespace) -> dict:
    """The three figures on this process' backend."""
    import keras

    began = time.perf_counter()
    jitted = JittedLoop(args)
    fit = time_model_fit(args, jitted)
    pcw_train = time_pcw_train(args, jitted)
    loops = [*fit["jitted_ms_per_step_epochs"][1:], *pcw_train["jitted_ms_per_step_epochs"][1:]]
    hosts = [*fit["jitted_host_ms_per_step_epochs"][1:], *pcw_train["jitted_host_ms_per_step_epochs"][1:]]
    return {
        "backend": keras.backend.backend(), "keras": keras.__version__,
        "backend_version": _backend_version(keras.backend.backend()),
        "pcw_train": pcw_train, "model_fit": fit,
        "jitted_step": {"ms_per_step": _round(statistics.median(loops)), "loops": len(loops), "steps_per_loop": jitted.steps,
                        "host_ms_per_step": _round(statistics.median(hosts)), "jit_compile": jitted.jit_compile,
                        "depth_check": jitted.depth_check()},
        "pcw_train_over_jit_ms": pcw_train["over_jit_ms"], "model_fit_over_jit_ms": fit["over_jit_ms"],
        "pcw_train_host_over_jit_ms": pcw_train["host_over_jit_ms"], "model_fit_host_over_jit_ms": fit["host_over_jit_ms"],
        "seconds": round(time.perf_counter() - began, 1),
    }


def _backend_version(backend: str) -> str:
    module = __import__(backend)
    return module.__version__


def _child_argv(python: str, args: argparse.Namespace) -> list[str]:
    argv = [python, os.path.abspath(__file__), "--here", "--recipe", args.recipe, "--data", args.data,
            "--grid", str(args.grid), "--width", str(args.width), "--batch-size", str(args.batch_size),
            "--epochs", str(args.epochs), "--limit", str(args.limit), "--test-limit", str(args.test_limit),
            "--steps", str(args.steps)]
    for text in args.set:
        argv += ["--set", text]
    return argv


def run_backend(backend: str, python: str, args: argparse.Namespace) -> dict:
    """One child process on ``backend``; its JSON, with the load average before it."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"[{time.strftime('%H:%M:%S')}] {backend} ({python})", file=sys.stderr, flush=True)
    load = [round(value, 2) for value in os.getloadavg()]
    result = subprocess.run(_child_argv(python, args), env=env, stdout=subprocess.PIPE, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])  # the last line; pcw train prints before it
    return {**report, "python": python, "load_before": load}


def _pythons(pairs: list[str]) -> dict[str, str]:
    """``BACKEND=PATH`` pairs as a dict; every backend not named runs on this interpreter."""
    pythons = dict.fromkeys(BACKENDS, sys.executable)
    for pair in pairs:
        backend, _, path = pair.partition("=")
        if backend not in BACKENDS or not path:
            raise ValueError(f"--python takes BACKEND=PATH with BACKEND in {BACKENDS}. Received: --python {pair!r}")
        pythons[backend] = path
    return pythons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--python", nargs="+", default=[], metavar="BACKEND=PATH",
                        help="The Python that runs a backend (default: this one), e.g. jax=/work/venv-jax/bin/python.")
    parser.add_argument("--recipe", default="location-3x3-gapnet")
    parser.add_argument("--data", default="cifar10-mini")
    parser.add_argument("--grid", type=int, default=3)
    parser.add_argument("--width", type=float, default=1 / 64)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=4, help="Fit epochs; the first (compiling) is left out.")
    parser.add_argument("--limit", type=int, default=5000, help="Training images, validation split included.")
    parser.add_argument("--test-limit", type=int, default=100, help="Test images of pcw train's final evaluation.")
    parser.add_argument("--steps", type=int, default=0,
                        help="Steps of each loop of the jitted step (one loop per epoch; default 0: an epoch's steps).")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="A recipe override, as pcw train's.")
    parser.add_argument("--out", help="Also write the JSON here.")
    parser.add_argument("--here", action="store_true", help="Measure on this process' KERAS_BACKEND (what each child does).")
    args = parser.parse_args()
    if args.here:
        print(json.dumps(run_here(args)))
        return
    pythons = _pythons(args.python)
    began = time.perf_counter()
    report = {
        "command": " ".join(["python", os.path.relpath(__file__)] + sys.argv[1:]),
        "cpu_model": machine.cpu_model(), "cores": os.cpu_count(),
        "recipe": args.recipe, "data": args.data, "grid": args.grid, "width": args.width, "batch_size": args.batch_size,
        "epochs": args.epochs, "overrides": args.set,
        "backends": {backend: run_backend(backend, pythons[backend], args) for backend in args.backends},
    }
    report["seconds"] = round(time.perf_counter() - began, 1)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        from pcw_keras.io import write_text_atomic

        write_text_atomic(args.out, text + "\n")


if __name__ == "__main__":
    main()
