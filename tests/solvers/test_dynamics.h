// Dynamics used by the engine's tests: a linear system (closed-form solution and gradients) and a
// small time-dependent tanh network field.
#pragma once

#include <cmath>

#include <Eigen/Core>
#include <unsupported/Eigen/MatrixFunctions>

#include "solvers/dynamics.h"

namespace diffeoflow::testing {

// dx/dt = A x with θ = vec(A) (column-major). a_x = Aᵀ a, a_θ = vec(a xᵀ).
class LinearDynamics : public Dynamics {
 public:
  explicit LinearDynamics(Eigen::Index n) : n_(n) {}
  Eigen::Index state_dim() const override { return n_; }
  Eigen::Index param_dim() const override { return n_ * n_; }
  void f(double, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override {
    Eigen::Map<const Matrix> A(theta.data(), n_, n_);
    dxdt.noalias() = A * x;
  }
  void vjp(double, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override {
    Eigen::Map<const Matrix> A(theta.data(), n_, n_);
    a_x.noalias() = A.transpose() * a;
    Eigen::Map<Matrix> G(a_theta.data(), n_, n_);
    G.noalias() = a * x.transpose();
  }

 private:
  Eigen::Index n_;
};

// f(t, x) = W2 tanh(W1 x + w_t t + b1) + b2 on a batch of B points of dimension D (rows of the
// state). θ = [vec(W1) (H×D), w_t (H), b1 (H), vec(W2) (D×H), b2 (D)], column-major blocks.
class TanhField : public Dynamics {
 public:
  TanhField(Eigen::Index batch, Eigen::Index dim, Eigen::Index hidden)
      : B_(batch), D_(dim), H_(hidden), z_(hidden, batch), g_(hidden, batch), shift_(hidden) {}
  Eigen::Index state_dim() const override { return B_ * D_; }
  Eigen::Index param_dim() const override { return H_ * D_ + 2 * H_ + D_ * H_ + D_; }

  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override {
    Forward(t, x, theta);
    Eigen::Map<Matrix> out(dxdt.data(), D_, B_);
    out.noalias() = W2(theta) * z_;
    out.colwise() += b2(theta);
  }

  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override {
    Forward(t, x, theta);
    Eigen::Map<const Matrix> A(a.data(), D_, B_);
    Eigen::Map<const Matrix> X(x.data(), D_, B_);
    // g = (W2ᵀ a) ⊙ (1 − z²)
    g_.noalias() = W2(theta).transpose() * A;
    g_.array() *= 1.0 - z_.array().square();
    Eigen::Map<Matrix> ax(a_x.data(), D_, B_);
    ax.noalias() = W1(theta).transpose() * g_;
    Eigen::Index o = 0;
    Eigen::Map<Matrix> gW1(a_theta.data() + o, H_, D_);
    gW1.noalias() = g_ * X.transpose();
    o += H_ * D_;
    a_theta.segment(o, H_) = t * g_.rowwise().sum();
    o += H_;
    a_theta.segment(o, H_) = g_.rowwise().sum();
    o += H_;
    Eigen::Map<Matrix> gW2(a_theta.data() + o, D_, H_);
    gW2.noalias() = A * z_.transpose();
    o += D_ * H_;
    a_theta.segment(o, D_) = A.rowwise().sum();
  }

 private:
  Eigen::Map<const Matrix> W1(ConstVectorRef th) const { return {th.data(), H_, D_}; }
  Eigen::Map<const Matrix> W2(ConstVectorRef th) const {
    return {th.data() + H_ * D_ + 2 * H_, D_, H_};
  }
  Eigen::Map<const Vector> b2(ConstVectorRef th) const {
    return {th.data() + H_ * D_ + 2 * H_ + D_ * H_, D_};
  }
  void Forward(double t, ConstVectorRef x, ConstVectorRef theta) {
    Eigen::Map<const Matrix> X(x.data(), D_, B_);
    z_.noalias() = W1(theta) * X;
    const Eigen::Map<const Vector> wt(theta.data() + H_ * D_, H_);
    const Eigen::Map<const Vector> b1(theta.data() + H_ * D_ + H_, H_);
    shift_.noalias() = t * wt + b1;  // a workspace: colwise() += of an expression allocates
    z_.colwise() += shift_;
    z_ = z_.array().tanh().matrix();
  }

  Eigen::Index B_, D_, H_;
  Matrix z_, g_;
  Vector shift_;
};

}  // namespace diffeoflow::testing
