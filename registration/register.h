// Pairwise registration by velocity-field LDDMM (lddmm.h) or geodesic shooting (shooting.h):
// the common driver behind `diffeoflow register` and `diffeoflow compare`.
//
//  - Multi-resolution: a Gaussian pyramid (image_ops.h Downsample) of `levels` levels, coarse to
//    fine. The metric keeps α in mm², so every level discretises the same energy. The solution is
//    carried up as a velocity (v = K^{1/2} w, linear interpolation in mm) and whitened again on the
//    finer grid, w = K^{−1/2} v; for shooting that is the initial velocity v_0 = K m_0.
//  - Optimiser: Ceres L-BFGS (default) or gradient descent on the whitened variable w, through
//    solvers/optimize.h. Gradients by the engine's discrete adjoint (exact for the fixed-step RK4
//    map, so the line searches see consistent derivatives).
//  - Stopping: per level, when the relative decrease of E per iteration, averaged over the last
//    `tolerance_window` iterations, falls below `relative_decrease` (looser on coarse levels, see
//    coarse_tolerance_factor), after `iterations` iterations, or when the total time limit is
//    reached.
//  - World space (world_space.h): the map is defined on the fixed grid. A moving image on another
//    grid (size, spacing, origin, orientation) is first resampled into the fixed image's world
//    (linear, its background outside its field of view) and `world_space_note` says so; images
//    that do not overlap in the world are an InputError. Grids equal within float tolerance are
//    used as they are.
//  - Checkpoints and interruption: with `checkpoint` set, the state is written (atomically) after
//    every completed level: the carried velocity, the finest iterate, the loss history and the
//    counters, plus a fingerprint of the images and options (layout in register_checkpoint.h).
//    SIGINT/SIGTERM (solvers/interrupt.h) stops the optimiser at its next iteration; Register then
//    returns with `interrupted` set and no result fields filled. `resume` continues from the
//    checkpoint by restarting the interrupted level from its start: the L-BFGS memory lives
//    inside Ceres and cannot be saved, and restarting it from a mid-level iterate would change the
//    path, whereas re-running the level from the same carried velocity repeats it bit for bit. So
//    a resumed run gives the same result as an uninterrupted one (same threads count; wall time
//    aside), at the cost of redoing the interrupted level's iterations.
//  - Affine stage (affine.h): before the deformable stage, a rigid or affine map A of world
//    points (fixed → moving) is optimised on the same similarity, started from the centres of
//    mass or from an initial affine; the deformable stage then registers the moving image pulled
//    back by A (resampled once into the fixed world through A), and the whole map is x ↦ A(φ(x)).
//    Default: affine, as antsRegistrationSyN does for two subjects (measured in docs/affine.md).
//  - Numerical health: a non-finite energy or iterate throws NumericalError naming the level;
//    a final map with more than `max_folded_fraction` of its voxels at det Dφ ≤ 0 (a fold: not a
//    diffeomorphism) throws NumericalError instead of returning a result.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "registration/affine.h"
#include "registration/image.h"
#include "registration/image_io.h"
#include "registration/image_ops.h"
#include "registration/image_view.h"
#include "registration/lddmm.h"
#include "registration/metric.h"
#include "registration/world_space.h"
#include "solvers/optimize.h"

