// The Jacobian-norm regulariser of RNODE (Finlay, Jacobsen, Nurbekyan & Oberman 2020, "How to
// train your neural ODE") as an extra state of the ODE:
//
//   d/dt [z, r] = [F(t, z; θ), w ‖εᵀ ∂f/∂x‖²],     r(t1) = w ∫ ‖εᵀ ∂f/∂x‖² dt,
//
// where z's first n = D·B entries are the batch x of B samples of D features that a NetworkField
// f moves (f(x)_b = g(t, x_b; θ), flows/field.h), F is the inner dynamics (the field itself, or
// the field with the kinetic-energy state: solvers/kinetic_energy.h), ε is a fixed probe
// (Hutchinson's estimator of ‖∂f/∂x‖²_F: Rademacher entries, E[‖εᵀJ‖²] = ‖J‖²_F) and w = 1/B makes
// r the mean over the samples.
//
// The gradient is exact (no finite differences): with G = εᵀ ∂f/∂x and u = 2 w a_r G held fixed,
// aᵀ∂/∂(x, θ) of the r-row is ∂/∂(x, θ) Σ_b ε_bᵀ (∂g/∂x_b) u_b — the derivative of a
// Jacobian–vector product, computed by carrying tangents u through the network's forward pass and
// back-propagating through both (forward-over-reverse: Layer::Tangent and Layer::TangentBackward,
// flows/layers.h). Every layer of g must have them: Linear and the activations (MLP fields),
// Conv2d and GroupNorm (the convolutional ODE-Net's field).
#pragma once

#include <memory>
#include <random>
#include <vector>

#include "flows/field.h"
#include "solvers/dynamics.h"

namespace diffeoflow::flows {

// The passes over a field's network that the regulariser needs: Σ_b ‖ε_bᵀ ∂g/∂x_b‖² and its
// gradient, split over the field's shards (and run on its workers) like the field itself. Holds a
// copy of the network and its workspaces for each shard, so make one per field and keep it.
class JacobianProbe {
 public:
  // `field` must outlive this object. InputError when a layer of its network has no tangent pass.
  explicit JacobianProbe(NetworkField& field);
  ~JacobianProbe();
  JacobianProbe(const JacobianProbe&) = delete;
  JacobianProbe& operator=(const JacobianProbe&) = delete;

  Index features() const { return features_; }
  Index batch() const { return batch_; }
  Index param_dim() const { return param_dim_; }

  // The probe ε (features·batch entries, the layout of the batch); Rademacher by DrawProbe.
  void SetProbe(const Vector& probe);
  void DrawProbe(std::mt19937& rng);
  const Vector& probe() const { return probe_; }

  // Σ_b ‖ε_bᵀ ∂g/∂x_b‖² at the batch x (the first features·batch entries of `x`).
  double SquaredNorm(double t, const double* x, const double* theta);
  // Adds scale · ∂/∂x and scale · ∂/∂θ of SquaredNorm into x_bar (features·batch entries) and
  // theta_bar (param_dim).
  void AddGradient(double t, const double* x, const double* theta, double scale, double* x_bar,
                   double* theta_bar);

 private:
  struct Shard;  // one shard's network copy, workspaces and partial results
  // The forward pass of one shard's samples x and εᵀ ∂g/∂x for its part of the probe (into g).
  void ProbePass(Shard& shard, double t, const double* x, const double* theta,
                 ConstMatrixView probe);

  NetworkField& field_;
  Index features_, batch_, param_dim_;
  Vector probe_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

class JacobianNormAugmented : public Dynamics {
 public:
  // `inner` and `probe` must outlive this object; inner's first features·batch state entries are
  // the batch that probe's field moves, with its θ. `weight` multiplies ‖εᵀ∂f/∂x‖² (1/B for a
  // batch of B). InputError when the sizes do not match.
  JacobianNormAugmented(Dynamics& inner, JacobianProbe& probe, double weight);

  Eigen::Index state_dim() const override { return inner_.state_dim() + 1; }
  Eigen::Index param_dim() const override { return inner_.param_dim(); }
  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override;

  // The replay contract (solvers/dynamics.h) is passed on to the inner dynamics; the regulariser's
  // own passes are recomputed in vjp_slot.
  void ReserveSlots(int slots) override { inner_.ReserveSlots(slots); }
  void f_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                VectorRef a_x, VectorRef a_theta) override;

  // The inner dynamics' ranges, then the regulariser's entry on the caller.
  void ForStateRanges(const RangeJob& job) override {
    inner_.ForStateRanges(job);
    job(inner_.state_dim(), state_dim());
  }

  // [z0, 0]
  Vector Augment(const Vector& z0) const;

 private:
  // The r-row's vjp, a_r = a[last], added into a_x (first n entries) and a_theta.
  void AddRegulariserVjp(double t, ConstVectorRef x, ConstVectorRef theta, double a_r,
                         VectorRef a_x, VectorRef a_theta);

  Dynamics& inner_;
  JacobianProbe& probe_;
  double weight_;
};

}  // namespace diffeoflow::flows
