#include "solvers/gradient_check.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace diffeoflow {

double DirectionalDifference(const std::function<double(const Vector&)>& fn, const Vector& x,
                             const Vector& direction, double h) {
  const Vector forward = x + h * direction;
  const Vector backward = x - h * direction;
  return (fn(forward) - fn(backward)) / (2.0 * h);
}

Vector NumericalGradient(const std::function<double(const Vector&)>& fn, const Vector& x,
                         double h) {
  Vector gradient(x.size());
  Vector shifted = x;
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    shifted[i] = x[i] + h;
    const double forward = fn(shifted);
    shifted[i] = x[i] - h;
    const double backward = fn(shifted);
    shifted[i] = x[i];
    gradient[i] = (forward - backward) / (2.0 * h);
  }
  return gradient;
}

GradientCheckResult CheckDirectionalDerivative(const std::function<double(const Vector&)>& fn,
                                               const Vector& x, const Vector& gradient,
                                               std::mt19937& rng, double h) {
  if (gradient.size() != x.size()) {
    throw std::invalid_argument("CheckDirectionalDerivative: gradient has " +
                                std::to_string(gradient.size()) + " entries, x has " +
                                std::to_string(x.size()));
  }
  std::normal_distribution<double> normal(0.0, 1.0);
  Vector direction(x.size());
  do {
    for (Eigen::Index i = 0; i < direction.size(); ++i) direction[i] = normal(rng);
  } while (direction.size() > 0 && direction.norm() == 0.0);
  if (direction.size() > 0) direction.normalize();

  GradientCheckResult result;
  result.analytic = gradient.dot(direction);
  result.numeric = DirectionalDifference(fn, x, direction, h);
  const double scale = std::max({std::abs(result.analytic), std::abs(result.numeric),
                                 std::numeric_limits<double>::min()});
  result.relative_error = std::abs(result.analytic - result.numeric) / scale;
  return result;
}

namespace {

Vector RandomUnit(Eigen::Index n, std::mt19937& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  Vector v(n);
  do {
    for (Eigen::Index i = 0; i < n; ++i) v[i] = normal(rng);
  } while (n > 0 && v.norm() == 0.0);
  if (n > 0) v.normalize();
  return v;
}

// |analytic − numeric| relative to max(bound, |numeric|), bound = ‖gradient‖ ‖direction‖.
double ProductError(double analytic, double numeric, double bound) {
  const double scale =
      std::max({bound, std::abs(numeric), std::numeric_limits<double>::min()});
  return std::abs(analytic - numeric) / scale;
}

bool SameValues(const Vector& a, const Vector& b) {
  return a.size() == b.size() && (a.array() == b.array()).all();
}

}  // namespace

std::string DynamicsCheckResult::Report() const {
  std::ostringstream out;
  out << "vjp against central differences: state " << state_error << ", θ " << param_error
      << "; outputs overwritten: f " << (f_overwrites ? "yes" : "no") << ", vjp "
      << (vjp_overwrites ? "yes" : "no") << "; slots against plain calls " << slot_error
      << "; state ranges tile the state: " << (ranges_tile ? "yes" : "no") << "; allocations: ";
  if (f_allocations < 0) {
    out << "not counted";
  } else {
    out << "f " << f_allocations << ", vjp " << vjp_allocations;
  }
  out << (passed ? " (passed)" : " (FAILED)");
  return out.str();
}

