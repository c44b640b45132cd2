#include "solvers/integrate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>
#include <type_traits>
#include <utility>

#include <boost/numeric/odeint.hpp>

#include "solvers/clock.h"
#include "solvers/errors.h"
#include "solvers/tableau.h"

namespace diffeoflow {

std::vector<double> UniformTimes(int intervals) {
  std::vector<double> times(static_cast<std::size_t>(intervals) + 1);
  for (int k = 0; k <= intervals; ++k) times[k] = static_cast<double>(k) / intervals;
  return times;
}


namespace odeint = boost::numeric::odeint;

namespace {

using State = std::vector<double>;
using Clock = std::chrono::steady_clock;

Eigen::Map<const Eigen::VectorXd> View(const State& x) {
  return Eigen::Map<const Eigen::VectorXd>(x.data(), static_cast<Eigen::Index>(x.size()));
}
Eigen::Map<Eigen::VectorXd> View(State& x) {
  return Eigen::Map<Eigen::VectorXd>(x.data(), static_cast<Eigen::Index>(x.size()));
}
Eigen::Map<const Eigen::VectorXd> Head(const State& x, Eigen::Index n, Eigen::Index offset = 0) {
  return Eigen::Map<const Eigen::VectorXd>(x.data() + offset, n);
}
Eigen::Map<Eigen::VectorXd> Head(State& x, Eigen::Index n, Eigen::Index offset = 0) {
  return Eigen::Map<Eigen::VectorXd>(x.data() + offset, n);
}
State ToState(const Vector& v) { return State(v.data(), v.data() + v.size()); }
Vector ToVector(const State& x) { return View(x); }

bool AllFinite(const State& x, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    if (!std::isfinite(x[i])) return false;
  }
  return true;
}

// Error checker for odeint's controlled steppers: err_i / (atol + rtol·max(|x_i|, |x_i + h·f_i|))
// reduced by the max or the RMS norm over the first `counted` components (the rest form the
// seminorm's ignored part).
class ScaledErrorChecker {
 public:
  ScaledErrorChecker(double atol, double rtol, ErrorNorm norm, std::size_t counted,
                     long* rejections = nullptr)
      : atol_(atol), rtol_(rtol), norm_(norm), counted_(counted), rejections_(rejections) {}

  template <class Algebra, class S, class Deriv, class Err, class Time>
  double error(Algebra& /*algebra*/, const S& x_old, const Deriv& dxdt_old, Err& x_err,
               Time dt) const {
    const std::size_t n = std::min(counted_, x_err.size());
    double acc = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      const double predicted = x_old[i] + dt * dxdt_old[i];
      const double scale =
          atol_ + rtol_ * std::max(std::abs(x_old[i]), std::abs(predicted));
      const double e = std::abs(x_err[i]) / scale;
      if (norm_ == ErrorNorm::kMax) {
        acc = std::max(acc, e);
      } else {
        acc += e * e;
      }
    }
    if (norm_ == ErrorNorm::kRms) acc = n > 0 ? std::sqrt(acc / static_cast<double>(n)) : 0.0;
    if (!std::isfinite(acc)) acc = 1e10;  // reject and shrink: NaN in a trial step
    if (acc > 1.0 && rejections_ != nullptr) ++*rejections_;
    return acc;
  }

 private:
  double atol_, rtol_;
  ErrorNorm norm_;
  std::size_t counted_;
  long* rejections_;
};

struct DriveConfig {
  Method method = Method::kRk4;
  int steps = 10;          // fixed-step: uniform steps over [t_start, last stop]
  double rtol = 1e-6, atol = 1e-8;
  ErrorNorm norm = ErrorNorm::kRms;
  std::size_t counted = 0;  // components in the error norm (0: all)
  std::size_t finite_count = 0;  // components checked for NaN/Inf (0: none)
  double initial_dt = 0.0, max_dt = 0.0;
  long max_steps = 100000;
  const char* what = "forward";
};

struct DriveStats {
  long accepted = 0;
  long rejected = 0;
};

// Hairer–Nørsett–Wanner (II.4) starting step: 2 evaluations of the system.
template <class System>
double StartingStep(System& sys, const State& x, double t, double span, int order,
                    const DriveConfig& cfg) {
  const std::size_t n = cfg.counted == 0 ? x.size() : std::min(cfg.counted, x.size());
  State f0(x.size()), f1(x.size()), x1(x.size());
  sys(x, f0, t);
  auto scaled_norm = [&](const State& v, const State& ref) {
    double acc = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      const double s = cfg.atol + cfg.rtol * std::abs(ref[i]);
      acc += (v[i] / s) * (v[i] / s);
    }
    return n > 0 ? std::sqrt(acc / static_cast<double>(n)) : 0.0;
  };
  const double d0 = scaled_norm(x, x);
  const double d1 = scaled_norm(f0, x);
  double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
  h0 = std::min(h0, span);
  for (std::size_t i = 0; i < x.size(); ++i) x1[i] = x[i] + h0 * f0[i];
  sys(x1, f1, t + h0);
  for (std::size_t i = 0; i < x.size(); ++i) f1[i] = (f1[i] - f0[i]) / h0;
  const double d2 = scaled_norm(f1, x);
  const double dmax = std::max(d1, d2);
  const double h1 = dmax <= 1e-15 ? std::max(1e-6, h0 * 1e-3)
                                  : std::pow(0.01 / dmax, 1.0 / (order + 1.0));
  double h = std::min(100.0 * h0, h1);
  if (!(h > 0.0) || !std::isfinite(h)) h = 1e-6 * std::max(1.0, span);
  return std::min(h, span);
}

template <class Stepper>
constexpr bool kIsFsal =
    std::is_same_v<typename Stepper::stepper_category, odeint::explicit_error_stepper_fsal_tag>;

[[noreturn]] void ThrowNotFinite(const DriveConfig& cfg, double t) {
  std::ostringstream msg;
  msg << "the " << cfg.what << " state became NaN or Inf at t = " << t
      << " (reduce the step size, tighten the tolerances, or check the inputs)";
  throw NumericalError(msg.str());
}

