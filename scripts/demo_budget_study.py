"""Learning curves that chose `pcw demo`'s budget (width, epochs, data size).

Trains GAPNet and PermuteNet on one canvas task for several epochs and prints
one JSON line per epoch: seed, network, epoch, wall seconds, test accuracy
(mean over placements). Run, e.g.:

    python scripts/demo_budget_study.py --task image --epochs 10 --width 0.125 \
        --source ../shared/data/cifar10-jpeg.tar.gz --limit 5000 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import time

import keras

from pcw_keras import recipes
from pcw_keras.evaluation import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="image", choices=("image", "location"))
    parser.add_argument("--grid", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--source", default="cifar10-mini")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--test-limit", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--nets", nargs="+", default=["gapnet", "permutenet"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    for seed in args.seeds:
        for net in args.nets:
            recipe = recipes.load(
                f"{args.task}-{args.grid}x{args.grid}-{net}",
                **{"data.source": args.source, "data.limit": args.limit, "data.test_limit": args.test_limit,
                   "model.width": args.width, "training.seed": seed, "evaluation.passes": args.passes,
                   "optimizer.learning_rate": args.learning_rate},
            )
            keras.utils.set_random_seed(seed)
            data = recipe.datasets()
            model = recipe.build_model(class_names=data.train_images.class_names)
            start = time.perf_counter()
            for epoch in range(args.epochs):
                model.fit(data.train, epochs=epoch + 1, initial_epoch=epoch, verbose=0)
                train_seconds = time.perf_counter() - start
                accuracy = evaluate(model, data.test_images, task=recipe["task"], evaluation=recipe["evaluation"],
                                    seed=seed)["accuracy"]
                print(json.dumps({"seed": seed, "net": net, "task": args.task, "width": args.width,
                                  "epoch": epoch + 1, "train_seconds": round(train_seconds, 1),
                                  "test_accuracy": round(accuracy, 4)}), flush=True)
                start = time.perf_counter() - train_seconds


if __name__ == "__main__":
    main()
