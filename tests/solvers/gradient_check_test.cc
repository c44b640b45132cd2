#include "solvers/gradient_check.h"

#include <gtest/gtest.h>

#include <cmath>

namespace diffeoflow {
namespace {

// f(x) = sin(x0) x1² + exp(0.5 x2) + x0 x2, with its gradient.
double Smooth(const Vector& x) {
  return std::sin(x[0]) * x[1] * x[1] + std::exp(0.5 * x[2]) + x[0] * x[2];
}
Vector SmoothGradient(const Vector& x) {
  Vector g(3);
  g << std::cos(x[0]) * x[1] * x[1] + x[2], 2.0 * std::sin(x[0]) * x[1],
      0.5 * std::exp(0.5 * x[2]) + x[0];
  return g;
}

TEST(GradientCheckTest, NumericalGradientMatchesTheAnalyticGradient) {
  Vector x(3);
  x << 0.3, -1.2, 0.7;
  const Vector numeric = NumericalGradient(Smooth, x);
  const Vector analytic = SmoothGradient(x);
  EXPECT_LT((numeric - analytic).norm(), 1e-8 * analytic.norm());
}

TEST(GradientCheckTest, CentralDifferenceIsExactForQuadratics) {
  // The O(h²) error term involves the third derivative, which vanishes for a quadratic.
  const auto quadratic = [](const Vector& x) { return 3.0 * x[0] * x[0] - x[0] * x[1] + 2.0; };
  Vector x(2);
  x << 1.5, -2.0;
  Vector d(2);
  d << 0.6, 0.8;
  const double exact = (6.0 * x[0] - x[1]) * d[0] + (-x[0]) * d[1];
  EXPECT_NEAR(DirectionalDifference(quadratic, x, d, 1e-3), exact, 1e-9);
}

TEST(GradientCheckTest, DirectionalCheckAcceptsTheRightGradientAndRejectsAWrongOne) {
  std::mt19937 rng(5);
  Vector x(3);
  x << -0.4, 0.9, 1.1;
  for (int trial = 0; trial < 5; ++trial) {
    const GradientCheckResult good = CheckDirectionalDerivative(Smooth, x, SmoothGradient(x), rng);
    EXPECT_LT(good.relative_error, 1e-7);
    EXPECT_NEAR(good.analytic, good.numeric, 1e-7 * std::abs(good.analytic) + 1e-12);
  }
  Vector wrong = SmoothGradient(x);
  wrong *= 1.01;  // a 1% error in every component
  const GradientCheckResult bad = CheckDirectionalDerivative(Smooth, x, wrong, rng);
  EXPECT_GT(bad.relative_error, 5e-3);
  EXPECT_LT(bad.relative_error, 2e-2);
}

TEST(GradientCheckTest, DirectionsAreUnitVectors) {
  // For a linear function the central difference along d is cᵀd exactly, and with the analytic
  // gradient 0 the check reports analytic 0 and numeric = cᵀd, whose size is at most ‖c‖.
  std::mt19937 rng(9);
  Vector c(4);
  c << 1.0, -2.0, 0.5, 3.0;
  const auto linear = [&c](const Vector& x) { return c.dot(x); };
  double largest = 0.0;
  for (int trial = 0; trial < 200; ++trial) {
    const GradientCheckResult result =
        CheckDirectionalDerivative(linear, Vector::Zero(4), Vector::Zero(4), rng);
    EXPECT_EQ(result.analytic, 0.0);
    EXPECT_LE(std::abs(result.numeric), c.norm() * (1.0 + 1e-9));
    largest = std::max(largest, std::abs(result.numeric));
  }
  EXPECT_GT(largest, 0.8 * c.norm());  // random directions come close to c/‖c‖
}

}  // namespace
}  // namespace diffeoflow
