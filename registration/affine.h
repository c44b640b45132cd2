// The affine stage of a pairwise registration (register.h): a rigid or affine map of world points
// that brings the moving image onto the fixed one before the deformable stage, optimised by Ceres
// L-BFGS (solvers/optimize.h) on the same similarity (SSD or local NCC, similarity.h).
//
// The map (fixed-world RAS mm point x ↦ moving-world point, homogeneous 4 × 4):
//     A = A_start · B(p),      B(p) x = M(p) (x − c) + c + t,      M = R(θ) · U(h) · diag(exp(s))
//  - c: the centre of the fixed image's field of view (world mm); rotation, shear and scaling act
//    about it, so that they do not move the image as a whole.
//  - R(θ): rotation by the angle-axis vector θ (3-D; 2-D: one angle in the x–y plane).
//  - U(h): unit upper-triangular shear, U = [[1, h0, h1], [0, 1, h2], [0, 0, 1]] (2-D: [[1, h0],
//    [0, 1]]); s: log-scales per axis; t: translation (mm).
//  - Bounds: the optimiser's variables u give s = ln2·tanh(u/ln2) and h = ½·tanh(u/½) — scales in
//    (½, 2), shears below ½, identity to first order near 0. On shapes whose SSD prefers no object
//    at all (a solid disc against a thin C ring: the ring's area is below the disc's mismatch) an
//    unbounded scale shrank the moving object to nothing, out of the field of view. An optimum
//    within 10 % of a bound is such a run into the wall, not an estimate: the stage keeps A_start
//    and says so (AffineStageResult::at_bounds; on the wide-mouthed ring of docs/robustness.md the
//    stage went to scale 2, shear −½ and 200 mm of translation).
//  - p = (θ, t) for rigid (6 values in 3-D, 3 in 2-D), (θ, t, s, h) for affine (12 / 6). The
//    optimiser sees θ, s and h multiplied by the radius ρ of the fixed field of view (half its
//    largest extent) so that every parameter moves the image's border by about its value in mm.
//  - A_start: the initial affine when one is given (--initial-affine), else the translation that
//    takes the fixed image's intensity centroid to the moving image's (centres of mass of the
//    intensities above each image's background).
//  - Energy: the similarity of the moving image sampled at A(x) for every voxel x of the fixed
//    image (multilinear; points outside the moving field of view take its background value), on a
//    pyramid (image_ops.h Downsample) coarse to fine, each level started from the previous one's
//    optimum. Gradients are exact: ∂E/∂p = Σ_x ∂E/∂I(x) · ∇I_m(q_x) · ∂q_x/∂p, with the chain
//    through the parametrisation by ceres::Jet (automatic differentiation).
// In 2-D the map acts on world x and y; z is kept.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "registration/image.h"
#include "registration/similarity.h"

namespace diffeoflow::registration {

enum class AffineMode { kNone, kRigid, kAffine };
std::string AffineModeName(AffineMode mode);  // "none", "rigid", "affine"
// InputError naming `argument` unless name is none, rigid or affine.
AffineMode ParseAffineMode(const std::string& name, const std::string& argument = "--affine");

struct AffineOptions {
  AffineMode mode = AffineMode::kAffine;
  // Unset: SSD here; in a registration (RegistrationOptions::ResolvedFor) the run's similarity
  // when it was given, else SSD.
  std::optional<SimilarityMeasure> similarity;
  int ncc_radius = 2;
  // Pyramid levels (each halves the grid; a level is added while every axis keeps ≥ 16 voxels).
  int levels = 3;
  // Levels with more voxels than this are skipped (the finer levels of a large volume add time,
  // not accuracy that the deformable stage would not supply): 2^21 keeps every level up to 128³
  // (a 96³ pair: 24³, 48³, 96³ in under a second); a 256³ pair stops at 128³.
  long max_voxels = 1L << 21;
  int iterations = 100;                // per level
  double function_tolerance = 1e-7;    // relative decrease per iteration that stops a level
  // Threads of the loops over fixed voxels, one range per 16384 voxels at most (a registration
  // sets the run's --threads); E and its gradient are the same bits for any count. >= 1.
  int threads = 1;

  // InputError naming the flag of the first invalid field.
  void Validate() const;
};

struct AffineStageResult {
  Eigen::Matrix4d affine = Eigen::Matrix4d::Identity();  // A: fixed world → moving world
  Eigen::Matrix4d start = Eigen::Matrix4d::Identity();   // A_start
  Eigen::VectorXd parameters;   // p at the end: θ (rad), t (mm), s (log), h (unscaled)
  int iterations = 0;           // summed over levels
  int evaluations = 0;
  std::vector<std::string> level_sizes;  // e.g. "24x24x24", coarsest first
  double energy_initial = 0.0;  // E at A_start on the finest level used
  double energy_final = 0.0;
  double wall_seconds = 0.0;
  // True when the optimum lay at the bounds of the parametrisation (a scale or shear within 10 %
  // of its limit): the stage then keeps A_start (affine = start, parameters zero) and `note`
  // says why, with the dropped optimum's scales and shears.
  bool at_bounds = false;
  std::string note;
};

// The intensity centroid (world mm) of the voxels above `background` (weights I − background).
// The field-of-view centre when no voxel is above it.
Eigen::Vector3d IntensityCentroid(const Image& image, double background);

// The centre of the voxel-corner box of `grid` in world mm.
Eigen::Vector3d FieldOfViewCentre(const Grid& grid);

// Runs the stage: `moving` on its own grid, `fixed` on its own, both normalised by the caller.
// `start` is A_start when given; otherwise the centres of mass give it. With mode kNone the result
// is A_start without optimisation.
AffineStageResult RegisterAffine(const Image& moving, const Image& fixed,
                                 const AffineOptions& options,
                                 const Eigen::Matrix4d* start = nullptr);

// E, the function the stage minimises on one pyramid level, at the optimiser's variables `x`
// (the active parameters, θ, s and h multiplied by ρ; with s and h through their bounding tanh),
// from `start`, on `moving` and `fixed` as given (no pyramid); its exact gradient with respect to
// x into `gradient` when not null. For tests of the derivative. mode kNone has no variables: an
// InputError, as for a size of x other than the mode's count (3 / 6 in 2-D, 6 / 12 in 3-D).
double AffineStageEnergy(const Image& moving, const Image& fixed, const AffineOptions& options,
                         const Eigen::Matrix4d& start, const Eigen::VectorXd& x,
                         Eigen::VectorXd* gradient = nullptr);

// The linear part's polar decomposition L = R·S (R a rotation, S symmetric positive definite):
// the rotation angle of R in degrees and the eigenvalues of S (the scales, ascending) — what
// metrics.json reports. `dim` 2 or 3: in 2-D only the upper-left 2 × 2 block.
struct AffineDescription {
  double rotation_degrees = 0.0;
  Eigen::Vector3d rotation_axis = Eigen::Vector3d::UnitZ();
  std::vector<double> scales;
  double determinant = 1.0;
};
AffineDescription DescribeAffine(const Eigen::Matrix4d& affine, int dim);

// The 4 × 4 map of B(p) about `centre` (parametrisation above; `parameters` unscaled, 6 or 12
// values in 3-D, 3 or 6 in 2-D). For tests and benchmarks that build a known affine.
Eigen::Matrix4d AffineFromParameters(const Eigen::VectorXd& parameters,
                                     const Eigen::Vector3d& centre, int dim);

}  // namespace diffeoflow::registration
