"""What a right-hand side defined in Python costs: f evaluations per second of a tiny field (2-D
state, 16 tanh units) through `diffeoflow.integrate` (RK4 and Dopri5) and `diffeoflow.gradient`,
against the same field and the same solver steps written in PyTorch on this machine (a yardstick
only; float64, one thread, RK4 and the Dopri5 tableau looped by hand), and against the bare NumPy
field called in a Python loop. Prints one JSON object.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_dynamics.py [--steps 2000] [--repeat 5]
        [--dopri-time 100]

overhead_us_per_call: the time of one evaluation through diffeoflow less the same NumPy field
called directly: what crossing from the C++ solver into Python and back costs (the GIL, the
copies of x and theta in, the copy of dx/dt out). The floor is measured with dx/dt = -x.
"""
import argparse
import json
import statistics
import time

import numpy as np

import diffeoflow

HIDDEN = 16


def unpack(theta):
    h = HIDDEN
    return (theta[:2 * h].reshape(h, 2), theta[2 * h:3 * h], theta[3 * h:5 * h].reshape(2, h),
            theta[5 * h:])


def field(t, x, theta):
    w1, b1, w2, b2 = unpack(theta)
    return w2 @ np.tanh(w1 @ x + b1) + b2


class Tiny(diffeoflow.Dynamics):
    def __init__(self):
        super().__init__(2, 5 * HIDDEN + 2)

    def f(self, t, x, theta):
        w1, b1, w2, b2 = unpack(theta)
        return w2 @ np.tanh(w1 @ x + b1) + b2

    def vjp(self, t, x, theta, a):
        w1, b1, w2, b2 = unpack(theta)
        h = np.tanh(w1 @ x + b1)
        dz = (w2.T @ a) * (1 - h**2)
        return w1.T @ dz, np.concatenate([np.outer(dz, x).ravel(), dz, np.outer(a, h).ravel(), a])


class Decay(diffeoflow.Dynamics):
    def __init__(self):
        super().__init__(2, 0)

    def f(self, t, x, theta):
        return -x


