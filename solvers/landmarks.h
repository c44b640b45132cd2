// Landmark LDDMM: the Hamiltonian flow of landmarks, and of any other points they carry, under a
// Gaussian kernel (Joshi & Miller, IEEE TIP 9, 2000; Miller, Trouvé & Younes, J. Math. Imaging
// Vis. 24, 2006; Vialard & Risser's landmark shooting; Younes, "Shapes and Diffeomorphisms", ch. 12).
// Shared by registration/ (matching shapes) and flows/ (classifiers whose hidden flow is a
// landmark-type geodesic carrying the training points).
//
// Kernel and width convention. K(x, y) = k(x, y) I_d with the scalar Gaussian
//     k(x, y) = exp(−‖x − y‖² / (2 W²)),
// so W ("kernel width") is the Gaussian's standard deviation, in the units of the coordinates.
//
// Layout. N landmarks in dimension d (2 or 3): positions q and momenta p are packed point by point,
// q = [q_1, …, q_N] with q_i ∈ ℝ^d contiguous (a d × N column-major matrix). M carried points x are
// packed the same way.
//
// Hamiltonian and its flow (the geodesic equations of the right-invariant metric whose reproducing
// kernel is K):
//     H(q, p) = ½ Σ_ij k(q_i, q_j) p_iᵀ p_j
//     dq_i/dt =  ∂H/∂p_i = Σ_j k_ij p_j                                  = v(q_i)
//     dp_i/dt = −∂H/∂q_i = Σ_j (p_iᵀ p_j) k_ij (q_i − q_j) / W²
// The velocity field v(x) = Σ_j k(x, q_j) p_j moves every point of space; ‖v‖²_V = pᵀ K(q) p = 2H,
// and H is constant along the exact flow, so the kinetic energy ½∫₀¹ ‖v_t‖²_V dt = H(q_0, p_0).
//
// Hand-written VJP of the Hamiltonian field (a = (a_q, a_p); d_ij = q_i − q_j, s_ij = p_iᵀ p_j;
// sums over ordered pairs i ≠ j):
//     ∂/∂p_j :  Σ_i k_ij a_q,i + Σ_i c_ij p_i,        c_ij = k_ij (a_p,i − a_p,j)ᵀ d_ij / W²
//     G_ij    = (k_ij / W²) (s_ij a_p,i − g_ij d_ij),  g_ij = a_q,iᵀ p_j + s_ij a_p,iᵀ d_ij / W²
//     ∂/∂q_i :  Σ_j (G_ij − G_ji)
// (plus a_q,i for ∂/∂p_i from the diagonal k_ii = 1). Carried points x_m add
//     dx_m/dt = Σ_j k(x_m, q_j) p_j,  and to the VJP, with e_mj = x_m − q_j, g_mj = a_x,mᵀ p_j:
//     ∂/∂p_j += Σ_m k_mj a_x,m,   ∂/∂x_m += Σ_j E_mj,   ∂/∂q_j −= Σ_m E_mj,   E_mj = −g_mj k_mj e_mj/W².
//
// Time-dependent landmark velocities (the "gradient descent" formulation of Beg et al., IJCV 61,
// 2005, for landmarks): the momenta p(t) are free controls, and the landmarks follow
//     dq_i/dt = Σ_j k(q_i, q_j) p_j(t),   v(x, t) = Σ_j k(x, q_j(t)) p_j(t),
// with the kinetic energy E(t) = ½ ∫₀ᵗ p(s)ᵀ K(q(s)) p(s) ds accumulated as one more state
// component so that the engine differentiates it with the rest. θ holds p at T nodes on [0, 1]:
// piecewise-constant (T equal pieces; piece ⌊T t⌋) or piecewise-linear (nodes t_k = k/(T − 1)).
#pragma once

#include <cmath>
#include <string>

#include "solvers/dynamics.h"

