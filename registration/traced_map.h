// The registration map at image resolution, traced through the flow's velocity fields, with its
// Jacobian determinant carried along.
//
// Both registration methods move particles on a mesh coarser than the image (lddmm.h, shooting.h):
// the velocity is smooth on the scale √α, so the mesh represents v. The map φ is not smooth on that
// scale: composing many small deformations concentrates compression and shear (a disc pushed into
// a thin ring compresses areas by 100× and more), and the mesh map interpolated onto the image
// grid then folds between mesh nodes although the flow it samples cannot (on the 256² disc → thin
// C ring, the mesh map's cells flip in the last quarter of t while exp ∫ div v stays ≥ 0.003).
// So the outputs are computed from the flow itself: every image voxel centre is a tracer p moved by
// the same velocity field the mesh particles see, and its log Jacobian rides along (Liouville):
//     dp_c/dt = v_t,c(p) / h_c,        d(log det Dφ)/dt = div (v_t / h)(p) = Σ_c ∂_c v_t,c(p) / h_c
// (p in mesh voxel coordinates, h the mesh spacing, ∂_c along mesh axis c). The velocity field is
// given by its mesh values at K + 1 equally spaced times and is linear in time between them
// (velocity-field LDDMM: exactly its v_0 … v_T; shooting: v = K S at the T · s + 1 step boundaries
// of its path), interpolated in space by the kernel the method uses (multilinear for LDDMM, the
// quadratic B-spline for shooting); outside the mesh v = 0.
//
// Why this is a diffeomorphism by construction: v is Lipschitz (VelocityLipschitzBound), so its
// flow is a bi-Lipschitz homeomorphism with det Dφ = exp ∫ div v > 0; each RK4 step of length h
// with h · Lip(v) ≤ ½ (FlowProblemOptions::max_step_lipschitz) is itself injective (its
// increment is Lipschitz with constant < 1), and so is their composition. det Dφ here is that of
// the flow, positive whatever its size, and consistent with the traced map to the integrator's
// order (tests/registration/traced_map_test.cc compares it with finite differences of the map
// on a smooth warp).
#pragma once

#include <memory>
#include <vector>

#include "registration/image.h"
#include "registration/flow_problem.h"
#include "solvers/dynamics.h"
#include "solvers/integrate.h"
#include "solvers/thread_pool.h"

namespace diffeoflow::registration {

enum class MeshKernel { kMultilinear, kQuadraticBSpline };

// state x: tracer positions p (dim × P, component-major, mesh voxel coordinates), then log det Dφ
//          (P values)
// θ      : velocity fields V_0 … V_K on the mesh (mm per unit time), each dim × mesh voxels
// f      : as above; vjp: a_p,e = Σ_c (a_p,c / h_c) ∂_e v_c + a_J Σ_c ∂_e ∂_c v_c / h_c, and the
//          splat of (a_p,c / h_c) β + a_J ∂_c β / h_c into V_c at the two times around t.
class TracedMapFlow : public Dynamics {
 public:
  TracedMapFlow(const Grid& mesh, int fields, Eigen::Index tracers, MeshKernel kernel,
                int threads = 1);
  Eigen::Index state_dim() const override { return (dim_ + 1) * tracers_; }
  Eigen::Index param_dim() const override { return static_cast<Eigen::Index>(fields_) * block_; }
  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override;
  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override;

 private:
  // f over tracers [begin, end) from v_t on the mesh (`field`, dim × mesh voxels).
  template <int D, int W>
  void Rates(Eigen::Index begin, Eigen::Index end, const double* field, const double* x,
             double* dxdt) const;
  template <int D, int W>
  void Adjoint(Eigen::Index begin, Eigen::Index end, int k, double lambda, const double* x,
               const double* theta, const double* a, double* a_x, double* a_theta) const;
  void TimeSlot(double t, int* k, double* lambda) const;

  Grid mesh_;
  int dim_;
  int fields_;
  Eigen::Index block_;  // dim × mesh voxels
  Eigen::Index tracers_;
  MeshKernel kernel_;
  std::unique_ptr<ThreadPool> pool_;  // f's tracer ranges (one range: no worker)
  Eigen::VectorXd field_;             // v_t = (1 − λ) V_k + λ V_{k+1}, set by f
  // The mesh as the stencil loops use it: nodes per axis, flat-index strides, 1 / spacing.
  long size_[3];
  long stride_[3];
  double inv_h_[3];
};

// The traced map on an image grid.
struct TracedMap {
  Eigen::VectorXd positions;  // φ(x), image voxel coordinates, dim × voxels (component-major)
  Eigen::VectorXd jacobian;   // det Dφ = exp(log det), > 0
  int steps = 0;              // integration steps taken
};

// Traces the voxel centres of `image` (same extent as `mesh`) through the velocity fields V_0 … V_K
// (each dim × mesh voxels; K ≥ 1) with `steps` steps of `method` (a fixed-step scheme; the one the
// optimised flow used), a multiple of K.
TracedMap TraceMap(const Grid& image, const Grid& mesh, const std::vector<Eigen::VectorXd>& fields,
                   MeshKernel kernel, int steps, Method method = Method::kRk4, int threads = 1);

// The same flow from arbitrary starting points: `start` holds dim × P points in voxel coordinates
// of `image` (they may lie outside it, where v = 0 beyond the mesh's kernel support); the result's
// positions are their images at t = 1, in the same coordinates, and its jacobian det Dφ there.
TracedMap TracePoints(const Grid& image, const Grid& mesh,
                      const std::vector<Eigen::VectorXd>& fields, MeshKernel kernel, int steps,
                      const Eigen::VectorXd& start, Method method = Method::kRk4, int threads = 1);

// The fields of the flow run backward in time: w_s = −v_{1−s}, i.e. V_0 … V_K reversed and
// negated. Piecewise linear in time like v, so tracing w from t = 0 to 1 integrates
// dp/dt = v_t(p) from t = 1 back to 0: its map is φ⁻¹ (to the integrator's order), with
// det Dφ⁻¹ carried along as for φ.
std::vector<Eigen::VectorXd> BackwardFields(const std::vector<Eigen::VectorXd>& fields);

}  // namespace diffeoflow::registration
