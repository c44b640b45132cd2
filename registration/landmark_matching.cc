#include "registration/landmark_matching.h"

#include <ceres/ceres.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <memory>
#include <sstream>

#include <Eigen/Cholesky>

#include "solvers/clock.h"
#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

using Clock = std::chrono::steady_clock;

// N × d rows → packed point-major vector (q_i contiguous).
Vector Pack(const Matrix& points) {
  const Matrix t = points.transpose();
  return Eigen::Map<const Vector>(t.data(), t.size());
}

Matrix Unpack(const Vector& packed, int dim) {
  return Eigen::Map<const Matrix>(packed.data(), dim, packed.size() / dim).transpose();
}

double AutomaticWidth(const Matrix& source) {
  double diameter = 0.0;
  for (Eigen::Index i = 0; i < source.rows(); ++i) {
    for (Eigen::Index j = i + 1; j < source.rows(); ++j) {
      diameter = std::max(diameter, (source.row(i) - source.row(j)).norm());
    }
  }
  return diameter > 0.0 ? diameter / 8.0 : 1.0;
}

// ½ pᵀ (K ⊗ I_d) p and its gradient (K ⊗ I_d) p for the fixed kernel matrix K.
double KroneckerQuadratic(const Matrix& K, int dim, const Vector& p, Vector* grad) {
  const Eigen::Map<const Matrix> P(p.data(), dim, K.rows());
  const Matrix KP = P * K;  // d × N, column j = Σ_i k_ij p_i
  if (grad != nullptr) *grad = Eigen::Map<const Vector>(KP.data(), KP.size());
  return 0.5 * P.cwiseProduct(KP).sum();
}

// A loss on the end residual r = q(1) − y: value and ∂/∂r.
using EndPointLoss = std::function<double(const Vector& r, Vector& d_r)>;

// The two parameterisations, seen by the optimisers as θ ↦ (E_kin(θ), r(θ)) with gradients.
class MatchingModel {
 public:
  virtual ~MatchingModel() = default;
  virtual Eigen::Index num_parameters() const = 0;
  // Returns E_kin + D(r); fills grad (if non-null), kinetic and residual.
  virtual double Evaluate(const Vector& theta, const EndPointLoss& data, Vector* grad,
                          double* kinetic, Vector* residual) = 0;
  long evaluations = 0;
};

class ShootingModel : public MatchingModel {
 public:
  ShootingModel(int dim, const Vector& q0, const Vector& y, double width,
                const SolverOptions& solver)
      : dim_(dim),
        nd_(q0.size()),
        q0_(q0),
        y_(y),
        K_(KernelMatrix(dim, width, q0)),
        dynamics_(dim, q0.size() / dim, width),
        solver_(solver) {}
  Eigen::Index num_parameters() const override { return nd_; }

  double Evaluate(const Vector& p0, const EndPointLoss& data, Vector* grad, double* kinetic,
                  Vector* residual) override {
    ++evaluations;
    Vector x0(2 * nd_);
    x0 << q0_, p0;
    Vector kinetic_grad;
    const double e = KroneckerQuadratic(K_, dim_, p0, grad ? &kinetic_grad : nullptr);
    *kinetic = e;
    if (grad == nullptr) {
      const Solution sol = Integrate(dynamics_, x0, Vector(), {1.0}, solver_);
      *residual = sol.states[0].head(nd_) - y_;
      Vector d_r(nd_);
      return e + data(*residual, d_r);
    }
    const TrajectoryLoss loss = [&](const std::vector<Vector>& xs, std::vector<Vector>& g) {
      *residual = xs[0].head(nd_) - y_;
      Vector d_r(nd_);
      const double value = data(*residual, d_r);
      g[0].setZero(2 * nd_);
      g[0].head(nd_) = d_r;
      return value;
    };
    const GradientResult r =
        Gradient(dynamics_, x0, Vector(), {1.0}, loss, solver_, GradientOptions{});
    *grad = kinetic_grad + r.grad_x0.tail(nd_);
    return e + r.loss;
  }

