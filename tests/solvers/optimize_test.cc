#include "solvers/optimize.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "solvers/errors.h"
#include "solvers/interrupt.h"

namespace diffeoflow {
namespace {

// f(x, y) = (1 − x)² + 100 (y − x²)², minimum 0 at (1, 1).
double Rosenbrock(const Vector& x, Vector* gradient) {
  const double a = 1.0 - x[0];
  const double b = x[1] - x[0] * x[0];
  if (gradient != nullptr) {
    (*gradient)[0] = -2.0 * a - 400.0 * x[0] * b;
    (*gradient)[1] = 200.0 * b;
  }
  return a * a + 100.0 * b * b;
}

// f(x) = ½ xᵀ A x − bᵀ x with A = diag(1..n), minimum at x*_i = b_i / i.
struct Quadratic {
  explicit Quadratic(int n) : diagonal(n), b(n) {
    for (int i = 0; i < n; ++i) {
      diagonal[i] = i + 1.0;
      b[i] = std::cos(static_cast<double>(i));
    }
  }
  double operator()(const Vector& x, Vector* gradient) const {
    if (gradient != nullptr) *gradient = diagonal.cwiseProduct(x) - b;
    return 0.5 * x.dot(diagonal.cwiseProduct(x)) - b.dot(x);
  }
  Vector Minimiser() const { return b.cwiseQuotient(diagonal); }
  double MinimumValue() const { return (*this)(Minimiser(), nullptr); }
  Vector diagonal;
  Vector b;
};

TEST(OptimizeTest, LbfgsSolvesRosenbrock) {
  FunctionObjective objective(2, Rosenbrock);
  Vector x(2);
  x << -1.2, 1.0;
  OptimizerOptions options;
  options.max_iterations = 500;
  options.function_tolerance = 1e-16;
  options.gradient_tolerance = 1e-12;
  options.parameter_tolerance = 1e-16;
  const OptimizerSummary summary = Minimize(objective, x, options);
  EXPECT_NEAR(x[0], 1.0, 1e-6) << summary.FullReport();
  EXPECT_NEAR(x[1], 1.0, 1e-6);
  EXPECT_TRUE(summary.converged) << summary.termination;
  EXPECT_EQ(summary.optimizer, Optimizer::kLbfgs);
  EXPECT_DOUBLE_EQ(summary.initial_cost, 24.2);
  EXPECT_LT(summary.final_cost, 1e-12);
  EXPECT_GT(summary.iterations, 10);
  EXPECT_GE(summary.evaluations, summary.iterations);
  ASSERT_FALSE(summary.cost_history.empty());
  EXPECT_DOUBLE_EQ(summary.cost_history.front(), 24.2);
  for (std::size_t i = 1; i < summary.cost_history.size(); ++i) {
    EXPECT_LE(summary.cost_history[i], summary.cost_history[i - 1]);
  }
  EXPECT_NE(summary.BriefReport().find("lbfgs"), std::string::npos);
}

TEST(OptimizeTest, GradientDescentReachesTheMinimumOfAConvexQuadratic) {
  const Quadratic quadratic(6);
  FunctionObjective objective(6, quadratic);
  Vector x = Vector::Ones(6) * 3.0;
  OptimizerOptions options;
  options.optimizer = Optimizer::kGradientDescent;
  options.max_iterations = 5000;
  options.learning_rate = 1.0;
  options.function_tolerance = 0.0;
  options.gradient_tolerance = 1e-7;
  options.parameter_tolerance = 0.0;
  const OptimizerSummary summary = Minimize(objective, x, options);
  EXPECT_TRUE(summary.converged) << summary.FullReport();
  EXPECT_LT(summary.iterations, 500) << summary.BriefReport();
  // ‖x − x*‖ ≤ ‖∇f‖ / λ_min with λ_min = 1.
  EXPECT_LT((x - quadratic.Minimiser()).norm(), 1e-7);
  EXPECT_NEAR(summary.final_cost, quadratic.MinimumValue(), 1e-13);
  EXPECT_EQ(summary.cost_history.size(), static_cast<std::size_t>(summary.iterations) + 1);
  for (std::size_t i = 1; i < summary.cost_history.size(); ++i) {
    EXPECT_LE(summary.cost_history[i], summary.cost_history[i - 1]);  // Armijo: no increase
  }
}

TEST(OptimizeTest, AdamReachesTheMinimumOfAConvexQuadratic) {
  const Quadratic quadratic(4);
  FunctionObjective objective(4, quadratic);
  Vector x = Vector::Ones(4) * -2.0;
  OptimizerOptions options;
  options.optimizer = Optimizer::kAdam;
  options.max_iterations = 3000;
  options.learning_rate = 0.05;
  options.function_tolerance = 0.0;
  options.gradient_tolerance = 1e-6;
  const double initial_gap = quadratic(x, nullptr) - quadratic.MinimumValue();
  const OptimizerSummary summary = Minimize(objective, x, options);
  EXPECT_LT(summary.final_cost - quadratic.MinimumValue(), 1e-8 * initial_gap)
      << summary.FullReport();
  EXPECT_LT((x - quadratic.Minimiser()).norm(), 1e-4);
  EXPECT_EQ(summary.cost_history.size(), static_cast<std::size_t>(summary.iterations) + 1);
  EXPECT_EQ(summary.evaluations, summary.iterations + 1);  // one gradient per step
}

TEST(OptimizeTest, AdamFirstStepHasTheLearningRateInEveryCoordinate) {
  // With bias correction, m̂₁ = g and v̂₁ = g², so the first step is −α sign(g) (up to ε).
  FunctionObjective objective(3, [](const Vector& x, Vector* gradient) {
    if (gradient != nullptr) *gradient << 10.0 * x[0], -0.5, 3.0 * x[2] * x[2];
    return 5.0 * x[0] * x[0] - 0.5 * x[1] + x[2] * x[2] * x[2];
  });
  Vector x(3);
  x << 1.0, 2.0, -1.0;
  OptimizerOptions options;
  options.optimizer = Optimizer::kAdam;
  options.max_iterations = 1;
  options.learning_rate = 0.1;
  options.function_tolerance = 0.0;
  Minimize(objective, x, options);
  EXPECT_NEAR(x[0], 0.9, 1e-8);
  EXPECT_NEAR(x[1], 2.1, 1e-8);
  EXPECT_NEAR(x[2], -1.1, 1e-8);
}

TEST(OptimizeTest, CallbackReturningFalseStopsEveryOptimizer) {
  for (const Optimizer optimizer :
       {Optimizer::kLbfgs, Optimizer::kGradientDescent, Optimizer::kAdam}) {
    FunctionObjective objective(2, Rosenbrock);
    Vector x(2);
    x << -1.2, 1.0;
    OptimizerOptions options;
    options.optimizer = optimizer;
    options.max_iterations = 1000;
    options.function_tolerance = 0.0;
    options.learning_rate = 1e-3;
    int calls = 0;
    int last_iteration = -1;
    options.callback = [&](const IterationReport& report) {
      ++calls;
      last_iteration = report.iteration;
      EXPECT_TRUE(std::isfinite(report.cost));
      EXPECT_GE(report.elapsed_seconds, 0.0);
      return report.iteration < 3;
    };
    const OptimizerSummary summary = Minimize(objective, x, options);
    EXPECT_EQ(last_iteration, 3) << OptimizerName(optimizer);
    EXPECT_EQ(summary.iterations, 3) << OptimizerName(optimizer) << "\n" << summary.FullReport();
    EXPECT_EQ(summary.termination_type, Termination::kUserStop) << OptimizerName(optimizer);
    EXPECT_EQ(summary.termination, "stopped by callback") << OptimizerName(optimizer);
    EXPECT_FALSE(summary.converged);
    EXPECT_LT(summary.final_cost, summary.initial_cost) << OptimizerName(optimizer);
    EXPECT_DOUBLE_EQ(Rosenbrock(x, nullptr), summary.final_cost) << OptimizerName(optimizer);
  }
}

TEST(OptimizeTest, MaxIterationsIsRespected) {
  for (const Optimizer optimizer :
       {Optimizer::kLbfgs, Optimizer::kGradientDescent, Optimizer::kAdam}) {
    FunctionObjective objective(2, Rosenbrock);
    Vector x(2);
    x << -1.2, 1.0;
    OptimizerOptions options;
    options.optimizer = optimizer;
    options.max_iterations = 5;
    options.function_tolerance = 0.0;
    options.learning_rate = 1e-3;
    const OptimizerSummary summary = Minimize(objective, x, options);
    EXPECT_EQ(summary.iterations, 5) << OptimizerName(optimizer);
    EXPECT_EQ(summary.termination_type, Termination::kIterationLimit) << OptimizerName(optimizer);
    EXPECT_EQ(summary.termination, "max iterations") << OptimizerName(optimizer);
    EXPECT_FALSE(summary.converged);
  }
}

TEST(OptimizeTest, ExceptionsFromTheObjectivePropagate) {
  for (const Optimizer optimizer :
       {Optimizer::kLbfgs, Optimizer::kGradientDescent, Optimizer::kAdam}) {
    int evaluations = 0;
    FunctionObjective objective(2, [&](const Vector& x, Vector* gradient) {
      if (++evaluations == 4) throw NumericalError("folded map");
      return Rosenbrock(x, gradient);
    });
    Vector x(2);
    x << -1.2, 1.0;
    OptimizerOptions options;
    options.optimizer = optimizer;
    options.learning_rate = 1e-3;
    EXPECT_THROW(Minimize(objective, x, options), NumericalError) << OptimizerName(optimizer);
  }
}

TEST(OptimizeTest, LbfgsIsSilentEvenWhenTheLineSearchMeetsNonFiniteValues) {
  // The cost is NaN outside the unit ball around the start, which makes Ceres' line search back
  // off; nothing may be printed.
  FunctionObjective objective(2, [](const Vector& x, Vector* gradient) {
    if ((x - Vector::Constant(2, 3.0)).norm() > 1.0) {
      return std::numeric_limits<double>::quiet_NaN();
    }
    if (gradient != nullptr) *gradient = 2000.0 * x;
    return 1000.0 * x.squaredNorm();
  });
  Vector x = Vector::Constant(2, 3.0);
  OptimizerOptions options;
  options.max_iterations = 20;
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  const OptimizerSummary summary = Minimize(objective, x, options);
  const std::string out = testing::internal::GetCapturedStdout();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "");
  EXPECT_EQ(err, "");
  EXPECT_TRUE(std::isfinite(summary.final_cost));
  EXPECT_LE(summary.final_cost, summary.initial_cost);
  EXPECT_LE((x - Vector::Constant(2, 3.0)).norm(), 1.0);
}

TEST(OptimizeTest, NonFiniteCostsFailWithoutMovingOrPrinting) {
  for (const Optimizer optimizer :
       {Optimizer::kLbfgs, Optimizer::kGradientDescent, Optimizer::kAdam}) {
    FunctionObjective objective(2, [](const Vector&, Vector* gradient) {
      if (gradient != nullptr) gradient->setOnes();
      return std::numeric_limits<double>::quiet_NaN();
    });
    Vector x(2);
    x << 0.5, -0.5;
    OptimizerOptions options;
    options.optimizer = optimizer;
    testing::internal::CaptureStderr();
    const OptimizerSummary summary = Minimize(objective, x, options);
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "") << OptimizerName(optimizer);
    EXPECT_FALSE(summary.converged);
    EXPECT_EQ(summary.termination_type, Termination::kFailed) << summary.termination;
    EXPECT_EQ(summary.termination.rfind("failed", 0), 0u) << summary.termination;
    EXPECT_EQ(summary.iterations, 0);
    EXPECT_EQ(x, Vector((Vector(2) << 0.5, -0.5).finished())) << OptimizerName(optimizer);
  }
  // Adam stepping into a region where the cost is NaN keeps the last finite point.
  FunctionObjective cliff(1, [](const Vector& x, Vector* gradient) {
    if (gradient != nullptr) (*gradient)[0] = -1.0;
    return x[0] < 1.0 ? -x[0] : std::numeric_limits<double>::quiet_NaN();
  });
  Vector x = Vector::Zero(1);
  OptimizerOptions options;
  options.optimizer = Optimizer::kAdam;
  options.learning_rate = 0.3;
  options.function_tolerance = 0.0;
  const OptimizerSummary summary = Minimize(cliff, x, options);
  EXPECT_EQ(summary.iterations, 3) << summary.FullReport();
  EXPECT_NEAR(x[0], 0.9, 1e-6);
  EXPECT_EQ(summary.cost_history.size(), 4u);
  EXPECT_DOUBLE_EQ(summary.final_cost, -x[0]);
}

