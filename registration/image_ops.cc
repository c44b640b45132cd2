#include "registration/image_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

using Index = Eigen::Index;

// ∂f/∂x_axis (physical units) at voxel (i, j, k) by the scheme in the header.
inline double Partial(const Grid& grid, const double* f, int axis, Index idx, int coord,
                      Index stride) {
  const int n = grid.size[axis];
  if (n <= 1) return 0.0;
  const double h = grid.spacing_mm[axis];
  if (coord == 0) return (f[idx + stride] - f[idx]) / h;
  if (coord == n - 1) return (f[idx] - f[idx - stride]) / h;
  return (f[idx + stride] - f[idx - stride]) / (2.0 * h);
}

Index Stride(const Grid& grid, int axis) {
  if (axis == 0) return 1;
  if (axis == 1) return grid.size[0];
  return static_cast<Index>(grid.size[0]) * grid.size[1];
}

// out (+)= scale · ∂f/∂x_axis over the whole grid.
void AccumulatePartial(const Grid& grid, const double* f, int axis, double scale, bool accumulate,
                       double* out) {
  const int nx = grid.size[0], ny = grid.size[1], nz = grid.dim == 3 ? grid.size[2] : 1;
  const Index stride = Stride(grid, axis);
  const int n = grid.size[axis];
  Index idx = 0;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < ny; ++j) {
      const int outer = axis == 1 ? j : k;
      for (int i = 0; i < nx; ++i, ++idx) {
        const int coord = axis == 0 ? i : outer;
        double d;
        if (n <= 1) {
          d = 0.0;
        } else if (coord > 0 && coord < n - 1) {
          d = (f[idx + stride] - f[idx - stride]) * (0.5 / grid.spacing_mm[axis]);
        } else {
          d = Partial(grid, f, axis, idx, coord, stride);
        }
        out[idx] = accumulate ? out[idx] + scale * d : scale * d;
      }
    }
  }
}

void CheckSize(Index actual, Index expected, const char* what) {
  if (actual != expected) {
    throw InputError(std::string(what) + ": expected " + std::to_string(expected) +
                     " values, got " + std::to_string(actual));
  }
}

// Separable Gaussian with per-axis standard deviation in voxels (truncated at 3σ, normalised,
// borders replicated).
void SmoothVoxels(const Grid& grid, const double* in, const std::array<double, 3>& sigma_vox,
                  double* out) {
  const Index n = grid.voxels();
  std::copy(in, in + n, out);
  std::vector<double> line, kernel;
  for (int axis = 0; axis < grid.dim; ++axis) {
    const int len = grid.size[axis];
    const double s = sigma_vox[axis];
    if (len <= 1 || !(s > 0.0)) continue;
    // Beyond a few image lengths every extra tap sees the replicated border value only.
    const int radius = static_cast<int>(std::clamp(std::ceil(3.0 * s), 1.0, 4.0 * len));
    kernel.assign(2 * radius + 1, 0.0);
    double total = 0.0;
    for (int t = -radius; t <= radius; ++t) {
      kernel[t + radius] = std::exp(-0.5 * t * t / (s * s));
      total += kernel[t + radius];
    }
    for (double& w : kernel) w /= total;
    const Index stride = Stride(grid, axis);
    line.resize(len);
    // Iterate over all lines along `axis`: their first voxels are the voxels with coordinate 0.
    for (Index start = 0; start < n; ++start) {
      const Index coord = (start / stride) % len;
      if (coord != 0) continue;
      for (int t = 0; t < len; ++t) line[t] = out[start + t * stride];
      for (int t = 0; t < len; ++t) {
        double acc = 0.0;
        for (int r = -radius; r <= radius; ++r) {
          const int q = std::clamp(t + r, 0, len - 1);
          acc += kernel[r + radius] * line[q];
        }
        out[start + t * stride] = acc;
      }
    }
  }
}

}  // namespace

