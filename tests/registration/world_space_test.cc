// World space (world_space.h): a moving image on another grid — another size, voxel size, origin,
// a flipped axis, an oblique direction — is resampled into the fixed image's world through both
// affines; Register does it itself; pairs that do not overlap are refused; maps carry images on
// any grid through world coordinates.
#include "registration/world_space.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numbers>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Geometry>

#include "registration/flow_problem.h"
#include "registration/image_ops.h"
#include "registration/register.h"
#include "solvers/errors.h"
#include "solvers/gradient_check.h"

namespace diffeoflow::registration {
namespace {

using WorldFunction = std::function<double(const Eigen::Vector3d&)>;

// A function linear in world mm: linear interpolation reproduces it exactly, and the cubic
// B-spline away from the border, so any error in an affine (a flip, an origin, a spacing, a
// rotation) shows up far above round-off.
double Linear(const Eigen::Vector3d& p) { return 0.2 + 0.011 * p[0] - 0.017 * p[1] + 0.013 * p[2]; }

// A smooth nonlinear function, ‖∇²f‖ ≤ 0.049 (Frobenius). Multilinear interpolation on voxels of
// sides h_d errs by at most Σ_d (h_d²/8)·max|∂²f/∂u_d²| ≤ (Σ_d h_d²/8)·0.049 along any grid axes:
// 0.015 for the 2-D grids below (Σ h² ≤ 2.42 mm²), 0.032 for the 3-D one (5.21 mm²).
double Smooth(const Eigen::Vector3d& p) {
  return std::sin(p[0] / 6.0) * std::cos(p[1] / 7.0) + 0.5 * std::sin(p[2] / 8.0);
}

Grid MakeGrid(int dim, std::array<int, 3> size, std::array<double, 3> spacing,
              std::array<double, 3> origin, const Eigen::Matrix3d& direction) {
  Grid g;
  g.dim = dim;
  g.size = size;
  g.spacing_mm = spacing;
  g.origin_mm = origin;
  g.direction = direction;
  return g;
}

Image Sampled(const Grid& grid, const WorldFunction& f) {
  Image image{grid, Eigen::VectorXd(grid.voxels())};
  const int nz = grid.dim == 3 ? grid.size[2] : 1;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < grid.size[1]; ++j) {
      for (int i = 0; i < grid.size[0]; ++i) {
        image.data[grid.index(i, j, k)] = f(grid.VoxelToPhysical(Eigen::Vector3d(i, j, k)));
      }
    }
  }
  return image;
}

Eigen::Matrix3d RotationZ(double degrees) {
  return Eigen::AngleAxisd(degrees * std::numbers::pi / 180.0, Eigen::Vector3d::UnitZ())
      .toRotationMatrix();
}

Eigen::Matrix3d FlipX() { return Eigen::Vector3d(-1.0, 1.0, 1.0).asDiagonal(); }

// The fixed grid of the 2-D cases: 40 × 40 voxels of 1 mm, RAS, origin (−20, −20).
Grid Fixed2d() {
  return MakeGrid(2, {40, 40, 1}, {1.0, 1.0, 1.0}, {-20.0, -20.0, 0.0},
                  Eigen::Matrix3d::Identity());
}

struct GridCase {
  std::string name;
  Grid moving;
  std::string difference;  // expected in the note
};

std::vector<GridCase> Cases2d() {
  const Eigen::Matrix3d I = Eigen::Matrix3d::Identity();
  return {
      {"size", MakeGrid(2, {48, 36, 1}, {1.0, 1.0, 1.0}, {-24.0, -15.0, 0.0}, I),
       "size 48x36 vs 40x40"},
      {"spacing", MakeGrid(2, {34, 52, 1}, {1.25, 0.8, 1.0}, {-21.0, -20.4, 0.0}, I),
       "spacing 1.25x0.8 vs 1x1 mm"},
      // Shifted by 7.5 mm, 4.25 mm: part of the fixed field of view is not covered.
      {"origin", MakeGrid(2, {40, 40, 1}, {1.0, 1.0, 1.0}, {-12.5, -24.25, 0.0}, I),
       "origin (-12.5, -24.25) vs (-20, -20) mm"},
      // LAS: axis 0 runs to the left, so voxel 0 is at the right edge.
      {"flipped", MakeGrid(2, {44, 40, 1}, {1.0, 1.0, 1.0}, {21.0, -20.0, 0.0}, FlipX()),
       "orientation LA vs RA"},
      {"oblique", MakeGrid(2, {46, 46, 1}, {1.1, 1.1, 1.0}, {-15.3, -32.2, 0.0}, RotationZ(20.0)),
       "direction rotated by 20 degrees"},
  };
}

