// Central finite differences, the oracle every derivative in diffeoflow is tested against.
#pragma once

#include <functional>
#include <random>

#include "solvers/dynamics.h"

namespace diffeoflow {

// Central difference of fn at x along direction d: (fn(x + h d) − fn(x − h d)) / 2h.
double DirectionalDifference(const std::function<double(const Vector&)>& fn, const Vector& x,
                             const Vector& direction, double h = 1e-6);

// Full central-difference gradient (n evaluations pairs).
Vector NumericalGradient(const std::function<double(const Vector&)>& fn, const Vector& x,
                         double h = 1e-6);

struct GradientCheckResult {
  double analytic = 0.0;   // ⟨∇f, d⟩
  double numeric = 0.0;    // central difference along d
  double relative_error = 0.0;  // |a − n| / max(|a|, |n|, tiny)
};

// Compares ⟨gradient, d⟩ with the central difference along a random unit direction d.
GradientCheckResult CheckDirectionalDerivative(const std::function<double(const Vector&)>& fn,
                                               const Vector& x, const Vector& gradient,
                                               std::mt19937& rng, double h = 1e-6);

}  // namespace diffeoflow
