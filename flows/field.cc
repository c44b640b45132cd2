#include "flows/field.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "solvers/errors.h"

namespace diffeoflow::flows {

struct NetworkField::Shard {
  std::vector<Sequential> networks;  // [0]: plain f and vjp; [1 + s]: slot s
  Index begin = 0, count = 0;  // samples [begin, begin + count)
  Vector theta_bar;            // this shard's θ̄ (summed over shards)
};

NetworkField::NetworkField(const Sequential& network, Index batch, int threads)
    : features_(network.input_size()), batch_(batch), param_dim_(network.param_dim()) {
  if (network.size() == 0 || network.output_size() != network.input_size()) {
    throw InputError("vector field: the network must map its " +
                     std::to_string(network.input_size()) + " features to as many outputs");
  }
  if (batch < 1) throw InputError("vector field: the batch must hold at least one sample");
  const Index shards = std::clamp<Index>(threads, 1, batch);
  for (Index s = 0; s < shards; ++s) {
    auto shard = std::make_unique<Shard>();
    shard->begin = batch * s / shards;
    shard->count = batch * (s + 1) / shards - shard->begin;
    shard->networks.assign(1, network);
    shard->networks[0].Reserve(shard->count);
    shard->theta_bar.resize(param_dim_);
    shards_.push_back(std::move(shard));
  }
  if (shards > 1) pool_ = std::make_unique<ThreadPool>(static_cast<int>(shards));
}

NetworkField::~NetworkField() = default;

template <typename Fn>
void NetworkField::RunShards(Fn&& fn) {
  RunOnShards([&](int i) { fn(*shards_[static_cast<std::size_t>(i)]); });
}

const Sequential& NetworkField::network() const { return shards_[0]->networks[0]; }

void NetworkField::RunOnShards(const std::function<void(int)>& job) {
  if (!pool_) {
    job(0);
  } else {
    pool_->Run(job);
  }
}

Index NetworkField::shard_begin(int shard) const {
  return shards_[static_cast<std::size_t>(shard)]->begin;
}

Index NetworkField::shard_count(int shard) const {
  return shards_[static_cast<std::size_t>(shard)]->count;
}

void NetworkField::ReserveSlots(int slots) {
  const auto copies = static_cast<std::size_t>(std::max(slots, 0)) + 1;
  for (auto& shard : shards_) {
    while (shard->networks.size() < copies) {
      shard->networks.push_back(shard->networks[0]);
      shard->networks.back().Reserve(shard->count);
    }
  }
}

void NetworkField::Forward(std::size_t copy, double t, ConstVectorRef x, ConstVectorRef theta,
                           double* dxdt) {
  RunShards([&](Shard& shard) {
    Sequential& network = shard.networks[copy];
    network.Forward(t, theta.data(),
                    ConstMatrixView(x.data() + shard.begin * features_, features_, shard.count));
    if (dxdt != nullptr) {
      std::memcpy(dxdt + shard.begin * features_, network.output().data(),
                  sizeof(double) * static_cast<std::size_t>(features_ * shard.count));
    }
  });
}

void NetworkField::Backward(std::size_t copy, double t, ConstVectorRef x, ConstVectorRef theta,
                            ConstVectorRef a, VectorRef a_x, VectorRef a_theta) {
  RunShards([&](Shard& shard) {
    const Index offset = shard.begin * features_;
    shard.networks[copy].Backward(t, theta.data(),
                                  ConstMatrixView(x.data() + offset, features_, shard.count),
                                  ConstMatrixView(a.data() + offset, features_, shard.count),
                                  MatrixView(a_x.data() + offset, features_, shard.count),
                                  shard.theta_bar.data());
  });
  a_theta = shards_[0]->theta_bar;
  for (std::size_t s = 1; s < shards_.size(); ++s) a_theta += shards_[s]->theta_bar;
}

void NetworkField::ForStateRanges(const RangeJob& job) {
  ForEachShard([&](int /*shard*/, Index begin, Index count) {
    job(begin * features_, (begin + count) * features_);
  });
}

void NetworkField::f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) {
  Forward(0, t, x, theta, dxdt.data());
}

void NetworkField::vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                       VectorRef a_x, VectorRef a_theta) {
  Forward(0, t, x, theta, nullptr);
  Backward(0, t, x, theta, a, a_x, a_theta);
}

void NetworkField::f_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta,
                          VectorRef dxdt) {
  Forward(static_cast<std::size_t>(slot) + 1, t, x, theta, dxdt.data());
}

void NetworkField::vjp_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta,
                            ConstVectorRef a, VectorRef a_x, VectorRef a_theta) {
  Backward(static_cast<std::size_t>(slot) + 1, t, x, theta, a, a_x, a_theta);
}

Sequential MlpField(Index dim, const std::vector<Index>& hidden, Activation activation) {
  if (hidden.empty()) throw InputError("MLP field: at least one hidden layer is needed");
  Sequential net;
  Index in = dim;
  for (std::size_t i = 0; i < hidden.size(); ++i) {
    net.Add(std::make_unique<Linear>(in, hidden[i], i == 0));
    net.Add(std::make_unique<ActivationLayer>(activation, hidden[i]));
    in = hidden[i];
  }
  net.Add(std::make_unique<Linear>(in, dim));
  return net;
}

}  // namespace diffeoflow::flows
