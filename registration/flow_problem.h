// The pieces both registration methods (velocity-field LDDMM, lddmm.h; geodesic shooting,
// shooting.h) share: multilinear particle–mesh transfer, the metric powers, the map from the flow's
// mesh to the image grid, the data term (SSD or local NCC) of a flowed grid, the base of their
// objectives (FlowObjective), and the step-size rule that keeps the discrete map diffeomorphic.
//
// Conventions (units, the map, the energy) are those of lddmm.h.
#pragma once

#include <array>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "registration/image.h"
#include "registration/image_ops.h"
#include "registration/image_view.h"
#include "registration/metric.h"
#include "registration/similarity.h"
#include "solvers/dynamics.h"
#include "solvers/integrate.h"
#include "solvers/optimize.h"
#include "solvers/thread_pool.h"


namespace diffeoflow::registration {

// ---------------------------------------------------------------------------------------------
// Multilinear particle–mesh transfer.
//
// Sampling a grid function g at a position x (voxel coordinates) is g(x) = Σ_c w_c(x) g[i_c] over
// the 2^D corners of the cell holding x, w_c = Π_k (1 − f_k or f_k). Splatting a value s carried
// by a particle at x adds w_c(x)·s to g[i_c]: it is the adjoint (transpose) of sampling, which is
// what makes the particle–mesh Hamiltonian of shooting exact and the VJPs below transposes.
// Corners outside the grid hold zero (velocity, momentum), or positions are clamped to the grid
// (images: border extension, zero derivative where clamped).
template <int D>
struct MultilinearStencil {
  static constexpr int kCorners = 1 << D;
  Eigen::Index index[kCorners];  // flat voxel index; −1 when the corner lies outside the grid
  double weight[kCorners];
  double gradient[kCorners][D];  // ∂ weight / ∂ x_a

