// Vector fields made of networks, as Dynamics (solvers/dynamics.h).
//
// A batch of B samples of D features is one state of size B·D (row-major B × D, i.e. each sample's
// features contiguous); the field applies the network to every sample:
//     dx_b/dt = g(t, x_b; θ),  b = 1..B,
// so ∂f/∂x is block diagonal and the vjp is the network's back-propagation with a as ȳ.
// The MLP field of Chen et al. (2018) is g(t, x) = W_L σ(… σ(W_1 [x; t] + b_1) …) + b_L.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "flows/network.h"
#include "solvers/dynamics.h"
#include "solvers/thread_pool.h"

namespace diffeoflow::flows {

class NetworkField : public Dynamics {
 public:
  // `network` maps D features to D features. The batch is split over `threads` workers (≥ 1).
  NetworkField(const Sequential& network, Index batch, int threads = 1);
  ~NetworkField() override;
  NetworkField(const NetworkField&) = delete;
  NetworkField& operator=(const NetworkField&) = delete;

  Index state_dim() const override { return features_ * batch_; }
  Index param_dim() const override { return param_dim_; }
  Index batch() const { return batch_; }
  Index features() const { return features_; }
  int threads() const { return static_cast<int>(shards_.size()); }
  // The network that moves every sample (the one the field was made from).
  const Sequential& network() const;
  // Runs job(shard, begin, count) for each shard of the batch (samples [begin, begin + count)),
  // shard 0 on the calling thread and the others on the field's workers, and returns when all are
  // done: for other passes over the same batch (flows/jacobian_norm.h). The job must not throw.
  // Does not allocate.
  template <typename Job>
  void ForEachShard(Job&& job) {
    const auto run = [this, &job](int shard) {
      job(shard, shard_begin(shard), shard_count(shard));
    };
    RunOnShards(std::cref(run));  // a std::function keeps a reference_wrapper without allocating
  }
  // Samples [shard_begin(s), shard_begin(s) + shard_count(s)) of the batch are shard s's.
  Index shard_begin(int shard) const;
  Index shard_count(int shard) const;

  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override;
  // The samples of each shard, on that shard's thread.
  void ForStateRanges(const RangeJob& job) override;

  // The replay contract (solvers/dynamics.h): slot s is a copy of the network whose forward
  // activations f_slot leaves for vjp_slot's back-propagation; plain f and vjp run on a copy of
  // their own, and a plain vjp runs the forward pass first.
  void ReserveSlots(int slots) override;
  void f_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                VectorRef a_x, VectorRef a_theta) override;

 private:
  struct Shard;  // one worker's slice of the batch, its network copies and workspaces
  // Forward pass on x in network copy `copy` of every shard, its output into dxdt (when given).
  void Forward(std::size_t copy, double t, ConstVectorRef x, ConstVectorRef theta, double* dxdt);
  // Back-propagation through network copy `copy`, after its Forward at (t, x, θ).
  void Backward(std::size_t copy, double t, ConstVectorRef x, ConstVectorRef theta,
                ConstVectorRef a, VectorRef a_x, VectorRef a_theta);
  template <typename Fn>
  void RunShards(Fn&& fn);
  // Runs job(s) for every shard s, shard 0 on the calling thread, and waits for all.
  void RunOnShards(const std::function<void(int)>& job);

  Index features_, batch_, param_dim_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<ThreadPool> pool_;  // shards 1 … n − 1 (none for one shard)
};

// Layers of an MLP field on D features: ConcatLinear(D→H₁), σ, Linear(H₁→H₂), σ, …, Linear(H_k→D).
Sequential MlpField(Index dim, const std::vector<Index>& hidden, Activation activation);

}  // namespace diffeoflow::flows
