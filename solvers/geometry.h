// Geometry of a flow map φ: x0 ↦ x(t1), shared by networks and registration maps.
//
//   Jacobian        J = ∂φ/∂x0                      (forward sensitivity, solvers/integrate.h)
//   pull-back       g = Jᵀ J                        (the Euclidean metric of the output pulled back)
//   volume element  √det g  (= |det J| when J is square; det Dφ for a registration map)
//   metric ellipse  {v : vᵀ g v = 1}: semi-axes 1/√λ_k along the eigenvectors of g
//
// References: Hauser & Ray, "Principles of Riemannian geometry in neural networks" (NeurIPS 2017);
// Benfenati & Marta, "A singular Riemannian geometry approach to deep neural networks" (2023).
#pragma once

#include <vector>

#include "solvers/integrate.h"

namespace diffeoflow {

// Per-point Jacobians of a batched flow whose points move independently (the state is B points of
// dimension `point_dim`, stored point after point, and f of one point does not depend on the
// others). ∂f/∂x is then block diagonal and its blocks come from `point_dim` vjp calls on the whole
// batch, so the cost is point_dim vjps per right-hand side instead of B·point_dim.
// Returns, for each output time, the B Jacobians ∂x_b(t_i)/∂x_b(t0) (point_dim × point_dim).
struct BatchSensitivity {
  std::vector<double> times;
  std::vector<Vector> states;
  std::vector<std::vector<Matrix>> jacobians;  // [time][point]
  SolveSummary summary;
};
BatchSensitivity BatchForwardSensitivity(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                                         Eigen::Index point_dim,
                                         const std::vector<double>& output_times,
                                         const SolverOptions& options);

// g = JᵀJ for an m × d Jacobian (m outputs, d inputs).
Matrix PullbackMetric(const Matrix& jacobian);

// √det(JᵀJ): the factor by which φ scales d-dimensional volume. For square J this is |det J|.
// Computed from the singular values of J for accuracy (no squaring of the condition number).
double VolumeElement(const Matrix& jacobian);

// Semi-axes of the ellipse {v : vᵀ g v = r²} in 2-D: columns are the axis vectors (length r/√λ_k).
Eigen::Matrix2d MetricEllipseAxes(const Eigen::Matrix2d& metric, double r = 1.0);

}  // namespace diffeoflow