namespace diffeoflow {

// k(x, y) = exp(−‖x − y‖² / (2 W²)) with W = width.
struct GaussianKernel {
  double width = 1.0;
  double operator()(double squared_distance) const {
    return std::exp(-squared_distance / (2.0 * width * width));
  }
};

// The N × N matrix k(q_i, q_j) of packed positions q (size N d).
Matrix KernelMatrix(int dim, double width, const Vector& q);

// v(x_m) = Σ_j k(x_m, q_j) p_j for packed points x (size M d); returns a packed vector of size M d.
Vector LandmarkVelocity(int dim, double width, const Vector& q, const Vector& p, const Vector& x);

// ½ pᵀ K(q) p = H(q, p) = ½ ‖v‖²_V.
double KineticEnergy(int dim, double width, const Vector& q, const Vector& p);

// The Hamiltonian system above on the state [q, p] (size 2 N d); no parameters.
class LandmarkHamiltonian : public Dynamics {
 public:
  // Throws InputError unless dim ∈ {2, 3}, landmarks ≥ 1 and width > 0.
  LandmarkHamiltonian(int dim, Eigen::Index landmarks, double width);
  Eigen::Index state_dim() const override { return 2 * dim_ * n_; }
  Eigen::Index param_dim() const override { return 0; }
  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override;

  // H(q, p) of a state [q, p].
  double Energy(ConstVectorRef state) const;
  int dim() const { return dim_; }
  Eigen::Index landmarks() const { return n_; }
  double width() const { return width_; }

 protected:
  // The Hamiltonian part of f and vjp on raw pointers (shared with CarriedPoints).
  void HamiltonianField(const double* q, const double* p, double* dq, double* dp) const;
  void HamiltonianVjp(const double* q, const double* p, const double* aq, const double* ap,
                      double* gq, double* gp) const;

  int dim_;
  Eigen::Index n_;
  double width_;
};

// The landmark Hamiltonian flow together with M points carried by v(x) = Σ_j k(x, q_j) p_j:
// state [q, p, x] (size 2 N d + M d); no parameters. Use it to carry grid nodes, test points or the
// training points of a classifier along a geodesic.
class CarriedPoints : public LandmarkHamiltonian {
 public:
  // points ≥ 0.
  CarriedPoints(int dim, Eigen::Index landmarks, Eigen::Index points, double width);
  Eigen::Index state_dim() const override { return 2 * dim_ * n_ + dim_ * m_; }
  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override;
  Eigen::Index points() const { return m_; }

 private:
  Eigen::Index m_;
  // M × N workspaces: kernel values k(x_m, q_j), then the VJP's pair weights.
  Matrix kernel_, weights_;
  Vector x_norms_, q_norms_;
};

enum class MomentumInterpolation { kPiecewiseConstant, kLinear };
std::string MomentumInterpolationName(MomentumInterpolation interpolation);

// Landmarks moved by time-dependent momenta p(t) (θ), with M carried points and the accumulated
// kinetic energy: state [q (N d), x (M d), E (1)], θ = [p^0, …, p^{T−1}] (T N d), time in [0, 1].
class TimeDependentLandmarkFlow : public Dynamics {
 public:
  // Throws InputError unless dim ∈ {2, 3}, landmarks ≥ 1, points ≥ 0, width > 0 and
  // time_points ≥ 1 (≥ 2 for kLinear).
  TimeDependentLandmarkFlow(int dim, Eigen::Index landmarks, Eigen::Index points, double width,
                            int time_points, MomentumInterpolation interpolation);
  Eigen::Index state_dim() const override { return dim_ * (n_ + m_) + 1; }
  Eigen::Index param_dim() const override { return time_points_ * dim_ * n_; }
  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override;

  // p(t) from θ (size N d).
  Vector MomentumAt(double t, const Vector& theta) const;
  int time_points() const { return time_points_; }
  MomentumInterpolation interpolation() const { return interpolation_; }

 private:
  // p(t) = w0 θ_{k0} + w1 θ_{k1}.
  void Weights(double t, int* k0, int* k1, double* w0, double* w1) const;

  int dim_;
  Eigen::Index n_, m_;
  double width_;
  int time_points_;
  MomentumInterpolation interpolation_;
  Vector p_, gp_;  // p(t) and ∂/∂p(t) workspaces
};

}  // namespace diffeoflow
