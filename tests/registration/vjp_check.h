// The registration Dynamics' tests draw random states with RandomVector and run each Dynamics
// through the contract check (tests/common/dynamics_check.h) at several points.
#pragma once

#include <random>

#include "tests/common/dynamics_check.h"

namespace diffeoflow::testing {

inline Vector RandomVector(Eigen::Index n, std::mt19937& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  Vector v(n);
  for (Eigen::Index i = 0; i < n; ++i) v[i] = normal(rng);
  return v;
}

// The contract at (t, x, θ), with directions seeded from rng.
inline void ExpectVjpMatchesFiniteDifference(Dynamics& dynamics, double t, const Vector& x,
                                             const Vector& theta, std::mt19937& rng) {
  DynamicsCheckOptions options;
  options.seed = static_cast<std::uint32_t>(rng());
  ExpectDynamicsContract(dynamics, t, x, theta, options);
}

}  // namespace diffeoflow::testing
