#include "registration/transform_chain.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "registration/displacement_file.h"
#include "registration/image_ops.h"
#include "registration/transform_io.h"
#include "registration/world_space.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"

namespace diffeoflow::registration {
namespace {

using Index = Eigen::Index;

Eigen::Vector3d Origin(const Grid& g) {
  return Eigen::Vector3d(g.origin_mm[0], g.origin_mm[1], g.origin_mm[2]);
}

Eigen::Matrix3d VoxelToWorldLinear(const Grid& g) {
  return g.direction *
         Eigen::Vector3d(g.spacing_mm[0], g.spacing_mm[1], g.spacing_mm[2]).asDiagonal();
}

// A grid's voxel-to-world map restricted as ITK sees it: in 2-D the plane's x–y block (the
// out-of-plane coordinate of a point is ignored, index 2 stays 0).
struct VoxelFrame {
  Eigen::Matrix3d to_world;
  Eigen::Matrix3d to_voxel;
  Eigen::Vector3d origin;
  int dim;
  explicit VoxelFrame(const Grid& g) : origin(Origin(g)), dim(g.dim) {
    to_world = VoxelToWorldLinear(g);
    if (dim == 2) {
      to_world.row(2) << 0.0, 0.0, 1.0;
      to_world.col(2) << 0.0, 0.0, 1.0;
    }
    to_voxel = to_world.inverse();
  }
  Eigen::Vector3d Voxel(const Eigen::Vector3d& p) const {
    Eigen::Vector3d d = p - origin;
    if (dim == 2) d[2] = 0.0;
    Eigen::Vector3d q = to_voxel * d;
    if (dim == 2) q[2] = 0.0;
    return q;
  }
  Eigen::Vector3d World(const Eigen::Vector3d& q, double z) const {
    Eigen::Vector3d p = to_world * q + origin;
    if (dim == 2) p[2] = z;
    return p;
  }
};

bool InsideBox(const Grid& g, const Eigen::Vector3d& q) {
  constexpr double kSlack = 1e-6;  // rounding of the affines, as world_space.cc
  for (int d = 0; d < g.dim; ++d) {
    if (!(q[d] >= -0.5 - kSlack && q[d] <= g.size[d] - 0.5 + kSlack)) return false;
  }
  return true;
}

// A 4×4 homogeneous matrix from a trajectory.h5 dataset (row-major), or nullopt when absent.
std::optional<Eigen::Matrix4d> ReadMatrix(const h5::Reader& reader, const std::string& name,
                                          const std::string& what) {
  if (!reader.Has(name)) return std::nullopt;
  h5::Shape shape;
  const std::vector<double> values = reader.ReadDoubles(name, &shape);
  if (shape != h5::Shape{4, 4}) throw InputError(what + ": dataset '" + name + "' is not 4x4");
  Eigen::Matrix4d m;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) m(i, j) = values[static_cast<std::size_t>(4 * i + j)];
  }
  if (!m.allFinite() || m.row(3) != Eigen::RowVector4d(0, 0, 0, 1) ||
      !(std::abs(m.topLeftCorner<3, 3>().determinant()) > 1e-12)) {
    throw InputError(what + ": dataset '" + name + "' is not an invertible affine");
  }
  return m;
}

// The moving image's grid recorded in trajectory.h5 (moving_affine, moving_size), if there.
std::optional<Grid> ReadMovingGrid(const h5::Reader& reader, const std::string& what) {
  const std::optional<Eigen::Matrix4d> m = ReadMatrix(reader, "moving_affine", what);
  if (!m || !reader.Has("moving_size")) return std::nullopt;
  const std::vector<std::int64_t> size = reader.ReadInts("moving_size");
  if (size.size() != 2 && size.size() != 3) throw InputError(what + ": bad moving_size");
  Grid g;
  g.dim = static_cast<int>(size.size());
  for (int d = 0; d < g.dim; ++d) {
    if (size[static_cast<std::size_t>(d)] < 1) throw InputError(what + ": bad moving_size");
    g.size[d] = static_cast<int>(size[static_cast<std::size_t>(d)]);
  }
  for (int c = 0; c < 3; ++c) {
    const Eigen::Vector3d column = m->block<3, 1>(0, c);
    g.spacing_mm[c] = column.norm();
    g.direction.col(c) = column / g.spacing_mm[c];
    g.origin_mm[c] = (*m)(c, 3);
  }
  return g;
}

