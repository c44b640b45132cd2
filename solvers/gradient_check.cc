#include "solvers/gradient_check.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace diffeoflow {

double DirectionalDifference(const std::function<double(const Vector&)>& fn, const Vector& x,
                             const Vector& direction, double h) {
  const Vector forward = x + h * direction;
  const Vector backward = x - h * direction;
  return (fn(forward) - fn(backward)) / (2.0 * h);
}

Vector NumericalGradient(const std::function<double(const Vector&)>& fn, const Vector& x,
                         double h) {
  Vector gradient(x.size());
  Vector shifted = x;
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    shifted[i] = x[i] + h;
    const double forward = fn(shifted);
    shifted[i] = x[i] - h;
    const double backward = fn(shifted);
    shifted[i] = x[i];
    gradient[i] = (forward - backward) / (2.0 * h);
  }
  return gradient;
}

GradientCheckResult CheckDirectionalDerivative(const std::function<double(const Vector&)>& fn,
                                               const Vector& x, const Vector& gradient,
                                               std::mt19937& rng, double h) {
  if (gradient.size() != x.size()) {
    throw std::invalid_argument("CheckDirectionalDerivative: gradient has " +
                                std::to_string(gradient.size()) + " entries, x has " +
                                std::to_string(x.size()));
  }
  std::normal_distribution<double> normal(0.0, 1.0);
  Vector direction(x.size());
  do {
    for (Eigen::Index i = 0; i < direction.size(); ++i) direction[i] = normal(rng);
  } while (direction.size() > 0 && direction.norm() == 0.0);
  if (direction.size() > 0) direction.normalize();

  GradientCheckResult result;
  result.analytic = gradient.dot(direction);
  result.numeric = DirectionalDifference(fn, x, direction, h);
  const double scale = std::max({std::abs(result.analytic), std::abs(result.numeric),
                                 std::numeric_limits<double>::min()});
  result.relative_error = std::abs(result.analytic - result.numeric) / scale;
  return result;
}

}  // namespace diffeoflow