  // x: D coordinates. clamp: move x into [0, n − 1] first (border extension).
  void Set(const std::array<int, 3>& n, const double* x, bool clamp) {
    Eigen::Index base[D];
    double frac[D];
    double sign[D];
    bool interior = true;
    for (int k = 0; k < D; ++k) {
      double xk = x[k];
      sign[k] = 1.0;
      if (clamp) {
        if (!(xk > 0.0)) {
          xk = 0.0;
          sign[k] = 0.0;
        } else if (xk >= n[k] - 1) {
          xk = n[k] - 1;
          sign[k] = 0.0;
        }
      }
      const double fl = std::floor(xk);
      base[k] = static_cast<Eigen::Index>(fl);
      frac[k] = xk - fl;
      interior = interior && base[k] >= 0 && base[k] + 1 < n[k];
    }
    const Eigen::Index sx = 1, sy = n[0], sz = static_cast<Eigen::Index>(n[0]) * n[1];
    const Eigen::Index flat = base[0] * sx + base[1] * sy + (D == 3 ? base[2] * sz : 0);
    const double w0[3] = {1.0 - frac[0], 1.0 - frac[1], D == 3 ? 1.0 - frac[2] : 1.0};
    const double w1[3] = {frac[0], frac[1], D == 3 ? frac[2] : 1.0};
    for (int c = 0; c < kCorners; ++c) {
      const int bx = c & 1, by = (c >> 1) & 1, bz = (c >> 2) & 1;
      const double wx = bx ? w1[0] : w0[0];
      const double wy = by ? w1[1] : w0[1];
      const double wz = D == 3 ? (bz ? w1[2] : w0[2]) : 1.0;
      index[c] = flat + bx * sx + by * sy + (D == 3 ? bz * sz : 0);
      weight[c] = wx * wy * wz;
      gradient[c][0] = (bx ? sign[0] : -sign[0]) * wy * wz;
      gradient[c][1] = (by ? sign[1] : -sign[1]) * wx * wz;
      if constexpr (D == 3) gradient[c][2] = (bz ? sign[2] : -sign[2]) * wx * wy;
      if (!interior) {
        const Eigen::Index b[3] = {base[0] + bx, base[1] + by, D == 3 ? base[2] + bz : 0};
        for (int k = 0; k < D; ++k) {
          if (b[k] < 0 || b[k] >= n[k]) index[c] = -1;
        }
      }
    }
  }
};

// Particle i's D coordinates from component-major positions (D × count) into x.
template <int D>
void GatherPosition(const double* positions, Eigen::Index count, Eigen::Index i, double* x) {
  for (int k = 0; k < D; ++k) x[k] = positions[k * count + i];
}

// The voxel centres of `grid` in voxel coordinates, component-major (dim × voxels).
Eigen::VectorXd IdentityPositions(const Grid& grid);

// g(q_i) for every particle i; positions component-major (dim × P). `gradient` (optional, dim × P,
// component-major) receives ∂g/∂q in voxel units. clamp: border extension, else zero outside.
// With a pool, the particles are split over its ranges (the same bits).
void SampleScalar(const Grid& grid, const double* values, const Eigen::VectorXd& positions,
                  bool clamp, double* samples, double* gradient = nullptr,
                  ThreadPool* pool = nullptr);
// The same for an image read through a view (image_view.h; values only).
void SampleScalar(const ImageView& image, const Eigen::VectorXd& positions, bool clamp,
                  double* samples);

// An operator applied to a component-major vector field in place (K, K^{1/2}, K^{−1/2}).
using FieldOperator = std::function<void(double* field, int components)>;

// The metric as the flows use it: K^s for s = 1, ½, −½, applied per component by FFT, plus the
// voxel volume that turns sums into integrals.
struct MetricPowers {
  FieldOperator smooth;       // K
  FieldOperator half;         // K^{1/2}
  FieldOperator inverse_half; // K^{−1/2}
  double voxel_volume = 1.0;  // Δx in mm^dim
};

// K^s from registration/metric.h: K^{±1/2} is the metric of exponent γ/2 (Gaussian: σ/√2), which
// has the same eigenvectors, so (K^{1/2})² = K to round-off. Needs padding_voxels = 0 (InputError
// otherwise: padded operators are not exact powers of each other).
MetricPowers MakeMetricPowers(const Grid& grid, const MetricOptions& options);

// The flow may run on a mesh coarser than the images (the velocities are smooth on the scale √α,
// so a mesh of spacing ~√α/2 represents them; cf. the band-limited velocities of FLASH, Zhang &
// Fletcher 2019). The map on the image grid is the mesh map's displacement interpolated
// (multilinear, by physical position, clamped at the border):
//     q_img,c(x) = x_c + (h_mesh,c / h_img,c) Σ_t w_t(x) (q_mesh,c − x_mesh,c)[t]
// and gradients go back through the transpose (a splat). Identity when the grids coincide.
//
// The weights are a tensor product, w_t(x) = Π_a w_a(x_a), so both directions run as one 1-D pass
// per axis (mesh → image: z, y, then x; the transpose in the reverse order) from per-axis tables,
// not from 2^dim taps per image voxel (which took 16·2^dim bytes a voxel: 113 MB at 96³). Each
// output value is computed by one thread in a fixed order, so the results are the same bits for
// any `pool` (nullptr: serial).
class MeshToImageMap {
 public:
  MeshToImageMap(const Grid& mesh, const Grid& image);
  bool identity() const { return identity_; }
  // Positions of the image voxels (image voxel coordinates) from mesh positions.
  void Positions(const Eigen::VectorXd& mesh_positions, Eigen::VectorXd* image_positions,
                 ThreadPool* pool = nullptr) const;
  // ∂D/∂q_mesh from ∂D/∂q_img (the transpose of Positions' linear part).
  void PullBack(const Eigen::VectorXd& image_gradient, Eigen::VectorXd* mesh_gradient,
                ThreadPool* pool = nullptr) const;
  // A vector field in mm on the mesh, interpolated onto the image grid (same weights).
  Eigen::VectorXd Interpolate(const Eigen::VectorXd& mesh_field) const;
  const Grid& mesh() const { return mesh_; }
  const Grid& image() const { return image_; }

  // Linear interpolation along one axis: image index i reads mesh nodes lo[i] and hi[i].
  struct Axis {
    std::vector<Eigen::Index> lo, hi;
    std::vector<double> w_lo, w_hi;
  };

 private:
  // One component: mesh values (mesh grid) → image values, out = offset_c(x) + scale · (P f)(x),
  // where offset_c is the image voxel coordinate of component `coordinate` (−1: none).
  void InterpolateComponent(const double* mesh_values, double* image_values, int coordinate,
                            double scale, ThreadPool* pool) const;
  // One component of the transpose: image values → mesh values, times `scale`.
  void PullBackComponent(const double* image_values, double* mesh_values, double scale,
                         ThreadPool* pool) const;

