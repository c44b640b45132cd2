// Helpers shared by the flows tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

#include "flows/classifier.h"
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

// The convolutional ODE-Net on one-channel images of the given size: RK4, discrete adjoint.
inline ModelSpec ConvSpec(std::int64_t height, std::int64_t width, int classes, int channels,
                          int steps, Precision precision) {
  ModelSpec spec;
  spec.kind = ModelKind::kOdeNet;
  spec.input_shape = {1, height, width};
  spec.classes = classes;
  spec.width = channels;
  spec.precision = precision;
  spec.solver.method = Method::kRk4;
  spec.solver.steps = steps;
  spec.gradient.mode = GradientMode::kDiscrete;
  return spec;
}

}  // namespace diffeoflow::flows::testing
