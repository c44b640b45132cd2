#include "registration/metric.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>

#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

Grid MakeGrid(int dim, int nx, int ny, int nz, double hx = 1.0, double hy = 1.0, double hz = 1.0) {
  Grid grid;
  grid.dim = dim;
  grid.size = {nx, ny, dim == 3 ? nz : 1};
  grid.spacing_mm = {hx, hy, hz};
  return grid;
}

Eigen::VectorXd RandomField(Eigen::Index n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  Eigen::VectorXd v(n);
  for (Eigen::Index i = 0; i < n; ++i) v[i] = g(rng);
  return v;
}

struct MetricCase {
  const char* name;
  Grid grid;
  MetricOptions options;
};

std::vector<MetricCase> Cases() {
  std::vector<MetricCase> cases;
  MetricOptions differential;
  differential.alpha_mm2 = 2.5;
  differential.gamma = 1.5;
  MetricOptions gaussian;
  gaussian.kernel = MetricKernel::kGaussian;
  gaussian.gaussian_sigma_mm = 1.2;
  MetricOptions reflective = differential;
  reflective.boundary = MetricBoundary::kReflective;
  MetricOptions padded = differential;
  padded.padding_voxels = 3;
  MetricOptions threaded = differential;
  threaded.threads = 2;
  threaded.measure = true;
  cases.push_back({"2d odd anisotropic", MakeGrid(2, 17, 12, 1, 0.7, 1.3), differential});
  cases.push_back({"3d", MakeGrid(3, 8, 7, 6, 1.0, 2.0, 1.5), differential});
  cases.push_back({"2d gaussian", MakeGrid(2, 16, 16, 1), gaussian});
  cases.push_back({"3d reflective", MakeGrid(3, 6, 9, 5, 1.1, 0.9, 1.0), reflective});
  cases.push_back({"2d reflective", MakeGrid(2, 15, 10, 1), reflective});
  cases.push_back({"2d padded", MakeGrid(2, 12, 10, 1), padded});
  cases.push_back({"3d threaded measured", MakeGrid(3, 10, 8, 6), threaded});
  return cases;
}

TEST(MetricOperator, KIsSymmetricPositiveDefinite) {
  for (const MetricCase& c : Cases()) {
    SCOPED_TRACE(c.name);
    MetricOperator metric(c.grid, c.options);
    const Eigen::Index n = metric.field_size();
    const Eigen::VectorXd a = RandomField(n, 1), b = RandomField(n, 2);
    Eigen::VectorXd ka(n), kb(n);
    metric.ApplyK(a, ka);
    metric.ApplyK(b, kb);
    EXPECT_NEAR(a.dot(kb), ka.dot(b), 1e-12 * a.norm() * b.norm());
    EXPECT_GT(a.dot(ka), 0.0);
    EXPECT_GT(b.dot(kb), 0.0);
    EXPECT_NEAR(metric.DualNormSquared(a), a.dot(ka) * c.grid.voxel_volume_mm(), 1e-9 * a.dot(ka));
    // L too.
    Eigen::VectorXd la(n), lb(n);
    metric.ApplyL(a, la);
    metric.ApplyL(b, lb);
    EXPECT_NEAR(a.dot(lb), la.dot(b), 1e-10 * la.norm() * lb.norm());
    EXPECT_GT(a.dot(la), 0.0);
  }
}

TEST(MetricOperator, LIsTheExactInverseOfK) {
  for (const MetricCase& c : Cases()) {
    if (c.options.padding_voxels > 0) continue;  // documented: not exact inverses near borders
    SCOPED_TRACE(c.name);
    MetricOperator metric(c.grid, c.options);
    const Eigen::Index n = metric.field_size();
    const Eigen::VectorXd m = RandomField(n, 3);
    Eigen::VectorXd v(n), back(n);
    metric.ApplyK(m, v);
    metric.ApplyL(v, back);
    EXPECT_LE((back - m).cwiseAbs().maxCoeff(), 1e-10 * m.cwiseAbs().maxCoeff());
    metric.ApplyL(m, v);
    metric.ApplyK(v, back);
    EXPECT_LE((back - m).cwiseAbs().maxCoeff(), 1e-10 * m.cwiseAbs().maxCoeff());
    // In place (aliasing) gives the same.
    Eigen::VectorXd inplace = m;
    metric.ApplyK(inplace, inplace);
    metric.ApplyK(m, v);
    EXPECT_EQ(inplace, v);
    // ‖K m‖²_V = ⟨m, K m⟩.
    metric.ApplyK(m, v);
    EXPECT_NEAR(metric.NormSquaredV(v), metric.DualNormSquared(m), 1e-9 * metric.DualNormSquared(m));
  }
}

