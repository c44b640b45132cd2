// World space: bringing two images on different grids together through their affines (DESIGN.md,
// "World space is the truth"). `Register` resamples a moving image on another grid into the fixed
// image's world before it registers, and `ApplyRegistration` carries an image on any grid through
// the map by world coordinates.
//
// Every grid maps continuous voxel coordinates p to world millimetres
//     A(p) = origin + direction · diag(spacing) · p                     (image.h, VoxelToPhysical)
// (NIfTI's RAS+ world; .png and .npy: identity with unit spacing).
//
//  - The same world grid: same dimension and size, spacing equal to 1e-6 relative, origin to
//    1e-4 mm, direction entries to 1e-6 (NIfTI keeps geometry in float32; these tolerances absorb
//    its rounding, nothing more). In 2-D only what places the plane's voxels counts: the spacing
//    and direction columns of axes 0 and 1, and the origin. Grids that agree are treated as one
//    (no resampling: the fast path, bit for bit what registration did before it knew of world
//    space).
//  - Field of view: the box of voxel corners, voxel coordinates in [−½, n_d − ½] along every axis.
//    A world point p is inside an image when A⁻¹(p) is in that box; in 2-D only axes 0 and 1 are
//    tested and the out-of-plane coordinate of A⁻¹(p) is dropped (points are projected along the
//    image's third axis onto its plane).
//  - Resampling into another world (ResampleIntoWorld, WarpThroughWorld): at each target point p,
//    q = A_image⁻¹(p); inside the field of view, multilinear (or nearest-neighbour) interpolation
//    at q with coordinates clamped to the voxel centres (so the outer half voxel replicates the
//    border); outside, an outside value — by default the image's background.
//  - Background (BackgroundValue): the median of the image's outermost voxels (the faces of its
//    grid): what the scanner recorded around the object (0 for skull-stripped MRI, air for CT),
//    so a moving image resampled onto a larger field of view gets no artificial edge where its own
//    field of view ends. For a label map it is the label around the object, usually 0.
//  - Overlap (WorldOverlapFraction): the share of the fixed grid's voxel centres that lie inside
//    the moving image's field of view. Below kMinimumWorldOverlap (5 %) the two images are taken
//    not to describe the same anatomy — almost always a missing or wrong qform/sform — and
//    registration refuses them: an LDDMM map moves points by a few √α, it cannot bridge them.
#pragma once

#include <optional>
#include <string>

#include <Eigen/Core>

#include "registration/image.h"
#include "registration/image_ops.h"
#include "registration/image_view.h"

