// The Jacobian-norm regulariser of RNODE (Finlay, Jacobsen, Nurbekyan & Oberman 2020, "How to
// train your neural ODE") for an MLP field, as an extra state of the ODE:
//
//   d/dt [z, r] = [F(t, z; θ), w ‖εᵀ ∂f/∂x‖²],     r(t1) = w ∫ ‖εᵀ ∂f/∂x‖² dt,
//
// where z's first n = D·B entries are the batch x of B samples of D features that the MLP g
// (D → D, applied to every sample: f(x)_b = g(t, x_b; θ)) moves, F is the inner dynamics (the
// field itself, or the field with the kinetic-energy state: solvers/kinetic_energy.h), ε is a
// fixed probe (Hutchinson's estimator of ‖∂f/∂x‖²_F: Rademacher entries, E[‖εᵀJ‖²] = ‖J‖²_F) and
// w = 1/B makes r the mean over the samples.
//
// The gradient is exact (no finite differences): with G = εᵀ ∂f/∂x and u = 2 w a_r G held fixed,
// aᵀ∂/∂(x, θ) of the r-row is ∂/∂(x, θ) Σ_b ε_bᵀ (∂g/∂x_b) u_b — the derivative of a
// Jacobian–vector product, computed by carrying tangents u through the MLP's forward pass and
// back-propagating through both (forward-over-reverse). It needs the second derivative of the
// activations, so it is written for the layers of MlpField (flows/field.h): Linear / ConcatLinear
// and the element-wise activations. The convolutional ODE-Net is not covered (GroupNorm's second
// derivative is not written): Classifier refuses --jacobian-norm there.
#pragma once

#include <random>
#include <vector>

#include "flows/network.h"
#include "solvers/dynamics.h"

namespace diffeoflow::flows {

class JacobianNormAugmented : public Dynamics {
 public:
  // `inner` must outlive this object; its first features·batch state entries are the batch that
  // `mlp` moves (D = features → D), and θ is mlp's. `weight` multiplies ‖εᵀ∂f/∂x‖² (1/B for a
  // batch of B). InputError when mlp holds a layer other than Linear and activations, or its
  // sizes do not match.
  JacobianNormAugmented(Dynamics& inner, const Sequential& mlp, Index features, Index batch,
                        double weight);

  // The probe ε (features·batch entries, the layout of the batch); Rademacher by DrawProbe.
  void SetProbe(const Vector& probe);
  void DrawProbe(std::mt19937& rng);
  const Vector& probe() const { return probe_; }

  Eigen::Index state_dim() const override { return inner_.state_dim() + 1; }
  Eigen::Index param_dim() const override { return inner_.param_dim(); }
  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override;

  // The replay contract (solvers/dynamics.h) is passed on to the inner dynamics; the regulariser's
  // own passes are recomputed in vjp_slot (they are a few small matrix products).
  void ReserveSlots(int slots) override { inner_.ReserveSlots(slots); }
  void f_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                VectorRef a_x, VectorRef a_theta) override;

  // [z0, 0]
  Vector Augment(const Vector& z0) const;

 private:
  struct Stage {
    bool linear = false;          // Linear, else an activation
    bool concat_time = false;
    Index in = 0, out = 0;        // features in and out
    Index offset = 0;             // where its parameters start in θ
    Activation activation = Activation::kTanh;  // for an activation stage
  };
  // z_[0] = x, z_[k+1] = stage k (z_[k]), keeping σ' and σ'' of every activation stage.
  void Forward(double t, const double* theta, const double* x);
  // After Forward: ż_[0] = u, ż_[k+1] = stage k's tangent (W ż or σ'(z) ⊙ ż).
  void Tangents(const double* theta, const double* u);
  // G = εᵀ ∂f/∂x per sample into g_ (after Forward).
  void ProbeBackward(const double* theta);
  // Adds ∂/∂x and ∂/∂θ of Σ_b ε_bᵀ J_b u_b into x_bar and theta_bar (after Forward with u).
  void TangentBackward(double t, const double* theta, double* x_bar, double* theta_bar);
  // The r-row's vjp, a_r = a[last], added into a_x (first n entries) and a_theta.
  void AddRegulariserVjp(double t, ConstVectorRef x, ConstVectorRef theta, double a_r,
                         VectorRef a_x, VectorRef a_theta);
  double RegulariserRate(double t, ConstVectorRef x, ConstVectorRef theta);

  Dynamics& inner_;
  Index features_, batch_;
  double weight_;
  std::vector<Stage> stages_;
  Vector probe_;
  std::vector<Matrix> z_, dz_;          // values and tangents at every stage boundary
  std::vector<Matrix> d1_, d2_;         // σ' and σ'' at an activation stage's input
  std::vector<Matrix> z_bar_, dz_bar_;  // their adjoints
  Matrix g_;                            // εᵀ ∂f/∂x per sample (D × B)
  Matrix u_;                            // the tangent 2 w a_r G
  Vector row_sum_;
};

}  // namespace diffeoflow::flows
