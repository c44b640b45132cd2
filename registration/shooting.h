// Geodesic shooting for image registration (Vialard, Risser, Rueckert & Cotter, IJCV 97, 2012;
// Miller, Trouvé & Younes, J. Math. Imaging Vis. 24, 2006): only the initial momentum m_0 is free,
// the path is the geodesic of the right-invariant metric ‖v‖²_V = ⟨L v, v⟩ it generates (EPDiff).
//
// EPDiff in Lagrangian, particle–mesh form. Every voxel centre x_i of the fixed grid is a particle
// with position q_i (voxel coordinates) and momentum density m_i (per unit volume, dual to mm).
// The momentum on the grid is the splat S = Σ_i m_i β(· − q_i) (quadratic B-spline, below), the
// velocity v = K S, and the system is Hamiltonian with H(q, m) = ½ ⟨S, K S⟩ = ½ ‖v‖²_V:
//     dq_i,c/dt =  v_c(q_i) / h_c
//     dm_i,c/dt = −(1/h_c) Σ_d m_i,d ∂_c v_d(q_i)       (∂_c: derivative in voxel coordinate c)
// Sampling is the transpose of splatting, so H is exactly conserved by the continuous flow: the
// speed ‖v_t‖_V is constant along t (the geodesic property the tests and metrics check). At
// t = 0 the particles sit on the mesh nodes and S_0 = B m_0, B the spline's [1/8, 3/4, 1/8]
// smoothing along each axis.
//
// The VJP (hand-derived, a = (a_q, a_m), ã_c = a_m,c / h_c):
//     ā_V,d  = Σ_i [ w_i (a_q,i,d / h_d) − m_i,d Σ_c ã_i,c ∂_c w_i ]          (a grid field)
//     B      = K ā_V
//     a_m,i,d = B_d(q_i) − Σ_c ã_i,c ∂_c v_d(q_i)
//     a_q,i,e = Σ_d (a_q,i,d / h_d) ∂_e v_d(q_i) − Σ_{c,d} ã_i,c m_i,d ∂_e ∂_c v_d(q_i)
//               + Σ_d m_i,d ∂_e B_d(q_i)
//
// The energy and the free variable: E(m_0) = ½ ∫‖v_t‖²_V dt + D(q(1)), D the data term of
// flow_problem.h (SSD 1/(2σ²)‖I_m ∘ φ − I_f‖² or local NCC), φ = q(1),
// with the kinetic term by the trapezoidal rule over the T + 1 recorded states (on an exact
// geodesic it equals ½⟨S_0, K S_0⟩; along the computed path it also charges the integrator's
// energy error, which the optimiser would otherwise exploit). We optimise the whitened w with
// m_0 = K^{−1/2} w (v_0 ≈ K^{1/2} w): the same preconditioning by K as for LDDMM (lddmm.h).
#pragma once

#include <memory>
#include <vector>

#include "registration/flow_problem.h"
#include "solvers/thread_pool.h"

namespace diffeoflow::registration {

// The particle–mesh kernel is the quadratic B-spline β(t) = ¾ − t² (|t| ≤ ½), ½(3/2 − |t|)²
// (½ ≤ |t| ≤ 3/2), tensor product over the axes (shooting.cc BSplineTaps; the per-tap form it is
// tested against is tests/registration/bspline_stencil.h). It is C¹, so the force −∂H/∂q is
// continuous in q and the discrete flow map (hence the energy) is smooth in m_0 — with a
// multilinear kernel the force jumps at cell faces and line searches stall. Taps outside the grid
// hold zero.
class EpdiffShooting : public Dynamics {
 public:
  // threads: particles are split into that many contiguous ranges on large meshes (each range
  // splats into its own buffer; the buffers are summed in a fixed order, so a run is
  // reproducible for a given thread count).
  EpdiffShooting(const Grid& grid, FieldOperator smooth, int threads = 1);
  Eigen::Index state_dim() const override { return 2 * dim_ * voxels_; }
  Eigen::Index param_dim() const override { return 0; }
  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override;

