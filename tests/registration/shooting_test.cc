#include "registration/shooting.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "registration/image_ops.h"
#include "registration/lddmm.h"
#include "registration/metric.h"
#include "registration/shapes.h"
#include "solvers/gradient_check.h"

namespace diffeoflow::registration {
namespace {

// A small disc-to-C pair (unit spacing) with a metric of scale comparable to the image.
struct SmallPair {
  ShapePair pair;
  MetricOptions metric;
  SmallPair(int size = 24) {
    ShapeOptions shape;
    shape.size = size;
    shape.edge_width_px = 2.0;
    pair = DiscToCPair(shape);
    metric.alpha_mm2 = 4.0;
    metric.gamma = 2.0;
  }
};

Vector RandomVector(Eigen::Index n, std::mt19937& rng, double scale) {
  std::normal_distribution<double> normal(0.0, scale);
  Vector v(n);
  for (Eigen::Index i = 0; i < n; ++i) v[i] = normal(rng);
  return v;
}

template <class ObjectiveT>
void ExpectGradientMatchesFiniteDifferences(ObjectiveT& objective, const Vector& w,
                                            std::mt19937& rng) {
  Vector gradient;
  objective.Evaluate(w, &gradient);
  auto fn = [&](const Vector& x) { return objective.Evaluate(x, nullptr); };
  for (int repeat = 0; repeat < 3; ++repeat) {
    const GradientCheckResult check = CheckDirectionalDerivative(fn, w, gradient, rng, 1e-4);
    EXPECT_LT(check.relative_error, 1e-5)
        << "analytic " << check.analytic << " numeric " << check.numeric;
  }
}

// The flow on the image grid (false) or on a mesh of half the resolution (true).
class ObjectiveGradientTest : public ::testing::TestWithParam<bool> {
 protected:
  Grid Mesh(const Grid& image) const { return GetParam() ? HalvedGrid(image) : image; }
};

TEST_P(ObjectiveGradientTest, ShootingGradientMatchesFiniteDifferencesInRandomDirections) {
  SmallPair p;
  const Grid mesh = Mesh(p.pair.fixed.grid);
  const MetricPowers metric = MakeMetricPowers(mesh, p.metric);
  FlowProblemOptions options;
  options.sigma = 0.1;
  options.time_steps = 5;
  ShootingObjective objective(p.pair.moving, p.pair.fixed, mesh, metric, options);
  std::mt19937 rng(5);
  const Vector w = RandomVector(objective.num_parameters(), rng, 0.3);
  ExpectGradientMatchesFiniteDifferences(objective, w, rng);
}

TEST_P(ObjectiveGradientTest, VelocityFieldGradientMatchesFiniteDifferencesInRandomDirections) {
  SmallPair p;
  const Grid mesh = Mesh(p.pair.fixed.grid);
  const MetricPowers metric = MakeMetricPowers(mesh, p.metric);
  FlowProblemOptions options;
  options.sigma = 0.1;
  options.time_steps = 4;
  VelocityFieldObjective objective(p.pair.moving, p.pair.fixed, mesh, metric, options);
  std::mt19937 rng(9);
  const Vector w = RandomVector(objective.num_parameters(), rng, 0.3);
  ExpectGradientMatchesFiniteDifferences(objective, w, rng);
}

INSTANTIATE_TEST_SUITE_P(Meshes, ObjectiveGradientTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "coarse_mesh" : "image_grid"; });

TEST(MetricPowers, HalfPowersComposeToK) {
  SmallPair p(20);
  const MetricPowers metric = MakeMetricPowers(p.pair.fixed.grid, p.metric);
  MetricOperator k(p.pair.fixed.grid, p.metric);
  std::mt19937 rng(2);
  const Vector m = RandomVector(k.field_size(), rng, 1.0);
  Vector half = m;
  metric.half(half.data(), 2);
  metric.half(half.data(), 2);
  Vector full(m.size());
  k.ApplyK(m, full);
  EXPECT_LT((half - full).norm(), 1e-10 * full.norm());
  Vector back = half;
  metric.inverse_half(back.data(), 2);
  metric.inverse_half(back.data(), 2);
  EXPECT_LT((back - m).norm(), 1e-9 * m.norm());
}

}  // namespace
}  // namespace diffeoflow::registration