def median_time(run, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


# The Dopri5 (Dormand–Prince 5(4)) tableau, for the torch loop.
DOPRI_A = [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
           [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
           [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
           [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]]
DOPRI_C = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1]


def torch_figures(theta, x0, steps, dopri_steps, dopri_time, repeat):
    import torch
    torch.set_num_threads(1)
    p = torch.tensor(theta, dtype=torch.float64)
    w1, b1, w2, b2 = (torch.tensor(a, dtype=torch.float64) for a in unpack(theta))

    def f(t, x, w1=w1, b1=b1, w2=w2, b2=b2):
        return w2 @ torch.tanh(w1 @ x + b1) + b2

    def rk4(x, params, n):
        h = 1.0 / n
        for i in range(n):
            t = i * h
            k1 = f(t, x, *params)
            k2 = f(t + h / 2, x + h / 2 * k1, *params)
            k3 = f(t + h / 2, x + h / 2 * k2, *params)
            k4 = f(t + h, x + h * k3, *params)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return x

    def dopri(x, n):
        # The same number of steps over the same span as diffeoflow's adaptive solve, 6
        # evaluations a step (FSAL); equal steps: the cost per evaluation is compared, not the
        # step control.
        h = dopri_time / n
        k = [f(0.0, x)]
        for i in range(n):
            t = i * h
            for s in range(1, 7):
                y = x + h * sum(a * ks for a, ks in zip(DOPRI_A[s], k))
                k.append(f(t + DOPRI_C[s] * h, y))
            x = y
            k = [k[-1]]
        return x

    x = torch.tensor(x0, dtype=torch.float64)
    with torch.no_grad():
        rk4_seconds, _ = median_time(lambda: rk4(x, (w1, b1, w2, b2), steps), repeat)
        dopri_seconds, _ = median_time(lambda: dopri(x, dopri_steps), repeat)

    def backward():
        params = [a.clone().requires_grad_(True) for a in (w1, b1, w2, b2)]
        x_leaf = x.clone().requires_grad_(True)
        out = rk4(x_leaf, params, steps)
        out.sum().backward()
        return x_leaf.grad

    gradient_seconds, _ = median_time(backward, repeat)
    return {
        "torch_version": torch.__version__,
        "rk4_nfe_per_second": 4 * steps / rk4_seconds,
        "dopri5_nfe_per_second": 6 * dopri_steps / dopri_seconds,
        "rk4_gradient_seconds": gradient_seconds,
        "rk4_gradient_evaluations_per_second": 4 * steps / gradient_seconds,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dopri-time", type=float, default=100.0,
                        help="Dopri5 integrates over [0, T] (enough steps to time)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    dynamics = Tiny()
    theta = 0.5 * rng.normal(size=dynamics.param_dim)
    x0 = np.array([0.5, -0.3])
    out = {"state_dim": 2, "hidden": HIDDEN, "param_dim": dynamics.param_dim,
           "steps": args.steps, "repeat": args.repeat, "dopri_time": args.dopri_time}

    seconds, (_, rk4) = median_time(
        lambda: diffeoflow.integrate(dynamics, x0, theta, [1.0], solver="rk4", steps=args.steps),
        args.repeat)
    out["diffeoflow_rk4_nfe_per_second"] = rk4.nfe / seconds
    rk4_us = 1e6 * seconds / rk4.nfe
    seconds, (_, dopri) = median_time(
        lambda: diffeoflow.integrate(dynamics, x0, theta, [args.dopri_time], solver="dopri5",
                                     rtol=1e-10, atol=1e-12), args.repeat)
    out["diffeoflow_dopri5_nfe_per_second"] = dopri.nfe / seconds
    out["dopri5_steps"] = dopri.steps_accepted + dopri.steps_rejected
    out["dopri5_nfe"] = dopri.nfe
    seconds, (_, _, summary) = median_time(
        lambda: diffeoflow.gradient(dynamics, x0, theta, [1.0], [[1.0, 1.0]], mode="discrete",
                                    solver="rk4", steps=args.steps), args.repeat)
    out["diffeoflow_rk4_gradient_seconds"] = seconds
    out["diffeoflow_rk4_gradient_calls"] = summary.nfe + summary.vjp_backward

    # The field alone, called from Python as the solver would (same x, theta each time).
    calls = 4 * args.steps
    seconds, _ = median_time(lambda: [field(0.0, x0, theta) for _ in range(calls)], args.repeat)
    numpy_us = 1e6 * seconds / calls
    out["numpy_field_us_per_call"] = numpy_us
    out["diffeoflow_rk4_us_per_call"] = rk4_us
    out["overhead_us_per_call"] = rk4_us - numpy_us
    decay = Decay()
    seconds, (_, s) = median_time(
        lambda: diffeoflow.integrate(decay, x0, None, [1.0], solver="rk4", steps=args.steps),
        args.repeat)
    seconds_bare, _ = median_time(lambda: [(lambda x: -x)(x0) for _ in range(s.nfe)], args.repeat)
    out["trivial_field_us_per_call"] = 1e6 * seconds / s.nfe
    out["trivial_overhead_us_per_call"] = 1e6 * (seconds - seconds_bare) / s.nfe

    try:
        torch = torch_figures(theta, x0, args.steps, out["dopri5_steps"], args.dopri_time,
                              args.repeat)
    except ImportError:
        torch = None
    out["torch"] = torch
    if torch:
        out["ratio_rk4_diffeoflow_over_torch"] = (out["diffeoflow_rk4_nfe_per_second"] /
                                                  torch["rk4_nfe_per_second"])
        out["ratio_dopri5_diffeoflow_over_torch"] = (out["diffeoflow_dopri5_nfe_per_second"] /
                                                     torch["dopri5_nfe_per_second"])
        out["ratio_gradient_time_diffeoflow_over_torch"] = (
            out["diffeoflow_rk4_gradient_seconds"] / torch["rk4_gradient_seconds"])
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