// Checks the moving image resampled onto `fixed` against f at the fixed world points: exact (to
// `tolerance`) where the point lies within the moving voxel centres at least `margin` voxels from
// the outermost ones, the moving image's background outside its field of view. Returns the share
// of fixed voxels checked against f.
double ExpectMatchesAtFixedPoints(const Image& resampled, const Image& moving, const Grid& fixed,
                                  const WorldFunction& f, double tolerance, double margin = 0.0) {
  EXPECT_TRUE(SameWorldGrid(resampled.grid, fixed));
  const double background = BackgroundValue(moving);
  const int nz = fixed.dim == 3 ? fixed.size[2] : 1;
  long interior = 0, outside = 0;
  double worst = 0.0;
  for (int k = 0; k < nz; ++k) {
    for (int j = 0; j < fixed.size[1]; ++j) {
      for (int i = 0; i < fixed.size[0]; ++i) {
        const Eigen::Vector3d p = fixed.VoxelToPhysical(Eigen::Vector3d(i, j, k));
        const Eigen::Vector3d q = moving.grid.PhysicalToVoxel(p);
        bool within = true, beyond = false;
        for (int d = 0; d < fixed.dim; ++d) {
          within = within && q[d] >= margin && q[d] <= moving.grid.size[d] - 1.0 - margin;
          beyond = beyond || q[d] < -0.5 - 1e-3 || q[d] > moving.grid.size[d] - 0.5 + 1e-3;
        }
        const double value = resampled.data[fixed.index(i, j, k)];
        if (within) {
          worst = std::max(worst, std::abs(value - f(p)));
          ++interior;
        } else if (beyond) {
          EXPECT_EQ(value, background) << "voxel " << i << ", " << j << ", " << k;
          ++outside;
        }
      }
    }
  }
  EXPECT_LE(worst, tolerance);
  return static_cast<double>(interior) / static_cast<double>(fixed.voxels());
}

TEST(WorldSpace, SameWorldGridAbsorbsFloatRoundingOnly) {
  const Grid g = MakeGrid(3, {10, 12, 8}, {0.9, 1.1, 2.5}, {-90.3, 12.7, 40.0}, RotationZ(7.0));
  EXPECT_TRUE(SameWorldGrid(g, g));
  Grid h = g;
  h.origin_mm[1] += 5e-5;
  h.spacing_mm[0] *= 1.0 + 1e-7;
  h.direction(0, 1) += 1e-7;
  EXPECT_TRUE(SameWorldGrid(g, h));
  EXPECT_TRUE(GridDifferences(h, g).empty());
  h = g;
  h.origin_mm[2] += 2e-4;
  EXPECT_FALSE(SameWorldGrid(g, h));
  h = g;
  h.spacing_mm[2] *= 1.0 + 1e-5;
  EXPECT_FALSE(SameWorldGrid(g, h));
  h = g;
  h.size[0] = 11;
  EXPECT_FALSE(SameWorldGrid(g, h));
  // A float32 round trip of the affine (what NIfTI stores) keeps the grid the same.
  h = g;
  for (int d = 0; d < 3; ++d) {
    h.spacing_mm[d] = static_cast<float>(h.spacing_mm[d]);
    h.origin_mm[d] = static_cast<float>(h.origin_mm[d]);
  }
  h.direction = g.direction.cast<float>().cast<double>();
  EXPECT_TRUE(SameWorldGrid(g, h));

  // In 2-D the third axis (slice thickness, normal) does not place any voxel.
  Grid a = Fixed2d(), b = Fixed2d();
  b.spacing_mm[2] = 3.0;
  b.direction(2, 2) = -1.0;
  EXPECT_TRUE(SameWorldGrid(a, b));
}

