#include "flows/jacobian_norm.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "flows/kernels.h"
#include "flows/layers.h"
#include "solvers/errors.h"

namespace diffeoflow::flows {
namespace {

// y = σ(x) and, at every entry, d1 = σ'(x) and d2 = σ''(x) (n entries each).
void Activate(Activation activation, const double* x, double* y, double* d1, double* d2,
              Index n) {
  using Array = Eigen::Map<Eigen::ArrayXd>;
  using ConstArray = Eigen::Map<const Eigen::ArrayXd>;
  Array y_(y, n), d1_(d1, n), d2_(d2, n);
  switch (activation) {
    case Activation::kTanh:  // σ' = 1 − y², σ'' = −2 y σ'
      kernels::Tanh(x, y, n);
      d1_ = 1.0 - y_.square();
      d2_ = -2.0 * y_ * d1_;
      return;
    case Activation::kSigmoid:  // σ' = y (1 − y), σ'' = σ' (1 − 2y)
      kernels::Sigmoid(x, y, n);
      d1_ = y_ * (1.0 - y_);
      d2_ = d1_ * (1.0 - 2.0 * y_);
      return;
    case Activation::kSoftplus:  // σ' = sigmoid(x) = s, σ'' = s (1 − s)
      kernels::Softplus(x, y, n);
      kernels::Sigmoid(x, d1, n);
      d2_ = d1_ * (1.0 - d1_);
      return;
    case Activation::kRelu:  // σ' = [x > 0], σ'' = 0
      kernels::Relu(x, y, n);
      d1_ = (ConstArray(x, n) > 0.0).cast<double>();
      d2_.setZero();
      return;
  }
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
      stage.activation = activation->activation();
    } else {
      throw InputError("--jacobian-norm: needs the second derivative of every layer of the "
                       "field; written for MLP fields (linear layers and activations), not for '" +
                       layer.name() + "'");
    }
    stages_.push_back(stage);
    widest = std::max(widest, stage.out);
    z_.emplace_back(stage.out, batch);
  }
  for (const Matrix& z : z_) {
    d1_.emplace_back(z.rows(), batch);
    d2_.emplace_back(z.rows(), batch);
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

void JacobianNormAugmented::Forward(double t, const double* theta, const double* x) {
  z_[0] = Eigen::Map<const Matrix>(x, features_, batch_);
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
      row_sum_.head(s.out) = b;
      if (s.concat_time) row_sum_.head(s.out) += t * wt.row(s.in).transpose();
      kernels::GemmBias(true, false, s.out, batch_, s.in, wt.data(), in_total, in.data(), s.in,
                        row_sum_.data(), out.data(), s.out);
    } else {
      Activate(s.activation, in.data(), out.data(), d1_[k].data(),
               d2_[k].data(), in.size());
    }
  }
}

void JacobianNormAugmented::Tangents(const double* theta, const double* u) {
  dz_[0] = Eigen::Map<const Matrix>(u, features_, batch_);
  for (std::size_t k = 0; k < stages_.size(); ++k) {
    const Stage& s = stages_[k];
    if (s.linear) {
      const Index in_total = s.in + (s.concat_time ? 1 : 0);
      kernels::Gemm(true, false, s.out, batch_, s.in, 1.0, theta + s.offset, in_total,
                    dz_[k].data(), s.in, 0.0, dz_[k + 1].data(), s.out);
    } else {
      dz_[k + 1].array() = d1_[k].array() * dz_[k].array();
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
      kernels::Gemm(false, false, s.in, batch_, s.out, 1.0, theta + s.offset, in_total,
                    z_bar_[k + 1].data(), s.out, 0.0, z_bar_[k].data(), s.in);
    } else {
      z_bar_[k].array() = d1_[k].array() * z_bar_[k + 1].array();
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
      const double* wt = theta + s.offset;
      double* wt_bar = theta_bar + s.offset;
      Eigen::Map<Vector> b_bar(theta_bar + s.offset + in_total * s.out, s.out);
      kernels::Gemm(false, false, s.in, batch_, s.out, 1.0, wt, in_total, z_bar_[k + 1].data(),
                    s.out, 0.0, z_bar_[k].data(), s.in);
      kernels::Gemm(false, false, s.in, batch_, s.out, 1.0, wt, in_total, dz_bar_[k + 1].data(),
                    s.out, 0.0, dz_bar_[k].data(), s.in);
      // W̄ᵀ's first `in` rows += z z̄'ᵀ + ż ż̄'ᵀ.
      kernels::Gemm(false, true, s.in, s.out, batch_, 1.0, z_[k].data(), s.in,
                    z_bar_[k + 1].data(), s.out, 1.0, wt_bar, in_total);
      kernels::Gemm(false, true, s.in, s.out, batch_, 1.0, dz_[k].data(), s.in,
                    dz_bar_[k + 1].data(), s.out, 1.0, wt_bar, in_total);
      kernels::RowSums(z_bar_[k + 1].data(), s.out, batch_, row_sum_.data());
      b_bar += row_sum_.head(s.out);
      if (s.concat_time) {
        Eigen::Map<Matrix>(wt_bar, in_total, s.out).row(s.in) +=
            t * row_sum_.head(s.out).transpose();
      }
    } else {
      // y = σ(z), ẏ = σ'(z) ż.
      z_bar_[k].array() = d1_[k].array() * z_bar_[k + 1].array() +
                          d2_[k].array() * dz_[k].array() * dz_bar_[k + 1].array();
      dz_bar_[k].array() = d1_[k].array() * dz_bar_[k + 1].array();
    }
  }
  Eigen::Map<Matrix>(x_bar, features_, batch_) += z_bar_[0];
}

double JacobianNormAugmented::RegulariserRate(double t, ConstVectorRef x, ConstVectorRef theta) {
  Forward(t, theta.data(), x.data());
  ProbeBackward(theta.data());
  return weight_ * g_.squaredNorm();
}

void JacobianNormAugmented::AddRegulariserVjp(double t, ConstVectorRef x, ConstVectorRef theta,
                                              double a_r, VectorRef a_x, VectorRef a_theta) {
  if (a_r == 0.0) return;
  Forward(t, theta.data(), x.data());
  ProbeBackward(theta.data());
  u_ = (2.0 * weight_ * a_r) * g_;
  Tangents(theta.data(), u_.data());
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
