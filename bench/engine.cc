// Engine benchmark: accuracy and cost of the three gradient modes on a linear system whose
// gradient is known in closed form (Fréchet derivative of the matrix exponential).
// Prints one JSON object: {"linear": [ {mode, method, rtol, steps, grad_rel_error, nfe_forward,
// nfe_backward, vjp_backward, states_held_peak, ms}, ... ]}.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include <nlohmann/json.hpp>
#include <unsupported/Eigen/MatrixFunctions>

#include "solvers/integrate.h"

namespace {

using diffeoflow::ConstVectorRef;
using diffeoflow::Matrix;
using diffeoflow::Vector;
using diffeoflow::VectorRef;

// dx/dt = A x on a batch: the same A acts on `batch` independent copies; θ = vec(A).
class BatchedLinear : public diffeoflow::Dynamics {
 public:
  BatchedLinear(Eigen::Index n, Eigen::Index batch) : n_(n), batch_(batch) {}
  Eigen::Index state_dim() const override { return n_ * batch_; }
  Eigen::Index param_dim() const override { return n_ * n_; }
  void f(double, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override {
    Eigen::Map<const Matrix> A(theta.data(), n_, n_);
    Eigen::Map<const Matrix> X(x.data(), n_, batch_);
    Eigen::Map<Matrix> out(dxdt.data(), n_, batch_);
    out.noalias() = A * X;
  }
  void vjp(double, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override {
    Eigen::Map<const Matrix> A(theta.data(), n_, n_);
    Eigen::Map<const Matrix> X(x.data(), n_, batch_);
    Eigen::Map<const Matrix> Abar(a.data(), n_, batch_);
    Eigen::Map<Matrix> ax(a_x.data(), n_, batch_);
    ax.noalias() = A.transpose() * Abar;
    Eigen::Map<Matrix> g(a_theta.data(), n_, n_);
    g.noalias() = Abar * X.transpose();
  }

 private:
  Eigen::Index n_, batch_;
};

}  // namespace

int main() {
  using namespace diffeoflow;
  const Eigen::Index n = 4, batch = 64;
  Matrix A(n, n);
  A << -0.4, 1.0, 0.2, 0.0,  //
      -1.0, -0.3, 0.4, 0.1,  //
      0.1, -0.6, -0.2, 0.5,  //
      0.0, 0.2, -0.5, -0.1;
  Matrix X0 = Matrix::NullaryExpr(n, batch, [](Eigen::Index i, Eigen::Index j) {
    return std::sin(1.0 + 0.7 * static_cast<double>(i) + 0.3 * static_cast<double>(j));
  });
  const Vector x0 = Eigen::Map<const Vector>(X0.data(), X0.size());
  const Vector theta = Eigen::Map<const Vector>(A.data(), A.size());
  // Exact gradient of L = ½‖X(1)‖²: ∂L/∂X0 = e^{Aᵀ} X1, ∂L/∂A_ij = ⟨X1, L(A, E_ij) X0⟩.
  const Matrix X1 = A.exp() * X0;
  const Matrix gX0 = A.exp().transpose() * X1;
  Vector gA(n * n);
  for (Eigen::Index j = 0; j < n; ++j) {
    for (Eigen::Index i = 0; i < n; ++i) {
      Matrix block = Matrix::Zero(2 * n, 2 * n);
      block.topLeftCorner(n, n) = A;
      block.bottomRightCorner(n, n) = A;
      block(i, n + j) = 1.0;
      gA[i + j * n] = (X1.array() * (block.exp().topRightCorner(n, n) * X0).array()).sum();
    }
  }
  Vector exact(gX0.size() + gA.size());
  exact << Eigen::Map<const Vector>(gX0.data(), gX0.size()), gA;

  const TrajectoryLoss loss = [](const std::vector<Vector>& xs, std::vector<Vector>& grads) {
    grads[0] = xs[0];
    return 0.5 * xs[0].squaredNorm();
  };
  BatchedLinear dynamics(n, batch);
  nlohmann::json rows = nlohmann::json::array();
  auto run = [&](GradientMode mode, Method method, double rtol, int steps) {
    SolverOptions options;
    options.method = method;
    options.rtol = rtol;
    options.atol = rtol * 1e-2;
    options.steps = steps;
    GradientOptions gopts;
    gopts.mode = mode;
    const auto start = std::chrono::steady_clock::now();
    const GradientResult r = Gradient(dynamics, x0, theta, {1.0}, loss, options, gopts);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    Vector got(exact.size());
    got << r.grad_x0, r.grad_theta;
    nlohmann::json row;
    row["mode"] = GradientModeName(mode);
    row["method"] = MethodName(method);
    if (IsAdaptive(method)) {
      row["rtol"] = rtol;
    } else {
      row["steps"] = steps;
    }
    row["grad_rel_error"] = (got - exact).norm() / exact.norm();
    row["nfe_forward"] = r.summary.nfe_forward;
    row["nfe_backward"] = r.summary.nfe_backward;
    row["vjp_backward"] = r.summary.vjp_backward;
    row["steps_accepted"] = r.summary.steps_accepted;
    row["backward_steps"] = r.summary.backward_steps_accepted;
    row["states_held_peak"] = r.summary.states_held_peak;
    row["ms"] = ms;
    rows.push_back(row);
  };
  for (GradientMode mode :
       {GradientMode::kDiscrete, GradientMode::kBacksolve, GradientMode::kCheckpointed}) {
    for (int steps : {10, 40, 160}) run(mode, Method::kRk4, 0.0 + 1e-6, steps);
    for (Method m : {Method::kDopri5, Method::kCashKarp54, Method::kFehlberg78}) {
      for (double rtol : {1e-4, 1e-7, 1e-10}) run(mode, m, rtol, 10);
    }
  }
  nlohmann::json out;
  out["problem"] = "dx/dt = A x, 4x4, batch 64, L = 0.5*|x(1)|^2, exact gradient via expm Frechet";
  out["linear"] = rows;
  std::cout << out.dump(1) << std::endl;
  return 0;
}
