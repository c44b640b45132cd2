// displacement.nii.gz against ITK's definition of a warp, implemented here from the ITK
// documentation and not from this project's code: the files are read with libnifti alone, voxel
// indices become ITK physical points through the qform/sform with x and y negated (RAS → LPS; a
// 2-D image keeps the first two axes), and a fixed point p goes to p + d(p), d the field's vector
// interpolated linearly at p (DisplacementFieldTransform::TransformPoint: d = 0 outside the
// field's buffer [−½, n − ½)), where the moving image is interpolated linearly. The image this
// gives must be warped.nii.gz, for 2-D, RAS, LAS, oblique grids and other voxel sizes. With an
// affine stage the point then goes through affine.txt as ITK's AffineTransform reads it (the text
// format parsed here: T(x) = M (x − c) + c + t in LPS, M row-major then t in Parameters, c in
// FixedParameters), i.e. `antsApplyTransforms -t displacement.nii.gz -t affine.txt`.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <nifti/nifti2_io.h>

#include "registration/image.h"
#include "registration/image_io.h"
#include "registration/outputs/register_outputs.h"
#include "registration/register.h"
#include "tests/scratch.h"

namespace {

using diffeoflow::registration::Grid;
using diffeoflow::registration::Image;

// ---------------------------------------------------------------------------------------------
// The independent resampler: ITK's reading of a NIfTI and its DisplacementFieldTransform.

struct ItkImage {
  int dim = 3;                      // ITK image dimension
  std::array<long, 3> size{1, 1, 1};
  int components = 1;
  Eigen::Matrix3d index_to_point;   // LPS, dim × dim block used
  Eigen::Vector3d origin;           // LPS
  std::vector<double> values;       // component-minor: values[voxel * components + c]

