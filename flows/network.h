// A feed-forward stack of layers over one contiguous θ (each layer reads its own slice), with the
// workspaces for forward activations and back-propagated adjoints. Forward and Backward never
// allocate once Reserve(batch) was called.
#pragma once

#include <memory>
#include <random>
#include <vector>

#include "flows/layers.h"

namespace diffeoflow::flows {

class Sequential {
 public:
  Sequential() = default;
  Sequential(const Sequential& other);
  Sequential& operator=(const Sequential& other);
  Sequential(Sequential&&) = default;
  Sequential& operator=(Sequential&&) = default;

  // Appends a layer; its input size must equal the previous output size (InputError otherwise).
  void Add(std::unique_ptr<Layer> layer);
  Index input_size() const;
  Index output_size() const;
  Index param_dim() const { return param_dim_; }
  std::size_t size() const { return layers_.size(); }
  const Layer& layer(std::size_t i) const { return *layers_[i]; }
  Index param_offset(std::size_t i) const { return offsets_[i]; }
  void Initialize(std::mt19937& rng, double* theta) const;
  void Reserve(Index batch);
  Index reserved_batch() const { return reserved_; }

  // Runs all layers on x (input_size × batch, batch ≤ reserved); returns the output, a view into
  // a workspace that stays valid until the next Forward.
  ConstMatrixView Forward(double t, const double* theta, ConstMatrixView x);
  // The output of the last Forward.
  ConstMatrixView output() const {
    return ConstMatrixView(outputs_.back().data(), output_size(), batch_);
  }
  // After Forward(t, θ, x): x̄ = ȳᵀ ∂out/∂x, θ̄ = ȳᵀ ∂out/∂θ (overwritten, param_dim entries).
  void Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y_bar,
                MatrixView x_bar, double* theta_bar);

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Index> offsets_;
  Index param_dim_ = 0;
  Index reserved_ = 0;
  Index batch_ = 0;
  std::vector<Matrix> outputs_;  // outputs_[i]: output of layer i (size × reserved)
  Matrix adjoint_a_, adjoint_b_;  // ping-pong adjoints between layers
};

}  // namespace diffeoflow::flows