TEST(WorldSpace, OrientationCodesAndBoundingBoxes) {
  EXPECT_EQ(
      OrientationCode(MakeGrid(3, {2, 2, 2}, {1, 1, 1}, {0, 0, 0}, Eigen::Matrix3d::Identity())),
      "RAS");
  EXPECT_EQ(OrientationCode(MakeGrid(3, {2, 2, 2}, {1, 1, 1}, {0, 0, 0}, FlipX())), "LAS");
  Eigen::Matrix3d lps = Eigen::Vector3d(-1.0, -1.0, 1.0).asDiagonal();
  EXPECT_EQ(OrientationCode(MakeGrid(3, {2, 2, 2}, {1, 1, 1}, {0, 0, 0}, lps)), "LPS");
  Eigen::Matrix3d coronal;
  coronal << 1, 0, 0, 0, 0, -1, 0, 1, 0;  // columns: axis 1 runs superior, axis 2 posterior
  EXPECT_EQ(OrientationCode(MakeGrid(3, {2, 2, 2}, {1, 1, 1}, {0, 0, 0}, coronal)), "RSP");

  // LAS, 1.5 mm: voxel 0 at x = 21 mm, the field of view reaches half a voxel beyond the centres.
  const Grid g = MakeGrid(3, {10, 4, 2}, {1.5, 2.0, 3.0}, {21.0, -3.0, 5.0}, FlipX());
  const WorldBox box = WorldBoundingBox(g);
  EXPECT_NEAR(box.upper[0], 21.75, 1e-12);
  EXPECT_NEAR(box.lower[0], 21.0 - 9.5 * 1.5, 1e-12);
  EXPECT_NEAR(box.lower[1], -4.0, 1e-12);
  EXPECT_NEAR(box.upper[1], 4.0, 1e-12);
  EXPECT_NEAR(box.lower[2], 3.5, 1e-12);
  EXPECT_NEAR(box.upper[2], 9.5, 1e-12);
  EXPECT_EQ(WorldBoxText(box, 3), "[6.75, 21.75] x [-4, 4] x [3.5, 9.5] mm");
}

TEST(WorldSpace, BackgroundIsTheMedianOfTheOutermostVoxels) {
  Image image{MakeGrid(2, {6, 5, 1}, {1, 1, 1}, {0, 0, 0}, Eigen::Matrix3d::Identity()),
              Eigen::VectorXd::Constant(30, 100.0)};
  // 18 border voxels: 10 at 3, 8 at 7 (interior 100): the median is 3.
  int k = 0;
  for (int j = 0; j < 5; ++j) {
    for (int i = 0; i < 6; ++i) {
      if (i == 0 || j == 0 || i == 5 || j == 4)
        image.data[image.grid.index(i, j)] = k++ < 10 ? 3.0 : 7.0;
    }
  }
  EXPECT_EQ(BackgroundValue(image), 3.0);
}

// What MovingInFixedSpace's cubic B-spline must reproduce: (f, tolerance, margin in voxels).
// - The linear function away from the border: the B-spline reproduces it there up to the mirror
//   boundary's influence, which decays as (2 − √3)^distance (1e-7 at 8 voxels, 1e-5 at 5 in the
//   small 3-D grid). A wrong affine (0.1 voxel anywhere) shows up as 1e-3 or more.
// - The smooth function 2 voxels in: 0.001–0.0024 measured, 4× below linear interpolation's bound.
// - Everywhere within the voxel centres: the mirror boundary costs accuracy in the outermost
//   voxels (0.025 measured on the oblique 2-D grid, 0.029 in 3-D, against linear's 0.015 and
//   0.032 bounds).
struct Check {
  WorldFunction f;
  double tolerance;
  double margin;
};
std::vector<Check> Checks2d() {
  return {{Linear, 1e-6, 8.0}, {Smooth, 0.004, 2.0}, {Smooth, 0.03, 0.0}};
}
std::vector<Check> Checks3d() {
  return {{Linear, 1e-4, 5.0}, {Smooth, 0.004, 2.0}, {Smooth, 0.035, 0.0}};
}

class WorldResampling2d : public ::testing::TestWithParam<int> {};

TEST_P(WorldResampling2d, MovingOnAnotherGridMatchesTheFunctionAtFixedWorldPoints) {
  const GridCase c = Cases2d()[GetParam()];
  SCOPED_TRACE(c.name);
  const Grid fixed_grid = Fixed2d();
  const Image fixed = Sampled(fixed_grid, Linear);
  for (const auto& [f, tolerance, margin] : Checks2d()) {
    const Image moving = Sampled(c.moving, f);
    const MovingInFixedSpace in_fixed(moving, fixed);
    ASSERT_TRUE(in_fixed.resampled());
    EXPECT_NE(in_fixed.note().find(c.difference), std::string::npos) << in_fixed.note();
    EXPECT_NE(in_fixed.note().find("resampled"), std::string::npos) << in_fixed.note();
    const double covered =
        ExpectMatchesAtFixedPoints(in_fixed.image(), moving, fixed_grid, f, tolerance, margin);
    EXPECT_GT(covered, margin > 0 ? 0.2 : 0.6);
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, WorldResampling2d, ::testing::Range(0, 5),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return Cases2d()[info.param].name;
                         });