VoxelAffine VoxelToVoxel(const Grid& from, const Grid& to, const Eigen::Matrix4d& world) {
  const Eigen::Vector3d s_from(from.spacing_mm[0], from.spacing_mm[1], from.spacing_mm[2]);
  const Eigen::Vector3d inv_s_to(1.0 / to.spacing_mm[0], 1.0 / to.spacing_mm[1],
                                 1.0 / to.spacing_mm[2]);
  const Eigen::Matrix3d to_inverse = inv_s_to.asDiagonal() * to.direction.inverse();
  const Eigen::Matrix3d w_linear = world.topLeftCorner<3, 3>();
  const Eigen::Vector3d w_offset = world.topRightCorner<3, 1>();
  const Eigen::Vector3d origin_from(from.origin_mm[0], from.origin_mm[1], from.origin_mm[2]);
  const Eigen::Vector3d origin_to(to.origin_mm[0], to.origin_mm[1], to.origin_mm[2]);
  return {to_inverse * w_linear * from.direction * s_from.asDiagonal(),
          to_inverse * (w_linear * origin_from + w_offset - origin_to)};
}

bool InsideFieldOfView(const Grid& grid, const Eigen::Vector3d& q) {
  constexpr double kSlack = 1e-6;  // voxels: rounding of the affines
  for (int d = 0; d < grid.dim; ++d) {
    if (!(q[d] >= -0.5 - kSlack && q[d] <= grid.size[d] - 0.5 + kSlack)) return false;
  }
  return true;
}

// ResampleScalar over an Image's or a view's values (image_view.h).
template <typename Values>
void ResampleValues(const Grid& source, const Values& values, const Grid& target,
                    Interpolation interpolation, double* out, std::optional<double> outside,
                    const Eigen::Matrix4d& world) {
  const VoxelAffine m = VoxelToVoxel(target, source, world);
  const int nx = target.size[0], ny = target.size[1], nz = target.dim == 3 ? target.size[2] : 1;
  Index idx = 0;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < ny; ++j) {
      const Eigen::Vector3d row = m.A.col(1) * j + m.A.col(2) * k + m.b;
      for (int i = 0; i < nx; ++i, ++idx) {
        const Eigen::Vector3d q = row + m.A.col(0) * i;
        if (outside && !InsideFieldOfView(source, q)) {
          out[idx] = *outside;
        } else {
          out[idx] = detail::SampleImpl(interpolation, source, values, q[0], q[1], q[2]);
        }
      }
    }
  }
}

void ResampleScalar(const Grid& source, const double* data, const Grid& target,
                    Interpolation interpolation, double* out, std::optional<double> outside,
                    const Eigen::Matrix4d& world) {
  ResampleValues(source, detail::ContiguousValues(source, data), target, interpolation, out,
                 outside, world);
}

void ResampleScalar(const ImageView& source, const Grid& target, Interpolation interpolation,
                    double* out, std::optional<double> outside, const Eigen::Matrix4d& world) {
  VisitValues(source, [&](const auto& values) {
    ResampleValues(source.grid, values, target, interpolation, out, outside, world);
  });
}

// ---------------------------------------------------------------------------------------------

double Percentile(const ImageView& image, double p) {
  if (!(p >= 0.0 && p <= 100.0)) {
    throw InputError("percentile must be in [0, 100], got " + std::to_string(p));
  }
  const Index n = image.grid.voxels();
  if (n == 0) throw InputError("percentile of an empty image");
  std::vector<double> values;
  values.reserve(static_cast<std::size_t>(n));
  ForEachVoxel(image, [&](int, int, int, double v) { values.push_back(v); });
  const double pos = p / 100.0 * static_cast<double>(n - 1);
  const Index lo = static_cast<Index>(std::floor(pos));
  const Index hi = std::min<Index>(lo + 1, n - 1);
  std::nth_element(values.begin(), values.begin() + lo, values.end());
  const double v_lo = values[lo];
  double v_hi = v_lo;
  if (hi != lo) v_hi = *std::min_element(values.begin() + lo + 1, values.end());
  return v_lo + (pos - static_cast<double>(lo)) * (v_hi - v_lo);
}

