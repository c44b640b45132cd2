// The Riemannian geometry a classifier induces on its input space (flows/classifier.h):
//
//   feature map     x ↦ h, the state before the read-out: h(1) for odenet / anode, h_L for
//                   resnet / c2 / mlp, including the embedding
//   Jacobian        J(x) = ∂h/∂x (state_size × input_size)
//   pull-back       g(x) = JᵀJ, the Euclidean metric of the feature space pulled back to the input
//   volume element  √det g: how much the network magnifies input area around x
//   action          the kinetic energy ∫₀¹ ‖dh/dt‖² dt of the hidden flow (Finlay et al. 2020)
//   Fisher–Rao norm ‖θ‖²_fr = E_data ⟨θ, ∇_θ ℓ(x, y)⟩² (Liang et al., "Fisher–Rao metric,
//                   geometry, and complexity of neural networks", AISTATS 2019) and the trace of the
//                   empirical Fisher information E_data ‖∇_θ ℓ(x, y)‖².
//
// For one hidden layer h = (1/√n) φ(W x + b) with n units the metric has the closed form
//   g_{μν}(x) = (1/n) Σ_j φ'(z_j)² W_{jμ} W_{jν},  z = W x + b
// (Hauser & Ray, "Principles of Riemannian geometry in neural networks", NeurIPS 2017; Benfenati &
// Marta 2023), which serves as the test oracle of the numerical path.
#pragma once

#include <vector>

#include "flows/classifier.h"
#include "flows/layers.h"

namespace diffeoflow::flows {

// Jacobian of the feature map x ↦ h, one state_size × input_size matrix per column of x
// (input_size × N). Continuous models (odenet, anode) by forward sensitivity of the ODE block on
// the engine (solvers/geometry.h) times the embedding; discrete ones (resnet, c2, mlp) by the chain
// rule of their layers (input_size Jacobian-vector products per layer).
std::vector<Matrix> FeatureJacobians(Classifier& model, const Vector& theta, const Matrix& x);

// √det(JᵀJ) per point: the volume element of the pull-back of the Euclidean metric of the feature
// space (0 when the map loses rank, e.g. through a narrow embedding).
Vector VolumeElements(Classifier& model, const Vector& theta, const Matrix& x);

// Action of the hidden flow ∫₀¹ ‖f(t, h)‖² dt averaged over the points (no ½, as Finlay et al.
// 2020's regulariser; KineticEnergy in solvers/landmarks.h is the Hamiltonian ½ pᵀK p). Continuous
// models integrate it as an extra state (solvers/kinetic_energy.h); discrete models use the depth
// step Δ = 1/L and the difference quotient of their layers, Σ_l ‖h_{l+1} − h_l‖² / Δ
// (= Σ_l Δ ‖(h_{l+1} − h_l)/Δ‖², the rectangle rule of the same integral for resnet / c2; for mlp,
// whose layers are not small steps, the same sum measures how far each layer moves the features).
double FlowAction(Classifier& model, const Vector& theta, const Matrix& x);

// Fisher–Rao norm E_data ⟨θ, ∇_θ ℓ(x, y)⟩² and the trace of the empirical Fisher E ‖∇_θ ℓ‖², over
// the first min(N, max_samples) samples (per-sample gradients of the cross-entropy ℓ).
struct FisherSummary {
  double fisher_rao_norm = 0, fisher_trace = 0;
  Index samples = 0;
};
FisherSummary Fisher(Classifier& model, const Vector& theta, const Matrix& x, const int* labels,
                     Index max_samples = 512);

// One hidden layer h = (1/√n) φ(W x + b) (n = W.rows() units): the closed-form pull-back metric
// g_{μν} = (1/n) Σ_j φ'(z_j)² W_{jμ} W_{jν} at x.
Matrix OneHiddenLayerMetric(const Matrix& W, const Vector& b, const Vector& x,
                            Activation activation);

}  // namespace diffeoflow::flows