TEST(WorldSpace, ObliqueFlippedAnisotropic3dMovingMatchesTheFunction) {
  const Grid fixed_grid =
      MakeGrid(3, {16, 14, 12}, {1.5, 1.5, 1.5}, {-11.0, -10.0, -8.0}, Eigen::Matrix3d::Identity());
  // 20° about an oblique axis, axis 0 flipped; anisotropic voxels, another size and origin.
  const Eigen::Matrix3d direction =
      Eigen::AngleAxisd(20.0 * std::numbers::pi / 180.0, Eigen::Vector3d(1, 2, 2).normalized())
          .toRotationMatrix() *
      FlipX();
  Grid moving_grid = MakeGrid(3, {26, 24, 14}, {1.1, 1.2, 1.6}, {0.0, 0.0, 0.0}, direction);
  // Centred 1.3, −0.7, 0.9 mm off the fixed grid's centre.
  const Eigen::Vector3d centre =
      fixed_grid.VoxelToPhysical(Eigen::Vector3d(7.5, 6.5, 5.5)) + Eigen::Vector3d(1.3, -0.7, 0.9);
  const Eigen::Vector3d origin =
      centre - moving_grid.VoxelToPhysical(Eigen::Vector3d(12.5, 11.5, 6.5));
  moving_grid.origin_mm = {origin[0], origin[1], origin[2]};
  const Image fixed = Sampled(fixed_grid, Linear);
  for (const auto& [f, tolerance, margin] : Checks3d()) {
    const Image moving = Sampled(moving_grid, f);
    const MovingInFixedSpace in_fixed(moving, fixed);
    ASSERT_TRUE(in_fixed.resampled());
    EXPECT_NE(in_fixed.note().find("orientation LAS vs RAS"), std::string::npos) << in_fixed.note();
    const double covered =
        ExpectMatchesAtFixedPoints(in_fixed.image(), moving, fixed_grid, f, tolerance, margin);
    EXPECT_GT(covered, margin > 0 ? 0.1 : 0.4);
  }
}

TEST(WorldSpace, IdenticalGridsAreNotResampled) {
  const Image fixed = Sampled(Fixed2d(), Smooth);
  Image moving = Sampled(Fixed2d(), Linear);
  moving.grid.origin_mm[0] += 1e-5;  // float rounding of a header
  const MovingInFixedSpace in_fixed(moving, fixed);
  EXPECT_FALSE(in_fixed.resampled());
  EXPECT_TRUE(in_fixed.note().empty());
  EXPECT_EQ(&in_fixed.image(), &moving);
}

TEST(WorldSpace, PairsThatDoNotOverlapAreRefusedNamingBothAndTheirBoxes) {
  const Grid fixed = Fixed2d();
  Grid half = fixed;
  half.origin_mm[0] += 20.0;
  EXPECT_NEAR(WorldOverlapFraction(half, fixed), 0.5, 1e-12);
  Grid sliver = fixed;
  sliver.origin_mm[0] += 38.0;  // covers 2 of 40 columns: 5 %
  EXPECT_NO_THROW(CheckWorldOverlap(sliver, fixed));
  sliver.origin_mm[0] += 1.0;  // 2.5 %
  EXPECT_THROW(CheckWorldOverlap(sliver, fixed), InputError);
  Grid far = fixed;
  far.origin_mm = {1000.0, 1000.0, 0.0};
  EXPECT_EQ(WorldOverlapFraction(far, fixed), 0.0);
  try {
    CheckWorldOverlap(far, fixed, "--moving m.nii.gz", "--fixed f.nii.gz");
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    const std::string m = e.what();
    for (const char* needle : {"--moving m.nii.gz", "--fixed f.nii.gz", "do not overlap",
                               "[999.5, 1039.5] x "
                               "[999.5, 1039.5] mm",
                               "[-20.5, 19.5] x [-20.5, 19.5] mm", "5%"}) {
      EXPECT_NE(m.find(needle), std::string::npos) << needle << " in: " << m;
    }
  }
  // Register refuses them as well, naming the flags.
  const Image fixed_image = Sampled(fixed, Smooth);
  const Image moving_image = Sampled(far, Smooth);
  RegistrationOptions options;
  options.levels = 1;
  options.iterations = 1;
  try {
    Register(moving_image, fixed_image, options);
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--moving"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--fixed"), std::string::npos) << e.what();
  }
  // Another dimension: refused with both sizes.
  const Grid volume =
      MakeGrid(3, {40, 40, 4}, {1, 1, 1}, {-20, -20, 0}, Eigen::Matrix3d::Identity());
  try {
    CheckWorldOverlap(volume, fixed);
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("40x40x4"), std::string::npos) << e.what();
  }
}

