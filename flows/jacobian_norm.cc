#include "flows/jacobian_norm.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "flows/layers.h"
#include "solvers/errors.h"

namespace diffeoflow::flows {
namespace {

// σ(x), σ'(x) and σ''(x) of an activation at the pre-activation x.
struct Derivatives {
  double y, d1, d2;
};

Derivatives Activate(Activation activation, double x) {
  switch (activation) {
    case Activation::kTanh: {
      const double y = std::tanh(x), d1 = 1.0 - y * y;
      return {y, d1, -2.0 * y * d1};
    }
    case Activation::kSigmoid: {
      const double y = 1.0 / (1.0 + std::exp(-x)), d1 = y * (1.0 - y);
      return {y, d1, d1 * (1.0 - 2.0 * y)};
    }
    case Activation::kSoftplus: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return {std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))), s, s * (1.0 - s)};
    }
    case Activation::kRelu: return {x > 0.0 ? x : 0.0, x > 0.0 ? 1.0 : 0.0, 0.0};
  }
  return {0.0, 0.0, 0.0};
}

}  // namespace

JacobianNormAugmented::JacobianNormAugmented(Dynamics& inner, const Sequential& mlp,
                                             Index features, Index batch, double weight)
    : inner_(inner), features_(features), batch_(batch), weight_(weight) {
  if (mlp.input_size() != features || mlp.output_size() != features) {
    throw InputError("--jacobian-norm: the field maps " + std::to_string(mlp.input_size()) +
                     " to " + std::to_string(mlp.output_size()) + " features, the state has " +
                     std::to_string(features));
  }
  if (inner.state_dim() < features * batch || inner.param_dim() != mlp.param_dim()) {
    throw InputError("--jacobian-norm: the dynamics do not move the field's batch");
  }
  Index rows = features;
  Index widest = features;
  z_.emplace_back(features, batch);
  for (std::size_t k = 0; k < mlp.size(); ++k) {
    const Layer& layer = mlp.layer(k);
    Stage stage;
    stage.in = layer.input_size();
    stage.out = layer.output_size();
    stage.offset = mlp.param_offset(k);
    if (const auto* linear = dynamic_cast<const Linear*>(&layer)) {
      stage.linear = true;
      stage.concat_time = linear->concat_time();
    } else if (const auto* activation = dynamic_cast<const ActivationLayer*>(&layer)) {
      stage.activation = static_cast<int>(activation->activation());
    } else {
      throw InputError("--jacobian-norm: needs the second derivative of every layer of the "
                       "field; written for MLP fields (linear layers and activations), not for '" +
                       layer.name() + "'");
    }
    stages_.push_back(stage);
    rows = stage.out;
    widest = std::max(widest, rows);
    z_.emplace_back(rows, batch);
  }
  for (const Matrix& z : z_) {
    dz_.emplace_back(z.rows(), batch);
    z_bar_.emplace_back(z.rows(), batch);
    dz_bar_.emplace_back(z.rows(), batch);
  }
  g_.resize(features, batch);
  u_.resize(features, batch);
  row_sum_.resize(widest);
  probe_ = Vector::Ones(features * batch);
}

void JacobianNormAugmented::SetProbe(const Vector& probe) {
  if (probe.size() != features_ * batch_) {
    throw InputError("Jacobian-norm probe has " + std::to_string(probe.size()) +
                     " entries, the batch " + std::to_string(features_ * batch_));
  }
  probe_ = probe;
}

void JacobianNormAugmented::DrawProbe(std::mt19937& rng) {
  std::bernoulli_distribution coin(0.5);
  for (Index i = 0; i < probe_.size(); ++i) probe_[i] = coin(rng) ? 1.0 : -1.0;
}

void JacobianNormAugmented::Forward(double t, const double* theta, const double* x,
                                    const double* u) {
  z_[0] = Eigen::Map<const Matrix>(x, features_, batch_);
  if (u != nullptr) dz_[0] = Eigen::Map<const Matrix>(u, features_, batch_);
  for (std::size_t k = 0; k < stages_.size(); ++k) {
    const Stage& s = stages_[k];
    const Matrix& in = z_[k];
    Matrix& out = z_[k + 1];
    if (s.linear) {
      // θ's row-major W (out × in') is the column-major Wᵀ (in' × out); the time column is row
      // `in` of Wᵀ, then b.
      const Index in_total = s.in + (s.concat_time ? 1 : 0);
      const Eigen::Map<const Matrix> wt(theta + s.offset, in_total, s.out);
      const Eigen::Map<const Vector> b(theta + s.offset + in_total * s.out, s.out);
      out.noalias() = wt.topRows(s.in).transpose() * in;
      row_sum_.head(s.out) = b;
      if (s.concat_time) row_sum_.head(s.out) += t * wt.row(s.in).transpose();
      out.colwise() += row_sum_.head(s.out);
      if (u != nullptr) dz_[k + 1].noalias() = wt.topRows(s.in).transpose() * dz_[k];
    } else {
      const auto activation = static_cast<Activation>(s.activation);
      for (Index i = 0; i < in.size(); ++i) {
        const Derivatives d = Activate(activation, in.data()[i]);
        out.data()[i] = d.y;
        if (u != nullptr) dz_[k + 1].data()[i] = d.d1 * dz_[k].data()[i];
      }
    }
  }
}