// A `register` folder: its displacement (or inverse) and affine, in the order of the map.
class RegistrationFolderTransform : public WorldTransform {
 public:
  RegistrationFolderTransform(const std::string& dir, bool inverse, const std::string& argument)
      : name_(argument + " " + dir) {
    const std::filesystem::path folder(dir);
    const std::string file = inverse ? "inverse_displacement.nii.gz" : "displacement.nii.gz";
    const std::filesystem::path path = folder / file;
    if (!std::filesystem::exists(path)) {
      throw InputError(argument + ": '" + dir + "' has no " + file + " (expected the --out folder " +
                       "of `diffeoflow register`" +
                       (inverse ? ", written by a version that writes the inverse map)" : ")"));
    }
    affine_ = Eigen::Matrix4d::Identity();
    std::optional<Eigen::Matrix4d> recorded;
    const std::filesystem::path trajectory = folder / "trajectory.h5";
    if (std::filesystem::exists(trajectory)) {
      const h5::Reader reader(trajectory.string());
      const std::string what = argument + ": " + trajectory.string();
      // Folders written before the ITK/ANTs convention hold vectors along the image axes in
      // displacement.nii.gz; their trajectory.h5 has no fixed_affine. Read as LPS vectors they
      // would be a wrong map without a word, so they are refused.
      if (!reader.Has("fixed_affine")) {
        throw InputError(argument + ": '" + dir + "' was written by an older diffeoflow whose "
                         "displacement.nii.gz is not in the ITK/ANTs (LPS) convention; run "
                         "`diffeoflow register` again");
      }
      if (const auto a = ReadMatrix(reader, "affine", what)) recorded = *a;
      if (inverse) reference_ = ReadMovingGrid(reader, what);
    }
    // The affine stage is affine.txt, the file ANTs and ITK read; trajectory.h5 keeps a copy as a
    // record. A folder whose two disagree (one file replaced by hand) is refused rather than
    // guessed at.
    const std::filesystem::path affine_file = folder / "affine.txt";
    if (std::filesystem::exists(affine_file)) {
      affine_ = ReadAffineMatrix(affine_file.string(), argument);
      if (recorded && !recorded->isApprox(affine_, 1e-9)) {
        throw InputError(argument + ": '" + dir + "': affine.txt and trajectory.h5's affine " +
                         "differ (expected the two files of one `diffeoflow register` run)");
      }
    } else if (recorded && !recorded->isIdentity(1e-12)) {
      throw InputError(argument + ": '" + dir + "' has no affine.txt but trajectory.h5 records " +
                       "an affine stage (expected affine.txt next to displacement.nii.gz)");
    }
    field_ = DisplacementFieldWorldTransform::FromFile(path.string(), argument);
    if (!reference_) reference_ = field_->DefaultReference();
    inverse_ = inverse;
    affine_inverse_ = affine_.inverse();
  }
  Eigen::Vector3d Map(const Eigen::Vector3d& p) const override {
    if (inverse_) {
      const Eigen::Vector3d q = (affine_inverse_ * p.homogeneous()).head<3>();
      return field_->Map(q);
    }
    return (affine_ * field_->Map(p).homogeneous()).head<3>();
  }
  int dim() const override { return field_->dim(); }
  const std::string& name() const override { return name_; }
  std::optional<Grid> DefaultReference() const override { return reference_; }

 private:
  std::unique_ptr<DisplacementFieldWorldTransform> field_;
  Eigen::Matrix4d affine_, affine_inverse_;
  bool inverse_ = false;
  std::optional<Grid> reference_;
  std::string name_;
};

}  // namespace

DisplacementFieldWorldTransform::DisplacementFieldWorldTransform(VectorField displacement_mm,
                                                                 std::string name)
    : grid_(displacement_mm.grid), name_(std::move(name)) {
  const Index n = grid_.voxels();
  if (displacement_mm.data.size() != grid_.dim * n) {
    throw InputError(name_ + ": displacement data size does not match its grid");
  }
  const VoxelFrame frame(grid_);
  to_voxel_ = frame.to_voxel;
  origin_ = frame.origin;
  Eigen::Matrix3d axes_to_world = grid_.direction;
  if (grid_.dim == 2) {
    axes_to_world.row(2) << 0.0, 0.0, 1.0;
    axes_to_world.col(2) << 0.0, 0.0, 1.0;
  }
  world_ = Eigen::VectorXd::Zero(3 * n);
  for (Index x = 0; x < n; ++x) {
    Eigen::Vector3d u = Eigen::Vector3d::Zero();
    for (int c = 0; c < grid_.dim; ++c) u[c] = displacement_mm.data[c * n + x];
    const Eigen::Vector3d w = axes_to_world * u;
    for (int c = 0; c < 3; ++c) world_[c * n + x] = w[c];
  }
}