  // ∂q(1)/∂p_0 (N d × N d) and q(1) − y.
  Matrix EndJacobian(const Vector& p0, ShootingJacobian source, Vector* residual) {
    ++evaluations;
    Vector x0(2 * nd_);
    x0 << q0_, p0;
    if (source == ShootingJacobian::kForwardSensitivity) {
      const SensitivitySolution s = ForwardSensitivity(dynamics_, x0, Vector(), {1.0}, solver_);
      *residual = s.states[0].head(nd_) - y_;
      return s.jacobians[0].topRightCorner(nd_, nd_);
    }
    Matrix J(nd_, nd_);
    for (Eigen::Index k = 0; k < nd_; ++k) {
      const TrajectoryLoss loss = [&](const std::vector<Vector>& xs, std::vector<Vector>& g) {
        g[0].setZero(2 * nd_);
        g[0][k] = 1.0;
        if (k == 0) *residual = xs[0].head(nd_) - y_;
        return xs[0][k];
      };
      const GradientResult r =
          Gradient(dynamics_, x0, Vector(), {1.0}, loss, solver_, GradientOptions{});
      J.row(k) = r.grad_x0.tail(nd_).transpose();
    }
    return J;
  }

  Vector EndResidual(const Vector& p0) {
    ++evaluations;
    Vector x0(2 * nd_);
    x0 << q0_, p0;
    return Integrate(dynamics_, x0, Vector(), {1.0}, solver_).states[0].head(nd_) - y_;
  }

  const Matrix& kernel() const { return K_; }

 private:
  int dim_;
  Eigen::Index nd_;
  Vector q0_, y_;
  Matrix K_;
  LandmarkHamiltonian dynamics_;
  SolverOptions solver_;
};

class LddmmModel : public MatchingModel {
 public:
  LddmmModel(int dim, const Vector& q0, const Vector& y, double width, int time_points,
             MomentumInterpolation interpolation, const SolverOptions& solver)
      : nd_(q0.size()),
        q0_(q0),
        y_(y),
        dynamics_(dim, q0.size() / dim, 0, width, time_points, interpolation),
        solver_(solver) {}
  Eigen::Index num_parameters() const override { return dynamics_.param_dim(); }

  double Evaluate(const Vector& theta, const EndPointLoss& data, Vector* grad, double* kinetic,
                  Vector* residual) override {
    ++evaluations;
    Vector x0(nd_ + 1);
    x0 << q0_, 0.0;
    if (grad == nullptr) {
      const Vector x1 = Integrate(dynamics_, x0, theta, {1.0}, solver_).states[0];
      *residual = x1.head(nd_) - y_;
      *kinetic = x1[nd_];
      Vector d_r(nd_);
      return *kinetic + data(*residual, d_r);
    }
    const TrajectoryLoss loss = [&](const std::vector<Vector>& xs, std::vector<Vector>& g) {
      *residual = xs[0].head(nd_) - y_;
      *kinetic = xs[0][nd_];
      Vector d_r(nd_);
      const double value = data(*residual, d_r);
      g[0].resize(nd_ + 1);
      g[0].head(nd_) = d_r;
      g[0][nd_] = 1.0;
      return *kinetic + value;
    };
    const GradientResult r = Gradient(dynamics_, x0, theta, {1.0}, loss, solver_, GradientOptions{});
    *grad = r.grad_theta;
    return r.loss;
  }

  TimeDependentLandmarkFlow& dynamics() { return dynamics_; }

 private:
  Eigen::Index nd_;
  Vector q0_, y_;
  TimeDependentLandmarkFlow dynamics_;
  SolverOptions solver_;
};

double Rms(const Vector& r, Eigen::Index landmarks) {
  return std::sqrt(r.squaredNorm() / static_cast<double>(landmarks));
}

struct RunState {
  Clock::time_point start;
  int iterations = 0;
  std::vector<double> loss_history, residual_history;
  Termination termination_type = Termination::kIterationLimit;
  std::string termination;
  bool converged = false;
};

double RemainingSeconds(const LandmarkMatchingOptions& options, const RunState& run) {
  if (options.max_seconds <= 0.0) return 1e9;
  return std::max(0.0, options.max_seconds - SecondsSince(run.start));
}

// ---- first-order optimisation (L-BFGS / GD / Adam) with the augmented Lagrangian ------------

