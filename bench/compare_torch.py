#!/usr/bin/env python3
"""Yardstick for `diffeoflow bench ode`: the same field, weights and loss in PyTorch.

    f(t, x) = W2 tanh(W1 [x; t] + b1) + b2,  t in [0, 1],  L = sum x(1)^2

A measuring script, not a test: it needs PyTorch and h5py (Debian: python3-torch, python3-h5py),
which no build or test step of diffeoflow needs. torchdiffeq is not used; the fixed-step solvers,
Dopri5 (Dormand & Prince 1980, with the usual error control) and the continuous adjoint
(Chen et al. 2018, integrating [x, lambda, theta_bar] backward) are written here in torch.

  compare_torch.py check --cli build/apps/diffeoflow     # gradients agree?
  compare_torch.py time  --cli build/apps/diffeoflow     # ms/iteration, torch vs diffeoflow
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch

torch.set_default_dtype(torch.float64)


class Field(torch.nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.l1 = torch.nn.Linear(dim + 1, hidden)
        self.l2 = torch.nn.Linear(hidden, dim)
        self.nfe = 0

    def forward(self, t, x):
        self.nfe += 1
        tt = torch.ones(x.shape[0], 1) * t
        return self.l2(torch.tanh(self.l1(torch.cat([x, tt], dim=1))))


def fixed_step(f, x, method, steps):
    h = 1.0 / steps
    for n in range(steps):
        t = n * h
        if method == "euler":
            x = x + h * f(t, x)
        elif method == "midpoint":
            x = x + h * f(t + h / 2, x + h / 2 * f(t, x))
        elif method == "rk4":
            k1 = f(t, x)
            k2 = f(t + h / 2, x + h / 2 * k1)
            k3 = f(t + h / 2, x + h / 2 * k2)
            k4 = f(t + h, x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        else:
            raise ValueError(method)
    return x


# Dormand-Prince 5(4) tableau.
C = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1]
A = [[],
     [1 / 5],
     [3 / 40, 9 / 40],
     [44 / 45, -56 / 15, 32 / 9],
     [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
     [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
     [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]]
B5 = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0]
B4 = [5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]


def rms(v):
    return torch.sqrt(torch.mean(v * v))


def dopri5(f, y, t0, t1, rtol, atol, norm_part=None):
    """Adaptive Dopri5 from t0 to t1 (either direction); norm_part(v) picks what the error norm sees."""
    direction = 1.0 if t1 >= t0 else -1.0
    part = norm_part or (lambda v: v)
    k1 = f(t0, y)
    with torch.no_grad():
        scale = atol + rtol * part(y).abs()
        d0, d1 = rms(part(y) / scale), rms(part(k1) / scale)
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        y1 = y + direction * h0 * k1
        d2 = rms(part(f(t0 + direction * h0, y1) - k1) / scale) / h0
        h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** 0.2
        h = float(min(100 * h0, h1, abs(t1 - t0)))
    t = t0
    while direction * (t1 - t) > 1e-14:
        h = min(h, abs(t1 - t))
        dt = direction * h
        ks = [k1]
        for i in range(1, 7):
            yi = y + dt * sum(a * k for a, k in zip(A[i], ks) if a != 0)
            ks.append(f(t + C[i] * dt, yi))
        y_new = y + dt * sum(b * k for b, k in zip(B5, ks) if b != 0)
        err = dt * sum((b5 - b4) * k for b5, b4, k in zip(B5, B4, ks) if b5 != b4)
        with torch.no_grad():
            scale = atol + rtol * torch.maximum(part(y).abs(), part(y_new).abs())
            e = float(rms(part(err) / scale))
        if e <= 1.0:
            t = t + dt
            y = y_new
            k1 = ks[6]
        factor = 10.0 if e == 0 else min(10.0, max(0.2, 0.9 * e ** -0.2))
        h = h * factor
    return y


def flat_params(field):
    return [field.l1.weight, field.l1.bias, field.l2.weight, field.l2.bias]


class Adjoint(torch.autograd.Function):
    """Continuous adjoint (backsolve): O(1) memory, torchdiffeq's odeint_adjoint in miniature."""

    @staticmethod
    def forward(ctx, x0, rtol, atol, field, *params):
        with torch.no_grad():
            x1 = dopri5(field, x0, 0.0, 1.0, rtol, atol)
        ctx.field, ctx.rtol, ctx.atol = field, rtol, atol
        ctx.save_for_backward(x1, *params)
        return x1

    @staticmethod
    def backward(ctx, g):
        x1, *params = ctx.saved_tensors
        field = ctx.field
        n = x1.numel()
        sizes = [p.numel() for p in params]

        def aug(t, z):
            x = z[:n].view_as(x1).detach().requires_grad_(True)
            lam = z[n:2 * n].view_as(x1)
            with torch.enable_grad():
                fx = field(t, x)
                gx, *gp = torch.autograd.grad(fx, [x] + params, lam, allow_unused=True)
            return torch.cat([-fx.reshape(-1), gx.reshape(-1)] + [p.reshape(-1) for p in gp])

        z = torch.cat([x1.reshape(-1), g.reshape(-1)] + [torch.zeros(s) for s in sizes])
        with torch.no_grad():
            # Reverse time s = -t from -1 to 0 (so the solver always steps forward).
            z = dopri5(lambda s, zz: aug(-s, zz), z, -1.0, 0.0, ctx.rtol, ctx.atol)
        grad_x0 = z[n:2 * n].view_as(x1)
        grads, offset = [], 2 * n
        for p, s in zip(params, sizes):
            grads.append(z[offset:offset + s].view_as(p))
            offset += s
        return (grad_x0, None, None, None, *grads)


