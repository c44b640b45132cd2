#include "solvers/landmarks.h"

#include <algorithm>
#include <cmath>

#include "solvers/errors.h"

namespace diffeoflow {
namespace {

void CheckGeometry(int dim, Eigen::Index landmarks, double width, const char* what) {
  if (dim != 2 && dim != 3) {
    throw InputError(std::string(what) + ": dimension must be 2 or 3, got " + std::to_string(dim));
  }
  if (landmarks < 1) {
    throw InputError(std::string(what) + ": need at least one landmark, got " +
                     std::to_string(landmarks));
  }
  if (!(width > 0.0) || !std::isfinite(width)) {
    throw InputError(std::string(what) + ": kernel width must be positive and finite, got " +
                     std::to_string(width));
  }
}

double Dot(const double* a, const double* b, int d) {
  double s = 0.0;
  for (int c = 0; c < d; ++c) s += a[c] * b[c];
  return s;
}

double SquaredDistance(const double* a, const double* b, int d) {
  double s = 0.0;
  for (int c = 0; c < d; ++c) {
    const double e = a[c] - b[c];
    s += e * e;
  }
  return s;
}

// dx_m += Σ_j k(x_m, q_j) p_j for m < points.
void CarryField(int d, Eigen::Index n, Eigen::Index points, double width, const double* q,
                const double* p, const double* x, double* dx) {
  const double inv = 1.0 / (2.0 * width * width);
  for (Eigen::Index m = 0; m < points; ++m) {
    const double* xm = x + m * d;
    double* dxm = dx + m * d;
    for (int c = 0; c < d; ++c) dxm[c] = 0.0;
    for (Eigen::Index j = 0; j < n; ++j) {
      const double k = std::exp(-SquaredDistance(xm, q + j * d, d) * inv);
      const double* pj = p + j * d;
      for (int c = 0; c < d; ++c) dxm[c] += k * pj[c];
    }
  }
}

// The carried points' share of the VJP: accumulates into gq and gp, overwrites gx.
void CarryVjp(int d, Eigen::Index n, Eigen::Index points, double width, const double* q,
              const double* p, const double* x, const double* ax, double* gq, double* gp,
              double* gx) {
  const double w2 = width * width;
  const double inv = 1.0 / (2.0 * w2);
  for (Eigen::Index m = 0; m < points; ++m) {
    const double* xm = x + m * d;
    const double* axm = ax + m * d;
    double* gxm = gx + m * d;
    for (int c = 0; c < d; ++c) gxm[c] = 0.0;
    for (Eigen::Index j = 0; j < n; ++j) {
      const double* qj = q + j * d;
      const double* pj = p + j * d;
      const double k = std::exp(-SquaredDistance(xm, qj, d) * inv);
      const double g = Dot(axm, pj, d);
      const double scale = -g * k / w2;
      double* gpj = gp + j * d;
      double* gqj = gq + j * d;
      for (int c = 0; c < d; ++c) {
        gpj[c] += k * axm[c];
        const double e = scale * (xm[c] - qj[c]);
        gxm[c] += e;
        gqj[c] -= e;
      }
    }
  }
}

}  // namespace

Matrix KernelMatrix(int dim, double width, const Vector& q) {
  const Eigen::Index n = q.size() / dim;
  CheckGeometry(dim, n, width, "KernelMatrix");
  const GaussianKernel kernel{width};
  Matrix K(n, n);
  for (Eigen::Index i = 0; i < n; ++i) {
    K(i, i) = 1.0;
    for (Eigen::Index j = i + 1; j < n; ++j) {
      K(i, j) = K(j, i) = kernel(SquaredDistance(q.data() + i * dim, q.data() + j * dim, dim));
    }
  }
  return K;
}

Vector LandmarkVelocity(int dim, double width, const Vector& q, const Vector& p, const Vector& x) {
  const Eigen::Index n = q.size() / dim;
  CheckGeometry(dim, n, width, "LandmarkVelocity");
  if (p.size() != q.size() || q.size() % dim != 0 || x.size() % dim != 0) {
    throw InputError("LandmarkVelocity: q, p and x must hold whole points of the same dimension");
  }
  Vector v(x.size());
  CarryField(dim, n, x.size() / dim, width, q.data(), p.data(), x.data(), v.data());
  return v;
}

double KineticEnergy(int dim, double width, const Vector& q, const Vector& p) {
  if (p.size() != q.size()) throw InputError("KineticEnergy: q and p differ in size");
  const Matrix K = KernelMatrix(dim, width, q);
  const Eigen::Map<const Matrix> P(p.data(), dim, q.size() / dim);
  return 0.5 * (P * K * P.transpose()).trace();
}

// ---- LandmarkHamiltonian ---------------------------------------------------------------------

LandmarkHamiltonian::LandmarkHamiltonian(int dim, Eigen::Index landmarks, double width)
    : dim_(dim), n_(landmarks), width_(width) {
  CheckGeometry(dim, landmarks, width, "LandmarkHamiltonian");
}

void LandmarkHamiltonian::HamiltonianField(const double* q, const double* p, double* dq,
                                           double* dp) const {
  const int d = dim_;
  const double w2 = width_ * width_;
  const double inv = 1.0 / (2.0 * w2);
  for (Eigen::Index i = 0; i < n_; ++i) {
    for (int c = 0; c < d; ++c) {
      dq[i * d + c] = p[i * d + c];
      dp[i * d + c] = 0.0;
    }
  }
  for (Eigen::Index i = 0; i < n_; ++i) {
    const double* qi = q + i * d;
    const double* pi = p + i * d;
    for (Eigen::Index j = i + 1; j < n_; ++j) {
      const double* qj = q + j * d;
      const double* pj = p + j * d;
      const double k = std::exp(-SquaredDistance(qi, qj, d) * inv);
      const double force = Dot(pi, pj, d) * k / w2;
      for (int c = 0; c < d; ++c) {
        dq[i * d + c] += k * pj[c];
        dq[j * d + c] += k * pi[c];
        const double f = force * (qi[c] - qj[c]);
        dp[i * d + c] += f;
        dp[j * d + c] -= f;
      }
    }
  }
}

void LandmarkHamiltonian::HamiltonianVjp(const double* q, const double* p, const double* aq,
                                         const double* ap, double* gq, double* gp) const {
  const int d = dim_;
  const double w2 = width_ * width_;
  const double inv = 1.0 / (2.0 * w2);
  for (Eigen::Index i = 0; i < n_; ++i) {
    for (int c = 0; c < d; ++c) {
      gq[i * d + c] = 0.0;
      gp[i * d + c] = aq[i * d + c];  // diagonal k_ii = 1
    }
  }
  double diff[3];
  for (Eigen::Index i = 0; i < n_; ++i) {
    const double* qi = q + i * d;
    const double* pi = p + i * d;
    const double* aqi = aq + i * d;
    const double* api = ap + i * d;
    for (Eigen::Index j = i + 1; j < n_; ++j) {
      const double* qj = q + j * d;
      const double* pj = p + j * d;
      const double* aqj = aq + j * d;
      const double* apj = ap + j * d;
      for (int c = 0; c < d; ++c) diff[c] = qi[c] - qj[c];
      const double k = std::exp(-Dot(diff, diff, d) * inv);
      const double s = Dot(pi, pj, d);
      const double api_d = Dot(api, diff, d);
      const double apj_d = Dot(apj, diff, d);
      // Ordered pair (i, j) with d_ij = diff, and (j, i) with d_ji = −diff.
      const double g1 = Dot(aqi, pj, d) + s * api_d / w2;
      const double g2 = Dot(aqj, pi, d) - s * apj_d / w2;
      const double cpair = k * (api_d - apj_d) / w2;
      const double kw = k / w2;
      for (int c = 0; c < d; ++c) {
        const double G1 = kw * (s * api[c] - g1 * diff[c]);
        const double G2 = kw * (s * apj[c] + g2 * diff[c]);
        gq[i * d + c] += G1 - G2;
        gq[j * d + c] += G2 - G1;
        gp[j * d + c] += k * aqi[c] + cpair * pi[c];
        gp[i * d + c] += k * aqj[c] + cpair * pj[c];
      }
    }
  }
}

void LandmarkHamiltonian::f(double, ConstVectorRef x, ConstVectorRef, VectorRef dxdt) {
  const Eigen::Index nd = dim_ * n_;
  HamiltonianField(x.data(), x.data() + nd, dxdt.data(), dxdt.data() + nd);
}

void LandmarkHamiltonian::vjp(double, ConstVectorRef x, ConstVectorRef, ConstVectorRef a,
                              VectorRef a_x, VectorRef) {
  const Eigen::Index nd = dim_ * n_;
  HamiltonianVjp(x.data(), x.data() + nd, a.data(), a.data() + nd, a_x.data(), a_x.data() + nd);
}

double LandmarkHamiltonian::Energy(ConstVectorRef state) const {
  const Eigen::Index nd = dim_ * n_;
  const double* q = state.data();
  const double* p = state.data() + nd;
  const double inv = 1.0 / (2.0 * width_ * width_);
  double h = 0.0;
  for (Eigen::Index i = 0; i < n_; ++i) {
    h += 0.5 * Dot(p + i * dim_, p + i * dim_, dim_);
    for (Eigen::Index j = i + 1; j < n_; ++j) {
      h += std::exp(-SquaredDistance(q + i * dim_, q + j * dim_, dim_) * inv) *
           Dot(p + i * dim_, p + j * dim_, dim_);
    }
  }
  return h;
}

// ---- CarriedPoints ---------------------------------------------------------------------------

CarriedPoints::CarriedPoints(int dim, Eigen::Index landmarks, Eigen::Index points, double width)
    : LandmarkHamiltonian(dim, landmarks, width),
      m_(std::max<Eigen::Index>(points, 0)),
      kernel_(m_, landmarks),
      weights_(m_, landmarks),
      x_norms_(m_),
      q_norms_(landmarks) {
  if (points < 0) throw InputError("CarriedPoints: the number of points must be ≥ 0");
}

// The carried part as matrix products (the points are many): with X (d × M), Q, P (d × N),
//     k_mj = exp(−(‖x_m‖² + ‖q_j‖² − 2 x_mᵀ q_j) / (2W²)),   dX/dt = P kᵀ.
void CarriedPoints::f(double, ConstVectorRef x, ConstVectorRef, VectorRef dxdt) {
  const Eigen::Index nd = dim_ * n_;
  const double* q = x.data();
  const double* p = x.data() + nd;
  HamiltonianField(q, p, dxdt.data(), dxdt.data() + nd);
  if (m_ == 0) return;
  const Eigen::Map<const Matrix> Q(q, dim_, n_), P(p, dim_, n_), X(x.data() + 2 * nd, dim_, m_);
  Eigen::Map<Matrix> dX(dxdt.data() + 2 * nd, dim_, m_);
  const double inv = 1.0 / (2.0 * width_ * width_);
  x_norms_.noalias() = X.colwise().squaredNorm().transpose();
  q_norms_.noalias() = Q.colwise().squaredNorm().transpose();
  kernel_.noalias() = X.transpose() * Q;
  kernel_ = ((2.0 * kernel_.array()).colwise() - x_norms_.array()).rowwise() -
            q_norms_.transpose().array();
  kernel_ = (kernel_.array().min(0.0) * inv).exp();
  dX.noalias() = P * kernel_.transpose();
}

// With A_x (d × M) the points' share of a, g_mj = a_x,mᵀ p_j and E_mj = −g_mj k_mj / W²:
//     ∂/∂X = X diag(Σ_j E_mj) − Q Eᵀ,   ∂/∂Q −= X E − Q diag(Σ_m E_mj),   ∂/∂P += A_x k.
void CarriedPoints::vjp(double, ConstVectorRef x, ConstVectorRef, ConstVectorRef a, VectorRef a_x,
                        VectorRef) {
  const Eigen::Index nd = dim_ * n_;
  const double* q = x.data();
  const double* p = x.data() + nd;
  HamiltonianVjp(q, p, a.data(), a.data() + nd, a_x.data(), a_x.data() + nd);
  if (m_ == 0) return;
  const Eigen::Map<const Matrix> Q(q, dim_, n_), P(p, dim_, n_), X(x.data() + 2 * nd, dim_, m_);
  const Eigen::Map<const Matrix> A(a.data() + 2 * nd, dim_, m_);
  Eigen::Map<Matrix> gQ(a_x.data(), dim_, n_), gP(a_x.data() + nd, dim_, n_);
  Eigen::Map<Matrix> gX(a_x.data() + 2 * nd, dim_, m_);
  const double w2 = width_ * width_;
  const double inv = 1.0 / (2.0 * w2);
  x_norms_.noalias() = X.colwise().squaredNorm().transpose();
  q_norms_.noalias() = Q.colwise().squaredNorm().transpose();
  kernel_.noalias() = X.transpose() * Q;
  kernel_ = ((2.0 * kernel_.array()).colwise() - x_norms_.array()).rowwise() -
            q_norms_.transpose().array();
  kernel_ = (kernel_.array().min(0.0) * inv).exp();
  gP.noalias() += A * kernel_;
  weights_.noalias() = A.transpose() * P;
  weights_.array() *= kernel_.array() * (-1.0 / w2);
  x_norms_.noalias() = weights_.rowwise().sum();   // Σ_j E_mj
  q_norms_.noalias() = weights_.colwise().sum().transpose();  // Σ_m E_mj
  gX.noalias() = X * x_norms_.asDiagonal();
  gX.noalias() -= Q * weights_.transpose();
  gQ.noalias() -= X * weights_;
  gQ.noalias() += Q * q_norms_.asDiagonal();
}

// ---- TimeDependentLandmarkFlow ---------------------------------------------------------------

std::string MomentumInterpolationName(MomentumInterpolation interpolation) {
  return interpolation == MomentumInterpolation::kLinear ? "linear" : "piecewise-constant";
}

TimeDependentLandmarkFlow::TimeDependentLandmarkFlow(int dim, Eigen::Index landmarks,
                                                     Eigen::Index points, double width,
                                                     int time_points,
                                                     MomentumInterpolation interpolation)
    : dim_(dim),
      n_(landmarks),
      m_(points),
      width_(width),
      time_points_(time_points),
      interpolation_(interpolation),
      p_(dim * landmarks),
      gp_(dim * landmarks) {
  CheckGeometry(dim, landmarks, width, "TimeDependentLandmarkFlow");
  if (points < 0) throw InputError("TimeDependentLandmarkFlow: the number of points must be ≥ 0");
  const int minimum = interpolation == MomentumInterpolation::kLinear ? 2 : 1;
  if (time_points < minimum) {
    throw InputError("TimeDependentLandmarkFlow: " + MomentumInterpolationName(interpolation) +
                     " momenta need at least " + std::to_string(minimum) +
                     " time points, got " + std::to_string(time_points));
  }
}

void TimeDependentLandmarkFlow::Weights(double t, int* k0, int* k1, double* w0,
                                        double* w1) const {
  const double s = std::clamp(t, 0.0, 1.0);
  if (interpolation_ == MomentumInterpolation::kPiecewiseConstant) {
    *k0 = *k1 = std::min(static_cast<int>(std::floor(s * time_points_)), time_points_ - 1);
    *w0 = 1.0;
    *w1 = 0.0;
    return;
  }
  const double u = s * (time_points_ - 1);
  *k0 = std::min(static_cast<int>(std::floor(u)), time_points_ - 2);
  *k1 = *k0 + 1;
  *w1 = u - *k0;
  *w0 = 1.0 - *w1;
}

Vector TimeDependentLandmarkFlow::MomentumAt(double t, const Vector& theta) const {
  int k0, k1;
  double w0, w1;
  Weights(t, &k0, &k1, &w0, &w1);
  const Eigen::Index nd = dim_ * n_;
  return w0 * theta.segment(k0 * nd, nd) + w1 * theta.segment(k1 * nd, nd);
}

void TimeDependentLandmarkFlow::f(double t, ConstVectorRef x, ConstVectorRef theta,
                                  VectorRef dxdt) {
  const Eigen::Index nd = dim_ * n_;
  int k0, k1;
  double w0, w1;
  Weights(t, &k0, &k1, &w0, &w1);
  p_.noalias() = w0 * theta.segment(k0 * nd, nd) + w1 * theta.segment(k1 * nd, nd);
  const int d = dim_;
  const double* q = x.data();
  const double* p = p_.data();
  double* dq = dxdt.data();
  const double inv = 1.0 / (2.0 * width_ * width_);
  double energy_rate = 0.0;
  for (Eigen::Index i = 0; i < nd; ++i) dq[i] = p[i];
  for (Eigen::Index i = 0; i < n_; ++i) {
    const double* qi = q + i * d;
    const double* pi = p + i * d;
    energy_rate += 0.5 * Dot(pi, pi, d);
    for (Eigen::Index j = i + 1; j < n_; ++j) {
      const double* pj = p + j * d;
      const double k = std::exp(-SquaredDistance(qi, q + j * d, d) * inv);
      energy_rate += k * Dot(pi, pj, d);
      for (int c = 0; c < d; ++c) {
        dq[i * d + c] += k * pj[c];
        dq[j * d + c] += k * pi[c];
      }
    }
  }
  CarryField(d, n_, m_, width_, q, p, x.data() + nd, dxdt.data() + nd);
  dxdt[dim_ * (n_ + m_)] = energy_rate;
}

void TimeDependentLandmarkFlow::vjp(double t, ConstVectorRef x, ConstVectorRef theta,
                                    ConstVectorRef a, VectorRef a_x, VectorRef a_theta) {
  const Eigen::Index nd = dim_ * n_;
  int k0, k1;
  double w0, w1;
  Weights(t, &k0, &k1, &w0, &w1);
  p_.noalias() = w0 * theta.segment(k0 * nd, nd) + w1 * theta.segment(k1 * nd, nd);
  const int d = dim_;
  const double* q = x.data();
  const double* p = p_.data();
  const double* aq = a.data();
  const double ae = a[dim_ * (n_ + m_)];
  double* gq = a_x.data();
  double* gp = gp_.data();
  const double w2 = width_ * width_;
  const double inv = 1.0 / (2.0 * w2);
  for (Eigen::Index i = 0; i < nd; ++i) {
    gq[i] = 0.0;
    gp[i] = aq[i] + ae * p[i];
  }
  for (Eigen::Index i = 0; i < n_; ++i) {
    const double* qi = q + i * d;
    const double* pi = p + i * d;
    const double* aqi = aq + i * d;
    for (Eigen::Index j = i + 1; j < n_; ++j) {
      const double* qj = q + j * d;
      const double* pj = p + j * d;
      const double* aqj = aq + j * d;
      const double k = std::exp(-SquaredDistance(qi, qj, d) * inv);
      const double g = Dot(aqi, pj, d) + Dot(aqj, pi, d) + ae * Dot(pi, pj, d);
      const double scale = -g * k / w2;
      for (int c = 0; c < d; ++c) {
        const double e = scale * (qi[c] - qj[c]);
        gq[i * d + c] += e;
        gq[j * d + c] -= e;
        gp[j * d + c] += k * (aqi[c] + ae * pi[c]);
        gp[i * d + c] += k * (aqj[c] + ae * pj[c]);
      }
    }
  }
  CarryVjp(d, n_, m_, width_, q, p, x.data() + nd, a.data() + nd, gq, gp, a_x.data() + nd);
  a_x[dim_ * (n_ + m_)] = 0.0;
  a_theta.setZero();
  a_theta.segment(k0 * nd, nd) += w0 * gp_;
  if (w1 != 0.0) a_theta.segment(k1 * nd, nd) += w1 * gp_;
}

}  // namespace diffeoflow