namespace diffeoflow::registration {

enum class RegistrationMethod { kShooting, kLddmm };

// Where geodesic shooting starts on the coarsest level: m_0 = 0, or the initial velocity of
// velocity-field LDDMM solved on that level (the default: the geodesic parametrisation has local
// minima that the time-dependent one avoids; on the 256² disc → thin C ring, shooting from 0 stops
// at 46 % SSD reduction with the hollow unopened).
enum class ShootingStart { kZero, kVelocityField };
std::string RegistrationMethodName(RegistrationMethod method);  // "shooting", "lddmm"
RegistrationMethod ParseRegistrationMethod(const std::string& name,
                                           const std::string& argument = "--method");

struct RegistrationProgress {
  int level = 0;        // 0 = coarsest
  int levels = 1;
  int iteration = 0;    // within the level
  double energy = 0.0;
  double elapsed_seconds = 0.0;
};

struct RegistrationOptions {
  RegistrationMethod method = RegistrationMethod::kShooting;
  // L = (I − αΔ)^γ; α in mm². Default α = 64 mm² (length scale 8 mm), γ = 2.
  // metric.threads is the run's thread count (--threads): the particle loops of shooting and
  // LDDMM use it on meshes of ≥ 2 × 2048 voxels, FFTW only on meshes of ≥ 65536 voxels (below
  // those sizes the threads cost more than they save).
  MetricOptions metric = DefaultMetric();
  static MetricOptions DefaultMetric() {
    MetricOptions m;
    m.alpha_mm2 = 64.0;
    m.gamma = 2.0;
    return m;
  }
  // The data term (flow_problem.h DataTerm): SSD, or local NCC over windows of radius ncc_radius voxels
  // (of each pyramid level's grid), invariant to affine intensity changes within a window.
  // Unset (--similarity auto): chosen by ResolvedFor, which also sets the affine stage's.
  std::optional<SimilarityMeasure> similarity;
  int ncc_radius = 2;
  // Similarity weight 1/σ²: on ½‖I_m∘φ − I_f‖² for SSD (σ in units of the normalised intensity,
  // [0, 1]); on (1/25)·½ Σ_x (cc_ff(x) − cc(x)) Δx for NCC (σ dimensionless; the factor 1/25 is
  // measured so that one σ suits both, see DataTerm in flow_problem.h).
  // kAuto (sigma, time_steps, mesh_spacing_fraction): chosen from the fixed image by
  // ResolvedFor (the dimension decides; see ResolvedFor). Register resolves them first, and the
  // result's options hold the values used.
  static constexpr int kAuto = -1;
  double sigma = kAuto;
  int time_steps = kAuto;       // T: time points 0, 1/T, …, 1 (velocity grids, recorded path)
  Method solver = Method::kRk4;
  ShootingStart shooting_start = ShootingStart::kVelocityField;
  // Pyramid levels (kAuto: ResolvedFor); reduced so that the coarsest axis keeps ≥ 16 voxels.
  int levels = kAuto;
  int iterations = 100;         // per level
  double max_seconds = 0.0;     // total time limit, 0: none
  double relative_decrease = 2e-4;
  // The decrease is measured over this many iterations (OptimizerOptions::tolerance_window;
  // kAuto: ResolvedFor). On the thin C rings L-BFGS alternates runs of large decreases with
  // single iterations that barely move; one such iteration stopped the single-iteration rule
  // (W = 1) while E still fell by 0.5–1 % an iteration on average (docs/robustness.md).
  int tolerance_window = kAuto;
  // Level l of L stops at relative_decrease · factor^(L − 1 − l) (coarse levels only prepare).
  double coarse_tolerance_factor = 4.0;
  Optimizer optimizer = Optimizer::kLbfgs;
  double gd_learning_rate = 1.0;  // initial step of gradient descent (whitened variable)
  // Band limit B (FLASH-style, Zhang & Fletcher 2019): the whitened variable — hence v_0 and m_0
  // for shooting, every v_k for LDDMM — keeps only the Fourier modes with |k_d| ≤ B cycles per
  // field of view (the same physical band at every level). It keeps m_0 = K^{−1/2} w free of
  // grid-scale oscillations that the particle–mesh flow would alias. 0: off.
  int band_limit = 16;
  // The flow runs on a mesh coarser than the image when the velocity's length scale allows it:
  // the image grid is halved while the mesh spacing stays ≤ fraction · √α (and ≥ 16 voxels an
  // axis). 0: the mesh is the image grid.
  double mesh_spacing_fraction = kAuto;
  bool normalize_intensity = true;  // min/max normalise both images to [0, 1]
  // The affine stage (affine.h; --affine none|rigid|affine). ResolvedFor sets its similarity,
  // when unset, to the run's `similarity` when that was given, else to SSD; its NCC radius is the
  // run's `ncc_radius`.
  AffineOptions affine;
  // Where the affine stage starts (--initial-affine): fixed world → moving world, RAS mm. Without
  // it the stage starts from the centres of mass; with mode none it is used as it is.
  std::optional<Eigen::Matrix4d> initial_affine;
  std::string initial_affine_source;  // the file it came from, for metrics.json
  // Whether to trace φ⁻¹ (RegistrationResult::inverse_displacement and the inverse consistency);
  // off where only the forward map is used (the atlas's rounds), which saves its trace.
  bool inverse_map = true;
  // Health check of the final map: the largest share of voxels allowed at det Dφ ≤ 0 (0: none).
  double max_folded_fraction = 0.0;
  // HDF5 checkpoint written after every level and on interruption (empty: none), and whether to
  // continue from it when it exists (it must match the images and options: InputError otherwise).
  std::string checkpoint;
  bool resume = false;
  std::function<void(const RegistrationProgress&)> progress;