// Adaptive stepping with an odeint controlled stepper, hitting every stop exactly. Time runs
// forward. on_step(t_old, h, x_old, x_new) after every accepted step; on_stop(i, t, x) at every
// stop, which may change x (returns true if it did, so FSAL data are refreshed).
template <class ErrorStepper, class System, class OnStep, class OnStop>
DriveStats DriveAdaptive(System& sys, State& x, double t, const std::vector<double>& stops,
                         const DriveConfig& cfg, OnStep& on_step, OnStop& on_stop) {
  using Checker = ScaledErrorChecker;
  using Adjuster = odeint::default_step_adjuster<double, double>;
  using Controlled = odeint::controlled_runge_kutta<ErrorStepper, Checker, Adjuster,
                                                    odeint::initially_resizer,
                                                    typename ErrorStepper::stepper_category>;
  const std::size_t counted = cfg.counted == 0 ? x.size() : cfg.counted;
  Controlled stepper(Checker(cfg.atol, cfg.rtol, cfg.norm, counted), Adjuster(cfg.max_dt));
  DriveStats stats;
  if (stops.empty()) return stats;
  const double span = stops.back() - t;
  double dt = cfg.initial_dt > 0.0
                  ? cfg.initial_dt
                  : StartingStep(sys, x, t, span, MethodOrder(cfg.method), cfg);
  if (cfg.max_dt > 0.0) dt = std::min(dt, cfg.max_dt);
  State x_old(x.size());
  std::size_t next = 0;
  while (next < stops.size() && stops[next] <= t) {
    if (on_stop(next, t, x)) {
      if constexpr (kIsFsal<ErrorStepper>) stepper.reset();
    }
    ++next;
  }
  while (next < stops.size()) {
    const double target = stops[next];
    double trial = dt;
    bool clamped = false;
    if (t + trial >= target || target - (t + trial) < 1e-12 * std::max(1.0, std::abs(target))) {
      trial = target - t;
      clamped = true;
    }
    x_old = x;
    const double t_old = t;
    double dt_try = trial;
    const odeint::controlled_step_result result = stepper.try_step(sys, x, t, dt_try);
    if (result == odeint::success) {
      ++stats.accepted;
      if (clamped) t = target;  // exact
      if (cfg.finite_count > 0 && !AllFinite(x, cfg.finite_count)) ThrowNotFinite(cfg, t);
      on_step(t_old, t - t_old, x_old, x);
      // A clamped step says nothing about the step the error allows: keep the larger proposal.
      dt = clamped ? std::max(dt, dt_try) : dt_try;
      while (next < stops.size() && stops[next] <= t) {
        if (on_stop(next, t, x)) {
          if constexpr (kIsFsal<ErrorStepper>) stepper.reset();
        }
        ++next;
      }
    } else {
      ++stats.rejected;
      dt = dt_try;
      if (dt < 1e-14 * std::max(1.0, std::abs(t))) {
        std::ostringstream msg;
        msg << "the " << cfg.what << " step size underflowed at t = " << t
            << " (the problem is too stiff or the state is not finite)";
        throw NumericalError(msg.str());
      }
    }
    if (stats.accepted + stats.rejected > cfg.max_steps) {
      std::ostringstream msg;
      msg << "the " << cfg.what << " solve exceeded max_steps = " << cfg.max_steps << " at t = "
          << t << " (raise max_steps or loosen rtol/atol)";
      throw NumericalError(msg.str());
    }
  }
  return stats;
}

// The explicit midpoint rule (RK2) as an odeint generic Runge–Kutta stepper.
using MidpointStepper = odeint::explicit_generic_rk<2, 2, State, double, State, double>;
MidpointStepper MakeMidpoint() {
  const boost::array<double, 1> a1 = {{0.5}};
  const boost::array<double, 2> b = {{0.0, 1.0}};
  const boost::array<double, 2> c = {{0.0, 0.5}};
  return MidpointStepper(boost::fusion::make_vector(a1), b, c);
}

// Fixed steps: `cfg.steps` equal steps over [t, stops.back()], shortened to land on every stop.
template <class Stepper, class System, class OnStep, class OnStop>
DriveStats DriveFixed(Stepper stepper, System& sys, State& x, double t,
                      const std::vector<double>& stops, const DriveConfig& cfg, OnStep& on_step,
                      OnStop& on_stop) {
  DriveStats stats;
  if (stops.empty()) return stats;
  const double t_start = t;
  const double t_end = stops.back();
  const double h_uniform = (t_end - t_start) / cfg.steps;
  std::size_t next = 0;
  while (next < stops.size() && stops[next] <= t) {
    on_stop(next, t, x);
    ++next;
  }
  State x_old(x.size());
  int grid_index = 1;
  while (next < stops.size()) {
    double grid_t = grid_index >= cfg.steps ? t_end : t_start + grid_index * h_uniform;
    while (grid_t <= t + 1e-12 * std::max(1.0, std::abs(t)) && grid_index < cfg.steps) {
      ++grid_index;
      grid_t = grid_index >= cfg.steps ? t_end : t_start + grid_index * h_uniform;
    }
    const double target = std::min(grid_t, stops[next]);
    const double h = target - t;
    x_old = x;
    stepper.do_step(sys, x, t, h);
    ++stats.accepted;
    const double t_old = t;
    t = target;
    if (cfg.finite_count > 0 && !AllFinite(x, cfg.finite_count)) ThrowNotFinite(cfg, t);
    on_step(t_old, h, x_old, x);
    while (next < stops.size() && stops[next] <= t + 1e-12 * std::max(1.0, std::abs(t))) {
      on_stop(next, t, x);
      ++next;
    }
    if (stats.accepted > cfg.max_steps) {
      std::ostringstream msg;
      msg << "the " << cfg.what << " solve exceeded max_steps = " << cfg.max_steps;
      throw NumericalError(msg.str());
    }
  }
  return stats;
}

template <class System, class OnStep, class OnStop>
DriveStats Drive(System& sys, State& x, double t, const std::vector<double>& stops,
                 const DriveConfig& cfg, OnStep&& on_step, OnStop&& on_stop) {
  switch (cfg.method) {
    case Method::kEuler:
      return DriveFixed(odeint::euler<State>(), sys, x, t, stops, cfg, on_step, on_stop);
    case Method::kMidpoint:
      return DriveFixed(MakeMidpoint(), sys, x, t, stops, cfg, on_step, on_stop);
    case Method::kRk4:
      return DriveFixed(odeint::runge_kutta4<State>(), sys, x, t, stops, cfg, on_step, on_stop);
    case Method::kDopri5:
      return DriveAdaptive<odeint::runge_kutta_dopri5<State>>(sys, x, t, stops, cfg, on_step,
                                                              on_stop);
    case Method::kCashKarp54:
      return DriveAdaptive<odeint::runge_kutta_cash_karp54<State>>(sys, x, t, stops, cfg,
                                                                   on_step, on_stop);
    case Method::kFehlberg78:
      return DriveAdaptive<odeint::runge_kutta_fehlberg78<State>>(sys, x, t, stops, cfg,
                                                                  on_step, on_stop);
  }
  throw std::logic_error("unknown method");
}

// State-sized vectors an odeint stepper keeps while it works (for the memory account).
long StepperWorkStates(Method m) {
  switch (m) {
    case Method::kEuler: return 1;
    case Method::kMidpoint: return 3;
    case Method::kRk4: return 5;
    case Method::kDopri5: return 11;
    case Method::kCashKarp54: return 9;
    case Method::kFehlberg78: return 17;
  }
  return 0;
}

DriveConfig ForwardConfig(const SolverOptions& o, std::size_t n) {
  DriveConfig cfg;
  cfg.method = o.method;
  cfg.steps = o.steps;
  cfg.rtol = o.rtol;
  cfg.atol = o.atol;
  cfg.norm = o.error_norm;
  cfg.counted = n;
  cfg.finite_count = o.check_finite ? n : 0;
  cfg.initial_dt = o.initial_dt;
  cfg.max_dt = o.max_dt;
  cfg.max_steps = o.max_steps;
  cfg.what = "forward";
  return cfg;
}

void ValidateCall(const Dynamics& dynamics, const Vector& x0, const Vector& theta,
                  const std::vector<double>& output_times, const SolverOptions& options) {
  options.Validate();
  if (x0.size() != dynamics.state_dim()) {
    throw InputError("x0 has " + std::to_string(x0.size()) + " entries, the dynamics expects " +
                     std::to_string(dynamics.state_dim()));
  }
  if (theta.size() != dynamics.param_dim()) {
    throw InputError("theta has " + std::to_string(theta.size()) +
                     " entries, the dynamics expects " + std::to_string(dynamics.param_dim()));
  }
  if (!x0.allFinite()) throw InputError("x0 holds NaN or Inf");
  if (!theta.allFinite()) throw InputError("theta holds NaN or Inf");
  if (output_times.empty()) throw InputError("output_times is empty: expected at least one time");
  double previous = options.t0;
  for (double t : output_times) {
    if (!std::isfinite(t) || t < previous) {
      throw InputError("output_times must be finite, sorted and >= t0 = " +
                       std::to_string(options.t0) + "; got " + std::to_string(t));
    }
    previous = t;
  }
}

