// Operations on images and vector fields on regular grids: normalisation, interpolation, warping,
// resampling, multi-resolution, finite differences, Jacobian determinants, composition.
//
// Conventions (see image.h for the storage layout):
//  - A *position field* φ (a map) holds, for every voxel x of its own grid, the point φ(x) in
//    *voxel coordinates* of the grid it points into (the source image's grid): dim components,
//    component-major, x fastest. The identity position field on a grid holds (i, j[, k]).
//  - A *displacement* u holds φ(x) − x in *physical units* (mm) along the image axes: for a map from
//    a grid to itself, u_d = (φ_d(x) − x_d) · spacing_d.
//  - Warping pulls back: (I ∘ φ)(x) = I(φ(x)). To deform an image "forward" by a flow, warp it by
//    the inverse map (I0 ∘ φ⁻¹), as LDDMM does.
//  - Interpolation clamps coordinates to [0, n_d − 1] in every axis (border replication), so
//    samples outside the grid take the border's value; its derivative is zero across a clamped axis.
//  - Finite differences are in physical units: central (f[i+1] − f[i−1]) / 2h inside, one-sided
//    (f[1] − f[0]) / h and (f[n−1] − f[n−2]) / h at the borders; zero along an axis of size 1.
//
// Functions taking (Grid, Eigen::Ref) work on raw state vectors (as a Dynamics sees them) and,
// except GaussianSmooth, do not allocate; the Image/VectorField versions are conveniences that
// allocate their result. The Sample* functions are inline (defined at the end of this header).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>

#include <Eigen/Core>

#include "registration/image.h"
#include "registration/image_view.h"