Image NormalizeIntensity(const ImageView& image, double lower_percentile, double upper_percentile,
                         bool clamp) {
  if (!(lower_percentile >= 0.0 && upper_percentile <= 100.0 &&
        lower_percentile < upper_percentile)) {
    throw InputError("intensity normalisation: percentiles must satisfy 0 <= lower < upper <= 100,"
                     " got " + std::to_string(lower_percentile) + " and " +
                     std::to_string(upper_percentile));
  }
  Image out{image.grid, Eigen::VectorXd(image.grid.voxels()), ElementType::kFloat64};
  if (out.data.size() == 0) return out;
  // The extremes: Eigen's minCoeff/maxCoeff on an Image's layout, one pass over other views.
  double lo = 0.0, hi = 0.0;
  if (image.image_layout()) {
    const Eigen::Map<const Eigen::VectorXd> values(static_cast<const double*>(image.data),
                                                   out.data.size());
    lo = values.minCoeff();
    hi = values.maxCoeff();
  } else {
    lo = std::numeric_limits<double>::infinity();
    hi = -lo;
    ForEachVoxel(image, [&](int, int, int, double v) {
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    });
  }
  if (lower_percentile != 0.0) lo = Percentile(image, lower_percentile);
  if (upper_percentile != 100.0) hi = Percentile(image, upper_percentile);
  if (!(hi > lo)) {
    out.data.setZero();
    return out;
  }
  const double scale = 1.0 / (hi - lo);
  double* values = out.data.data();
  ForEachVoxel(image, [&](int, int, int, double v) {
    v = (v - lo) * scale;
    if (clamp) v = std::clamp(v, 0.0, 1.0);
    *values++ = v;
  });
  return out;
}

double SampleLinearPhysical(const Image& image, const Eigen::Vector3d& point_mm) {
  const Eigen::Vector3d q = image.grid.PhysicalToVoxel(point_mm);
  return SampleLinear(image.grid, image.data.data(), q[0], q[1], q[2]);
}

// ---------------------------------------------------------------------------------------------

void IdentityPositionField(const Grid& grid, FieldRef out) {
  const Index n = grid.voxels();
  CheckSize(out.size(), grid.dim * n, "IdentityPositionField");
  const int nx = grid.size[0], ny = grid.size[1], nz = grid.dim == 3 ? grid.size[2] : 1;
  Index idx = 0;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < ny; ++j) {
      for (int i = 0; i < nx; ++i, ++idx) {
        out[idx] = i;
        out[n + idx] = j;
        if (grid.dim == 3) out[2 * n + idx] = k;
      }
    }
  }
}

VectorField IdentityPositionField(const Grid& grid) {
  VectorField phi{grid, Eigen::VectorXd(grid.dim * grid.voxels())};
  IdentityPositionField(grid, phi.data);
  return phi;
}

void PositionFromDisplacement(const Grid& grid, ConstFieldRef displacement_mm, FieldRef out) {
  const Index n = grid.voxels();
  CheckSize(displacement_mm.size(), grid.dim * n, "PositionFromDisplacement");
  CheckSize(out.size(), grid.dim * n, "PositionFromDisplacement");
  const int nx = grid.size[0], ny = grid.size[1], nz = grid.dim == 3 ? grid.size[2] : 1;
  const double inv[3] = {1.0 / grid.spacing_mm[0], 1.0 / grid.spacing_mm[1],
                         1.0 / grid.spacing_mm[2]};
  Index idx = 0;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < ny; ++j) {
      for (int i = 0; i < nx; ++i, ++idx) {
        out[idx] = i + displacement_mm[idx] * inv[0];
        out[n + idx] = j + displacement_mm[n + idx] * inv[1];
        if (grid.dim == 3) out[2 * n + idx] = k + displacement_mm[2 * n + idx] * inv[2];
      }
    }
  }
}

