"""Choose AugShift's weight (lambda), fill and shift range by a small experiment on CIFAR-10.

Stage 1 trains the plain ResNet-18 and AugShift with ``weight`` in
``--weights`` (zero fill, 4-pixel shifts), all with the same recipe, data,
seed and epochs. The selected weight is the one with the highest validation
consistency among those whose validation accuracy is within ``--tolerance``
of the best AugShift accuracy. Stage 2 trains that weight with reflect fill
and with 8-pixel shifts, and the same rule picks among the three. Every score
is measured on the *validation* split (the test split is kept for the final
comparison). One JSON line per run.

Run (about 15 minutes on 2 busy cores)::

    python scripts/augshift_study.py --data ../shared/data/cifar10-jpeg.tar.gz \\
        --out docs/studies/augshift_study.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import time

import keras

from pcw_keras import recipes
from pcw_keras.evaluation import consistency


def run(name: str, overrides: dict, args) -> dict:
    recipe = recipes.load(name, **{
        "data.source": args.data, "data.limit": args.limit, "model.width": args.width,
        "training.epochs": args.epochs, "training.seed": args.seed, "training.jit_compile": False, **overrides,
    })
    keras.utils.set_random_seed(args.seed)
    data = recipe.datasets()
    model = recipe.build_model(class_names=data.train_images.class_names)
    start = time.perf_counter()
    history = model.fit(data.train, validation_data=data.validation, epochs=recipe.epochs, verbose=2)
    seconds = time.perf_counter() - start
    scores = consistency(model, data.validation_images, max_shift=4, passes=args.passes, seed=args.seed, verbose=0)
    return {
        "recipe": name, **{k: v for k, v in overrides.items()}, "width": args.width, "train_images": len(data.train_images),
        "epochs": recipe.epochs, "seed": args.seed, "val_accuracy": scores["accuracy"],
        "val_consistency": scores["consistency"], "val_accuracy_shifted": scores["accuracy_shifted"],
        "train_loss_last": float(history.history["loss"][-1]), "train_seconds": round(seconds, 1),
    }


def record(row: dict, path: str) -> None:
    print(json.dumps(row), flush=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 source (the JPEG tarball).")
    parser.add_argument("--out", default=os.path.join("docs", "studies", "augshift_study.jsonl"))
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--limit", type=int, default=5000, help="Class-balanced training subset (10%% held out).")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0, 10.0, 100.0])
    parser.add_argument("--tolerance", type=float, default=0.02, help="Accuracy a weight may lose against the best.")
    args = parser.parse_args()

    record(run("cifar10-resnet18", {}, args), args.out)
    stage1 = []
    for weight in args.weights:
        overrides = {"augshift.weight": weight, "augshift.fill": "zero", "augshift.max_shift": 4}
        stage1.append(run("cifar10-resnet18-augshift", overrides, args))
        record(stage1[-1], args.out)
    chosen = select(stage1, args.tolerance)
    print(f"stage 1 chose weight {chosen['augshift.weight']}", flush=True)
    stage2 = [chosen]
    for overrides in ({"augshift.fill": "reflect", "augshift.max_shift": 4}, {"augshift.fill": "zero", "augshift.max_shift": 8}):
        stage2.append(run("cifar10-resnet18-augshift", {**overrides, "augshift.weight": chosen["augshift.weight"]}, args))
        record(stage2[-1], args.out)
    final = select(stage2, args.tolerance)
    print("chose " + ", ".join(f"{k}={final[k]}" for k in ("augshift.weight", "augshift.fill", "augshift.max_shift")), flush=True)


def select(rows: list[dict], tolerance: float) -> dict:
    """The most consistent run among those within ``tolerance`` of the best validation accuracy."""
    best_accuracy = max(row["val_accuracy"] for row in rows)
    return max((row for row in rows if row["val_accuracy"] >= best_accuracy - tolerance), key=lambda row: row["val_consistency"])


if __name__ == "__main__":
    main()