  // Throws InputError naming the command-line flag of the first invalid field.
  void Validate() const;

  // A copy with every kAuto field chosen for registering onto `fixed`:
  //              2-D      3-D
  //   similarity SSD      local NCC  of the deformable stage; the affine stage's is SSD (when
  //                                  the similarity is given, both stages take it)
  //   sigma      0.002    0.005    SSD weight; NCC takes the same σ (its λ = 1/25 rescales)
  //   steps      8        5
  //   levels     3        2        the flow mesh is often the same on every 3-D level (24³ for a
  //                                96³ brain), so a coarse level costs nearly as much per
  //                                iteration as the finest; two levels were as accurate and
  //                                1.2× faster than three (docs/registration.md)
  //   mesh       ½ √α     1.2 √α   largest mesh spacing (the map itself is traced at image
  //                                resolution, traced_map.h)
  //   window     10       1        tolerance_window: in 2-D the window lets the rings' runs go
  //                                on through single slow iterations (narrow mouth 7 → 90 %,
  //                                rotated ring 71 → 99 % by LDDMM); in 3-D it gave the 96³
  //                                brain the same Dice at 1.4× the time
  // Measured in docs/robustness.md (2-D family: thin C rings, translations, brain slices under
  // 10 % warps) and docs/registration.md (96³ and 128³ brains: NCC against SSD, and the affine
  // stage by NCC against SSD, two levels against three).
  RegistrationOptions ResolvedFor(const Grid& fixed) const;
};

struct RegistrationResult {
  RegistrationMethod method = RegistrationMethod::kShooting;
  Grid grid;                          // the fixed image's grid
  Grid mesh;                          // the grid the flow ran on (finest level)
  Image warped;                       // moving ∘ φ on the fixed grid (original intensities)
  VectorField displacement;           // u in mm, φ(x) = x + u(x)
  Image jacobian;                     // det Dφ
  Eigen::VectorXd phi;                // φ on the fixed grid, voxel coordinates (dim × voxels)
  std::vector<double> times;          // T + 1 time points
  // The path on the mesh, dim × mesh voxels each:
  std::vector<Eigen::VectorXd> positions;   // φ_t in mesh voxel coordinates
  std::vector<Eigen::VectorXd> velocities;  // v_t (mm per unit time)
  std::vector<Eigen::VectorXd> momenta;     // shooting: mesh momentum S_t; empty for lddmm
  // Shooting: the initial particle momentum m_0 = K^{−1/2} w on the mesh (dim × mesh voxels, per
  // unit volume, dual to mm; S_0 = B m_0, shooting.h) — the geodesic's coordinate in the fixed
  // image's tangent space, linear in w, so momenta of several registrations onto the same fixed
  // image can be averaged (atlas.h). Empty for lddmm.
  Eigen::VectorXd initial_momentum;
  std::vector<Eigen::VectorXf> images;      // normalised I_m ∘ φ_t on the fixed grid
  std::vector<double> velocity_norms;       // ‖v_t‖_V
  double ssd_initial = 0.0;   // Σ (I_m − I_f)² (normalised intensities)
  double ssd_final = 0.0;     // Σ (I_m ∘ φ − I_f)²
  double kinetic_energy = 0.0;  // ½ ∫ ‖v_t‖²_V dt
  double energy = 0.0;          // kinetic + data term at the end
  double min_jacobian = 0.0;
  double max_jacobian = 0.0;
  int substeps = 1;             // RK4 steps per recorded interval of the traced map (CFL bound)
  int iterations = 0;           // summed over levels
  int evaluations = 0;
  double wall_seconds = 0.0;
  long parameters = 0;          // free variables at the finest level
  std::vector<double> loss_history;   // E after each iteration (all levels, index 0: initial)
  std::vector<int> level_starts;      // index into loss_history where each level starts
  Termination termination_type = Termination::kIterationLimit;  // of the last level optimised
  std::string termination;            // the message (metrics.json "termination")
  RegistrationOptions options;
  // True when SIGINT/SIGTERM stopped the run: the checkpoint holds the completed levels and no
  // other result field is meaningful.
  bool interrupted = false;
  int resumed_from_level = -1;  // levels taken from the checkpoint (−1: not resumed)
  // Empty when the moving image was on the fixed grid; otherwise one line saying what differed
  // and that the moving image was resampled into the fixed image's world (MovingInFixedSpace).
  std::string world_space_note;
  // The affine stage's map of world points (NIfTI RAS mm, homogeneous): a fixed-world point x is
  // taken to affine·x in the moving image's world. The deformable map φ runs in between (on the
  // fixed grid, in the moving image pulled back by this affine): the whole map is x ↦ A(φ(x)).
  // Identity when there was no affine stage and no initial affine.
  Eigen::Matrix4d affine = Eigen::Matrix4d::Identity();
  // The affine stage as it ran (empty parameters when it did not: mode none and no initial
  // affine), and the SSD (normalised intensities, as ssd_initial) of the moving image pulled back
  // by A_start and by A before the deformable stage. ssd_initial is at the identity map (the
  // images as given), ssd_final after the whole map x ↦ A(φ(x)).
  AffineStageResult affine_stage;
  bool affine_stage_ran = false;
  double ssd_after_affine = 0.0;
  // The moving image's grid as given (its world: the affine's target).
  Grid moving_grid;
  // The inverse of the deformable map, φ⁻¹, from the flow traced backward through the same
  // velocities (traced_map.h BackwardFields), u in mm along the axes of its grid: the moving
  // image's grid when `affine` is the identity (a moving-world point q ↦ φ⁻¹(q), both in world
  // mm), else the fixed grid (the whole inverse is then q ↦ φ⁻¹(A⁻¹ q)). Written as
  // inverse_displacement.nii.gz (docs/transforms.md).
  VectorField inverse_displacement;
  // RMS of φ(φ⁻¹(q)) − q over the grid points of inverse_displacement inside the fixed grid
  // (fixed voxels; φ interpolated linearly from `phi`), and the time the inverse took.
  double inverse_consistency_rms_voxels = 0.0;
  double inverse_seconds = 0.0;

