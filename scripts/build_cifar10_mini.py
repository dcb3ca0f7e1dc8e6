"""Build ``pcw_keras/data/assets/cifar10-mini.npz``, the embedded CIFAR-10 subset.

How the shipped asset was made::

    python scripts/build_cifar10_mini.py \\
        --source ../shared/data/cifar10-jpeg.tar.gz --seed 0

- source: ``cifar10-jpeg.tar.gz``, CIFAR-10 as
  ``cifar10-jpeg/{train,test}/<class>/NNNN.jpg`` (50,000 / 10,000 JPEGs);
- draw: per split and class, the file names sorted, then
  ``numpy.random.default_rng(seed).choice(..., replace=False)`` of 500 (train)
  or 100 (test) names, classes in sorted order, seed 0; kept in sorted order;
- storage: the **original JPEG bytes**, not re-encoded. Per split ``<s>``:
  ``<s>_jpeg`` (all files concatenated, uint8), ``<s>_offsets`` (int64,
  N + 1 boundaries), ``<s>_labels`` (int64), ``<s>_files`` (member names);
  plus ``class_names``. Written with ``numpy.savez_compressed``: the JPEG
  headers repeat from file to file, so zlib shrinks the bytes about 3x.

``load_split("cifar10-mini", split)`` decodes it (5,000 train, 1,000 test).
"""
from __future__ import annotations

import argparse
import os
import tarfile

import numpy as np

COUNTS = {"train": 500, "test": 100}
DEFAULT_OUT = os.path.join(
    os.path.dirname(__file__), "..", "pcw_keras", "data", "assets", "cifar10-mini.npz"
)


def read_members(source: str) -> dict[tuple[str, str], dict[str, bytes]]:
    """``{(split, class): {member name: bytes}}`` of every JPEG in the archive."""
    groups: dict[tuple[str, str], dict[str, bytes]] = {}
    with tarfile.open(source, "r:*") as archive:
        for member in archive:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or not parts[-1].lower().endswith(".jpg"):
                continue
            split, name = parts[-3], parts[-2]
            if split in COUNTS:
                groups.setdefault((split, name), {})[member.name] = archive.extractfile(member).read()
    return groups


def build(source: str, out: str, seed: int) -> dict[str, int]:
    groups = read_members(source)
    class_names = sorted({name for _, name in groups})
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {"class_names": np.array(class_names)}
    for split, per_class in COUNTS.items():
        blobs, labels, files = [], [], []
        for label, name in enumerate(class_names):
            members = groups[(split, name)]
            chosen = sorted(rng.choice(sorted(members), size=per_class, replace=False))
            blobs += [members[m] for m in chosen]
            labels += [label] * per_class
            files += chosen
        sizes = np.array([len(b) for b in blobs], np.int64)
        arrays[f"{split}_jpeg"] = np.frombuffer(b"".join(blobs), np.uint8)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum(sizes)])
        arrays[f"{split}_labels"] = np.array(labels, np.int64)
        arrays[f"{split}_files"] = np.array(files)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    np.savez_compressed(out, **arrays)
    return {split: len(arrays[f"{split}_labels"]) for split in COUNTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar10-jpeg.tar.gz"))
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counts = build(args.source, args.out, args.seed)
    print(f"wrote {os.path.realpath(args.out)} ({os.path.getsize(args.out) / 1e6:.2f} MB): {counts}")


if __name__ == "__main__":
    main()
