#include "flows/jacobian_norm.h"

#include <algorithm>
#include <cassert>
#include <string>

#include "solvers/errors.h"

namespace diffeoflow::flows {
namespace {

// A workspace as a layer's input or output.
ConstMatrixView In(const Matrix& m) { return ConstMatrixView(m.data(), m.rows(), m.cols()); }
MatrixView Out(Matrix& m) { return MatrixView(m.data(), m.rows(), m.cols()); }

}  // namespace

struct JacobianProbe::Shard {
  std::vector<std::unique_ptr<Layer>> layers;
  std::vector<Index> offsets;  // where each layer's parameters start in θ
  // At the boundary k (k = 0: the input, k + 1: layer k's output), `count` samples each:
  // values z, tangents ż, and their adjoints.
  std::vector<Matrix> z, dz, z_bar, dz_bar;
  Matrix g;                // εᵀ ∂g/∂x of each sample
  Vector theta_bar;        // this shard's θ̄
  Vector layer_theta_bar;  // one layer's θ̄ before it is added
  double squared_norm = 0.0;
};

JacobianProbe::JacobianProbe(NetworkField& field)
    : field_(field),
      features_(field.features()),
      batch_(field.batch()),
      param_dim_(field.param_dim()) {
  const Sequential& network = field.network();
  Index widest_params = 0;
  for (std::size_t k = 0; k < network.size(); ++k) {
    const Layer& layer = network.layer(k);
    if (!layer.has_tangents()) {
      throw InputError("--jacobian-norm: needs the second derivative of every layer of the "
                       "field, and '" + layer.name() + "' has none");
    }
    widest_params = std::max(widest_params, layer.param_dim());
  }
  for (int s = 0; s < field.threads(); ++s) {
    const Index count = field.shard_count(s);
    auto shard = std::make_unique<Shard>();
    shard->z.emplace_back(features_, count);
    for (std::size_t k = 0; k < network.size(); ++k) {
      std::unique_ptr<Layer> layer = network.layer(k).Clone();
      layer->Reserve(count);
      layer->ReserveTangents(count);
      shard->z.emplace_back(layer->output_size(), count);
      shard->layers.push_back(std::move(layer));
      shard->offsets.push_back(network.param_offset(k));
    }
    for (const Matrix& z : shard->z) {
      shard->dz.emplace_back(z.rows(), count);
      shard->z_bar.emplace_back(z.rows(), count);
      shard->dz_bar.emplace_back(z.rows(), count);
    }
    shard->g.resize(features_, count);
    shard->theta_bar.resize(param_dim_);
    shard->layer_theta_bar.resize(widest_params);
    shards_.push_back(std::move(shard));
  }
  probe_ = Vector::Ones(features_ * batch_);
}

JacobianProbe::~JacobianProbe() = default;

void JacobianProbe::SetProbe(const Vector& probe) {
  if (probe.size() != features_ * batch_) {
    throw InputError("Jacobian-norm probe has " + std::to_string(probe.size()) +
                     " entries, the batch " + std::to_string(features_ * batch_));
  }
  probe_ = probe;
}

void JacobianProbe::DrawProbe(std::mt19937& rng) {
  std::bernoulli_distribution coin(0.5);
  for (Index i = 0; i < probe_.size(); ++i) probe_[i] = coin(rng) ? 1.0 : -1.0;
}

void JacobianProbe::ProbePass(Shard& shard, double t, const double* x, const double* theta,
                              ConstMatrixView probe) {
  const std::size_t last = shard.layers.size();
  const Index count = probe.cols();
  assert(count == shard.g.cols());
  shard.z[0] = ConstMatrixView(x, features_, count);
  for (std::size_t k = 0; k < last; ++k) {
    shard.layers[k]->Forward(t, theta + shard.offsets[k], In(shard.z[k]), Out(shard.z[k + 1]));
  }
  shard.z_bar[last] = probe;
  for (std::size_t k = last; k-- > 0;) {
    shard.layers[k]->Backward(t, theta + shard.offsets[k], In(shard.z[k]), In(shard.z[k + 1]),
                              In(shard.z_bar[k + 1]), Out(shard.z_bar[k]),
                              shard.layer_theta_bar.data());
  }
  shard.g = shard.z_bar[0];
}

double JacobianProbe::SquaredNorm(double t, const double* x, const double* theta) {
  field_.ForEachShard([&](int s, Index begin, Index count) {
    Shard& shard = *shards_[static_cast<std::size_t>(s)];
    ProbePass(shard, t, x + begin * features_, theta,
              ConstMatrixView(probe_.data() + begin * features_, features_, count));
    shard.squared_norm = shard.g.squaredNorm();
  });
  double sum = 0.0;
  for (const auto& shard : shards_) sum += shard->squared_norm;
  return sum;
}

void JacobianProbe::AddGradient(double t, const double* x, const double* theta, double scale,
                                double* x_bar, double* theta_bar) {
  field_.ForEachShard([&](int s, Index begin, Index count) {
    Shard& shard = *shards_[static_cast<std::size_t>(s)];
    const std::size_t last = shard.layers.size();
    const ConstMatrixView probe(probe_.data() + begin * features_, features_, count);
    ProbePass(shard, t, x + begin * features_, theta, probe);
    // ∂/∂(x, θ) of Σ_b ‖G_b‖² is that of Σ_b ε_bᵀ J_b u_b with u = 2 G held fixed: tangents u
    // through the forward pass, then back through values and tangents with ε on the top tangent.
    shard.dz[0] = (2.0 * scale) * shard.g;
    for (std::size_t k = 0; k < last; ++k) {
      shard.layers[k]->Tangent(theta + shard.offsets[k], In(shard.z[k]), In(shard.z[k + 1]),
                               In(shard.dz[k]), Out(shard.dz[k + 1]));
    }
    shard.z_bar[last].setZero();
    shard.dz_bar[last] = probe;
    shard.theta_bar.setZero();
    for (std::size_t k = last; k-- > 0;) {
      Layer& layer = *shard.layers[k];
      layer.TangentBackward(t, theta + shard.offsets[k], In(shard.z[k]), In(shard.z[k + 1]),
                            In(shard.dz[k]), In(shard.z_bar[k + 1]), In(shard.dz_bar[k + 1]),
                            Out(shard.z_bar[k]), Out(shard.dz_bar[k]),
                            shard.layer_theta_bar.data());
      shard.theta_bar.segment(shard.offsets[k], layer.param_dim()) +=
          shard.layer_theta_bar.head(layer.param_dim());
    }
    Eigen::Map<Matrix>(x_bar + begin * features_, features_, count) += shard.z_bar[0];
  });
  Eigen::Map<Vector> a_theta(theta_bar, param_dim_);
  for (const auto& shard : shards_) a_theta += shard->theta_bar;
}

JacobianNormAugmented::JacobianNormAugmented(Dynamics& inner, JacobianProbe& probe,
                                             double weight)
    : inner_(inner), probe_(probe), weight_(weight) {
  if (inner.state_dim() < probe.features() * probe.batch() ||
      inner.param_dim() != probe.param_dim()) {
    throw InputError("--jacobian-norm: the dynamics do not move the field's batch");
  }
}

void JacobianNormAugmented::AddRegulariserVjp(double t, ConstVectorRef x, ConstVectorRef theta,
                                              double a_r, VectorRef a_x, VectorRef a_theta) {
  if (a_r == 0.0) return;
  probe_.AddGradient(t, x.data(), theta.data(), weight_ * a_r, a_x.data(), a_theta.data());
}

void JacobianNormAugmented::f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) {
  const Eigen::Index m = inner_.state_dim();
  inner_.f(t, x.head(m), theta, dxdt.head(m));
  dxdt[m] = weight_ * probe_.SquaredNorm(t, x.data(), theta.data());
}

