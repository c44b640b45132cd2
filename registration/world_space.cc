#include "registration/world_space.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

using Index = Eigen::Index;

constexpr double kSpacingTolerance = 1e-6;  // relative
constexpr double kOriginToleranceMm = 1e-4;
constexpr double kDirectionTolerance = 1e-6;  // per entry

bool IsIdentity(const Eigen::Matrix4d& affine) { return affine.isIdentity(0.0); }

// Joins the first `count` values with `separator` (appends only: GCC 12's -Wrestrict misfires on
// "x" + std::string temporaries).
template <typename Format>
std::string Joined(int count, const char* separator, Format format) {
  std::string s;
  for (int d = 0; d < count; ++d) {
    if (d > 0) s.append(separator);
    s.append(format(d));
  }
  return s;
}

std::string Number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.6g", std::abs(v) < 5e-13 ? 0.0 : v);
  return buffer;
}

std::string SpacingText(const Grid& g) {
  return Joined(g.dim, "x", [&](int d) { return Number(g.spacing_mm[d]); });
}

std::string OriginText(const Grid& g, int coordinates) {
  std::string s = "(";
  s.append(Joined(coordinates, ", ", [&](int d) { return Number(g.origin_mm[d]); }));
  s.append(")");
  return s;
}

}  // namespace

bool SameWorldGrid(const Grid& a, const Grid& b) {
  if (a.dim != b.dim || a.size != b.size) return false;
  for (int d = 0; d < a.dim; ++d) {
    const double scale = std::max(std::abs(a.spacing_mm[d]), std::abs(b.spacing_mm[d]));
    if (!(std::abs(a.spacing_mm[d] - b.spacing_mm[d]) <= kSpacingTolerance * scale)) return false;
    for (int r = 0; r < 3; ++r) {
      if (!(std::abs(a.direction(r, d) - b.direction(r, d)) <= kDirectionTolerance)) return false;
    }
  }
  for (int d = 0; d < 3; ++d) {
    if (!(std::abs(a.origin_mm[d] - b.origin_mm[d]) <= kOriginToleranceMm)) return false;
  }
  return true;
}

std::string OrientationCode(const Grid& grid) {
  static const char kPositive[] = {'R', 'A', 'S'};
  static const char kNegative[] = {'L', 'P', 'I'};
  std::string code;
  for (int c = 0; c < grid.dim; ++c) {
    int axis = 0;
    for (int r = 1; r < 3; ++r) {
      if (std::abs(grid.direction(r, c)) > std::abs(grid.direction(axis, c))) axis = r;
    }
    code += grid.direction(axis, c) >= 0 ? kPositive[axis] : kNegative[axis];
  }
  return code;
}

std::string GridDifferences(const Grid& moving, const Grid& fixed) {
  if (SameWorldGrid(moving, fixed)) return "";
  std::vector<std::string> parts;
  if (moving.dim != fixed.dim || moving.size != fixed.size) {
    parts.push_back("size " + SizeText(moving) + " vs " + SizeText(fixed));
  }
  bool spacing = false, direction = false;
  const int axes = std::min(moving.dim, fixed.dim);
  for (int d = 0; d < axes; ++d) {
    const double scale = std::max(std::abs(moving.spacing_mm[d]), std::abs(fixed.spacing_mm[d]));
    spacing = spacing ||
              !(std::abs(moving.spacing_mm[d] - fixed.spacing_mm[d]) <= kSpacingTolerance * scale);
    for (int r = 0; r < 3; ++r) {
      direction = direction || !(std::abs(moving.direction(r, d) - fixed.direction(r, d)) <=
                                 kDirectionTolerance);
    }
  }
  if (spacing)
    parts.push_back("spacing " + SpacingText(moving) + " vs " + SpacingText(fixed) + " mm");
  bool origin = false, origin_z = false;
  for (int d = 0; d < 3; ++d) {
    const bool differs =
        !(std::abs(moving.origin_mm[d] - fixed.origin_mm[d]) <= kOriginToleranceMm);
    origin = origin || differs;
    origin_z = origin_z || (d == 2 && differs);
  }
  if (origin) {
    const int coordinates = fixed.dim == 3 || origin_z ? 3 : 2;
    parts.push_back("origin " + OriginText(moving, coordinates) + " vs " +
                    OriginText(fixed, coordinates) + " mm");
  }
  if (direction) {
    const std::string m = OrientationCode(moving), f = OrientationCode(fixed);
    if (m != f) {
      parts.push_back("orientation " + m + " vs " + f);
    } else {
      // Same nearest axes: the largest angle between corresponding voxel axes.
      double angle = 0.0;
      for (int c = 0; c < axes; ++c) {
        const double cosine =
            moving.direction.col(c).normalized().dot(fixed.direction.col(c).normalized());
        angle = std::max(angle, std::acos(std::clamp(cosine, -1.0, 1.0)));
      }
      parts.push_back("direction rotated by " +
                      Number(std::round(angle * 1800.0 / std::numbers::pi) / 10.0) +
                      " degrees (orientation " + m + ")");
    }
  }
  std::string text;
  for (const std::string& p : parts) text += (text.empty() ? "" : "; ") + p;
  return text;
}