// S = (K + ε λ_max I)^{−1/2}: with p = S w the kinetic energy ½ pᵀ K(q_0) p is ≈ ½ ‖w‖², so the
// first-order methods see a problem conditioned like the data term alone (the whitening that
// image LDDMM does with K^{1/2}; see registration/register.h).
Matrix WhiteningOperator(const Matrix& K) {
  const Eigen::SelfAdjointEigenSolver<Matrix> eig(K);
  const double floor = 1e-6 * std::max(eig.eigenvalues().maxCoeff(), 1e-300);
  const Vector scale = (eig.eigenvalues().array().max(0.0) + floor).rsqrt();
  return eig.eigenvectors() * scale.asDiagonal() * eig.eigenvectors().transpose();
}

// θ = blocks of packed momenta (d × N each, column-major); every block multiplied by S.
Vector ApplyToMomenta(const Matrix& S, int dim, const Vector& theta) {
  const Eigen::Index n = S.rows();
  const Eigen::Index blocks = theta.size() / (dim * n);
  const Eigen::Map<const Matrix> P(theta.data(), dim, n * blocks);
  Matrix out(dim, n * blocks);
  for (Eigen::Index b = 0; b < blocks; ++b) {
    out.middleCols(b * n, n).noalias() = P.middleCols(b * n, n) * S;
  }
  return Eigen::Map<const Vector>(out.data(), out.size());
}

void MinimizeEnergy(MatchingModel& model, Vector& theta, Eigen::Index landmarks, int dim,
                    const Matrix& kernel, const LandmarkMatchingOptions& options,
                    int iteration_budget, RunState& run) {
  const Matrix S = WhiteningOperator(kernel);
  Vector w = Vector::Zero(theta.size());
  Vector last_residual;
  double last_kinetic = 0.0;
  OptimizerOptions inner;
  inner.optimizer = options.method == LandmarkMethod::kShooting ? Optimizer::kLbfgs
                                                                : options.optimizer;
  inner.function_tolerance = 1e-12;
  inner.gradient_tolerance = 1e-12;
  inner.parameter_tolerance = 1e-14;
  inner.learning_rate = options.learning_rate;
  const auto run_inner = [&](const EndPointLoss& data, int max_iterations,
                             bool* stop_on_tolerance) {
    FunctionObjective objective(model.num_parameters(), [&](const Vector& wv, Vector* grad) {
      const double value =
          model.Evaluate(ApplyToMomenta(S, dim, wv), data, grad, &last_kinetic, &last_residual);
      if (grad != nullptr) *grad = ApplyToMomenta(S, dim, *grad);
      return value;
    });
    inner.max_iterations = max_iterations;
    inner.max_seconds = RemainingSeconds(options, run);
    inner.callback = [&](const IterationReport& report) {
      if (report.iteration == 0) return true;
      ++run.iterations;
      const double rms = last_residual.size() ? Rms(last_residual, landmarks) : 0.0;
      run.loss_history.push_back(report.cost);
      run.residual_history.push_back(rms);
      if (options.progress) {
        options.progress({run.iterations, report.cost, rms, SecondsSince(run.start)});
      }
      return !(stop_on_tolerance && *stop_on_tolerance && rms <= options.residual_tolerance);
    };
    const OptimizerSummary summary = Minimize(objective, w, inner);
    theta = ApplyToMomenta(S, dim, w);
    return summary;
  };

  if (options.sigma > 0.0) {
    const double w = 1.0 / (options.sigma * options.sigma);
    const EndPointLoss data = [w](const Vector& r, Vector& d_r) {
      d_r = w * r;
      return 0.5 * w * r.squaredNorm();
    };
    const OptimizerSummary s = run_inner(data, iteration_budget, nullptr);
    run.termination_type = s.termination_type;
    run.termination = s.termination;
    run.converged = s.converged;
    return;
  }
  // Exact matching: augmented Lagrangian rounds.
  Vector lambda;
  double mu = options.penalty;
  double previous_norm = std::numeric_limits<double>::infinity();
  bool stop = true;
  for (int round = 0; round < options.max_outer_iterations; ++round) {
    const EndPointLoss data = [&lambda, mu](const Vector& r, Vector& d_r) {
      if (lambda.size() != r.size()) lambda = Vector::Zero(r.size());
      d_r = lambda + mu * r;
      return lambda.dot(r) + 0.5 * mu * r.squaredNorm();
    };
    const OptimizerSummary s = run_inner(data, options.max_inner_iterations, &stop);
    // The residual at the solution of this round (the optimiser's x, not its last trial point).
    model.Evaluate(theta, data, nullptr, &last_kinetic, &last_residual);
    const double rms = Rms(last_residual, landmarks);
    if (rms <= options.residual_tolerance) {
      run.termination_type = Termination::kConverged;
      run.termination = "converged: residual rms " + std::to_string(rms) + " <= tolerance";
      run.converged = true;
      return;
    }
    if (RemainingSeconds(options, run) <= 0.0) {
      run.termination_type = Termination::kTimeLimit;
      run.termination = "time limit";
      return;
    }
    if (s.termination_type == Termination::kUserStop) {
      run.termination_type = s.termination_type;
      run.termination = s.termination;
      return;
    }
    lambda += mu * last_residual;
    const double norm = last_residual.norm();
    if (norm > 0.25 * previous_norm) mu *= 10.0;
    previous_norm = norm;
  }
  run.termination_type = Termination::kIterationLimit;
  run.termination = "max outer iterations (augmented Lagrangian)";
}