DynamicsCheckResult CheckDynamics(Dynamics& dynamics, double t, const Vector& x,
                                  const Vector& theta, const DynamicsCheckOptions& options) {
  const Eigen::Index n = dynamics.state_dim();
  const Eigen::Index p = dynamics.param_dim();
  if (x.size() != n || theta.size() != p) {
    throw std::invalid_argument("CheckDynamics: x has " + std::to_string(x.size()) +
                                " entries and θ " + std::to_string(theta.size()) +
                                ", the dynamics needs " + std::to_string(n) + " and " +
                                std::to_string(p));
  }
  std::mt19937 rng(options.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  const double h = options.h;
  DynamicsCheckResult result;
  Vector a(n), a_x(n), a_theta(p), forward(n), backward(n);
  for (int k = 0; k < options.directions; ++k) {
    for (Eigen::Index i = 0; i < n; ++i) a[i] = normal(rng);
    dynamics.vjp(t, x, theta, a, a_x, a_theta);
    const Vector u = RandomUnit(n, rng);
    dynamics.f(t, x + h * u, theta, forward);
    dynamics.f(t, x - h * u, theta, backward);
    result.state_error =
        std::max(result.state_error, ProductError(a_x.dot(u), a.dot(forward - backward) / (2 * h),
                                                  a_x.norm()));
    if (p > 0) {
      const Vector s = RandomUnit(p, rng);
      dynamics.f(t, x, theta + h * s, forward);
      dynamics.f(t, x, theta - h * s, backward);
      result.param_error = std::max(
          result.param_error,
          ProductError(a_theta.dot(s), a.dot(forward - backward) / (2 * h), a_theta.norm()));
    }
  }

  // Outputs are overwritten, never accumulated into.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Vector f_zero = Vector::Zero(n), f_nan = Vector::Constant(n, nan);
  dynamics.f(t, x, theta, f_zero);
  dynamics.f(t, x, theta, f_nan);
  result.f_overwrites = SameValues(f_zero, f_nan);
  Vector ax_zero = Vector::Zero(n), ax_nan = Vector::Constant(n, nan);
  Vector at_zero = Vector::Zero(p), at_nan = Vector::Constant(p, nan);
  dynamics.vjp(t, x, theta, a, ax_zero, at_zero);
  dynamics.vjp(t, x, theta, a, ax_nan, at_nan);
  result.vjp_overwrites = SameValues(ax_zero, ax_nan) && SameValues(at_zero, at_nan);

  // The replay contract: what vjp_slot returns from a slot equals a plain vjp at the state f_slot
  // kept there, with other slots and plain calls in between; f_slot equals f.
  const Vector nearby = x + 1e-3 * RandomUnit(n, rng);
  const Vector other = x - 1e-3 * RandomUnit(n, rng);
  dynamics.ReserveSlots(2);
  Vector f_slot0(n), f_slot1(n), f_plain(n), ax_slot(n), at_slot(p), ax_plain(n), at_plain(p);
  auto relative = [](const Vector& got, const Vector& expected) {
    const double scale = std::max(expected.norm(), std::numeric_limits<double>::min());
    return got.size() == 0 ? 0.0 : (got - expected).norm() / scale;
  };
  dynamics.f_slot(0, t, x, theta, f_slot0);
  dynamics.f_slot(1, t, nearby, theta, f_slot1);
  dynamics.f(t, other, theta, forward);
  dynamics.vjp(t, other, theta, a, a_x, a_theta);
  dynamics.vjp_slot(0, t, x, theta, a, ax_slot, at_slot);
  dynamics.f(t, x, theta, f_plain);
  dynamics.vjp(t, x, theta, a, ax_plain, at_plain);
  result.slot_error = std::max({relative(f_slot0, f_plain), relative(ax_slot, ax_plain),
                                relative(at_slot, at_plain)});
  dynamics.vjp_slot(1, t, nearby, theta, a, ax_slot, at_slot);
  dynamics.f(t, nearby, theta, f_plain);
  dynamics.vjp(t, nearby, theta, a, ax_plain, at_plain);
  result.slot_error = std::max({result.slot_error, relative(f_slot1, f_plain),
                                relative(ax_slot, ax_plain), relative(at_slot, at_plain)});

  // ForStateRanges' ranges tile [0, n): recorded under a lock (they may run on several threads)
  // into room reserved before, sorted, then walked.
  std::mutex ranges_mutex;
  std::vector<std::pair<Eigen::Index, Eigen::Index>> ranges;
  ranges.reserve(1024);
  bool ranges_overflow = false;
  const auto record = [&](Eigen::Index begin, Eigen::Index end) {
    std::lock_guard<std::mutex> lock(ranges_mutex);
    if (ranges.size() == ranges.capacity()) {
      ranges_overflow = true;
      return;
    }
    ranges.emplace_back(begin, end);
  };
  dynamics.ForStateRanges(std::cref(record));
  std::sort(ranges.begin(), ranges.end());
  Eigen::Index covered = 0;
  result.ranges_tile = !ranges_overflow;
  for (const auto& [begin, end] : ranges) {
    if (begin != covered || end < begin) result.ranges_tile = false;
    covered = std::max(covered, end);
  }
  result.ranges_tile = result.ranges_tile && covered == n;
  const auto nothing = [](Eigen::Index, Eigen::Index) {};

  // No allocation once warm: the calls above were the warm-up (first-call dispatch, threads).
  // The counted calls alternate between x and a nearby state, as the stages of a step do, so that
  // a Dynamics that remembers its last evaluation is counted on both paths.
  if (options.allocation_count) {
    long before = options.allocation_count();
    for (int r = 0; r < options.allocation_repeats; ++r) {
      dynamics.f(t, x, theta, forward);
      dynamics.f(t, nearby, theta, backward);
      dynamics.f_slot(0, t, x, theta, f_slot0);
      dynamics.f_slot(1, t, nearby, theta, f_slot1);
      dynamics.ForStateRanges(std::cref(nothing));
    }
    result.f_allocations = options.allocation_count() - before;
    before = options.allocation_count();
    for (int r = 0; r < options.allocation_repeats; ++r) {
      dynamics.vjp(t, nearby, theta, a, a_x, a_theta);
      dynamics.vjp(t, x, theta, a, a_x, a_theta);
      dynamics.vjp_slot(1, t, nearby, theta, a, ax_slot, at_slot);
      dynamics.vjp_slot(0, t, x, theta, a, ax_slot, at_slot);
    }
    result.vjp_allocations = options.allocation_count() - before;
  }

  result.passed = result.state_error <= options.tolerance &&
                  result.param_error <= options.tolerance && result.f_overwrites &&
                  result.vjp_overwrites && result.slot_error <= options.slot_tolerance &&
                  result.ranges_tile &&
                  result.f_allocations <= 0 &&
                  result.vjp_allocations <= 0;
  return result;
}

}  // namespace diffeoflow
