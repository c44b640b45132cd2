#include "solvers/optimize.h"

#include <ceres/first_order_function.h>
#include <ceres/gradient_problem.h>
#include <ceres/gradient_problem_solver.h>
#include <ceres/iteration_callback.h>

#include "solvers/clock.h"
#include "solvers/interrupt.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "solvers/errors.h"

namespace diffeoflow {
namespace {

using Clock = std::chrono::steady_clock;

std::string NumberText(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

[[noreturn]] void InvalidOption(const std::string& field, const std::string& expectation,
                                double value) {
  throw InputError(field + " must be " + expectation + ", got " + NumberText(value));
}

// Calls the objective, checks the gradient's size and counts evaluations.
class CountedObjective {
 public:
  explicit CountedObjective(Objective& objective) : objective_(objective) {}

  double operator()(const Vector& x, Vector* gradient) {
    if (gradient != nullptr) gradient->resize(x.size());
    ++evaluations_;
    const double cost = objective_.Evaluate(x, gradient);
    if (gradient != nullptr && gradient->size() != x.size()) {
      throw std::logic_error("Objective::Evaluate returned a gradient of size " +
                             std::to_string(gradient->size()) + " for " +
                             std::to_string(x.size()) + " parameters");
    }
    return cost;
  }
  int evaluations() const { return evaluations_; }

 private:
  Objective& objective_;
  int evaluations_ = 0;
};

// ---------------------------------------------------------------------------------------------
// L-BFGS through Ceres.

// Exposes an Objective to Ceres. An exception thrown by the objective is kept and every later
// evaluation fails, so that Ceres stops; Minimize rethrows it after Solve returns.
class CeresFunction final : public ceres::FirstOrderFunction {
 public:
  CeresFunction(CountedObjective& objective, Eigen::Index n)
      : objective_(objective), n_(n), x_(n), gradient_(n) {}

  bool Evaluate(const double* parameters, double* cost, double* gradient) const override {
    if (error_) return false;
    x_ = Eigen::Map<const Vector>(parameters, n_);
    try {
      *cost = objective_(x_, gradient != nullptr ? &gradient_ : nullptr);
    } catch (...) {
      error_ = std::current_exception();
      return false;
    }
    if (!std::isfinite(*cost)) return false;
    if (gradient != nullptr) {
      if (!gradient_.allFinite()) return false;
      Eigen::Map<Vector>(gradient, n_) = gradient_;
    }
    return true;
  }
  int NumParameters() const override { return static_cast<int>(n_); }
  const std::exception_ptr& error() const { return error_; }

 private:
  CountedObjective& objective_;
  Eigen::Index n_;
  mutable Vector x_;
  mutable Vector gradient_;
  mutable std::exception_ptr error_;
};

// The windowed rule of OptimizerOptions::tolerance_window over the costs so far (index 0: the
// start): whether the decrease over the last W iterations is below W · function_tolerance, and
// the message that says so.
std::optional<std::string> WindowConverged(const OptimizerOptions& options,
                                           const std::vector<double>& cost_history) {
  const int window = options.tolerance_window;
  if (window <= 1 || static_cast<int>(cost_history.size()) <= window) return std::nullopt;
  const double before = cost_history[cost_history.size() - 1 - static_cast<std::size_t>(window)];
  const double now = cost_history.back();
  const double scale = std::max(std::abs(before), std::numeric_limits<double>::min());
  const double decrease = (before - now) / scale;
  if (!(decrease < window * options.function_tolerance)) return std::nullopt;
  return "converged: relative cost decrease over the last " + std::to_string(window) +
         " iterations " + NumberText(decrease) + " < " + std::to_string(window) +
         " x function_tolerance " + NumberText(options.function_tolerance);
}

class CeresCallback final : public ceres::IterationCallback {
 public:
  CeresCallback(const OptimizerOptions& options, const CeresFunction& function,
                Clock::time_point start, std::vector<double>& cost_history)
      : options_(options), function_(function), start_(start), cost_history_(cost_history) {}

  ceres::CallbackReturnType operator()(const ceres::IterationSummary& summary) override {
    if (function_.error()) return ceres::SOLVER_ABORT;
    // Ceres reports iteration 0 (the initial point) too, so cost_history[0] is the initial cost.
    if (summary.iteration == 0 || summary.step_is_successful) {
      cost_history_.push_back(summary.cost);
    }
    if (InterruptRequested()) {
      stopped_ = true;
      interrupted_ = true;
      return ceres::SOLVER_TERMINATE_SUCCESSFULLY;
    }
    if (options_.callback) {
      IterationReport report;
      report.iteration = summary.iteration;
      report.cost = summary.cost;
      report.gradient_norm = summary.gradient_norm;
      report.step_size = summary.step_size;
      report.elapsed_seconds = SecondsSince(start_);
      if (!options_.callback(report)) {
        stopped_ = true;
        return ceres::SOLVER_TERMINATE_SUCCESSFULLY;
      }
    }
    if (summary.iteration > 0) {
      converged_ = WindowConverged(options_, cost_history_);
      if (converged_) return ceres::SOLVER_TERMINATE_SUCCESSFULLY;
    }
    return ceres::SOLVER_CONTINUE;
  }
  bool stopped() const { return stopped_; }
  bool interrupted() const { return interrupted_; }
  // The message of the windowed rule when it ended the run.
  const std::optional<std::string>& converged() const { return converged_; }

 private:
  const OptimizerOptions& options_;
  const CeresFunction& function_;
  Clock::time_point start_;
  std::vector<double>& cost_history_;
  bool stopped_ = false;
  bool interrupted_ = false;
  std::optional<std::string> converged_;
};

void MinimizeLbfgs(CountedObjective& objective, Vector& x, const OptimizerOptions& options,
                   Clock::time_point start, OptimizerSummary& result) {
  // GradientProblem takes ownership of the function.
  auto* function = new CeresFunction(objective, x.size());
  ceres::GradientProblem problem(function);
  CeresCallback callback(options, *function, start, result.cost_history);

  ceres::GradientProblemSolver::Options solver_options;
  solver_options.line_search_direction_type = ceres::LBFGS;
  solver_options.max_lbfgs_rank = options.lbfgs_rank;
  solver_options.max_num_iterations = options.max_iterations;
  solver_options.max_solver_time_in_seconds = options.max_seconds;
  // With a window the callback applies the rule (WindowConverged), so Ceres' own is off.
  solver_options.function_tolerance =
      options.tolerance_window > 1 ? 0.0 : options.function_tolerance;
  solver_options.gradient_tolerance = options.gradient_tolerance;
  solver_options.parameter_tolerance = options.parameter_tolerance;
  solver_options.logging_type = ceres::SILENT;
  solver_options.minimizer_progress_to_stdout = false;
  solver_options.callbacks.push_back(&callback);

  ceres::GradientProblemSolver::Summary summary;
  ceres::Solve(solver_options, problem, x.data(), &summary);
  if (function->error()) std::rethrow_exception(function->error());

  result.iterations =
      summary.iterations.empty() ? 0 : static_cast<int>(summary.iterations.size()) - 1;
  // When the initial point cannot be evaluated Ceres reports no cost at all.
  const bool started = !summary.iterations.empty();
  result.initial_cost =
      started ? summary.initial_cost : std::numeric_limits<double>::quiet_NaN();
  result.final_cost = summary.IsSolutionUsable() ? summary.final_cost : result.initial_cost;
  switch (summary.termination_type) {
    case ceres::CONVERGENCE:
      result.converged = true;
      result.termination_type = Termination::kConverged;
      result.termination = "converged: " + summary.message;
      break;
    case ceres::NO_CONVERGENCE:
      if (summary.message.find("time") != std::string::npos) {
        result.termination_type = Termination::kTimeLimit;
        result.termination = "time limit";
      } else {
        result.termination_type = Termination::kIterationLimit;
        result.termination = "max iterations";
      }
      break;
    case ceres::USER_SUCCESS:
      if (callback.converged() && !callback.stopped()) {
        result.converged = true;
        result.termination_type = Termination::kConverged;
        result.termination = *callback.converged();
        break;
      }
      result.termination_type = callback.interrupted() ? Termination::kInterrupted
                                : callback.stopped()   ? Termination::kUserStop
                                                       : Termination::kUserStop;
      result.termination = callback.interrupted() ? "interrupted"
                           : callback.stopped()   ? "stopped by callback"
                                                  : summary.message;
      break;
    default:
      result.termination_type = Termination::kFailed;
      result.termination = "failed: " + summary.message;
      break;
  }
  if (result.cost_history.empty()) result.cost_history.push_back(result.initial_cost);
}

// ---------------------------------------------------------------------------------------------
// Gradient descent and Adam share the stopping rules.

struct Stop {
  Termination type;
  std::string message;
};

class Stopping {
 public:
  Stopping(const OptimizerOptions& options, Clock::time_point start)
      : options_(options), start_(start) {}

  // Reports the iteration to the callback; returns the reason to stop, or nothing to go on.
  std::optional<Stop> AfterIteration(int iteration, double previous_cost, double cost,
                                     double gradient_norm, double step_size,
                                     OptimizerSummary& result) {
    if (!std::isfinite(cost)) return Stop{Termination::kFailed, "failed: non-finite cost"};
    if (InterruptRequested()) return Stop{Termination::kInterrupted, "interrupted"};
    if (options_.callback) {
      IterationReport report;
      report.iteration = iteration;
      report.cost = cost;
      report.gradient_norm = gradient_norm;
      report.step_size = step_size;
      report.elapsed_seconds = SecondsSince(start_);
      if (!options_.callback(report)) return Stop{Termination::kUserStop, "stopped by callback"};
    }
    if (gradient_norm <= options_.gradient_tolerance) {
      result.converged = true;
      return Stop{Termination::kConverged,
                  "converged: gradient norm " + NumberText(gradient_norm) +
                      " <= gradient_tolerance"};
    }
    if (options_.tolerance_window > 1) {
      if (std::optional<std::string> message = WindowConverged(options_, result.cost_history)) {
        result.converged = true;
        return Stop{Termination::kConverged, *message};
      }
    } else {
      const double scale =
          std::max(std::abs(previous_cost), std::numeric_limits<double>::min());
      if (std::abs(previous_cost - cost) / scale < options_.function_tolerance) {
        result.converged = true;
        return Stop{Termination::kConverged,
                    "converged: relative cost change < function_tolerance"};
      }
    }
    if (SecondsSince(start_) >= options_.max_seconds) {
      return Stop{Termination::kTimeLimit, "time limit"};
    }
    return std::nullopt;
  }

 private:
  const OptimizerOptions& options_;
  Clock::time_point start_;
};

// Evaluates the starting point for the first-order loops (GD, Adam) and records it; returns false
// when there is nothing to iterate (a non-finite start, or already within gradient_tolerance).
bool EvaluateStart(CountedObjective& objective, const Vector& x, const OptimizerOptions& options,
                   double& cost, Vector& gradient, OptimizerSummary& result) {
  cost = objective(x, &gradient);
  result.initial_cost = cost;
  result.final_cost = cost;
  result.cost_history.push_back(cost);
  if (!std::isfinite(cost) || !gradient.allFinite()) {
    result.termination_type = Termination::kFailed;
    result.termination = "failed: non-finite cost or gradient at the initial point";
    return false;
  }
  if (gradient.norm() <= options.gradient_tolerance) {
    result.converged = true;
    result.termination_type = Termination::kConverged;
    result.termination = "converged: gradient norm <= gradient_tolerance at the initial point";
    return false;
  }
  return true;
}

// Steepest descent with a backtracking (Armijo) line search: accept t when
//   f(x − t g) ≤ f(x) − c t ‖g‖²,  c = 1e-4,
// halving t from the previous accepted step times two (the first trial is learning_rate).
void MinimizeGradientDescent(CountedObjective& objective, Vector& x,
                             const OptimizerOptions& options, Clock::time_point start,
                             OptimizerSummary& result) {
  constexpr double kSufficientDecrease = 1e-4;
  constexpr int kMaxBacktracks = 60;
  Stopping stopping(options, start);
  Vector gradient(x.size());
  Vector trial_gradient(x.size());
  Vector trial(x.size());
  double cost = 0.0;
  if (!EvaluateStart(objective, x, options, cost, gradient, result)) return;
  double step = options.learning_rate;
  result.termination = "max iterations";
  for (int iteration = 1; iteration <= options.max_iterations; ++iteration) {
    const double squared_norm = gradient.squaredNorm();
    double trial_cost = std::numeric_limits<double>::quiet_NaN();
    bool accepted = false;
    for (int backtrack = 0; backtrack < kMaxBacktracks; ++backtrack) {
      trial = x - step * gradient;
      trial_cost = objective(trial, &trial_gradient);
      if (std::isfinite(trial_cost) && trial_gradient.allFinite() &&
          trial_cost <= cost - kSufficientDecrease * step * squared_norm) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    if (!accepted) {
      result.termination_type = Termination::kFailed;
      result.termination = "line search failed: no decrease along the gradient";
      break;
    }
    const double step_norm = step * std::sqrt(squared_norm);
    const double previous_cost = cost;
    x.swap(trial);
    gradient.swap(trial_gradient);
    cost = trial_cost;
    result.iterations = iteration;
    result.final_cost = cost;
    result.cost_history.push_back(cost);
    std::optional<Stop> stop =
        stopping.AfterIteration(iteration, previous_cost, cost, gradient.norm(), step, result);
    if (!stop && step_norm <= options.parameter_tolerance *
                                  (x.norm() + options.parameter_tolerance)) {
      result.converged = true;
      stop = Stop{Termination::kConverged, "converged: step norm <= parameter_tolerance"};
    }
    if (stop) {
      result.termination_type = stop->type;
      result.termination = stop->message;
      break;
    }
    step *= 2.0;
  }
}

// Adam (AdamStep, Kingma & Ba 2015) with g_k = ∇f(x_{k−1}).
void MinimizeAdam(CountedObjective& objective, Vector& x, const OptimizerOptions& options,
                  Clock::time_point start, OptimizerSummary& result) {
  Stopping stopping(options, start);
  Vector gradient(x.size());
  Vector first_moment = Vector::Zero(x.size());
  Vector second_moment = Vector::Zero(x.size());
  double cost = 0.0;
  if (!EvaluateStart(objective, x, options, cost, gradient, result)) return;
  Vector previous_x(x.size());
  const AdamOptions adam{options.adam_beta1, options.adam_beta2, options.adam_epsilon};
  result.termination = "max iterations";
  for (int iteration = 1; iteration <= options.max_iterations; ++iteration) {
    previous_x = x;
    AdamStep(adam, iteration, options.learning_rate, gradient, first_moment, second_moment, x);
    const double previous_cost = cost;
    cost = objective(x, &gradient);
    if (!std::isfinite(cost) || !gradient.allFinite()) {
      // Keep the last point where cost and gradient were finite.
      x.swap(previous_x);
      result.termination_type = Termination::kFailed;
      result.termination =
          "failed: non-finite cost or gradient at iteration " + std::to_string(iteration);
      break;
    }
    result.iterations = iteration;
    result.final_cost = cost;
    result.cost_history.push_back(cost);
    const std::optional<Stop> stop = stopping.AfterIteration(
        iteration, previous_cost, cost, gradient.norm(), options.learning_rate, result);
    if (stop) {
      result.termination_type = stop->type;
      result.termination = stop->message;
      break;
    }
  }
}

}  // namespace

void AdamStep(const AdamOptions& options, long k, double learning_rate, const Vector& gradient,
              Vector& first_moment, Vector& second_moment, Vector& x) {
  const double b1 = options.beta1, b2 = options.beta2;
  first_moment = b1 * first_moment + (1.0 - b1) * gradient;
  second_moment = b2 * second_moment + (1.0 - b2) * gradient.cwiseAbs2();
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(k));
  const double c2 = 1.0 - std::pow(b2, static_cast<double>(k));
  x.array() -= learning_rate * (first_moment.array() / c1) /
               ((second_moment.array() / c2).sqrt() + options.epsilon);
}

Optimizer ParseOptimizer(const std::string& name, const std::string& argument) {
  if (name == "lbfgs") return Optimizer::kLbfgs;
  if (name == "gd") return Optimizer::kGradientDescent;
  if (name == "adam") return Optimizer::kAdam;
  throw InputError(argument + ": unknown optimizer '" + name + "', expected lbfgs, gd or adam");
}

std::string OptimizerName(Optimizer o) {
  switch (o) {
    case Optimizer::kLbfgs: return "lbfgs";
    case Optimizer::kGradientDescent: return "gd";
    case Optimizer::kAdam: return "adam";
  }
  return "unknown";
}

void OptimizerOptions::Validate() const {
  if (optimizer != Optimizer::kLbfgs && optimizer != Optimizer::kGradientDescent &&
      optimizer != Optimizer::kAdam) {
    throw InputError("optimizer must be lbfgs, gd or adam");
  }
  if (max_iterations < 0) InvalidOption("max_iterations", ">= 0", max_iterations);
  if (!(max_seconds > 0)) InvalidOption("max_seconds", "> 0", max_seconds);
  if (!(function_tolerance >= 0) || !std::isfinite(function_tolerance)) {
    InvalidOption("function_tolerance", ">= 0 and finite", function_tolerance);
  }
  if (!(gradient_tolerance >= 0) || !std::isfinite(gradient_tolerance)) {
    InvalidOption("gradient_tolerance", ">= 0 and finite", gradient_tolerance);
  }
  if (!(parameter_tolerance >= 0) || !std::isfinite(parameter_tolerance)) {
    InvalidOption("parameter_tolerance", ">= 0 and finite", parameter_tolerance);
  }
  if (tolerance_window < 1) InvalidOption("tolerance_window", ">= 1", tolerance_window);
  if (lbfgs_rank < 1) InvalidOption("lbfgs_rank", ">= 1", lbfgs_rank);
  if (!(learning_rate > 0) || !std::isfinite(learning_rate)) {
    InvalidOption("learning_rate", "> 0", learning_rate);
  }
  if (!(adam_beta1 >= 0 && adam_beta1 < 1)) InvalidOption("adam_beta1", "in [0, 1)", adam_beta1);
  if (!(adam_beta2 >= 0 && adam_beta2 < 1)) InvalidOption("adam_beta2", "in [0, 1)", adam_beta2);
  if (!(adam_epsilon > 0) || !std::isfinite(adam_epsilon)) {
    InvalidOption("adam_epsilon", "> 0", adam_epsilon);
  }
}

std::string TerminationName(Termination termination) {
  switch (termination) {
    case Termination::kConverged: return "converged";
    case Termination::kIterationLimit: return "iteration limit";
    case Termination::kTimeLimit: return "time limit";
    case Termination::kUserStop: return "stopped by callback";
    case Termination::kInterrupted: return "interrupted";
    case Termination::kNoIterations: return "no iterations";
    case Termination::kFailed: return "failed";
  }
  return "unknown";
}

std::string OptimizerSummary::BriefReport() const {
  std::ostringstream out;
  out << OptimizerName(optimizer) << ": " << iterations << " iterations, " << evaluations
      << " evaluations, cost " << initial_cost << " -> " << final_cost << ", " << termination
      << ", " << wall_seconds << " s";
  return out.str();
}

std::string OptimizerSummary::FullReport() const {
  std::ostringstream out;
  out << "optimizer      " << OptimizerName(optimizer) << "\n"
      << "iterations     " << iterations << "\n"
      << "evaluations    " << evaluations << "\n"
      << "initial cost   " << initial_cost << "\n"
      << "final cost     " << final_cost << "\n"
      << "termination    " << termination << "\n"
      << "converged      " << (converged ? "yes" : "no") << "\n"
      << "wall time      " << wall_seconds << " s\n"
      << "cost history  ";
  // The first and last few costs; the whole history is in cost_history.
  constexpr std::size_t kShown = 5;
  for (std::size_t i = 0; i < cost_history.size(); ++i) {
    if (i == kShown && cost_history.size() > 2 * kShown) {
      out << " ...";
      i = cost_history.size() - kShown;
    }
    out << " " << cost_history[i];
  }
  out << "\n";
  return out.str();
}

OptimizerSummary Minimize(Objective& objective, Vector& x, const OptimizerOptions& options) {
  options.Validate();
  if (x.size() != objective.num_parameters()) {
    throw InputError("Minimize: starting point has " + std::to_string(x.size()) +
                     " parameters, the objective expects " +
                     std::to_string(objective.num_parameters()));
  }
  const Clock::time_point start = Clock::now();
  OptimizerSummary result;
  result.optimizer = options.optimizer;
  CountedObjective counted(objective);
  if (x.size() == 0) {
    result.initial_cost = result.final_cost = counted(x, nullptr);
    result.cost_history.push_back(result.initial_cost);
    result.converged = true;
    result.termination_type = Termination::kConverged;
    result.termination = "converged: no parameters";
  } else {
    switch (options.optimizer) {
      case Optimizer::kLbfgs: MinimizeLbfgs(counted, x, options, start, result); break;
      case Optimizer::kGradientDescent:
        MinimizeGradientDescent(counted, x, options, start, result);
        break;
      case Optimizer::kAdam: MinimizeAdam(counted, x, options, start, result); break;
    }
  }
  result.evaluations = counted.evaluations();
  result.wall_seconds = SecondsSince(start);
  return result;
}

}  // namespace diffeoflow
