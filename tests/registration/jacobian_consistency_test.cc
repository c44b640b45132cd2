// What `register` writes must agree with itself: jacobian.nii.gz is det Dφ of φ(x) = x + u(x) for
// the u in displacement.nii.gz. The file holds the determinant carried along the flow
// (exp ∫ div v, traced_map.h); here it is recomputed from the displacement file independently,
// ∇u by central differences in mm inside, one-sided at the borders, on an anisotropic grid so that
// physical units matter. The two agree to the differences' truncation error, which the bounds
// below leave room for (a wrong unit, axis or sign errs by the size of det − 1 itself).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "registration/displacement_file.h"
#include "registration/image_io.h"
#include "registration/outputs/register_outputs.h"
#include "registration/register.h"
#include "tests/scratch.h"

namespace diffeoflow::registration {
namespace {

Image Blob(int nx, int ny, double cx, double cy, double rx, double ry) {
  Image image;
  image.grid.dim = 2;
  image.grid.size = {nx, ny, 1};
  image.grid.spacing_mm = {1.5, 0.75, 1.0};
  image.data.resize(image.grid.voxels());
  for (int j = 0; j < ny; ++j) {
    for (int i = 0; i < nx; ++i) {
      const double r = std::hypot((i - cx) / rx, (j - cy) / ry);
      image.data[image.grid.index(i, j)] = 0.5 * (1.0 - std::tanh((r - 1.0) * 4.0));
    }
  }
  return image;
}

// ∂f/∂x_d at voxel (i, j) in mm: central inside, one-sided at the borders.
double Partial(const Eigen::VectorXd& f, const Grid& g, int i, int j, int d) {
  const int n = g.size[d], p = d == 0 ? i : j;
  const double h = g.spacing_mm[d];
  auto at = [&](int q) { return d == 0 ? f[g.index(q, j)] : f[g.index(i, q)]; };
  if (p == 0) return (at(1) - at(0)) / h;
  if (p == n - 1) return (at(n - 1) - at(n - 2)) / h;
  return (at(p + 1) - at(p - 1)) / (2.0 * h);
}

class JacobianConsistency : public diffeoflow::testing::ScratchTest {
 protected:
  JacobianConsistency() : ScratchTest("jacobian_consistency_") {}
};

TEST_F(JacobianConsistency, JacobianFileIsDeterminantOfDisplacementFile) {
  const Image fixed = Blob(28, 40, 13.0, 20.0, 6.0, 10.0);
  const Image moving = Blob(28, 40, 15.0, 18.0, 5.0, 12.0);
  RegistrationOptions options;
  options.metric.alpha_mm2 = 9.0;
  options.sigma = 0.02;
  options.levels = 1;
  options.iterations = 25;
  options.time_steps = 5;
  // The deformable stage alone: these tests measure φ (an affine stage would take the
  // translation or warp's affine part; its tests are affine_test.cc).
  options.affine.mode = AffineMode::kNone;

  const RegistrationResult result = Register(moving, fixed, options);
  WriteRegistrationOutputs(dir_.string(), result, moving, fixed, ImageFormat::kNiftiGz);

  const Image jacobian = ReadImage(Path("jacobian.nii.gz"));
  const VectorField u = ReadDisplacementFile(Path("displacement.nii.gz"));
  const Grid& g = u.grid;
  ASSERT_TRUE(g.SameShape(jacobian.grid));
  ASSERT_DOUBLE_EQ(g.spacing_mm[0], 1.5);
  ASSERT_DOUBLE_EQ(g.spacing_mm[1], 0.75);
  const Eigen::VectorXd ux = u.component(0), uy = u.component(1);
  // A non-trivial map, so that the comparison can fail.
  ASSERT_GT(u.data.cwiseAbs().maxCoeff(), 0.5);
  ASSERT_GT(jacobian.data.maxCoeff() - jacobian.data.minCoeff(), 0.05);

  double interior_error = 0.0, border_error = 0.0, interior_square = 0.0;
  long interior_count = 0;
  for (int j = 0; j < g.size[1]; ++j) {
    for (int i = 0; i < g.size[0]; ++i) {
      const double a = 1.0 + Partial(ux, g, i, j, 0), b = Partial(ux, g, i, j, 1);
      const double c = Partial(uy, g, i, j, 0), d = 1.0 + Partial(uy, g, i, j, 1);
      const double error = std::abs(a * d - b * c - jacobian.data[g.index(i, j)]);
      const bool border = i == 0 || j == 0 || i == g.size[0] - 1 || j == g.size[1] - 1;
      (border ? border_error : interior_error) = std::max(border ? border_error : interior_error, error);
      if (!border) {
        interior_square += error * error;
        ++interior_count;
      }
    }
  }
  const double variation = (jacobian.data.array() - 1.0).abs().maxCoeff();
  const double interior_rms = std::sqrt(interior_square / interior_count);
  std::printf("det Dphi - 1 up to %.4f; |carried - finite differences| max %.2e (rms %.2e) "
              "inside, %.2e border\n", variation, interior_error, interior_rms, border_error);
  EXPECT_LT(interior_rms, 0.03 * variation);
  EXPECT_LT(interior_error, 0.15 * variation);
  EXPECT_LT(border_error, 0.3 * variation);
}

}  // namespace
}  // namespace diffeoflow::registration