namespace diffeoflow::registration {

// Share of the fixed field of view the moving image must cover (WorldOverlapFraction).
inline constexpr double kMinimumWorldOverlap = 0.05;

// True when `a` and `b` are the same world grid within the tolerances above.
bool SameWorldGrid(const Grid& a, const Grid& b);

// What differs between two grids, for messages: e.g. "size 48x36 vs 40x40; spacing 0.7x1.3 vs 1x1
// mm; origin (5.5, -3.25) vs (0, 0) mm; orientation LAS vs RAS". Empty when SameWorldGrid.
std::string GridDifferences(const Grid& moving, const Grid& fixed);

// Orientation code of a direction matrix, NIfTI/nibabel style: for each voxel axis the world axis
// it runs along most (R/L, A/P, S/I in RAS+ world). "RAS" for the identity, "LAS" with axis 0
// flipped; 2 letters in 2-D.
std::string OrientationCode(const Grid& grid);

// Axis-aligned world box (mm) around the field of view (the voxel-corner box) of `grid`.
struct WorldBox {
  Eigen::Vector3d lower = Eigen::Vector3d::Zero();
  Eigen::Vector3d upper = Eigen::Vector3d::Zero();
};
WorldBox WorldBoundingBox(const Grid& grid);
// "[x0, x1] x [y0, y1] (x [z0, z1]) mm".
std::string WorldBoxText(const WorldBox& box, int dim);

// Share in [0, 1] of `reference`'s voxel centres whose world position lies inside `image`'s field
// of view (1 for the same world grid).
double WorldOverlapFraction(const Grid& image, const Grid& reference);

// InputError unless the grids have the same dimension and WorldOverlapFraction(moving, fixed) ≥
// kMinimumWorldOverlap. The message names both (e.g. "--moving a.nii.gz", "--fixed b.nii.gz"),
// their sizes or world bounding boxes, and the share covered.
void CheckWorldOverlap(const Grid& moving, const Grid& fixed,
                       const std::string& moving_name = "--moving",
                       const std::string& fixed_name = "--fixed");

// The median of the image's outermost voxels (see above).
double BackgroundValue(const ImageView& image);

// `image` resampled onto `target` through world coordinates (rules above); points outside its
// field of view get `outside_value`. The result keeps image.source_type. With `world_affine` W
// (4 × 4, target world → image world, as RegistrationResult::affine) the target point p samples
// the image at A_image⁻¹(W·p): the image pulled back by W.
Image ResampleIntoWorld(const ImageView& image, const Grid& target, Interpolation interpolation,
                        double outside_value,
                        const Eigen::Matrix4d& world_affine = Eigen::Matrix4d::Identity());

// As ResampleIntoWorld, by cubic B-spline interpolation (image_ops.h CubicBSplineCoefficients),
// the values clamped to the image's own range [min, max] so that no edge overshoots beyond it.
// Inside the field of view the coordinates are clamped to the voxel centres, as the linear one's.
Image ResampleIntoWorldCubic(const ImageView& image, const Grid& target, double outside_value,
                             const Eigen::Matrix4d& world_affine = Eigen::Matrix4d::Identity());

// The moving image of a registration on the fixed grid: the moving image itself when both are the
// same world grid and `affine` is the identity, else ResampleIntoWorldCubic(moving, fixed grid,
// BackgroundValue(moving), affine) — with an affine stage's map (fixed world → moving world) the
// moving image pulled back by it. Cubic, not linear: the registration samples this image again
// through φ, and a linear pull-back first acts as a blur that the deformable stage cannot undo (on
// the 96³ brain, Dice 0.926 after a linear pull-back by a 1 % affine, 0.938 cubic, 0.940 with no
// affine stage: docs/affine.md). Holds a view of `moving` (which must outlive it) when nothing was
// resampled.
class MovingInFixedSpace {
 public:
  MovingInFixedSpace(const ImageView& moving, const Grid& fixed,
                     const Eigen::Matrix4d& affine = Eigen::Matrix4d::Identity());
  MovingInFixedSpace(const Image& moving, const Image& fixed,
                     const Eigen::Matrix4d& affine = Eigen::Matrix4d::Identity());
  // The moving image on the fixed grid: `moving` itself or the resampled image.
  ImageView view() const { return resampled_ ? ImageView(*resampled_) : moving_; }
  // The same as an Image; only for a moving image given as an Image (the second constructor).
  const Image& image() const;
  bool resampled() const { return resampled_.has_value(); }
  // Empty when the grids are the same world grid; otherwise one line: what differed, that the
  // moving image was resampled into the fixed image's world, the background used and the share
  // covered.
  const std::string& note() const { return note_; }

 private:
  ImageView moving_;
  const Image* moving_image_ = nullptr;
  std::optional<Image> resampled_;
  std::string note_;
};

// An image carried by a registration map through world coordinates: out(x) = image(q) with
// q = A_image⁻¹(W·A_fixed(φ(x))) for every voxel x of `fixed_grid`, where W is `affine` (the affine
// stage's map, RegistrationResult::affine; identity by default) and φ (`phi`, dim × voxels,
// component-major) holds fixed voxel coordinates — the map `Register` returns (RegistrationResult
// ::phi, or PositionFromDisplacement of displacement.nii.gz). With W the identity and `image` on
// the fixed world grid this is WarpImage in voxel coordinates (clamped), as before world space;
// otherwise points outside the image's field of view get `outside_value` (default:
// BackgroundValue(image)). The result lies on `fixed_grid` and keeps image.source_type (nearest
// keeps label values).
Image WarpThroughWorld(const ImageView& image, const Grid& fixed_grid, ConstFieldRef phi,
                       Interpolation interpolation,
                       std::optional<double> outside_value = std::nullopt,
                       const Eigen::Matrix4d& affine = Eigen::Matrix4d::Identity());

}  // namespace diffeoflow::registration
