// Helpers shared by the flows tests.
#pragma once

#include <algorithm>
#include <random>

#include "solvers/dynamics.h"

namespace diffeoflow::flows::testing {

inline Vector RandomVector(Eigen::Index n, std::mt19937& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  Vector v(n);
  for (Eigen::Index i = 0; i < n; ++i) v[i] = normal(rng);
  return v;
}

// max |a − b| / max(‖b‖∞, 1e-12): error relative to the size of the reference.
inline double RelativeMaxError(const Vector& a, const Vector& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(b.cwiseAbs().maxCoeff(), 1e-12);
}

}  // namespace diffeoflow::flows::testing