def torch_gradient(field, x0, solver, steps, rtol, atol, mode):
    field.nfe = 0
    x = x0.clone().requires_grad_(True)
    if mode == "adjoint":
        x1 = Adjoint.apply(x, rtol, atol, field, *flat_params(field))
    elif solver == "dopri5":
        x1 = dopri5(field, x, 0.0, 1.0, rtol, atol)
    else:
        x1 = fixed_step(field, x, solver, steps)
    nfe_forward = field.nfe
    loss = (x1 * x1).sum()
    for p in flat_params(field):
        p.grad = None
    loss.backward()
    grads = {"x0": x.grad, "l1/weight": field.l1.weight.grad, "l1/bias": field.l1.bias.grad,
             "l2/weight": field.l2.weight.grad, "l2/bias": field.l2.bias.grad}
    return float(loss), x1.detach(), grads, nfe_forward, field.nfe - nfe_forward


def make_weights(dim, hidden, batch, seed, path):
    torch.manual_seed(seed)
    field = Field(dim, hidden)
    x0 = torch.randn(batch, dim)
    with h5py.File(path, "w") as f:
        f["l1/weight"] = field.l1.weight.detach().numpy()
        f["l1/bias"] = field.l1.bias.detach().numpy()
        f["l2/weight"] = field.l2.weight.detach().numpy()
        f["l2/bias"] = field.l2.bias.detach().numpy()
        f["x0"] = x0.numpy()
    return field, x0


def run_cli(cli, dim, hidden, batch, solver, steps, rtol, atol, gradient, weights, out, threads,
            repeat):
    cmd = [cli, "bench", "ode", "--dim", str(dim), "--hidden", str(hidden), "--batch", str(batch),
           "--solver", solver, "--steps", str(steps), "--rtol", str(rtol), "--atol", str(atol),
           "--gradient", gradient, "--repeat", str(repeat), "--threads", str(threads), "--quiet"]
    if weights:
        cmd += ["--weights", weights]
    if out:
        cmd += ["--out", out]
    result = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(result.stdout), " ".join(cmd)


def check(args):
    cases = [("euler", 20, 1e-6, 1e-8, "discrete", "discrete"),
             ("rk4", 20, 1e-6, 1e-8, "discrete", "discrete"),
             ("dopri5", 0, 1e-10, 1e-10, "discrete", "discrete"),
             ("dopri5", 0, 1e-10, 1e-10, "backsolve", "discrete"),
             ("dopri5", 0, 1e-10, 1e-10, "checkpointed", "discrete")]
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "w.h5")
        field, x0 = make_weights(args.dim, args.hidden, args.batch, args.seed, weights)
        for solver, steps, rtol, atol, gradient, torch_mode in cases:
            out = os.path.join(tmp, "r.h5")
            _, cmd = run_cli(args.cli, args.dim, args.hidden, args.batch, solver, max(steps, 1),
                             rtol, atol, gradient, weights, out, args.threads, 1)
            loss, x1, grads, _, _ = torch_gradient(field, x0, solver, steps, rtol, atol, torch_mode)
            with h5py.File(out, "r") as r:
                rel = {"loss": abs(float(r["loss"][()]) - loss) / abs(loss),
                       "x1": float(np.abs(r["x1"][...] - x1.numpy()).max() / np.abs(x1.numpy()).max())}
                for name, g in grads.items():
                    ours = r["grad/" + name][...]
                    ref = g.numpy()
                    rel["grad/" + name] = float(np.abs(ours - ref).max() / np.abs(ref).max())
            print(json.dumps({"solver": solver, "steps": steps, "rtol": rtol, "gradient": gradient,
                              "max_relative_difference": rel, "command": cmd}))


def median_ms(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))


def timing(args):
    torch.set_num_threads(args.threads)
    configs = [(2, 64, 512, "dopri5", 20), (2, 64, 512, "rk4", 20), (64, 256, 256, "dopri5", 20)]
    for dim, hidden, batch, solver, steps in configs:
        torch.manual_seed(args.seed)
        field = Field(dim, hidden)
        x0 = torch.randn(batch, dim)
        mode = "adjoint" if solver == "dopri5" else "discrete"

        def run():
            return torch_gradient(field, x0, solver, steps, 1e-6, 1e-8, mode)

        run()
        torch_ms = median_ms(run, args.repeat)
        _, _, _, nf, nb = run()
        ours, cmd = run_cli(args.cli, dim, hidden, batch, solver, steps, 1e-6, 1e-8, "backsolve",
                            None, None, args.threads, args.repeat)
        print(json.dumps({"config": f"D={dim} H={hidden} B={batch} {solver}",
                          "torch_mode": mode + (" (autograd through the steps)" if mode == "discrete" else ""),
                          "torch_ms": round(torch_ms, 2), "torch_nfe": [nf, nb],
                          "diffeoflow_ms": round(ours["ms_per_iteration"], 2),
                          "diffeoflow_nfe": [ours["nfe_forward"], ours["nfe_backward"]],
                          "speedup": round(torch_ms / ours["ms_per_iteration"], 1),
                          "command": cmd}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["check", "time"])
    parser.add_argument("--cli", default="build/apps/diffeoflow")
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not os.path.exists(args.cli):
        sys.exit(f"compare_torch.py: --cli {args.cli} does not exist (build the diffeoflow target)")
    check(args) if args.what == "check" else timing(args)


if __name__ == "__main__":
    main()