WorldBox WorldBoundingBox(const Grid& grid) {
  WorldBox box;
  box.lower.setConstant(std::numeric_limits<double>::infinity());
  box.upper.setConstant(-std::numeric_limits<double>::infinity());
  const int corners = grid.dim == 3 ? 8 : 4;
  for (int c = 0; c < corners; ++c) {
    Eigen::Vector3d p = Eigen::Vector3d::Zero();
    for (int d = 0; d < grid.dim; ++d) p[d] = (c >> d) & 1 ? grid.size[d] - 0.5 : -0.5;
    const Eigen::Vector3d x = grid.VoxelToPhysical(p);
    box.lower = box.lower.cwiseMin(x);
    box.upper = box.upper.cwiseMax(x);
  }
  return box;
}

std::string WorldBoxText(const WorldBox& box, int dim) {
  std::string s = Joined(dim, " x ", [&](int d) {
    std::string interval = "[";
    interval.append(Number(box.lower[d])).append(", ").append(Number(box.upper[d])).append("]");
    return interval;
  });
  s.append(" mm");
  return s;
}

double WorldOverlapFraction(const Grid& image, const Grid& reference) {
  if (SameWorldGrid(image, reference)) return 1.0;
  const VoxelAffine m = VoxelToVoxel(reference, image);
  const int nx = reference.size[0], ny = reference.size[1];
  const int nz = reference.dim == 3 ? reference.size[2] : 1;
  Index inside = 0;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < ny; ++j) {
      const Eigen::Vector3d row = m.A.col(1) * j + m.A.col(2) * k + m.b;
      for (int i = 0; i < nx; ++i) {
        inside += InsideFieldOfView(image, row + m.A.col(0) * i) ? 1 : 0;
      }
    }
  }
  return static_cast<double>(inside) / static_cast<double>(reference.voxels());
}

void CheckWorldOverlap(const Grid& moving, const Grid& fixed, const std::string& moving_name,
                       const std::string& fixed_name) {
  if (moving.dim != fixed.dim) {
    throw InputError(moving_name + ": a " + std::to_string(moving.dim) + "-D image (" +
                     SizeText(moving) + ") cannot be matched to " + fixed_name + ", a " +
                     std::to_string(fixed.dim) + "-D image (" + SizeText(fixed) +
                     "); the same dimension is expected");
  }
  const double overlap = WorldOverlapFraction(moving, fixed);
  if (overlap >= kMinimumWorldOverlap) return;
  char share[64];
  std::snprintf(share, sizeof(share), "%.3g%% of", 100.0 * overlap);
  char minimum[32];
  std::snprintf(minimum, sizeof(minimum), "%g%%", 100.0 * kMinimumWorldOverlap);
  throw InputError(moving_name + " and " + fixed_name +
                   " do not overlap in world space: " + moving_name + " spans " +
                   WorldBoxText(WorldBoundingBox(moving), moving.dim) + ", " + fixed_name +
                   " spans " + WorldBoxText(WorldBoundingBox(fixed), fixed.dim) +
                   " (world bounding boxes of the fields of view); " + share +
                   " the latter lies "
                   "inside the former, at least " +
                   minimum +
                   " expected (check the images' "
                   "qform/sform: origin, orientation, voxel size)");
}

double BackgroundValue(const ImageView& image) {
  const Grid& g = image.grid;
  const int nx = g.size[0], ny = g.size[1], nz = g.dim == 3 ? g.size[2] : 1;
  std::vector<double> border;
  ForEachVoxel(image, [&](int i, int j, int k, double v) {
    const bool face_z = g.dim == 3 && (k == 0 || k == nz - 1);
    if (face_z || j == 0 || j == ny - 1 || i == 0 || i == nx - 1) border.push_back(v);
  });
  if (border.empty()) return 0.0;
  const auto middle = border.begin() + static_cast<std::ptrdiff_t>(border.size() / 2);
  std::nth_element(border.begin(), middle, border.end());
  return *middle;
}

Image ResampleIntoWorld(const ImageView& image, const Grid& target, Interpolation interpolation,
                        double outside_value, const Eigen::Matrix4d& world_affine) {
  Image out{target, Eigen::VectorXd(target.voxels()), image.source_type};
  ResampleScalar(image, target, interpolation, out.data.data(), outside_value, world_affine);
  return out;
}

