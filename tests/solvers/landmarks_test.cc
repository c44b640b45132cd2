// Landmark Hamiltonian flow: the field is Hamilton's equations of H, H is conserved, the VJPs and
// the engine's gradients equal finite differences, carried points follow the same flow and a
// carried grid stays diffeomorphic, and time-dependent momenta reproduce a geodesic.
#include "solvers/landmarks.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "solvers/errors.h"
#include "solvers/gradient_check.h"
#include "solvers/integrate.h"
#include "tests/common/dynamics_check.h"

namespace diffeoflow {
namespace {

Vector RandomVector(Eigen::Index n, std::mt19937& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  return Vector::NullaryExpr(n, [&] { return normal(rng); });
}

// N landmarks on a circle of radius 1 (2-D) or a helix (3-D), with random momenta.
Vector LandmarkState(int dim, Eigen::Index n, std::mt19937& rng, double momentum_scale = 0.3) {
  Vector q(dim * n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const double a = 2.0 * M_PI * static_cast<double>(i) / static_cast<double>(n);
    q[i * dim] = std::cos(a);
    q[i * dim + 1] = std::sin(a);
    if (dim == 3) q[i * dim + 2] = 0.3 * std::sin(2.0 * a);
  }
  Vector x(2 * dim * n);
  x << q, RandomVector(dim * n, rng, momentum_scale);
  return x;
}

double RelativeError(const Vector& a, const Vector& b) {
  return (a - b).norm() / std::max({a.norm(), b.norm(), 1e-300});
}

// The Dynamics contract (vjp against central differences in state and θ, outputs overwritten, no
// allocation in f and vjp) with directions seeded from rng.
void ExpectVjpMatchesFiniteDifferences(Dynamics& dyn, double t, const Vector& x,
                                       const Vector& theta, std::mt19937& rng) {
  DynamicsCheckOptions options;
  options.seed = static_cast<std::uint32_t>(rng());
  options.tolerance = 1e-7;
  testing::ExpectDynamicsContract(dyn, t, x, theta, options);
}

TEST(LandmarkHamiltonian, FieldIsHamiltonsEquationsOfTheEnergy) {
  std::mt19937 rng(1);
  for (int dim : {2, 3}) {
    LandmarkHamiltonian h(dim, 7, 0.6);
    const Vector x = LandmarkState(dim, 7, rng);
    Vector f(h.state_dim());
    h.f(0.0, x, Vector(), f);
    const Vector dH = NumericalGradient([&](const Vector& y) { return h.Energy(y); }, x, 1e-6);
    const Eigen::Index nd = dim * 7;
    EXPECT_LT(RelativeError(f.head(nd), dH.tail(nd)), 1e-8) << "dq/dt = ∂H/∂p, dim " << dim;
    EXPECT_LT(RelativeError(f.tail(nd), -dH.head(nd)), 1e-8) << "dp/dt = −∂H/∂q, dim " << dim;
    EXPECT_NEAR(h.Energy(x), KineticEnergy(dim, 0.6, x.head(nd), x.tail(nd)), 1e-12);
  }
}

TEST(LandmarkHamiltonian, VjpMatchesFiniteDifferences) {
  std::mt19937 rng(2);
  for (int dim : {2, 3}) {
    LandmarkHamiltonian h(dim, 6, 0.5);
    ExpectVjpMatchesFiniteDifferences(h, 0.0, LandmarkState(dim, 6, rng), Vector(), rng);
  }
}

TEST(LandmarkHamiltonian, EnergyIsConservedAlongTheFlow) {
  std::mt19937 rng(3);
  LandmarkHamiltonian h(2, 12, 0.5);
  const Vector x0 = LandmarkState(2, 12, rng, 0.6);
  SolverOptions options;
  options.method = Method::kDopri5;
  options.rtol = 1e-10;
  options.atol = 1e-12;
  const Solution sol = Integrate(h, x0, Vector(), {0.25, 0.5, 0.75, 1.0}, options);
  const double h0 = h.Energy(x0);
  ASSERT_GT(h0, 0.1);
  for (const Vector& x : sol.states) EXPECT_NEAR(h.Energy(x), h0, 1e-8 * h0);
  // The landmarks did move: conservation is not trivial.
  EXPECT_GT((sol.states.back() - x0).head(24).norm(), 0.3);
}

TEST(CarriedPoints, VjpMatchesFiniteDifferences) {
  std::mt19937 rng(4);
  for (int dim : {2, 3}) {
    CarriedPoints c(dim, 5, 4, 0.7);
    Vector x(c.state_dim());
    x << LandmarkState(dim, 5, rng), RandomVector(dim * 4, rng, 0.8);
    ExpectVjpMatchesFiniteDifferences(c, 0.0, x, Vector(), rng);
  }
}

TEST(CarriedPoints, APointStartingOnALandmarkFollowsIt) {
  std::mt19937 rng(5);
  const Vector qp = LandmarkState(2, 8, rng, 0.5);
  CarriedPoints c(2, 8, 2, 0.4);
  Vector x0(c.state_dim());
  x0 << qp, qp.segment(2, 2), qp.segment(10, 2);  // landmarks 1 and 5
  SolverOptions options;
  options.method = Method::kRk4;
  options.steps = 20;
  const Vector x1 = Integrate(c, x0, Vector(), {1.0}, options).states[0];
  EXPECT_LT((x1.segment(32, 2) - x1.segment(2, 2)).norm(), 1e-12);
  EXPECT_LT((x1.segment(34, 2) - x1.segment(10, 2)).norm(), 1e-12);
  // and the landmark part is the Hamiltonian flow alone.
  LandmarkHamiltonian h(2, 8, 0.4);
  const Vector y1 = Integrate(h, qp, Vector(), {1.0}, options).states[0];
  EXPECT_LT((x1.head(32) - y1).norm(), 1e-12);
}

// Signed area of every cell of a deformed (rows × cols) grid, split into two triangles.
double SmallestCellArea(const Vector& nodes, int rows, int cols) {
  const auto node = [&](int r, int c) { return nodes.segment<2>(2 * (r * cols + c)); };
  const auto area = [](const Eigen::Vector2d& a, const Eigen::Vector2d& b,
                       const Eigen::Vector2d& c) {
    const Eigen::Vector2d u = b - a, v = c - a;
    return 0.5 * (u.x() * v.y() - u.y() * v.x());
  };
  double smallest = 1e300;
  for (int r = 0; r + 1 < rows; ++r) {
    for (int c = 0; c + 1 < cols; ++c) {
      smallest = std::min(smallest, area(node(r, c), node(r, c + 1), node(r + 1, c + 1)));
      smallest = std::min(smallest, area(node(r, c), node(r + 1, c + 1), node(r + 1, c)));
    }
  }
  return smallest;
}

TEST(CarriedPoints, CarriedGridStaysDiffeomorphic) {
  // Strong momenta pushing neighbouring landmarks in opposite directions: a large shear.
  const int n = 10, rows = 25, cols = 25;
  Vector qp(4 * n);
  for (int i = 0; i < n; ++i) {
    qp.segment<2>(2 * i) << -0.9 + 0.2 * i, 0.05 * ((i % 2) ? 1 : -1);
    qp.segment<2>(2 * n + 2 * i) << 0.0, (i % 2 ? -1.0 : 1.0) * 1.5;
  }
  Vector grid(2 * rows * cols);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) grid.segment<2>(2 * (r * cols + c)) << -1.2 + 0.1 * c, -1.2 + 0.1 * r;
  }
  CarriedPoints carried(2, n, rows * cols, 0.3);
  Vector x0(carried.state_dim());
  x0 << qp, grid;
  SolverOptions options;
  options.method = Method::kDopri5;
  options.rtol = 1e-8;
  options.atol = 1e-10;
  const Vector x1 = Integrate(carried, x0, Vector(), {1.0}, options).states[0];
  const Vector moved = x1.tail(grid.size());
  EXPECT_GT((moved - grid).cwiseAbs().maxCoeff(), 0.5) << "the grid must move a lot";
  EXPECT_GT(SmallestCellArea(moved, rows, cols), 0.0);
  EXPECT_GT(SmallestCellArea(grid, rows, cols), 0.0);
}

