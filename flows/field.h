// Vector fields made of networks, as Dynamics (solvers/dynamics.h).
//
// A batch of B samples of D features is one state of size B·D (row-major B × D, i.e. each sample's
// features contiguous); the field applies the network to every sample:
//     dx_b/dt = g(t, x_b; θ),  b = 1..B,
// so ∂f/∂x is block diagonal and the vjp is the network's back-propagation with a as ȳ.
// The MLP field of Chen et al. (2018) is g(t, x) = W_L σ(… σ(W_1 [x; t] + b_1) …) + b_L.
#pragma once

#include <memory>
#include <vector>

#include "flows/network.h"
#include "solvers/dynamics.h"

namespace diffeoflow::flows {

class NetworkField : public Dynamics {
 public:
  // `network` maps D features to D features. The batch is split over `threads` workers (≥ 1).
  // The forward passes at the last `cached_points` points (t, x, θ) are kept (each in its own
  // copy of the network's workspaces): the continuous adjoint asks for f and vjp at the same
  // point (1 suffices); the discrete adjoint replays a step's stages and then asks for the vjp at
  // each of them (an RK4 step has 4).
  NetworkField(const Sequential& network, Index batch, int threads = 1, int cached_points = 1);
  ~NetworkField() override;
  NetworkField(const NetworkField&) = delete;
  NetworkField& operator=(const NetworkField&) = delete;

  Index state_dim() const override { return features_ * batch_; }
  Index param_dim() const override { return param_dim_; }
  Index batch() const { return batch_; }
  Index features() const { return features_; }
  int threads() const { return static_cast<int>(shards_.size()); }

  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override;

 private:
  struct Shard;  // one worker's slice of the batch, its network copies and workspaces
  struct CachedPoint {
    bool valid = false;
    double t = 0.0;
    long last_use = 0;
    Vector x, theta;
  };
  class Pool;
  // Runs the network forward on x unless a cached pass was at the same (t, x, θ); returns the
  // slot holding the pass.
  int EnsureForward(double t, ConstVectorRef x, ConstVectorRef theta);
  template <typename Fn>
  void RunShards(Fn&& fn);

  Index features_, batch_, param_dim_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<Pool> pool_;
  std::vector<CachedPoint> cached_;
  long uses_ = 0;
};

// Layers of an MLP field on D features: ConcatLinear(D→H₁), σ, Linear(H₁→H₂), σ, …, Linear(H_k→D).
Sequential MlpField(Index dim, const std::vector<Index>& hidden, Activation activation);

}  // namespace diffeoflow::flows