  double At(const std::array<long, 3>& i, int c) const {
    return values[((i[2] * size[1] + i[1]) * size[0] + i[0]) * components + c];
  }
  // Continuous index of an ITK physical point.
  Eigen::Vector3d ContinuousIndex(const Eigen::Vector3d& p) const {
    Eigen::Matrix3d m = Eigen::Matrix3d::Identity();
    m.topLeftCorner(dim, dim) = index_to_point.topLeftCorner(dim, dim);
    Eigen::Vector3d q = p - origin;
    if (dim == 2) q[2] = 0.0;
    return m.inverse() * q;
  }
  Eigen::Vector3d Point(const Eigen::Vector3d& index) const {
    Eigen::Matrix3d m = Eigen::Matrix3d::Identity();
    m.topLeftCorner(dim, dim) = index_to_point.topLeftCorner(dim, dim);
    Eigen::Vector3d p = m * index + origin;
    if (dim == 2) p[2] = 0.0;
    return p;
  }
  bool InsideBuffer(const Eigen::Vector3d& ci) const {
    for (int d = 0; d < dim; ++d) {
      if (!(ci[d] >= -0.5 && ci[d] < size[d] - 0.5)) return false;
    }
    return true;
  }
  // Linear interpolation, neighbours beyond the buffer clamped to its last index.
  double Linear(const Eigen::Vector3d& ci, int c) const {
    std::array<long, 3> base{0, 0, 0};
    std::array<double, 3> frac{0.0, 0.0, 0.0};
    for (int d = 0; d < dim; ++d) {
      const double f = std::floor(ci[d]);
      base[d] = static_cast<long>(f);
      frac[d] = ci[d] - f;
    }
    double sum = 0.0;
    for (int corner = 0; corner < (1 << dim); ++corner) {
      double w = 1.0;
      std::array<long, 3> i{0, 0, 0};
      for (int d = 0; d < dim; ++d) {
        const int up = (corner >> d) & 1;
        w *= up ? frac[d] : 1.0 - frac[d];
        i[d] = std::clamp(base[d] + up, 0L, size[d] - 1);
      }
      sum += w * At(i, c);
    }
    return sum;
  }
};

ItkImage ReadWithNifti(const std::string& path) {
  std::unique_ptr<nifti_image, void (*)(nifti_image*)> nim(nifti_image_read(path.c_str(), 1),
                                                           nifti_image_free);
  if (!nim) throw std::runtime_error("libnifti cannot read " + path);
  ItkImage out;
  out.dim = nim->dim[0] >= 3 && nim->dim[3] > 1 ? 3 : 2;
  for (int d = 0; d < 3; ++d) out.size[d] = d < nim->dim[0] ? static_cast<long>(nim->dim[d + 1]) : 1;
  out.components = nim->dim[0] >= 5 ? static_cast<int>(nim->dim[5]) : 1;
  const nifti_dmat44& m = nim->sform_code > 0 ? nim->sto_xyz : nim->qto_xyz;
  for (int r = 0; r < 3; ++r) {
    const double flip = r < 2 ? -1.0 : 1.0;  // RAS → LPS
    for (int c = 0; c < 3; ++c) out.index_to_point(r, c) = flip * m.m[r][c];
    out.origin[r] = flip * m.m[r][3];
  }
  const long voxels = out.size[0] * out.size[1] * out.size[2];
  out.values.resize(static_cast<std::size_t>(voxels * out.components));
  // NIfTI stores component-major (vector last): all of component 0, then component 1, ...
  for (int c = 0; c < out.components; ++c) {
    for (long v = 0; v < voxels; ++v) {
      const long k = c * voxels + v;
      double value = 0.0;
      if (nim->datatype == NIFTI_TYPE_FLOAT32) {
        value = static_cast<const float*>(nim->data)[k];
      } else if (nim->datatype == NIFTI_TYPE_FLOAT64) {
        value = static_cast<const double*>(nim->data)[k];
      } else {
        throw std::runtime_error(path + ": unexpected datatype");
      }
      out.values[static_cast<std::size_t>(v * out.components + c)] = value;
    }
  }
  return out;
}

// An ITK AffineTransform_double_N_N read from its text file (LPS): x ↦ M (x − c) + c + t.
struct ItkAffine {
  Eigen::Matrix3d M = Eigen::Matrix3d::Identity();
  Eigen::Vector3d t = Eigen::Vector3d::Zero(), c = Eigen::Vector3d::Zero();
  Eigen::Vector3d Map(const Eigen::Vector3d& x) const { return M * (x - c) + c + t; }
};

std::vector<double> NumbersAfter(const std::string& line, const std::string& key) {
  std::vector<double> v;
  std::istringstream in(line.substr(key.size()));
  for (double x; in >> x;) v.push_back(x);
  return v;
}

ItkAffine ReadItkAffineText(const std::string& path, int dim) {
  std::ifstream in(path);
  std::vector<double> parameters, fixed;
  std::string type;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Transform: ", 0) == 0) type = line.substr(11);
    if (line.rfind("Parameters: ", 0) == 0) parameters = NumbersAfter(line, "Parameters: ");
    if (line.rfind("FixedParameters: ", 0) == 0) fixed = NumbersAfter(line, "FixedParameters: ");
  }
  const std::string expected = "AffineTransform_double_" + std::to_string(dim) + "_" +
                               std::to_string(dim);
  if (type != expected || parameters.size() != static_cast<std::size_t>(dim * dim + dim) ||
      fixed.size() != static_cast<std::size_t>(dim)) {
    throw std::runtime_error(path + ": not an " + expected);
  }
  ItkAffine a;
  for (int r = 0; r < dim; ++r) {
    for (int col = 0; col < dim; ++col) a.M(r, col) = parameters[r * dim + col];
    a.t[r] = parameters[dim * dim + r];
    a.c[r] = fixed[r];
  }
  return a;
}

// out(i) = moving(T(p_i)), T the warp as ITK applies it (`sign` = −1 negates the displacement,
// 0 drops it: the controls that show the comparison can fail), then `affine` when given.
std::vector<double> ItkResample(const ItkImage& reference, const ItkImage& warp,
                                const ItkImage& moving, double sign,
                                const std::optional<ItkAffine>& affine = std::nullopt) {
  std::vector<double> out;
  for (long k = 0; k < reference.size[2]; ++k) {
    for (long j = 0; j < reference.size[1]; ++j) {
      for (long i = 0; i < reference.size[0]; ++i) {
        Eigen::Vector3d p = reference.Point(Eigen::Vector3d(i, j, k));
        const Eigen::Vector3d ci = warp.ContinuousIndex(p);
        if (warp.InsideBuffer(ci)) {
          for (int c = 0; c < warp.dim; ++c) p[c] += sign * warp.Linear(ci, c);
        }
        if (affine) p = affine->Map(p);
        if (warp.dim == 2) p[2] = 0.0;
        // Outside the moving image ITK gives a default value (NaN here, left out of the
        // comparison); `register` replicates the border there.
        const Eigen::Vector3d mi = moving.ContinuousIndex(p);
        out.push_back(moving.InsideBuffer(mi) ? moving.Linear(mi, 0)
                                              : std::numeric_limits<double>::quiet_NaN());
      }
    }
  }
  return out;
}