namespace diffeoflow::registration {

using ConstFieldRef = Eigen::Ref<const Eigen::VectorXd>;
using FieldRef = Eigen::Ref<Eigen::VectorXd>;

// kLabel is for label maps: every label's indicator is interpolated bi/trilinearly and the label
// with the largest weight wins (the idea of ANTs' GenericLabel[Linear]). It keeps label values, as
// kNearest does, but its boundaries follow the map smoothly instead of the nearer grid point's.
enum class Interpolation { kLinear, kNearest, kLabel };

// ---------------------------------------------------------------------------------------------
// Intensity normalisation

// Maps the intensity at `lower_percentile` to 0 and at `upper_percentile` to 1 (percentiles in
// [0, 100], linear interpolation between order statistics), clamping values outside to [0, 1]
// when `clamp`. With the defaults (0, 100) this is min/max normalisation. A constant image maps
// to 0. Throws InputError for percentiles outside [0, 100] or lower >= upper. The result is a new
// image on the view's grid (an Image is a view of itself, image_view.h).
Image NormalizeIntensity(const ImageView& image, double lower_percentile = 0.0,
                         double upper_percentile = 100.0, bool clamp = true);

// The value at percentile p ∈ [0, 100] of the image's intensities.
double Percentile(const ImageView& image, double p);

// ---------------------------------------------------------------------------------------------
// Interpolation at voxel coordinates (x, y, z) of `grid`; z is ignored in 2-D.

// Bi/trilinear interpolation of `data` (grid.voxels() values, x fastest), coordinates clamped.
// Reproduces functions linear in the coordinates exactly inside the grid.
inline double SampleLinear(const Grid& grid, const double* data, double x, double y,
                           double z = 0.0);

// Bi/trilinear interpolation and its exact derivative with respect to (x, y, z) in voxel units
// (the derivative of the piecewise-linear interpolant; 0 along a clamped axis). gradient[2] is 0
// in 2-D. Returns the value. (flow_problem.h's MultilinearStencil is the particle–mesh transfer:
// the same weights kept per corner so that values can be splatted back, zero outside the grid for
// velocities and momenta, and a zero derivative already at a clamped edge coordinate.)
inline double SampleLinearWithGradient(const Grid& grid, const double* data, double x, double y,
                                       double z, double gradient[3]);

// Nearest-neighbour interpolation (round half away from zero), coordinates clamped.
inline double SampleNearest(const Grid& grid, const double* data, double x, double y,
                            double z = 0.0);

// Linear interpolation at a physical point (mm, world coordinates of the grid).
double SampleLinearPhysical(const Image& image, const Eigen::Vector3d& point_mm);

// ---------------------------------------------------------------------------------------------
// Maps and warping

// The identity position field on `grid`: φ(i, j, k) = (i, j, k) in voxel units.
void IdentityPositionField(const Grid& grid, FieldRef out);
VectorField IdentityPositionField(const Grid& grid);

// Position field (voxel units, same grid) of the map x + u(x) for a displacement u in mm, and back.
void PositionFromDisplacement(const Grid& grid, ConstFieldRef displacement_mm, FieldRef out);
void DisplacementFromPosition(const Grid& grid, ConstFieldRef position_voxels, FieldRef out);
VectorField PositionFromDisplacement(const VectorField& displacement_mm);
VectorField DisplacementFromPosition(const VectorField& position_voxels);

// out(x) = source(φ(x)) for every voxel x of `target_grid`; φ = `position` (dim × target voxels,
// voxel coordinates of `source_grid`). `out` has target_grid.voxels() entries.
void WarpScalar(const Grid& source_grid, ConstFieldRef source, const Grid& target_grid,
                ConstFieldRef position, FieldRef out,
                Interpolation interpolation = Interpolation::kLinear);

// The same for an image read through a view (image_view.h; an Image's layout is read as above).
void WarpScalar(const ImageView& source, const Grid& target_grid, ConstFieldRef position,
                FieldRef out, Interpolation interpolation = Interpolation::kLinear);

// Image version: the result lives on `position.grid` and keeps image.source_type.
Image WarpImage(const Image& image, const VectorField& position,
                Interpolation interpolation = Interpolation::kLinear);

// Each of the dim components of `field` (on source_grid) warped by φ as WarpScalar does; the
// components themselves are not rotated or rescaled.
void WarpVectorField(const Grid& source_grid, ConstFieldRef field, const Grid& target_grid,
                     ConstFieldRef position, FieldRef out);

// Composition of maps given as position fields on one grid (voxel units):
// out(x) = φ1(φ2(x)). φ1 is evaluated as y + d1(y) with its displacement d1 = φ1 − id linearly
// interpolated (clamped), so near the border the composition extends φ1 by its border
// displacement rather than by its border position.
void ComposePositions(const Grid& grid, ConstFieldRef phi1, ConstFieldRef phi2, FieldRef out);

// The same for displacements in mm on one grid: with φ_i = x + u_i,
// (φ1 ∘ φ2)(x) = x + u2(x) + u1(x + u2(x)).
VectorField ComposeDisplacements(const VectorField& u1, const VectorField& u2);

// ---------------------------------------------------------------------------------------------
// Finite differences (physical units; scheme in the file comment)

// ∇I: dim components, component-major, in intensity / mm.
void ImageGradient(const Grid& grid, ConstFieldRef image, FieldRef out);
VectorField ImageGradient(const Image& image);

// div v = Σ_d ∂v_d/∂x_d for a field with dim components (units of v per mm).
void Divergence(const Grid& grid, ConstFieldRef field, FieldRef out);
Image Divergence(const VectorField& field);

// Jacobian determinant of φ(x) = x + u(x) for a displacement u in mm: det(I + ∇u), with ∇u by the
// finite differences above. 2-D and 3-D.
void JacobianDeterminant(const Grid& grid, ConstFieldRef displacement_mm, FieldRef out);
Image JacobianDeterminant(const VectorField& displacement_mm);

// Jacobian determinant of a position field (voxel units, mapping the grid into itself): det ∇φ
// with ∇ in voxel units. Equals JacobianDeterminant of the corresponding displacement.
void JacobianDeterminantOfPosition(const Grid& grid, ConstFieldRef position, FieldRef out);

// ---------------------------------------------------------------------------------------------
// Smoothing, resampling and multi-resolution

// Separable Gaussian smoothing with standard deviation sigma_mm in every axis (truncated at
// 3σ, normalised weights, borders replicated). sigma_mm <= 0 returns a copy.
Image GaussianSmooth(const Image& image, double sigma_mm);
void GaussianSmooth(const Grid& grid, ConstFieldRef image, double sigma_mm, FieldRef out);

// A grid covering the same physical extent (the box spanned by the voxel corners) with `size`
// voxels: spacing_d · n_d / size_d, origin shifted so that the corner stays put, same direction.
Grid ResizedGrid(const Grid& grid, const std::array<int, 3>& size);

// The next coarser level of a pyramid: size ceil(n/2) in each axis of length > 1 (axes of size 1
// stay), same extent (ResizedGrid).
Grid HalvedGrid(const Grid& grid);

// Voxel coordinates of `to` as an affine function of voxel coordinates of `from` through the
// world: q = A p + b. With a world affine W between them (a `from` world point x is taken to W·x
// in `to`'s world): q = A_to⁻¹(W(A_from(p))).
struct VoxelAffine {
  Eigen::Matrix3d A;
  Eigen::Vector3d b;
};
VoxelAffine VoxelToVoxel(const Grid& from, const Grid& to,
                         const Eigen::Matrix4d& world = Eigen::Matrix4d::Identity());

// q (voxel coordinates of `grid`) lies in the voxel-corner box [−½, n − ½] of every axis, within
// 1e-6 voxel (rounding of the affines).
bool InsideFieldOfView(const Grid& grid, const Eigen::Vector3d& q);

// The scalar field `data` on `source` sampled at every voxel of `target` through the world (and
// `world` between them, as VoxelToVoxel), into `out` (target.voxels() values). Points outside
// source's field of view get `outside` when it is given; otherwise coordinates are clamped
// (border replication).
void ResampleScalar(const Grid& source, const double* data, const Grid& target,
                    Interpolation interpolation, double* out,
                    std::optional<double> outside = std::nullopt,
                    const Eigen::Matrix4d& world = Eigen::Matrix4d::Identity());
// The same for an image read through a view (source = view.grid).
void ResampleScalar(const ImageView& source, const Grid& target, Interpolation interpolation,
                    double* out, std::optional<double> outside = std::nullopt,
                    const Eigen::Matrix4d& world = Eigen::Matrix4d::Identity());

// `image` resampled onto `target` by physical coordinates (both grids' geometry is used),
// coordinates clamped (border replication). world_space.h ResampleIntoWorld gives points outside
// the image's field of view an outside value instead (what registration across grids uses).
Image Resample(const Image& image, const Grid& target,
               Interpolation interpolation = Interpolation::kLinear);

// The next coarser pyramid level: Gaussian smoothing with σ = 0.5·(new spacing) per axis (about
// half the Nyquist band of the new grid), then linear resampling onto HalvedGrid.
Image Downsample(const Image& image);

// A vector field on a coarse grid interpolated (linearly, by physical position) onto `fine`, which
// must cover the same extent. Components are kept as they are: right for fields in mm
// (displacements, velocities). A position field in voxel units must be converted to a
// displacement first; a momentum (a density) should be carried as its velocity K m.
VectorField UpsampleField(const VectorField& coarse, const Grid& fine);

// ---------------------------------------------------------------------------------------------
// Checks

// True when every value is finite.
bool AllFinite(const Eigen::VectorXd& values);

// Cubic B-spline interpolation (Unser 1999): the coefficients of an image by the recursive
// interpolating prefilter (pole √3 − 2, mirror boundaries), and their evaluation at continuous
// voxel coordinates q (mirror boundaries; coordinates are not clamped here). The interpolant passes
// through every voxel value and reproduces cubics away from the borders; it can overshoot at edges.
Eigen::VectorXd CubicBSplineCoefficients(const Grid& grid, Eigen::VectorXd values);
double SampleCubicBSpline(const Grid& grid, const double* coefficients, const Eigen::Vector3d& q);
// The same with q clamped to the voxel centres first (border replication, as SampleLinear clamps).
double SampleCubicBSplineClamped(const Grid& grid, const double* coefficients, Eigen::Vector3d q);

// ---------------------------------------------------------------------------------------------
// Inline definitions of the samplers (hot: called once per voxel per time step).

namespace detail {

// One axis of a linear interpolation: the two neighbours, the weight of the upper one, and
// whether the coordinate was clamped (then the derivative along this axis is 0). At interior grid
// points the derivative is the right-sided difference; at x = n − 1 the left-sided one.
struct LinearAxis {
  Eigen::Index i0;
  Eigen::Index i1;
  double f;
  bool clamped;
};

inline LinearAxis LocateLinear(double x, int n) {
  if (n <= 1) return {0, 0, 0.0, true};
  if (!(x >= 0.0)) return {0, 1, 0.0, true};  // also NaN
  const double upper = static_cast<double>(n - 1);
  if (x > upper) return {n - 2, n - 1, 1.0, true};
  Eigen::Index i0 = static_cast<Eigen::Index>(x);
  if (i0 > n - 2) i0 = n - 2;
  return {i0, i0 + 1, x - static_cast<double>(i0), false};
}

inline Eigen::Index LocateNearest(double x, int n) {
  if (!(x >= 0.0)) return 0;
  const double upper = static_cast<double>(n - 1);
  if (x >= upper) return n - 1;
  return static_cast<Eigen::Index>(std::floor(x + 0.5));
}

}  // namespace detail

namespace detail {

// The bi/trilinear interpolant, and with kGradient its derivative into `gradient`: one body for
// SampleLinear and SampleLinearWithGradient (the value's arithmetic is the same in both), over
// the values of an Image or of a view (image_view.h: values.Row(j, k)[i] is voxel (i, j, k)).
template <bool kGradient, typename Values>
inline double SampleLinearImpl(const Grid& grid, const Values& values, double x, double y,
                               double z, double* gradient) {
  const LinearAxis ax = LocateLinear(x, grid.size[0]);
  const LinearAxis ay = LocateLinear(y, grid.size[1]);
  if (grid.dim == 2) {
    const auto r0 = values.Row(ay.i0, 0);
    const auto r1 = values.Row(ay.i1, 0);
    const double dx0 = r0[ax.i1] - r0[ax.i0];
    const double dx1 = r1[ax.i1] - r1[ax.i0];
    const double v0 = r0[ax.i0] + ax.f * dx0;
    const double v1 = r1[ax.i0] + ax.f * dx1;
    if constexpr (kGradient) {
      gradient[0] = ax.clamped ? 0.0 : dx0 + ay.f * (dx1 - dx0);
      gradient[1] = ay.clamped ? 0.0 : v1 - v0;
      gradient[2] = 0.0;
    }
    return v0 + ay.f * (v1 - v0);
  }
  const LinearAxis az = LocateLinear(z, grid.size[2]);
  const auto p00 = values.Row(ay.i0, az.i0);
  const auto p01 = values.Row(ay.i1, az.i0);
  const auto p10 = values.Row(ay.i0, az.i1);
  const auto p11 = values.Row(ay.i1, az.i1);
  const double d00 = p00[ax.i1] - p00[ax.i0];
  const double d01 = p01[ax.i1] - p01[ax.i0];
  const double d10 = p10[ax.i1] - p10[ax.i0];
  const double d11 = p11[ax.i1] - p11[ax.i0];
  const double v00 = p00[ax.i0] + ax.f * d00;
  const double v01 = p01[ax.i0] + ax.f * d01;
  const double v10 = p10[ax.i0] + ax.f * d10;
  const double v11 = p11[ax.i0] + ax.f * d11;
  const double v0 = v00 + ay.f * (v01 - v00);
  const double v1 = v10 + ay.f * (v11 - v10);
  if constexpr (kGradient) {
    if (ax.clamped) {
      gradient[0] = 0.0;
    } else {
      const double g0 = d00 + ay.f * (d01 - d00);
      const double g1 = d10 + ay.f * (d11 - d10);
      gradient[0] = g0 + az.f * (g1 - g0);
    }
    gradient[1] = ay.clamped ? 0.0 : (v01 - v00) + az.f * ((v11 - v10) - (v01 - v00));
    gradient[2] = az.clamped ? 0.0 : v1 - v0;
  }
  return v0 + az.f * (v1 - v0);
}

// Nearest-neighbour interpolation over an Image's or a view's values (as SampleLinearImpl).
template <typename Values>
inline double SampleNearestImpl(const Grid& grid, const Values& values, double x, double y,
                                double z) {
  const Eigen::Index i = LocateNearest(x, grid.size[0]);
  const Eigen::Index j = LocateNearest(y, grid.size[1]);
  const Eigen::Index k = grid.dim == 3 ? LocateNearest(z, grid.size[2]) : 0;
  return values.Row(j, k)[i];
}

// The label with the largest bi/trilinear weight at (x, y, z): the weights of the 4 (2-D) or 8
// (3-D) neighbours are summed per value, coordinates clamped as in SampleLinearImpl. Equal weights
// go to the smaller value, so the result does not depend on the order of the taps.
template <typename Values>
inline double SampleLabelImpl(const Grid& grid, const Values& values, double x, double y,
                              double z) {
  const LinearAxis ax = LocateLinear(x, grid.size[0]);
  const LinearAxis ay = LocateLinear(y, grid.size[1]);
  const LinearAxis az =
      grid.dim == 3 ? LocateLinear(z, grid.size[2]) : LinearAxis{0, 0, 0.0, true};
  double label[8];
  double weight[8];
  int count = 0;
  const int taps_z = grid.dim == 3 ? 2 : 1;
  for (int tz = 0; tz < taps_z; ++tz) {
    const double wz = tz == 0 ? 1.0 - az.f : az.f;
    for (int ty = 0; ty < 2; ++ty) {
      const double wy = wz * (ty == 0 ? 1.0 - ay.f : ay.f);
      const auto row = values.Row(ty == 0 ? ay.i0 : ay.i1, tz == 0 ? az.i0 : az.i1);
      for (int tx = 0; tx < 2; ++tx) {
        const double w = wy * (tx == 0 ? 1.0 - ax.f : ax.f);
        const double v = row[tx == 0 ? ax.i0 : ax.i1];
        int t = 0;
        while (t < count && !(label[t] == v)) ++t;
        if (t == count) {
          label[count] = v;
          weight[count++] = w;
        } else {
          weight[t] += w;
        }
      }
    }
  }
  int best = 0;
  for (int t = 1; t < count; ++t) {
    if (weight[t] > weight[best] || (weight[t] == weight[best] && label[t] < label[best])) {
      best = t;
    }
  }
  return label[best];
}

// One sample by `interpolation` (for loops that are not hot enough to specialise).
template <typename Values>
inline double SampleImpl(Interpolation interpolation, const Grid& grid, const Values& values,
                         double x, double y, double z) {
  switch (interpolation) {
    case Interpolation::kLinear:
      return SampleLinearImpl<false>(grid, values, x, y, z, nullptr);
    case Interpolation::kNearest:
      return SampleNearestImpl(grid, values, x, y, z);
    case Interpolation::kLabel:
      return SampleLabelImpl(grid, values, x, y, z);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace detail

inline double SampleLinear(const Grid& grid, const double* data, double x, double y, double z) {
  return detail::SampleLinearImpl<false>(grid, detail::ContiguousValues(grid, data), x, y, z,
                                         nullptr);
}

inline double SampleLinearWithGradient(const Grid& grid, const double* data, double x, double y,
                                       double z, double gradient[3]) {
  return detail::SampleLinearImpl<true>(grid, detail::ContiguousValues(grid, data), x, y, z,
                                        gradient);
}

inline double SampleNearest(const Grid& grid, const double* data, double x, double y, double z) {
  return detail::SampleNearestImpl(grid, detail::ContiguousValues(grid, data), x, y, z);
}

inline double SampleLabel(const Grid& grid, const double* data, double x, double y,
                          double z = 0.0) {
  return detail::SampleLabelImpl(grid, detail::ContiguousValues(grid, data), x, y, z);
}

}  // namespace diffeoflow::registration
