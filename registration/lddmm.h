// Velocity-field LDDMM (Beg, Miller, Trouvé & Younes, IJCV 61(2), 2005) as a Dynamics on the
// shared engine. What it shares with geodesic shooting (particle–mesh transfer, the mesh-to-image
// map, the data term, the objectives' base FlowObjective) is in flow_problem.h.
//
// The map. Particles start on the voxel centres x of the FIXED image and move by
//     dq/dt = v_t(q),   q(0) = x,   t ∈ [0, 1],
// so φ = q(1) maps the fixed grid into the moving image and the warped image is I_m ∘ φ (the
// moving image resampled on the fixed grid). This is Beg's characteristic flow with time reversed
// (v_t here is −v_{1−t} there); the energy below is the same.
//
// The energy (units: intensities, mm, unit time; ⟨f, g⟩ = Σ_voxels f·g·Δx, Δx = voxel volume):
//     E(v) = ½ ∫₀¹ ‖v_t‖²_V dt + 1/(2σ²) ‖I_m ∘ φ − I_f‖²,     ‖v‖²_V = ⟨L v, v⟩,
// (or local NCC in place of the SSD: DataTerm, flow_problem.h) with L = (I − αΔ)^γ and K = L⁻¹ (registration/metric.h). v is stored at T + 1 equally spaced
// time points and interpolated linearly in time; the time integral is the trapezoidal rule.
//
// Free variables (preconditioning by K): v_k = K^{1/2} w_k, so ‖v_k‖²_V = ‖w_k‖² and the
// Euclidean gradient in w is the V-gradient of Beg et al. (∇_V E = v + K ∇_{L²} E) seen through
// K^{1/2}. Gradient descent on w is their algorithm; L-BFGS on w is its quasi-Newton version.
//
// Positions q are in voxel coordinates (index units); velocities are in mm per unit time along
// the image axes, so dq_c/dt = v_c(q) / h_c with h the spacing.
#pragma once

#include <memory>
#include <vector>

#include "registration/flow_problem.h"
#include "registration/image.h"
#include "solvers/dynamics.h"
#include "solvers/integrate.h"
#include "solvers/optimize.h"
#include "solvers/thread_pool.h"

namespace diffeoflow::registration {

// ---------------------------------------------------------------------------------------------
// The flow of the fixed grid through a velocity field stored at T + 1 time points.
//   state  x: particle positions q (voxel coordinates), dim × voxels
//   θ       : v_0, …, v_T, each dim × voxels (mm per unit time), component-major
//   f       : dq_c/dt = v_t,c(q) / h_c,  v_t = (1 − λ) v_k + λ v_{k+1},  t T = k + λ
//   vjp     : a_q,c = Σ_d (a_d / h_d) ∂_c v_t,d(q);   a_θ = splat of a_d / h_d with weights
//             (1 − λ) into v_k and λ into v_{k+1}.
//   threads : the particles are split into that many contiguous ranges on meshes large enough
//             to gain from it (ThreadPool); each range splats a_θ into its own buffer and the
//             buffers are added in range order, so a run is reproducible for a given count.
class VelocityFieldFlow : public Dynamics {
 public:
  VelocityFieldFlow(const Grid& grid, int time_steps, int threads = 1);
  Eigen::Index state_dim() const override { return dim_ * voxels_; }
  Eigen::Index param_dim() const override { return (time_steps_ + 1) * dim_ * voxels_; }
  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override;
  int time_steps() const { return time_steps_; }

 private:
  template <int D>
  void F(double t, const double* x, const double* theta, double* dxdt) const;
  template <int D>
  void Vjp(double t, const double* x, const double* theta, const double* a, double* a_x,
           double* a_theta);
  void TimeSlot(double t, int* k, double* lambda) const;
  // fn(begin, end, range) over particle ranges, on the pool's threads when there is one.
  template <class Fn>
  void ForRanges(Fn&& fn) const;

  Grid grid_;
  int dim_;
  Eigen::Index voxels_;
  int time_steps_;
  std::unique_ptr<ThreadPool> pool_;  // the workers of ranges 1 … threads − 1
  // a_θ of ranges 1 … threads − 1 in the two time slots a VJP touches (2 · dim × voxels each).
  std::vector<Vector> range_theta_;
};


// E(w) of velocity-field LDDMM at one resolution, w = the whitened velocities (T + 1 fields).
class VelocityFieldObjective : public FlowObjective {
 public:
  VelocityFieldObjective(const Image& moving, const Image& fixed, const Grid& mesh,
                         const MetricPowers& metric, const FlowProblemOptions& options);
  Eigen::Index num_parameters() const override { return flow_.param_dim(); }
  double Evaluate(const Vector& w, Vector* gradient) override;

  // v = K^{1/2} w.
  Vector Velocities(const Vector& w) const;
  // Mesh positions q(t_k) at the T + 1 time points of the velocity grids.
  std::vector<Vector> Path(const Vector& w);
  // ‖v_k‖_V at each time point.
  std::vector<double> VelocityNorms(const Vector& w) const;
  // Integration steps per recorded interval for velocities v (SubstepsFor their Lipschitz bound).
  int Substeps(const Vector& v) const;

 private:
  VelocityFieldFlow flow_;
  Vector identity_;
  Vector v_;
};


}  // namespace diffeoflow::registration