  Grid mesh_, image_;
  bool identity_ = true;
  std::array<Axis, 3> axes_;
  double ratio_[3] = {1.0, 1.0, 1.0};
  // Scratch of the passes (one call at a time): the mesh displacement, and the two partly
  // interpolated fields between the passes.
  mutable Eigen::VectorXd displacement_, stage_[2];
};

// Options shared by both methods at one resolution level.
struct FlowProblemOptions {
  double sigma = 0.05;          // data-term weight 1/(2σ²) (DataTerm)
  SimilarityMeasure similarity = SimilarityMeasure::kSsd;
  int ncc_radius = 2;           // local NCC window radius in voxels of the image grid, >= 1
  int time_steps = 8;           // T: velocity grids / output time points − 1
  Method solver = Method::kRk4;  // fixed-step scheme for the flow
  // Integration steps between two recorded time points (0: chosen per evaluation, below).
  int substeps = 0;
  // CFL-type bound that keeps the discrete flow map a diffeomorphism whatever the velocity:
  // every step of length h obeys h · Lip(v) ≤ max_step_lipschitz, where Lip(v) is
  // VelocityLipschitzBound of the velocities the step sees (voxel units per unit time). An
  // explicit step x ↦ x + h v(x) is invertible when h · Lip(v) < 1, and an RK4 step
  // x ↦ x + h G(x) is too when h · Lip(G) < 1: its stages give Lip(G) ≤ 1.3 Lip(v) at
  // h · Lip(v) ≤ ½, so h · Lip(G) ≤ 0.65 there. Each of the T intervals is split into
  // s = ⌈Lip / (T · max_step_lipschitz)⌉ equal steps, at most max_substeps (beyond that cap the
  // bound is not kept).
  double max_step_lipschitz = 0.5;
  int max_substeps = 64;
  GradientMode gradient_mode = GradientMode::kDiscrete;
  // Threads of the particle loops of shooting (EpdiffShooting) and LDDMM (VelocityFieldFlow), on
  // the persistent workers of a ThreadPool, independent of the FFTW threads of the metric; a run
  // is reproducible for a given count. >= 1.
  int threads = 1;
  // Where the moving image lies (DataTerm): W maps fixed world → moving world (RAS mm; the affine
  // stage's map, RegistrationResult::affine). When W is not the identity or the moving image is
  // not on the fixed world grid, the data term samples the moving image on its own grid at
  // A_moving⁻¹(W(A_fixed(φ(x)))), so that it is interpolated once (not pulled back first and
  // sampled again through φ).
  Eigen::Matrix4d moving_world_affine = Eigen::Matrix4d::Identity();
};

// The data term D of mesh positions q: the similarity of I_m ∘ φ and I_f on the image grid, φ
// from q through a MeshToImageMap, I_m sampled by clamped multilinear interpolation:
//   SSD:        D = 1/(2σ²) Σ_x (I_m∘φ(x) − I_f(x))² Δx
//   local NCC:  D = λ/(2σ²) Σ_x (cc_ff(x) − cc(x)) Δx,   λ = kNccWeightFactor = 1/25,   cc ∈ [0, 1) the squared correlation of
//               I_m∘φ and I_f over the window W of radius ncc_radius image voxels around x
//               (LocalNcc) with the variance floors ε_I = κ |W| Var(I_m), ε_J = κ |W| Var(I_f)
//               (κ = kNccVarianceFloor, global variances of the inputs), cc_ff the same for I_f
//               against itself (both floors from I_f). Windows whose standard deviation is below
//               ~√κ of the image's count little (a nearly flat window of I_f cannot score however
//               strong I_m∘φ is there), and A², B and ε_I scale alike under I_m ↦ a I_m + b: D is
//               invariant to it
// Δx the image voxel volume (mm^dim). For SSD σ is in intensity units; for NCC it is
// dimensionless (cc does not change under I ↦ a I + b within a window). The factor λ makes one σ
// serve both: 1 − cc saturates within a window's width while the SSD of a slightly misplaced
// edge grows slowly, so NCC needs a weaker weight — measured on a 48² C shape under a smooth
// 2.5 mm warp (tests/registration/ncc_registration_test.cc), NCC matched best at σ ≈ 5× the
// SSD's σ (σ = 0.1 against 0.02: 89% of the SSD removed with det Dφ ∈ [0.77, 1.18]; at σ = 0.02
// without λ it over-fits, 63% and det Dφ up to 2.2). The window radius is in voxels at every pyramid level (wider in mm on coarse levels).
// The constant Σ cc_ff makes D = 0 at I_m∘φ = I_f (and ≈ 0 at any affine match), so the
// relative-decrease stopping rule sees the mismatch, not the flat windows (cc ≈ 0 there).
inline constexpr double kNccVarianceFloor = 1e-2;
inline constexpr double kNccWeightFactor = 1.0 / 25.0;
//
// The moving image lies on the fixed grid (its voxel coordinates are φ's), or on its own grid in
// the world with options.moving_world_affine W: then I_m is read at q = A_m⁻¹ W A_f φ(x) (clamped
// multilinear inside its field of view, its background value BackgroundValue outside, with zero
// derivative there) and ∂D/∂φ = (∂q/∂φ)ᵀ ∂D/∂q.
class DataTerm {
 public:
  DataTerm(const Image& moving, const Image& fixed, const FlowProblemOptions& options);
  // D; fills ∂D/∂q_mesh when non-null. `ssd` (when non-null) receives Σ (I_m∘φ − I_f)² over the
  // image voxels, unweighted: the SSD figure of metrics.json whatever the similarity.
  double Evaluate(const MeshToImageMap& map, const Eigen::VectorXd& mesh_positions,
                  Eigen::VectorXd* mesh_gradient, double* ssd);