// Distinct stops (output times strictly after t0).
std::vector<double> Stops(const std::vector<double>& times, double t0) {
  std::vector<double> stops;
  for (double t : times) {
    if (t > t0 && (stops.empty() || t > stops.back())) stops.push_back(t);
  }
  return stops;
}

// Keeps the state every `every` accepted steps. every = 0 selects thinning: keep every step until
// `cap` checkpoints are held, then double the spacing and drop the checkpoints in between.
class CheckpointStore {
 public:
  explicit CheckpointStore(int every) : every_(every > 0 ? every : 1), thinning_(every <= 0) {}

  void Offer(long step, const State& x) {
    if (step % every_ != 0) return;
    points_.emplace_back(step, x);
    if (thinning_ && static_cast<long>(points_.size()) > kCap) {
      every_ *= 2;
      std::vector<std::pair<long, State>> kept;
      for (auto& p : points_) {
        if (p.first % every_ == 0) kept.push_back(std::move(p));
      }
      points_ = std::move(kept);
    }
    peak_ = std::max(peak_, static_cast<long>(points_.size()));
  }
  const std::vector<std::pair<long, State>>& points() const { return points_; }
  long peak() const { return peak_; }

 private:
  static constexpr long kCap = 32;
  long every_;
  bool thinning_;
  long peak_ = 0;
  std::vector<std::pair<long, State>> points_;
};

struct StepRecord {
  double t;
  double h;
};

// Stages of a tableau that reach the solution (the others are never evaluated).
std::vector<bool> StagesReachingSolution(const ButcherTableau& tableau) {
  const int s = tableau.stages;
  std::vector<bool> needed(s, false);
  for (int i = s - 1; i >= 0; --i) {
    bool need = tableau.b[i] != 0.0;
    for (int j = i + 1; j < s && !need; ++j) need = needed[j] && tableau.a[j][i] != 0.0;
    needed[i] = need;
  }
  return needed;
}

}  // namespace

// The tape and the stages' work vectors (integrate.h); sizes only grow, contents are scratch.
struct GradientWorkspace::Storage {
  std::vector<std::vector<Vector>> tape;  // tape[row][stage]
  std::vector<Vector> k, kbar;
  Vector ybar, theta_bar;
  Vector step_out;  // a taped forward step's end
};

GradientWorkspace::GradientWorkspace() : storage_(std::make_unique<Storage>()) {}
GradientWorkspace::~GradientWorkspace() = default;
GradientWorkspace::GradientWorkspace(GradientWorkspace&&) noexcept = default;
GradientWorkspace& GradientWorkspace::operator=(GradientWorkspace&&) noexcept = default;

namespace {

// Sizes v to n without zeroing: every element is written before it is read.
void SizeTo(Vector& v, Eigen::Index n) {
  if (v.size() != n) v.resize(n);
}

// Runge–Kutta steps with the method's tableau onto a tape: row r holds the stage inputs y_i of
// one step, and with `keep` the Dynamics keeps its forward evaluation of stage i in slot
// r · NeededStages() + (the index of i among the needed stages), so that Backward(r) calls
// vjp_slot on what f_slot kept (the replay contract of solvers/dynamics.h). The tape and work
// vectors live in `storage` (a GradientWorkspace's, kept between calls, or the call's own).
class TableauStepper {
 public:
  TableauStepper(const ButcherTableau& tableau, Dynamics& dynamics, const Vector& theta,
                 GradientWorkspace::Storage& storage)
      : tableau_(tableau),
        dynamics_(dynamics),
        theta_(theta),
        needed_(StagesReachingSolution(tableau)),
        y_(storage.tape),
        k_(storage.k),
        kbar_(storage.kbar),
        ybar_(storage.ybar),
        thetabar_(storage.theta_bar),
        step_out_(storage.step_out) {
    const int s = tableau_.stages;
    const Eigen::Index n = dynamics.state_dim();
    slot_.assign(s, -1);
    int count = 0;
    for (int i = 0; i < s; ++i) {
      if (needed_[i]) slot_[i] = count++;
    }
    needed_count_ = count;
    if (static_cast<int>(k_.size()) < s) k_.resize(s);
    if (static_cast<int>(kbar_.size()) < s) kbar_.resize(s);
    for (int i = 0; i < s; ++i) {
      if (!needed_[i]) continue;  // stages that never reach the solution need no memory
      SizeTo(k_[i], n);
      SizeTo(kbar_[i], n);
    }
    SizeTo(ybar_, n);
    SizeTo(thetabar_, dynamics.param_dim());
  }

  int NeededStages() const { return needed_count_; }

  // Makes room for `rows` steps on the tape and in the Dynamics' slots (may allocate; a tape
  // kept from an earlier call is reused as it is when its rows are large enough).
  void Reserve(long rows) {
    if (rows <= rows_) return;
    const Eigen::Index n = dynamics_.state_dim();
    if (static_cast<long>(y_.size()) < rows) y_.resize(static_cast<std::size_t>(rows));
    for (long r = rows_; r < rows; ++r) {  // rows below rows_ were sized by this solve
      std::vector<Vector>& row = y_[static_cast<std::size_t>(r)];
      if (static_cast<int>(row.size()) < tableau_.stages) row.resize(tableau_.stages);
      for (int i = 0; i < tableau_.stages; ++i) {
        if (needed_[i]) SizeTo(row[i], n);
      }
    }
    dynamics_.ReserveSlots(static_cast<int>(rows) * NeededStages());
    rows_ = rows;
  }
  long rows() const { return rows_; }

  // f(t, x) of the last Step(): its first stage (c_1 = 0, y_1 = x), which every method evaluates.
  const Vector& StartSlope() const { return k_[0]; }

  // x_next = Φ_h(x) (x_next must not alias x), the stage inputs onto tape row `row`; `keep`:
  // f_slot, so that Backward(row) may follow. Returns the number of f evaluations.
  long Step(long row, bool keep, double t, double h, ConstVectorRef x, Vector& x_next) {
    const int s = tableau_.stages;
    std::vector<Vector>& y = y_[static_cast<std::size_t>(row)];
    SizeTo(x_next, x.size());
    long nfe = 0;
    bool started = false;  // x_next holds x and the h b_j k_j of the stages j ≤ added
    int added = -1;
    // x_next = x + h Σ_{j ≤ last} b_j k_j, accumulated stage by stage (the order of the sum is
    // the stages'), on [begin, end).
    const auto accumulate = [&](Eigen::Index begin, Eigen::Index end, int last) {
      auto xn = x_next.segment(begin, end - begin);
      if (!started) xn = x.segment(begin, end - begin);
      for (int j = added + 1; j <= last; ++j) {
        if (needed_[j] && tableau_.b[j] != 0.0) {
          xn.noalias() += (h * tableau_.b[j]) * k_[j].segment(begin, end - begin);
        }
      }
    };
    for (int i = 0; i < s; ++i) {
      if (!needed_[i]) continue;
      // y_i = x + h Σ_{j<i} a_ij k_j, in one pass with x_next's share of the stages before i.
      const auto combine = [&](Eigen::Index begin, Eigen::Index end) {
        accumulate(begin, end, i - 1);
        auto yi = y[i].segment(begin, end - begin);
        yi = x.segment(begin, end - begin);
        for (int j = 0; j < i; ++j) {
          if (needed_[j] && tableau_.a[i][j] != 0.0) {
            yi.noalias() += (h * tableau_.a[i][j]) * k_[j].segment(begin, end - begin);
          }
        }
      };
      dynamics_.ForStateRanges(std::cref(combine));
      started = true;
      added = i - 1;
      if (keep) {
        dynamics_.f_slot(Slot(row, i), t + tableau_.c[i] * h, y[i], theta_, k_[i]);
      } else {
        dynamics_.f(t + tableau_.c[i] * h, y[i], theta_, k_[i]);
      }
      ++nfe;
    }
    const auto finish = [&](Eigen::Index begin, Eigen::Index end) {
      accumulate(begin, end, s - 1);
    };
    dynamics_.ForStateRanges(std::cref(finish));
    return nfe;
  }

