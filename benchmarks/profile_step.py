"""Where a training step's (or an inference batch's) time goes; prints one JSON summary.

Builds the model of ``benchmarks/train_throughput.py`` (same seeds, optimizer,
loss, data), warms up, then records ``--steps`` training steps and inference
batches with the backend's profiler (``tf.profiler.experimental`` under
TensorFlow, ``jax.profiler`` under JAX; both write an XSpace trace) and sums,
over the host threads, the *self* time of every traced event (its duration
less its nested events'). Op events are grouped by kind: the op type after the
``:`` of a TensorFlow op event (``name:Conv2DBackpropFilter``), or the HLO
instruction name without its ``.N`` suffix under JAX/XLA (``ynn_fusion``,
``convolution``, ``loop_fusion``...). Reports per kind milliseconds of thread
time per step and share of all op time (top ``--top`` kinds), the share of
convolutions and matrix products, and apart from the ops the runtime events
(the Python thread waiting on the step, executor bookkeeping).

Usage (the backend comes from ``KERAS_BACKEND``)::

    KERAS_BACKEND=tensorflow python benchmarks/profile_step.py --precision mixed_bfloat16 [--jit]
    KERAS_BACKEND=jax python benchmarks/profile_step.py --precision float32
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from pcw_keras import machine  # noqa: E402
from pcw_keras.models import create_model  # noqa: E402


def _events_from_xspace(path: str):
    """(plane name, line name, event name, start ns, duration ns) of every event in an XSpace file."""
    try:
        from jax._src.lib import _profile_data  # noqa: F401  # jaxlib's parser, present with JAX

        from jax.profiler import ProfileData

        data = ProfileData.from_file(path)
        for plane in data.planes:
            for line in plane.lines:
                for event in line.events:
                    yield plane.name, line.name, event.name, event.start_ns, event.duration_ns
        return
    except ImportError:
        pass
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as handle:
        space.ParseFromString(handle.read())
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            base = line.timestamp_ns
            for event in line.events:
                yield plane.name, line.name, names.get(event.metadata_id, "?"), base + event.offset_ps // 1000, event.duration_ps // 1000


def _self_times(events):
    """Self time (ns) per event name, nesting resolved per (plane, line)."""
    by_line = collections.defaultdict(list)
    for plane, line, name, start, duration in events:
        if plane.startswith("/host:") or plane.startswith("/device:CPU"):
            by_line[(plane, line)].append((start, -duration, name))
    totals = collections.Counter()
    for items in by_line.values():
        items.sort()
        stack = []  # [end, name, self]
        for start, negative, name in items:
            duration = -negative
            while stack and stack[-1][0] <= start:
                end, done, own = stack.pop()
                totals[done] += own
            if stack:
                stack[-1][2] -= min(duration, stack[-1][0] - start)
            stack.append([start + duration, name, duration])
        for end, done, own in stack:
            totals[done] += own
    return totals


_TF_OP = re.compile(r"^[^\s:]+:[A-Z_][A-Za-z0-9_]*$")  # "scope/name:OpType"
_HLO_OP = re.compile(r"^[a-z][a-z0-9_\-]*(\.\d+)*$")  # "loop_fusion.3", "convolution", "ynn_fusion"
_MATRIX = re.compile(r"conv|dot|matmul|gemm|ynn_fusion|xnn_fusion|onednn", re.IGNORECASE)


def _kind(name: str, backend: str) -> tuple:
    """(kind, is_op): the op type of an op event, or the event name of runtime/Python/waiting events."""
    if backend == "tensorflow" and _TF_OP.match(name):
        return name.rsplit(":", 1)[1], True
    if backend == "jax" and _HLO_OP.match(name):
        return re.sub(r"(\.\d+)+$", "", name), True
    if re.search(r"^\$|\.py[:(]", name):
        return "python", False
    return name, False


def profile(run, steps: int, logdir: str) -> dict:
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.profiler.start_trace(logdir)
        began = time.perf_counter()
        for _ in range(steps):
            run()
        wall = time.perf_counter() - began
        jax.profiler.stop_trace()
    else:
        import tensorflow as tf

        tf.profiler.experimental.start(logdir)
        began = time.perf_counter()
        for _ in range(steps):
            run()
        wall = time.perf_counter() - began
        tf.profiler.experimental.stop()
    files = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
    if not files:
        raise RuntimeError(f"the profiler wrote no *.xplane.pb under {logdir}")
    totals = _self_times(_events_from_xspace(files[-1]))
    ops, runtime = collections.Counter(), collections.Counter()
    for name, ns in totals.items():
        kind, is_op = _kind(name, backend)
        (ops if is_op else runtime)[kind] += ns
    return {"wall_ms_per_step": round(1e3 * wall / steps, 1), "ops": ops, "runtime": runtime}


def summarise(result: dict, steps: int, top: int) -> dict:
    """Op time per kind (shares of all op time), the matrix-product share, and the runtime events apart."""
    ops, runtime = result["ops"], result["runtime"]
    op_total = sum(ops.values()) or 1
    matrix = sum(ns for kind, ns in ops.items() if _MATRIX.search(kind))
    ms = lambda ns: round(ns / 1e6 / steps, 2)  # noqa: E731
    return {
        "wall_ms_per_step": result["wall_ms_per_step"],
        "op_thread_ms_per_step": ms(op_total),
        "convolution_and_matmul_share": round(matrix / op_total, 3),
        "top_ops": [{"kind": kind, "ms_per_step": ms(ns), "share": round(ns / op_total, 3)}
                    for kind, ns in ops.most_common(top)],
        "runtime_events": [{"name": name[:120], "ms_per_step": ms(ns)} for name, ns in runtime.most_common(6)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="gapnet", choices=["gapnet", "permutenet"])
    parser.add_argument("--grid", type=int, default=3)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true", help="TensorFlow: XLA on (JAX always compiles)")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--only", choices=["train", "infer"], help="profile only one of the two")
    parser.add_argument("--inference-form", action="store_true",
                        help="infer: the inference form that pcw evaluate runs (BatchNorm folded, weights in the "
                             "compute dtype: bfloat16 under mixed_bfloat16)")
    args = parser.parse_args()
    keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(0)
    side = 32 * args.grid
    model = create_model(f"{args.net}_resnet18", num_classes=args.grid ** 2, input_shape=(side, side, 3), width=args.width)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5, beta_2=0.999),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=args.jit)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch_size, side, side, 3)).astype("float32")
    y = rng.integers(0, args.grid ** 2, size=(args.batch_size,))
    inferred = model
    if args.inference_form:
        from pcw_keras.models.inference import inference_model

        inferred = inference_model(model, "bfloat16" if args.precision == "mixed_bfloat16" else "float32")
    runs = {"train": lambda: model.train_on_batch(x, y), "infer": lambda: inferred.predict_on_batch(x)}
    report = {**machine.describe(), "backend": keras.backend.backend(), "keras": keras.__version__, "net": args.net, "grid": args.grid,
              "width": args.width, "precision": args.precision, "jit": args.jit or keras.backend.backend() == "jax",
              "batch": args.batch_size, "steps": args.steps, "inference_form": args.inference_form,
              "env": {k: os.environ[k] for k in ("TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS", "OMP_NUM_THREADS") if k in os.environ}}
    for what, run in runs.items():
        if args.only and what != args.only:
            continue
        for _ in range(args.warmup):
            run()
        with tempfile.TemporaryDirectory() as logdir:
            result = profile(run, args.steps, logdir)
        report[what] = summarise(result, args.steps, args.top)
        report[what]["images_per_s_while_profiled"] = round(args.batch_size * 1e3 / result["wall_ms_per_step"], 2)
        print(f"{what}: {report[what]['wall_ms_per_step']} ms/step", file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
