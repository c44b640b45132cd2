#include "registration/register.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "registration/image_ops.h"
#include "registration/shapes.h"
#include "registration/shooting.h"
#include "solvers/errors.h"
#include "tests/registration/test_images.h"

namespace diffeoflow::registration {
namespace {

using testing::SmoothDisc;

RegistrationOptions SmallOptions(RegistrationMethod method) {
  RegistrationOptions options;
  options.method = method;
  options.metric.alpha_mm2 = 9.0;
  options.sigma = 0.02;
  // σ is an SSD weight here (in 3-D the default would be local NCC, ncc_registration_test.cc).
  options.similarity = SimilarityMeasure::kSsd;
  options.levels = 1;
  options.iterations = 60;
  options.time_steps = 6;
  // The deformable stage alone: these tests measure φ (an affine stage would take the
  // translation or warp's affine part; its tests are affine_test.cc).
  options.affine.mode = AffineMode::kNone;
  return options;
}

class RegisterTest : public ::testing::TestWithParam<RegistrationMethod> {};

TEST_P(RegisterTest, AnImageRegisteredToItselfIsUnchanged) {
  const Image disc = SmoothDisc(32, 15.5, 16.0, 8.0);
  const RegistrationResult r = Register(disc, disc, SmallOptions(GetParam()));
  EXPECT_LT(r.displacement.data.cwiseAbs().maxCoeff(), 1e-9);
  EXPECT_LT((r.warped.data - disc.data).cwiseAbs().maxCoeff(), 1e-9);
  EXPECT_NEAR(r.min_jacobian, 1.0, 1e-9);
  EXPECT_NEAR(r.max_jacobian, 1.0, 1e-9);
  EXPECT_EQ(r.ssd_final, 0.0);
}

TEST_P(RegisterTest, RecoversAKnownTranslation) {
  // moving(x) = fixed(x − s), so the map must be φ(x) = x + s inside the object.
  const double sx = 2.0, sy = -1.5;
  const Image fixed = SmoothDisc(32, 15.0, 16.0, 7.0);
  const Image moving = SmoothDisc(32, 15.0 + sx, 16.0 + sy, 7.0);
  // A kernel wider than the disc: the velocity inside is close to uniform.
  RegistrationOptions options = SmallOptions(GetParam());
  options.metric.alpha_mm2 = 100.0;
  const RegistrationResult r = Register(moving, fixed, options);
  EXPECT_GT(r.ssd_reduction(), 0.95) << r.BriefReport();
  EXPECT_GT(r.min_jacobian, 0.0);
  const Eigen::Index n = fixed.grid.voxels();
  double ux = 0.0, uy = 0.0, weight = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double w = fixed.data[i] > 0.9 ? 1.0 : 0.0;  // the disc's interior
    ux += w * r.displacement.data[i];
    uy += w * r.displacement.data[n + i];
    weight += w;
  }
  EXPECT_NEAR(ux / weight, sx, 0.25) << r.BriefReport();
  EXPECT_NEAR(uy / weight, sy, 0.25) << r.BriefReport();
}

TEST_P(RegisterTest, RecoversASmallSmoothWarpWithAPositiveJacobian) {
  const WarpedPair pair = testing::SmallWarpedCPair();
  RegistrationOptions options = SmallOptions(GetParam());
  options.levels = 2;
  const RegistrationResult r = Register(pair.original, pair.warped, options);
  EXPECT_GT(r.ssd_reduction(), 0.9) << r.BriefReport();
  EXPECT_GT(r.min_jacobian, 0.0) << r.BriefReport();
  // Only the component along ∇I is determined by the images (the aperture problem): compare it
  // where the image has edges.
  const VectorField gradient = ImageGradient(pair.warped);
  const Eigen::Index n = pair.original.grid.voxels();
  double error = 0.0, size = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double gx = gradient.data[i], gy = gradient.data[n + i];
    const double g = std::hypot(gx, gy);
    if (g < 0.1) continue;
    const double estimated = (r.displacement.data[i] * gx + r.displacement.data[n + i] * gy) / g;
    const double truth =
        (pair.displacement_mm.data[i] * gx + pair.displacement_mm.data[n + i] * gy) / g;
    error += std::pow(estimated - truth, 2);
    size += truth * truth;
  }
  ASSERT_GT(size, 0.0);
  EXPECT_LT(std::sqrt(error / size), 0.25) << std::sqrt(error / size) << " " << r.BriefReport();
}

INSTANTIATE_TEST_SUITE_P(Methods, RegisterTest,
                         ::testing::Values(RegistrationMethod::kLddmm,
                                           RegistrationMethod::kShooting),
                         [](const auto& info) { return RegistrationMethodName(info.param); });

