"""Top-k canvas-ranked versus k random channels off, layer by layer, for a location run.

Usage:
    python scripts/channel_attack_layers.py RUN_DIR [--layers stage1,stage2,stage3,stage4]
        [--top 5%,10%,25%] [--random-draws 20] [--rank-limit 200] [--limit 100] [--out FILE.jsonl]

For each layer: the `canvas` ranking of the package (``rank_position_channels`` on
``--rank-limit`` training images, each in every cell), then location accuracy and loss
on ``--limit`` test images, each in every cell, with k channels of the layer set to zero:

- the top k of the package's rankings ``overall`` (share of variance explained by the
  cell) and ``position_std`` (cell effect in activation units);
- the top k of three other position-versus-semantics scores computed here from the same
  pooled values: ``f_ratio`` (cell variance over residual variance), ``std_difference``
  (cell-effect std minus patch-effect std) and ``max_cell_z`` (largest standardised cell
  effect: the channel most specific to some cell);
- the k channels with the *lowest* share (a control);
- k random channels, drawn as ``pcw attack --seed 0`` draws them.

The part of the model after the layer runs on the layer's stored outputs: zeroing
is the same as ``pcw attack --layer``, at the cost of the tail's forward pass only.
Where the tail is affine in the layer (``stage4`` of the package's ResNets),
``accuracy_bound`` gives the lowest accuracy any k channels could leave.
Appends one JSON line per layer to ``--out`` and prints a table per layer.
"""
import argparse
import json
import os

import keras
import numpy as np

from pcw_keras.commands.attack import parse_ks
from pcw_keras.commands.rank import resolve_target
from pcw_keras.evaluation.attacks import accuracy_bound
from pcw_keras.evaluation.inputs import canvases
from pcw_keras.evaluation.position_channels import rank_position_channels
from pcw_keras.evaluation.task_metrics import _cross_entropy


def every_cell(images: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image in each cell (cell-major) and the cells as labels."""
    inputs = np.concatenate([canvases(images, cell, grid) for cell in range(grid * grid)])
    return inputs, np.repeat(np.arange(grid * grid), len(images))


def predict(model: keras.Model, inputs: np.ndarray, batch_size: int = 300) -> np.ndarray:
    return np.concatenate([keras.ops.convert_to_numpy(model.predict_on_batch(inputs[i:i + batch_size]))
                           for i in range(0, len(inputs), batch_size)])


def extra_scores(pooled: np.ndarray) -> dict:
    """Scores from pooled values ``(patches, cells, channels)``, higher = more position than semantics."""
    mean = pooled.mean(axis=(0, 1))
    cell_effect, patch_effect = pooled.mean(axis=0) - mean, pooled.mean(axis=1) - mean
    total = pooled.var(axis=(0, 1))
    position, semantics = (cell_effect ** 2).mean(0), (patch_effect ** 2).mean(0)
    residual = np.maximum(total - position - semantics, 1e-12)
    safe = np.where(total > 1e-12, total, 1.0)
    return {
        "f_ratio": position / residual,
        "std_difference": np.sqrt(position) - np.sqrt(semantics),
        "max_cell_z": np.where(total > 1e-12, cell_effect / np.sqrt(safe), 0.0).max(0),
    }


def order(scores: np.ndarray) -> list[int]:
    """Channels by decreasing score (ties: lower index first), as the package orders them."""
    return [int(c) for c in np.lexsort((np.arange(len(scores)), -scores))]


def study_layer(model, layer, train_images, test_images, grid, top, draws, seed) -> dict:
    ranking = rank_position_channels(model, train_images, layer=layer, method="canvas", grid=grid, verbose=False)
    tensor = model.get_layer(layer).output
    body, tail = keras.Model(model.inputs, tensor), keras.Model(tensor, model.outputs[0])
    train_inputs, _ = every_cell(train_images, grid)
    maps = predict(body, train_inputs).astype("float64")
    pooled = maps.mean(axis=tuple(range(1, maps.ndim - 1))) if maps.ndim > 2 else maps
    pooled = pooled.reshape(grid * grid, len(train_images), -1).transpose(1, 0, 2)
    test_inputs, labels = every_cell(test_images, grid)
    test_maps = predict(body, test_inputs)
    num_channels = test_maps.shape[-1]

    def metric(channels) -> dict:
        masked = test_maps.copy()
        masked[..., list(channels)] = 0.0
        logits = predict(tail, masked)
        return {"accuracy": float(np.mean(np.argmax(logits, -1) == labels)),
                "loss": float(_cross_entropy(logits, labels).mean())}

    orders = {"overall": ranking.top(num_channels), "position_std": ranking.top(num_channels, "position_std")}
    orders.update({name: order(scores) for name, scores in extra_scores(pooled).items()})
    orders["lowest_share (control)"] = ranking.top(num_channels)[::-1]
    ks = parse_ks(top, num_channels)
    try:
        bounds = accuracy_bound(model, test_inputs, labels, ks, layer=layer)
    except ValueError:
        bounds = {}
    rng = np.random.default_rng(seed)
    rows = []
    for k in ks:
        random = [metric(rng.choice(num_channels, size=k, replace=False)) for _ in range(draws)]
        accuracy, loss = np.array([r["accuracy"] for r in random]), np.array([r["loss"] for r in random])
        rows.append({
            "k": k, "top": {name: metric(channels[:k]) for name, channels in orders.items()},
            "random": {"accuracy_mean": float(accuracy.mean()), "accuracy_std": float(accuracy.std(ddof=1)),
                       "loss_mean": float(loss.mean()), "loss_std": float(loss.std(ddof=1)),
                       "accuracy": accuracy.tolist()},
            "accuracy_bound": bounds.get(k),
        })
    return {"layer": layer, "num_channels": num_channels, "baseline": metric([]), "random_draws": draws, "rows": rows}


def table(result: dict) -> str:
    names = list(result["rows"][0]["top"])
    lines = [f"{result['run']} `{result['layer']}` ({result['num_channels']} channels); accuracy % (loss)",
             "| k | " + " | ".join(names) + f" | random ({result['random_draws']} draws) | any k channels (bound) |",
             "|---:|" + "---:|" * (len(names) + 2)]
    for row in result["rows"]:
        cells = [f"{100 * row['top'][n]['accuracy']:.1f} ({row['top'][n]['loss']:.3g})" for n in names]
        r = row["random"]
        cells.append(f"{100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f} ({r['loss_mean']:.3g})")
        bound = row["accuracy_bound"]
        cells.append("-" if bound is None else f">= {100 * bound:.1f}")
        lines.append(f"| {row['k']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--layers", default="stage1,stage2,stage3,stage4")
    parser.add_argument("--top", default="5%,10%,25%")
    parser.add_argument("--random-draws", type=int, default=20)
    parser.add_argument("--rank-limit", type=int, default=200)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="JSON lines file to append to")
    args = parser.parse_args()
    target = resolve_target(args.run_dir, "best", None, None, None, None)
    if target.task != "location":
        raise SystemExit(f"A location run is needed. Received: task={target.task!r}")
    model = target.load_model()
    train_images = target.load_images("train", args.rank_limit).images
    test_images = target.load_images("test", args.limit).images
    for layer in args.layers.split(","):
        result = {"run": os.path.normpath(args.run_dir), **study_layer(
            model, layer, train_images, test_images, target.grid, args.top, args.random_draws, args.seed)}
        print(table(result), flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
