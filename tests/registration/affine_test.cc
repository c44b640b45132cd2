// The affine stage (affine.h): recovery of a known rotation + scale + shear + translation in 2-D
// and 3-D, its gradient against finite differences through the public parametrisation, the world
// resampling through an affine (world_space.h), and the affine files (transform_io.h): ITK text
// round trip, hand-written ITK files in LPS, dipy's matrix, bad files.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numbers>
#include <string>

#include <Eigen/Geometry>
#include <Eigen/LU>

#include "registration/affine.h"
#include "registration/image_ops.h"
#include "registration/shapes.h"
#include "registration/transform_io.h"
#include "registration/world_space.h"
#include "solvers/errors.h"
#include "solvers/gradient_check.h"
#include "tests/scratch.h"

namespace {

namespace reg = diffeoflow::registration;
using diffeoflow::InputError;

constexpr double kDegree = std::numbers::pi / 180.0;

// An asymmetric object in world mm: a few ellipses (ellipsoids) of different brightness with
// smooth edges (tanh, 1.5 mm), no symmetry that an affine could exploit; edges give local NCC
// something to see.
double Object(const Eigen::Vector3d& p, int dim) {
  struct Blob {
    double x, y, z, rx, ry, rz, a;
  };
  static const Blob blobs[] = {{0, 0, 0, 16, 11, 13, 0.5},  {8, 6, 4, 5, 3.5, 6, 0.4},
                               {-9, 4, -3, 3.5, 7, 5, 0.3}, {3, -8, 6, 6, 3.5, 3.5, 0.35},
                               {-4, -5, -7, 3, 3, 4.5, 0.25}};
  double v = 0.0;
  for (const Blob& b : blobs) {
    double r2 = std::pow((p[0] - b.x) / b.rx, 2) + std::pow((p[1] - b.y) / b.ry, 2);
    if (dim == 3) r2 += std::pow((p[2] - b.z) / b.rz, 2);
    const double r = std::sqrt(r2) * std::min({b.rx, b.ry, dim == 3 ? b.rz : b.ry});
    const double edge = std::min({b.rx, b.ry, dim == 3 ? b.rz : b.ry});
    v += b.a * 0.5 * (1.0 - std::tanh((r - edge) / 1.5));
  }
  return v;
}

reg::Grid CubeGrid(int dim, int n, double spacing) {
  reg::Grid g;
  g.dim = dim;
  g.size = {n, n, dim == 3 ? n : 1};
  g.spacing_mm = {spacing, spacing, dim == 3 ? spacing : 1.0};
  const double half = 0.5 * (n - 1) * spacing;
  g.origin_mm = {-half, -half, dim == 3 ? -half : 0.0};
  return g;
}

// f sampled at the world points W·x of the grid's voxels x (f ∘ W).
reg::Image Sampled(const reg::Grid& grid, const Eigen::Matrix4d& W) {
  reg::Image image{grid, Eigen::VectorXd(grid.voxels())};
  for (int k = 0; k < grid.size[2]; ++k) {
    for (int j = 0; j < grid.size[1]; ++j) {
      for (int i = 0; i < grid.size[0]; ++i) {
        const Eigen::Vector3d x = grid.VoxelToPhysical(Eigen::Vector3d(i, j, k));
        const Eigen::Vector3d y = (W * x.homogeneous()).head<3>();
        image.data[grid.index(i, j, k)] = Object(y, grid.dim);
      }
    }
  }
  return image;
}

// Largest |A x − B x| (mm) over the fixed voxels where the object is visible.
double LargestPointError(const Eigen::Matrix4d& A, const Eigen::Matrix4d& B, const reg::Image& f) {
  double worst = 0.0;
  const reg::Grid& g = f.grid;
  for (int k = 0; k < g.size[2]; ++k) {
    for (int j = 0; j < g.size[1]; ++j) {
      for (int i = 0; i < g.size[0]; ++i) {
        if (f.data[g.index(i, j, k)] < 0.2) continue;
        const Eigen::Vector4d x = g.VoxelToPhysical(Eigen::Vector3d(i, j, k)).homogeneous();
        worst = std::max(worst, ((A - B) * x).head<3>().norm());
      }
    }
  }
  return worst;
}

// The angle (degrees) of the rotation between the two affines' polar rotations.
double RotationErrorDegrees(const Eigen::Matrix4d& A, const Eigen::Matrix4d& B, int dim) {
  return std::abs(reg::DescribeAffine(A.inverse() * B, dim).rotation_degrees);
}

// Recovers A_true with moving = f ∘ A_true⁻¹ (so fixed(x) = moving(A_true x)) to 1° and
// `voxels` (largest point error inside the object, in fixed voxels).
void ExpectRecovered(int dim, const Eigen::VectorXd& parameters, reg::SimilarityMeasure similarity,
                     double voxels = 0.3) {
  const reg::Grid fixed_grid = dim == 3 ? CubeGrid(3, 32, 2.0) : CubeGrid(2, 64, 1.0);
  // The moving image on another grid: other size, spacing and origin.
  reg::Grid moving_grid = dim == 3 ? CubeGrid(3, 30, 2.2) : CubeGrid(2, 58, 1.15);
  moving_grid.origin_mm[0] += 1.7;
  const Eigen::Matrix4d truth =
      reg::AffineFromParameters(parameters, reg::FieldOfViewCentre(fixed_grid), dim);
  const reg::Image fixed = Sampled(fixed_grid, Eigen::Matrix4d::Identity());
  const reg::Image moving = Sampled(moving_grid, truth.inverse());
  reg::AffineOptions options;
  options.similarity = similarity;
  const reg::AffineStageResult r = reg::RegisterAffine(moving, fixed, options);
  const double voxel = fixed_grid.spacing_mm[0];
  EXPECT_LE(RotationErrorDegrees(r.affine, truth, dim), 1.0);
  EXPECT_LE(LargestPointError(r.affine, truth, fixed), voxels * voxel)
      << "recovered\n" << r.affine << "\ntruth\n" << truth;
  EXPECT_LT(r.energy_final, r.energy_initial);
  EXPECT_FALSE(r.at_bounds) << r.note;
  EXPECT_TRUE(r.note.empty());
  // The start alone (centres of mass) is far from it: the test is not passed by the start.
  EXPECT_GT(LargestPointError(r.start, truth, fixed), 1.5 * voxel);
}

TEST(AffineStage, RecoversKnownAffine2d) {
  Eigen::VectorXd p(6);
  p << 12.0 * kDegree, 3.0, -2.5, std::log(1.08), std::log(0.95), 0.06;
  ExpectRecovered(2, p, reg::SimilarityMeasure::kSsd);
}

TEST(AffineStage, RecoversKnownAffine2dWithLocalNcc) {
  Eigen::VectorXd p(6);
  p << -10.0 * kDegree, -2.0, 3.0, std::log(0.93), std::log(1.05), -0.05;
  // Local NCC's optimum on this piecewise-constant phantom lies up to 0.9 mm from the truth at
  // the far edges (measured; tighter tolerances do not move it): a voxel is the bound here.
  ExpectRecovered(2, p, reg::SimilarityMeasure::kLocalNcc, 1.0);
}

TEST(AffineStage, RecoversKnownAffine3d) {
  Eigen::VectorXd p(12);
  const Eigen::Vector3d axis = Eigen::Vector3d(1.0, 2.0, 0.5).normalized() * 12.0 * kDegree;
  p << axis[0], axis[1], axis[2], 4.0, -3.0, 5.0, std::log(1.08), std::log(1.04),
      std::log(0.96), 0.04, -0.03, 0.05;
  ExpectRecovered(3, p, reg::SimilarityMeasure::kSsd);
}

// The loops over fixed voxels run on the pool's ranges (32³ voxels: two ranges): the stage's
// result is the same bits on one and on two threads, for both similarities.
TEST(AffineStage, SameBitsOnOneAndTwoThreads) {
  const reg::Grid fixed_grid = CubeGrid(3, 32, 2.0);
  reg::Grid moving_grid = CubeGrid(3, 30, 2.2);
  moving_grid.origin_mm[0] += 1.7;
  Eigen::VectorXd p(12);
  p << 0.1, -0.05, 0.08, 3.0, -2.0, 4.0, std::log(1.05), std::log(0.97), std::log(1.02), 0.03,
      0.0, -0.02;
  const Eigen::Matrix4d truth =
      reg::AffineFromParameters(p, reg::FieldOfViewCentre(fixed_grid), 3);
  const reg::Image fixed = Sampled(fixed_grid, Eigen::Matrix4d::Identity());
  const reg::Image moving = Sampled(moving_grid, truth.inverse());
  for (reg::SimilarityMeasure similarity :
       {reg::SimilarityMeasure::kSsd, reg::SimilarityMeasure::kLocalNcc}) {
    reg::AffineOptions options;
    options.similarity = similarity;
    options.levels = 1;
    options.iterations = 15;
    const reg::AffineStageResult one = reg::RegisterAffine(moving, fixed, options);
    options.threads = 2;
    const reg::AffineStageResult two = reg::RegisterAffine(moving, fixed, options);
    EXPECT_GT(one.iterations, 2);
    EXPECT_LT(one.energy_final, one.energy_initial);
    EXPECT_EQ(two.iterations, one.iterations);
    EXPECT_EQ(two.energy_final, one.energy_final);
    EXPECT_TRUE(two.affine == one.affine) << reg::SimilarityName(similarity);
  }
}

// A grid of `n` voxels of `spacing` along each axis, with `direction`, centred on the world
// origin (as CubeGrid, whose direction is the identity).
reg::Grid CentredGrid(int dim, int n, double spacing, const Eigen::Matrix3d& direction) {
  reg::Grid g = CubeGrid(dim, n, spacing);
  g.direction = direction;
  const double half = 0.5 * (n - 1) * spacing;
  const Eigen::Vector3d origin = -direction * Eigen::Vector3d(half, half, dim == 3 ? half : 0.0);
  g.origin_mm = {origin[0], origin[1], dim == 3 ? origin[2] : 0.0};
  return g;
}

struct EnergyCase {
  int dim;
  reg::SimilarityMeasure similarity;
  reg::AffineMode mode;
};

void PrintTo(const EnergyCase& c, std::ostream* os) {
  *os << c.dim << "-D " << reg::SimilarityName(c.similarity) << " " << reg::AffineModeName(c.mode);
}

class AffineStageEnergyTest : public ::testing::TestWithParam<EnergyCase> {};

// The gradient of E (the function the stage minimises) equals its central differences, for every
// variable, with the moving image on a grid of another size and voxel size, its first axis
// flipped and its axes oblique, from a start that is not the identity and at a point away from
// x = 0 (where the tanh of the bounds is not the identity).
TEST_P(AffineStageEnergyTest, GradientEqualsCentralDifferences) {
  const EnergyCase c = GetParam();
  const int dim = c.dim;
  const Eigen::Matrix3d flip_x = Eigen::Vector3d(-1.0, 1.0, 1.0).asDiagonal();
  const Eigen::Matrix3d oblique =
      dim == 3 ? Eigen::Matrix3d(Eigen::AngleAxisd(15.0 * kDegree,
                                                   Eigen::Vector3d(1.0, 2.0, 2.0).normalized()))
               : Eigen::Matrix3d(Eigen::AngleAxisd(15.0 * kDegree, Eigen::Vector3d::UnitZ()));
  const reg::Grid fixed_grid = dim == 3 ? CubeGrid(3, 24, 2.5) : CubeGrid(2, 64, 1.0);
  const reg::Grid moving_grid = dim == 3 ? CentredGrid(3, 28, 2.3, oblique * flip_x)
                                         : CentredGrid(2, 58, 1.15, oblique * flip_x);
  const reg::Image fixed = Sampled(fixed_grid, Eigen::Matrix4d::Identity());
  Eigen::VectorXd truth(dim == 3 ? 12 : 6);
  if (dim == 3) {
    truth << 0.1, -0.05, 0.08, 3.0, -2.0, 4.0, std::log(1.05), std::log(0.97), std::log(1.02),
        0.03, 0.0, -0.02;
  } else {
    truth << 0.12, 2.5, -1.5, std::log(1.06), std::log(0.95), 0.04;
  }
  const reg::Image moving = Sampled(
      moving_grid, reg::AffineFromParameters(truth, reg::FieldOfViewCentre(fixed_grid), dim)
                       .inverse());
  Eigen::Matrix4d start = Eigen::Matrix4d::Identity();
  start.topRightCorner(dim, 1) = Eigen::Vector3d(1.3, -0.8, 0.5).head(dim);
  reg::AffineOptions options;
  options.mode = c.mode;
  options.similarity = c.similarity;
  const int active = c.mode == reg::AffineMode::kRigid ? (dim == 3 ? 6 : 3) : (dim == 3 ? 12 : 6);
  // Away from 0 and from the optimum: a few mm at the border for every variable.
  Eigen::VectorXd x(active);
  for (int k = 0; k < active; ++k) x[k] = (k % 2 == 0 ? 1.0 : -0.7) * (1.0 + 0.1 * k);

  Eigen::VectorXd gradient;
  const double energy = reg::AffineStageEnergy(moving, fixed, options, start, x, &gradient);
  ASSERT_EQ(gradient.size(), active);
  // Without the gradient E takes another summation path: the same value to rounding.
  EXPECT_NEAR(reg::AffineStageEnergy(moving, fixed, options, start, x), energy,
              1e-12 * std::abs(energy));
  const auto e = [&](const Eigen::VectorXd& y) {
    return reg::AffineStageEnergy(moving, fixed, options, start, y);
  };
  const Eigen::VectorXd numeric = diffeoflow::NumericalGradient(e, x, 1e-5);
  // Measured: at most 7e-10 of the largest component for SSD, 4e-8 for NCC, whose E is a
  // difference of two nearly equal sums (its rounding over 2h is larger; world_space_test.cc).
  const double tolerance = c.similarity == reg::SimilarityMeasure::kLocalNcc ? 1e-6 : 1e-7;
  const double scale = gradient.lpNorm<Eigen::Infinity>();
  ASSERT_GT(scale, 0.0);
  for (int k = 0; k < active; ++k) {
    EXPECT_NEAR(gradient[k], numeric[k], tolerance * scale)
        << "variable " << k << ": analytic " << gradient[k] << ", central difference "
        << numeric[k];
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, AffineStageEnergyTest,
    ::testing::Values(EnergyCase{2, reg::SimilarityMeasure::kSsd, reg::AffineMode::kAffine},
                      EnergyCase{2, reg::SimilarityMeasure::kLocalNcc, reg::AffineMode::kAffine},
                      EnergyCase{2, reg::SimilarityMeasure::kSsd, reg::AffineMode::kRigid},
                      EnergyCase{3, reg::SimilarityMeasure::kSsd, reg::AffineMode::kAffine},
                      EnergyCase{3, reg::SimilarityMeasure::kLocalNcc, reg::AffineMode::kAffine},
                      EnergyCase{3, reg::SimilarityMeasure::kSsd, reg::AffineMode::kRigid}),
    [](const ::testing::TestParamInfo<EnergyCase>& info) {
      return std::to_string(info.param.dim) + "d_" +
             reg::SimilarityName(info.param.similarity) + "_" +
             reg::AffineModeName(info.param.mode);
    });

TEST(AffineStage, EnergyRejectsNoneAndAWrongNumberOfVariables) {
  const reg::Grid grid = CubeGrid(2, 20, 1.0);
  const reg::Image image = Sampled(grid, Eigen::Matrix4d::Identity());
  reg::AffineOptions options;
  const Eigen::Matrix4d start = Eigen::Matrix4d::Identity();
  EXPECT_THROW(reg::AffineStageEnergy(image, image, options, start, Eigen::VectorXd::Zero(3)),
               InputError);
  options.mode = reg::AffineMode::kNone;
  EXPECT_THROW(reg::AffineStageEnergy(image, image, options, start, Eigen::VectorXd::Zero(6)),
               InputError);
}

TEST(AffineStage, RigidModeKeepsARotation) {
  const reg::Grid grid = CubeGrid(2, 64, 1.0);
  Eigen::VectorXd p(3);
  p << 8.0 * kDegree, 2.0, -1.5;
  const Eigen::Matrix4d truth = reg::AffineFromParameters(p, reg::FieldOfViewCentre(grid), 2);
  reg::AffineOptions options;
  options.mode = reg::AffineMode::kRigid;
  const reg::Image moving = Sampled(grid, truth.inverse());
  const reg::Image fixed = Sampled(grid, Eigen::Matrix4d::Identity());
  const reg::AffineStageResult r = reg::RegisterAffine(moving, fixed, options);
  const reg::AffineDescription d = reg::DescribeAffine(r.affine, 2);
  EXPECT_NEAR(d.scales[0], 1.0, 1e-12);
  EXPECT_NEAR(d.scales[1], 1.0, 1e-12);
  EXPECT_NEAR(d.rotation_degrees, 8.0, 0.5);
  EXPECT_EQ(r.parameters.size(), 6);
  EXPECT_EQ(r.parameters.tail(3).norm(), 0.0);  // scales and shear never moved
}

// A solid disc against a C ring whose mouth is wide (the robustness family's c_wide_mouth_smooth
// at 128² × 2 mm): the SSD prefers shrinking and shearing the disc away, and the affine optimum
// runs into the bounds of the parametrisation. The stage keeps its start (the centres of mass)
// and says why.
TEST(AffineStage, AnOptimumAtTheBoundsIsDroppedForTheStart) {
  reg::CRingOptions ring;
  ring.size = 128;
  ring.spacing_mm = 2.0;
  ring.outer_radius_px = 38.5;
  ring.thickness_px = 12.5;
  ring.mouth_width_px = 40.0;
  ring.edge_width_px = 1.0;
  const reg::ShapePair pair = reg::DiscToCRingPair(ring);
  const reg::AffineStageResult r = reg::RegisterAffine(pair.moving, pair.fixed, {});
  EXPECT_TRUE(r.at_bounds);
  EXPECT_EQ(r.affine, r.start);
  EXPECT_EQ(r.parameters.norm(), 0.0);
  EXPECT_EQ(r.energy_final, r.energy_initial);
  EXPECT_GT(r.iterations, 0);
  EXPECT_NE(r.note.find("bounds of its parametrisation"), std::string::npos) << r.note;
  EXPECT_NE(r.note.find("centres of mass"), std::string::npos) << r.note;

  // Rigid has no bounded parameter: its optimum is kept.
  reg::AffineOptions rigid;
  rigid.mode = reg::AffineMode::kRigid;
  const reg::AffineStageResult kept = reg::RegisterAffine(pair.moving, pair.fixed, rigid);
  EXPECT_FALSE(kept.at_bounds);
  EXPECT_TRUE(kept.note.empty());
}

TEST(AffineStage, StartsFromTheGivenAffineAndNoneKeepsIt) {
  const reg::Grid grid = CubeGrid(2, 48, 1.0);
  Eigen::Matrix4d start = Eigen::Matrix4d::Identity();
  start(0, 3) = 2.5;
  start(0, 1) = 0.1;
  reg::AffineOptions options;
  options.mode = reg::AffineMode::kNone;
  const reg::Image image = Sampled(grid, Eigen::Matrix4d::Identity());
  const reg::AffineStageResult r = reg::RegisterAffine(image, image, options, &start);
  EXPECT_EQ(r.affine, start);
  EXPECT_EQ(r.iterations, 0);
}

TEST(AffineStage, CentresOfMassGiveTheStartingTranslation) {
  const reg::Grid grid = CubeGrid(2, 80, 1.0);  // the whole object inside, shifted or not
  Eigen::Matrix4d shift = Eigen::Matrix4d::Identity();
  shift(0, 3) = -4.0;
  shift(1, 3) = 3.0;
  reg::AffineOptions options;
  options.mode = reg::AffineMode::kNone;
  // moving(y) = f(y − (4, −3)): its centroid lies at the fixed one + (4, −3).
  const reg::AffineStageResult r = reg::RegisterAffine(
      Sampled(grid, shift), Sampled(grid, Eigen::Matrix4d::Identity()), options);
  EXPECT_NEAR(r.start(0, 3), 4.0, 0.05);
  EXPECT_NEAR(r.start(1, 3), -3.0, 0.05);
}

TEST(AffineStage, DescribeAffineReadsRotationAndScales) {
  Eigen::VectorXd p(6);
  p << 30.0 * kDegree, 1.0, 2.0, std::log(2.0), std::log(0.5), 0.0;
  const reg::AffineDescription d =
      reg::DescribeAffine(reg::AffineFromParameters(p, Eigen::Vector3d::Zero(), 2), 2);
  EXPECT_NEAR(d.rotation_degrees, 30.0, 1e-9);
  EXPECT_NEAR(d.scales[0], 0.5, 1e-12);
  EXPECT_NEAR(d.scales[1], 2.0, 1e-12);
  EXPECT_NEAR(d.determinant, 1.0, 1e-12);
}

TEST(AffineStage, ResampleIntoWorldThroughAnAffine) {
  const reg::Grid grid = CubeGrid(2, 32, 1.0);
  reg::Image image{grid, Eigen::VectorXd(grid.voxels())};
  for (int j = 0; j < 32; ++j) {
    for (int i = 0; i < 32; ++i) image.data[grid.index(i, j)] = i + 100.0 * j;
  }
  Eigen::Matrix4d W = Eigen::Matrix4d::Identity();
  W(0, 3) = 2.0;   // x ↦ x + 2 mm in the image's world: two voxels along i
  W(1, 3) = -1.0;
  const reg::Image out = reg::ResampleIntoWorld(image, grid, reg::Interpolation::kLinear, -7.0, W);
  EXPECT_DOUBLE_EQ(out.data[grid.index(5, 5)], 7.0 + 400.0);
  EXPECT_DOUBLE_EQ(out.data[grid.index(31, 5)], -7.0);  // outside the field of view
  // WarpThroughWorld with the identity φ is the same resampling.
  const reg::Image warped =
      reg::WarpThroughWorld(image, grid, reg::IdentityPositionField(grid).data,
                            reg::Interpolation::kLinear, -7.0, W);
  EXPECT_EQ(warped.data, out.data);
}

// ---------------------------------------------------------------------------------------------
// Affine files

reg::AffineFile Parse(const std::string& text) {
  return reg::ParseAffineText(text, "t.txt", "--initial-affine");
}

TEST(TransformIo, ItkRoundTrip3dAnd2d) {
  Eigen::VectorXd p(12);
  p << 0.1, -0.2, 0.3, 4.0, -5.5, 6.25, 0.05, -0.02, 0.01, 0.03, -0.04, 0.02;
  const Eigen::Vector3d centre(12.5, -7.25, 30.0);
  const Eigen::Matrix4d A = reg::AffineFromParameters(p, centre, 3);
  const std::string text = reg::ItkAffineText(A, 3, centre);
  EXPECT_EQ(text.rfind("#Insight Transform File V1.0\n#Transform 0\n"
                       "Transform: AffineTransform_double_3_3\nParameters:",
                       0),
            0u);
  const reg::AffineFile back = Parse(text);
  EXPECT_EQ(back.dim, 3);
  EXPECT_EQ(back.format, reg::AffineFileFormat::kItk);
  // The matrix entries are exact (17 digits, sign flips); the translation goes through ITK's
  // centre (t = F b + M c − c and back) and is exact to round-off.
  EXPECT_EQ((back.affine.topLeftCorner<3, 3>()), (A.topLeftCorner<3, 3>()));
  EXPECT_LE((back.affine - A).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_EQ(reg::ItkAffineText(back.affine, 3, centre).substr(0, 90), text.substr(0, 90));

  Eigen::VectorXd q(6);
  q << 0.2, 1.0, -2.0, 0.1, -0.1, 0.05;
  const Eigen::Matrix4d B = reg::AffineFromParameters(q, Eigen::Vector3d(3.0, 4.0, 0.0), 2);
  const reg::AffineFile back2 = Parse(reg::ItkAffineText(B, 2, Eigen::Vector3d(3.0, 4.0, 0.0)));
  EXPECT_EQ(back2.dim, 2);
  EXPECT_LE((back2.affine - B).cwiseAbs().maxCoeff(), 1e-12);
}

// Written by hand as ITK writes it: LPS coordinates, T(y) = M (y − c) + c + t.
TEST(TransformIo, ReadsAHandWrittenItkFileInLps) {
  const reg::AffineFile f = Parse(
      "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
      "Parameters: 0 -1 0 1 0 0 0 0 1 1 2 3\nFixedParameters: 10 20 30\n");
  // RAS x = (5, 6, 7) → LPS y = (−5, −6, 7); y − c = (−15, −26, −23); M(y − c) = (26, −15, −23);
  // + c + t = (37, 7, 10) LPS = (−37, −7, 10) RAS.
  const Eigen::Vector4d y = f.affine * Eigen::Vector4d(5, 6, 7, 1);
  EXPECT_NEAR(y[0], -37.0, 1e-12);
  EXPECT_NEAR(y[1], -7.0, 1e-12);
  EXPECT_NEAR(y[2], 10.0, 1e-12);

  // 2-D: ITK flips both in-plane axes. RAS (5, 6) → (−5, −6); − c = (−7, −5); M = 2·I → (−14,
  // −10); + c = (−12, −11); + t = (−11.5, −11) LPS = (11.5, 11) RAS.
  const reg::AffineFile g = Parse(
      "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_2_2\n"
      "Parameters: 2 0 0 2 0.5 0\nFixedParameters: 2 -1\n");
  EXPECT_EQ(g.dim, 2);
  const Eigen::Vector4d z = g.affine * Eigen::Vector4d(5, 6, 0, 1);
  EXPECT_NEAR(z[0], 11.5, 1e-12);
  EXPECT_NEAR(z[1], 11.0, 1e-12);
}

TEST(TransformIo, ReadsEulerAndRigidTransforms) {
  // 90° about z (LPS): RAS (1, 0, 0) → LPS (−1, 0, 0) → (0, −1, 0) LPS → (0, 1, 0) RAS.
  const reg::AffineFile e = Parse(
      "#Insight Transform File V1.0\n#Transform 0\nTransform: Euler3DTransform_double_3_3\n"
      "Parameters: 0 0 1.5707963267948966 0 0 0\nFixedParameters: 0 0 0 0\n");
  const Eigen::Vector4d y = e.affine * Eigen::Vector4d(1, 0, 0, 1);
  EXPECT_NEAR(y[0], 0.0, 1e-12);
  EXPECT_NEAR(y[1], 1.0, 1e-12);
  // ITK's default order R_z R_x R_y: about x by 90° then... checked against R_z R_x R_y directly.
  const reg::AffineFile xy = Parse(
      "#Insight Transform File V1.0\n#Transform 0\nTransform: Euler3DTransform_double_3_3\n"
      "Parameters: 0.3 0.2 0 0 0 0\nFixedParameters: 0 0 0\n");
  const double cx = std::cos(0.3), sx = std::sin(0.3), cy = std::cos(0.2), sy = std::sin(0.2);
  Eigen::Matrix3d Rx, Ry;
  Rx << 1, 0, 0, 0, cx, -sx, 0, sx, cx;
  Ry << cy, 0, sy, 0, 1, 0, -sy, 0, cy;
  const Eigen::Matrix3d F = Eigen::Vector3d(-1, -1, 1).asDiagonal();
  EXPECT_LE((xy.affine.topLeftCorner<3, 3>() - F * Rx * Ry * F).cwiseAbs().maxCoeff(), 1e-15);

  const reg::AffineFile r = Parse(
      "#Insight Transform File V1.0\n#Transform 0\nTransform: Rigid2DTransform_double_2_2\n"
      "Parameters: 0 3 4\nFixedParameters: 0 0\n");
  EXPECT_EQ(r.dim, 2);
  EXPECT_NEAR(r.affine(0, 3), -3.0, 1e-15);  // LPS translation (3, 4) is RAS (−3, −4)
  EXPECT_NEAR(r.affine(1, 3), -4.0, 1e-15);
}

TEST(TransformIo, ReadsDipyMatrices) {
  const reg::AffineFile f = Parse(
      "1.000000000000000000e+00 0.000000000000000000e+00 0.000000000000000000e+00 "
      "5.000000000000000000e+00\n0 0.5 0 -2\n0 0 2 1.5\n0 0 0 1\n");
  EXPECT_EQ(f.format, reg::AffineFileFormat::kDipy);
  EXPECT_EQ(f.dim, 3);
  Eigen::Matrix4d expected;
  expected << 1, 0, 0, 5, 0, 0.5, 0, -2, 0, 0, 2, 1.5, 0, 0, 0, 1;
  EXPECT_EQ(f.affine, expected);  // RAS as it is: no flip
  const reg::AffineFile g = Parse("1 0 3\n0 1 -4\n0 0 1\n");
  EXPECT_EQ(g.dim, 2);
  EXPECT_EQ(g.affine(0, 3), 3.0);
  EXPECT_EQ(g.affine(1, 3), -4.0);
}

void ExpectRejected(const std::string& text, const std::string& needle) {
  try {
    Parse(text);
    FAIL() << "accepted:\n" << text;
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("--initial-affine t.txt"), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << message;
  }
}

TEST(TransformIo, RejectsBadFiles) {
  ExpectRejected("hello world\n", "not a number");
  ExpectRejected("", "neither an ITK transform file");
  ExpectRejected("#Insight Transform File V1.0\n#Transform 0\n"
                 "Transform: BSplineTransform_double_3_3_3\nParameters: 1 2 3\n"
                 "FixedParameters: 0 0 0\n",
                 "unknown transform type 'BSplineTransform_double_3_3_3'");
  ExpectRejected("#Insight Transform File V1.0\n#Transform 0\n"
                 "Transform: AffineTransform_double_3_3\nParameters: 1 0 0 0 1 0 0 0 0 0 0 0\n"
                 "FixedParameters: 0 0 0\n",
                 "singular");
  ExpectRejected("#Insight Transform File V1.0\n#Transform 0\n"
                 "Transform: AffineTransform_double_3_3\nParameters: 1 0 0 0 1 0 0 0 1\n"
                 "FixedParameters: 0 0 0\n",
                 "needs 12 parameters");
  ExpectRejected("#Insight Transform File V1.0\n#Transform 0\n"
                 "Transform: AffineTransform_double_3_3\nParameters: 1 0 0 0 1 0 0 0 1 0 0 nan\n"
                 "FixedParameters: 0 0 0\n",
                 "not finite");
  ExpectRejected("#Insight Transform File V1.0\n#Transform 0\n"
                 "Transform: AffineTransform_double_2_2\nParameters: 1 0 0 1 0 0\n"
                 "FixedParameters: 0 0\n#Transform 1\n"
                 "Transform: AffineTransform_double_2_2\nParameters: 1 0 0 1 0 0\n"
                 "FixedParameters: 0 0\n",
                 "several transforms");
  ExpectRejected("0 0 0 0\n0 0 0 0\n0 0 0 0\n0 0 0 1\n", "singular");
  ExpectRejected("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 1 1\n", "last row");
  ExpectRejected("1 0 0\n0 1 0\n", "neither an ITK transform file");
  ExpectRejected("1 0 0 0\n0 1 0\n0 0 1 0\n0 0 0 1\n", "a row has 3");
}

TEST(TransformIo, ReadAffineFileNamesAMissingFile) {
  EXPECT_THROW(reg::ReadAffineFile("/nonexistent/affine.txt"), InputError);
  try {
    reg::ReadAffineMatrix("/nonexistent/affine.txt", "--transform");
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--transform /nonexistent/affine.txt"),
              std::string::npos);
  }
}

}  // namespace