// ---- Levenberg–Marquardt on the end-point residuals (shooting) --------------------------------

class EndPointCost : public ceres::CostFunction {
 public:
  EndPointCost(ShootingModel& model, ShootingJacobian source, double sigma, int dim)
      : model_(model), source_(source), sigma_(sigma), dim_(dim) {
    const Eigen::Index nd = model.num_parameters();
    set_num_residuals(static_cast<int>(sigma > 0.0 ? 2 * nd : nd));
    mutable_parameter_block_sizes()->push_back(static_cast<int>(nd));
    if (sigma > 0.0) {
      Eigen::LLT<Matrix> llt(model.kernel());
      if (llt.info() != Eigen::Success) {
        throw NumericalError("the kernel matrix of the source landmarks is not positive definite "
                             "(coincident landmarks?)");
      }
      lower_ = llt.matrixL();
    }
  }

  bool Evaluate(double const* const* parameters, double* residuals,
                double** jacobians) const override {
    const Eigen::Index nd = model_.num_parameters();
    const Eigen::Map<const Vector> p0(parameters[0], nd);
    const double scale = sigma_ > 0.0 ? 1.0 / sigma_ : 1.0;
    const Eigen::Index offset = sigma_ > 0.0 ? nd : 0;
    Eigen::Map<Vector> r(residuals, num_residuals());
    if (sigma_ > 0.0) {
      // Lᵀ P_c for each coordinate c: residual (i, c) = Σ_j L_ji p_j,c.
      const Eigen::Map<const Matrix> P(p0.data(), dim_, nd / dim_);
      const Matrix R = P * lower_;
      r.head(nd) = Eigen::Map<const Vector>(R.data(), nd);
    }
    try {
      Vector end;
      if (jacobians != nullptr && jacobians[0] != nullptr) {
        const Matrix J = model_.EndJacobian(p0, source_, &end);
        Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> out(
            jacobians[0], num_residuals(), nd);
        out.bottomRows(nd) = scale * J;
        if (sigma_ > 0.0) {
          out.topRows(nd).setZero();
          const Eigen::Index n = nd / dim_;
          for (Eigen::Index i = 0; i < n; ++i) {
            for (Eigen::Index j = 0; j < n; ++j) {
              for (int c = 0; c < dim_; ++c) out(i * dim_ + c, j * dim_ + c) = lower_(j, i);
            }
          }
        }
      } else {
        end = model_.EndResidual(p0);
      }
      r.segment(offset, nd) = scale * end;
    } catch (const NumericalError&) {
      return false;  // Ceres shrinks the trust region
    }
    return r.allFinite();
  }

 private:
  ShootingModel& model_;
  ShootingJacobian source_;
  double sigma_;
  int dim_;
  Matrix lower_;
};

