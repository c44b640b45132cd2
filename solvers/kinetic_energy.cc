#include "solvers/kinetic_energy.h"

namespace diffeoflow {

KineticEnergyAugmented::KineticEnergyAugmented(Dynamics& inner, double weight)
    : inner_(inner), weight_(weight), f_(inner.state_dim()), a_inner_(inner.state_dim()) {}

void KineticEnergyAugmented::f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) {
  const Eigen::Index n = inner_.state_dim();
  inner_.f(t, x.head(n), theta, f_);
  dxdt.head(n) = f_;
  dxdt[n] = weight_ * f_.squaredNorm();
}

void KineticEnergyAugmented::vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                                 VectorRef a_x, VectorRef a_theta) {
  const Eigen::Index n = inner_.state_dim();
  inner_.f(t, x.head(n), theta, f_);
  a_inner_ = a.head(n) + (2.0 * weight_ * a[n]) * f_;
  inner_.vjp(t, x.head(n), theta, a_inner_, a_x.head(n), a_theta);
  a_x[n] = 0.0;  // e does not feed back into the dynamics
}

void KineticEnergyAugmented::ReserveSlots(int slots) {
  inner_.ReserveSlots(slots);
  if (static_cast<int>(slot_f_.size()) >= slots) return;
  slot_f_.resize(static_cast<std::size_t>(slots));
  for (Vector& v : slot_f_) v.resize(inner_.state_dim());
}

void KineticEnergyAugmented::f_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta,
                                    VectorRef dxdt) {
  const Eigen::Index n = inner_.state_dim();
  Vector& kept = slot_f_[static_cast<std::size_t>(slot)];
  inner_.f_slot(slot, t, x.head(n), theta, kept);
  dxdt.head(n) = kept;
  dxdt[n] = weight_ * kept.squaredNorm();
}

void KineticEnergyAugmented::vjp_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta,
                                      ConstVectorRef a, VectorRef a_x, VectorRef a_theta) {
  const Eigen::Index n = inner_.state_dim();
  a_inner_ = a.head(n) + (2.0 * weight_ * a[n]) * slot_f_[static_cast<std::size_t>(slot)];
  inner_.vjp_slot(slot, t, x.head(n), theta, a_inner_, a_x.head(n), a_theta);
  a_x[n] = 0.0;
}

void KineticEnergyAugmented::ForStateRanges(const RangeJob& job) {
  inner_.ForStateRanges(job);
  job(inner_.state_dim(), state_dim());
}

Vector KineticEnergyAugmented::Augment(const Vector& x0) const {
  Vector z(x0.size() + 1);
  z << x0, 0.0;
  return z;
}

}  // namespace diffeoflow