// L applied to a field equals (I − αΔ)^γ with the finite-difference Laplacian, checked for γ = 1
// and γ = 2 by applying the stencil directly (periodic boundaries).
TEST(MetricOperator, MatchesTheFiniteDifferenceOperator) {
  const Grid grid = MakeGrid(2, 11, 8, 1, 0.8, 1.7);
  const int nx = grid.size[0], ny = grid.size[1];
  auto laplacian = [&](const Eigen::VectorXd& f) {
    Eigen::VectorXd out(f.size());
    for (int j = 0; j < ny; ++j) {
      for (int i = 0; i < nx; ++i) {
        const double c = f[grid.index(i, j)];
        const double dxx = (f[grid.index((i + 1) % nx, j)] - 2 * c + f[grid.index((i + nx - 1) % nx, j)]) /
                           (grid.spacing_mm[0] * grid.spacing_mm[0]);
        const double dyy = (f[grid.index(i, (j + 1) % ny)] - 2 * c + f[grid.index(i, (j + ny - 1) % ny)]) /
                           (grid.spacing_mm[1] * grid.spacing_mm[1]);
        out[grid.index(i, j)] = dxx + dyy;
      }
    }
    return out;
  };
  const double alpha = 0.9;
  for (const double gamma : {1.0, 2.0}) {
    MetricOptions options;
    options.alpha_mm2 = alpha;
    options.gamma = gamma;
    MetricOperator metric(grid, options);
    const Eigen::VectorXd f = RandomField(grid.voxels(), 5);
    Eigen::VectorXd expected = f - alpha * laplacian(f);
    if (gamma == 2.0) expected = expected - alpha * laplacian(expected);
    Eigen::VectorXd got(f.size());
    metric.ApplyLScalar(f, got);
    EXPECT_LE((got - expected).cwiseAbs().maxCoeff(), 1e-10 * expected.cwiseAbs().maxCoeff());
  }
}

TEST(MetricOperator, ReflectiveBoundaryMatchesNeumannStencil) {
  // With mirror boundaries the Laplacian at the border uses the voxel itself as its outer neighbour.
  const Grid grid = MakeGrid(2, 9, 7, 1, 1.0, 1.4);
  const int nx = grid.size[0], ny = grid.size[1];
  MetricOptions options;
  options.alpha_mm2 = 1.3;
  options.gamma = 1.0;
  options.boundary = MetricBoundary::kReflective;
  MetricOperator metric(grid, options);
  const Eigen::VectorXd f = RandomField(grid.voxels(), 9);
  Eigen::VectorXd expected(f.size());
  for (int j = 0; j < ny; ++j) {
    for (int i = 0; i < nx; ++i) {
      const double c = f[grid.index(i, j)];
      const double xm = f[grid.index(std::max(i - 1, 0), j)], xp = f[grid.index(std::min(i + 1, nx - 1), j)];
      const double ym = f[grid.index(i, std::max(j - 1, 0))], yp = f[grid.index(i, std::min(j + 1, ny - 1))];
      const double lap = (xp - 2 * c + xm) / (grid.spacing_mm[0] * grid.spacing_mm[0]) +
                         (yp - 2 * c + ym) / (grid.spacing_mm[1] * grid.spacing_mm[1]);
      expected[grid.index(i, j)] = c - options.alpha_mm2 * lap;
    }
  }
  Eigen::VectorXd got(f.size());
  metric.ApplyLScalar(f, got);
  EXPECT_LE((got - expected).cwiseAbs().maxCoeff(), 1e-10 * expected.cwiseAbs().maxCoeff());
}

