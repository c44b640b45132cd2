// Layers with hand-written vector–Jacobian products.
//
// A batch is a column-major matrix, features × batch (one sample a column) — the same memory as the
// row-major batch × features state the integrator moves. A layer's parameters are a slice of the
// model's one contiguous θ; the layer reads them through a pointer and never owns them.
//
//   Forward:   y = layer(t, x; θ)
//   Backward:  given ȳ, x̄ = ȳᵀ ∂y/∂x and θ̄ = ȳᵀ ∂y/∂θ (both overwritten)
//
// Forward and Backward never allocate once Reserve(batch) was called with the largest batch.
#pragma once

#include <memory>
#include <random>
#include <string>

#include <Eigen/Core>

#include "solvers/dynamics.h"

namespace diffeoflow::flows {

using Index = Eigen::Index;
using MatrixView = Eigen::Map<Matrix>;
using ConstMatrixView = Eigen::Map<const Matrix>;

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string name() const = 0;
  virtual Index input_size() const = 0;   // features of one sample in
  virtual Index output_size() const = 0;  // features of one sample out
  virtual Index param_dim() const { return 0; }
  // Writes initial parameters (PyTorch's default scheme where one exists) into theta[0, param_dim).
  virtual void Initialize(std::mt19937& /*rng*/, double* /*theta*/) const {}
  // Sizes the workspaces for batches of up to `batch` samples; the only call that allocates.
  virtual void Reserve(Index /*batch*/) {}
  virtual void Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) = 0;
  // y is the output of Forward for the same (t, θ, x), and that Forward is the last this object
  // ran: a layer may keep what Backward needs from it (GroupNorm's statistics, a convolution's
  // float copy of x).
  virtual void Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                        ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) = 0;
  virtual std::unique_ptr<Layer> Clone() const = 0;

  // Forward-over-reverse, for terms that differentiate a Jacobian–vector product (the
  // Jacobian-norm regulariser, flows/jacobian_norm.h). At the (t, θ, x) of the last Forward, with
  // y its output:
  //   Tangent:          ẏ = ∂y/∂x · ẋ
  //   TangentBackward:  the adjoint of (x, ẋ, θ) ↦ (y, ẏ): given ȳ and ẏ̄,
  //                       x̄ = ȳᵀ ∂y/∂x + ẏ̄ᵀ ∂ẏ/∂x,  ẋ̄ = ẏ̄ᵀ ∂y/∂x,  θ̄ = ȳᵀ ∂y/∂θ + ẏ̄ᵀ ∂ẏ/∂θ
  //                     (all overwritten), where ∂ẏ/∂x needs the layer's second derivative.
  // A layer that writes them says so in has_tangents(); the others throw InputError. Both need
  // ReserveTangents(batch) (which may allocate) and then never allocate.
  virtual bool has_tangents() const { return false; }
  virtual void ReserveTangents(Index /*batch*/) {}
  virtual void Tangent(const double* theta, ConstMatrixView x, ConstMatrixView y,
                       ConstMatrixView x_dot, MatrixView y_dot);
  virtual void TangentBackward(double t, const double* theta, ConstMatrixView x,
                               ConstMatrixView y, ConstMatrixView x_dot, ConstMatrixView y_bar,
                               ConstMatrixView y_dot_bar, MatrixView x_bar, MatrixView x_dot_bar,
                               double* theta_bar);
};

