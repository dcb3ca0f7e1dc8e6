"""Training-step and inference throughput of GAPNet and PermuteNet; prints one JSON object.

For each configuration (network, grid, width, XLA on/off, precision) it times
``--steps`` training steps and inference batches of ``--batch-size`` canvases
(after warm-up, so compilation is excluded) and reports the median images/s,
the FLOPs per image counted from the model (:func:`pcw_keras.models.count_flops`;
a training step is counted as three forward passes) and the model FLOP
utilisation: achieved FLOP/s over the matrix-product rate of the row's
compute dtype (float32, or bfloat16 under ``mixed_bfloat16``) measured in the
same run, by the same backend. Beside Keras' own inference of the trained
model it times the inference form that ``pcw evaluate``, ``rank``, ``attack``
and ``consistency`` run (``infer_form_images_per_s``:
:func:`pcw_keras.models.inference.inference_model`, BatchNorm folded and the
weights held in bfloat16 for ``mixed_bfloat16`` rows, float32 otherwise).

Backends: ``--backends tensorflow jax`` (the default: both) re-runs this
script once per backend in a child process with ``KERAS_BACKEND`` set (Keras
picks its backend once, at import); each child prints its own JSON and the
parent prints one object with every backend's rows and, per configuration,
the ratio JAX / TensorFlow. ``--backends`` also takes ``jax-no-ynn-conv``:
JAX with ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``
(XLA:CPU's convolutions kept off YNNPACK; measured faster to train on CPU).
JAX always compiles (``jax.jit``), so its rows
are ``jit: true`` whatever ``--jit`` says; ``--jit`` applies to TensorFlow
(whose measured-faster CPU setting is off).

Peer: ``--peer PATH_TO_TORCH_PYTHON`` runs ``benchmarks/peer_torch_bench.py``
with that interpreter in PyTorch's best CPU settings (``--channels-last``; plus
``--bf16`` autocast for ``mixed_bfloat16`` rows), interleaved with the Keras
runs: peer, keras-tensorflow, keras-jax, peer (``--rounds N`` repeats the
Keras runs and a peer run N times), so that the ratios against the median of
the peer runs are measured in the same minutes. Peer runs exist for width 1.0
(the peer has no width option) and the float32 / mixed_bfloat16 precisions.

Usage::

    python benchmarks/train_throughput.py --nets gapnet permutenet --grids 3 7 \
        --widths 1.0 0.125 --jit on off --precisions float32 mixed_bfloat16
    python benchmarks/train_throughput.py --nets gapnet --widths 1.0 --jit off \
        --precisions float32 mixed_bfloat16 --backends tensorflow jax \
        --peer /work/venvtorch/bin/python --steps 5 --warmup 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from pcw_keras import machine

#: Keras runs the parent can start: name -> (KERAS_BACKEND, extra environment of the child).
#: ``jax-no-ynn-conv`` keeps XLA:CPU's convolutions off YNNPACK (jaxlib 0.10 sends
#: them there by default; its backward convolutions measured about half the speed).
BACKEND_VARIANTS = {
    "tensorflow": ("tensorflow", {}),
    "jax": ("jax", {}),
    "jax-no-ynn-conv": ("jax", {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"}),
}
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_torch_bench.py")
#: The inference form's precision for each training precision (:mod:`pcw_keras.models.inference`).
INFERENCE_FORM = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float32"}
#: The peer's autocast setting for each Keras precision it has a counterpart for.
PEER_PRECISIONS = {"float32": False, "mixed_bfloat16": True}


def median_seconds(run, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(net: str, grid: int, width: float, jit: bool, precision: str, batch: int, steps: int, warmup: int) -> dict:
    import keras
    import numpy as np

    from pcw_keras.models import count_flops, create_model
    from pcw_keras.models.inference import inference_model

    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        side = 32 * grid
        model = create_model(f"{net}_resnet18", num_classes=grid * grid, input_shape=(side, side, 3), width=width)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.999),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        rng = np.random.default_rng(0)
        x = rng.normal(size=(batch, side, side, 3)).astype("float32")
        y = rng.integers(0, grid * grid, size=(batch,))
        train = median_seconds(lambda: model.train_on_batch(x, y), steps, warmup)
        infer = median_seconds(lambda: model.predict_on_batch(x), steps, warmup)
        flops = count_flops(model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # What pcw evaluate, rank, attack and consistency run: BatchNorm folded, weights in the compute dtype.
    form = inference_model(model, INFERENCE_FORM[precision])
    infer_form = median_seconds(lambda: form.predict_on_batch(x), steps, warmup)
    return {
        "net": net, "grid": grid, "input": 32 * grid, "width": width, "jit": jit, "precision": precision,
        "batch": batch, "forward_gflop_per_image": round(flops / 1e9, 4),
        "train_images_per_s": round(batch / train, 2), "infer_images_per_s": round(batch / infer, 2),
        "infer_form_images_per_s": round(batch / infer_form, 2), "infer_form_precision": INFERENCE_FORM[precision],
        "train_gflops": round(3 * flops * batch / train / 1e9, 2), "infer_gflops": round(flops * batch / infer / 1e9, 2),
    }


def run_here(args: argparse.Namespace) -> dict:
    """Measure every configuration on the backend this process's Keras runs on."""
    import keras

    from pcw_keras.models.flops import matmul_gflops

    # MFU of each row is over the matrix-product rate of its compute dtype.
    compute_dtypes = {keras.dtype_policies.get(precision).compute_dtype for precision in args.precisions}
    rates = {dtype: matmul_gflops(2048, dtype=dtype) for dtype in sorted(compute_dtypes | {"float32"})}
    jit_values = [True] if keras.backend.backend() == "jax" else [j == "on" for j in args.jit]
    results = []
    for net in args.nets:
        for grid in args.grids:
            for width in args.widths:
                for jit in jit_values:
                    for precision in args.precisions:
                        row = measure(net, grid, width, jit, precision, args.batch_size, args.steps, args.warmup)
                        rate = rates[keras.dtype_policies.get(precision).compute_dtype]
                        row["train_mfu"] = round(row["train_gflops"] / rate, 3)
                        row["infer_mfu"] = round(row["infer_gflops"] / rate, 3)
                        results.append(row)
                        print(json.dumps(row), flush=True, file=sys.stderr)
    return {
        "backend": keras.backend.backend(), "keras": keras.__version__, "cpu": machine.cpu_model(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "matmul_gflops": round(rates["float32"], 1),
        "matmul_gflops_by_dtype": {dtype: round(rate, 1) for dtype, rate in rates.items()}, "results": results,
    }


def _child_argv(args: argparse.Namespace, backend: str) -> list:
    python = args.jax_python if backend == "jax" and args.jax_python else sys.executable
    argv = [
        python, os.path.abspath(__file__), "--here",
        "--nets", *args.nets, "--grids", *map(str, args.grids), "--widths", *map(str, args.widths),
        "--jit", *args.jit, "--precisions", *args.precisions,
        "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
    ]
    return argv


def _load() -> list:
    """The 1-minute load average before a run (the machines are shared): [1, 5, 15] minutes."""
    return [round(value, 2) for value in os.getloadavg()]


def run_backend(variant: str, args: argparse.Namespace) -> dict:
    """One child process on the backend of ``variant``; its JSON (its per-row progress goes to stderr)."""
    backend, extra = BACKEND_VARIANTS[variant]
    env = dict(os.environ, KERAS_BACKEND=backend, **extra)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"[{time.strftime('%H:%M:%S')}] keras on {variant} {extra or ''}", file=sys.stderr, flush=True)
    began, load = time.time(), _load()
    out = subprocess.run(_child_argv(args, backend), env=env, stdout=subprocess.PIPE, text=True, check=True).stdout
    result = json.loads(out)
    result["began"], result["seconds"] = time.strftime("%H:%M:%S", time.gmtime(began)), round(time.time() - began, 1)
    result["load_before"], result["variant"], result["child_env"] = load, variant, extra
    return result