  // Step(row, keep = true) with x replaced by x_next.
  long StepInPlace(long row, double t, double h, Eigen::Map<Vector> x) {
    const long nfe = Step(row, true, t, h, x, step_out_);
    const auto copy = [&](Eigen::Index begin, Eigen::Index end) {
      x.segment(begin, end - begin) = step_out_.segment(begin, end - begin);
    };
    dynamics_.ForStateRanges(std::cref(copy));
    return nfe;
  }

  // Given λ = ∂L/∂x_next, replaces it by ∂L/∂x and adds ∂L/∂θ to theta_bar, through the step on
  // tape row `row` (taken with keep). Returns the number of vjp evaluations.
  long Backward(long row, double t, double h, Vector& lambda, Vector& theta_bar) {
    const int s = tableau_.stages;
    const std::vector<Vector>& y = y_[static_cast<std::size_t>(row)];
    long nvjp = 0;
    const auto seed = [&](Eigen::Index begin, Eigen::Index end) {
      for (int i = 0; i < s; ++i) {
        if (needed_[i]) {
          kbar_[i].segment(begin, end - begin) =
              (h * tableau_.b[i]) * lambda.segment(begin, end - begin);
        }
      }
    };
    dynamics_.ForStateRanges(std::cref(seed));
    for (int i = s - 1; i >= 0; --i) {
      if (!needed_[i]) continue;
      dynamics_.vjp_slot(Slot(row, i), t + tableau_.c[i] * h, y[i], theta_, kbar_[i], ybar_,
                         thetabar_);
      ++nvjp;
      theta_bar += thetabar_;
      const auto spread = [&](Eigen::Index begin, Eigen::Index end) {
        const auto yb = ybar_.segment(begin, end - begin);
        lambda.segment(begin, end - begin) += yb;
        for (int j = 0; j < i; ++j) {
          if (needed_[j] && tableau_.a[i][j] != 0.0) {
            kbar_[j].segment(begin, end - begin).noalias() += (h * tableau_.a[i][j]) * yb;
          }
        }
      };
      dynamics_.ForStateRanges(std::cref(spread));
    }
    return nvjp;
  }

 private:
  int Slot(long row, int stage) const {
    return static_cast<int>(row) * needed_count_ + slot_[stage];
  }