// y = W x + b, or with concat_time the time-concatenated y = W [x; t] + b (Chen et al. 2018,
// ConcatLinear). θ = [W (out × in', row-major, in' = in + concat_time), b (out)]: the layout of a
// PyTorch nn.Linear(in', out). Initialisation: U(−1/√in', 1/√in') for W and b.
class Linear : public Layer {
 public:
  Linear(Index in, Index out, bool concat_time = false);
  std::string name() const override { return concat_time_ ? "concat_linear" : "linear"; }
  Index input_size() const override { return in_; }
  Index output_size() const override { return out_; }
  Index param_dim() const override { return (in_ + concat_time_) * out_ + out_; }
  void Initialize(std::mt19937& rng, double* theta) const override;
  void Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) override;
  void Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) override;
  std::unique_ptr<Layer> Clone() const override { return std::make_unique<Linear>(*this); }
  bool concat_time() const { return concat_time_; }
  // ẏ = W ẋ; W̄ gains ẏ̄ ẋᵀ, b̄ and the time weights only ȳ's part.
  bool has_tangents() const override { return true; }
  void Tangent(const double* theta, ConstMatrixView x, ConstMatrixView y, ConstMatrixView x_dot,
               MatrixView y_dot) override;
  void TangentBackward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                       ConstMatrixView x_dot, ConstMatrixView y_bar, ConstMatrixView y_dot_bar,
                       MatrixView x_bar, MatrixView x_dot_bar, double* theta_bar) override;

 private:
  Index in_, out_;
  bool concat_time_;
  Vector shift_;  // b + t w_t
};

enum class Activation { kTanh, kRelu, kSoftplus, kSigmoid };
std::string ActivationName(Activation a);
// Throws InputError naming `argument` for an unknown name.
Activation ParseActivation(const std::string& name, const std::string& argument = "--activation");

// Element-wise y = σ(x):
//   tanh:      σ' = 1 − y²
//   relu:      σ' = [x > 0]
//   softplus:  σ(x) = log(1 + eˣ),  σ' = 1/(1 + e⁻ˣ)
//   sigmoid:   σ(x) = 1/(1 + e⁻ˣ),  σ' = y(1 − y)
class ActivationLayer : public Layer {
 public:
  ActivationLayer(Activation activation, Index size) : activation_(activation), size_(size) {}
  std::string name() const override { return ActivationName(activation_); }
  Index input_size() const override { return size_; }
  Index output_size() const override { return size_; }
  void Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) override;
  void Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) override;
  std::unique_ptr<Layer> Clone() const override {
    return std::make_unique<ActivationLayer>(*this);
  }
  Activation activation() const { return activation_; }
  // ẏ = σ'(x) ẋ;  x̄ = σ'(x) ȳ + σ''(x) ẋ ẏ̄,  ẋ̄ = σ'(x) ẏ̄  (σ'' of tanh −2yσ', of sigmoid
  // σ'(1 − 2y), of softplus s(1 − s) with s the sigmoid, of ReLU 0).
  bool has_tangents() const override { return true; }
  void ReserveTangents(Index batch) override;
  void Tangent(const double* theta, ConstMatrixView x, ConstMatrixView y, ConstMatrixView x_dot,
               MatrixView y_dot) override;
  void TangentBackward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                       ConstMatrixView x_dot, ConstMatrixView y_bar, ConstMatrixView y_dot_bar,
                       MatrixView x_bar, MatrixView x_dot_bar, double* theta_bar) override;

 private:
  // σ' at the n entries of x (y = σ(x)) into d1_, and σ'' into d2_ when `second`.
  void Derivatives(const double* x, const double* y, Index n, bool second);

  Activation activation_;
  Index size_;
  Vector d1_, d2_;  // σ' and σ'' of a tangent pass (ReserveTangents)
};

// Mean softmax cross-entropy of logits z (classes × batch) against integer labels, with label
// smoothing ε ∈ [0, 1) (Szegedy et al. 2016: the target q_b = (1 − ε) onehot(y_b) + ε / classes):
//   L = (1/B) Σ_b [log Σ_c exp z_cb − Σ_c q_cb z_cb],   ∂L/∂z = (softmax(z) − q) / B.
// Returns L; writes ∂L/∂z into z_bar when it is non-null (same shape as z). Also counts correct
// arg-max predictions into *correct when non-null. Labels outside [0, classes) throw InputError.
double SoftmaxCrossEntropy(ConstMatrixView logits, const int* labels, MatrixView* z_bar,
                           Index* correct = nullptr, double smoothing = 0.0);

}  // namespace diffeoflow::flows