// Gradient descent on a scripted cost: the n-th evaluation returns costs[n] with a gradient so
// small that the Armijo test accepts every first trial, so iteration k ends at costs[k].
OptimizerSummary DescendScripted(const std::vector<double>& costs, int window, double tolerance) {
  int calls = 0;
  FunctionObjective objective(1, [&](const Vector&, Vector* gradient) {
    if (gradient != nullptr) (*gradient)[0] = 1e-9;
    const int n = std::min(calls++, static_cast<int>(costs.size()) - 1);
    return costs[static_cast<std::size_t>(n)];
  });
  Vector x = Vector::Zero(1);
  OptimizerOptions options;
  options.optimizer = Optimizer::kGradientDescent;
  options.max_iterations = 100;
  options.function_tolerance = tolerance;
  options.tolerance_window = window;
  options.gradient_tolerance = 0.0;
  options.parameter_tolerance = 0.0;
  return Minimize(objective, x, options);
}

TEST(OptimizeTest, AToleranceWindowIgnoresOneIterationThatBarelyMoves) {
  // 10 % a step, one step of 0.01 % (iteration 4), 10 % a step again, then a plateau of 0.01 %.
  std::vector<double> costs = {100.0, 90.0, 81.0, 72.9, 72.8927};
  for (int i = 0; i < 5; ++i) costs.push_back(costs.back() * 0.9);
  for (int i = 0; i < 10; ++i) costs.push_back(costs.back() * 0.9999);
  const OptimizerSummary single = DescendScripted(costs, 1, 1e-3);
  EXPECT_EQ(single.termination_type, Termination::kConverged) << single.termination;
  EXPECT_EQ(single.iterations, 4) << single.termination;

  // Over 3 iterations the decrease at iteration 4 is 10 %: the run goes on to the plateau and
  // stops at its third step, the first whose 3-iteration decrease, 0.03 %, is < 3 · 0.1 %.
  const OptimizerSummary windowed = DescendScripted(costs, 3, 1e-3);
  EXPECT_EQ(windowed.termination_type, Termination::kConverged) << windowed.termination;
  EXPECT_TRUE(windowed.converged);
  EXPECT_EQ(windowed.iterations, 12) << windowed.termination;
  EXPECT_NE(windowed.termination.find("over the last 3 iterations"), std::string::npos)
      << windowed.termination;
  EXPECT_DOUBLE_EQ(windowed.final_cost, costs[12]);
}