  const ButcherTableau& tableau_;
  Dynamics& dynamics_;
  const Vector& theta_;
  std::vector<bool> needed_;
  int needed_count_ = 0;
  std::vector<int> slot_;                // index of a needed stage among the needed ones
  long rows_ = 0;                        // tape rows reserved for this solve
  std::vector<std::vector<Vector>>& y_;  // the tape: y_[row][stage]
  std::vector<Vector>& k_;
  std::vector<Vector>& kbar_;
  Vector& ybar_;
  Vector& thetabar_;
  Vector& step_out_;
};

// An odeint-style stepper for DriveFixed that steps with a TableauStepper onto consecutive tape
// rows, so that the forward pass of a fixed-step solve is its own replay.
struct TapingStepper {
  TableauStepper* tape;
  long* row;
  long* nfe;
  template <class System>
  void do_step(System& /*unused*/, State& x, double t, double h) {
    if (*row >= tape->rows()) tape->Reserve(*row + 1);  // the steps taken, not their bound
    *nfe += tape->StepInPlace((*row)++, t, h, View(x));
  }
};

// Forward pass shared by the gradient modes: records states at output times, the accepted steps,
// and checkpoints.
struct ForwardRecord {
  std::vector<Vector> outputs;             // x at each output time
  std::vector<long> output_boundary;       // step boundary index of each output time
  std::vector<StepRecord> steps;
  State final_state;
  DriveStats stats;
};

// With `tape` (fixed-step methods only), the steps are taken by the TableauStepper onto
// consecutive tape rows from 0 instead of by odeint.
ForwardRecord RecordForward(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                            const std::vector<double>& output_times, const SolverOptions& options,
                            CheckpointStore* checkpoints, SolveSummary& summary,
                            TableauStepper* tape = nullptr) {
  const Eigen::Index n = dynamics.state_dim();
  ForwardRecord rec;
  rec.outputs.resize(output_times.size());
  rec.output_boundary.resize(output_times.size());
  const std::vector<double> stops = Stops(output_times, options.t0);
  long nfe = 0;
  auto sys = [&](const State& x, State& dxdt, double t) {
    dynamics.f(t, View(x), theta, View(dxdt));
    ++nfe;
  };
  State x = ToState(x0);
  if (checkpoints) checkpoints->Offer(0, x);
  auto on_step = [&](double t_old, double h, const State&, const State& x_new) {
    rec.steps.push_back({t_old, h});
    if (checkpoints) checkpoints->Offer(static_cast<long>(rec.steps.size()), x_new);
  };
  std::size_t out = 0;
  auto record_until = [&](double t, const State& xs) {
    while (out < output_times.size() && output_times[out] <= t) {
      rec.outputs[out] = ToVector(xs);
      rec.output_boundary[out] = static_cast<long>(rec.steps.size());
      ++out;
    }
  };
  record_until(options.t0, x);
  auto on_stop = [&](std::size_t, double t, State& xs) {
    record_until(t, xs);
    return false;
  };
  DriveConfig cfg = ForwardConfig(options, static_cast<std::size_t>(n));
  if (tape != nullptr) {
    long row = 0;
    rec.stats = DriveFixed(TapingStepper{tape, &row, &nfe}, sys, x, options.t0,
                           stops, cfg, on_step, on_stop);
  } else {
    rec.stats = Drive(sys, x, options.t0, stops, cfg, on_step, on_stop);
  }
  rec.final_state = std::move(x);
  summary.nfe_forward += nfe;
  summary.steps_accepted += rec.stats.accepted;
  summary.steps_rejected += rec.stats.rejected;
  return rec;
}

void CheckLossGrads(const std::vector<Vector>& grads, Eigen::Index n) {
  for (const Vector& g : grads) {
    if (g.size() != n) throw InputError("the loss returned a gradient of the wrong size");
    if (!g.allFinite()) throw NumericalError("the loss gradient holds NaN or Inf");
  }
}

double EvaluateLoss(const TrajectoryLoss& loss, const std::vector<Vector>& states,
                    std::vector<Vector>& grads, Eigen::Index n) {
  grads.assign(states.size(), Vector::Zero(n));
  const double value = loss(states, grads);
  if (!std::isfinite(value)) throw NumericalError("the loss is NaN or Inf");
  CheckLossGrads(grads, n);
  return value;
}

// ---- discrete adjoint ----------------------------------------------------------------------

// Steps whose stage states fit the tape at once (GradientOptions::tape_slots, tape_bytes): ≥ 1.
long TapeSteps(const GradientOptions& gopts, int stages, Eigen::Index n) {
  const double step_bytes = static_cast<double>(stages) * static_cast<double>(n) * sizeof(double);
  const double by_bytes = std::floor(gopts.tape_bytes / step_bytes);
  const long by_slots = gopts.tape_slots / stages;
  return std::max(1L, static_cast<long>(std::min<double>(by_slots, by_bytes)));
}

GradientResult DiscreteGradient(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                                const std::vector<double>& output_times, const TrajectoryLoss& loss,
                                const SolverOptions& options, const GradientOptions& gopts,
    GradientWorkspace::Storage& storage) {
  GradientResult result;
  SolveSummary& summary = result.summary;
  const Eigen::Index n = dynamics.state_dim();
  const ButcherTableau& tableau = TableauFor(options.method);
  TableauStepper stepper(tableau, dynamics, theta, storage);
  const int stages = stepper.NeededStages();
  const long tape_steps = TapeSteps(gopts, stages, n);
  // A fixed-step solve takes at most `steps` steps plus one for each output time that splits one.
  const long fixed_steps_bound =
      options.steps + static_cast<long>(Stops(output_times, options.t0).size());
  const bool taped_forward = !IsAdaptive(options.method) && fixed_steps_bound <= tape_steps;
  // Recorded outputs, their loss gradients and the returned copies, and λ.
  const long fixed_states = 3L * static_cast<long>(output_times.size()) + 1;
  const long step_states = 2L * stages + 2;  // k, k̄ per stage; ȳ, the step's end state
  CheckpointStore store(gopts.checkpoint_every);
  ForwardRecord rec = RecordForward(dynamics, x0, theta, output_times, options,
                                    taped_forward ? nullptr : &store, summary,
                                    taped_forward ? &stepper : nullptr);
  State().swap(rec.final_state);  // the backward sweep starts from the tape or checkpoints
  std::vector<Vector> grads;
  result.loss = EvaluateLoss(loss, rec.outputs, grads, n);
  result.states = rec.outputs;

  const long total_steps = static_cast<long>(rec.steps.size());
  std::vector<std::vector<std::size_t>> outputs_at(total_steps + 1);
  for (std::size_t i = 0; i < output_times.size(); ++i) outputs_at[rec.output_boundary[i]].push_back(i);
  Vector lambda = Vector::Zero(n);
  Vector theta_bar = Vector::Zero(theta.size());
  auto add_outputs = [&](long boundary) {
    for (std::size_t i : outputs_at[boundary]) lambda += grads[i];
  };
  add_outputs(total_steps);
  // Back through steps [first, last) whose stages sit on tape rows 0 … last − first − 1.
  auto backward_taped = [&](long first, long last) {
    for (long m = last - 1; m >= first; --m) {
      const StepRecord& st = rec.steps[m];
      summary.vjp_backward += stepper.Backward(m - first, st.t, st.h, lambda, theta_bar);
      ++summary.backward_steps_accepted;
      add_outputs(m);
    }
  };

  if (taped_forward) {
    backward_taped(0, total_steps);
    summary.states_held_peak = stages * stepper.rows() + step_states + fixed_states;
    result.grad_x0 = std::move(lambda);
    result.grad_theta = std::move(theta_bar);
    return result;
  }

  const auto& points = store.points();
  summary.checkpoints = static_cast<long>(points.size());
  long peak = store.peak() + StepperWorkStates(options.method) + 2 + fixed_states;
  std::vector<Vector> segment;  // boundary states of a segment that does not fit the tape
  Vector x(n), x_next(n);
  for (long c = static_cast<long>(points.size()) - 1; c >= 0; --c) {
    const long first = points[c].first;
    const long last = c + 1 < static_cast<long>(points.size()) ? points[c + 1].first : total_steps;
    if (first >= last) continue;
    if (last - first <= tape_steps) {
      // One replay of the segment onto the tape, then back through it.
      stepper.Reserve(last - first);
      x = View(points[c].second);
      for (long m = first; m < last; ++m) {
        const StepRecord& st = rec.steps[m];
        summary.nfe_backward += stepper.Step(m - first, true, st.t, st.h, x, x_next);
        x.swap(x_next);
      }
      peak = std::max(peak, static_cast<long>(points.size()) + stages * stepper.rows() +
                                step_states + 1 + fixed_states);
      backward_taped(first, last);
      continue;
    }
    // Replay the boundary states first .. last − 1, then each step again onto tape row 0.
    stepper.Reserve(1);
    segment.resize(static_cast<std::size_t>(last - first));
    segment[0] = View(points[c].second);
    for (long m = first + 1; m < last; ++m) {
      const StepRecord& st = rec.steps[m - 1];
      summary.nfe_backward +=
          stepper.Step(0, false, st.t, st.h, segment[m - 1 - first], segment[m - first]);
    }
    peak = std::max(peak, static_cast<long>(points.size()) + (last - first) +
                              stages * stepper.rows() + step_states + fixed_states);
    for (long m = last - 1; m >= first; --m) {
      const StepRecord& st = rec.steps[m];
      summary.nfe_backward += stepper.Step(0, true, st.t, st.h, segment[m - first], x_next);
      backward_taped(m, m + 1);
    }
  }
  summary.states_held_peak = peak;
  result.grad_x0 = std::move(lambda);
  result.grad_theta = std::move(theta_bar);
  return result;
}

// ---- continuous adjoint by backsolve --------------------------------------------------------

DriveConfig BackwardConfig(const SolverOptions& o, const GradientOptions& g, std::size_t counted,
                           std::size_t finite_count) {
  DriveConfig cfg;
  cfg.method = o.method;
  cfg.steps = o.steps;
  cfg.rtol = g.adjoint_rtol > 0.0 ? g.adjoint_rtol : o.rtol;
  cfg.atol = g.adjoint_atol > 0.0 ? g.adjoint_atol : o.atol;
  cfg.norm = o.error_norm;
  cfg.counted = counted;
  cfg.finite_count = o.check_finite ? finite_count : 0;
  cfg.initial_dt = 0.0;
  cfg.max_dt = o.max_dt;
  cfg.max_steps = o.max_steps;
  cfg.what = "backward (adjoint)";
  return cfg;
}

GradientResult BacksolveGradient(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                                 const std::vector<double>& output_times,
                                 const TrajectoryLoss& loss, const SolverOptions& options,
                                 const GradientOptions& gopts) {
  GradientResult result;
  SolveSummary& summary = result.summary;
  const Eigen::Index n = dynamics.state_dim();
  const Eigen::Index p = dynamics.param_dim();
  ForwardRecord rec = RecordForward(dynamics, x0, theta, output_times, options, nullptr, summary);
  rec.steps.clear();
  rec.steps.shrink_to_fit();
  std::vector<Vector> grads;
  result.loss = EvaluateLoss(loss, rec.outputs, grads, n);
  result.states = rec.outputs;

  const double t0 = options.t0;
  const double t_end = output_times.back();
  // Reversed time s = −t runs from −t_end to −t0. Stops: earlier output times, then t0.
  std::vector<double> stops;
  for (auto it = output_times.rbegin(); it != output_times.rend(); ++it) {
    const double s = -*it;
    if (s > -t_end && (stops.empty() || s > stops.back())) stops.push_back(s);
  }
  if (stops.empty() || stops.back() < -t0) stops.push_back(-t0);

  // z = [x, λ, θ̄]
  State z(static_cast<std::size_t>(2 * n + p), 0.0);
  Head(z, n) = View(rec.final_state);
  for (std::size_t i = 0; i < output_times.size(); ++i) {
    if (output_times[i] == t_end) Head(z, n, n) += grads[i];
  }
  Vector ax(n), ath(p), fx(n);
  long nfe = 0, nvjp = 0;
  dynamics.ReserveSlots(1);
  auto sys = [&](const State& zs, State& dz, double s) {
    const double t = -s;
    const auto x = Head(zs, n);
    const auto lam = Head(zs, n, n);
    dynamics.f_slot(0, t, x, theta, fx);
    dynamics.vjp_slot(0, t, x, theta, lam, ax, ath);
    ++nfe;
    ++nvjp;
    Head(dz, n) = -fx;
    Head(dz, n, n) = ax;
    Head(dz, p, 2 * n) = ath;
  };
  auto on_step = [](double, double, const State&, const State&) {};
  auto on_stop = [&](std::size_t, double s, State& zs) {
    const double t = -s;
    bool changed = false;
    for (std::size_t i = 0; i < output_times.size(); ++i) {
      if (output_times[i] == t && t < t_end) {
        Head(zs, n, n) += grads[i];
        // Restart the backward state from the recorded forward state (as torchdiffeq does).
        Head(zs, n) = rec.outputs[i];
        changed = true;
      }
    }
    return changed;
  };
  const std::size_t counted = gopts.seminorm ? static_cast<std::size_t>(2 * n) : z.size();
  DriveConfig cfg = BackwardConfig(options, gopts, counted, static_cast<std::size_t>(2 * n));
  if (t_end > t0) {
    DriveStats stats = Drive(sys, z, -t_end, stops, cfg, on_step, on_stop);
    summary.backward_steps_accepted = stats.accepted;
    summary.backward_steps_rejected = stats.rejected;
  } else {
    for (std::size_t i = 0; i < output_times.size(); ++i) {
      if (output_times[i] < t_end) Head(z, n, n) += grads[i];
    }
  }
  summary.nfe_backward = nfe;
  summary.vjp_backward = nvjp;
  summary.states_held_peak = 2 + 3 * (StepperWorkStates(options.method) + 2);
  result.grad_x0 = Head(z, n, n);
  result.grad_theta = Head(z, p, 2 * n);
  return result;
}

// ---- continuous adjoint with checkpoints ----------------------------------------------------

GradientResult CheckpointedGradient(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                                    const std::vector<double>& output_times,
                                    const TrajectoryLoss& loss, const SolverOptions& options,
                                    const GradientOptions& gopts,
    GradientWorkspace::Storage& storage) {
  GradientResult result;
  SolveSummary& summary = result.summary;
  const Eigen::Index n = dynamics.state_dim();
  const Eigen::Index p = dynamics.param_dim();
  CheckpointStore store(gopts.checkpoint_every);
  ForwardRecord rec = RecordForward(dynamics, x0, theta, output_times, options, &store, summary);
  State().swap(rec.final_state);  // the replay starts from checkpoints
  std::vector<Vector> grads;
  result.loss = EvaluateLoss(loss, rec.outputs, grads, n);
  result.states = rec.outputs;

  const ButcherTableau& tableau = TableauFor(options.method);
  TableauStepper replay(tableau, dynamics, theta, storage);
  replay.Reserve(1);
  const auto& points = store.points();
  const long total_steps = static_cast<long>(rec.steps.size());
  summary.checkpoints = static_cast<long>(points.size());
  // Recorded outputs, their loss gradients and the returned copies; x(t), ∂f/∂x ᵀλ and z = [λ, θ̄].
  const long fixed_states = 3L * static_cast<long>(output_times.size()) + 3;
  long peak = store.peak() + StepperWorkStates(options.method) + 2 + fixed_states;

  std::vector<std::vector<std::size_t>> outputs_at(total_steps + 1);
  for (std::size_t i = 0; i < output_times.size(); ++i) outputs_at[rec.output_boundary[i]].push_back(i);

  // z = [λ, θ̄]
  State z(static_cast<std::size_t>(n + p), 0.0);
  for (std::size_t i : outputs_at[total_steps]) Head(z, n) += grads[i];

  std::vector<Vector> xs, fs;  // replayed states and slopes at the boundaries of one segment
  std::vector<double> ts;
  Vector x_interp(n), ax(n), ath(p);
  long nvjp = 0;
  std::size_t seg_index = 0;
  // Cubic Hermite interpolation of x on the replayed segment.
  auto interpolate = [&](double t) {
    const std::size_t m = ts.size();
    if (t <= ts.front()) {
      seg_index = 0;
    } else if (t >= ts.back()) {
      seg_index = m - 2;
    } else {
      if (seg_index >= m - 1) seg_index = m - 2;
      while (seg_index > 0 && t < ts[seg_index]) --seg_index;
      while (seg_index + 2 < m && t > ts[seg_index + 1]) ++seg_index;
    }
    const std::size_t j = seg_index;
    const double h = ts[j + 1] - ts[j];
    const double u = (t - ts[j]) / h;
    const double h00 = (1 + 2 * u) * (1 - u) * (1 - u), h10 = u * (1 - u) * (1 - u);
    const double h01 = u * u * (3 - 2 * u), h11 = u * u * (u - 1);
    x_interp.noalias() = h00 * xs[j] + (h10 * h) * fs[j];
    x_interp.noalias() += h01 * xs[j + 1] + (h11 * h) * fs[j + 1];
  };
  auto sys = [&](const State& zs, State& dz, double s) {
    const double t = -s;
    interpolate(t);
    dynamics.vjp(t, x_interp, theta, Head(zs, n), ax, ath);
    ++nvjp;
    Head(dz, n) = ax;
    Head(dz, p, n) = ath;
  };
  const std::size_t counted = gopts.seminorm ? static_cast<std::size_t>(n) : z.size();
  DriveConfig cfg = BackwardConfig(options, gopts, counted, static_cast<std::size_t>(n));
  const int fixed_steps_total = options.steps;
  const double span_total = output_times.back() - options.t0;
  auto on_step = [](double, double, const State&, const State&) {};
  for (long c = static_cast<long>(points.size()) - 1; c >= 0; --c) {
    const long first = points[c].first;
    const long last = c + 1 < static_cast<long>(points.size()) ? points[c + 1].first : total_steps;
    if (first >= last) continue;
    const std::size_t len = static_cast<std::size_t>(last - first + 1);
    xs.resize(len);
    fs.resize(len);
    ts.resize(len);
    xs[0] = ToVector(points[c].second);
    for (long m = first; m < last; ++m) {
      const StepRecord& st = rec.steps[m];
      summary.nfe_backward += replay.Step(0, false, st.t, st.h, xs[m - first], xs[m + 1 - first]);
      fs[m - first] = replay.StartSlope();  // the slope at the step's start, already evaluated
      ts[m - first] = st.t;
    }
    ts[len - 1] = rec.steps[last - 1].t + rec.steps[last - 1].h;
    fs[len - 1].resize(n);
    dynamics.f(ts[len - 1], xs[len - 1], theta, fs[len - 1]);
    ++summary.nfe_backward;
    peak = std::max(peak, static_cast<long>(points.size()) + 2 * static_cast<long>(len) +
                              3L * replay.NeededStages() + 2 +
                              StepperWorkStates(options.method) + 2 + fixed_states);
    // Backward over this segment, stopping at every boundary that carries an output time.
    std::vector<double> stops;
    std::vector<long> stop_boundary;
    for (long m = last - 1; m >= first; --m) {
      if (!outputs_at[m].empty() || m == first) {
        stops.push_back(-ts[m - first]);
        stop_boundary.push_back(m);
      }
    }
    auto on_stop = [&](std::size_t k, double, State& zs) {
      const long m = stop_boundary[k];
      if (m == first && c > 0) return false;  // the next segment adds these outputs
      for (std::size_t i : outputs_at[m]) Head(zs, n) += grads[i];
      return !outputs_at[m].empty();
    };
    DriveConfig seg_cfg = cfg;
    if (!IsAdaptive(options.method)) {
      const double seg_span = ts.back() - ts.front();
      seg_cfg.steps = std::max(1, static_cast<int>(std::lround(fixed_steps_total * seg_span / span_total)));
    }
    DriveStats stats = Drive(sys, z, -ts.back(), stops, seg_cfg, on_step, on_stop);
    summary.backward_steps_accepted += stats.accepted;
    summary.backward_steps_rejected += stats.rejected;
    if (c > 0) {
      for (std::size_t i : outputs_at[first]) Head(z, n) += grads[i];
    }
  }
  if (total_steps == 0) {
    for (std::size_t i : outputs_at[0]) Head(z, n) += grads[i];
  }
  summary.vjp_backward = nvjp;
  summary.states_held_peak = peak;
  result.grad_x0 = Head(z, n);
  result.grad_theta = Head(z, p, n);
  return result;
}

}  // namespace