void DisplacementFromPosition(const Grid& grid, ConstFieldRef position_voxels, FieldRef out) {
  const Index n = grid.voxels();
  CheckSize(position_voxels.size(), grid.dim * n, "DisplacementFromPosition");
  CheckSize(out.size(), grid.dim * n, "DisplacementFromPosition");
  const int nx = grid.size[0], ny = grid.size[1], nz = grid.dim == 3 ? grid.size[2] : 1;
  Index idx = 0;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < ny; ++j) {
      for (int i = 0; i < nx; ++i, ++idx) {
        out[idx] = (position_voxels[idx] - i) * grid.spacing_mm[0];
        out[n + idx] = (position_voxels[n + idx] - j) * grid.spacing_mm[1];
        if (grid.dim == 3) out[2 * n + idx] = (position_voxels[2 * n + idx] - k) * grid.spacing_mm[2];
      }
    }
  }
}

VectorField PositionFromDisplacement(const VectorField& displacement_mm) {
  VectorField out{displacement_mm.grid, Eigen::VectorXd(displacement_mm.data.size())};
  PositionFromDisplacement(displacement_mm.grid, displacement_mm.data, out.data);
  return out;
}

VectorField DisplacementFromPosition(const VectorField& position_voxels) {
  VectorField out{position_voxels.grid, Eigen::VectorXd(position_voxels.data.size())};
  DisplacementFromPosition(position_voxels.grid, position_voxels.data, out.data);
  return out;
}

void WarpScalar(const Grid& source_grid, ConstFieldRef source, const Grid& target_grid,
                ConstFieldRef position, FieldRef out, Interpolation interpolation) {
  const Index n = target_grid.voxels();
  CheckSize(source.size(), source_grid.voxels(), "WarpScalar source");
  CheckSize(position.size(), target_grid.dim * n, "WarpScalar position");
  CheckSize(out.size(), n, "WarpScalar output");
  const double* data = source.data();
  const double* px = position.data();
  const double* py = px + n;
  if (source_grid.dim == 2 && interpolation == Interpolation::kLinear) {
    for (Index i = 0; i < n; ++i) out[i] = SampleLinear(source_grid, data, px[i], py[i]);
    return;
  }
  const double* pz = target_grid.dim == 3 ? py + n : nullptr;
  const auto values = detail::ContiguousValues(source_grid, data);
  for (Index i = 0; i < n; ++i) {
    const double z = pz ? pz[i] : 0.0;
    out[i] = detail::SampleImpl(interpolation, source_grid, values, px[i], py[i], z);
  }
}

void WarpScalar(const ImageView& source, const Grid& target_grid, ConstFieldRef position,
                FieldRef out, Interpolation interpolation) {
  if (source.image_layout()) {
    WarpScalar(source.grid, Eigen::Map<const Eigen::VectorXd>(
                                static_cast<const double*>(source.data), source.grid.voxels()),
               target_grid, position, out, interpolation);
    return;
  }
  const Index n = target_grid.voxels();
  CheckSize(position.size(), target_grid.dim * n, "WarpScalar position");
  CheckSize(out.size(), n, "WarpScalar output");
  const double* px = position.data();
  const double* py = px + n;
  const double* pz = target_grid.dim == 3 ? py + n : nullptr;
  VisitValues(source, [&](const auto& values) {
    for (Index i = 0; i < n; ++i) {
      const double z = pz ? pz[i] : 0.0;
      out[i] = detail::SampleImpl(interpolation, source.grid, values, px[i], py[i], z);
    }
  });
}

