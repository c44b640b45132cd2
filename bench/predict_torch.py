#!/usr/bin/python3
"""Yardstick for `diffeoflow predict` on images: the forward pass of the same convolutional
ODE-Net in PyTorch (images/s). A measuring script, not a test: it needs PyTorch (Debian
python3-torch) and NumPy, which no build or test step of diffeoflow needs.

The network of flows/classifier.h for images: Conv 3x3 stride 2 -> GroupNorm -> ReLU ->
Conv 3x3 stride 2, an ODE block GN -> ReLU -> ConcatConv 3x3 -> GN -> ReLU -> ConcatConv 3x3 -> GN
integrated by fixed-step RK4 on [0, 1], and GN -> ReLU -> Linear(C*H*W -> K) on the whole grid
(--readout flatten, train's default for images) or GN -> ReLU -> global average pool ->
Linear(C -> K) (--readout pool, Chen et al.'s; the default here, so that the commands recorded
before train's default changed keep their meaning).
Weights are random (the time does not depend on them); torchdiffeq is not used, RK4 is written
here as in bench/compare_torch.py.

    bench/predict_torch.py --data X.npy [--channels 32] [--steps 8] [--batch 1024] [--threads 2]
                           [--readout pool|flatten]
"""
import argparse
import json
import time

import numpy as np
import torch


def groups(c):
    g = min(32, c)
    return g if c % g == 0 else 1


class ConcatConv(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = torch.nn.Conv2d(c + 1, c, 3, 1, 1)

    def forward(self, t, x):
        tt = torch.ones_like(x[:, :1]) * t
        return self.conv(torch.cat([tt, x], 1))


class Field(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n1, self.c1 = torch.nn.GroupNorm(groups(c), c), ConcatConv(c)
        self.n2, self.c2 = torch.nn.GroupNorm(groups(c), c), ConcatConv(c)
        self.n3 = torch.nn.GroupNorm(groups(c), c)

    def forward(self, t, x):
        x = self.c1(t, torch.relu(self.n1(x)))
        x = self.c2(t, torch.relu(self.n2(x)))
        return self.n3(x)


def halved(n):
    """The size of a side after a 3x3 convolution of stride 2 and padding 1."""
    return (n - 1) // 2 + 1


class OdeNet(torch.nn.Module):
    def __init__(self, channels_in, c, classes, steps, readout="pool", image=(28, 28)):
        super().__init__()
        self.embed = torch.nn.Sequential(
            torch.nn.Conv2d(channels_in, c, 3, 2, 1), torch.nn.GroupNorm(groups(c), c),
            torch.nn.ReLU(), torch.nn.Conv2d(c, c, 3, 2, 1))
        self.field = Field(c)
        self.readout_norm = torch.nn.GroupNorm(groups(c), c)
        self.flatten = readout == "flatten"
        grid = halved(halved(image[0])) * halved(halved(image[1]))
        self.linear = torch.nn.Linear(c * grid if self.flatten else c, classes)
        self.steps = steps

    def read(self, h):
        """The read-out of the ODE block's end state h (N x C x H x W): logits."""
        h = torch.relu(self.readout_norm(h))
        return self.linear(h.flatten(1) if self.flatten else h.mean(dim=(2, 3)))

    def logits(self, x):
        h = self.embed(x)
        dt = 1.0 / self.steps
        for n in range(self.steps):
            t = n * dt
            k1 = self.field(t, h)
            k2 = self.field(t + dt / 2, h + dt / 2 * k1)
            k3 = self.field(t + dt / 2, h + dt / 2 * k2)
            k4 = self.field(t + dt, h + dt * k3)
            h = h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return self.read(h)

    def forward(self, x):
        return torch.softmax(self.logits(x), 1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--readout", choices=["pool", "flatten"], default="pool")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dtype = torch.float32 if a.dtype == "float32" else torch.float64
    x = np.load(a.data).astype(np.float64) / 255.0
    if x.ndim == 3:
        x = x[:, None]
    x = torch.from_numpy(x).to(dtype)
    torch.manual_seed(0)
    net = OdeNet(x.shape[1], a.channels, a.classes, a.steps, a.readout,
                 x.shape[2:]).to(dtype).eval()
    with torch.no_grad():
        net(x[: a.batch])  # warm-up
        start = time.perf_counter()
        for i in range(0, x.shape[0], a.batch):
            net(x[i:i + a.batch])
        seconds = time.perf_counter() - start
    print(json.dumps({"samples": x.shape[0], "seconds": seconds,
                      "samples_per_second": x.shape[0] / seconds, "threads": a.threads,
                      "dtype": a.dtype, "channels": a.channels, "steps": a.steps,
                      "readout": a.readout,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
