// The VJP check the registration Dynamics share: ⟨a, ∂f/∂x u⟩ + ⟨a, ∂f/∂θ s⟩ against the central
// difference of ⟨a, f⟩ along random (u, s).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "solvers/dynamics.h"

namespace diffeoflow::testing {

inline Vector RandomVector(Eigen::Index n, std::mt19937& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  Vector v(n);
  for (Eigen::Index i = 0; i < n; ++i) v[i] = normal(rng);
  return v;
}

inline void ExpectVjpMatchesFiniteDifference(Dynamics& dynamics, double t, const Vector& x,
                                             const Vector& theta, std::mt19937& rng) {
  const Vector a = RandomVector(dynamics.state_dim(), rng);
  const Vector u = RandomVector(dynamics.state_dim(), rng);
  const Vector s = RandomVector(dynamics.param_dim(), rng);
  Vector a_x(dynamics.state_dim()), a_theta(dynamics.param_dim());
  dynamics.vjp(t, x, theta, a, a_x, a_theta);
  const double analytic = a_x.dot(u) + a_theta.dot(s);
  const double h = 1e-6;
  Vector fp(dynamics.state_dim()), fm(dynamics.state_dim());
  dynamics.f(t, x + h * u, theta + h * s, fp);
  dynamics.f(t, x - h * u, theta - h * s, fm);
  const double numeric = a.dot(fp - fm) / (2 * h);
  EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric)))
      << "t = " << t << ": analytic " << analytic << " numeric " << numeric;
}

}  // namespace diffeoflow::testing