Image WarpImage(const Image& image, const VectorField& position, Interpolation interpolation) {
  Image out{position.grid, Eigen::VectorXd(position.grid.voxels()), image.source_type};
  WarpScalar(image.grid, image.data, position.grid, position.data, out.data, interpolation);
  return out;
}

void WarpVectorField(const Grid& source_grid, ConstFieldRef field, const Grid& target_grid,
                     ConstFieldRef position, FieldRef out) {
  const Index ns = source_grid.voxels(), nt = target_grid.voxels();
  CheckSize(field.size(), source_grid.dim * ns, "WarpVectorField field");
  CheckSize(out.size(), source_grid.dim * nt, "WarpVectorField output");
  for (int c = 0; c < source_grid.dim; ++c) {
    WarpScalar(source_grid, field.segment(c * ns, ns), target_grid, position,
               out.segment(c * nt, nt), Interpolation::kLinear);
  }
}

void ComposePositions(const Grid& grid, ConstFieldRef phi1, ConstFieldRef phi2, FieldRef out) {
  const Index n = grid.voxels();
  CheckSize(phi1.size(), grid.dim * n, "ComposePositions phi1");
  CheckSize(phi2.size(), grid.dim * n, "ComposePositions phi2");
  CheckSize(out.size(), grid.dim * n, "ComposePositions output");
  // φ1(y) = y + d1(y); the linear interpolant of the identity at y is y clamped to the grid, so
  // interp(d1)(y) = interp(φ1)(y) − clamp(y).
  for (Index i = 0; i < n; ++i) {
    const double y[3] = {phi2[i], phi2[n + i], grid.dim == 3 ? phi2[2 * n + i] : 0.0};
    double moved[3];
    for (int c = 0; c < grid.dim; ++c) {
      const double value = SampleLinear(grid, phi1.data() + c * n, y[0], y[1], y[2]);
      const double upper = static_cast<double>(grid.size[c] - 1);
      const double clamped = !(y[c] >= 0.0) ? 0.0 : std::min(y[c], upper);
      moved[c] = y[c] + value - clamped;
    }
    // Written after all reads so that `out` may alias `phi2`.
    for (int c = 0; c < grid.dim; ++c) out[c * n + i] = moved[c];
  }
}

VectorField ComposeDisplacements(const VectorField& u1, const VectorField& u2) {
  if (!u1.grid.SameShape(u2.grid)) {
    throw InputError("ComposeDisplacements: the two displacements must be on the same grid");
  }
  const VectorField phi1 = PositionFromDisplacement(u1);
  VectorField phi = PositionFromDisplacement(u2);
  ComposePositions(u2.grid, phi1.data, phi.data, phi.data);
  return DisplacementFromPosition(phi);
}

// ---------------------------------------------------------------------------------------------

void ImageGradient(const Grid& grid, ConstFieldRef image, FieldRef out) {
  const Index n = grid.voxels();
  CheckSize(image.size(), n, "ImageGradient image");
  CheckSize(out.size(), grid.dim * n, "ImageGradient output");
  for (int d = 0; d < grid.dim; ++d) {
    AccumulatePartial(grid, image.data(), d, 1.0, false, out.data() + d * n);
  }
}

VectorField ImageGradient(const Image& image) {
  VectorField out{image.grid, Eigen::VectorXd(image.grid.dim * image.grid.voxels())};
  ImageGradient(image.grid, image.data, out.data);
  return out;
}

void Divergence(const Grid& grid, ConstFieldRef field, FieldRef out) {
  const Index n = grid.voxels();
  CheckSize(field.size(), grid.dim * n, "Divergence field");
  CheckSize(out.size(), n, "Divergence output");
  for (int d = 0; d < grid.dim; ++d) {
    AccumulatePartial(grid, field.data() + d * n, d, 1.0, d > 0, out.data());
  }
}

Image Divergence(const VectorField& field) {
  Image out{field.grid, Eigen::VectorXd(field.grid.voxels())};
  Divergence(field.grid, field.data, out.data);
  return out;
}