TEST(LandmarkFlowGradient, DiscreteAdjointEqualsFiniteDifferencesInP0) {
  std::mt19937 rng(6);
  CarriedPoints c(2, 6, 3, 0.5);
  Vector x0(c.state_dim());
  x0 << LandmarkState(2, 6, rng, 0.5), RandomVector(6, rng, 0.5);
  const Vector target = RandomVector(c.state_dim(), rng);
  SolverOptions options;
  options.method = Method::kRk4;
  options.steps = 10;
  const TrajectoryLoss loss = [&](const std::vector<Vector>& xs, std::vector<Vector>& g) {
    g[0] = xs[0] - target;
    return 0.5 * g[0].squaredNorm();
  };
  const GradientResult r =
      Gradient(c, x0, Vector(), {1.0}, loss, options, GradientOptions{});
  const auto fn = [&](const Vector& y) {
    std::vector<Vector> xs = Integrate(c, y, Vector(), {1.0}, options).states;
    std::vector<Vector> g(1);
    return loss(xs, g);
  };
  EXPECT_LT(RelativeError(r.grad_x0, NumericalGradient(fn, x0, 1e-6)), 1e-7);
}

TEST(TimeDependentLandmarkFlow, VjpMatchesFiniteDifferences) {
  std::mt19937 rng(7);
  for (auto interpolation :
       {MomentumInterpolation::kLinear, MomentumInterpolation::kPiecewiseConstant}) {
    for (int dim : {2, 3}) {
      TimeDependentLandmarkFlow flow(dim, 5, 3, 0.6, 4, interpolation);
      Vector x(flow.state_dim());
      x << LandmarkState(dim, 5, rng).head(dim * 5), RandomVector(dim * 3, rng), 0.2;
      const Vector theta = RandomVector(flow.param_dim(), rng, 0.5);
      ExpectVjpMatchesFiniteDifferences(flow, 0.4, x, theta, rng);
    }
  }
}

