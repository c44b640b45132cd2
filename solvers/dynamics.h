// The seam of diffeoflow: a right-hand side dx/dt = f(t, x; θ) and its vector–Jacobian products.
//
//   f:    dxdt = f(t, x; θ)
//   vjp:  given a, return  a_x = aᵀ ∂f/∂x  and  a_θ = aᵀ ∂f/∂θ
//
// The integrator and the adjoint never know what moves: a batch of feature vectors through a
// network (batches are rows of one state vector), or grid points through a velocity field.
// A new model is a new Dynamics; nothing in solvers/ changes for it.
//
// Rules a Dynamics keeps:
//  - f and vjp overwrite their outputs (they never accumulate), and do not allocate: workspaces
//    belong to the Dynamics and are reused.
//  - state_dim() and param_dim() are fixed for the lifetime of the object. θ is one contiguous
//    vector, the same memory odeint, the adjoint and Ceres see.
//  - Calls are not re-entrant: one Dynamics object serves one solve at a time.
#pragma once

#include <Eigen/Core>

namespace diffeoflow {

using Vector = Eigen::VectorXd;
using Matrix = Eigen::MatrixXd;
using ConstVectorRef = Eigen::Ref<const Eigen::VectorXd>;
using VectorRef = Eigen::Ref<Eigen::VectorXd>;

class Dynamics {
 public:
  virtual ~Dynamics() = default;

  virtual Eigen::Index state_dim() const = 0;
  virtual Eigen::Index param_dim() const = 0;

  // dxdt = f(t, x; θ).
  virtual void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) = 0;

  // a_x = aᵀ ∂f/∂x (size state_dim), a_theta = aᵀ ∂f/∂θ (size param_dim). Both overwritten.
  virtual void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                   VectorRef a_x, VectorRef a_theta) = 0;

  // ∂f/∂x as a dense matrix (state_dim × state_dim) from state_dim() vjp calls with unit vectors:
  // right for the small systems forward sensitivity (ForwardSensitivity) is meant for.
  Matrix JacobianX(double t, ConstVectorRef x, ConstVectorRef theta);

 private:
  Vector unit_, row_, theta_row_;
};

}  // namespace diffeoflow