  double ssd_reduction() const { return ssd_initial > 0 ? 1.0 - ssd_final / ssd_initial : 0.0; }
  // Relative spread (max − min) / mean of ‖v_t‖_V.
  double velocity_norm_spread() const;
  std::string BriefReport() const;
  std::string FullReport() const;
};

// InputError (naming --moving / --fixed) unless the images have the same dimension, overlap in
// world space (CheckWorldOverlap) and every value is finite. Register calls it first; the CLI
// calls it before it creates the output folder.
void CheckRegistrationInputs(const ImageView& moving, const ImageView& fixed);

// Registers `moving` to `fixed`. The two images are read through views (image_view.h: an Image
// converts to one, and a caller's float32 or float64 array of any strides can be read in place);
// no copy of either is made, and the result is the same for an Image and for a view of the same
// values. The views must stay valid, and their values unchanged, until Register returns.
RegistrationResult Register(const ImageView& moving, const ImageView& fixed,
                            const RegistrationOptions& options);

// The mesh the flow runs on for an image grid (see RegistrationOptions::mesh_spacing_fraction).
Grid MeshFor(const Grid& image, const RegistrationOptions& options);

// The geodesic shot from a given initial momentum, as Register's outputs trace it.
struct GeodesicShot {
  Eigen::VectorXd phi;          // φ = exp(m_0) on the grid, voxel coordinates (dim × voxels)
  Eigen::VectorXd inverse_phi;  // φ⁻¹ on the grid (the flow traced backward), voxel coordinates
  Eigen::VectorXd jacobian;     // det Dφ on the grid
  double velocity_norm = 0.0;   // ‖v_0‖_V = √(⟨S_0, K S_0⟩ Δx)
  int substeps = 1;
};

// Shoots m_0 (dim × MeshFor(grid, options) voxels, RegistrationResult::initial_momentum's
// layout) with `options` resolved for `grid` (ResolvedFor, here too): the same mesh, metric, time
// steps, integrator and step refinement as Register's final map. InputError when m_0 has the
// wrong size.
GeodesicShot ShootGeodesic(const Grid& grid, const Eigen::VectorXd& initial_momentum,
                           const RegistrationOptions& options);

// The files of a run (metrics.json, trajectory.h5, warped image, displacement, summary.png) are
// written by registration/outputs/register_outputs.h, a separate library
// (diffeoflow::registration_outputs): the algorithm needs no figure code.

}  // namespace diffeoflow::registration