// ---- names, options ---------------------------------------------------------------------------

std::string MethodName(Method m) {
  switch (m) {
    case Method::kEuler: return "euler";
    case Method::kMidpoint: return "midpoint";
    case Method::kRk4: return "rk4";
    case Method::kDopri5: return "dopri5";
    case Method::kCashKarp54: return "cash-karp";
    case Method::kFehlberg78: return "fehlberg78";
  }
  return "unknown";
}

Method ParseMethod(const std::string& name, const std::string& argument) {
  for (Method m : {Method::kEuler, Method::kMidpoint, Method::kRk4, Method::kDopri5,
                   Method::kCashKarp54, Method::kFehlberg78}) {
    if (name == MethodName(m)) return m;
  }
  throw InputError(argument + ": unknown solver '" + name +
                   "', expected one of euler, midpoint, rk4, dopri5, cash-karp, fehlberg78");
}

std::string GradientModeName(GradientMode m) {
  switch (m) {
    case GradientMode::kDiscrete: return "discrete";
    case GradientMode::kBacksolve: return "backsolve";
    case GradientMode::kCheckpointed: return "checkpointed";
  }
  return "unknown";
}

GradientMode ParseGradientMode(const std::string& name, const std::string& argument) {
  for (GradientMode m :
       {GradientMode::kDiscrete, GradientMode::kBacksolve, GradientMode::kCheckpointed}) {
    if (name == GradientModeName(m)) return m;
  }
  throw InputError(argument + ": unknown gradient mode '" + name +
                   "', expected one of discrete, backsolve, checkpointed");
}