double Correlation(const std::vector<double>& a, const std::vector<double>& b,
                   std::vector<bool> mask) {
  for (std::size_t i = 0; i < a.size(); ++i) mask[i] = mask[i] && std::isfinite(a[i]);
  double sa = 0, sb = 0, n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!mask[i]) continue;
    sa += a[i];
    sb += b[i];
    n += 1;
  }
  const double ma = sa / n, mb = sb / n;
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!mask[i]) continue;
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) * (a[i] - ma);
    bb += (b[i] - mb) * (b[i] - mb);
  }
  return ab / std::sqrt(aa * bb);
}

// ---------------------------------------------------------------------------------------------
// Cases: images defined in RAS world mm, sampled on grids of any orientation.

Eigen::Matrix3d Rotation(double degrees, const Eigen::Vector3d& axis) {
  return Eigen::AngleAxisd(degrees * M_PI / 180.0, axis.normalized()).toRotationMatrix();
}

Grid MakeGrid(int dim, int n, const Eigen::Vector3d& spacing, const Eigen::Matrix3d& direction,
              const Eigen::Vector3d& centre_mm) {
  Grid g;
  g.dim = dim;
  g.size = {n, n, dim == 3 ? n : 1};
  for (int d = 0; d < 3; ++d) g.spacing_mm[d] = spacing[d];
  g.direction = direction;
  // Origin so that the grid's centre lies at centre_mm.
  Eigen::Vector3d half((n - 1) / 2.0, (n - 1) / 2.0, dim == 3 ? (n - 1) / 2.0 : 0.0);
  const Eigen::Vector3d o = centre_mm - direction * spacing.asDiagonal() * half;
  for (int d = 0; d < 3; ++d) g.origin_mm[d] = o[d];
  return g;
}

// An ellipsoid with a bump (not symmetric under any flip), smooth edge; world coordinates in mm.
Image WorldBlob(const Grid& grid, const Eigen::Vector3d& centre, const Eigen::Vector3d& radii) {
  Image image{grid, Eigen::VectorXd(grid.voxels())};
  const int nz = grid.dim == 3 ? grid.size[2] : 1;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < grid.size[1]; ++j) {
      for (int i = 0; i < grid.size[0]; ++i) {
        Eigen::Vector3d x = grid.VoxelToPhysical(Eigen::Vector3d(i, j, k)) - centre;
        if (grid.dim == 2) x[2] = 0.0;
        const double r = x.cwiseQuotient(radii).norm();
        const Eigen::Vector3d b = x - Eigen::Vector3d(0.6 * radii[0], 0.5 * radii[1], 0.0);
        const double bump = std::exp(-b.squaredNorm() / (0.18 * radii.squaredNorm()));
        image.data[grid.index(i, j, k)] = 0.5 * (1.0 - std::tanh((r - 1.0) * 4.0)) + 0.6 * bump;
      }
    }
  }
  return image;
}

class ItkConvention : public diffeoflow::testing::ScratchTest {
 protected:
  ItkConvention() : ScratchTest("itk_convention_") {}

