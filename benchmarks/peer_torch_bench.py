"""Peer anchor: PyTorch eager on this CPU, same architecture and protocol as the
paper's location-classification experiment (ResNet-18 with a 7x7/2 stem and no
max-pool, 512-d GAP, linear head; Adam lr 1e-3 betas (0.5, 0.999); batch 48;
CIFAR 32x32 patches pasted on a zero canvas of grid x grid cells).

Written from the paper's description, not copied from its repository; a copy
of ``../shared/bench/peer_torch_bench.py`` with two options added for
PyTorch's best CPU settings:

* ``--channels-last``: model and inputs in ``torch.channels_last`` memory
  format (NHWC, which oneDNN's convolutions prefer);
* ``--bf16``: ``torch.autocast("cpu", dtype=torch.bfloat16)`` around the
  forward pass and the loss of a training step and around inference (weights,
  gradients and the Adam update stay float32, as under Keras'
  ``mixed_bfloat16``).

Runs on 2 threads (``torch.set_num_threads(2)``). Prints one JSON object:
canvas-building cost of the per-image Python loop the reference uses, and
train/infer images per second (medians of ``--steps`` timed steps after
``--warmup`` untimed ones).

Run (in a separate venv with `pip install torch==2.13.0 numpy`):
    python benchmarks/peer_torch_bench.py [--grid 3] [--steps 10] [--channels-last] [--bf16]
"""
import argparse
import contextlib
import json
import random
import statistics
import time

import numpy as np  # noqa: F401  (torch's CPU wheel expects it alongside)
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.sc = nn.Sequential()
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + self.sc(x))


class Net(nn.Module):
    def __init__(self, classes, permute):
        super().__init__()
        self.permute = permute
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        z = self.body(self.stem(x)).mean(dim=(2, 3))
        if self.permute:
            z = z[:, torch.randperm(z.shape[1])]
        return self.fc(z)


def canvas_loop(patches, grid):
    """The reference's way: one Python iteration per image."""
    n, c, h, w = patches.shape
    out = torch.zeros((n, c, h * grid, w * grid))
    target = torch.zeros(n, dtype=torch.long)
    for i in range(n):
        loc = random.randint(1, grid * grid)
        gy, gx = (loc - 1) % grid, (loc - 1) // grid
        out[i, :, gx * h:gx * h + h, gy * w:gy * w + w] = patches[i]
        target[i] = loc - 1
    return out, target


def median_time(fn, steps, warm=3):
    for _ in range(warm):
        fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=3)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--permute", action="store_true")
    ap.add_argument("--channels-last", action="store_true", help="model and inputs in torch.channels_last")
    ap.add_argument("--bf16", action="store_true", help='torch.autocast("cpu", dtype=torch.bfloat16) around forward+loss')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    random.seed(0)
    patches = torch.randn(a.batch, 3, 32, 32)
    t_canvas = median_time(lambda: canvas_loop(patches, a.grid), a.steps, a.warmup)
    net = Net(a.grid * a.grid, a.permute)
    x, y = canvas_loop(patches, a.grid)
    if a.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999))

    def autocast():
        if a.bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step():
        opt.zero_grad()
        with autocast():
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    def infer():
        with autocast():
            return net(x)

    net.train()
    t_train = median_time(step, a.steps, a.warmup)
    net.eval()
    with torch.no_grad():
        t_infer = median_time(infer, a.steps, a.warmup)
    print(json.dumps({
        "framework": f"torch {torch.__version__}", "threads": torch.get_num_threads(),
        "grid": a.grid, "input": 32 * a.grid, "batch": a.batch, "permute": a.permute,
        "channels_last": a.channels_last, "bf16_autocast": a.bf16, "steps": a.steps, "warmup": a.warmup,
        "canvas_loop_images_per_s": round(a.batch / t_canvas, 1),
        "train_images_per_s": round(a.batch / t_train, 2),
        "infer_images_per_s": round(a.batch / t_infer, 2),
    }))


if __name__ == "__main__":
    main()