TEST(MetricOperator, ConstantsPassUnchangedAndKSmooths) {
  const Grid grid = MakeGrid(2, 32, 32, 1);
  MetricOperator metric(grid, {});
  Eigen::VectorXd c = Eigen::VectorXd::Constant(metric.field_size(), 2.5), out(metric.field_size());
  metric.ApplyK(c, out);
  EXPECT_LE((out - c).cwiseAbs().maxCoeff(), 1e-12);
  // A delta is spread out: the peak drops and the total is conserved.
  Eigen::VectorXd delta = Eigen::VectorXd::Zero(grid.voxels());
  delta[grid.index(16, 16)] = 1.0;
  Eigen::VectorXd k(grid.voxels());
  metric.ApplyKScalar(delta, k);
  EXPECT_LT(k.maxCoeff(), 0.2);
  EXPECT_NEAR(k.sum(), 1.0, 1e-12);
  EXPECT_EQ(k.maxCoeff(), k[grid.index(16, 16)]);
}

TEST(MetricOperator, PaddingRemovesWrapAround) {
  const Grid grid = MakeGrid(2, 32, 16, 1);
  MetricOptions options;
  options.alpha_mm2 = 16.0;
  Eigen::VectorXd delta = Eigen::VectorXd::Zero(grid.voxels());
  delta[grid.index(0, 8)] = 1.0;
  Eigen::VectorXd periodic(grid.voxels()), padded(grid.voxels());
  MetricOperator(grid, options).ApplyKScalar(delta, periodic);
  options.padding_voxels = 32;
  MetricOperator(grid, options).ApplyKScalar(delta, padded);
  // Mass at x = 0 reaches x = 31 on the torus; with padding it does not (beyond a decayed tail).
  EXPECT_GT(periodic[grid.index(31, 8)], 0.5 * periodic[grid.index(1, 8)]);
  EXPECT_LT(padded[grid.index(31, 8)], 5e-3 * padded[grid.index(1, 8)]);
  EXPECT_LT(padded[grid.index(31, 8)], 1e-2 * periodic[grid.index(31, 8)]);
}

TEST(MetricOperator, BandLimitIsAProjectorCommutingWithK) {
  for (const MetricBoundary boundary : {MetricBoundary::kPeriodic, MetricBoundary::kReflective}) {
    const Grid grid = MakeGrid(3, 12, 10, 8);
    MetricOptions options;
    options.boundary = boundary;
    MetricOperator metric(grid, options);
    const Eigen::Index n = metric.field_size();
    const Eigen::VectorXd f = RandomField(n, 11);
    Eigen::VectorXd p(n), pp(n), kp(n), pk(n);
    metric.BandLimit(f, 2, p);
    metric.BandLimit(p, 2, pp);
    EXPECT_LE((pp - p).cwiseAbs().maxCoeff(), 1e-12 * p.cwiseAbs().maxCoeff());
    EXPECT_LT(p.norm(), f.norm());
    // Orthogonal: the removed part is orthogonal to the kept part.
    EXPECT_NEAR((f - p).dot(p), 0.0, 1e-10 * f.squaredNorm());
    metric.ApplyK(p, kp);
    metric.ApplyK(f, pk);
    metric.BandLimit(pk, 2, pk);
    EXPECT_LE((kp - pk).cwiseAbs().maxCoeff(), 1e-12 * kp.cwiseAbs().maxCoeff());
    // A band-limited field with B = 0 is the mean.
    metric.BandLimit(f, 0, p);
    if (boundary == MetricBoundary::kPeriodic) {
      EXPECT_NEAR(p[0], f.head(grid.voxels()).mean(), 1e-12);
    }
  }
}

TEST(MetricOperator, InvalidOptionsAreRejected) {
  const Grid grid = MakeGrid(2, 8, 8, 1);
  MetricOptions bad;
  bad.alpha_mm2 = -1.0;
  std::string error;
  EXPECT_FALSE(bad.IsValid(&error));
  EXPECT_NE(error.find("--alpha"), std::string::npos);
  EXPECT_THROW(MetricOperator(grid, bad), InputError);
  bad = MetricOptions{};
  bad.gamma = 0.0;
  EXPECT_THROW(MetricOperator(grid, bad), InputError);
  bad = MetricOptions{};
  bad.alpha_mm2 = std::nan("");
  EXPECT_THROW(MetricOperator(grid, bad), InputError);
  bad = MetricOptions{};
  bad.threads = 0;
  EXPECT_THROW(MetricOperator(grid, bad), InputError);
  MetricOperator metric(grid, {});
  Eigen::VectorXd wrong(3), out(metric.field_size());
  EXPECT_THROW(metric.ApplyK(wrong, out), InputError);
}

}  // namespace
}  // namespace diffeoflow::registration