void JacobianNormAugmented::vjp(double t, ConstVectorRef x, ConstVectorRef theta,
                                ConstVectorRef a, VectorRef a_x, VectorRef a_theta) {
  const Eigen::Index m = inner_.state_dim();
  inner_.vjp(t, x.head(m), theta, a.head(m), a_x.head(m), a_theta);
  a_x[m] = 0.0;  // r does not feed back into the dynamics
  AddRegulariserVjp(t, x, theta, a[m], a_x, a_theta);
}

void JacobianNormAugmented::f_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta,
                                   VectorRef dxdt) {
  const Eigen::Index m = inner_.state_dim();
  inner_.f_slot(slot, t, x.head(m), theta, dxdt.head(m));
  dxdt[m] = weight_ * probe_.SquaredNorm(t, x.data(), theta.data());
}

void JacobianNormAugmented::vjp_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta,
                                     ConstVectorRef a, VectorRef a_x, VectorRef a_theta) {
  const Eigen::Index m = inner_.state_dim();
  inner_.vjp_slot(slot, t, x.head(m), theta, a.head(m), a_x.head(m), a_theta);
  a_x[m] = 0.0;
  AddRegulariserVjp(t, x, theta, a[m], a_x, a_theta);
}

Vector JacobianNormAugmented::Augment(const Vector& z0) const {
  Vector z(z0.size() + 1);
  z << z0, 0.0;
  return z;
}

}  // namespace diffeoflow::flows
