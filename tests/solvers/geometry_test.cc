// Geometry of flows: per-point Jacobians, pull-back metric, volume element, action.
#include "solvers/geometry.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "solvers/errors.h"
#include "solvers/gradient_check.h"
#include "solvers/kinetic_energy.h"
#include "tests/solvers/test_dynamics.h"

namespace diffeoflow {
namespace {

TEST(Geometry, VolumeElementOfALinearMapIsAbsDet) {
  std::mt19937 rng(11);
  std::normal_distribution<double> normal;
  for (int d : {1, 2, 3, 5}) {
    const Matrix A = Matrix::NullaryExpr(d, d, [&] { return normal(rng); });
    EXPECT_NEAR(VolumeElement(A), std::abs(A.determinant()), 1e-10 * std::max(1.0, std::abs(A.determinant())));
    EXPECT_NEAR(std::sqrt(PullbackMetric(A).determinant()), std::abs(A.determinant()), 1e-9);
  }
  // A 3×2 map (an embedding of the plane): √det(JᵀJ) is the area factor.
  Matrix J(3, 2);
  J << 1, 0, 0, 2, 0, 0;
  EXPECT_NEAR(VolumeElement(J), 2.0, 1e-14);
}

TEST(Geometry, MetricEllipseAxesSatisfyTheQuadraticForm) {
  Eigen::Matrix2d g;
  g << 4.0, 1.0, 1.0, 2.0;
  const Eigen::Matrix2d axes = MetricEllipseAxes(g, 0.5);
  for (int k = 0; k < 2; ++k) {
    EXPECT_NEAR(axes.col(k).dot(g * axes.col(k)), 0.25, 1e-12);
  }
  EXPECT_NEAR(axes.col(0).dot(axes.col(1)), 0.0, 1e-12);
}

TEST(Geometry, BatchJacobiansOfALinearFlowAreTheExponential) {
  // dx/dt = A x: the Jacobian of the flow is e^{At}, its volume element e^{t tr A}.
  testing::LinearDynamics single(2);
  Matrix A(2, 2);
  A << 0.3, -1.0, 0.8, -0.1;
  SolverOptions options;
  options.method = Method::kDopri5;
  options.rtol = 1e-10;
  options.atol = 1e-12;
  const Vector theta = Eigen::Map<const Vector>(A.data(), 4);
  const BatchSensitivity s = BatchForwardSensitivity(single, Vector::Ones(2), theta, 2, {1.0}, options);
  EXPECT_LT((s.jacobians[0][0] - A.exp()).norm(), 1e-8);
  EXPECT_NEAR(VolumeElement(s.jacobians[0][0]), std::exp(A.trace()), 1e-8);
}

TEST(Geometry, BatchJacobiansOfANetworkFlowEqualFiniteDifferences) {
  const Eigen::Index B = 5, D = 2;
  testing::TanhField field(B, D, 8);
  std::mt19937 rng(5);
  std::normal_distribution<double> normal;
  const Vector x0 = Vector::NullaryExpr(B * D, [&] { return normal(rng); });
  const Vector theta = Vector::NullaryExpr(field.param_dim(), [&] { return 0.7 * normal(rng); });
  SolverOptions options;
  options.method = Method::kDopri5;
  options.rtol = 1e-11;
  options.atol = 1e-12;
  const BatchSensitivity s = BatchForwardSensitivity(field, x0, theta, D, {1.0}, options);
  const double h = 1e-5;
  for (Eigen::Index b = 0; b < B; ++b) {
    for (Eigen::Index k = 0; k < D; ++k) {
      Vector plus = x0, minus = x0;
      plus[b * D + k] += h;
      minus[b * D + k] -= h;
      const Vector diff = (Integrate(field, plus, theta, {1.0}, options).states[0] -
                           Integrate(field, minus, theta, {1.0}, options).states[0]) / (2 * h);
      EXPECT_LT((s.jacobians[0][b].col(k) - diff.segment(b * D, D)).norm(), 1e-6);
      // Points move independently: the other points did not move.
      for (Eigen::Index c = 0; c < B; ++c) {
        if (c != b) {
          EXPECT_LT(diff.segment(c * D, D).norm(), 1e-8);
        }
      }
    }
  }
  EXPECT_THROW(BatchForwardSensitivity(field, x0, theta, 3, {1.0}, options), InputError);
}

TEST(KineticEnergyAugmented, ActionOfALinearFlowMatchesQuadrature) {
  testing::LinearDynamics linear(2);
  Matrix A(2, 2);
  A << -0.2, 1.0, -1.0, -0.2;
  const Vector theta = Eigen::Map<const Vector>(A.data(), 4);
  Vector x0(2);
  x0 << 1.0, 0.5;
  KineticEnergyAugmented augmented(linear, 1.0);
  SolverOptions options;
  options.method = Method::kDopri5;
  options.rtol = 1e-11;
  options.atol = 1e-13;
  const Solution s = Integrate(augmented, augmented.Augment(x0), theta, {1.0}, options);
  // ∫₀¹ ‖A e^{As} x0‖² ds by composite Simpson on the exact solution.
  const int m = 2000;
  double integral = 0.0;
  for (int i = 0; i <= m; ++i) {
    const double t = static_cast<double>(i) / m;
    const double w = (i == 0 || i == m) ? 1.0 : (i % 2 == 1 ? 4.0 : 2.0);
    integral += w * (A * (t * A).exp() * x0).squaredNorm();
  }
  integral /= 3.0 * m;
  EXPECT_NEAR(s.states[0][2], integral, 1e-9);
}

class KineticEnergyGradient : public ::testing::TestWithParam<GradientMode> {};

// RNODE's regulariser as an extra state: the gradient of action + ½‖x(1)‖² with respect to θ and
// x0 equals central differences in every mode — of the discrete map (RK4, 16 steps) for the
// discrete adjoint, of the accurately solved ODE (Dopri5, rtol 1e-10) for the continuous ones.
TEST_P(KineticEnergyGradient, GradientOfTheActionEqualsFiniteDifferences) {
  const GradientMode mode = GetParam();
  testing::TanhField field(3, 2, 5);
  std::mt19937 rng(9);
  std::normal_distribution<double> normal;
  const Vector x0 = Vector::NullaryExpr(6, [&] { return normal(rng); });
  const Vector theta = Vector::NullaryExpr(field.param_dim(), [&] { return 0.5 * normal(rng); });
  KineticEnergyAugmented augmented(field, 1.0 / 3.0);
  SolverOptions options;
  double tolerance = 1e-7;
  if (mode == GradientMode::kDiscrete) {
    options.method = Method::kRk4;
    options.steps = 16;
  } else {
    options.method = Method::kDopri5;
    options.rtol = 1e-10;
    options.atol = 1e-12;
    tolerance = 1e-5;
  }
  GradientOptions gopts;
  gopts.mode = mode;
  // L = action + ½‖x(1)‖², with a loss term at t = 0.5 too.
  const TrajectoryLoss loss = [](const std::vector<Vector>& zs, std::vector<Vector>& grads) {
    const Eigen::Index n = zs[0].size() - 1;
    grads[0].head(n) = 0.5 * zs[0].head(n);
    grads[1].head(n) = zs[1].head(n);
    grads[1][n] = 1.0;
    return zs[1][n] + 0.25 * zs[0].head(n).squaredNorm() + 0.5 * zs[1].head(n).squaredNorm();
  };
  const std::vector<double> times = {0.5, 1.0};
  const Vector z0 = augmented.Augment(x0);
  const GradientResult r = Gradient(augmented, z0, theta, times, loss, options, gopts);
  const auto value = [&](const Vector& z, const Vector& th) {
    const Solution s = Integrate(augmented, z, th, times, options);
    std::vector<Vector> g(2, Vector::Zero(z0.size()));
    return loss(s.states, g);
  };
  const Vector fd_theta =
      NumericalGradient([&](const Vector& th) { return value(z0, th); }, theta, 1e-6);
  EXPECT_LT((r.grad_theta - fd_theta).norm() / fd_theta.norm(), tolerance);
  const Vector fd_x0 = NumericalGradient(
      [&](const Vector& x) { return value(augmented.Augment(x), theta); }, x0, 1e-6);
  EXPECT_LT((r.grad_x0.head(6) - fd_x0).norm() / fd_x0.norm(), tolerance);
}

INSTANTIATE_TEST_SUITE_P(Modes, KineticEnergyGradient,
                         ::testing::Values(GradientMode::kDiscrete, GradientMode::kBacksolve,
                                           GradientMode::kCheckpointed),
                         [](const auto& info) { return GradientModeName(info.param); });

}  // namespace
}  // namespace diffeoflow