  // Registers moving onto fixed, writes the outputs, and compares warped.nii.gz with the ITK
  // reading of displacement.nii.gz (then affine.txt, with the affine stage) applied to
  // moving.nii.gz.
  void Check(const Grid& fixed_grid, const Grid& moving_grid, bool affine_stage = false) {
    using namespace diffeoflow::registration;
    const Eigen::Vector3d c(3.0, -4.0, 5.0);
    const bool three = fixed_grid.dim == 3;
    const Image fixed = WorldBlob(fixed_grid, c, Eigen::Vector3d(11, 8, three ? 9 : 1));
    const Image moving = WorldBlob(moving_grid, c + Eigen::Vector3d(2.0, -1.5, three ? 1.0 : 0.0),
                                   Eigen::Vector3d(9.5, 9.5, three ? 8 : 1));
    RegistrationOptions options;
    options.metric.alpha_mm2 = 16.0;
    options.levels = 1;
    options.iterations = three ? 15 : 30;
    if (!affine_stage) options.affine.mode = AffineMode::kNone;
    const RegistrationResult result = Register(moving, fixed, options);
    WriteImage(Path("moving.nii.gz"), moving);
    WriteRegistrationOutputs(dir_.string(), result, moving, fixed, ImageFormat::kNiftiGz);

    const ItkImage warp = ReadWithNifti(Path("displacement.nii.gz"));
    const ItkImage moving_itk = ReadWithNifti(Path("moving.nii.gz"));
    const ItkImage warped = ReadWithNifti(Path("warped.nii.gz"));
    ASSERT_EQ(warp.components, fixed_grid.dim);
    ASSERT_EQ(warp.dim, fixed_grid.dim);
    // Inside the object: where the fixed image or the warped one is bright, away from the border.
    std::vector<bool> mask;
    double largest = 0.0;
    for (long k = 0; k < warped.size[2]; ++k) {
      for (long j = 0; j < warped.size[1]; ++j) {
        for (long i = 0; i < warped.size[0]; ++i) {
          const std::array<long, 3> idx{i, j, k};
          bool in = warped.At(idx, 0) > 0.2 || fixed.data[fixed_grid.index(i, j, k)] > 0.2;
          mask.push_back(in);
          double norm = 0.0;
          for (int comp = 0; comp < warp.dim; ++comp) norm += std::pow(warp.At(idx, comp), 2);
          largest = std::max(largest, std::sqrt(norm));
        }
      }
    }
    const double smallest_spacing =
        std::min({fixed_grid.spacing_mm[0], fixed_grid.spacing_mm[1],
                  three ? fixed_grid.spacing_mm[2] : 1e9});
    std::optional<ItkAffine> affine;
    if (affine_stage) {
      ASSERT_TRUE(result.affine_stage_ran);
      affine = ReadItkAffineText(Path("affine.txt"), fixed_grid.dim);
    } else {
      ASSERT_GT(largest, smallest_spacing) << "the registration moved less than a voxel";
    }
    const double itk =
        Correlation(ItkResample(warped, warp, moving_itk, 1.0, affine), warped.values, mask);
    // Controls: without the warp, with it negated, without the affine.
    const double none =
        Correlation(ItkResample(warped, warp, moving_itk, 0.0, affine), warped.values, mask);
    const double negated =
        Correlation(ItkResample(warped, warp, moving_itk, -1.0, affine), warped.values, mask);
    const double without_affine =
        Correlation(ItkResample(warped, warp, moving_itk, 1.0), warped.values, mask);
    std::printf("correlation with warped.nii.gz: ITK reading 1 - %.2e, no warp %.6f, negated "
                "%.6f, without affine.txt %.6f\n",
                1.0 - itk, none, negated, without_affine);
    EXPECT_GE(itk, 0.999);
    if (affine_stage) {
      EXPECT_LT(without_affine, 0.995);  // the affine matters at this threshold
    } else {
      EXPECT_LT(none, 0.995);  // the warp matters at this threshold
      EXPECT_LT(negated, none + 1e-3);
    }

    // inverse_displacement.nii.gz, read the same way, on the moving grid (on the fixed grid with
    // an affine stage, where φ⁻¹ acts after A⁻¹): composing the two ITK transforms either way
    // gives back the point (RMS in voxels of the grid the points lie on).
    const ItkImage inverse = ReadWithNifti(Path("inverse_displacement.nii.gz"));
    ASSERT_EQ(inverse.size[0], (affine_stage ? fixed_grid : moving_grid).size[0]);
    ASSERT_EQ(inverse.components, fixed_grid.dim);
    const double forward_back = RoundTripRms(warp, inverse);
    const double back_forward = RoundTripRms(inverse, warp);
    std::printf("inverse consistency from the files: phi^-1(phi(p)) %.4f, phi(phi^-1(q)) %.4f "
                "voxel RMS\n", forward_back, back_forward);
    EXPECT_LE(forward_back, 0.1);
    EXPECT_LE(back_forward, 0.1);
  }

  // Two voxels or more from the border of the image's grid.
  static bool Interior(const ItkImage& image, const Eigen::Vector3d& index) {
    for (int d = 0; d < image.dim; ++d) {
      if (!(index[d] >= 2.0 && index[d] <= image.size[d] - 3.0)) return false;
    }
    return true;
  }