def run_peer(python: str, net: str, grid: int, precision: str, args: argparse.Namespace) -> dict:
    """One run of the PyTorch peer in its best CPU settings for ``precision``."""
    argv = [python, PEER_SCRIPT, "--grid", str(grid), "--batch", str(args.batch_size), "--steps", str(args.steps),
            "--warmup", str(args.warmup), "--channels-last"]
    if PEER_PRECISIONS[precision]:
        argv.append("--bf16")
    if net == "permutenet":
        argv.append("--permute")
    print(f"[{time.strftime('%H:%M:%S')}] peer {net} grid {grid} {precision}", file=sys.stderr, flush=True)
    began, load = time.strftime("%H:%M:%S", time.gmtime()), _load()
    row = json.loads(subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True).stdout)
    row.update(net=net, precision=precision, began=began, load_before=load)
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def _key(row: dict) -> tuple:
    return (row["net"], row["grid"], row["width"], row["precision"])


def _median_rows(runs: list) -> list:
    """Per configuration and jit, the median images/s over the runs (rounds) of one backend."""
    groups: dict = {}
    for run in runs:
        for row in run["results"]:
            groups.setdefault(_key(row) + (row["jit"],), []).append(row)
    rows = []
    for group in groups.values():
        row = dict(group[0])
        for field in ("train_images_per_s", "infer_images_per_s", "infer_form_images_per_s", "train_gflops",
                      "infer_gflops", "train_mfu", "infer_mfu"):
            row[field] = round(statistics.median(r[field] for r in group), 3)
        row["runs"] = len(group)
        row["train_images_per_s_runs"] = [r["train_images_per_s"] for r in group]
        row["infer_images_per_s_runs"] = [r["infer_images_per_s"] for r in group]
        row["infer_form_images_per_s_runs"] = [r["infer_form_images_per_s"] for r in group]
        rows.append(row)
    return rows


