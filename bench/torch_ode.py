"""Dopri5 and the continuous adjoint in PyTorch, for the yardstick scripts (bench/compare_torch.py,
bench/train_torch.py). Not a dependency of diffeoflow: it needs PyTorch (Debian python3-torch).

Dopri5 is Dormand & Prince (1980) with the usual error control (the RMS of err / (atol + rtol
max(|y0|, |y1|)) <= 1, safety 0.9, step factors in [0.2, 10], the Hairer-Norsett-Wanner first
step); the continuous adjoint (Chen et al. 2018) integrates [x, lambda, theta_bar] backward with it,
its error norm over the whole augmented state. torchdiffeq is not used.
"""
import torch

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
