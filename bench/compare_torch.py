#!/usr/bin/env python3
"""Yardstick for `diffeoflow bench ode`: the same field, weights and loss in PyTorch.

    f(t, x) = W2 tanh(W1 [x; t] + b1) + b2,  t in [0, 1],  L = sum x(1)^2

A measuring script, not a test: it needs PyTorch and h5py (Debian: python3-torch, python3-h5py),
which no build or test step of diffeoflow needs. torchdiffeq is not used; the fixed-step solvers
are written here, Dopri5 and the continuous adjoint in bench/torch_ode.py.

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ode import Adjoint, dopri5  # noqa: E402

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


def flat_params(field):
    return [field.l1.weight, field.l1.bias, field.l2.weight, field.l2.bias]


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