// A disc of radius 8 mm with a smooth edge, centred at (1, −2) mm.
double Disc(const Eigen::Vector3d& p) {
  return 0.5 * (1.0 - std::tanh((std::hypot(p[0] - 1.0, p[1] + 2.0) - 8.0) / 2.0));
}

RegistrationOptions FewIterations() {
  RegistrationOptions options;
  options.metric.alpha_mm2 = 9.0;
  options.sigma = 0.02;
  options.levels = 1;
  options.iterations = 5;
  options.time_steps = 3;
  // The deformable stage's world space (the affine stage's: affine_test.cc and the check at the
  // end of IdenticalGridsRegisterBitForBitAsBefore).
  options.affine.mode = AffineMode::kNone;
  return options;
}

TEST(WorldSpace, RegisterResamplesAMovingImageOnAnotherGridItself) {
  const Grid fixed_grid =
      MakeGrid(2, {32, 32, 1}, {1.0, 1.0, 1.0}, {-15.5, -15.5, 0.0}, Eigen::Matrix3d::Identity());
  const Image fixed = Sampled(fixed_grid, Disc);
  // The same disc, written LAS (origin at the other edge) on 1.25 mm voxels of another size.
  const Grid moving_grid = MakeGrid(2, {28, 26, 1}, {1.25, 1.25, 1.0}, {17.0, -16.0, 0.0}, FlipX());
  const Image moving = Sampled(moving_grid, Disc);
  const RegistrationResult r = Register(moving, fixed, FewIterations());
  EXPECT_NE(r.world_space_note.find("resampled"), std::string::npos) << r.world_space_note;
  EXPECT_NE(r.world_space_note.find("orientation LA vs RA"), std::string::npos)
      << r.world_space_note;
  // Every output on the fixed grid, with its affine.
  for (const Grid* g : {&r.grid, &r.warped.grid, &r.displacement.grid, &r.jacobian.grid}) {
    EXPECT_TRUE(SameWorldGrid(*g, fixed_grid));
    EXPECT_EQ(g->origin_mm, fixed_grid.origin_mm);
    EXPECT_EQ(g->spacing_mm, fixed_grid.spacing_mm);
    EXPECT_EQ(g->direction, fixed_grid.direction);
  }
  // Resampled through the world, the moving image already matches: the initial SSD is the
  // interpolation error (a mirrored disc, 2 mm off, would give tens).
  EXPECT_LT(r.ssd_initial, 0.5) << r.BriefReport();
  EXPECT_LT(r.displacement.data.cwiseAbs().maxCoeff(), 0.5);

  // The data term reads the moving image on its own grid (interpolated once, not resampled and
  // sampled again): the map is that of "resample, then register on the fixed grid" up to the
  // interpolation of the disc's edge and the side of the one-sided multilinear derivative at the
  // start (voxel centres; the axis runs the other way), a tenth of a voxel after 5 iterations.
  const MovingInFixedSpace in_fixed(moving, fixed);
  const RegistrationResult same = Register(in_fixed.image(), fixed, FewIterations());
  EXPECT_TRUE(same.world_space_note.empty());
  EXPECT_LT((same.phi - r.phi).cwiseAbs().maxCoeff(), 0.15);
  // The warped image is the moving image as given, sampled once through the world at φ.
  const Image once = WarpThroughWorld(moving, fixed_grid, r.phi, Interpolation::kLinear);
  EXPECT_EQ(once.data, r.warped.data);
  EXPECT_LT((same.warped.data - r.warped.data).cwiseAbs().maxCoeff(), 0.1);
}

