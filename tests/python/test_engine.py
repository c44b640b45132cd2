"""The ODE engine from Python: a Dynamics defined in Python, integrate() and gradient()."""
import os
import signal

import numpy as np
import pytest

import diffeoflow


class Decay(diffeoflow.Dynamics):
    """dx/dt = -x, counting its calls."""

    def __init__(self, n=1):
        super().__init__(n, 0)
        self.calls = 0

    def f(self, t, x, theta):
        self.calls += 1
        return -x


class TanhField(diffeoflow.Dynamics):
    """dx/dt = W2 tanh(W1 x + t c + b1) + b2 on a state of `dim`, with `hidden` units; theta packs
    W1, c, b1, W2, b2 (row-major)."""

    def __init__(self, dim=2, hidden=8):
        self.dim, self.hidden = dim, hidden
        super().__init__(dim, hidden * dim + 2 * hidden + dim * hidden + dim)

    def unpack(self, theta):
        d, h = self.dim, self.hidden
        sizes = [h * d, h, h, d * h, d]
        w1, c, b1, w2, b2 = np.split(theta, np.cumsum(sizes)[:-1])
        return w1.reshape(h, d), c, b1, w2.reshape(d, h), b2

    def f(self, t, x, theta):
        w1, c, b1, w2, b2 = self.unpack(theta)
        return w2 @ np.tanh(w1 @ x + t * c + b1) + b2

    def vjp(self, t, x, theta, a):
        w1, c, b1, w2, b2 = self.unpack(theta)
        h = np.tanh(w1 @ x + t * c + b1)
        dz = (w2.T @ a) * (1.0 - h**2)
        a_theta = np.concatenate([np.outer(dz, x).ravel(), t * dz, dz, np.outer(a, h).ravel(), a])
        return w1.T @ dz, a_theta


