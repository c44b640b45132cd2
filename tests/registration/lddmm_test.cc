#include "registration/lddmm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>

#include "registration/metric.h"
#include "registration/shooting.h"
#include "solvers/gradient_check.h"
#include "tests/registration/bspline_stencil.h"
#include "tests/registration/vjp_check.h"

namespace diffeoflow::registration {
namespace {

Grid MakeGrid(int dim, int nx, int ny, int nz, double h = 1.0) {
  Grid g;
  g.dim = dim;
  g.size = {nx, ny, dim == 3 ? nz : 1};
  g.spacing_mm = {h, 1.3 * h, dim == 3 ? 0.8 * h : 1.0};
  return g;
}

// A symmetric smoothing (periodic [1 2 1]/4 along each axis, applied twice): a stand-in for K
// whose only needed property in a VJP test is symmetry. Its workspace is allocated once, so that
// the no-allocation check of the Dynamics contract sees only the Dynamics' own allocations.
FieldOperator TestSmoothing(const Grid& grid) {
  auto workspace = std::make_shared<std::vector<double>>(grid.voxels());
  return [grid, workspace](double* field, int components) {
    const Eigen::Index n = grid.voxels();
    std::vector<double>& tmp = *workspace;
    for (int c = 0; c < components; ++c) {
      double* f = field + c * n;
      for (int pass = 0; pass < 2; ++pass) {
        for (int a = 0; a < grid.dim; ++a) {
          for (int k = 0; k < grid.size[2]; ++k) {
            for (int j = 0; j < grid.size[1]; ++j) {
              for (int i = 0; i < grid.size[0]; ++i) {
                int lo[3] = {i, j, k}, hi[3] = {i, j, k};
                lo[a] = (lo[a] - 1 + grid.size[a]) % grid.size[a];
                hi[a] = (hi[a] + 1) % grid.size[a];
                tmp[grid.index(i, j, k)] = 0.5 * f[grid.index(i, j, k)] +
                                           0.25 * f[grid.index(lo[0], lo[1], lo[2])] +
                                           0.25 * f[grid.index(hi[0], hi[1], hi[2])];
              }
            }
          }
          std::copy(tmp.begin(), tmp.end(), f);
        }
      }
    }
  };
}

using testing::ExpectVjpMatchesFiniteDifference;
using testing::RandomVector;

class FlowVjpTest : public ::testing::TestWithParam<int> {};

TEST_P(FlowVjpTest, VelocityFieldFlowVjpMatchesFiniteDifferences) {
  const int dim = GetParam();
  const Grid grid = dim == 2 ? MakeGrid(2, 9, 7, 1) : MakeGrid(3, 6, 5, 4);
  std::mt19937 rng(7);
  VelocityFieldFlow flow(grid, 4);
  Vector x = IdentityPositions(grid) + RandomVector(flow.state_dim(), rng, 0.7);
  const Vector theta = RandomVector(flow.param_dim(), rng);
  for (double t : {0.0, 0.1, 0.37, 0.5, 0.93}) {
    ExpectVjpMatchesFiniteDifference(flow, t, x, theta, rng);
  }
}

TEST_P(FlowVjpTest, EpdiffShootingVjpMatchesFiniteDifferences) {
  const int dim = GetParam();
  const Grid grid = dim == 2 ? MakeGrid(2, 9, 7, 1) : MakeGrid(3, 6, 5, 4);
  std::mt19937 rng(11);
  EpdiffShooting shooting(grid, TestSmoothing(grid));
  const Eigen::Index block = dim * grid.voxels();
  Vector x(2 * block);
  x.head(block) = IdentityPositions(grid) + RandomVector(block, rng, 0.7);
  x.tail(block) = RandomVector(block, rng);
  for (int repeat = 0; repeat < 3; ++repeat) {
    ExpectVjpMatchesFiniteDifference(shooting, 0.0, x, Vector(), rng);
  }
}

// With the metric registration uses (K = (I − αΔ)^−γ by FFT) instead of the test smoothing: the
// same contract, the no-allocation part included.
TEST_P(FlowVjpTest, EpdiffShootingWithTheFftMetricKeepsTheContract) {
  const int dim = GetParam();
  const Grid grid = dim == 2 ? MakeGrid(2, 9, 7, 1) : MakeGrid(3, 6, 5, 4);
  MetricOptions metric_options;
  metric_options.alpha_mm2 = 2.0;
  auto metric = std::make_shared<MetricOperator>(grid, metric_options);
  const FieldOperator apply_k = [metric](double* field, int components) {
    Eigen::Map<Vector> v(field, components * metric->grid().voxels());
    metric->ApplyK(v, v);
  };
  std::mt19937 rng(19);
  EpdiffShooting shooting(grid, apply_k);
  const Eigen::Index block = dim * grid.voxels();
  Vector x(2 * block);
  x.head(block) = IdentityPositions(grid) + RandomVector(block, rng, 0.7);
  x.tail(block) = RandomVector(block, rng);
  ExpectVjpMatchesFiniteDifference(shooting, 0.0, x, Vector(), rng);
}

// vjp_slot reuses the velocity field f_slot kept in its slot: it must give exactly what a fresh
// evaluation gives, for each of two states kept in two slots.
TEST_P(FlowVjpTest, EpdiffShootingVjpSlotMatchesFreshVjp) {
  const int dim = GetParam();
  const Grid grid = dim == 2 ? MakeGrid(2, 9, 7, 1) : MakeGrid(3, 6, 5, 4);
  std::mt19937 rng(13);
  EpdiffShooting warm(grid, TestSmoothing(grid));
  const Eigen::Index block = dim * grid.voxels();
  Vector x(2 * block);
  x.head(block) = IdentityPositions(grid) + RandomVector(block, rng, 0.7);
  x.tail(block) = RandomVector(block, rng);
  Vector y = x;
  y.tail(block) *= 1.25;  // same positions, another momentum
  const Vector a = RandomVector(2 * block, rng);
  Vector dxdt(2 * block), warm_x(2 * block), warm_y(2 * block), empty;
  warm.ReserveSlots(2);
  warm.f_slot(0, 0.0, x, Vector(), dxdt);
  warm.f_slot(1, 0.0, y, Vector(), dxdt);
  warm.vjp_slot(0, 0.0, x, Vector(), a, warm_x, empty);
  warm.vjp_slot(1, 0.0, y, Vector(), a, warm_y, empty);
  EpdiffShooting cold_x(grid, TestSmoothing(grid)), cold_y(grid, TestSmoothing(grid));
  Vector fresh_x(2 * block), fresh_y(2 * block);
  cold_x.vjp(0.0, x, Vector(), a, fresh_x, empty);
  cold_y.vjp(0.0, y, Vector(), a, fresh_y, empty);
  EXPECT_EQ(warm_x, fresh_x);
  EXPECT_EQ(warm_y, fresh_y);
  EXPECT_GT((fresh_x - fresh_y).norm(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Dimensions, FlowVjpTest, ::testing::Values(2, 3));

// On a mesh large enough to be split, f and vjp with two threads equal the one-thread results up
// to the order of the splat sums.
TEST(EpdiffShootingThreads, TwoThreadsMatchOneThread) {
  const Grid grid = MakeGrid(2, 192, 180, 1);
  std::mt19937 rng(17);
  EpdiffShooting one(grid, TestSmoothing(grid), 1), two(grid, TestSmoothing(grid), 2);
  const Eigen::Index block = 2 * grid.voxels();
  Vector x(2 * block);
  x.head(block) = IdentityPositions(grid) + RandomVector(block, rng, 0.7);
  x.tail(block) = RandomVector(block, rng);
  const Vector a = RandomVector(2 * block, rng);
  Vector f1(2 * block), f2(2 * block), v1(2 * block), v2(2 * block), empty;
  one.f(0.0, x, Vector(), f1);
  two.f(0.0, x, Vector(), f2);
  one.vjp(0.0, x, Vector(), a, v1, empty);
  two.vjp(0.0, x, Vector(), a, v2, empty);
  EXPECT_LT((f1 - f2).norm(), 1e-12 * f1.norm());
  EXPECT_LT((v1 - v2).norm(), 1e-12 * v1.norm());
}

// FlowProblemOptions::threads reaches the particle loops (independently of the metric's FFTW
// threads), capped to one thread on meshes too small for a second one to pay (below 2 × 2048
// particles: 64² is split, 32² is not).
TEST(EpdiffShootingThreads, ShootingObjectiveUsesTheFlowThreadCount) {
  for (const int size : {192, 64, 32}) {
    Grid grid = MakeGrid(2, size, size, 1);
    Image image;
    image.grid = grid;
    image.data.setZero(grid.voxels());
    MetricOptions metric_options;
    metric_options.threads = 1;
    const MetricPowers metric = MakeMetricPowers(grid, metric_options);
    FlowProblemOptions options;
    options.threads = 2;
    ShootingObjective objective(image, image, grid, metric, options);
    EXPECT_EQ(objective.dynamics().threads(), size >= 64 ? 2 : 1) << size;
  }
}

// The LDDMM particle flow on two threads: f and the VJP in x are computed particle by particle
// (the same bits); the VJP in θ adds each range's splat in range order, so it equals the
// one-thread sum up to rounding. Several calls in a row, at times in different slots, check that
// every call starts from zeroed range buffers (a stale buffer would add the previous call's splat).
TEST(VelocityFieldFlowThreads, TwoThreadsMatchOneThread) {
  for (const int dim : {2, 3}) {
    const Grid grid = dim == 2 ? MakeGrid(2, 96, 80, 1) : MakeGrid(3, 24, 20, 22);
    std::mt19937 rng(29);
    VelocityFieldFlow one(grid, 4, 1), two(grid, 4, 2);
    const Vector theta = RandomVector(one.param_dim(), rng, 1.0);
    for (const double t : {0.1, 0.6, 0.6, 0.95}) {
      const Vector q = IdentityPositions(grid) + RandomVector(one.state_dim(), rng, 2.0);
      const Vector a = RandomVector(one.state_dim(), rng, 1.0);
      Vector f1(one.state_dim()), f2(one.state_dim()), x1(one.state_dim()), x2(one.state_dim());
      Vector th1(one.param_dim()), th2(one.param_dim());
      one.f(t, q, theta, f1);
      two.f(t, q, theta, f2);
      one.vjp(t, q, theta, a, x1, th1);
      two.vjp(t, q, theta, a, x2, th2);
      EXPECT_EQ(f1, f2) << dim << " " << t;
      EXPECT_EQ(x1, x2) << dim << " " << t;
      ASSERT_GT(th1.norm(), 0.0);
      EXPECT_LT((th1 - th2).norm(), 1e-13 * th1.norm()) << dim << " " << t;
    }
  }
}

// Split over two threads (a 64² mesh), both particle flows keep the Dynamics contract, the
// no-allocation part included: handing a loop to the pool must not allocate.
TEST(VelocityFieldFlowThreads, BothFlowsKeepTheContractOnTwoThreads) {
  const Grid grid = MakeGrid(2, 64, 64, 1);
  std::mt19937 rng(31);
  VelocityFieldFlow flow(grid, 4, 2);
  const Vector q = IdentityPositions(grid) + RandomVector(flow.state_dim(), rng, 0.7);
  ExpectVjpMatchesFiniteDifference(flow, 0.37, q, RandomVector(flow.param_dim(), rng), rng);
  EpdiffShooting shooting(grid, TestSmoothing(grid), 2);
  ASSERT_EQ(shooting.threads(), 2);
  const Eigen::Index block = 2 * grid.voxels();
  Vector x(2 * block);
  x.head(block) = IdentityPositions(grid) + RandomVector(block, rng, 0.7);
  x.tail(block) = RandomVector(block, rng);
  ExpectVjpMatchesFiniteDifference(shooting, 0.0, x, Vector(), rng);
}

// FlowProblemOptions::threads reaches LDDMM's particle flow too: the objective's E and gradient
// on two threads equal the one-thread ones up to rounding.
TEST(VelocityFieldFlowThreads, ObjectiveOnTwoThreadsMatchesOneThread) {
  const Grid grid = MakeGrid(2, 64, 64, 1);
  Image fixed, moving;
  fixed.grid = moving.grid = grid;
  fixed.data.resize(grid.voxels());
  moving.data.resize(grid.voxels());
  for (int j = 0; j < 64; ++j) {
    for (int i = 0; i < 64; ++i) {
      const double r2 = (i - 30.0) * (i - 30.0) + (j - 33.0) * (j - 33.0);
      fixed.data[grid.index(i, j)] = std::exp(-r2 / 200.0);
      moving.data[grid.index(i, j)] = std::exp(-((i - 35.0) * (i - 35.0) + (j - 31.0) * (j - 31.0)) / 150.0);
    }
  }
  MetricOptions metric_options;
  metric_options.threads = 1;
  const MetricPowers metric = MakeMetricPowers(grid, metric_options);
  FlowProblemOptions options;
  options.time_steps = 4;
  options.sigma = 0.05;
  options.threads = 1;
  VelocityFieldObjective one(moving, fixed, grid, metric, options);
  options.threads = 2;
  VelocityFieldObjective two(moving, fixed, grid, metric, options);
  std::mt19937 rng(5);
  const Vector w = RandomVector(one.num_parameters(), rng, 2.0);
  Vector g1, g2;
  const double e1 = one.Evaluate(w, &g1);
  const double e2 = two.Evaluate(w, &g2);
  EXPECT_NEAR(e1, e2, 1e-12 * std::abs(e1));
  ASSERT_GT(g1.norm(), 0.0);
  EXPECT_LT((g1 - g2).norm(), 1e-10 * g1.norm());
}

TEST(MultilinearTransfer, SplatIsTheTransposeOfSampling) {
  // Σ_i a_i v(q_i) = ⟨splat(a), v⟩, splat through VelocityFieldFlow's VJP in θ.
  const Grid grid = MakeGrid(2, 8, 6, 1);
  std::mt19937 rng(3);
  VelocityFieldFlow flow(grid, 1);
  const Vector q = IdentityPositions(grid) + RandomVector(flow.state_dim(), rng, 1.5);
  const Vector theta = RandomVector(flow.param_dim(), rng, 1.0);
  const Vector a = RandomVector(flow.state_dim(), rng, 1.0);
  Vector dq(flow.state_dim()), a_x(flow.state_dim()), a_theta(flow.param_dim());
  flow.f(0.0, q, theta, dq);
  flow.vjp(0.0, q, theta, a, a_x, a_theta);
  EXPECT_NEAR(a.dot(dq), a_theta.dot(theta), 1e-10 * std::max(1.0, std::abs(a.dot(dq))));
}

TEST(QuadraticBSpline, PartitionOfUnityAndSplatTransposeOfSampling) {
  const Grid grid = MakeGrid(3, 7, 6, 5);
  QuadraticBSplineStencil<3> s;
  const double x[3] = {2.3, 3.61, 1.5};
  s.Set(grid.size, x);
  double sum = 0.0, g0 = 0.0, h01 = 0.0;
  for (int c = 0; c < QuadraticBSplineStencil<3>::kTaps; ++c) {
    sum += s.weight[c];
    g0 += s.gradient[c][0];
    h01 += s.Hessian(c, 0, 1);
  }
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_NEAR(g0, 0.0, 1e-12);
  EXPECT_NEAR(h01, 0.0, 1e-12);
  // The splat of one particle's momentum holds exactly the weights the stencil samples with.
  EpdiffShooting shooting(grid, [](double*, int) {});
  const Eigen::Index n = grid.voxels();
  Vector state = Vector::Zero(6 * n);
  state.head(3 * n) = IdentityPositions(grid);
  const Eigen::Index particle = grid.index(2, 3, 1);
  for (int k = 0; k < 3; ++k) state[k * n + particle] = x[k];
  state[3 * n + particle] = 1.0;  // m_x of that particle only
  Vector momentum, velocity;
  shooting.Fields(state, &momentum, &velocity);
  for (int c = 0; c < QuadraticBSplineStencil<3>::kTaps; ++c) {
    ASSERT_GE(s.index[c], 0);
    EXPECT_NEAR(momentum[s.index[c]], s.weight[c], 1e-12);
  }
  EXPECT_NEAR(momentum.head(n).sum(), 1.0, 1e-12);
}

TEST(MultilinearTransfer, SamplingReproducesLinearFunctionsAndTheirGradient) {
  const Grid grid = MakeGrid(3, 5, 6, 7);
  Vector g(grid.voxels());
  for (int k = 0; k < 7; ++k)
    for (int j = 0; j < 6; ++j)
      for (int i = 0; i < 5; ++i) g[grid.index(i, j, k)] = 1.0 + 2.0 * i - 0.5 * j + 0.25 * k;
  Vector q(3);
  q << 1.3, 2.7, 4.1;
  double value, gradient[3];
  SampleScalar(grid, g.data(), q, true, &value, gradient);
  EXPECT_NEAR(value, 1.0 + 2.6 - 1.35 + 1.025, 1e-12);
  EXPECT_NEAR(gradient[0], 2.0, 1e-12);
  EXPECT_NEAR(gradient[1], -0.5, 1e-12);
  EXPECT_NEAR(gradient[2], 0.25, 1e-12);
}

}  // namespace
}  // namespace diffeoflow::registration