// The moving image on the fixed grid written LAS (axis 0 reversed: the same voxel centres, the
// values in the other order): the data term reads it through the world at the same points with
// the same multilinear weights, so D and ∂D/∂φ are those of the image on the fixed grid to
// round-off (away from the voxel centres, where the multilinear derivative is one-sided and the
// side depends on the axis' direction).
TEST(WorldSpace, DataTermOfAFlippedCopyOfTheFixedGridIsThatOfTheFixedGrid) {
  const Grid grid =
      MakeGrid(2, {32, 32, 1}, {1.0, 1.0, 1.0}, {-15.5, -15.5, 0.0}, Eigen::Matrix3d::Identity());
  const Image fixed = Sampled(grid, Disc);
  const auto shifted = [](const Eigen::Vector3d& p) {
    return Disc(p - Eigen::Vector3d(1.5, -1.0, 0.0));
  };
  const Image moving = Sampled(grid, shifted);
  const Grid las = MakeGrid(2, {32, 32, 1}, {1.0, 1.0, 1.0}, {15.5, -15.5, 0.0}, FlipX());
  const Image moving_las = Sampled(las, shifted);
  for (const SimilarityMeasure similarity : {SimilarityMeasure::kSsd, SimilarityMeasure::kLocalNcc}) {
    FlowProblemOptions options;
    options.sigma = 0.02;
    options.similarity = similarity;
    DataTerm on_grid(moving, fixed, options), flipped(moving_las, fixed, options);
    const MeshToImageMap map(grid, grid);
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> jitter(0.05, 0.45);
    Eigen::VectorXd q = IdentityPositions(grid);
    for (Eigen::Index i = 0; i < q.size(); ++i) q[i] += jitter(rng) * (i % 2 == 0 ? 1.0 : -1.0);
    Eigen::VectorXd g_on_grid, g_flipped;
    const double d_on_grid = on_grid.Evaluate(map, q, &g_on_grid, nullptr);
    const double d_flipped = flipped.Evaluate(map, q, &g_flipped, nullptr);
    EXPECT_GT(d_on_grid, 0.0);
    EXPECT_NEAR(d_on_grid, d_flipped, 1e-12 * d_on_grid) << SimilarityName(similarity);
    EXPECT_LT((g_on_grid - g_flipped).cwiseAbs().maxCoeff(),
              1e-10 * g_on_grid.cwiseAbs().maxCoeff())
        << SimilarityName(similarity);
  }
}

TEST(WorldSpace, IdenticalGridsRegisterBitForBitAsBefore) {
  const Grid grid =
      MakeGrid(2, {32, 32, 1}, {1.0, 1.0, 1.0}, {-15.5, -15.5, 0.0}, Eigen::Matrix3d::Identity());
  const Image fixed = Sampled(grid, Disc);
  Image moving = Sampled(
      grid, [](const Eigen::Vector3d& p) { return Disc(p - Eigen::Vector3d(1.5, -1.0, 0.0)); });
  const RegistrationResult exact = Register(moving, fixed, FewIterations());
  moving.grid.origin_mm[1] += 3e-5;  // within the float tolerance: the same grid
  moving.grid.spacing_mm[0] *= 1.0 + 1e-7;
  const RegistrationResult rounded = Register(moving, fixed, FewIterations());
  EXPECT_TRUE(rounded.world_space_note.empty());
  EXPECT_EQ(exact.phi, rounded.phi);
  EXPECT_EQ(exact.warped.data, rounded.warped.data);
  EXPECT_EQ(exact.loss_history, rounded.loss_history);
  EXPECT_GT(exact.ssd_reduction(), 0.3);
  // With the affine stage too: it sees the moving image on the fixed grid as well.
  RegistrationOptions with_affine = FewIterations();
  with_affine.affine.mode = AffineMode::kAffine;
  Image moving_exact = moving;
  moving_exact.grid = grid;
  const RegistrationResult affine_exact = Register(moving_exact, fixed, with_affine);
  const RegistrationResult affine_rounded = Register(moving, fixed, with_affine);
  EXPECT_EQ(affine_exact.affine, affine_rounded.affine);
  EXPECT_EQ(affine_exact.phi, affine_rounded.phi);
  EXPECT_EQ(affine_exact.warped.data, affine_rounded.warped.data);
}

// The data term with the moving image on its own grid (oblique, 1.1 mm, anisotropic in 3-D) and
// an affine W between the worlds: D and ∂D/∂φ against D of the image sampled by hand at
// A_m⁻¹ W A_f φ(x), and ∂D/∂φ against central differences, for SSD and local NCC.
struct WorldDataTermCase {
  int dim;
  SimilarityMeasure similarity;
};

class WorldDataTerm : public ::testing::TestWithParam<WorldDataTermCase> {};

