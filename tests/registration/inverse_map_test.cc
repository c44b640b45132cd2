// The inverse map of a registration (RegistrationResult::inverse_displacement, traced backward
// through the recorded velocities): φ⁻¹ ∘ φ and φ ∘ φ⁻¹ are the identity to 0.1 voxel RMS inside
// the image, for real registrations in 2-D and 3-D, with the inverse on the moving image's grid.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "registration/image_ops.h"
#include "registration/register.h"
#include "tests/registration/test_images.h"

namespace {

using namespace diffeoflow::registration;

// Both compositions, in voxels: forward_back over fixed voxels x with φ(x) inside the fixed grid
// (|φ⁻¹(φ(x)) − x|, fixed voxels), back_forward over moving-grid voxels y whose world point lies
// inside the fixed grid (|φ(φ⁻¹(s)) − s|, s = A_fixed⁻¹(A_moving(y)), fixed voxels).
struct Consistency {
  double forward_back = 0.0, back_forward = 0.0;
  long forward_count = 0, back_count = 0;
};

Consistency Measure(const RegistrationResult& r) {
  const Grid& fixed = r.grid;
  const Grid& inv = r.inverse_displacement.grid;
  const int dim = fixed.dim;
  const Eigen::Index nf = fixed.voxels(), ni = inv.voxels();
  // φ⁻¹ on the inverse grid as fixed voxel coordinates of the mapped points.
  Eigen::VectorXd inverse_positions(dim * ni);
  auto inside = [&](const Eigen::Vector3d& s) {
    for (int a = 0; a < dim; ++a) {
      if (!(s[a] >= 0.0 && s[a] <= fixed.size[a] - 1.0)) return false;
    }
    return true;
  };
  Consistency c;
  for (Eigen::Index y = 0; y < ni; ++y) {
    const int i = static_cast<int>(y % inv.size[0]);
    const int j = static_cast<int>((y / inv.size[0]) % inv.size[1]);
    const int k = static_cast<int>(y / (static_cast<Eigen::Index>(inv.size[0]) * inv.size[1]));
    const Eigen::Vector3d q = inv.VoxelToPhysical(Eigen::Vector3d(i, j, k));
    Eigen::Vector3d u = Eigen::Vector3d::Zero();
    for (int a = 0; a < dim; ++a) u[a] = r.inverse_displacement.data[a * ni + y];
    Eigen::Vector3d world = inv.direction * u;
    if (dim == 2) world[2] = 0.0;
    const Eigen::Vector3d s = fixed.PhysicalToVoxel(q);
    const Eigen::Vector3d back = fixed.PhysicalToVoxel(q + world);
    for (int a = 0; a < dim; ++a) inverse_positions[a * ni + y] = back[a];
    if (!inside(s)) continue;
    double e2 = 0.0;
    for (int a = 0; a < dim; ++a) {
      const double there = SampleLinear(fixed, r.phi.data() + a * nf, back[0], back[1], back[2]);
      e2 += (there - s[a]) * (there - s[a]);
    }
    c.back_forward += e2;
    ++c.back_count;
  }
  for (Eigen::Index x = 0; x < nf; ++x) {
    Eigen::Vector3d p = Eigen::Vector3d::Zero();
    for (int a = 0; a < dim; ++a) p[a] = r.phi[a * nf + x];
    if (!inside(p)) continue;
    // φ(x) as a point of the inverse grid.
    const Eigen::Vector3d yi = inv.PhysicalToVoxel(fixed.VoxelToPhysical(p));
    const int i = static_cast<int>(x % fixed.size[0]);
    const int j = static_cast<int>((x / fixed.size[0]) % fixed.size[1]);
    const int k = static_cast<int>(x / (static_cast<Eigen::Index>(fixed.size[0]) * fixed.size[1]));
    const double id[3] = {double(i), double(j), double(k)};
    double e2 = 0.0;
    for (int a = 0; a < dim; ++a) {
      const double there =
          SampleLinear(inv, inverse_positions.data() + a * ni, yi[0], yi[1], yi[2]);
      e2 += (there - id[a]) * (there - id[a]);
    }
    c.forward_back += e2;
    ++c.forward_count;
  }
  c.forward_back = std::sqrt(c.forward_back / static_cast<double>(c.forward_count));
  c.back_forward = std::sqrt(c.back_forward / static_cast<double>(c.back_count));
  return c;
}

// max over voxels of |u(x)| in voxels (components are mm along the axes).
double LargestDisplacementVoxels(const RegistrationResult& r) {
  const int dim = r.grid.dim;
  Eigen::MatrixXd u = Eigen::Map<const Eigen::MatrixXd>(r.displacement.data.data(),
                                                        r.grid.voxels(), dim);
  for (int a = 0; a < dim; ++a) u.col(a) /= r.grid.spacing_mm[a];
  return u.rowwise().norm().maxCoeff();
}

TEST(InverseMap, TwoDimensionalCShapeBothWays) {
  const WarpedPair pair = diffeoflow::testing::SmallWarpedCPair();
  RegistrationOptions options;
  options.levels = 2;
  options.iterations = 40;
  options.metric.alpha_mm2 = 16.0;
  options.affine.mode = AffineMode::kNone;  // the deformable map alone
  const RegistrationResult r = Register(pair.warped, pair.original, options);
  ASSERT_TRUE(r.inverse_displacement.grid.SameShape(r.grid));
  ASSERT_GT(LargestDisplacementVoxels(r), 1.5) << "a map that barely moves proves nothing";
  const Consistency c = Measure(r);
  std::printf("2-D: phi^-1(phi) %.4f, phi(phi^-1) %.4f voxel RMS (%ld, %ld points); metrics %.4f; "
              "inverse %.3f s\n",
              c.forward_back, c.back_forward, c.forward_count, c.back_count,
              r.inverse_consistency_rms_voxels, r.inverse_seconds);
  EXPECT_GT(c.forward_count, r.grid.voxels() / 2);
  EXPECT_LE(c.forward_back, 0.1);
  EXPECT_LE(c.back_forward, 0.1);
  EXPECT_NEAR(r.inverse_consistency_rms_voxels, c.back_forward, 1e-9);
  // The inverse really inverts: the identity in its place would not pass.
  RegistrationResult identity = r;
  identity.inverse_displacement.data.setZero();
  EXPECT_GT(Measure(identity).back_forward, 0.5);
}

TEST(InverseMap, ThreeDimensionalOnTheMovingGrid) {
  // Fixed: an ellipsoid on a 24³ grid; moving: a shifted, rounder one on a 22³ grid of 1.15 mm
  // voxels in another place, so the inverse lies on a grid of its own.
  Grid fixed_grid;
  fixed_grid.dim = 3;
  fixed_grid.size = {24, 24, 24};
  Grid moving_grid = fixed_grid;
  moving_grid.size = {22, 22, 22};
  moving_grid.spacing_mm = {1.15, 1.15, 1.15};
  moving_grid.origin_mm = {-0.8, 0.4, -0.5};
  auto blob = [](const Grid& g, const Eigen::Vector3d& c, const Eigen::Vector3d& radii) {
    Image image{g, Eigen::VectorXd(g.voxels())};
    for (int k = 0; k < g.size[2]; ++k)
      for (int j = 0; j < g.size[1]; ++j)
        for (int i = 0; i < g.size[0]; ++i) {
          const Eigen::Vector3d x = g.VoxelToPhysical(Eigen::Vector3d(i, j, k)) - c;
          image.data[g.index(i, j, k)] =
              0.5 * (1.0 - std::tanh((x.cwiseQuotient(radii).norm() - 1.0) * 4.0));
        }
    return image;
  };
  const Image fixed = blob(fixed_grid, Eigen::Vector3d(11.5, 11.5, 11.5), Eigen::Vector3d(7, 5, 6));
  const Image moving =
      blob(moving_grid, Eigen::Vector3d(12.5, 11, 12), Eigen::Vector3d(6, 6, 6));
  RegistrationOptions options;
  options.levels = 1;
  options.iterations = 30;
  options.metric.alpha_mm2 = 16.0;
  options.affine.mode = AffineMode::kNone;  // the deformable map alone
  const RegistrationResult r = Register(moving, fixed, options);
  ASSERT_EQ(r.inverse_displacement.grid.size, moving_grid.size);
  ASSERT_GT(LargestDisplacementVoxels(r), 1.0);
  const Consistency c = Measure(r);
  std::printf("3-D: phi^-1(phi) %.4f, phi(phi^-1) %.4f voxel RMS (%ld, %ld points); inverse "
              "%.3f s\n",
              c.forward_back, c.back_forward, c.forward_count, c.back_count, r.inverse_seconds);
  EXPECT_LE(c.forward_back, 0.1);
  EXPECT_LE(c.back_forward, 0.1);
}

}  // namespace