namespace {

// det of the Jacobian matrix J_cd = δ_cd·identity_weight + scale_d·∂f_c/∂x_d at every voxel, where
// the partials are in physical units (scale = 1) or voxel units (scale = spacing).
void JacobianDeterminantImpl(const Grid& grid, const double* f, double identity_weight,
                             bool voxel_units, double* out) {
  const Index n = grid.voxels();
  const int nx = grid.size[0], ny = grid.size[1], nz = grid.dim == 3 ? grid.size[2] : 1;
  const Index strides[3] = {Stride(grid, 0), Stride(grid, 1), Stride(grid, 2)};
  const double scale[3] = {voxel_units ? grid.spacing_mm[0] : 1.0,
                           voxel_units ? grid.spacing_mm[1] : 1.0,
                           voxel_units ? grid.spacing_mm[2] : 1.0};
  Index idx = 0;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < ny; ++j) {
      for (int i = 0; i < nx; ++i, ++idx) {
        const int coord[3] = {i, j, k};
        double J[3][3];
        for (int c = 0; c < grid.dim; ++c) {
          for (int d = 0; d < grid.dim; ++d) {
            J[c][d] = (c == d ? identity_weight : 0.0) +
                      scale[d] * Partial(grid, f + c * n, d, idx, coord[d], strides[d]);
          }
        }
        if (grid.dim == 2) {
          out[idx] = J[0][0] * J[1][1] - J[0][1] * J[1][0];
        } else {
          out[idx] = J[0][0] * (J[1][1] * J[2][2] - J[1][2] * J[2][1]) -
                     J[0][1] * (J[1][0] * J[2][2] - J[1][2] * J[2][0]) +
                     J[0][2] * (J[1][0] * J[2][1] - J[1][1] * J[2][0]);
        }
      }
    }
  }
}

}  // namespace

void JacobianDeterminant(const Grid& grid, ConstFieldRef displacement_mm, FieldRef out) {
  CheckSize(displacement_mm.size(), grid.dim * grid.voxels(), "JacobianDeterminant displacement");
  CheckSize(out.size(), grid.voxels(), "JacobianDeterminant output");
  JacobianDeterminantImpl(grid, displacement_mm.data(), 1.0, false, out.data());
}

Image JacobianDeterminant(const VectorField& displacement_mm) {
  Image out{displacement_mm.grid, Eigen::VectorXd(displacement_mm.grid.voxels())};
  JacobianDeterminant(displacement_mm.grid, displacement_mm.data, out.data);
  return out;
}

void JacobianDeterminantOfPosition(const Grid& grid, ConstFieldRef position, FieldRef out) {
  CheckSize(position.size(), grid.dim * grid.voxels(), "JacobianDeterminantOfPosition position");
  CheckSize(out.size(), grid.voxels(), "JacobianDeterminantOfPosition output");
  JacobianDeterminantImpl(grid, position.data(), 0.0, true, out.data());
}

// ---------------------------------------------------------------------------------------------

void GaussianSmooth(const Grid& grid, ConstFieldRef image, double sigma_mm, FieldRef out) {
  CheckSize(image.size(), grid.voxels(), "GaussianSmooth image");
  CheckSize(out.size(), grid.voxels(), "GaussianSmooth output");
  std::array<double, 3> sigma_vox{0.0, 0.0, 0.0};
  for (int d = 0; d < grid.dim; ++d) sigma_vox[d] = sigma_mm / grid.spacing_mm[d];
  if (image.data() == out.data()) {
    const Eigen::VectorXd copy = image;
    SmoothVoxels(grid, copy.data(), sigma_vox, out.data());
  } else {
    SmoothVoxels(grid, image.data(), sigma_vox, out.data());
  }
}

Image GaussianSmooth(const Image& image, double sigma_mm) {
  Image out{image.grid, Eigen::VectorXd(image.data.size()), image.source_type};
  GaussianSmooth(image.grid, image.data, sigma_mm, out.data);
  return out;
}