class LmCallback : public ceres::IterationCallback {
 public:
  LmCallback(const LandmarkMatchingOptions& options, Eigen::Index landmarks, RunState& run)
      : options_(options), landmarks_(landmarks), run_(run) {}
  ceres::CallbackReturnType operator()(const ceres::IterationSummary& summary) override {
    if (summary.iteration == 0) {
      run_.loss_history.push_back(summary.cost);
      return ceres::SOLVER_CONTINUE;
    }
    ++run_.iterations;
    run_.loss_history.push_back(summary.cost);
    // Exact matching: cost = ½‖q(1) − y‖².
    const double rms = options_.sigma > 0.0
                           ? std::numeric_limits<double>::quiet_NaN()
                           : std::sqrt(2.0 * summary.cost / static_cast<double>(landmarks_));
    run_.residual_history.push_back(rms);
    if (options_.progress) {
      options_.progress({run_.iterations, summary.cost, rms, SecondsSince(run_.start)});
    }
    if (options_.sigma <= 0.0 && rms <= options_.residual_tolerance) {
      return ceres::SOLVER_TERMINATE_SUCCESSFULLY;
    }
    return ceres::SOLVER_CONTINUE;
  }

 private:
  const LandmarkMatchingOptions& options_;
  Eigen::Index landmarks_;
  RunState& run_;
};

void LevenbergMarquardt(ShootingModel& model, Vector& p0, Eigen::Index landmarks, int dim,
                        const LandmarkMatchingOptions& options, RunState& run) {
  ceres::Problem::Options problem_options;
  problem_options.cost_function_ownership = ceres::DO_NOT_TAKE_OWNERSHIP;
  ceres::Problem problem(problem_options);
  EndPointCost cost(model, options.jacobian, options.sigma, dim);
  problem.AddResidualBlock(&cost, nullptr, p0.data());
  ceres::Solver::Options solver_options;
  solver_options.minimizer_type = ceres::TRUST_REGION;
  solver_options.trust_region_strategy_type = ceres::LEVENBERG_MARQUARDT;
  solver_options.linear_solver_type = ceres::DENSE_QR;
  solver_options.max_num_iterations = options.max_iterations;
  solver_options.max_solver_time_in_seconds = RemainingSeconds(options, run);
  solver_options.function_tolerance = 1e-14;
  solver_options.gradient_tolerance = 1e-16;
  solver_options.parameter_tolerance = 1e-14;
  solver_options.logging_type = ceres::SILENT;
  solver_options.minimizer_progress_to_stdout = false;
  solver_options.num_threads = 1;
  LmCallback callback(options, landmarks, run);
  solver_options.callbacks.push_back(&callback);
  ceres::Solver::Summary summary;
  ceres::Solve(solver_options, &problem, &summary);
  run.termination = summary.message;
  run.converged = summary.termination_type == ceres::CONVERGENCE ||
                  summary.termination_type == ceres::USER_SUCCESS;
  if (run.converged) {
    run.termination_type = Termination::kConverged;
  } else if (summary.termination_type == ceres::NO_CONVERGENCE) {
    run.termination_type = summary.message.find("time") != std::string::npos
                               ? Termination::kTimeLimit
                               : Termination::kIterationLimit;
  } else {
    run.termination_type = Termination::kFailed;
  }
  if (summary.termination_type == ceres::USER_SUCCESS) {
    run.termination = "converged: residual rms <= tolerance";
  }
}

std::string Number(double value) {
  std::ostringstream out;
  out << std::setprecision(6) << value;
  return out.str();
}

}  // namespace

std::string LandmarkMethodName(LandmarkMethod method) {
  return method == LandmarkMethod::kShooting ? "shooting" : "lddmm";
}

LandmarkMethod ParseLandmarkMethod(const std::string& name, const std::string& argument) {
  if (name == "shooting") return LandmarkMethod::kShooting;
  if (name == "lddmm") return LandmarkMethod::kLddmm;
  throw InputError(argument + ": expected shooting or lddmm, got '" + name + "'");
}

