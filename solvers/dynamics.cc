#include "solvers/dynamics.h"

namespace diffeoflow {

void Dynamics::ReserveSlots(int /*slots*/) {}

void Dynamics::ForStateRanges(const RangeJob& job) { job(0, state_dim()); }

void Dynamics::f_slot(int /*slot*/, double t, ConstVectorRef x, ConstVectorRef theta,
                      VectorRef dxdt) {
  f(t, x, theta, dxdt);
}

void Dynamics::vjp_slot(int /*slot*/, double t, ConstVectorRef x, ConstVectorRef theta,
                        ConstVectorRef a, VectorRef a_x, VectorRef a_theta) {
  vjp(t, x, theta, a, a_x, a_theta);
}

Matrix Dynamics::JacobianX(double t, ConstVectorRef x, ConstVectorRef theta) {
  const Eigen::Index n = state_dim();
  Matrix jacobian(n, n);
  unit_.setZero(n);
  row_.resize(n);
  theta_row_.resize(param_dim());
  for (Eigen::Index i = 0; i < n; ++i) {
    unit_[i] = 1.0;
    vjp(t, x, theta, unit_, row_, theta_row_);
    jacobian.row(i) = row_.transpose();
    unit_[i] = 0.0;
  }
  return jacobian;
}

}  // namespace diffeoflow