std::unique_ptr<DisplacementFieldWorldTransform> DisplacementFieldWorldTransform::FromFile(
    const std::string& path, const std::string& argument) {
  ImageReadOptions read;
  read.argument = argument;
  return std::make_unique<DisplacementFieldWorldTransform>(ReadDisplacementFile(path, read),
                                                           argument + " " + path);
}

Eigen::Vector3d DisplacementFieldWorldTransform::Map(const Eigen::Vector3d& p) const {
  Eigen::Vector3d d = p - origin_;
  if (grid_.dim == 2) d[2] = 0.0;
  const Eigen::Vector3d q = to_voxel_ * d;
  for (int a = 0; a < grid_.dim; ++a) {
    if (!(q[a] >= -0.5 && q[a] < grid_.size[a] - 0.5)) return p;  // outside the buffer: w = 0
  }
  const Index n = grid_.voxels();
  Eigen::Vector3d out = p;
  for (int c = 0; c < grid_.dim; ++c) {
    out[c] += SampleLinear(grid_, world_.data() + c * n, q[0], q[1], q[2]);
  }
  return out;
}

AffineWorldTransform::AffineWorldTransform(const Eigen::Matrix4d& matrix, std::string name)
    : matrix_(matrix), name_(std::move(name)) {
  if (!matrix.allFinite() || matrix.row(3) != Eigen::RowVector4d(0, 0, 0, 1) ||
      !(std::abs(matrix.topLeftCorner<3, 3>().determinant()) > 1e-12)) {
    throw InputError(name_ + ": expected an invertible affine (last row 0 0 0 1)");
  }
}

Eigen::Vector3d AffineWorldTransform::Map(const Eigen::Vector3d& p) const {
  return (matrix_ * p.homogeneous()).head<3>();
}

void TransformChain::Append(std::unique_ptr<WorldTransform> transform) {
  const int d = transform->dim();
  for (const auto& t : transforms_) {
    if (d != 0 && t->dim() != 0 && t->dim() != d) {
      throw InputError(transform->name() + ": a " + std::to_string(d) + "-D transform cannot " +
                       "follow " + t->name() + ", a " + std::to_string(t->dim()) +
                       "-D one; the same dimension is expected");
    }
  }
  transforms_.push_back(std::move(transform));
}

Eigen::Vector3d TransformChain::Map(const Eigen::Vector3d& point) const {
  Eigen::Vector3d p = point;
  for (const auto& t : transforms_) p = t->Map(p);
  return p;
}

std::optional<Grid> TransformChain::DefaultReference() const {
  for (const auto& t : transforms_) {
    if (auto g = t->DefaultReference()) return g;
  }
  return std::nullopt;
}

void AppendTransform(TransformChain& chain, const std::string& path, bool inverse,
                     const std::string& argument) {
  if (!std::filesystem::exists(path)) {
    throw MissingFileError(argument + ": '" + path + "' does not exist (expected the --out folder of " +
                     "`diffeoflow register` or an ITK/ANTs warp file .nii/.nii.gz)");
  }
  if (std::filesystem::is_directory(path)) {
    chain.Append(std::make_unique<RegistrationFolderTransform>(path, inverse, argument));
    return;
  }
  if (std::filesystem::path(path).extension() == ".txt") {
    // An affine file (ITK text transform or dipy's 4×4 world matrix, transform_io.h).
    const Eigen::Matrix4d affine = ReadAffineMatrix(path, argument);
    chain.Append(std::make_unique<AffineWorldTransform>(inverse ? affine.inverse() : affine,
                                                        path));
    return;
  }
  const ImageFormat format = FormatFromPath(path, argument);
  if (format != ImageFormat::kNifti && format != ImageFormat::kNiftiGz) {
    throw InputError(argument + ": '" + path + "' is not a transform: expected the --out folder "
                     "of `diffeoflow register`, an ITK/ANTs warp file .nii/.nii.gz or an affine "
                     "file .txt");
  }
  if (inverse) {
    throw InputError("--inverse: " + path + " is a warp file; --inverse takes the inverse map of "
                     "a `register` folder (give the inverse warp file itself)");
  }
  chain.Append(DisplacementFieldWorldTransform::FromFile(path, argument));
}

ResampleInterpolation ParseResampleInterpolation(const std::string& name,
                                                 const std::string& argument) {
  if (name == "linear") return ResampleInterpolation::kLinear;
  if (name == "nearest") return ResampleInterpolation::kNearest;
  if (name == "bspline") return ResampleInterpolation::kCubicBSpline;
  if (name == "label") return ResampleInterpolation::kLabel;
  throw InputError(argument + ": expected linear, nearest, bspline or label, got '" + name + "'");
}

