// Optimisers over one contiguous parameter vector: Ceres L-BFGS (ceres::GradientProblem), plain
// gradient descent, and Adam (Kingma & Ba 2015). Options in, Summary out.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "solvers/dynamics.h"

namespace diffeoflow {

// An objective with its gradient. Evaluate returns the value and fills `gradient` (sized like x)
// when it is non-null. Throwing from Evaluate aborts the optimisation and propagates.
class Objective {
 public:
  virtual ~Objective() = default;
  virtual Eigen::Index num_parameters() const = 0;
  virtual double Evaluate(const Vector& x, Vector* gradient) = 0;
};

// Adapts a lambda.
class FunctionObjective : public Objective {
 public:
  using Function = std::function<double(const Vector& x, Vector* gradient)>;
  FunctionObjective(Eigen::Index n, Function fn) : n_(n), fn_(std::move(fn)) {}
  Eigen::Index num_parameters() const override { return n_; }
  double Evaluate(const Vector& x, Vector* gradient) override { return fn_(x, gradient); }

 private:
  Eigen::Index n_;
  Function fn_;
};

enum class Optimizer { kLbfgs, kGradientDescent, kAdam };
Optimizer ParseOptimizer(const std::string& name, const std::string& argument = "--optimizer");
std::string OptimizerName(Optimizer o);

// Adam (Kingma & Ba 2015, Algorithm 1), one step at a time, for loops that own their iteration
// (mini-batch training) as well as for Minimize. Step k (k = 1, 2, …) with gradient g_k:
//   m_k = β1 m_{k−1} + (1 − β1) g_k,   v_k = β2 v_{k−1} + (1 − β2) g_k²,
//   x_k = x_{k−1} − α m̂_k / (√v̂_k + ε),  m̂_k = m_k / (1 − β1ᵏ),  v̂_k = v_k / (1 − β2ᵏ).
struct AdamOptions {
  double beta1 = 0.9;    // decay of the first moment, in [0, 1)
  double beta2 = 0.999;  // decay of the second moment, in [0, 1)
  double epsilon = 1e-8; // added to √v̂, > 0
};

// Takes step k ≥ 1 on x with step size α = learning_rate. The caller keeps the moments (zero
// before the first step) and k, so that it can checkpoint and restore them; the bias corrections
// depend on k alone, so a restored run continues exactly.
void AdamStep(const AdamOptions& options, long k, double learning_rate, const Vector& gradient,
              Vector& first_moment, Vector& second_moment, Vector& x);

struct IterationReport {
  int iteration = 0;
  double cost = 0.0;
  double gradient_norm = 0.0;
  double step_size = 0.0;
  double elapsed_seconds = 0.0;
};

struct OptimizerOptions {
  Optimizer optimizer = Optimizer::kLbfgs;
  int max_iterations = 100;
  double max_seconds = 1e9;
  // Stop when |Δcost| / cost < function_tolerance (L-BFGS: Ceres' function_tolerance).
  double function_tolerance = 1e-6;
  // W > 1 measures the decrease over the last W iterations instead of the last one: stop at
  // iteration k ≥ W when (cost_{k−W} − cost_k) / |cost_{k−W}| < W · function_tolerance. One
  // iteration that barely moves (a short line-search step, the start of a plateau the
  // optimiser is about to leave) then no longer ends a run whose cost still falls at many times
  // the tolerance on average. W = 1 is the single-iteration rule above.
  int tolerance_window = 1;
  double gradient_tolerance = 1e-10;   // on ‖∇‖∞ (Ceres) / ‖∇‖₂ (GD, Adam)
  double parameter_tolerance = 1e-10;
  int lbfgs_rank = 10;                  // Ceres max_lbfgs_rank
  // Gradient descent and Adam: step size (GD uses a backtracking line search starting from it).
  double learning_rate = 1e-2;
  double adam_beta1 = AdamOptions{}.beta1;
  double adam_beta2 = AdamOptions{}.beta2;
  double adam_epsilon = AdamOptions{}.epsilon;
  // Called after every iteration; return false to stop (e.g. on SIGINT).
  std::function<bool(const IterationReport&)> callback;

  void Validate() const;
};

// Why an optimiser, or a loop over one, stopped (as Ceres' TerminationType). The message beside it
// says the same in words, with the figures (a tolerance, the cost); it is what reports and
// metrics.json print.
enum class Termination {
  kConverged,       // a tolerance was met
  kIterationLimit,  // max iterations, epochs or outer iterations
  kTimeLimit,       // max_seconds or a time budget
  kUserStop,        // the iteration callback returned false
  kInterrupted,     // SIGINT/SIGTERM (solvers/interrupt.h)
  kNoIterations,    // none were requested
  kFailed,          // non-finite cost or gradient, a failed line search, a solver error
};

// "converged", "iteration limit", "time limit", "stopped by callback", "interrupted",
// "no iterations", "failed".
std::string TerminationName(Termination termination);

struct OptimizerSummary {
  Optimizer optimizer = Optimizer::kLbfgs;
  int iterations = 0;
  int evaluations = 0;
  double initial_cost = 0.0;
  double final_cost = 0.0;
  std::vector<double> cost_history;  // cost after each iteration (index 0: initial)
  // "converged: ...", "max iterations", "time limit", "stopped by callback", "interrupted"
  // (SIGINT/SIGTERM, see solvers/interrupt.h; x holds the last accepted iterate), "failed: ..."
  Termination termination_type = Termination::kIterationLimit;
  std::string termination;  // the message
  bool converged = false;
  double wall_seconds = 0.0;
  std::string BriefReport() const;
  std::string FullReport() const;
};

// Minimises objective starting from x (updated in place).
OptimizerSummary Minimize(Objective& objective, Vector& x, const OptimizerOptions& options);

}  // namespace diffeoflow