Grid ResizedGrid(const Grid& grid, const std::array<int, 3>& size) {
  Grid out = grid;
  Eigen::Vector3d shift = Eigen::Vector3d::Zero();
  for (int d = 0; d < 3; ++d) {
    if (size[d] < 1 || (d >= grid.dim && size[d] != 1)) {
      throw InputError("ResizedGrid: invalid size " + std::to_string(size[d]) + " along axis " +
                       std::to_string(d));
    }
    out.size[d] = size[d];
    out.spacing_mm[d] = grid.spacing_mm[d] * grid.size[d] / static_cast<double>(size[d]);
    // The corner of the first voxel, origin − ½·spacing along each axis, stays put.
    shift[d] = 0.5 * (out.spacing_mm[d] - grid.spacing_mm[d]);
  }
  const Eigen::Vector3d origin =
      Eigen::Vector3d(grid.origin_mm[0], grid.origin_mm[1], grid.origin_mm[2]) +
      grid.direction * shift;
  out.origin_mm = {origin[0], origin[1], origin[2]};
  return out;
}

Grid HalvedGrid(const Grid& grid) {
  std::array<int, 3> size = grid.size;
  for (int d = 0; d < grid.dim; ++d) {
    if (size[d] > 1) size[d] = (size[d] + 1) / 2;
  }
  return ResizedGrid(grid, size);
}

Image Resample(const Image& image, const Grid& target, Interpolation interpolation) {
  CheckSize(image.data.size(), image.grid.voxels(), "Resample image");
  Image out{target, Eigen::VectorXd(target.voxels()), image.source_type};
  ResampleScalar(image.grid, image.data.data(), target, interpolation, out.data.data());
  return out;
}

Image Downsample(const Image& image) {
  const Grid coarse = HalvedGrid(image.grid);
  std::array<double, 3> sigma_vox{0.0, 0.0, 0.0};
  for (int d = 0; d < image.grid.dim; ++d) {
    if (image.grid.size[d] > 1) sigma_vox[d] = 0.5 * coarse.spacing_mm[d] / image.grid.spacing_mm[d];
  }
  Eigen::VectorXd smooth(image.data.size());
  SmoothVoxels(image.grid, image.data.data(), sigma_vox, smooth.data());
  Image out{coarse, Eigen::VectorXd(coarse.voxels()), image.source_type};
  ResampleScalar(image.grid, smooth.data(), coarse, Interpolation::kLinear, out.data.data());
  return out;
}

VectorField UpsampleField(const VectorField& coarse, const Grid& fine) {
  if (coarse.grid.dim != fine.dim) {
    throw InputError("UpsampleField: coarse and fine grids differ in dimension");
  }
  const Index nc = coarse.grid.voxels(), nf = fine.voxels();
  CheckSize(coarse.data.size(), coarse.grid.dim * nc, "UpsampleField field");
  VectorField out{fine, Eigen::VectorXd(fine.dim * nf)};
  for (int c = 0; c < fine.dim; ++c) {
    ResampleScalar(coarse.grid, coarse.data.data() + c * nc, fine, Interpolation::kLinear,
                   out.data.data() + c * nf);
  }
  return out;
}

bool AllFinite(const Eigen::VectorXd& values) { return values.allFinite(); }