  // The replay contract (solvers/dynamics.h): f_slot keeps the velocity v = K S it computed
  // (dim × voxels) for vjp_slot, which then needs no splat and no K; a plain vjp computes v.
  void ReserveSlots(int slots) override;
  void f_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                VectorRef a_x, VectorRef a_theta) override;

  // The grid momentum S and the velocity v = K S of a state (q, m); each dim × voxels.
  void Fields(const Vector& state, Vector* momentum, Vector* velocity);
  // ‖v‖_V of a state, √⟨S, K S⟩ (multiply by √Δx for physical units).
  double VelocityNorm(const Vector& state);
  // Threads the particle loops use: the requested count, capped so that every range keeps
  // enough stencil taps to be worth a thread (1 on small meshes).
  int threads() const { return threads_; }

 private:
  template <int D>
  void Splat(const double* q, const double* m, double* field);
  // fn(begin, end, range) over particle ranges, on threads_ threads when the mesh is large.
  template <class Fn>
  void ForRanges(Fn&& fn) const;
  // The buffer range r splats into: `field` for range 0, a zeroed private one otherwise; then
  // SumRanges adds the private ones into `field`.
  double* RangeBuffer(int range, double* field);
  void SumRanges(double* field, int components);
  // dxdt = f(x); v = K S(x) into `velocity` (dim × voxels).
  template <int D>
  void F(const double* x, double* dxdt, double* velocity);
  // a_x = aᵀ ∂f/∂x at x, whose velocity K S(x) is `velocity`.
  template <int D>
  void Vjp(const double* x, const double* a, const double* velocity, double* a_x);
  // v = K S(q, m) into `velocity`.
  template <int D>
  void Velocity(const double* x, double* velocity);

  Grid grid_;
  int dim_;
  Eigen::Index voxels_;
  FieldOperator smooth_;
  Vector field_;    // S, then v = K S
  Vector adjoint_;  // ā_V, then B = K ā_V
  std::vector<Vector> slot_velocity_;  // v = K S kept by f_slot, by slot
  int threads_ = 1;
  std::vector<Vector> range_fields_;  // private splat buffers of ranges 1 … threads − 1
  std::unique_ptr<ThreadPool> pool_;  // the workers of ranges 1 … threads − 1
};

// E(w) of geodesic shooting at one resolution (see above).
class ShootingObjective : public FlowObjective {
 public:
  ShootingObjective(const Image& moving, const Image& fixed, const Grid& mesh,
                    const MetricPowers& metric, const FlowProblemOptions& options);
  Eigen::Index num_parameters() const override { return mesh_.dim * mesh_.voxels(); }
  double Evaluate(const Vector& w, Vector* gradient) override;

  // m_0 = K^{−1/2} w.
  Vector InitialMomentum(const Vector& w) const;
  // States (q, m) at the T + 1 output times.
  std::vector<Vector> Path(const Vector& w);
  // The velocity v = K S on the mesh at every step boundary of the integration (T · s + 1 fields),
  // for TraceMap; `substeps` receives s: Substeps of the initial state, doubled (up to
  // max_substeps) until every step h obeys h · Lip(v) ≤ max_step_lipschitz at both its ends.
  std::vector<Vector> StepVelocities(const Vector& w, int* substeps);
  EpdiffShooting& dynamics() { return shooting_; }
  // Integration steps per recorded interval for the geodesic from `state` (q, m): SubstepsFor
  // the Lipschitz bound of its velocity v_0. Along a geodesic ‖v_t‖_V is constant but Lip(v_t) is
  // not; the objective accepts that (its flow only needs to be accurate), while StepVelocities,
  // which feeds the output map, checks the bound at every step and refines until it holds.
  int Substeps(const Vector& state);

 private:
  // weight · H(state); adds nothing to, but overwrites, `gradient` (2 · dim × voxels) when non-null.
  double KineticTerm(const Vector& state, double weight, Vector* gradient);

  EpdiffShooting shooting_;
  Vector x0_;
  Vector rhs_;
};

}  // namespace diffeoflow::registration
