#!/usr/bin/python3
"""Yardstick for `diffeoflow train --dataset fashion-mnist --model odenet`: the same convolutional
ODE-Net (bench/predict_torch.py) trained in PyTorch with autograd through the same RK4 steps, on
the same data, optimiser and schedule, within a time budget. A measuring script, not a test: it
needs PyTorch (Debian python3-torch) and NumPy, which no build or test step of diffeoflow needs.

Matches the defaults of `diffeoflow train` for images: pixels / 255, batch 128, Adam with learning
rate 0.02, the cosine schedule following the share of the budget spent (updated every batch),
float32 arithmetic, a shuffled order per epoch. samples/s counts the training steps' wall time
only (the test evaluation after each epoch is left out), as diffeoflow's metrics do.

    bench/train_torch.py [--budget 480] [--channels 32] [--steps 4] [--threads 2] [--seed 1]
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


def accuracy(net, x, y, batch=128):
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            correct += (net.logits(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
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
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, y = load(a.data, "train")
    x_test, y_test = load(a.data, "t10k")
    net = OdeNet(1, a.channels, 10, a.steps)
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
            loss = torch.nn.functional.cross_entropy(net.logits(x[index]), y[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            spent += time.perf_counter() - start
            samples += index.shape[0]
            if spent >= a.budget:
                break
        epochs += 1
        net.eval()
        curve.append(accuracy(net, x_test, y_test))
        print(f"epoch {epochs}: test accuracy {curve[-1]:.4f}, {samples / spent:.0f} samples/s",
              file=sys.stderr, flush=True)
    print(json.dumps({"samples_per_second": samples / spent, "test_accuracy": curve[-1],
                      "test_accuracy_per_epoch": curve, "epochs": epochs, "samples": samples,
                      "train_seconds": spent, "threads": a.threads, "channels": a.channels,
                      "steps": a.steps, "seed": a.seed, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
