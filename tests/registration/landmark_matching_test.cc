// Landmark matching: a known initial momentum is recovered from the landmarks it produces; both
// methods reach the target with the same kernel and data term, and shooting's path is the geodesic
// (constant speed, least kinetic energy); inexact matching finds a stationary point of E; CSV in
// and out, with errors naming the file and line.
#include "registration/landmark_matching.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "registration/landmark_outputs.h"
#include "registration/shapes.h"
#include "solvers/errors.h"
#include "solvers/integrate.h"
#include "solvers/landmarks.h"

namespace diffeoflow::registration {
namespace {

Vector Pack(const Matrix& points) {
  const Matrix t = points.transpose();
  return Eigen::Map<const Vector>(t.data(), t.size());
}

// The end points of the geodesic from (q0, p0), integrated as MatchLandmarks does.
Matrix Shoot(const Matrix& q0, const Vector& p0, double width, int steps) {
  const int d = static_cast<int>(q0.cols());
  LandmarkHamiltonian h(d, q0.rows(), width);
  Vector x0(2 * q0.size());
  x0 << Pack(q0), p0;
  SolverOptions solver;
  solver.method = Method::kRk4;
  solver.steps = steps;
  const Vector q1 = Integrate(h, x0, Vector(), {1.0}, solver).states[0].head(q0.size());
  return Eigen::Map<const Matrix>(q1.data(), d, q0.rows()).transpose();
}

Vector SmoothMomentum(const Matrix& q0) {
  Vector p(q0.size());
  for (Eigen::Index i = 0; i < q0.rows(); ++i) {
    p[2 * i] = 0.4 * q0(i, 1) + 0.2;
    p[2 * i + 1] = -0.3 * q0(i, 0) * q0(i, 0);
  }
  return p;
}

TEST(LandmarkMatching, ShootingRecoversAKnownMomentum) {
  const Matrix q0 = CircleLandmarks(16);
  const Vector p_true = SmoothMomentum(q0);
  const Matrix target = Shoot(q0, p_true, 0.5, 10);
  for (ShootingJacobian jacobian :
       {ShootingJacobian::kAdjoint, ShootingJacobian::kForwardSensitivity}) {
    LandmarkMatchingOptions options;
    options.kernel_width = 0.5;
    options.residual_tolerance = 1e-10;
    options.jacobian = jacobian;
    const LandmarkMatchingResult r = MatchLandmarks(q0, target, options);
    EXPECT_TRUE(r.converged) << r.termination;
    EXPECT_LT(r.residual_rms, 1e-10);
    EXPECT_LT((r.parameters - p_true).norm() / p_true.norm(), 1e-6) << r.BriefReport();
    EXPECT_LT(r.iterations, 20);
    EXPECT_EQ(r.num_parameters(), 32);
  }
}

TEST(LandmarkMatching, BothMethodsReachTheTargetAndShootingIsTheGeodesic) {
  const Matrix source = CircleLandmarks(16);
  const Matrix target = SmoothWarpOfPoints(source, 0.25);
  LandmarkMatchingOptions options;
  options.kernel_width = 0.4;
  options.residual_tolerance = 1e-6;
  options.method = LandmarkMethod::kShooting;
  const LandmarkMatchingResult shooting = MatchLandmarks(source, target, options);
  options.method = LandmarkMethod::kLddmm;
  options.max_outer_iterations = 15;
  const LandmarkMatchingResult lddmm = MatchLandmarks(source, target, options);
  EXPECT_LE(shooting.residual_rms, 1e-6) << shooting.BriefReport();
  EXPECT_LE(lddmm.residual_rms, 1e-6) << lddmm.BriefReport();
  // The geodesic's speed ‖v_t‖_V is constant in t (up to the RK4 error of H).
  const auto [smin, smax] = std::minmax_element(shooting.velocity_norm_per_time.begin(),
                                                shooting.velocity_norm_per_time.end());
  EXPECT_LT((*smax - *smin) / *smax, 1e-3);
  // Same kernel, same end points: gradient descent's path costs at least the geodesic's energy
  // (up to the discretisation of both, well below 1 %).
  EXPECT_LE(shooting.kinetic_energy, lddmm.kinetic_energy * (1.0 + 1e-3));
  EXPECT_NEAR(shooting.kinetic_energy, lddmm.kinetic_energy, 0.02 * shooting.kinetic_energy);
  EXPECT_EQ(shooting.num_parameters(), 32);
  EXPECT_EQ(lddmm.num_parameters(), 32 * 11);
  ASSERT_EQ(shooting.positions.size(), 11u);
  ASSERT_EQ(lddmm.momenta.size(), 11u);
  EXPECT_EQ(shooting.positions.front(), Pack(source));
}

TEST(LandmarkMatching, InexactMatchingStopsAtAStationaryPointOfTheEnergy) {
  const Matrix source = CircleLandmarks(12);
  const Matrix target = SmoothWarpOfPoints(source, 0.2);
  LandmarkMatchingOptions options;
  options.kernel_width = 0.5;
  options.sigma = 0.1;
  const LandmarkMatchingResult lm = MatchLandmarks(source, target, options);
  options.shooting_solver = ShootingSolver::kLbfgs;
  options.max_iterations = 500;
  const LandmarkMatchingResult lbfgs = MatchLandmarks(source, target, options);
  // E(p0) = H(q0, p0) + ‖q(1) − y‖²/(2σ²), evaluated independently of the solver.
  const auto energy = [&](const Vector& p0) {
    const Matrix q1 = Shoot(source, p0, 0.5, 10);
    return KineticEnergy(2, 0.5, Pack(source), p0) +
           0.5 * (q1 - target).squaredNorm() / (options.sigma * options.sigma);
  };
  const double e_lm = lm.kinetic_energy + lm.data_term;
  EXPECT_NEAR(e_lm, energy(lm.parameters), 1e-10);
  EXPECT_NEAR(e_lm, lbfgs.kinetic_energy + lbfgs.data_term, 1e-6 * e_lm);
  EXPECT_LT((lm.parameters - lbfgs.parameters).norm() / lm.parameters.norm(), 1e-3);
  std::mt19937 rng(3);
  std::normal_distribution<double> normal;
  for (int trial = 0; trial < 4; ++trial) {
    const Vector d = Vector::NullaryExpr(lm.parameters.size(), [&] { return normal(rng); });
    const double h = 1e-3;
    EXPECT_GE(energy(lm.parameters + h * d.normalized()), e_lm - 1e-12);
    EXPECT_GE(energy(lm.parameters - h * d.normalized()), e_lm - 1e-12);
  }
  EXPECT_GT(lm.residual_rms, 1e-4);  // inexact: the data term is traded against the energy
}

TEST(LandmarkMatching, MatchesIn3D) {
  Matrix q0(10, 3);
  for (int i = 0; i < 10; ++i) {
    const double a = 2.0 * M_PI * i / 10.0;
    q0.row(i) << std::cos(a), std::sin(a), 0.3 * std::sin(2 * a);
  }
  Vector p(30);
  for (int i = 0; i < 10; ++i) p.segment<3>(3 * i) << 0.1, -0.2 * q0(i, 0), 0.3 * q0(i, 1);
  LandmarkHamiltonian h(3, 10, 0.6);
  Vector x0(60);
  x0 << Pack(q0), p;
  SolverOptions solver;
  solver.steps = 10;
  const Vector q1 = Integrate(h, x0, Vector(), {1.0}, solver).states[0].head(30);
  const Matrix target = Eigen::Map<const Matrix>(q1.data(), 3, 10).transpose();
  LandmarkMatchingOptions options;
  options.kernel_width = 0.6;
  options.residual_tolerance = 1e-9;
  const LandmarkMatchingResult r = MatchLandmarks(q0, target, options);
  EXPECT_LT(r.residual_rms, 1e-9);
  EXPECT_LT((r.parameters - p).norm() / p.norm(), 1e-6);
}

TEST(LandmarkMatching, CarriedGridOfTheMatchIsDiffeomorphic) {
  const Matrix source = CircleLandmarks(20);
  const Matrix target = SmoothWarpOfPoints(source, 0.25);
  LandmarkMatchingOptions options;
  const LandmarkMatchingResult r = MatchLandmarks(source, target, options);
  const int cells = 30;
  Matrix nodes((cells + 1) * (cells + 1), 2);
  for (int row = 0; row <= cells; ++row) {
    for (int col = 0; col <= cells; ++col) {
      nodes.row(row * (cells + 1) + col) << -1.5 + 3.0 * col / cells, -1.5 + 3.0 * row / cells;
    }
  }
  const std::vector<Matrix> carried = CarryAlongMatch(r, nodes);
  ASSERT_EQ(carried.size(), r.times.size());
  double smallest = 1e300;
  for (int row = 0; row < cells; ++row) {
    for (int col = 0; col < cells; ++col) {
      const Eigen::RowVector2d a = carried.back().row(row * (cells + 1) + col);
      const Eigen::RowVector2d b = carried.back().row(row * (cells + 1) + col + 1);
      const Eigen::RowVector2d c = carried.back().row((row + 1) * (cells + 1) + col);
      const Eigen::RowVector2d u = b - a, v = c - a;
      smallest = std::min(smallest, u.x() * v.y() - u.y() * v.x());
    }
  }
  EXPECT_GT(smallest, 0.0);
  // A grid node placed on a landmark ends on its matched position.
  const std::vector<Matrix> on_landmark = CarryAlongMatch(r, source.topRows(1));
  EXPECT_LT((on_landmark.back().row(0) - target.row(0)).norm(), 1e-3);
}

TEST(LandmarkMatching, BadShapesAndOptionsAreInputErrors) {
  const Matrix a = CircleLandmarks(5);
  EXPECT_THROW(MatchLandmarks(a, CircleLandmarks(6), {}), InputError);
  EXPECT_THROW(MatchLandmarks(Matrix::Zero(3, 4), Matrix::Zero(3, 4), {}), InputError);
  LandmarkMatchingOptions options;
  options.sigma = -1.0;
  EXPECT_THROW(MatchLandmarks(a, a, options), InputError);
  options = {};
  options.solver = Method::kDopri5;
  EXPECT_THROW(MatchLandmarks(a, a, options), InputError);
  EXPECT_THROW(ParseLandmarkMethod("newton"), InputError);
}

class LandmarkCsv : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("diffeoflow_landmark_csv_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(LandmarkCsv, RoundTripIsExact) {
  Matrix points(3, 3);
  points << 0.1, -2.5e-7, 3.0, 1.0 / 3.0, 2.0, -4.25, 1e10, 0.0, M_PI;
  const std::string path = (dir_ / "p.csv").string();
  WriteLandmarksCsv(path, points);
  EXPECT_EQ(ReadLandmarksCsv(path), points);
}

TEST_F(LandmarkCsv, HeaderIsOptionalAndBlankLinesAreSkipped) {
  const Matrix with = ReadLandmarksCsv(Write("a.csv", "x, y\n1, 2\n\n3,4\r\n"));
  const Matrix without = ReadLandmarksCsv(Write("b.csv", "1,2\n3, 4\n"));
  ASSERT_EQ(with.rows(), 2);
  EXPECT_EQ(with, without);
  EXPECT_EQ(with(1, 1), 4.0);
}

TEST_F(LandmarkCsv, BadFilesNameTheFileAndLine) {
  const auto message = [](const std::string& path) {
    try {
      ReadLandmarksCsv(path);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string bad_number = Write("bad.csv", "x,y\n1,2\n3,abc\n");
  EXPECT_NE(message(bad_number).find(bad_number + ":3"), std::string::npos) << message(bad_number);
  const std::string ragged = Write("ragged.csv", "1,2\n3,4,5\n");
  EXPECT_NE(message(ragged).find(ragged + ":2"), std::string::npos) << message(ragged);
  const std::string wide = Write("wide.csv", "1,2,3,4\n");
  EXPECT_NE(message(wide).find(wide + ":1"), std::string::npos) << message(wide);
  const std::string empty = Write("empty.csv", "x,y\n");
  EXPECT_NE(message(empty).find(empty), std::string::npos);
  const std::string nan = Write("nan.csv", "1,nan\n");
  EXPECT_NE(message(nan).find(nan + ":1"), std::string::npos) << message(nan);
  const std::string missing = (dir_ / "missing.csv").string();
  EXPECT_NE(message(missing).find(missing), std::string::npos);
}

}  // namespace
}  // namespace diffeoflow::registration
