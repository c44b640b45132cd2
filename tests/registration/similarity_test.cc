#include "registration/similarity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "solvers/errors.h"
#include "solvers/gradient_check.h"

namespace diffeoflow::registration {
namespace {

Grid MakeGrid(int dim, int nx, int ny, int nz, std::array<double, 3> spacing = {1.0, 1.0, 1.0}) {
  Grid grid;
  grid.dim = dim;
  grid.size = {nx, ny, dim == 3 ? nz : 1};
  grid.spacing_mm = spacing;
  return grid;
}

Eigen::VectorXd Smoothish(const Grid& grid, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  Eigen::VectorXd f(grid.voxels());
  for (Eigen::Index i = 0; i < f.size(); ++i) f[i] = std::sin(0.3 * i) + 0.5 * g(rng);
  return f;
}

TEST(Ssd, ValueAndGradientAgainstCentralDifferences) {
  const Grid grid = MakeGrid(2, 9, 7, 1, {0.5, 2.0, 1.0});
  const Eigen::VectorXd I = Smoothish(grid, 1), J = Smoothish(grid, 2);
  const double sigma = 0.3;
  Eigen::VectorXd gradient(grid.voxels());
  const double e = SsdEnergyAndGradient(grid, I, J, sigma, gradient);
  EXPECT_NEAR(e, (I - J).squaredNorm() * grid.voxel_volume_mm() / (sigma * sigma), 1e-12 * e);
  EXPECT_DOUBLE_EQ(SsdEnergy(grid, I, J, sigma), e);
  EXPECT_DOUBLE_EQ(SumOfSquaredDifferences(I, J), (I - J).squaredNorm());
  std::mt19937 rng(3);
  auto fn = [&](const Vector& x) { return SsdEnergy(grid, x, J, sigma); };
  for (int t = 0; t < 5; ++t) {
    const GradientCheckResult r = CheckDirectionalDerivative(fn, I, gradient, rng, 1e-5);
    EXPECT_LT(r.relative_error, 1e-7) << r.analytic << " vs " << r.numeric;
  }
  EXPECT_THROW(SsdEnergy(grid, I, J, 0.0), InputError);
  EXPECT_THROW(SsdEnergy(grid, I, J, -1.0), InputError);
}

TEST(LocalNcc, GradientAgainstCentralDifferences) {
  for (const int dim : {2, 3}) {
    SCOPED_TRACE(dim);
    const Grid grid = dim == 2 ? MakeGrid(2, 11, 9, 1, {1.0, 0.5, 1.0}) : MakeGrid(3, 7, 6, 5);
    const Eigen::VectorXd I = Smoothish(grid, 4), J = Smoothish(grid, 5);
    for (const int radius : {1, 2}) {
      LocalNccOptions options;
      options.radius = radius;
      options.weight = 2.0;
      LocalNcc ncc(grid, options);
      Eigen::VectorXd gradient(grid.voxels());
      const double e = ncc.EnergyAndGradient(I, J, gradient);
      EXPECT_DOUBLE_EQ(ncc.Energy(I, J), e);
      EXPECT_LT(e, 0.0);
      // Full gradient, component by component.
      auto fn = [&](const Vector& x) { return ncc.Energy(x, J); };
      const Vector numeric = NumericalGradient(fn, I, 1e-6);
      EXPECT_LE((numeric - gradient).cwiseAbs().maxCoeff(), 1e-6 * gradient.cwiseAbs().maxCoeff())
          << "radius " << radius;
    }
  }
}

TEST(LocalNcc, VarianceFloorsKeepTheGradientExactAndBoundCcByTheFixedImage) {
  const Grid grid = MakeGrid(2, 11, 9, 1, {1.0, 0.5, 1.0});
  const Eigen::VectorXd I = Smoothish(grid, 8), J = Smoothish(grid, 9);
  LocalNccOptions options;
  options.radius = 2;
  options.moving_variance_floor = 0.7;
  options.fixed_variance_floor = 0.3;
  LocalNcc ncc(grid, options);
  Eigen::VectorXd gradient(grid.voxels());
  ncc.EnergyAndGradient(I, J, gradient);
  auto fn = [&](const Vector& x) { return ncc.Energy(x, J); };
  const Vector numeric = NumericalGradient(fn, I, 1e-6);
  EXPECT_LE((numeric - gradient).cwiseAbs().maxCoeff(), 1e-6 * gradient.cwiseAbs().maxCoeff());
  // A nearly flat fixed image cannot score, however strong the moving one is: cc ≤ C/(C + ε_J).
  const Eigen::VectorXd flat = 1e-3 * J;
  const Eigen::VectorXd strong = 1e3 * flat;
  LocalNccOptions floored = options;
  floored.epsilon = 1e-300;
  LocalNcc bounded(grid, floored);
  EXPECT_GT(bounded.Energy(strong, flat), -1e-3 * grid.voxels() * grid.voxel_volume_mm());
  LocalNccOptions bad;
  bad.fixed_variance_floor = -1.0;
  EXPECT_THROW(LocalNcc(grid, bad), InputError);
}

TEST(LocalNcc, PerfectForIdenticalImagesAndInvariantToAffineIntensity) {
  const Grid grid = MakeGrid(2, 16, 12, 1);
  const Eigen::VectorXd I = Smoothish(grid, 6);
  LocalNccOptions options;
  options.epsilon = 1e-12;
  LocalNcc ncc(grid, options);
  const double best = ncc.Energy(I, I);
  EXPECT_NEAR(best, -static_cast<double>(grid.voxels()), 1e-6 * grid.voxels());
  const Eigen::VectorXd scaled = (3.0 * I.array() + 7.0).matrix();
  EXPECT_NEAR(ncc.Energy(scaled, I), best, 1e-6 * grid.voxels());
  EXPECT_GT(ncc.Energy(Smoothish(grid, 7), I), 0.5 * best);
  LocalNccOptions bad;
  bad.radius = 0;
  EXPECT_THROW(LocalNcc(grid, bad), InputError);
}

}  // namespace
}  // namespace diffeoflow::registration