TEST_P(RegisterTest, ThreeDimensionalTranslationWithAPositiveJacobian) {
  Image fixed, moving;
  for (Image* image : {&fixed, &moving}) {
    image->grid.dim = 3;
    image->grid.size = {16, 14, 12};
    image->grid.spacing_mm = {1.5, 1.5, 2.0};
    image->data.resize(image->grid.voxels());
  }
  const double shift_mm = 2.0;  // along x
  for (int k = 0; k < 12; ++k)
    for (int j = 0; j < 14; ++j)
      for (int i = 0; i < 16; ++i) {
        const double y = 1.5 * (j - 6.5), z = 2.0 * (k - 5.5);
        for (Image* image : {&fixed, &moving}) {
          const double x = 1.5 * (i - 7.5) - (image == &moving ? shift_mm : 0.0);
          const double r = std::sqrt(x * x + y * y + z * z);
          image->data[image->grid.index(i, j, k)] = 0.5 * (1.0 - std::tanh((r - 6.0) / 2.0));
        }
      }
  RegistrationOptions options = SmallOptions(GetParam());
  options.metric.alpha_mm2 = 36.0;
  options.iterations = 25;
  options.time_steps = 4;
  const RegistrationResult r = Register(moving, fixed, options);
  EXPECT_GT(r.ssd_reduction(), 0.9) << r.BriefReport();
  EXPECT_GT(r.min_jacobian, 0.0) << r.BriefReport();
  const Eigen::Index centre = fixed.grid.index(8, 7, 6);
  EXPECT_NEAR(r.displacement.data[centre], shift_mm, 0.6) << r.BriefReport();
  EXPECT_EQ(r.positions.size(), static_cast<std::size_t>(options.time_steps + 1));
}

TEST(Shooting, ConservesTheVelocityNormAlongTheGeodesic) {
  Grid grid;
  grid.size = {40, 40, 1};
  MetricOptions metric_options;
  const MetricPowers metric = MakeMetricPowers(grid, metric_options);
  const Image image = SmoothDisc(40, 20.0, 20.0, 10.0);
  FlowProblemOptions options;  // default T and solver
  ShootingObjective objective(image, image, grid, metric, options);
  // A smooth initial velocity of a few voxels: w = K^{−1/2} v0 for v0 = K (random field).
  std::mt19937 rng(4);
  std::normal_distribution<double> normal(0.0, 1.0);
  Vector w(objective.num_parameters());
  for (Eigen::Index i = 0; i < w.size(); ++i) w[i] = normal(rng);
  metric.smooth(w.data(), 2);
  metric.half(w.data(), 2);
  Vector v0 = w;
  metric.half(v0.data(), 2);
  w *= 4.0 / v0.cwiseAbs().maxCoeff();  // largest initial speed: 4 voxels per unit time
  std::vector<double> norms;
  for (const Vector& state : objective.Path(w)) {
    norms.push_back(objective.dynamics().VelocityNorm(state));
  }
  const auto [lo, hi] = std::minmax_element(norms.begin(), norms.end());
  EXPECT_GT(*lo, 0.0);
  EXPECT_LT((*hi - *lo) / *hi, 0.01);
}

// ShootGeodesic resolves the options itself (the default similarity, steps and mesh are left to
// ResolvedFor): m_0 = 0 shoots the identity with det Dφ = 1, and a small m_0 a map that is not.
TEST(Shooting, ShootGeodesicTakesUnresolvedOptions) {
  Grid grid;
  grid.dim = 3;
  grid.size = {20, 18, 16};
  grid.spacing_mm = {2.0, 2.0, 2.0};
  const RegistrationOptions options;  // every auto field unset
  ASSERT_FALSE(options.similarity.has_value());
  const Grid mesh = MeshFor(grid, options);
  const Eigen::VectorXd zero = Eigen::VectorXd::Zero(mesh.dim * mesh.voxels());
  const GeodesicShot identity = ShootGeodesic(grid, zero, options);
  EXPECT_LT((identity.phi - IdentityPositions(grid)).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LT((identity.jacobian.array() - 1.0).abs().maxCoeff(), 1e-12);
  EXPECT_EQ(identity.velocity_norm, 0.0);
  std::mt19937 rng(3);
  std::normal_distribution<double> normal(0.0, 1e-3);
  Eigen::VectorXd m0(zero.size());
  for (Eigen::Index i = 0; i < m0.size(); ++i) m0[i] = normal(rng);
  const GeodesicShot moved = ShootGeodesic(grid, m0, options);
  EXPECT_GT(moved.velocity_norm, 0.0);
  EXPECT_GT((moved.phi - IdentityPositions(grid)).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_GT(moved.jacobian.minCoeff(), 0.0);
}

TEST(RegistrationOptions, InvalidValuesNameTheirFlag) {
  RegistrationOptions options;
  options.sigma = -2.0;  // -1 is kAuto: chosen from the images
  try {
    options.Validate();
    FAIL() << "negative sigma accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--sigma"), std::string::npos) << e.what();
  }
  options = RegistrationOptions();
  options.time_steps = 0;
  EXPECT_THROW(options.Validate(), InputError);
}

TEST(Register, AnotherSizeIsResampledAndAnImageElsewhereInTheWorldRefused) {
  // Both unit spacing at origin 0: the 24² moving image covers part of the 32² fixed one.
  const Image a = SmoothDisc(24, 12, 12, 6);
  const Image b = SmoothDisc(32, 12, 12, 6);
  RegistrationOptions options = SmallOptions(RegistrationMethod::kShooting);
  options.iterations = 3;
  const RegistrationResult r = Register(a, b, options);
  EXPECT_NE(r.world_space_note.find("size 24x24 vs 32x32"), std::string::npos)
      << r.world_space_note;
  EXPECT_EQ(r.warped.grid.size, b.grid.size);
  Image far = a;
  far.grid.origin_mm = {500.0, 0.0, 0.0};
  try {
    Register(far, b, options);
    FAIL() << "an image 500 mm away accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--moving"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("do not overlap"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace diffeoflow::registration