void LandmarkMatchingOptions::Validate() const {
  if (!(kernel_width >= 0.0) || !std::isfinite(kernel_width)) {
    throw InputError("--kernel-width must be ≥ 0 (0: automatic), got " + Number(kernel_width));
  }
  if (!(sigma >= 0.0) || !std::isfinite(sigma)) {
    throw InputError("--sigma must be ≥ 0 (0: exact matching), got " + Number(sigma));
  }
  if (steps < 1) throw InputError("--steps must be ≥ 1, got " + std::to_string(steps));
  if (IsAdaptive(solver)) {
    throw InputError("--solver must be a fixed-step method (euler, midpoint, rk4), got " +
                     MethodName(solver));
  }
  if (!(residual_tolerance > 0.0)) {
    throw InputError("--tolerance must be > 0, got " + Number(residual_tolerance));
  }
  if (max_iterations < 1) {
    throw InputError("--iterations must be ≥ 1, got " + std::to_string(max_iterations));
  }
  if (max_seconds < 0.0) throw InputError("--time-limit must be ≥ 0, got " + Number(max_seconds));
  if (time_points < 0 ||
      (time_points > 0 && interpolation == MomentumInterpolation::kLinear && time_points < 2)) {
    throw InputError("--time-points must be 0 (automatic), or ≥ 2 for linear momenta, got " +
                     std::to_string(time_points));
  }
  if (max_inner_iterations < 1 || max_outer_iterations < 1) {
    throw InputError("inner and outer iteration limits must be ≥ 1");
  }
  if (!(penalty > 0.0)) throw InputError("--penalty must be > 0, got " + Number(penalty));
  if (!(learning_rate > 0.0)) {
    throw InputError("--lr must be > 0, got " + Number(learning_rate));
  }
}

std::string LandmarkMatchingResult::BriefReport() const {
  std::ostringstream out;
  out << LandmarkMethodName(method) << ": " << source.rows() << " landmarks in " << dim
      << "-D, W = " << Number(kernel_width) << ", residual rms " << Number(residual_rms)
      << ", kinetic energy " << Number(kinetic_energy) << ", " << iterations << " iterations, "
      << evaluations << " evaluations, " << parameters.size() << " parameters, "
      << Number(wall_seconds) << " s (" << termination << ")";
  return out.str();
}

std::string LandmarkMatchingResult::FullReport() const {
  std::ostringstream out;
  out << "method          " << LandmarkMethodName(method) << "\n"
      << "landmarks       " << source.rows() << " in " << dim << "-D\n"
      << "kernel width    " << Number(kernel_width) << "\n"
      << "parameters      " << parameters.size() << "\n"
      << "iterations      " << iterations << "\n"
      << "evaluations     " << evaluations << "\n"
      << "residual rms    " << Number(residual_rms) << "\n"
      << "kinetic energy  " << Number(kinetic_energy) << "\n"
      << "data term       " << Number(data_term) << "\n"
      << "termination     " << TerminationName(termination_type) << ": " << termination << "\n"
      << "converged       " << (converged ? "yes" : "no") << "\n"
      << "wall time       " << Number(wall_seconds) << " s\n";
  return out.str();
}

