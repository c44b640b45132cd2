// The engine: order of accuracy, tolerances, gradients in the three modes against closed forms and
// finite differences, losses at several times, forward sensitivity and bad options.
#include "solvers/integrate.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "solvers/errors.h"
#include "solvers/gradient_check.h"
#include "tests/solvers/test_dynamics.h"

namespace diffeoflow {
namespace {

using testing::LinearDynamics;
using testing::TanhField;

Matrix TestMatrix() {
  Matrix A(3, 3);
  A << -0.5, 1.0, 0.2,  //
      -1.0, -0.3, 0.4,  //
      0.1, -0.6, -0.2;
  return A;
}

Vector Flatten(const Matrix& A) { return Eigen::Map<const Vector>(A.data(), A.size()); }

double RelativeError(const Vector& a, const Vector& b) {
  return (a - b).norm() / std::max({a.norm(), b.norm(), 1e-300});
}

// ½‖x(t_k)‖² summed over the output times, weighted by (i + 1).
double WeightedSquares(const std::vector<Vector>& xs, std::vector<Vector>& grads) {
  double loss = 0.0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double w = static_cast<double>(i + 1);
    loss += 0.5 * w * xs[i].squaredNorm();
    grads[i] = w * xs[i];
  }
  return loss;
}

double LossOf(Dynamics& dyn, const Vector& x0, const Vector& theta,
              const std::vector<double>& times, const SolverOptions& options) {
  const Solution sol = Integrate(dyn, x0, theta, times, options);
  std::vector<Vector> grads(sol.states.size());
  return WeightedSquares(sol.states, grads);
}

// Exact gradients of ½‖e^{A} x0‖² for the linear system, via the Fréchet derivative of the
// matrix exponential (Van Loan's block-triangular trick).
void ExactLinearGradient(const Matrix& A, const Vector& x0, Vector& grad_x0, Vector& grad_A) {
  const Eigen::Index n = A.rows();
  const Vector x1 = A.exp() * x0;
  grad_x0 = A.exp().transpose() * x1;
  grad_A.resize(n * n);
  for (Eigen::Index j = 0; j < n; ++j) {
    for (Eigen::Index i = 0; i < n; ++i) {
      Matrix block = Matrix::Zero(2 * n, 2 * n);
      block.topLeftCorner(n, n) = A;
      block.bottomRightCorner(n, n) = A;
      block(i, n + j) = 1.0;
      const Matrix frechet = block.exp().topRightCorner(n, n);
      grad_A[i + j * n] = x1.dot(frechet * x0);
    }
  }
}

// ---- order of accuracy ------------------------------------------------------------------------

struct OrderCase {
  Method method;
  int order;
};

class FixedStepOrder : public ::testing::TestWithParam<OrderCase> {};

TEST_P(FixedStepOrder, GlobalErrorFallsWithTheMethodsOrder) {
  LinearDynamics dyn(3);
  const Matrix A = TestMatrix();
  const Vector x0 = Vector::LinSpaced(3, 1.0, -1.0);
  const Vector exact = A.exp() * x0;
  SolverOptions options;
  options.method = GetParam().method;
  std::vector<double> errors;
  for (int steps : {16, 32, 64, 128}) {
    options.steps = steps;
    const Solution sol = Integrate(dyn, x0, Flatten(A), {1.0}, options);
    errors.push_back((sol.states[0] - exact).norm());
    EXPECT_EQ(sol.summary.steps_accepted, steps);
  }
  for (std::size_t i = 1; i < errors.size(); ++i) {
    const double observed = std::log2(errors[i - 1] / errors[i]);
    EXPECT_NEAR(observed, GetParam().order, 0.15) << MethodName(GetParam().method);
  }
}

INSTANTIATE_TEST_SUITE_P(Engine, FixedStepOrder,
                         ::testing::Values(OrderCase{Method::kEuler, 1},
                                           OrderCase{Method::kMidpoint, 2},
                                           OrderCase{Method::kRk4, 4}),
                         [](const auto& info) { return MethodName(info.param.method); });

class AdaptiveTolerance : public ::testing::TestWithParam<Method> {};

TEST_P(AdaptiveTolerance, MeetsItsToleranceAndTightensWithIt) {
  LinearDynamics dyn(3);
  const Matrix A = TestMatrix();
  const Vector x0 = Vector::LinSpaced(3, 1.0, -1.0);
  SolverOptions options;
  options.method = GetParam();
  options.atol = 1e-12;
  double previous = 1.0;
  for (double rtol : {1e-4, 1e-7, 1e-10}) {
    options.rtol = rtol;
    const Solution sol = Integrate(dyn, x0, Flatten(A), {0.5, 2.0}, options);
    const double err = (sol.states[1] - (2.0 * A).exp() * x0).norm() / x0.norm();
    EXPECT_LT(err, 50 * rtol) << MethodName(GetParam()) << " rtol " << rtol;
    EXPECT_LT(err, previous);
    previous = err;
    EXPECT_NEAR((sol.states[0] - (0.5 * A).exp() * x0).norm(), 0.0, 50 * rtol);
  }
}

INSTANTIATE_TEST_SUITE_P(Engine, AdaptiveTolerance,
                         ::testing::Values(Method::kDopri5, Method::kCashKarp54,
                                           Method::kFehlberg78),
                         [](const auto& info) {
                           std::string name = MethodName(info.param);
                           name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
                           return name;
                         });

TEST(Integrate, RecordsOutputTimesExactlyIncludingT0) {
  LinearDynamics dyn(3);
  const Matrix A = TestMatrix();
  const Vector x0 = Vector::Ones(3);
  SolverOptions options;
  options.method = Method::kRk4;
  options.steps = 7;  // the output times cut the uniform grid
  const std::vector<double> times = {0.0, 0.3, 0.3, 1.0};
  const Solution sol = Integrate(dyn, x0, Flatten(A), times, options);
  ASSERT_EQ(sol.states.size(), 4u);
  EXPECT_EQ(sol.states[0], x0);
  EXPECT_EQ(sol.states[1], sol.states[2]);
  EXPECT_LT((sol.states[1] - (0.3 * A).exp() * x0).norm(), 1e-4);
}

// The adaptive methods' propagated solution has the order MethodOrder states (Dopri5 5,
// Cash–Karp 5, Fehlberg 7(8) 8): with the step sequence pinned (initial_dt = max_dt = 1/steps and a
// tolerance no step can fail, as DiscreteExact does) each is a fixed-step method, and halving the
// step divides the global error on the linear system by 2^order.
class AdaptiveOrder : public ::testing::TestWithParam<OrderCase> {};

TEST_P(AdaptiveOrder, PinnedStepsShowTheMethodsOrder) {
  const Method method = GetParam().method;
  EXPECT_EQ(MethodOrder(method), GetParam().order);
  LinearDynamics dyn(3);
  const Matrix A = TestMatrix();
  const Vector x0 = Vector::LinSpaced(3, 1.0, -1.0);
  const Vector exact = A.exp() * x0;
  SolverOptions options;
  options.method = method;
  options.rtol = 1e6;
  options.atol = 1e6;
  // Fehlberg78 reaches round-off within a few halvings: start it from fewer steps.
  const std::vector<int> step_counts =
      GetParam().order >= 8 ? std::vector<int>{2, 4, 8} : std::vector<int>{8, 16, 32, 64};
  std::vector<double> errors;
  for (int steps : step_counts) {
    options.initial_dt = 1.0 / steps;
    options.max_dt = 1.0 / steps;
    const Solution sol = Integrate(dyn, x0, Flatten(A), {1.0}, options);
    EXPECT_EQ(sol.summary.steps_accepted, steps) << MethodName(method);
    EXPECT_EQ(sol.summary.steps_rejected, 0) << MethodName(method);
    errors.push_back((sol.states[0] - exact).norm());
  }
  for (std::size_t i = 1; i < errors.size(); ++i) {
    const double observed = std::log2(errors[i - 1] / errors[i]);
    EXPECT_NEAR(observed, GetParam().order, 0.3)
        << MethodName(method) << " " << step_counts[i - 1] << " -> " << step_counts[i]
        << " steps: errors " << errors[i - 1] << ", " << errors[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Engine, AdaptiveOrder,
                         ::testing::Values(OrderCase{Method::kDopri5, 5},
                                           OrderCase{Method::kCashKarp54, 5},
                                           OrderCase{Method::kFehlberg78, 8}),
                         [](const auto& info) {
                           std::string name = MethodName(info.param.method);
                           name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
                           return name;
                         });

// ---- gradients: linear system against the closed form -----------------------------------------

Vector ThetaOf(const Matrix& A) { return Flatten(A); }

TEST(GradientDiscrete, LinearSystemMatchesClosedFormAsStepsShrink) {
  LinearDynamics dyn(3);
  const Matrix A = TestMatrix();
  const Vector x0(Vector::LinSpaced(3, 0.5, -1.5));
  Vector gx_exact, gA_exact;
  ExactLinearGradient(A, x0, gx_exact, gA_exact);
  SolverOptions options;
  options.method = Method::kRk4;
  options.steps = 50;
  const GradientResult r =
      Gradient(dyn, x0, ThetaOf(A), {1.0}, WeightedSquares, options, GradientOptions{});
  EXPECT_LT(RelativeError(r.grad_x0, gx_exact), 1e-7);
  EXPECT_LT(RelativeError(r.grad_theta, gA_exact), 1e-7);
}

class ContinuousModes : public ::testing::TestWithParam<GradientMode> {};

TEST_P(ContinuousModes, LinearSystemConvergesToClosedFormAsTolerancesTighten) {
  LinearDynamics dyn(3);
  const Matrix A = TestMatrix();
  const Vector x0(Vector::LinSpaced(3, 0.5, -1.5));
  Vector gx_exact, gA_exact;
  ExactLinearGradient(A, x0, gx_exact, gA_exact);
  SolverOptions options;
  options.method = Method::kDopri5;
  GradientOptions gopts;
  gopts.mode = GetParam();
  double previous = 1.0;
  for (double tol : {1e-4, 1e-7, 1e-10}) {
    options.rtol = tol;
    options.atol = tol * 1e-2;
    const GradientResult r = Gradient(dyn, x0, ThetaOf(A), {1.0}, WeightedSquares, options, gopts);
    const double err =
        std::max(RelativeError(r.grad_x0, gx_exact), RelativeError(r.grad_theta, gA_exact));
    EXPECT_LT(err, previous) << GradientModeName(GetParam()) << " tol " << tol;
    previous = err;
  }
  EXPECT_LT(previous, 1e-7) << GradientModeName(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Engine, ContinuousModes,
                         ::testing::Values(GradientMode::kBacksolve, GradientMode::kCheckpointed),
                         [](const auto& info) { return GradientModeName(info.param); });

// ---- gradients: a nonlinear neural field against finite differences ------------------------

struct FieldProblem {
  TanhField dyn{4, 2, 6};
  Vector x0, theta;
  FieldProblem() {
    std::mt19937 rng(7);
    std::normal_distribution<double> normal(0.0, 1.0);
    x0 = Vector::NullaryExpr(dyn.state_dim(), [&] { return normal(rng); });
    theta = Vector::NullaryExpr(dyn.param_dim(), [&] { return 0.6 * normal(rng); });
  }
};

struct ModeMethod {
  GradientMode mode;
  Method method;
};

std::string CaseName(const ModeMethod& c) {
  std::string name = GradientModeName(c.mode) + "_" + MethodName(c.method);
  name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
  return name;
}

class DiscreteExact : public ::testing::TestWithParam<Method> {};

// The discrete mode is the exact derivative of the discrete map: fixed-step solvers, and adaptive
// ones whose step sequence is pinned (max_dt below what the tolerance allows, no rejections).
TEST_P(DiscreteExact, GradientDiscreteEqualsFiniteDifferencesOfTheDiscreteMap) {
  FieldProblem p;
  SolverOptions options;
  options.method = GetParam();
  options.steps = 12;
  if (IsAdaptive(options.method)) {
    options.rtol = 1e-2;
    options.atol = 1e-2;
    options.initial_dt = 0.05;
    options.max_dt = 0.05;
  }
  const std::vector<double> times = {0.25, 0.6, 1.0};
  GradientOptions gopts;
  gopts.mode = GradientMode::kDiscrete;
  gopts.checkpoint_every = 3;
  const GradientResult r = Gradient(p.dyn, p.x0, p.theta, times, WeightedSquares, options, gopts);
  if (IsAdaptive(options.method)) {
    EXPECT_EQ(r.summary.steps_rejected, 0);
  }
  const Vector gx_fd = NumericalGradient(
      [&](const Vector& x) { return LossOf(p.dyn, x, p.theta, times, options); }, p.x0, 1e-5);
  const Vector gt_fd = NumericalGradient(
      [&](const Vector& th) { return LossOf(p.dyn, p.x0, th, times, options); }, p.theta, 1e-5);
  EXPECT_LT(RelativeError(r.grad_x0, gx_fd), 1e-8) << MethodName(GetParam());
  EXPECT_LT(RelativeError(r.grad_theta, gt_fd), 1e-8) << MethodName(GetParam());
  EXPECT_NEAR(r.loss, LossOf(p.dyn, p.x0, p.theta, times, options), 1e-12 * std::abs(r.loss));
}

INSTANTIATE_TEST_SUITE_P(Engine, DiscreteExact,
                         ::testing::Values(Method::kEuler, Method::kMidpoint, Method::kRk4,
                                           Method::kDopri5, Method::kCashKarp54,
                                           Method::kFehlberg78),
                         [](const auto& info) {
                           std::string name = MethodName(info.param);
                           name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
                           return name;
                         });

class AllModesNonlinear : public ::testing::TestWithParam<ModeMethod> {};

// Every mode, losses at several times: the gradient equals central differences of the (accurate)
// solution map.
TEST_P(AllModesNonlinear, GradientMatchesFiniteDifferencesWithLossesAtSeveralTimes) {
  FieldProblem p;
  SolverOptions options;
  options.method = GetParam().method;
  options.steps = 200;
  options.rtol = 1e-11;
  options.atol = 1e-12;
  const std::vector<double> times = {0.0, 0.3, 0.7, 1.2};
  GradientOptions gopts;
  gopts.mode = GetParam().mode;
  gopts.checkpoint_every = 4;
  const GradientResult r = Gradient(p.dyn, p.x0, p.theta, times, WeightedSquares, options, gopts);
  SolverOptions fine = options;
  fine.method = Method::kDopri5;
  fine.rtol = 1e-12;
  fine.atol = 1e-13;
  std::mt19937 rng(3);
  const auto fx = [&](const Vector& x) { return LossOf(p.dyn, x, p.theta, times, fine); };
  const auto ft = [&](const Vector& th) { return LossOf(p.dyn, p.x0, th, times, fine); };
  for (int trial = 0; trial < 3; ++trial) {
    const GradientCheckResult cx = CheckDirectionalDerivative(fx, p.x0, r.grad_x0, rng, 1e-4);
    const GradientCheckResult ct = CheckDirectionalDerivative(ft, p.theta, r.grad_theta, rng, 1e-4);
    EXPECT_LT(cx.relative_error, 1e-6) << CaseName(GetParam());
    EXPECT_LT(ct.relative_error, 1e-6) << CaseName(GetParam());
  }
  EXPECT_GT(r.summary.nfe_forward, 0);
  EXPECT_GT(r.summary.vjp_backward, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Engine, AllModesNonlinear,
    ::testing::Values(ModeMethod{GradientMode::kDiscrete, Method::kRk4},
                      ModeMethod{GradientMode::kDiscrete, Method::kDopri5},
                      ModeMethod{GradientMode::kBacksolve, Method::kRk4},
                      ModeMethod{GradientMode::kBacksolve, Method::kDopri5},
                      ModeMethod{GradientMode::kBacksolve, Method::kFehlberg78},
                      ModeMethod{GradientMode::kCheckpointed, Method::kRk4},
                      ModeMethod{GradientMode::kCheckpointed, Method::kDopri5},
                      ModeMethod{GradientMode::kCheckpointed, Method::kCashKarp54}),
    [](const auto& info) { return CaseName(info.param); });

TEST(GradientBacksolve, SeminormNeedsNoMoreBackwardStepsThanTheFullNorm) {
  FieldProblem p;
  SolverOptions options;
  options.method = Method::kDopri5;
  options.rtol = 1e-7;
  options.atol = 1e-9;
  GradientOptions gopts;
  gopts.mode = GradientMode::kBacksolve;
  gopts.seminorm = false;
  const GradientResult full = Gradient(p.dyn, p.x0, p.theta, {1.0}, WeightedSquares, options, gopts);
  gopts.seminorm = true;
  const GradientResult semi = Gradient(p.dyn, p.x0, p.theta, {1.0}, WeightedSquares, options, gopts);
  EXPECT_LE(semi.summary.backward_steps_accepted + semi.summary.backward_steps_rejected,
            full.summary.backward_steps_accepted + full.summary.backward_steps_rejected);
  EXPECT_LT(RelativeError(semi.grad_theta, full.grad_theta), 1e-5);
}

TEST(GradientCheckpointed, AdjointTolerancesAreHonoured) {
  // The forward solve is accurate (rtol 1e-12); only the adjoint tolerances change. Each tighter
  // adjoint takes more backward steps and lands closer to the reference gradient: the discrete
  // adjoint of RK4 with 4000 steps (the exact derivative of a map within ~1e-14 of the flow's).
  FieldProblem p;
  SolverOptions reference_options;
  reference_options.method = Method::kRk4;
  reference_options.steps = 4000;
  const GradientResult reference = Gradient(p.dyn, p.x0, p.theta, {1.0}, WeightedSquares,
                                            reference_options, GradientOptions{});
  SolverOptions options;
  options.method = Method::kDopri5;
  options.rtol = 1e-12;
  options.atol = 1e-14;
  GradientOptions gopts;
  gopts.mode = GradientMode::kCheckpointed;
  std::vector<double> errors;
  long previous_steps = 0;
  for (double tol : {1e-4, 1e-7, 1e-10}) {
    gopts.adjoint_rtol = tol;
    gopts.adjoint_atol = 1e-2 * tol;
    const GradientResult r = Gradient(p.dyn, p.x0, p.theta, {1.0}, WeightedSquares, options, gopts);
    errors.push_back(std::max(RelativeError(r.grad_x0, reference.grad_x0),
                              RelativeError(r.grad_theta, reference.grad_theta)));
    EXPECT_GT(r.summary.backward_steps_accepted, previous_steps) << "adjoint rtol " << tol;
    previous_steps = r.summary.backward_steps_accepted;
    if (errors.size() > 1) {
      EXPECT_LT(errors.back(), errors[errors.size() - 2]) << "adjoint rtol " << tol;
    }
  }
  EXPECT_LT(errors.back(), 5e-11);
  EXPECT_GT(errors.front(), 10.0 * errors.back());
}

// ---- forward sensitivity --------------------------------------------------------------------

TEST(ForwardSensitivity, LinearJacobianIsTheMatrixExponential) {
  LinearDynamics dyn(3);
  const Matrix A = TestMatrix();
  SolverOptions options;
  options.method = Method::kDopri5;
  options.rtol = 1e-10;
  options.atol = 1e-12;
  const SensitivitySolution s = ForwardSensitivity(dyn, Vector::Ones(3), Flatten(A), {0.5, 1.0}, options);
  EXPECT_LT((s.jacobians[0] - (0.5 * A).exp()).norm(), 1e-8);
  EXPECT_LT((s.jacobians[1] - A.exp()).norm(), 1e-8);
}

TEST(ForwardSensitivity, NonlinearJacobianEqualsFiniteDifferences) {
  FieldProblem p;
  SolverOptions options;
  options.method = Method::kDopri5;
  options.rtol = 1e-11;
  options.atol = 1e-12;
  const SensitivitySolution s = ForwardSensitivity(p.dyn, p.x0, p.theta, {1.0}, options);
  const double h = 1e-5;
  for (Eigen::Index j = 0; j < p.x0.size(); ++j) {
    Vector plus = p.x0, minus = p.x0;
    plus[j] += h;
    minus[j] -= h;
    const Vector column = (Integrate(p.dyn, plus, p.theta, {1.0}, options).states[0] -
                           Integrate(p.dyn, minus, p.theta, {1.0}, options).states[0]) /
                          (2 * h);
    EXPECT_LT((s.jacobians[0].col(j) - column).norm(), 1e-6 * std::max(1.0, column.norm()));
  }
}

// ---- bad input ------------------------------------------------------------------------------

TEST(IntegrateErrors, BadOptionsNameTheField) {
  LinearDynamics dyn(2);
  const Vector x0 = Vector::Ones(2), theta = Vector::Zero(4);
  SolverOptions options;
  options.rtol = -1.0;
  try {
    Integrate(dyn, x0, theta, {1.0}, options);
    FAIL() << "negative rtol accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("rtol"), std::string::npos) << e.what();
  }
  options = SolverOptions{};
  options.steps = 0;
  EXPECT_THROW(Integrate(dyn, x0, theta, {1.0}, options), InputError);
  options = SolverOptions{};
  EXPECT_THROW(Integrate(dyn, x0, theta, {1.0, 0.5}, options), InputError);
  EXPECT_THROW(Integrate(dyn, x0, theta, {}, options), InputError);
  EXPECT_THROW(Integrate(dyn, Vector::Ones(3), theta, {1.0}, options), InputError);
  Vector nan_x0 = x0;
  nan_x0[0] = std::nan("");
  EXPECT_THROW(Integrate(dyn, nan_x0, theta, {1.0}, options), InputError);
  EXPECT_THROW(ParseMethod("rk45"), InputError);
  EXPECT_THROW(ParseGradientMode("adjoint"), InputError);
  GradientOptions gopts;
  gopts.checkpoint_every = -2;
  EXPECT_THROW(Gradient(dyn, x0, theta, {1.0}, WeightedSquares, SolverOptions{}, gopts), InputError);
}

TEST(IntegrateErrors, BlowUpIsANumericalErrorNotGarbage) {
  LinearDynamics dyn(1);
  Vector theta(1);
  theta << 1e80;  // four RK4 steps of size 1/4 overflow to Inf
  SolverOptions options;
  options.method = Method::kRk4;
  options.steps = 4;
  EXPECT_THROW(Integrate(dyn, Vector::Ones(1), theta, {1.0}, options), NumericalError);
  theta << 800.0;  // e^{800} overflows; the adaptive solver runs out of steps first
  options.method = Method::kDopri5;
  options.max_steps = 50;
  EXPECT_THROW(Integrate(dyn, Vector::Ones(1), theta, {1.0}, options), NumericalError);
}

TEST(IntegrateErrors, ParsesEveryMethodName) {
  for (Method m : {Method::kEuler, Method::kMidpoint, Method::kRk4, Method::kDopri5,
                   Method::kCashKarp54, Method::kFehlberg78}) {
    EXPECT_EQ(ParseMethod(MethodName(m)), m);
  }
}

}  // namespace
}  // namespace diffeoflow

namespace diffeoflow {
namespace {

TEST(IntegrateDenseOutput, ManyOutputTimesCostNoExtraStepsAndMeetTheTolerance) {
  testing::LinearDynamics dyn(3);
  const Matrix A = TestMatrix();
  const Vector x0 = Vector::LinSpaced(3, 1.0, -1.0);
  SolverOptions options;
  options.method = Method::kDopri5;
  options.rtol = 1e-9;
  options.atol = 1e-11;
  std::vector<double> times;
  for (int i = 0; i <= 200; ++i) times.push_back(2.0 * i / 200);
  const Solution clamped = Integrate(dyn, x0, Flatten(A), times, options);
  options.dense_output = true;
  const Solution dense = Integrate(dyn, x0, Flatten(A), times, options);
  EXPECT_LT(dense.summary.steps_accepted, clamped.summary.steps_accepted / 2);
  EXPECT_LT(dense.summary.nfe_forward, clamped.summary.nfe_forward / 2);
  ASSERT_EQ(dense.states.size(), times.size());
  EXPECT_EQ(dense.states[0], x0);
  for (std::size_t i = 0; i < times.size(); ++i) {
    EXPECT_LT((dense.states[i] - (times[i] * A).exp() * x0).norm(), 1e-7) << "t = " << times[i];
  }
  options.method = Method::kRk4;
  EXPECT_THROW(Integrate(dyn, x0, Flatten(A), times, options), InputError);
}

}  // namespace
}  // namespace diffeoflow