bool IsAdaptive(Method m) {
  return m == Method::kDopri5 || m == Method::kCashKarp54 || m == Method::kFehlberg78;
}

int MethodOrder(Method m) {
  switch (m) {
    case Method::kEuler: return 1;
    case Method::kMidpoint: return 2;
    case Method::kRk4: return 4;
    case Method::kDopri5: return 5;
    case Method::kCashKarp54: return 5;
    case Method::kFehlberg78: return 8;
  }
  return 1;
}

void SolverOptions::Validate() const {
  auto fail = [](const std::string& field, const std::string& expected, double got) {
    std::ostringstream msg;
    msg << "solver option " << field << " must be " << expected << ", got " << got;
    throw InputError(msg.str());
  };
  if (!std::isfinite(t0)) fail("t0", "finite", t0);
  if (steps < 1) fail("steps", ">= 1", steps);
  if (!(rtol > 0.0) || !std::isfinite(rtol)) fail("rtol", "> 0", rtol);
  if (!(atol >= 0.0) || !std::isfinite(atol)) fail("atol", ">= 0", atol);
  if (rtol == 0.0 && atol == 0.0) fail("atol", "> 0 when rtol is 0", atol);
  if (!(initial_dt >= 0.0) || !std::isfinite(initial_dt)) fail("initial_dt", ">= 0", initial_dt);
  if (!(max_dt >= 0.0) || !std::isfinite(max_dt)) fail("max_dt", ">= 0", max_dt);
  if (max_steps < 1) fail("max_steps", ">= 1", max_steps);
}

void GradientOptions::Validate() const {
  auto fail = [](const std::string& field, const std::string& expected, double got) {
    std::ostringstream msg;
    msg << "gradient option " << field << " must be " << expected << ", got " << got;
    throw InputError(msg.str());
  };
  if (!(adjoint_rtol >= 0.0) || !std::isfinite(adjoint_rtol)) fail("adjoint_rtol", ">= 0 (0: as forward)", adjoint_rtol);
  if (!(adjoint_atol >= 0.0) || !std::isfinite(adjoint_atol)) fail("adjoint_atol", ">= 0 (0: as forward)", adjoint_atol);
  if (checkpoint_every < 0) fail("checkpoint_every", ">= 0", checkpoint_every);
  if (tape_slots < 1) fail("tape_slots", ">= 1", tape_slots);
  if (!(tape_bytes >= 0.0) || !std::isfinite(tape_bytes)) fail("tape_bytes", ">= 0", tape_bytes);
}

std::string SolveSummary::BriefReport() const {
  std::ostringstream out;
  out << "nfe " << nfe_forward << " fwd / " << nfe_backward << " bwd, vjp " << vjp_backward
      << ", steps " << steps_accepted << " (+" << steps_rejected << " rejected)";
  if (backward_steps_accepted > 0) {
    out << ", backward steps " << backward_steps_accepted << " (+" << backward_steps_rejected
        << " rejected)";
  }
  out << ", states held " << states_held_peak << ", " << wall_seconds << " s";
  return out.str();
}

std::string SolveSummary::FullReport() const {
  std::ostringstream out;
  out << "diffeoflow solve summary\n"
      << "  f evaluations, forward      " << nfe_forward << "\n"
      << "  f evaluations, backward     " << nfe_backward << "\n"
      << "  vjp evaluations             " << vjp_backward << "\n"
      << "  steps accepted / rejected   " << steps_accepted << " / " << steps_rejected << "\n"
      << "  backward steps acc. / rej.  " << backward_steps_accepted << " / "
      << backward_steps_rejected << "\n"
      << "  checkpoints                 " << checkpoints << "\n"
      << "  states held at peak         " << states_held_peak << "\n"
      << "  wall time (s)               " << wall_seconds << "\n";
  return out.str();
}