ResampleInterpolation AsResampleInterpolation(Interpolation interpolation) {
  switch (interpolation) {
    case Interpolation::kNearest:
      return ResampleInterpolation::kNearest;
    case Interpolation::kLabel:
      return ResampleInterpolation::kLabel;
    case Interpolation::kLinear:
      break;
  }
  return ResampleInterpolation::kLinear;
}

namespace {

// The image_ops interpolation behind linear, nearest and label (the cubic B-spline has none: it
// needs its coefficients, ResampleThroughChain samples it itself).
Interpolation PointwiseInterpolation(ResampleInterpolation interpolation) {
  switch (interpolation) {
    case ResampleInterpolation::kNearest:
      return Interpolation::kNearest;
    case ResampleInterpolation::kLabel:
      return Interpolation::kLabel;
    case ResampleInterpolation::kLinear:
    case ResampleInterpolation::kCubicBSpline:
      break;
  }
  return Interpolation::kLinear;
}

}  // namespace

bool KeepsValues(ResampleInterpolation interpolation) {
  return interpolation == ResampleInterpolation::kNearest ||
         interpolation == ResampleInterpolation::kLabel;
}

Image ResampleThroughChain(const ImageView& image, const Grid& reference, const TransformChain& chain,
                           ResampleInterpolation interpolation,
                           std::optional<double> outside_value, const ResampleNames& names) {
  if (image.grid.dim != reference.dim) {
    throw InputError(names.image + ": a " + std::to_string(image.grid.dim) + "-D image (" +
                     SizeText(image.grid) + ") cannot be resampled onto " + names.reference +
                     ", a " + std::to_string(reference.dim) + "-D grid (" + SizeText(reference) +
                     "); the same dimension is expected");
  }
  for (const auto& t : chain.transforms()) {
    if (t->dim() != 0 && t->dim() != reference.dim) {
      throw InputError(t->name() + ": a " + std::to_string(t->dim()) + "-D transform cannot " +
                       "carry " + names.image + ", a " + std::to_string(image.grid.dim) + "-D " +
                       "image (" + SizeText(image.grid) + "); the same dimension is expected");
    }
  }
  const bool same_grid = SameWorldGrid(image.grid, reference);
  const double outside = outside_value ? *outside_value : BackgroundValue(image);
  const bool cubic = interpolation == ResampleInterpolation::kCubicBSpline;
  const Interpolation pointwise = PointwiseInterpolation(interpolation);
  Eigen::VectorXd coefficients;
  if (cubic) coefficients = CubicBSplineCoefficients(image.grid, CopyImage(image).data);
  const VoxelFrame from(reference), to(image.grid);
  Image out{reference, Eigen::VectorXd(reference.voxels()), image.source_type};
  const int nx = reference.size[0], ny = reference.size[1];
  const int nz = reference.dim == 3 ? reference.size[2] : 1;
  const double z_plane = reference.origin_mm[2];
  Index idx = 0, inside = 0;
  VisitValues(image, [&](const auto& values) {
    for (int k = 0; k < nz; ++k) {
      for (int j = 0; j < ny; ++j) {
        for (int i = 0; i < nx; ++i, ++idx) {
          const Eigen::Vector3d p = from.World(Eigen::Vector3d(i, j, k), z_plane);
          const Eigen::Vector3d q = to.Voxel(chain.Map(p));
          const bool in = InsideBox(image.grid, q);
          inside += in ? 1 : 0;
          if (!in && !same_grid) {
            out.data[idx] = outside;
            continue;
          }
          out.data[idx] =
              cubic ? SampleCubicBSplineClamped(image.grid, coefficients.data(), q)
                    : detail::SampleImpl(pointwise, image.grid, values, q[0], q[1], q[2]);
        }
      }
    }
  });
  const double share = static_cast<double>(inside) / static_cast<double>(reference.voxels());
  if (share < kMinimumWorldOverlap) {
    char text[160];
    std::snprintf(text, sizeof(text),
                  "%.3g%% of the output voxels map into the image's field of view, at least "
                  "%g%% expected",
                  100.0 * share, 100.0 * kMinimumWorldOverlap);
    throw InputError(names.image + " and " + names.reference +
                     " do not overlap through the transforms: " + names.image + " spans " +
                     WorldBoxText(WorldBoundingBox(image.grid), image.grid.dim) + ", " +
                     names.reference + " spans " +
                     WorldBoxText(WorldBoundingBox(reference), reference.dim) + "; " + text +
                     " (check the images' qform/sform and the transforms)");
  }
  return out;
}

}  // namespace diffeoflow::registration