TEST_P(WorldDataTerm, ReadsTheMovingImageThroughTheWorldWithItsExactGradient) {
  const auto [dim, similarity] = GetParam();
  // The moving grid covers the fixed field of view with a margin (central differences across the
  // edge of its field of view would see the jump to the background): centred on the fixed one.
  const auto centred_on = [](const Grid& fixed, std::array<int, 3> size,
                             std::array<double, 3> spacing, const Eigen::Matrix3d& direction) {
    Grid g = MakeGrid(fixed.dim, size, spacing, {0.0, 0.0, 0.0}, direction);
    const Eigen::Vector3d half(0.5 * (fixed.size[0] - 1), 0.5 * (fixed.size[1] - 1),
                               0.5 * (fixed.size[2] - 1));
    const Eigen::Vector3d own(0.5 * (size[0] - 1), 0.5 * (size[1] - 1), 0.5 * (size[2] - 1));
    const Eigen::Vector3d origin = fixed.VoxelToPhysical(half) - g.VoxelToPhysical(own);
    g.origin_mm = {origin[0], origin[1], fixed.dim == 3 ? origin[2] : 0.0};
    return g;
  };
  Grid fixed_grid, moving_grid;
  if (dim == 2) {
    fixed_grid = Fixed2d();
    moving_grid = centred_on(fixed_grid, {60, 60, 1}, {1.1, 1.1, 1.0}, RotationZ(20.0));
  } else {
    fixed_grid = MakeGrid(3, {14, 12, 10}, {1.0, 1.0, 1.0}, {-7.0, -6.0, -5.0},
                          Eigen::Matrix3d::Identity());
    moving_grid = centred_on(fixed_grid, {26, 22, 14}, {0.9, 1.1, 1.6}, FlipX() * RotationZ(10.0));
  }
  const Image fixed = Sampled(fixed_grid, Smooth);
  const Image moving = Sampled(moving_grid, [](const Eigen::Vector3d& p) {
    return Smooth(p + Eigen::Vector3d(0.8, -0.5, 0.3)) + 0.1 * Linear(p);
  });
  Eigen::Matrix4d w = Eigen::Matrix4d::Identity();
  w.topLeftCorner<3, 3>() = RotationZ(3.0) * Eigen::Vector3d(1.02, 0.97, 1.0).asDiagonal();
  w.topRightCorner<3, 1>() = Eigen::Vector3d(0.7, -0.4, 0.2);
  if (dim == 2) {
    w.row(2).setZero();
    w.col(2).setZero();
    w(2, 2) = 1.0;
  }
  FlowProblemOptions options;
  options.sigma = 0.1;
  options.similarity = similarity;
  options.moving_world_affine = w;
  DataTerm term(moving, fixed, options);
  const MeshToImageMap map(fixed_grid, fixed_grid);
  std::mt19937 rng(31);
  std::uniform_real_distribution<double> jitter(-0.4, 0.4);
  Eigen::VectorXd q = IdentityPositions(fixed_grid);
  for (Eigen::Index i = 0; i < q.size(); ++i) q[i] += jitter(rng);

  // The same D from the image sampled by hand through the world on the fixed grid.
  const Eigen::Index n = fixed_grid.voxels();
  const VoxelAffine m = VoxelToVoxel(fixed_grid, moving_grid, w);
  Eigen::VectorXd by_hand(dim * n);
  for (Eigen::Index i = 0; i < n; ++i) {
    Eigen::Vector3d p = Eigen::Vector3d::Zero();
    for (int c = 0; c < dim; ++c) p[c] = q[c * n + i];
    const Eigen::Vector3d r = m.A * p + m.b;
    ASSERT_TRUE(InsideFieldOfView(moving_grid, r));
    for (int c = 0; c < dim; ++c) by_hand[c * n + i] = r[c];
  }
  Image warped{fixed_grid, Eigen::VectorXd(n)};
  SampleScalar(moving_grid, moving.data.data(), by_hand, true, warped.data.data());
  double ssd = 0.0;
  Eigen::VectorXd gradient;
  const double value = term.Evaluate(map, q, &gradient, &ssd);
  if (similarity == SimilarityMeasure::kSsd) {
    // (NCC's variance floor comes from the whole moving image, which differs from `warped`.)
    FlowProblemOptions on_grid = options;
    on_grid.moving_world_affine = Eigen::Matrix4d::Identity();
    DataTerm reference(warped, fixed, on_grid);
    EXPECT_NEAR(value, reference.Evaluate(map, IdentityPositions(fixed_grid), nullptr, nullptr),
                1e-12 * std::abs(value));
  }
  EXPECT_NEAR(ssd, (warped.data - fixed.data).squaredNorm(), 1e-12 * ssd);
  EXPECT_GT(value, 0.0);

  auto fn = [&](const Eigen::VectorXd& x) { return term.Evaluate(map, x, nullptr, nullptr); };
  // NCC's D is Σ cc_ff − Σ cc over the voxels, two sums of ~10³–10⁴ that nearly cancel: their
  // rounding, ε·|Σ cc|/h ≈ 2·10⁻⁷ here, is ~10⁻⁵ of this directional derivative (~0.01) in 2-D.
  const double tolerance = similarity == SimilarityMeasure::kLocalNcc ? 5e-5 : 1e-5;
  for (int repeat = 0; repeat < 3; ++repeat) {
    const GradientCheckResult check = CheckDirectionalDerivative(fn, q, gradient, rng, 1e-5);
    EXPECT_LT(check.relative_error, tolerance)
        << "analytic " << check.analytic << " numeric " << check.numeric;
  }
}