LandmarkMatchingResult MatchLandmarks(const Matrix& source, const Matrix& target,
                                      const LandmarkMatchingOptions& options) {
  options.Validate();
  if (source.cols() != 2 && source.cols() != 3) {
    throw InputError("--source: landmarks must have 2 or 3 coordinates, got " +
                     std::to_string(source.cols()));
  }
  if (source.rows() < 1) throw InputError("--source: no landmarks");
  if (source.rows() != target.rows() || source.cols() != target.cols()) {
    throw InputError("--target: expected " + std::to_string(source.rows()) + " landmarks of " +
                     std::to_string(source.cols()) + " coordinates like --source, got " +
                     std::to_string(target.rows()) + " × " + std::to_string(target.cols()));
  }
  if (!source.allFinite()) throw InputError("--source: non-finite coordinate");
  if (!target.allFinite()) throw InputError("--target: non-finite coordinate");

  RunState run;
  run.start = Clock::now();
  LandmarkMatchingResult result;
  result.method = options.method;
  result.options = options;
  result.dim = static_cast<int>(source.cols());
  result.source = source;
  result.target = target;
  const int dim = result.dim;
  const Eigen::Index n = source.rows();
  const Eigen::Index nd = n * dim;
  const double width = options.kernel_width > 0.0 ? options.kernel_width : AutomaticWidth(source);
  result.kernel_width = width;
  const Vector q0 = Pack(source), y = Pack(target);
  SolverOptions solver;
  solver.method = options.solver;
  solver.steps = options.steps;
  result.times = UniformTimes(options.steps);

  if (options.method == LandmarkMethod::kShooting) {
    ShootingModel model(dim, q0, y, width, solver);
    Vector p0 = Vector::Zero(nd);
    if (options.shooting_solver == ShootingSolver::kLevenbergMarquardt) {
      LevenbergMarquardt(model, p0, n, dim, options, run);
    } else {
      MinimizeEnergy(model, p0, n, dim, model.kernel(), options, options.max_iterations, run);
    }
    result.evaluations = static_cast<int>(model.evaluations);
    result.parameters = p0;
    LandmarkHamiltonian hamiltonian(dim, n, width);
    Vector x0(2 * nd);
    x0 << q0, p0;
    const Solution path = Integrate(hamiltonian, x0, Vector(), result.times, solver);
    for (const Vector& x : path.states) {
      result.positions.push_back(x.head(nd));
      result.momenta.push_back(x.tail(nd));
      result.velocity_norm_per_time.push_back(std::sqrt(2.0 * std::max(0.0, hamiltonian.Energy(x))));
    }
    result.kinetic_energy = hamiltonian.Energy(x0);
  } else {
    const int time_points = options.time_points > 0 ? options.time_points : options.steps + 1;
    LddmmModel model(dim, q0, y, width, time_points, options.interpolation, solver);
    Vector theta = Vector::Zero(model.num_parameters());
    MinimizeEnergy(model, theta, n, dim, KernelMatrix(dim, width, q0), options,
                   options.max_inner_iterations, run);
    result.evaluations = static_cast<int>(model.evaluations);
    result.parameters = theta;
    Vector x0(nd + 1);
    x0 << q0, 0.0;
    const Solution path = Integrate(model.dynamics(), x0, theta, result.times, solver);
    for (std::size_t k = 0; k < path.states.size(); ++k) {
      const Vector q = path.states[k].head(nd);
      const Vector p = model.dynamics().MomentumAt(result.times[k], theta);
      result.positions.push_back(q);
      result.momenta.push_back(p);
      result.velocity_norm_per_time.push_back(
          std::sqrt(2.0 * std::max(0.0, KineticEnergy(dim, width, q, p))));
    }
    result.kinetic_energy = path.states.back()[nd];
  }
  const Vector residual = result.positions.back() - y;
  result.residual_rms = Rms(residual, n);
  result.data_term =
      options.sigma > 0.0 ? 0.5 * residual.squaredNorm() / (options.sigma * options.sigma) : 0.0;
  result.iterations = run.iterations;
  result.loss_history = std::move(run.loss_history);
  result.residual_history = std::move(run.residual_history);
  result.termination_type = run.termination_type;
  result.termination = run.termination;
  result.converged = run.converged;
  result.wall_seconds = SecondsSince(run.start);
  return result;
}

std::vector<Matrix> CarryAlongMatch(const LandmarkMatchingResult& result, const Matrix& points) {
  const int dim = result.dim;
  if (points.cols() != dim) {
    throw InputError("CarryAlongMatch: points must have " + std::to_string(dim) + " columns");
  }
  const Eigen::Index n = result.source.rows(), nd = n * dim, m = points.rows();
  SolverOptions solver;
  solver.method = result.options.solver;
  solver.steps = result.options.steps;
  std::vector<Matrix> carried;
  if (result.method == LandmarkMethod::kShooting) {
    CarriedPoints dynamics(dim, n, m, result.kernel_width);
    Vector x0(dynamics.state_dim());
    x0 << Pack(result.source), result.parameters, Pack(points);
    for (const Vector& x : Integrate(dynamics, x0, Vector(), result.times, solver).states) {
      carried.push_back(Unpack(x.tail(m * dim), dim));
    }
  } else {
    const int time_points = static_cast<int>(result.parameters.size() / nd);
    TimeDependentLandmarkFlow dynamics(dim, n, m, result.kernel_width, time_points,
                                       result.options.interpolation);
    Vector x0(dynamics.state_dim());
    x0 << Pack(result.source), Pack(points), 0.0;
    for (const Vector& x : Integrate(dynamics, x0, result.parameters, result.times, solver).states) {
      carried.push_back(Unpack(x.segment(nd, m * dim), dim));
    }
  }
  return carried;
}

}  // namespace diffeoflow::registration
