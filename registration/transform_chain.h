// Transforms of world points and their composition: what `diffeoflow apply` carries an image
// through (docs/transforms.md).
//
// A WorldTransform maps a point of NIfTI's world (RAS+, mm) to another; a TransformChain applies
// several in ANTs' order. `antsApplyTransforms -r R -i I -t T1 -t T2 … -t Tn` writes, at every
// voxel of R with world point p,
//     out(p) = I(Tn(…T2(T1(p))…))
// — the first transform given is the first applied to the reference point (so `-t warp -t affine`
// is I(A(W(p))), the map of a registration with an affine stage; for images one says "the last
// given is applied first"). The chain here keeps exactly that order.
//
// Kinds:
//  - DisplacementFieldWorldTransform: a warp file in the ITK/ANTs convention
//    (displacement_file.h), p ↦ p + w(p), w the field's world displacement interpolated linearly
//    at p (neighbours clamped to the grid), and w = 0 outside the field's buffer (continuous voxel
//    coordinates outside [−½, n − ½)): ITK's DisplacementFieldTransform::TransformPoint.
//  - AffineWorldTransform: p ↦ M p for a 4×4 homogeneous matrix of RAS mm (the affine stage's
//    RegistrationResult::affine; an ITK affine.txt reader converts its LPS parameters to this).
//  - A `register` output folder: p ↦ A(φ(p)) (its displacement.nii.gz, then its affine), or with
//    `inverse` q ↦ φ⁻¹(A⁻¹ q) (A⁻¹, then inverse_displacement.nii.gz).
//
// In 2-D the world is the plane's first two coordinates; z is carried unchanged.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <Eigen/Geometry>

#include "registration/image.h"
#include "registration/image_ops.h"
#include "registration/image_view.h"

namespace diffeoflow::registration {

class WorldTransform {
 public:
  virtual ~WorldTransform() = default;
  // The image of a world point (RAS mm).
  virtual Eigen::Vector3d Map(const Eigen::Vector3d& point) const = 0;
  // 2 or 3 for a transform of that dimension, 0 for one of any (an affine).
  virtual int dim() const = 0;
  // What it is, for messages: "--transform out/displacement.nii.gz".
  virtual const std::string& name() const = 0;
  // The output grid it suggests when no --reference is given (a registration's fixed grid, a
  // warp file's grid), if any.
  virtual std::optional<Grid> DefaultReference() const { return std::nullopt; }
};

class DisplacementFieldWorldTransform : public WorldTransform {
 public:
  // `displacement_mm`: u in mm along its grid's axes (image.h), as ReadDisplacementFile returns.
  DisplacementFieldWorldTransform(VectorField displacement_mm, std::string name);
  // Reads an ITK/ANTs warp file (InputError naming `argument` and the path otherwise).
  static std::unique_ptr<DisplacementFieldWorldTransform> FromFile(const std::string& path,
                                                                    const std::string& argument);
  Eigen::Vector3d Map(const Eigen::Vector3d& point) const override;
  int dim() const override { return grid_.dim; }
  const std::string& name() const override { return name_; }
  std::optional<Grid> DefaultReference() const override { return grid_; }

 private:
  Grid grid_;
  Eigen::VectorXd world_;   // world displacement w = D u, 3 × voxels, component-major
  Eigen::Matrix3d to_voxel_;  // world → continuous voxel coordinates: (D S)⁻¹ (p − origin)
  Eigen::Vector3d origin_;
  std::string name_;
};

class AffineWorldTransform : public WorldTransform {
 public:
  AffineWorldTransform(const Eigen::Matrix4d& matrix, std::string name);
  Eigen::Vector3d Map(const Eigen::Vector3d& point) const override;
  int dim() const override { return 0; }
  const std::string& name() const override { return name_; }

 private:
  Eigen::Matrix4d matrix_;
  std::string name_;
};

// Transforms applied in order (see above); the first with a default reference gives the output
// grid when none is chosen.
class TransformChain {
 public:
  void Append(std::unique_ptr<WorldTransform> transform);
  Eigen::Vector3d Map(const Eigen::Vector3d& point) const;
  bool empty() const { return transforms_.empty(); }
  const std::vector<std::unique_ptr<WorldTransform>>& transforms() const { return transforms_; }
  std::optional<Grid> DefaultReference() const;

 private:
  std::vector<std::unique_ptr<WorldTransform>> transforms_;
};

// Appends what one --transform names: a `register` output folder (with `inverse`: its inverse
// map; see above), an ITK/ANTs warp file (.nii, .nii.gz) or an affine file (.txt: ITK text
// transform or dipy's 4×4 world matrix, transform_io.h ReadAffineMatrix; with `inverse`: its
// inverse). The folder's affine is the `affine` dataset of its trajectory.h5 (identity when
// absent). InputError naming `argument` and the path for anything else (a missing path, a folder
// without displacement.nii.gz, a file that is not a warp or an affine, `inverse` with a warp
// file).
void AppendTransform(TransformChain& chain, const std::string& path, bool inverse,
                     const std::string& argument = "--transform");

enum class ResampleInterpolation { kLinear, kNearest, kCubicBSpline, kLabel };

// The ResampleInterpolation of an image_ops interpolation (linear, nearest, label).
ResampleInterpolation AsResampleInterpolation(Interpolation interpolation);

// True for the interpolations that keep the image's values (nearest, label): the output keeps its
// element type.
bool KeepsValues(ResampleInterpolation interpolation);

// "linear" | "nearest" | "bspline" | "label"; InputError naming `argument` otherwise.
ResampleInterpolation ParseResampleInterpolation(const std::string& name,
                                                 const std::string& argument = "--interpolation");

struct ResampleNames {
  std::string image = "--image";
  std::string reference = "--reference";
};

// out(x) = image(A_image⁻¹(chain(A_reference(x)))) for every voxel x of `reference`:
//  - linear / nearest: as world_space.h resamples (coordinates clamped to the voxel centres inside
//    the field of view box [−½, n − ½]); cubic B-spline: Unser's interpolating cubic B-spline
//    (coefficients by the recursive prefilter, pole √3 − 2, mirror boundaries).
//  - Points outside the image's field of view get `outside_value` (default: BackgroundValue); an
//    image on the reference's world grid is sampled clamped, as `register` made warped.<ext>.
//  - label: every label's indicator interpolated linearly, the largest weight wins (image_ops.h
//    Interpolation::kLabel).
//  - Nearest and label keep the image's values and element type (labels stay integers).
// InputError (naming names.image, names.reference) when dimensions differ or fewer than
// kMinimumWorldOverlap of the reference's voxels map into the image's field of view.
// The image is read through a view (image_view.h: an Image, or a caller's float32/float64 array
// in place); only the cubic B-spline makes an image of its own (its coefficients).
Image ResampleThroughChain(const ImageView& image, const Grid& reference, const TransformChain& chain,
                           ResampleInterpolation interpolation,
                           std::optional<double> outside_value = std::nullopt,
                           const ResampleNames& names = {});

}  // namespace diffeoflow::registration