INSTANTIATE_TEST_SUITE_P(
    DimensionsAndMeasures, WorldDataTerm,
    ::testing::Values(WorldDataTermCase{2, SimilarityMeasure::kSsd},
                      WorldDataTermCase{2, SimilarityMeasure::kLocalNcc},
                      WorldDataTermCase{3, SimilarityMeasure::kSsd},
                      WorldDataTermCase{3, SimilarityMeasure::kLocalNcc}),
    [](const auto& info) {
      return std::to_string(info.param.dim) + "d_" + SimilarityName(info.param.similarity);
    });

// Outside the moving image's field of view the data term reads its background value, with zero
// derivative.
TEST(WorldSpace, DataTermReadsTheBackgroundOutsideTheMovingFieldOfView) {
  const Grid fixed_grid = Fixed2d();
  const Grid moving_grid = Cases2d()[2].moving;  // shifted by 7.5, 4.25 mm: partly outside
  const Image fixed = Sampled(fixed_grid, Smooth);
  const Image moving = Sampled(moving_grid, Smooth);
  FlowProblemOptions options;
  options.sigma = 0.1;
  DataTerm term(moving, fixed, options);
  const MeshToImageMap map(fixed_grid, fixed_grid);
  const Eigen::VectorXd q = IdentityPositions(fixed_grid);
  Eigen::VectorXd gradient;
  term.Evaluate(map, q, &gradient, nullptr);
  const double background = BackgroundValue(moving);
  const Eigen::Index n = fixed_grid.voxels();
  const VoxelAffine m = VoxelToVoxel(fixed_grid, moving_grid);
  Image moved = Sampled(fixed_grid, Smooth);
  long outside = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const Eigen::Vector3d r = m.A * Eigen::Vector3d(q[i], q[n + i], 0.0) + m.b;
    if (InsideFieldOfView(moving_grid, r)) continue;
    ++outside;
    moved.data[i] = background;
    EXPECT_EQ(gradient[i], 0.0);
    EXPECT_EQ(gradient[n + i], 0.0);
  }
  EXPECT_GT(outside, n / 20);
  // D equals that of an image holding the background there: the SSD of the difference.
  double ssd = 0.0;
  term.Evaluate(map, q, nullptr, &ssd);
  EXPECT_GT(ssd, 0.0);
  // Inside, the moving image is the fixed function itself (linear interpolation errs little).
  EXPECT_NEAR(ssd, (moved.data - fixed.data).squaredNorm(), 0.05 * ssd);
}

TEST(WorldSpace, WarpThroughWorldSamplesTheImageAtTheMappedWorldPoints) {
  const Grid fixed = Fixed2d();
  // φ: a translation by (2.5, −1.25) voxels of the fixed grid.
  Eigen::VectorXd phi = IdentityPositionField(fixed).data;
  const Eigen::Index n = fixed.voxels();
  phi.head(n).array() += 2.5;
  phi.tail(n).array() -= 1.25;
  const Grid other = Cases2d()[4].moving;  // oblique, 1.1 mm
  const Image image = Sampled(other, Linear);
  const Image out = WarpThroughWorld(image, fixed, phi, Interpolation::kLinear, -7.0);
  EXPECT_EQ(out.grid.size, fixed.size);
  long inside = 0, outside = 0;
  for (Eigen::Index x = 0; x < n; ++x) {
    const Eigen::Vector3d p = fixed.VoxelToPhysical(Eigen::Vector3d(phi[x], phi[n + x], 0.0));
    const Eigen::Vector3d q = other.PhysicalToVoxel(p);
    const bool within =
        q[0] >= 0 && q[1] >= 0 && q[0] <= other.size[0] - 1 && q[1] <= other.size[1] - 1;
    const bool beyond = q[0] < -0.501 || q[1] < -0.501 || q[0] > other.size[0] - 0.499 ||
                        q[1] > other.size[1] - 0.499;
    if (within) {
      EXPECT_NEAR(out.data[x], Linear(p), 1e-12);
      ++inside;
    } else if (beyond) {
      EXPECT_EQ(out.data[x], -7.0);
      ++outside;
    }
  }
  EXPECT_GT(inside, n / 2);
  EXPECT_GT(outside, 0);

  // On the fixed grid itself: voxel coordinates, clamped, as WarpImage.
  const Image on_fixed = Sampled(fixed, Smooth);
  const Image direct = WarpThroughWorld(on_fixed, fixed, phi, Interpolation::kLinear);
  const Image expected = WarpImage(on_fixed, VectorField{fixed, phi}, Interpolation::kLinear);
  EXPECT_EQ(direct.data, expected.data);
}

}  // namespace
}  // namespace diffeoflow::registration