TEST(OptimizeTest, LbfgsStopsAtTheFirstIterationWhoseWindowedDecreaseIsBelowTheTolerance) {
  // f = 1 + Rosenbrock, so relative decreases are of a cost bounded away from 0.
  FunctionObjective objective(2, [](const Vector& x, Vector* gradient) {
    return 1.0 + Rosenbrock(x, gradient);
  });
  for (const int window : {2, 5}) {
    Vector x(2);
    x << -1.2, 1.0;
    OptimizerOptions options;
    options.max_iterations = 500;
    options.function_tolerance = 1e-4;
    options.tolerance_window = window;
    options.gradient_tolerance = 0.0;
    options.parameter_tolerance = 0.0;
    const OptimizerSummary summary = Minimize(objective, x, options);
    ASSERT_EQ(summary.termination_type, Termination::kConverged) << summary.termination;
    const std::vector<double>& c = summary.cost_history;
    ASSERT_EQ(c.size(), static_cast<std::size_t>(summary.iterations) + 1);
    const auto decrease = [&](std::size_t k) {
      return (c[k - static_cast<std::size_t>(window)] - c[k]) /
             std::abs(c[k - static_cast<std::size_t>(window)]);
    };
    const std::size_t last = c.size() - 1;
    ASSERT_GE(last, static_cast<std::size_t>(window));
    EXPECT_LT(decrease(last), window * options.function_tolerance) << "window " << window;
    for (std::size_t k = static_cast<std::size_t>(window); k < last; ++k) {
      EXPECT_GE(decrease(k), window * options.function_tolerance)
          << "window " << window << ": should have stopped at iteration " << k;
    }
  }
}