TEST(TimeDependentLandmarkFlow, MomentaSampledFromAGeodesicReproduceIt) {
  // p(t) of a Hamiltonian trajectory, sampled at T nodes and interpolated linearly, drives the
  // landmarks along (nearly) the same path; the accumulated energy equals H(q0, p0).
  std::mt19937 rng(8);
  const int n = 8, T = 41;
  LandmarkHamiltonian h(2, n, 0.5);
  const Vector x0 = LandmarkState(2, n, rng, 0.5);
  std::vector<double> times(T);
  for (int k = 0; k < T; ++k) times[k] = static_cast<double>(k) / (T - 1);
  SolverOptions options;
  options.method = Method::kRk4;
  options.steps = 200;
  const Solution geodesic = Integrate(h, x0, Vector(), times, options);
  Vector theta(T * 2 * n);
  for (int k = 0; k < T; ++k) theta.segment(k * 2 * n, 2 * n) = geodesic.states[k].tail(2 * n);
  TimeDependentLandmarkFlow flow(2, n, 0, 0.5, T, MomentumInterpolation::kLinear);
  Vector y0(flow.state_dim());
  y0 << x0.head(2 * n), 0.0;
  const Vector y1 = Integrate(flow, y0, theta, {1.0}, options).states[0];
  EXPECT_LT((y1.head(2 * n) - geodesic.states.back().head(2 * n)).norm(), 1e-3);
  EXPECT_NEAR(y1[2 * n], h.Energy(x0), 1e-3 * h.Energy(x0));
}

TEST(Landmarks, BadGeometryIsAnInputError) {
  EXPECT_THROW(LandmarkHamiltonian(4, 3, 1.0), InputError);
  EXPECT_THROW(LandmarkHamiltonian(2, 0, 1.0), InputError);
  EXPECT_THROW(LandmarkHamiltonian(2, 3, 0.0), InputError);
  EXPECT_THROW(CarriedPoints(2, 3, -1, 1.0), InputError);
  EXPECT_THROW(TimeDependentLandmarkFlow(2, 3, 0, 1.0, 1, MomentumInterpolation::kLinear),
               InputError);
}

}  // namespace
}  // namespace diffeoflow
