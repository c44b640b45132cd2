#include "registration/traced_map.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "registration/image_ops.h"
#include "registration/lddmm.h"
#include "solvers/errors.h"
#include "tests/registration/vjp_check.h"

namespace diffeoflow::registration {
namespace {

Grid MakeGrid(int dim, int nx, int ny, int nz, double h) {
  Grid g;
  g.dim = dim;
  g.size = {nx, ny, dim == 3 ? nz : 1};
  g.spacing_mm = {h, 1.25 * h, dim == 3 ? 0.8 * h : 1.0};
  return g;
}

using testing::ExpectVjpMatchesFiniteDifference;
using testing::RandomVector;

struct KernelCase {
  int dim;
  MeshKernel kernel;
};

class TracedMapVjpTest : public ::testing::TestWithParam<KernelCase> {};

// ⟨a, ∂f/∂x u⟩ + ⟨a, ∂f/∂θ s⟩ against the central difference of ⟨a, f⟩ along (u, s): positions,
// the log-Jacobian rate (second derivatives of the kernel) and the splat into the velocity fields.
TEST_P(TracedMapVjpTest, VjpMatchesFiniteDifferences) {
  const KernelCase c = GetParam();
  const Grid mesh = c.dim == 2 ? MakeGrid(2, 8, 7, 1, 2.0) : MakeGrid(3, 6, 5, 5, 2.0);
  std::mt19937 rng(5);
  const Eigen::Index tracers = 23;
  TracedMapFlow flow(mesh, 3, tracers, c.kernel);
  Vector x(flow.state_dim());
  std::uniform_real_distribution<double> inside(0.3, 3.7);
  for (Eigen::Index i = 0; i < c.dim * tracers; ++i) x[i] = inside(rng);
  x.tail(tracers) = RandomVector(tracers, rng);
  const Vector theta = RandomVector(flow.param_dim(), rng);
  for (double t : {0.0, 0.2, 0.5, 0.81}) ExpectVjpMatchesFiniteDifference(flow, t, x, theta, rng);
}

INSTANTIATE_TEST_SUITE_P(Kernels, TracedMapVjpTest,
                         ::testing::Values(KernelCase{2, MeshKernel::kMultilinear},
                                           KernelCase{2, MeshKernel::kQuadraticBSpline},
                                           KernelCase{3, MeshKernel::kMultilinear},
                                           KernelCase{3, MeshKernel::kQuadraticBSpline}));

// A smooth swirl v(x) = a · exp(−|x − c|² / 2s²) (−(y − c_y), x − c_x) sampled on the mesh.
std::vector<Vector> Swirl(const Grid& mesh, double amplitude, int fields) {
  const Eigen::Index n = mesh.voxels();
  Vector v(2 * n);
  const double cx = 0.5 * mesh.size[0] * mesh.spacing_mm[0];
  const double cy = 0.5 * mesh.size[1] * mesh.spacing_mm[1];
  const double s = 0.2 * mesh.size[0] * mesh.spacing_mm[0];
  for (int j = 0; j < mesh.size[1]; ++j) {
    for (int i = 0; i < mesh.size[0]; ++i) {
      const double x = (i + 0.5) * mesh.spacing_mm[0] - cx;
      const double y = (j + 0.5) * mesh.spacing_mm[1] - cy;
      const double g = amplitude * std::exp(-(x * x + y * y) / (2 * s * s));
      v[mesh.index(i, j)] = -g * y + 0.3 * g * x;
      v[n + mesh.index(i, j)] = g * x;
    }
  }
  return std::vector<Vector>(fields, v);
}

// det Dφ carried along the flow agrees with the Jacobian determinant of the traced map by finite
// differences where the map is resolved (a smooth, moderate swirl), and the map is the identity,
// det 1, for v = 0.
TEST(TraceMapTest, JacobianAgreesWithFiniteDifferencesOfTheMap) {
  Grid image = MakeGrid(2, 64, 64, 1, 1.0);
  image.spacing_mm = {1.0, 1.0, 1.0};
  Grid mesh = image;
  mesh.size = {32, 32, 1};
  mesh.spacing_mm = {2.0, 2.0, 1.0};
  const TracedMap map = TraceMap(image, mesh, Swirl(mesh, 0.8, 3), MeshKernel::kQuadraticBSpline,
                                 16);
  Eigen::VectorXd det(image.voxels());
  JacobianDeterminantOfPosition(image, map.positions, det);
  double largest = 0.0, worst = 0.0;
  for (int j = 4; j < 60; ++j) {
    for (int i = 4; i < 60; ++i) {
      const Eigen::Index p = image.index(i, j);
      largest = std::max(largest, std::abs(std::log(map.jacobian[p])));
      worst = std::max(worst, std::abs(map.jacobian[p] - det[p]));
    }
  }
  EXPECT_GT(largest, 0.2) << "the swirl should change volumes noticeably";
  EXPECT_LT(worst, 0.02);

  const TracedMap still = TraceMap(image, mesh, std::vector<Vector>(2, Vector::Zero(2 * mesh.voxels())),
                                   MeshKernel::kMultilinear, 4);
  EXPECT_LT((still.positions - IdentityPositions(image)).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LT((still.jacobian.array() - 1.0).abs().maxCoeff(), 1e-12);
}

TEST(TraceMapTest, RejectsStepsThatAreNotAMultipleOfTheIntervals) {
  Grid image = MakeGrid(2, 8, 8, 1, 1.0);
  const std::vector<Vector> fields(3, Vector::Zero(2 * image.voxels()));
  EXPECT_THROW(TraceMap(image, image, fields, MeshKernel::kMultilinear, 3), InputError);
}

// The CFL-type bound: the sub-steps grow with the velocity's Lipschitz bound, which is exact for
// a linear field (v_c = a x_c has edge differences a h_c, so the bound is |a| per axis summed).
TEST(SubstepsTest, FollowTheLipschitzBound) {
  Grid mesh = MakeGrid(2, 10, 10, 1, 2.0);
  const Eigen::Index n = mesh.voxels();
  Vector v = Vector::Zero(2 * n);
  for (int j = 0; j < 10; ++j) {
    for (int i = 0; i < 10; ++i) v[mesh.index(i, j)] = 3.0 * i * mesh.spacing_mm[0];
  }
  EXPECT_NEAR(VelocityLipschitzBound(mesh, v.data()), 3.0 * mesh.spacing_mm[0] / mesh.spacing_mm[0], 1e-12);
  FlowProblemOptions options;
  options.time_steps = 4;
  options.max_step_lipschitz = 0.5;
  EXPECT_EQ(SubstepsFor(1.0, options), 1);
  EXPECT_EQ(SubstepsFor(2.0, options), 1);
  EXPECT_EQ(SubstepsFor(2.1, options), 2);
  EXPECT_EQ(SubstepsFor(40.0, options), 20);
  EXPECT_EQ(SubstepsFor(1e9, options), options.max_substeps);
  options.substeps = 3;
  EXPECT_EQ(SubstepsFor(40.0, options), 3);
}

}  // namespace
}  // namespace diffeoflow::registration