def compare(args: argparse.Namespace) -> dict:
    """Run the backends (and the peer) in child processes, interleaved; the combined report."""
    peer_configs = [(net, grid, precision) for net in args.nets for grid in args.grids for precision in args.precisions
                    if precision in PEER_PRECISIONS] if args.peer and 1.0 in args.widths else []
    peer_runs, keras_runs = [], {backend: [] for backend in args.backends}

    def peer_round():
        for net, grid, precision in peer_configs:
            peer_runs.append(run_peer(args.peer, net, grid, precision, args))

    peer_round()
    for _ in range(args.rounds):
        for backend in args.backends:
            keras_runs[backend].append(run_backend(backend, args))
        peer_round()

    rows = {backend: _median_rows(runs) for backend, runs in keras_runs.items()}
    peer = []
    for net, grid, precision in peer_configs:
        runs = [r for r in peer_runs if (r["net"], r["grid"], r["precision"]) == (net, grid, precision)]
        peer.append({
            "net": net, "grid": grid, "width": 1.0, "precision": precision, "channels_last": True,
            "bf16_autocast": PEER_PRECISIONS[precision], "runs": len(runs),
            "train_images_per_s": round(statistics.median(r["train_images_per_s"] for r in runs), 2),
            "infer_images_per_s": round(statistics.median(r["infer_images_per_s"] for r in runs), 2),
            "train_images_per_s_runs": [r["train_images_per_s"] for r in runs],
            "infer_images_per_s_runs": [r["infer_images_per_s"] for r in runs],
        })
    peer_by_key = {(p["net"], p["grid"], p["width"], p["precision"]): p for p in peer}
    for backend_rows in rows.values():
        for row in backend_rows:
            match = peer_by_key.get(_key(row))
            if match:
                row["train_vs_peer"] = round(row["train_images_per_s"] / match["train_images_per_s"], 3)
                row["infer_vs_peer"] = round(row["infer_images_per_s"] / match["infer_images_per_s"], 3)
                row["infer_form_vs_peer"] = round(row["infer_form_images_per_s"] / match["infer_images_per_s"], 3)
    ratios = []
    for variant in [v for v in rows if BACKEND_VARIANTS[v][0] == "jax"] if "tensorflow" in rows else []:
        jax_by_key = {_key(row): row for row in rows[variant]}
        for tf_row in rows["tensorflow"]:
            jax_row = jax_by_key.get(_key(tf_row))
            if jax_row:
                ratios.append({
                    "jax": variant, "net": tf_row["net"], "grid": tf_row["grid"], "width": tf_row["width"],
                    "precision": tf_row["precision"], "tensorflow_jit": tf_row["jit"],
                    "train_jax_over_tensorflow": round(jax_row["train_images_per_s"] / tf_row["train_images_per_s"], 3),
                    "infer_jax_over_tensorflow": round(jax_row["infer_images_per_s"] / tf_row["infer_images_per_s"], 3),
                })
    return {
        "command": " ".join([os.path.basename(sys.executable)] + [os.path.relpath(__file__)] + sys.argv[1:]),
        "machine": platform.processor() or platform.machine(), "cpu": machine.cpu_model(), "cpus": os.cpu_count(),
        "env": {k: os.environ[k] for k in ("TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS", "OMP_NUM_THREADS") if k in os.environ},
        "backends": {backend: {k: v for k, v in runs[0].items() if k != "results"} | {
            "matmul_gflops_by_dtype_runs": [run["matmul_gflops_by_dtype"] for run in runs]}
            for backend, runs in keras_runs.items()},
        "rows": [dict(row, backend=backend, keras_backend=BACKEND_VARIANTS[backend][0]) for backend, backend_rows in rows.items() for row in backend_rows],
        "jax_over_tensorflow": ratios,
        "peer": peer, "peer_runs": peer_runs,
        "keras_runs": keras_runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["gapnet", "permutenet"], choices=["gapnet", "permutenet"])
    parser.add_argument("--grids", nargs="+", type=int, default=[3])
    parser.add_argument("--widths", nargs="+", type=float, default=[1.0, 0.125])
    parser.add_argument("--jit", nargs="+", default=["on", "off"], choices=["on", "off"],
                        help="TensorFlow's XLA setting(s); JAX always compiles.")
    parser.add_argument("--precisions", nargs="+", default=["float32"], help="Keras dtype policies, e.g. mixed_bfloat16.")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"], choices=list(BACKEND_VARIANTS),
                        help="Keras backends, each measured in its own child process (jax-no-ynn-conv: JAX with "
                             "XLA_FLAGS=" + BACKEND_VARIANTS["jax-no-ynn-conv"][1]["XLA_FLAGS"] + ").")
    parser.add_argument("--peer", metavar="PATH_TO_TORCH_PYTHON",
                        help="Python with torch: run benchmarks/peer_torch_bench.py (channels_last; bf16 autocast for "
                             "mixed_bfloat16) before and after the Keras runs; ratios against the peer's median.")
    parser.add_argument("--jax-python", metavar="PATH",
                        help="Python of a JAX environment for the JAX runs (default: this one, which must have JAX).")
    parser.add_argument("--rounds", type=int, default=1, help="Keras runs per backend, each followed by a peer run.")
    parser.add_argument("--here", action="store_true",
                        help="Measure in this process on its KERAS_BACKEND (what each child does); no peer.")
    args = parser.parse_args()
    report = run_here(args) if args.here else compare(args)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
