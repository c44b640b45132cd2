#!/usr/bin/python3
"""Yardstick for `diffeoflow train --dataset fashion-mnist --model odenet`: the same convolutional
ODE-Net (bench/predict_torch.py) trained in PyTorch with autograd through the same RK4 steps, on
the same data, optimiser and schedule, within a time budget. A measuring script, not a test: it
needs PyTorch (Debian python3-torch) and NumPy, which no build or test step of diffeoflow needs.

Matches the defaults of `diffeoflow train` for images: pixels / 255, batch 128, Adam with learning
rate 0.02, the cosine schedule following the share of the budget spent (updated every batch),
float32 arithmetic, a shuffled order per epoch. One default differs: train smooths the labels by
0.1 for the image odenet, this script only with --label-smoothing 0.1 (its default 0 keeps the
meaning of the commands recorded before train's default changed); likewise train reads the
whole grid out for the image odenet (--readout flatten), this script only with --readout flatten
(its default pool is Chen et al.'s read-out). samples/s counts the training
steps' wall time only (the test evaluation after each epoch is left out), as diffeoflow's metrics
do.

--flip mirrors each training image left-right with probability 1/2 (as `train --flip on`).
--shift N moves each training image by (dy, dx) drawn uniformly from {-N..N}^2, filling with 0,
after the mirroring (as `train --shift N`). --label-smoothing E trains the cross-entropy against
(1 - E) onehot + E / classes (as `train --label-smoothing E`).

--solver dopri5 is the yardstick for `train --solver dopri5 --rtol R --atol A --gradient
backsolve`: the ODE block is integrated by the adaptive Dormand-Prince 5(4) of bench/torch_ode.py
without autograd, and its gradient is the continuous adjoint [z, a, a_theta] integrated back
from t = 1 to 0 with the same method, its error norm over the whole augmented state (torchdiffeq
is not in Debian). NFE per batch are reported as diffeoflow counts them.

    bench/train_torch.py [--budget 480] [--channels 32] [--steps 4] [--threads 2] [--seed 1]
                         [--solver rk4|dopri5] [--rtol 1e-3] [--atol 1e-3] [--flip]
                         [--shift 0] [--label-smoothing 0] [--readout pool|flatten]
                         [--data /usr/share/datasets/fashion-mnist]
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from predict_torch import OdeNet  # noqa: E402
from torch_ode import Adjoint  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(folder, kind):
    images = read_idx(os.path.join(folder, f"{kind}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(folder, f"{kind}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    return x, torch.from_numpy(labels.astype(np.int64))


class Counted(torch.nn.Module):
    """The ODE block's field, counting its evaluations (NFE) for the Dopri5 runs."""

    def __init__(self, field):
        super().__init__()
        self.field, self.nfe = field, 0

    def forward(self, t, x):
        self.nfe += 1
        return self.field(t, x)


def logits(net, block, x):
    """The network's logits; with `block` (a Counted field, Dopri5 runs) the ODE block is solved
    by dopri5 and differentiated by the continuous adjoint."""
    if block is None:
        return net.logits(x)
    h1 = Adjoint.apply(net.embed(x), block.rtol, block.atol, block, *block.parameters())
    return net.read(h1)


def shifted(images, shift, generator):
    """Each image moved by its own (dy, dx) in {-shift..shift}^2, zero where nothing enters."""
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (shift, shift, shift, shift))
    d = torch.randint(-shift, shift + 1, (n, 2), generator=generator)
    rows = (torch.arange(height)[None, :] + shift - d[:, :1])  # n x H: source row in `padded`
    cols = (torch.arange(width)[None, :] + shift - d[:, 1:])
    index = torch.arange(n)[:, None, None]
    # The advanced indices around the channel slice put the channels last: n x H x W x C.
    return padded[index, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def accuracy(net, x, y, block=None, batch=128):
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            correct += (logits(net, block, x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / x.shape[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--budget", type=float, default=480.0)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--solver", choices=["rk4", "dopri5"], default="rk4")
    p.add_argument("--rtol", type=float, default=1e-3)
    p.add_argument("--atol", type=float, default=1e-3)
    p.add_argument("--flip", action="store_true")
    p.add_argument("--shift", type=int, default=0)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--readout", choices=["pool", "flatten"], default="pool")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, y = load(a.data, "train")
    x_test, y_test = load(a.data, "t10k")
    net = OdeNet(1, a.channels, 10, a.steps, a.readout, x.shape[2:])
    block = None
    if a.solver == "dopri5":
        block = Counted(net.field)
        block.rtol, block.atol = a.rtol, a.atol
    nfe_forward = nfe_backward = batches = 0
    optimiser = torch.optim.Adam(net.parameters(), lr=a.lr)
    generator = torch.Generator().manual_seed(a.seed)
    spent, samples, epochs, curve = 0.0, 0, 0, []
    while spent < a.budget:
        order = torch.randperm(x.shape[0], generator=generator)
        net.train()
        for i in range(0, x.shape[0], a.batch):
            rate = a.lr * 0.5 * (1.0 + math.cos(math.pi * min(spent / a.budget, 1.0)))
            for group in optimiser.param_groups:
                group["lr"] = rate
            start = time.perf_counter()
            index = order[i:i + a.batch]
            images = x[index]
            if a.flip:
                mirror = torch.rand(images.shape[0], generator=generator) < 0.5
                images = torch.where(mirror[:, None, None, None], images.flip(3), images)
            if a.shift > 0:
                images = shifted(images, a.shift, generator)
            optimiser.zero_grad()
            before = block.nfe if block is not None else 0
            loss = torch.nn.functional.cross_entropy(logits(net, block, images), y[index],
                                                     label_smoothing=a.label_smoothing)
            forward = block.nfe if block is not None else 0
            loss.backward()
            if block is not None:
                nfe_forward += forward - before
                nfe_backward += block.nfe - forward
            batches += 1
            optimiser.step()
            spent += time.perf_counter() - start
            samples += index.shape[0]
            if spent >= a.budget:
                break
        epochs += 1
        net.eval()
        curve.append(accuracy(net, x_test, y_test, block))
        print(f"epoch {epochs}: test accuracy {curve[-1]:.4f}, {samples / spent:.0f} samples/s",
              file=sys.stderr, flush=True)
    print(json.dumps({"samples_per_second": samples / spent, "test_accuracy": curve[-1],
                      "test_accuracy_per_epoch": curve, "epochs": epochs, "samples": samples,
                      "train_seconds": spent, "threads": a.threads, "channels": a.channels,
                      "steps": a.steps, "seed": a.seed, "solver": a.solver, "flip": a.flip,
                      "shift": a.shift, "label_smoothing": a.label_smoothing,
                      "readout": a.readout,
                      "rtol": a.rtol, "atol": a.atol,
                      "nfe_forward": nfe_forward / max(batches, 1),
                      "nfe_backward": nfe_backward / max(batches, 1),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