  // RMS over the voxels p of `first`'s grid (in the interior of both grids, mapped into second's
  // buffer) of
  // |second(first(p)) − p| in voxels of first's grid.
  static double RoundTripRms(const ItkImage& first, const ItkImage& second) {
    double squares = 0.0;
    long count = 0;
    for (long k = 0; k < first.size[2]; ++k) {
      for (long j = 0; j < first.size[1]; ++j) {
        for (long i = 0; i < first.size[0]; ++i) {
          const Eigen::Vector3d index(i, j, k);
          const Eigen::Vector3d p = first.Point(index);
          if (!Interior(first, index) || !Interior(second, second.ContinuousIndex(p))) continue;
          Eigen::Vector3d q = p;
          for (int c = 0; c < first.dim; ++c) q[c] += first.At({i, j, k}, c);
          const Eigen::Vector3d ci = second.ContinuousIndex(q);
          if (!second.InsideBuffer(ci)) continue;
          for (int c = 0; c < second.dim; ++c) q[c] += second.Linear(ci, c);
          squares += (first.ContinuousIndex(q) - index).squaredNorm();
          ++count;
        }
      }
    }
    return std::sqrt(squares / static_cast<double>(count));
  }
};

TEST_F(ItkConvention, TwoDimensional) {
  const Grid fixed = MakeGrid(2, 40, Eigen::Vector3d(1, 1, 1), Eigen::Matrix3d::Identity(),
                              Eigen::Vector3d(3, -4, 0));
  const Grid moving = MakeGrid(2, 44, Eigen::Vector3d(0.9, 0.9, 1), Eigen::Matrix3d::Identity(),
                               Eigen::Vector3d(4, -3, 0));
  Check(fixed, moving);
}

TEST_F(ItkConvention, TwoDimensionalFlippedAndAnisotropic) {
  // Axis 1 runs posterior (y flipped), voxels 1.2 × 0.8 mm; the moving image on a plain grid.
  Check(MakeGrid(2, 36, Eigen::Vector3d(1.2, 0.8, 1), Eigen::Vector3d(1, -1, 1).asDiagonal(),
                 Eigen::Vector3d(3, -4, 0)),
        MakeGrid(2, 40, Eigen::Vector3d::Ones(), Eigen::Matrix3d::Identity(),
                 Eigen::Vector3d(3, -4, 0)));
}

TEST_F(ItkConvention, Ras) {
  const Grid fixed = MakeGrid(3, 24, Eigen::Vector3d(1, 1, 1), Eigen::Matrix3d::Identity(),
                              Eigen::Vector3d(3, -4, 5));
  Check(fixed, fixed);
}

TEST_F(ItkConvention, LasWithOtherVoxelSize) {
  // Axis 0 runs left (LAS), voxels 1.1 × 0.9 × 1.2 mm; the moving image RAS, 1 mm, shifted.
  const Eigen::Matrix3d las = Eigen::Vector3d(-1, 1, 1).asDiagonal();
  Check(MakeGrid(3, 22, Eigen::Vector3d(1.1, 0.9, 1.2), las, Eigen::Vector3d(3, -4, 5)),
        MakeGrid(3, 24, Eigen::Vector3d::Ones(), Eigen::Matrix3d::Identity(),
                 Eigen::Vector3d(2, -3, 5)));
}

TEST_F(ItkConvention, Oblique) {
  const Grid fixed = MakeGrid(3, 24, Eigen::Vector3d(1, 1, 1),
                              Rotation(25.0, Eigen::Vector3d(1, 2, 3)), Eigen::Vector3d(3, -4, 5));
  const Grid moving = MakeGrid(3, 24, Eigen::Vector3d(1.05, 1.05, 1.05),
                               Rotation(-10.0, Eigen::Vector3d(0, 1, 1)), Eigen::Vector3d(3, -4, 5));
  Check(fixed, moving);
}

// With the affine stage (the default): displacement.nii.gz then affine.txt, as ANTs chains them.
TEST_F(ItkConvention, TwoDimensionalFlippedWithAffineStage) {
  Check(MakeGrid(2, 36, Eigen::Vector3d(1.2, 0.8, 1), Eigen::Vector3d(1, -1, 1).asDiagonal(),
                 Eigen::Vector3d(3, -4, 0)),
        MakeGrid(2, 40, Eigen::Vector3d::Ones(), Eigen::Matrix3d::Identity(),
                 Eigen::Vector3d(3, -4, 0)),
        true);
}

TEST_F(ItkConvention, ObliqueWithAffineStage) {
  Check(MakeGrid(3, 24, Eigen::Vector3d(1, 1, 1), Rotation(25.0, Eigen::Vector3d(1, 2, 3)),
                 Eigen::Vector3d(3, -4, 5)),
        MakeGrid(3, 24, Eigen::Vector3d(1.05, 1.05, 1.05),
                 Rotation(-10.0, Eigen::Vector3d(0, 1, 1)), Eigen::Vector3d(3, -4, 5)),
        true);
}

}  // namespace