void JacobianNormAugmented::ProbeBackward(const double* theta) {
  const std::size_t last = stages_.size();
  z_bar_[last] = Eigen::Map<const Matrix>(probe_.data(), features_, batch_);
  for (std::size_t k = last; k-- > 0;) {
    const Stage& s = stages_[k];
    if (s.linear) {
      const Index in_total = s.in + (s.concat_time ? 1 : 0);
      const Eigen::Map<const Matrix> wt(theta + s.offset, in_total, s.out);
      z_bar_[k].noalias() = wt.topRows(s.in) * z_bar_[k + 1];
    } else {
      const auto activation = static_cast<Activation>(s.activation);
      for (Index i = 0; i < z_bar_[k].size(); ++i) {
        z_bar_[k].data()[i] = Activate(activation, z_[k].data()[i]).d1 * z_bar_[k + 1].data()[i];
      }
    }
  }
  g_ = z_bar_[0];
}

void JacobianNormAugmented::TangentBackward(double t, const double* theta, double* x_bar,
                                            double* theta_bar) {
  // h = Σ_b ε_bᵀ ż_L,b: no adjoint on the values at the top, ε on the tangents.
  const std::size_t last = stages_.size();
  z_bar_[last].setZero();
  dz_bar_[last] = Eigen::Map<const Matrix>(probe_.data(), features_, batch_);
  for (std::size_t k = last; k-- > 0;) {
    const Stage& s = stages_[k];
    if (s.linear) {
      // z' = W z + b + t w_t and ż' = W ż.
      const Index in_total = s.in + (s.concat_time ? 1 : 0);
      const Eigen::Map<const Matrix> wt(theta + s.offset, in_total, s.out);
      Eigen::Map<Matrix> wt_bar(theta_bar + s.offset, in_total, s.out);
      Eigen::Map<Vector> b_bar(theta_bar + s.offset + in_total * s.out, s.out);
      z_bar_[k].noalias() = wt.topRows(s.in) * z_bar_[k + 1];
      dz_bar_[k].noalias() = wt.topRows(s.in) * dz_bar_[k + 1];
      wt_bar.topRows(s.in).noalias() += z_[k] * z_bar_[k + 1].transpose();
      wt_bar.topRows(s.in).noalias() += dz_[k] * dz_bar_[k + 1].transpose();
      row_sum_.head(s.out).noalias() = z_bar_[k + 1].rowwise().sum();
      b_bar += row_sum_.head(s.out);
      if (s.concat_time) wt_bar.row(s.in) += t * row_sum_.head(s.out).transpose();
    } else {
      // y = σ(z), ẏ = σ'(z) ż.
      const auto activation = static_cast<Activation>(s.activation);
      for (Index i = 0; i < z_bar_[k].size(); ++i) {
        const Derivatives d = Activate(activation, z_[k].data()[i]);
        const double dy_bar = dz_bar_[k + 1].data()[i];
        z_bar_[k].data()[i] = d.d1 * z_bar_[k + 1].data()[i] + d.d2 * dz_[k].data()[i] * dy_bar;
        dz_bar_[k].data()[i] = d.d1 * dy_bar;
      }
    }
  }
  Eigen::Map<Matrix>(x_bar, features_, batch_) += z_bar_[0];
}

double JacobianNormAugmented::RegulariserRate(double t, ConstVectorRef x, ConstVectorRef theta) {
  Forward(t, theta.data(), x.data(), nullptr);
  ProbeBackward(theta.data());
  return weight_ * g_.squaredNorm();
}

void JacobianNormAugmented::AddRegulariserVjp(double t, ConstVectorRef x, ConstVectorRef theta,
                                              double a_r, VectorRef a_x, VectorRef a_theta) {
  if (a_r == 0.0) return;
  Forward(t, theta.data(), x.data(), nullptr);
  ProbeBackward(theta.data());
  u_ = (2.0 * weight_ * a_r) * g_;
  Forward(t, theta.data(), x.data(), u_.data());
  TangentBackward(t, theta.data(), a_x.data(), a_theta.data());
}

void JacobianNormAugmented::f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) {
  const Eigen::Index m = inner_.state_dim();
  inner_.f(t, x.head(m), theta, dxdt.head(m));
  dxdt[m] = RegulariserRate(t, x, theta);
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
  dxdt[m] = RegulariserRate(t, x, theta);
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
