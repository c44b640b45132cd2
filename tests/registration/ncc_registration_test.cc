// Local NCC as the data term of both registration methods: the objectives' gradients against
// central differences, the data term's invariance to affine intensity changes, a registration of
// a pair whose intensities differ by 3·I + 5, and option validation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <optional>
#include <random>

#include "registration/image_ops.h"
#include "registration/outputs/register_outputs.h"
#include "registration/register.h"
#include "registration/shapes.h"
#include "registration/shooting.h"
#include "solvers/errors.h"
#include "solvers/gradient_check.h"
#include "tests/registration/test_images.h"
#include "tests/scratch.h"

namespace diffeoflow::registration {
namespace {

Vector RandomVector(Eigen::Index n, std::mt19937& rng, double scale) {
  std::normal_distribution<double> normal(0.0, scale);
  Vector v(n);
  for (Eigen::Index i = 0; i < n; ++i) v[i] = normal(rng);
  return v;
}

// The disc-to-C pair of shooting_test.cc at 24², with the moving image's intensities changed to
// 3·I + 5 (NCC does not see the change; SSD would).
struct NccPair {
  ShapePair pair;
  MetricOptions metric;
  NccPair() {
    ShapeOptions shape;
    shape.size = 24;
    shape.edge_width_px = 2.0;
    pair = DiscToCPair(shape);
    pair.moving.data = 3.0 * pair.moving.data.array() + 5.0;
    metric.alpha_mm2 = 4.0;
    metric.gamma = 2.0;
  }
};

FlowProblemOptions NccFlowOptions(int time_steps) {
  FlowProblemOptions options;
  options.sigma = 0.02;
  options.time_steps = time_steps;
  options.similarity = SimilarityMeasure::kLocalNcc;
  options.ncc_radius = 2;
  return options;
}

template <class ObjectiveT>
void ExpectGradientMatchesFiniteDifferences(ObjectiveT& objective, const Vector& w,
                                            std::mt19937& rng, const char* name) {
  Vector gradient;
  objective.Evaluate(w, &gradient);
  auto fn = [&](const Vector& x) { return objective.Evaluate(x, nullptr); };
  for (int repeat = 0; repeat < 3; ++repeat) {
    const GradientCheckResult check = CheckDirectionalDerivative(fn, w, gradient, rng, 1e-4);
    std::printf("  %s NCC: directional derivative %.10g, central difference %.10g, relative "
                "error %.2e\n", name, check.analytic, check.numeric, check.relative_error);
    EXPECT_LT(check.relative_error, 1e-5)
        << "analytic " << check.analytic << " numeric " << check.numeric;
  }
}

// The flow on the image grid (false) or on a mesh of half the resolution (true).
class NccGradientTest : public ::testing::TestWithParam<bool> {
 protected:
  Grid Mesh(const Grid& image) const { return GetParam() ? HalvedGrid(image) : image; }
};

TEST_P(NccGradientTest, ShootingGradientInM0MatchesFiniteDifferencesInRandomDirections) {
  NccPair p;
  const Grid mesh = Mesh(p.pair.fixed.grid);
  const MetricPowers metric = MakeMetricPowers(mesh, p.metric);
  ShootingObjective objective(p.pair.moving, p.pair.fixed, mesh, metric, NccFlowOptions(5));
  std::mt19937 rng(5);
  const Vector w = RandomVector(objective.num_parameters(), rng, 0.3);
  ExpectGradientMatchesFiniteDifferences(objective, w, rng, "shooting");
  // The data term moved: the check exercised NCC, not only the kinetic energy.
  EXPECT_GT(objective.last().data, 0.0);
}

TEST_P(NccGradientTest, VelocityFieldGradientMatchesFiniteDifferencesInRandomDirections) {
  NccPair p;
  const Grid mesh = Mesh(p.pair.fixed.grid);
  const MetricPowers metric = MakeMetricPowers(mesh, p.metric);
  VelocityFieldObjective objective(p.pair.moving, p.pair.fixed, mesh, metric, NccFlowOptions(4));
  std::mt19937 rng(9);
  const Vector w = RandomVector(objective.num_parameters(), rng, 0.3);
  ExpectGradientMatchesFiniteDifferences(objective, w, rng, "lddmm");
  EXPECT_GT(objective.last().data, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Meshes, NccGradientTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "coarse_mesh" : "image_grid"; });

TEST(NccDataTerm, ZeroAtAPerfectMatchAndBlindToAffineIntensityChanges) {
  NccPair p;
  const Grid& grid = p.pair.fixed.grid;
  const MeshToImageMap map(grid, grid);
  Vector q = IdentityPositions(grid);
  std::mt19937 rng(21);
  q += RandomVector(q.size(), rng, 0.4);
  const FlowProblemOptions options = NccFlowOptions(1);
  DataTerm same(p.pair.fixed, p.pair.fixed, options);
  EXPECT_EQ(same.Evaluate(map, IdentityPositions(grid), nullptr, nullptr), 0.0);
  Image plain = p.pair.moving;
  plain.data = (plain.data.array() - 5.0) / 3.0;
  DataTerm scaled(p.pair.moving, p.pair.fixed, options), unscaled(plain, p.pair.fixed, options);
  Vector g_scaled, g_unscaled;
  const double d_scaled = scaled.Evaluate(map, q, &g_scaled, nullptr);
  const double d_unscaled = unscaled.Evaluate(map, q, &g_unscaled, nullptr);
  ASSERT_GT(d_unscaled, 0.0);
  // Equal up to the regulariser ε of cc = A²/(BC + ε), which does not scale with the images.
  EXPECT_NEAR(d_scaled, d_unscaled, 1e-3 * d_unscaled);
  EXPECT_LT((g_scaled - g_unscaled).norm(), 1e-3 * g_unscaled.norm());
  // SSD is not blind to it: the same positions give a very different value.
  FlowProblemOptions ssd_options = options;
  ssd_options.similarity = SimilarityMeasure::kSsd;
  DataTerm ssd_scaled(p.pair.moving, p.pair.fixed, ssd_options);
  DataTerm ssd_unscaled(plain, p.pair.fixed, ssd_options);
  EXPECT_GT(ssd_scaled.Evaluate(map, q, nullptr, nullptr),
            10.0 * ssd_unscaled.Evaluate(map, q, nullptr, nullptr));
}

// moving = 3·(fixed ∘ warp) + 5 without intensity normalisation: NCC registers the shapes; the
// result, mapped back to the fixed intensities by (I − 5)/3, matches the fixed image.
class NccRegisterTest : public ::testing::TestWithParam<RegistrationMethod> {};

TEST_P(NccRegisterTest, RecoversASmoothWarpBetweenImagesOfDifferentIntensityScaling) {
  const WarpedPair pair = testing::SmallWarpedCPair();
  const Image& fixed = pair.original;
  Image moving = pair.warped;
  moving.data = 3.0 * moving.data.array() + 5.0;

  RegistrationOptions options;
  options.method = GetParam();
  options.similarity = SimilarityMeasure::kLocalNcc;
  options.ncc_radius = 2;
  options.normalize_intensity = false;
  options.metric.alpha_mm2 = 9.0;
  options.sigma = 0.02;
  options.levels = 2;
  options.iterations = 60;
  options.time_steps = 6;
  // The deformable stage alone: these tests measure φ (an affine stage would take the
  // translation or warp's affine part; its tests are affine_test.cc).
  options.affine.mode = AffineMode::kNone;

  const RegistrationResult r = Register(moving, fixed, options);

  const Eigen::VectorXd before = (moving.data.array() - 5.0) / 3.0 - fixed.data.array();
  const Eigen::VectorXd after = (r.warped.data.array() - 5.0) / 3.0 - fixed.data.array();
  const double reduction = 1.0 - after.squaredNorm() / before.squaredNorm();
  std::printf("  %s NCC, 3 I + 5: re-normalised SSD %.4g -> %.4g (reduction %.2f%%), det Dphi "
              "in [%.3f, %.3f], %d iterations, %.2f s\n",
              RegistrationMethodName(GetParam()).c_str(), before.squaredNorm(),
              after.squaredNorm(), 100.0 * reduction, r.min_jacobian, r.max_jacobian,
              r.iterations, r.wall_seconds);
  EXPECT_GT(reduction, 0.8) << r.BriefReport();
  EXPECT_GT(r.min_jacobian, 0.0) << r.BriefReport();
  // metrics.json names the similarity and keeps the SSD keys (of the raw intensities here).
  const nlohmann::json metrics = MetricsJson(r);
  EXPECT_EQ(metrics["similarity"], "ncc");
  EXPECT_EQ(metrics["options"]["ncc_radius"], 2);
  EXPECT_DOUBLE_EQ(metrics["ssd_final"].get<double>(),
                   (r.warped.data - fixed.data).squaredNorm());
}

INSTANTIATE_TEST_SUITE_P(Methods, NccRegisterTest,
                         ::testing::Values(RegistrationMethod::kLddmm,
                                           RegistrationMethod::kShooting),
                         [](const auto& info) { return RegistrationMethodName(info.param); });

TEST(NccOptions, BadSimilarityOrRadiusIsAnInputErrorNamingItsFlag) {
  EXPECT_EQ(ParseSimilarity("ssd"), SimilarityMeasure::kSsd);
  EXPECT_EQ(ParseSimilarity("ncc"), SimilarityMeasure::kLocalNcc);
  EXPECT_EQ(SimilarityName(ParseSimilarity("ncc")), "ncc");
  testing::ExpectInputError([] { ParseSimilarity("mutual-information"); },
                            {"--similarity", "mutual-information", "ssd or ncc"});
  RegistrationOptions options;
  options.similarity = SimilarityMeasure::kLocalNcc;
  options.ncc_radius = 0;
  testing::ExpectInputError([&] { options.Validate(); }, {"--ncc-radius"});
  options.ncc_radius = 1;
  EXPECT_NO_THROW(options.Validate());
  EXPECT_EQ(ParseSimilarityOrAuto("auto"), std::nullopt);
  EXPECT_EQ(ParseSimilarityOrAuto("ncc"), SimilarityMeasure::kLocalNcc);
  EXPECT_EQ(SimilarityName(std::optional<SimilarityMeasure>()), "auto");
  testing::ExpectInputError([] { ParseSimilarityOrAuto("mi", "similarity"); },
                            {"similarity", "'mi'", "auto, ssd or ncc"});
}

// --similarity auto (the default): SSD in 2-D; in 3-D local NCC for the deformable stage and SSD
// for the affine stage (docs/registration.md measures both on the 96³ brain); and 3 pyramid
// levels in 2-D, 2 in 3-D; the stopping rule's window is 10 iterations in 2-D, 1 in 3-D. A
// similarity that is given is used by both stages.
TEST(NccOptions, AutoSimilarityIsChosenByDimensionAndGivenOnesReachBothStages) {
  Grid plane, volume;
  plane.dim = 2;
  plane.size = {64, 64, 1};
  volume.dim = 3;
  volume.size = {32, 32, 32};
  RegistrationOptions options;
  options.ncc_radius = 3;
  ASSERT_FALSE(options.similarity.has_value());
  const RegistrationOptions in_2d = options.ResolvedFor(plane);
  EXPECT_EQ(in_2d.levels, 3);
  EXPECT_EQ(options.ResolvedFor(volume).levels, 2);
  EXPECT_EQ(in_2d.tolerance_window, 10);
  EXPECT_EQ(options.ResolvedFor(volume).tolerance_window, 1);
  EXPECT_EQ(in_2d.ResolvedFor(plane).tolerance_window, 10);
  EXPECT_EQ(in_2d.similarity, SimilarityMeasure::kSsd);
  EXPECT_EQ(in_2d.affine.similarity, SimilarityMeasure::kSsd);
  const RegistrationOptions in_3d = options.ResolvedFor(volume);
  EXPECT_EQ(in_3d.similarity, SimilarityMeasure::kLocalNcc);
  EXPECT_EQ(in_3d.affine.similarity, SimilarityMeasure::kSsd);
  EXPECT_EQ(in_3d.affine.ncc_radius, 3);
  // Resolving again changes nothing (the result's options hold the values used).
  EXPECT_EQ(in_3d.ResolvedFor(volume).affine.similarity, SimilarityMeasure::kSsd);
  for (const SimilarityMeasure given : {SimilarityMeasure::kSsd, SimilarityMeasure::kLocalNcc}) {
    options.similarity = given;
    for (const Grid& grid : {plane, volume}) {
      const RegistrationOptions resolved = options.ResolvedFor(grid);
      EXPECT_EQ(resolved.similarity, given);
      EXPECT_EQ(resolved.affine.similarity, given);
    }
  }
}

}  // namespace
}  // namespace diffeoflow::registration
