#!/usr/bin/python3
"""Yardstick for `diffeoflow train --dataset fashion-mnist --model odenet`: the same convolutional
ODE-Net (bench/predict_torch.py) trained in PyTorch with autograd through the same RK4 steps, on
the same data, optimiser and schedule, within a time budget. A measuring script, not a test: it
needs PyTorch (Debian python3-torch) and NumPy, which no build or test step of diffeoflow needs.

Matches the defaults of `diffeoflow train` for images: pixels / 255, batch 128, Adam with learning
rate 0.02, the cosine schedule following the share of the budget spent (updated every batch),
float32 arithmetic, a shuffled order per epoch. samples/s counts the training steps' wall time
only (the test evaluation after each epoch is left out), as diffeoflow's metrics do.

--flip mirrors each training image left-right with probability 1/2 (as `train --flip on`).

--solver dopri5 is the yardstick for `train --solver dopri5 --rtol R --atol A --gradient
backsolve`: the ODE block is integrated by an adaptive Dormand-Prince 5(4) written here (no
torchdiffeq here; its defaults are followed: a step is accepted when the RMS of err / (atol + rtol
max(|y0|, |y1|)) is <= 1, taken per tensor and the largest of those, safety 0.9, step factor in
[0.2, 10], the Hairer-Norsett-Wanner first step), without autograd; the gradient is the
continuous adjoint [z, a, a_theta] integrated back from t = 1 to 0 with the same method, its
error norm over all three parts (torchdiffeq's default) or with --seminorm over z and a only
(Kidger et al. 2021; diffeoflow's default). NFE per batch are reported as diffeoflow counts them.

    bench/train_torch.py [--budget 480] [--channels 32] [--steps 4] [--threads 2] [--seed 1]
                         [--solver rk4|dopri5] [--rtol 1e-3] [--atol 1e-3] [--seminorm] [--flip]
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


# Dormand-Prince 5(4): nodes, stage coefficients, 5th-order weights (the 7th stage's row) and
# the 4th-order embedded weights.
DP_C = [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]
DP_A = [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
        [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]]
DP_B4 = [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]


def combine(y, h, coefficients, ks):
    """y + h sum_j c_j k_j for lists of tensors."""
    out = []
    for i, yi in enumerate(y):
        acc = yi.clone()
        for c, k in zip(coefficients, ks):
            if c != 0.0:
                acc.add_(k[i], alpha=h * c)
        out.append(acc)
    return out


def dopri5(f, t0, t1, y, rtol, atol, counted):
    """Integrates dy/dt = f(t, y) for a list of tensors y from t0 to t1; `counted` (a list of
    booleans) marks the tensors the error norm takes. Returns (y(t1), evaluations of f)."""
    def norm(values):
        return max(float(v.pow(2).mean().sqrt()) for v, c in zip(values, counted) if c)

    direction = 1.0 if t1 > t0 else -1.0
    k1 = f(t0, y)
    nfe = 1
    scale = [atol + rtol * yi.abs() for yi in y]
    d0 = norm([yi / s for yi, s in zip(y, scale)])
    d1 = norm([k / s for k, s in zip(k1, scale)])
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    y1 = combine(y, direction * h0, [1.0], [k1])
    k = f(t0 + direction * h0, y1)
    nfe += 1
    d2 = norm([(a - b) / s for a, b, s in zip(k, k1, scale)]) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
    h = min(100 * h0, h1, abs(t1 - t0))
    t = t0
    while direction * (t1 - t) > 1e-12:
        h = min(h, abs(t1 - t))
        ks = [k1]
        for i in range(1, 7):
            ks.append(f(t + direction * h * DP_C[i], combine(y, direction * h, DP_A[i], ks)))
        nfe += 6
        y_new = combine(y, direction * h, DP_A[6], ks[:6])
        error = [torch.zeros_like(yi) for yi in y]
        for i in range(len(y)):
            for b5, b4, kk in zip(DP_A[6] + [0.0], DP_B4, ks):
                if b5 != b4:
                    error[i].add_(kk[i], alpha=direction * h * (b5 - b4))
        tolerance = [atol + rtol * torch.maximum(a.abs(), b.abs()) for a, b in zip(y, y_new)]
        ratio = norm([e / s for e, s in zip(error, tolerance)])
        if ratio <= 1.0:
            t += direction * h
            y = y_new
            k1 = ks[6]  # first same as last
        factor = 10.0 if ratio == 0.0 else min(10.0, max(0.2, 0.9 * ratio ** (-1 / 5)))
        if ratio > 1.0:
            factor = min(1.0, factor)
        h *= factor
    return y, nfe


class Dopri5Block:
    """The ODE block integrated by dopri5, its gradient by the continuous adjoint."""

    def __init__(self, field, rtol, atol, seminorm):
        self.field, self.rtol, self.atol, self.seminorm = field, rtol, atol, seminorm
        self.params = list(field.parameters())

    def forward(self, h0):
        with torch.no_grad():
            (h1,), nfe = dopri5(lambda t, y: [self.field(t, y[0])], 0.0, 1.0, [h0], self.rtol,
                                self.atol, [True])
        return h1, nfe

    def backward(self, h1, a1):
        """Returns a(0) = dL/dh0, sets the field's .grad, and the NFE of the backward solve."""
        def augmented(t, y):
            z, a = y[0], y[1]
            with torch.enable_grad():
                z = z.detach().requires_grad_()
                fz = self.field(t, z)
                grads = torch.autograd.grad(fz, [z] + self.params, a, allow_unused=True)
            out = [fz.detach(), -grads[0]]
            for g, p in zip(grads[1:], self.params):
                out.append(-g if g is not None else torch.zeros_like(p))
            return out

        y = [h1, a1] + [torch.zeros_like(p) for p in self.params]
        counted = [True, True] + [not self.seminorm] * len(self.params)
        with torch.no_grad():
            y0, nfe = dopri5(augmented, 1.0, 0.0, y, self.rtol, self.atol, counted)
        for p, g in zip(self.params, y0[2:]):
            p.grad = g
        return y0[1], nfe


def readout(net, h):
    return net.linear(torch.relu(net.readout_norm(h)).mean(dim=(2, 3)))


def logits(net, block, x):
    if block is None:
        return net.logits(x)
    h1, _ = block.forward(net.embed(x))
    return readout(net, h1)


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
    p.add_argument("--seminorm", action="store_true")
    p.add_argument("--flip", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x, y = load(a.data, "train")
    x_test, y_test = load(a.data, "t10k")
    net = OdeNet(1, a.channels, 10, a.steps)
    block = Dopri5Block(net.field, a.rtol, a.atol, a.seminorm) if a.solver == "dopri5" else None
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
            optimiser.zero_grad()
            if block is None:
                loss = torch.nn.functional.cross_entropy(net.logits(images), y[index])
                loss.backward()
            else:
                h0 = net.embed(images)
                h1, nfe = block.forward(h0.detach())
                h1 = h1.requires_grad_()
                loss = torch.nn.functional.cross_entropy(readout(net, h1), y[index])
                loss.backward()
                a0, nfe_back = block.backward(h1.detach(), h1.grad)
                h0.backward(a0)
                nfe_forward += nfe
                nfe_backward += nfe_back
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
                      "rtol": a.rtol, "atol": a.atol, "seminorm": a.seminorm,
                      "nfe_forward": nfe_forward / max(batches, 1),
                      "nfe_backward": nfe_backward / max(batches, 1),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