// Dopri5 with odeint's dense output: free steps, output times by the continuous extension.
Solution DenseDopri5(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                     const std::vector<double>& output_times, const SolverOptions& options) {
  using Stepper = odeint::runge_kutta_dopri5<State>;
  using Checker = ScaledErrorChecker;
  using Adjuster = odeint::default_step_adjuster<double, double>;
  using Controlled = odeint::controlled_runge_kutta<Stepper, Checker, Adjuster,
                                                    odeint::initially_resizer,
                                                    odeint::explicit_error_stepper_fsal_tag>;
  const std::size_t n = static_cast<std::size_t>(dynamics.state_dim());
  Solution solution;
  solution.times = output_times;
  long nfe = 0, rejected = 0;
  auto sys = [&](const State& x, State& dxdt, double t) {
    dynamics.f(t, View(x), theta, View(dxdt));
    ++nfe;
  };
  State x = ToState(x0);
  DriveConfig cfg = ForwardConfig(options, n);
  const double t_end = output_times.back();
  odeint::dense_output_runge_kutta<Controlled, odeint::explicit_controlled_stepper_fsal_tag> dense(
      Controlled(Checker(options.atol, options.rtol, options.error_norm, n, &rejected),
                 Adjuster(options.max_dt)));
  double dt = options.initial_dt > 0.0
                  ? options.initial_dt
                  : (t_end > options.t0 ? StartingStep(sys, x, options.t0, t_end - options.t0, 5, cfg)
                                        : 1.0);
  if (options.max_dt > 0.0) dt = std::min(dt, options.max_dt);
  dense.initialize(x, options.t0, dt);
  State out(n);
  long accepted = 0;
  for (double t_out : output_times) {
    while (dense.current_time() < t_out) {
      try {
        dense.do_step(sys);
      } catch (const odeint::step_adjustment_error&) {
        throw NumericalError("the forward step size could not be adjusted at t = " +
                             std::to_string(dense.current_time()) + " (too many rejections)");
      }
      ++accepted;
      if (options.check_finite && !AllFinite(dense.current_state(), n)) {
        ThrowNotFinite(cfg, dense.current_time());
      }
      if (accepted + rejected > options.max_steps) {
        throw NumericalError("the forward solve exceeded max_steps = " +
                             std::to_string(options.max_steps));
      }
    }
    if (t_out == options.t0) {
      out = x;
    } else {
      dense.calc_state(t_out, out);
    }
    solution.states.push_back(ToVector(out));
  }
  solution.summary.nfe_forward = nfe;
  solution.summary.steps_accepted = accepted;
  solution.summary.steps_rejected = rejected;
  solution.summary.states_held_peak =
      static_cast<long>(output_times.size()) + StepperWorkStates(Method::kDopri5) + 4;
  return solution;
}

// ---- public entry points ----------------------------------------------------------------------

Solution Integrate(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                   const std::vector<double>& output_times, const SolverOptions& options) {
  const auto start = Clock::now();
  ValidateCall(dynamics, x0, theta, output_times, options);
  if (options.dense_output) {
    if (options.method != Method::kDopri5) {
      throw InputError("solver option dense_output needs the dopri5 method, got " +
                       MethodName(options.method));
    }
    Solution dense = DenseDopri5(dynamics, x0, theta, output_times, options);
    dense.summary.wall_seconds = SecondsSince(start);
    return dense;
  }
  Solution solution;
  solution.times = output_times;
  ForwardRecord rec =
      RecordForward(dynamics, x0, theta, output_times, options, nullptr, solution.summary);
  solution.states = std::move(rec.outputs);
  solution.summary.states_held_peak =
      static_cast<long>(output_times.size()) + StepperWorkStates(options.method) + 2;
  solution.summary.wall_seconds = SecondsSince(start);
  return solution;
}

GradientResult Gradient(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                        const std::vector<double>& output_times, const TrajectoryLoss& loss,
                        const SolverOptions& options, const GradientOptions& gradient_options,
                        GradientWorkspace* workspace) {
  const auto start = Clock::now();
  ValidateCall(dynamics, x0, theta, output_times, options);
  gradient_options.Validate();
  if (!loss) throw InputError("Gradient: the loss function is empty");
  std::optional<GradientWorkspace> own;
  if (workspace == nullptr) workspace = &own.emplace();
  GradientWorkspace::Storage& storage = workspace->storage();
  GradientResult result;
  switch (gradient_options.mode) {
    case GradientMode::kDiscrete:
      result = DiscreteGradient(dynamics, x0, theta, output_times, loss, options, gradient_options,
                                storage);
      break;
    case GradientMode::kBacksolve:
      result = BacksolveGradient(dynamics, x0, theta, output_times, loss, options, gradient_options);
      break;
    case GradientMode::kCheckpointed:
      result =
          CheckpointedGradient(dynamics, x0, theta, output_times, loss, options, gradient_options,
                               storage);
      break;
  }
  if (options.check_finite && (!result.grad_x0.allFinite() || !result.grad_theta.allFinite())) {
    throw NumericalError("the gradient holds NaN or Inf (" +
                         GradientModeName(gradient_options.mode) + " mode)");
  }
  result.summary.wall_seconds = SecondsSince(start);
  return result;
}

SensitivitySolution ForwardSensitivity(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                                       const std::vector<double>& output_times,
                                       const SolverOptions& options) {
  const auto start = Clock::now();
  ValidateCall(dynamics, x0, theta, output_times, options);
  const Eigen::Index n = dynamics.state_dim();
  SensitivitySolution solution;
  solution.times = output_times;
  solution.states.resize(output_times.size());
  solution.jacobians.resize(output_times.size());
  // z = [x, vec(J)] with J column-major.
  State z(static_cast<std::size_t>(n + n * n), 0.0);
  Head(z, n) = x0;
  for (Eigen::Index i = 0; i < n; ++i) z[static_cast<std::size_t>(n + i * n + i)] = 1.0;
  Matrix jacobian_f(n, n);
  Vector fx(n);
  long nfe = 0;
  auto sys = [&](const State& zs, State& dz, double t) {
    const auto x = Head(zs, n);
    dynamics.f(t, x, theta, fx);
    jacobian_f = dynamics.JacobianX(t, x, theta);
    ++nfe;
    Head(dz, n) = fx;
    Eigen::Map<const Matrix> J(zs.data() + n, n, n);
    Eigen::Map<Matrix> dJ(dz.data() + n, n, n);
    dJ.noalias() = jacobian_f * J;
  };
  std::size_t out = 0;
  auto record_until = [&](double t, const State& zs) {
    while (out < output_times.size() && output_times[out] <= t) {
      solution.states[out] = Head(zs, n);
      solution.jacobians[out] = Eigen::Map<const Matrix>(zs.data() + n, n, n);
      ++out;
    }
  };
  record_until(options.t0, z);
  auto on_step = [](double, double, const State&, const State&) {};
  auto on_stop = [&](std::size_t, double t, State& zs) {
    record_until(t, zs);
    return false;
  };
  DriveConfig cfg = ForwardConfig(options, z.size());
  DriveStats stats = Drive(sys, z, options.t0, Stops(output_times, options.t0), cfg, on_step, on_stop);
  solution.summary.nfe_forward = nfe;
  solution.summary.steps_accepted = stats.accepted;
  solution.summary.steps_rejected = stats.rejected;
  solution.summary.states_held_peak = (1 + n) * (StepperWorkStates(options.method) + 2);
  solution.summary.wall_seconds = SecondsSince(start);
  return solution;
}

}  // namespace diffeoflow
