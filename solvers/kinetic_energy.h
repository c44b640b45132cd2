// The action (kinetic energy) of a flow as an extra state of the ODE:
//
//   d/dt [x, e] = [f(t, x; θ), w ‖f(t, x; θ)‖²],     e(t1) = w ∫ ‖f‖² dt
//
// with w = 1 / (number of points) when the state is a batch, so that e is the mean action per point
// (the regulariser of Finlay et al. 2020, "How to train your neural ODE"). Its VJP reuses the inner
// one: for a = [a_x, a_e],  aᵀ∂F/∂x = vjp_f(a_x + 2 w a_e f),  aᵀ∂F/∂θ likewise, so the augmented
// system costs one f and one vjp of the inner dynamics per evaluation.
#pragma once

#include <vector>

#include "solvers/dynamics.h"

namespace diffeoflow {

class KineticEnergyAugmented : public Dynamics {
 public:
  // `inner` must outlive this object. `weight` multiplies ‖f‖² (1/B for a batch of B points).
  KineticEnergyAugmented(Dynamics& inner, double weight);

  Eigen::Index state_dim() const override { return inner_.state_dim() + 1; }
  Eigen::Index param_dim() const override { return inner_.param_dim(); }
  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override;

  // The replay contract (solvers/dynamics.h), passed on to the inner dynamics' slots; slot s also
  // keeps the inner f for the vjp.
  void ReserveSlots(int slots) override;
  void f_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                VectorRef a_x, VectorRef a_theta) override;

  // The inner dynamics' ranges, then the action's entry on the caller.
  void ForStateRanges(const RangeJob& job) override;

  // [x0, 0]
  Vector Augment(const Vector& x0) const;

 private:
  Dynamics& inner_;
  double weight_;
  Vector f_, a_inner_;
  std::vector<Vector> slot_f_;  // the inner f kept by f_slot, by slot
};

}  // namespace diffeoflow