namespace {

// Cubic B-spline basis weights at fractional offset t ∈ [0, 1) for taps −1, 0, 1, 2.
void CubicWeights(double t, double w[4]) {
  const double s = 1.0 - t;
  w[0] = s * s * s / 6.0;
  w[1] = (4.0 - 6.0 * t * t + 3.0 * t * t * t) / 6.0;
  w[2] = (1.0 + 3.0 * t + 3.0 * t * t - 3.0 * t * t * t) / 6.0;
  w[3] = t * t * t / 6.0;
}

long Mirror(long i, long n) {
  if (n == 1) return 0;
  const long period = 2 * n - 2;
  i = std::abs(i) % period;
  return i < n ? i : period - i;
}

// In-place interpolating prefilter of one line (stride apart), mirror boundaries (Unser 1999).
void PrefilterLine(double* c, long n, long stride) {
  if (n < 2) return;
  const double z = std::sqrt(3.0) - 2.0;
  const double gain = (1.0 - z) * (1.0 - 1.0 / z);
  for (long k = 0; k < n; ++k) c[k * stride] *= gain;
  // Causal initialisation: the mirrored sum, exact for the whole line.
  double sum = c[0], zk = z;
  const double z2n = std::pow(z, static_cast<double>(2 * n - 2));
  double zback = z2n / z;
  for (long k = 1; k < n - 1; ++k) {
    sum += (zk + zback) * c[k * stride];
    zk *= z;
    zback /= z;
  }
  sum += zk * c[(n - 1) * stride];
  c[0] = sum / (1.0 - z2n);
  for (long k = 1; k < n; ++k) c[k * stride] += z * c[(k - 1) * stride];
  c[(n - 1) * stride] = (z / (z * z - 1.0)) * (c[(n - 1) * stride] + z * c[(n - 2) * stride]);
  for (long k = n - 2; k >= 0; --k) c[k * stride] = z * (c[(k + 1) * stride] - c[k * stride]);
}

}  // namespace

Eigen::VectorXd CubicBSplineCoefficients(const Grid& grid, Eigen::VectorXd values) {
  Eigen::VectorXd c = std::move(values);
  const long size[3] = {grid.size[0], grid.size[1], grid.dim == 3 ? grid.size[2] : 1};
  const long stride[3] = {1, size[0], size[0] * size[1]};
  for (int a = 0; a < grid.dim; ++a) {
    const int b = (a + 1) % 3, e = (a + 2) % 3;
    for (long j = 0; j < size[b]; ++j) {
      for (long k = 0; k < size[e]; ++k) {
        PrefilterLine(c.data() + j * stride[b] + k * stride[e], size[a], stride[a]);
      }
    }
  }
  return c;
}

double SampleCubicBSpline(const Grid& grid, const double* coefficients,
                          const Eigen::Vector3d& q) {
  const long size[3] = {grid.size[0], grid.size[1], grid.dim == 3 ? grid.size[2] : 1};
  long base[3] = {0, 0, 0};
  double w[3][4] = {{0, 1, 0, 0}, {0, 1, 0, 0}, {0, 1, 0, 0}};
  for (int a = 0; a < grid.dim; ++a) {
    const double f = std::floor(q[a]);
    base[a] = static_cast<long>(f);
    CubicWeights(q[a] - f, w[a]);
  }
  const int taps_z = grid.dim == 3 ? 4 : 1;
  double sum = 0.0;
  for (int tz = 0; tz < taps_z; ++tz) {
    const long k = grid.dim == 3 ? Mirror(base[2] + tz - 1, size[2]) : 0;
    const double wz = grid.dim == 3 ? w[2][tz] : 1.0;
    for (int ty = 0; ty < 4; ++ty) {
      const long j = Mirror(base[1] + ty - 1, size[1]);
      const double wy = wz * w[1][ty];
      const double* row = coefficients + (k * size[1] + j) * size[0];
      for (int tx = 0; tx < 4; ++tx) sum += wy * w[0][tx] * row[Mirror(base[0] + tx - 1, size[0])];
    }
  }
  return sum;
}

double SampleCubicBSplineClamped(const Grid& grid, const double* coefficients, Eigen::Vector3d q) {
  for (int a = 0; a < grid.dim; ++a) q[a] = std::clamp(q[a], 0.0, grid.size[a] - 1.0);
  return SampleCubicBSpline(grid, coefficients, q);
}

}  // namespace diffeoflow::registration
