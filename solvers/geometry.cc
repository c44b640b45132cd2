#include "solvers/geometry.h"

#include <chrono>
#include <cmath>

#include <Eigen/Eigenvalues>
#include <Eigen/SVD>

#include "solvers/errors.h"

namespace diffeoflow {
namespace {

// The batch augmented with its per-point variational equations:
//   z = [x (B·d), J_1 … J_B (d×d each, column-major)],  dJ_b/dt = (∂f_b/∂x_b) J_b.
class BatchVariational : public Dynamics {
 public:
  BatchVariational(Dynamics& inner, Eigen::Index point_dim)
      : inner_(inner),
        d_(point_dim),
        B_(inner.state_dim() / point_dim),
        f_(inner.state_dim()),
        unit_(inner.state_dim()),
        rows_(point_dim, Vector(inner.state_dim())),
        theta_bar_(inner.param_dim()) {}

  Eigen::Index state_dim() const override { return B_ * d_ + B_ * d_ * d_; }
  Eigen::Index param_dim() const override { return inner_.param_dim(); }

  void f(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef dz) override {
    const Eigen::Index n = B_ * d_;
    const auto x = z.head(n);
    inner_.f(t, x, theta, f_);
    dz.head(n) = f_;
    // Row k of every block A_b = ∂f_b/∂x_b from one vjp with e_k in every point.
    for (Eigen::Index k = 0; k < d_; ++k) {
      unit_.setZero();
      for (Eigen::Index b = 0; b < B_; ++b) unit_[b * d_ + k] = 1.0;
      inner_.vjp(t, x, theta, unit_, rows_[k], theta_bar_);
    }
    for (Eigen::Index b = 0; b < B_; ++b) {
      Eigen::Map<const Matrix> J(z.data() + n + b * d_ * d_, d_, d_);
      Eigen::Map<Matrix> dJ(dz.data() + n + b * d_ * d_, d_, d_);
      for (Eigen::Index k = 0; k < d_; ++k) {
        // (A_b J_b) row k = (row k of A_b) J_b
        dJ.row(k).noalias() = rows_[k].segment(b * d_, d_).transpose() * J;
      }
    }
  }

  void vjp(double, ConstVectorRef, ConstVectorRef, ConstVectorRef, VectorRef, VectorRef) override {
    throw std::logic_error("BatchVariational is integrated forward only");
  }

 private:
  Dynamics& inner_;
  Eigen::Index d_, B_;
  Vector f_, unit_;
  std::vector<Vector> rows_;
  Vector theta_bar_;
};

}  // namespace

BatchSensitivity BatchForwardSensitivity(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                                         Eigen::Index point_dim,
                                         const std::vector<double>& output_times,
                                         const SolverOptions& options) {
  if (point_dim < 1 || dynamics.state_dim() % point_dim != 0) {
    throw InputError("BatchForwardSensitivity: point_dim " + std::to_string(point_dim) +
                     " does not divide the state dimension " +
                     std::to_string(dynamics.state_dim()));
  }
  BatchVariational augmented(dynamics, point_dim);
  const Eigen::Index n = dynamics.state_dim();
  const Eigen::Index B = n / point_dim;
  Vector z0 = Vector::Zero(augmented.state_dim());
  z0.head(n) = x0;
  for (Eigen::Index b = 0; b < B; ++b) {
    Eigen::Map<Matrix>(z0.data() + n + b * point_dim * point_dim, point_dim, point_dim).setIdentity();
  }
  const Solution solution = Integrate(augmented, z0, theta, output_times, options);
  BatchSensitivity result;
  result.times = solution.times;
  result.summary = solution.summary;
  for (const Vector& z : solution.states) {
    result.states.push_back(z.head(n));
    std::vector<Matrix> jacobians;
    jacobians.reserve(static_cast<std::size_t>(B));
    for (Eigen::Index b = 0; b < B; ++b) {
      jacobians.push_back(
          Eigen::Map<const Matrix>(z.data() + n + b * point_dim * point_dim, point_dim, point_dim));
    }
    result.jacobians.push_back(std::move(jacobians));
  }
  return result;
}

Matrix PullbackMetric(const Matrix& jacobian) { return jacobian.transpose() * jacobian; }

double VolumeElement(const Matrix& jacobian) {
  if (jacobian.rows() < jacobian.cols()) return 0.0;  // rank-deficient: no d-volume survives
  const Eigen::JacobiSVD<Matrix> svd(jacobian);
  return svd.singularValues().prod();
}

Eigen::Matrix2d MetricEllipseAxes(const Eigen::Matrix2d& metric, double r) {
  const Eigen::SelfAdjointEigenSolver<Eigen::Matrix2d> eig(metric);
  Eigen::Matrix2d axes;
  for (int k = 0; k < 2; ++k) {
    const double lambda = std::max(eig.eigenvalues()[k], 1e-300);
    axes.col(k) = eig.eigenvectors().col(k) * (r / std::sqrt(lambda));
  }
  return axes;
}

}  // namespace diffeoflow