TEST(OptimizeTest, InvalidOptionsNameTheField) {
  const auto expect_message = [](const OptimizerOptions& options, const std::string& needle) {
    try {
      options.Validate();
      ADD_FAILURE() << "expected InputError for " << needle;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  OptimizerOptions options;
  EXPECT_NO_THROW(options.Validate());
  options.learning_rate = -1;
  expect_message(options, "learning_rate must be > 0, got -1");
  options = OptimizerOptions();
  options.lbfgs_rank = 0;
  expect_message(options, "lbfgs_rank");
  options = OptimizerOptions();
  options.max_seconds = 0;
  expect_message(options, "max_seconds");
  options = OptimizerOptions();
  options.max_iterations = -2;
  expect_message(options, "max_iterations");
  options = OptimizerOptions();
  options.function_tolerance = std::numeric_limits<double>::quiet_NaN();
  expect_message(options, "function_tolerance");
  options = OptimizerOptions();
  options.tolerance_window = 0;
  expect_message(options, "tolerance_window must be >= 1, got 0");
  options = OptimizerOptions();
  options.adam_beta1 = 1.0;
  expect_message(options, "adam_beta1");
  options = OptimizerOptions();
  options.adam_epsilon = 0.0;
  expect_message(options, "adam_epsilon");

  // Minimize validates too, and checks the size of the starting point.
  FunctionObjective objective(2, Rosenbrock);
  Vector x = Vector::Zero(2);
  options = OptimizerOptions();
  options.gradient_tolerance = -1;
  EXPECT_THROW(Minimize(objective, x, options), InputError);
  Vector wrong = Vector::Zero(3);
  EXPECT_THROW(Minimize(objective, wrong, OptimizerOptions()), InputError);
}

TEST(OptimizeTest, ParseOptimizerNamesTheArgument) {
  for (const Optimizer optimizer :
       {Optimizer::kLbfgs, Optimizer::kGradientDescent, Optimizer::kAdam}) {
    EXPECT_EQ(ParseOptimizer(OptimizerName(optimizer)), optimizer);
  }
  try {
    ParseOptimizer("sgd", "--method");
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("--method"), std::string::npos) << message;
    EXPECT_NE(message.find("sgd"), std::string::npos) << message;
    EXPECT_NE(message.find("lbfgs"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace diffeoflow

namespace diffeoflow {
namespace {

TEST(OptimizeInterrupt, EveryOptimizerStopsOnAnInterruptAndKeepsItsIterate) {
  for (Optimizer which : {Optimizer::kLbfgs, Optimizer::kGradientDescent, Optimizer::kAdam}) {
    // Rosenbrock: no optimizer converges within a few iterations.
    FunctionObjective rosenbrock(2, [](const Vector& x, Vector* g) {
      const double a = 1.0 - x[0], b = x[1] - x[0] * x[0];
      if (g) {
        (*g)[0] = -2.0 * a - 400.0 * x[0] * b;
        (*g)[1] = 200.0 * b;
      }
      return a * a + 100.0 * b * b;
    });
    OptimizerOptions options;
    options.optimizer = which;
    options.max_iterations = 1000;
    options.function_tolerance = 0.0;
    options.gradient_tolerance = 0.0;
    int calls = 0;
    options.callback = [&](const IterationReport&) {
      if (++calls == 3) RequestInterrupt();
      return true;
    };
    Vector x(2);
    x << -1.2, 1.0;
    const OptimizerSummary summary = Minimize(rosenbrock, x, options);
    ClearInterrupt();
    EXPECT_EQ(summary.termination_type, Termination::kInterrupted) << OptimizerName(which);
    EXPECT_EQ(summary.termination, "interrupted") << OptimizerName(which);
    EXPECT_LE(summary.iterations, 5) << OptimizerName(which);
    EXPECT_LE(summary.final_cost, summary.initial_cost) << OptimizerName(which);
    EXPECT_TRUE(x.allFinite());
  }
}

}  // namespace
}  // namespace diffeoflow