def central_differences(fun, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (fun(x + e) - fun(x - e)) / (2 * eps)
    return g


def tanh_field():
    rng = np.random.default_rng(11)
    dynamics = TanhField()
    theta = 0.7 * rng.normal(size=dynamics.param_dim)
    x0 = np.array([0.4, -0.8])
    return dynamics, x0, theta


@pytest.fixture
def field():
    return tanh_field()


# The gradient test's loss, L = sum_i G[i] . x(t_i), and its solver.
TIMES = np.array([0.5, 1.0])
G = np.array([[1.0, -2.0], [0.5, 3.0]])
SOLVER = dict(solver="rk4", steps=100)


@pytest.fixture(scope="module")
def finite_differences():
    """dL/dx0 and dL/dtheta by central differences of integrate(), once for the three modes."""
    dynamics, x0, theta = tanh_field()

    def loss(x, p):
        states, _ = diffeoflow.integrate(dynamics, x, p, TIMES, **SOLVER)
        return np.sum(G * states)

    return (central_differences(lambda x: loss(x, theta), x0),
            central_differences(lambda p: loss(x0, p), theta))


def test_decay_matches_exp():
    times = np.linspace(0.0, 2.0, 5)
    x0 = np.array([1.0, -3.0])
    rk4 = Decay(2)
    states, summary = diffeoflow.integrate(rk4, x0, None, times, solver="rk4", steps=40)
    np.testing.assert_allclose(states, np.exp(-times)[:, None] * x0, rtol=1e-6, atol=0)
    # The Summary counts the Python calls: RK4 takes four a step.
    assert summary.nfe_forward == rk4.calls == 4 * 40
    assert summary.steps_accepted == 40 and summary.steps_rejected == 0

    dopri = Decay(2)
    states, summary = diffeoflow.integrate(dopri, x0, None, times, solver="dopri5", rtol=1e-9,
                                           atol=1e-12)
    np.testing.assert_allclose(states, np.exp(-times)[:, None] * x0, rtol=1e-8, atol=0)
    assert summary.nfe == summary.nfe_forward == dopri.calls > 0
    assert summary.steps_accepted > 4
    assert "nfe" in repr(summary)


def test_vjp_of_the_test_field_is_its_derivative(field):
    # The helper the gradient test relies on: vjp against central differences of f.
    dynamics, x0, theta = field
    a = np.array([0.3, -1.1])
    a_x, a_theta = dynamics.vjp(0.3, x0, theta, a)
    np.testing.assert_allclose(
        a_x, central_differences(lambda x: a @ dynamics.f(0.3, x, theta), x0), rtol=1e-7)
    np.testing.assert_allclose(
        a_theta, central_differences(lambda p: a @ dynamics.f(0.3, x0, p), theta), atol=1e-8)


@pytest.mark.parametrize("mode,tolerance", [("discrete", 1e-7), ("backsolve", 1e-6),
                                            ("checkpointed", 1e-6)])
def test_gradient_matches_finite_differences(field, finite_differences, mode, tolerance):
    dynamics, x0, theta = field
    fd_x0, fd_theta = finite_differences
    grad_x0, grad_theta, summary = diffeoflow.gradient(dynamics, x0, theta, TIMES, G, mode=mode,
                                                       **SOLVER)
    assert grad_x0.shape == (2,) and grad_theta.shape == (dynamics.param_dim,)
    assert summary.vjp_backward > 0
    scale = np.abs(fd_theta).max()
    np.testing.assert_allclose(grad_x0, fd_x0, atol=tolerance * scale)
    np.testing.assert_allclose(grad_theta, fd_theta, atol=tolerance * scale)

    # A callable loss: L = 0.5 |x(1)|^2 gives the same gradient as the array of its dL/dx.
    times, options = TIMES, SOLVER
    states, _ = diffeoflow.integrate(dynamics, x0, theta, times, **options)
    quadratic = np.stack([np.zeros(2), states[1]])

    def half_square(s):
        return 0.5 * s[1] @ s[1], np.stack([np.zeros(2), s[1]])

    by_callable = diffeoflow.gradient(dynamics, x0, theta, times, half_square, mode=mode,
                                      **options)
    by_array = diffeoflow.gradient(dynamics, x0, theta, times, quadratic, mode=mode, **options)
    np.testing.assert_allclose(by_callable[0], by_array[0], rtol=1e-12)
    np.testing.assert_allclose(by_callable[1], by_array[1], rtol=1e-12)


def test_python_exceptions_reach_the_caller(field):
    class Boom(Exception):
        pass

    class Failing(Decay):
        def f(self, t, x, theta):
            if self.calls == 3:
                raise Boom("from f")
            return super().f(t, x, theta)

    with pytest.raises(Boom, match="from f"):
        diffeoflow.integrate(Failing(), [1.0], None, [1.0])

    class WrongSize(Decay):
        def f(self, t, x, theta):
            return np.zeros(3)

    with pytest.raises(ValueError, match=r"Dynamics.f: expected shape \(1,\), got \(3,\)"):
        diffeoflow.integrate(WrongSize(), [1.0], None, [1.0])
    # Decay has no vjp.
    with pytest.raises(NotImplementedError, match="vjp"):
        diffeoflow.gradient(Decay(), [1.0], None, [1.0], [[1.0]])
    # Ctrl-C inside the solve: Python's handler runs in the next callback.
    class Interrupted(Decay):
        def f(self, t, x, theta):
            if self.calls == 5:
                os.kill(os.getpid(), signal.SIGINT)
            return super().f(t, x, theta)

    with pytest.raises(KeyboardInterrupt):
        diffeoflow.integrate(Interrupted(), [1.0], None, [1.0], steps=100)


def test_bad_arguments(field):
    dynamics, x0, theta = field
    with pytest.raises(ValueError, match="solver: unknown solver 'rk5'"):
        diffeoflow.integrate(dynamics, x0, theta, [1.0], solver="rk5")
    with pytest.raises(ValueError, match="mode: unknown gradient mode 'adjoint'"):
        diffeoflow.gradient(dynamics, x0, theta, [1.0], [[1.0, 1.0]], mode="adjoint")
    with pytest.raises(ValueError, match="solver option steps must be >= 1"):
        diffeoflow.integrate(dynamics, x0, theta, [1.0], steps=0)
    with pytest.raises(ValueError, match="x0 has 3 entries, the dynamics expects 2"):
        diffeoflow.integrate(dynamics, np.zeros(3), theta, [1.0])
    with pytest.raises(ValueError, match=r"loss_gradients: expected shape \(2, 2\)"):
        diffeoflow.gradient(dynamics, x0, theta, [0.5, 1.0], np.ones((1, 2)))
    with pytest.raises(TypeError, match="x0: expected a real-valued array, got str"):
        diffeoflow.integrate(dynamics, "x", theta, [1.0])
    with pytest.raises(ValueError, match="state_dim must be >= 1"):
        diffeoflow.Dynamics(0, 0)