 private:
  const Image& moving_;
  const Image& fixed_;
  double sigma_;
  SimilarityMeasure similarity_;
  // I_m∘φ on the fixed grid into warped_ and, when `gradient`, its derivative by the fixed voxel
  // coordinates φ(x) into sample_gradient_. positions_ hold φ on entry (moving voxel coordinates
  // on return when the image is read through the world).
  void Sample(bool gradient);

  // The loops over image voxels (sampling, the mesh → image map, NCC's box sums) run on its
  // ranges: min(threads, voxels / 16384) of them. Every value is computed by one range, in an
  // order that does not depend on the count, so D and its gradient are the same bits for any
  // thread count.
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<LocalNcc> ncc_;  // kLocalNcc only; runs on pool_
  double ncc_offset_ = 0.0;        // 1/(2σ²) Σ cc_ff Δx
  // Fixed voxel → moving voxel coordinates through the world, when the moving image has its own
  // grid or W is not the identity.
  std::optional<VoxelAffine> through_world_;
  double outside_value_ = 0.0;
  Eigen::VectorXd positions_, warped_, sample_gradient_, image_force_;
};

// What one evaluation of an objective leaves behind (for reports and figures).
struct FlowEvaluation {
  double energy = 0.0;    // E
  double kinetic = 0.0;   // ½ ∫ ‖v_t‖²_V dt
  double data = 0.0;      // D (DataTerm)
  double ssd = 0.0;       // Σ (I_m∘φ − I_f)² over voxels (no weights)
  int substeps = 1;       // integration steps per recorded interval (CFL bound)
};

// What the objectives of both methods (VelocityFieldObjective, ShootingObjective in shooting.h)
// share: the metric on the mesh, the options, the map from the mesh to the image grid, the data
// term, and what the last evaluation left.
class FlowObjective : public Objective {
 public:
  const MeshToImageMap& map() const { return map_; }
  const FlowEvaluation& last() const { return last_; }
  long function_evaluations() const { return evaluations_; }
  // The T + 1 recorded time points, equally spaced on [0, 1].
  std::vector<double> OutputTimes() const;

 protected:
  // The flow runs on `mesh` (same extent as the images; the metric is built for the mesh).
  FlowObjective(const Image& moving, const Image& fixed, const Grid& mesh,
                const MetricPowers& metric, const FlowProblemOptions& options);

  MetricPowers metric_;
  FlowProblemOptions options_;
  Grid mesh_;
  MeshToImageMap map_;
  DataTerm data_term_;
  FlowEvaluation last_;
  long evaluations_ = 0;
};

// The fixed-step solver of the flows: T · substeps RK4 steps on [0, 1] (the T + 1 recorded time
// points are step boundaries).
SolverOptions FlowSolverOptions(const FlowProblemOptions& options, int substeps = 1);

// An upper bound of the Lipschitz constant (∞-norm, voxel units per unit time) of the particle
// velocity q ↦ (v_c(q) / h_c)_c when v is interpolated from its mesh values by the multilinear or
// the quadratic B-spline kernel: max_c Σ_a max over mesh edges along a of |v_c(i + e_a) − v_c(i)|
// / h_c. (Either kernel's derivative along a is a convex combination of the differences along a,
// so the bound holds everywhere, not only at the nodes.) `field`: dim × voxels, component-major.
double VelocityLipschitzBound(const Grid& grid, const double* field);

// The sub-steps per recorded interval for velocities of Lipschitz bound `lipschitz` (see
// FlowProblemOptions::max_step_lipschitz); options.substeps when it is set.
int SubstepsFor(double lipschitz, const FlowProblemOptions& options);

}  // namespace diffeoflow::registration