Image ResampleIntoWorldCubic(const ImageView& image, const Grid& target, double outside_value,
                             const Eigen::Matrix4d& world_affine) {
  Image copy = CopyImage(image);
  const Grid grid = copy.grid;
  const double low = copy.data.minCoeff(), high = copy.data.maxCoeff();
  // The copy becomes the coefficients in place (no second image-sized buffer).
  const Eigen::VectorXd coefficients = CubicBSplineCoefficients(grid, std::move(copy.data));
  const VoxelAffine m = VoxelToVoxel(target, grid, world_affine);
  Image out{target, Eigen::VectorXd(target.voxels()), image.source_type};
  const int nx = target.size[0], ny = target.size[1], nz = target.dim == 3 ? target.size[2] : 1;
  Index idx = 0;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < ny; ++j) {
      for (int i = 0; i < nx; ++i, ++idx) {
        const Eigen::Vector3d q = m.A * Eigen::Vector3d(i, j, k) + m.b;
        out.data[idx] =
            InsideFieldOfView(grid, q)
                ? std::clamp(SampleCubicBSplineClamped(grid, coefficients.data(), q), low, high)
                : outside_value;
      }
    }
  }
  return out;
}

MovingInFixedSpace::MovingInFixedSpace(const Image& moving, const Image& fixed,
                                       const Eigen::Matrix4d& affine)
    : MovingInFixedSpace(ImageView(moving), fixed.grid, affine) {
  moving_image_ = &moving;
}

MovingInFixedSpace::MovingInFixedSpace(const ImageView& moving, const Grid& fixed,
                                       const Eigen::Matrix4d& affine)
    : moving_(moving) {
  const bool same_grid = SameWorldGrid(moving.grid, fixed);
  if (same_grid && IsIdentity(affine)) return;
  CheckWorldOverlap(moving.grid, fixed);
  const double background = BackgroundValue(moving);
  if (same_grid) {
    // Pulled back by the affine stage only (the grid within float tolerance of the fixed one is
    // the fixed grid): nothing to note.
    ImageView on_fixed_grid = moving;
    on_fixed_grid.grid = fixed;
    resampled_ = ResampleIntoWorldCubic(on_fixed_grid, fixed, background, affine);
    return;
  }
  resampled_ = ResampleIntoWorldCubic(moving, fixed, background, affine);
  char tail[256];
  std::snprintf(tail, sizeof(tail),
                "): resampled the moving image into the fixed image's world space (cubic B-spline; "
                "background %.6g outside its field of view, which covers %.3g%% of the fixed one)",
                background, 100.0 * WorldOverlapFraction(moving.grid, fixed));
  note_ = "--moving is on another grid than --fixed (" + GridDifferences(moving.grid, fixed) +
          tail;
}

const Image& MovingInFixedSpace::image() const {
  assert(resampled_ || moving_image_ != nullptr);
  return resampled_ ? *resampled_ : *moving_image_;
}

Image WarpThroughWorld(const ImageView& image, const Grid& fixed_grid, ConstFieldRef phi,
                       Interpolation interpolation, std::optional<double> outside_value,
                       const Eigen::Matrix4d& affine) {
  const Index n = fixed_grid.voxels();
  if (image.grid.dim != fixed_grid.dim || phi.size() != fixed_grid.dim * n) {
    throw InputError("WarpThroughWorld: a " + std::to_string(image.grid.dim) + "-D image of " +
                     std::to_string(image.grid.voxels()) + " values and a map of " +
                     std::to_string(phi.size()) + " values on a " + std::to_string(fixed_grid.dim) +
                     "-D grid of " + std::to_string(n) + " voxels do not fit together");
  }
  Image out{fixed_grid, Eigen::VectorXd(n), image.source_type};
  if (IsIdentity(affine) && SameWorldGrid(image.grid, fixed_grid)) {
    // The image is on the fixed grid: φ holds its voxel coordinates (clamped interpolation).
    WarpScalar(image, fixed_grid, phi, out.data, interpolation);
    return out;
  }
  const double outside = outside_value ? *outside_value : BackgroundValue(image);
  // A grid equal to the fixed one within float tolerance is the fixed grid.
  const Grid& image_grid = SameWorldGrid(image.grid, fixed_grid) ? fixed_grid : image.grid;
  const VoxelAffine m = VoxelToVoxel(fixed_grid, image_grid, affine);
  const int dim = fixed_grid.dim;
  VisitValues(image, [&](const auto& values) {
    for (Index x = 0; x < n; ++x) {
      const Eigen::Vector3d p(phi[x], phi[n + x], dim == 3 ? phi[2 * n + x] : 0.0);
      const Eigen::Vector3d q = m.A * p + m.b;
      out.data[x] = !InsideFieldOfView(image_grid, q) ? outside
                    : detail::SampleImpl(interpolation, image_grid, values, q[0], q[1], q[2]);
    }
  });
  return out;
}

}  // namespace diffeoflow::registration
