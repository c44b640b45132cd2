// Tick values and labels for linear and logarithmic axes (figure.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "plot/figure.h"
#include "solvers/errors.h"

namespace diffeoflow::plot {
namespace {

int CountInside(double lo, double hi, double step) {
  const double tol = 1e-9;
  const double count = std::floor(hi / step + tol) - std::ceil(lo / step - tol) + 1.0;
  return static_cast<int>(std::clamp(count, -1.0, 1e6));
}

}  // namespace

std::vector<double> NiceTicks(double lo, double hi, int target_count) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) {
    throw InputError("NiceTicks: expected finite bounds lo <= hi, got [" + std::to_string(lo) +
                     ", " + std::to_string(hi) + "]");
  }
  target_count = std::max(target_count, 2);
  if (hi == lo) {
    const double half = lo == 0.0 ? 1.0 : 0.1 * std::abs(lo);
    lo -= half;
    hi += half;
  }
  const double range = hi - lo;
  // Beyond double resolution (a range overflowing, or below 1e-12 of the magnitude): the ends only.
  if (!std::isfinite(range) || range < 1e-12 * std::max(std::abs(lo), std::abs(hi))) {
    return {lo, hi};
  }
  const int k0 = static_cast<int>(std::floor(std::log10(range / target_count)));
  constexpr double kMantissas[] = {1.0, 2.0, 2.5, 5.0};
  double best_step = 0.0;
  double best_error = 0.0;
  double best_mantissa = 1.0;
  int best_exponent = 0;
  for (int k = k0 - 1; k <= k0 + 2; ++k) {
    for (double m : kMantissas) {
      const double step = m * std::pow(10.0, k);
      const int count = CountInside(lo, hi, step);
      if (count < 2) continue;
      // 2.5 x 10^k gives longer labels: only when it is clearly closer to the target count.
      const double error = std::abs(count - target_count) + (m == 2.5 ? 1.5 : 0.0);
      // Ties go to the smaller step: a sparse axis reads worse than a slightly dense one.
      if (best_step == 0.0 || error < best_error || (error == best_error && step < best_step)) {
        best_step = step;
        best_error = error;
        best_mantissa = m;
        best_exponent = k;
      }
    }
  }
  if (best_step == 0.0) return {lo, hi};  // unreachable for finite ranges
  std::vector<double> ticks;
  const double first = std::ceil(lo / best_step - 1e-9);
  const double last = std::floor(hi / best_step + 1e-9);
  // n m 10^k, dividing by 10^-k for k < 0 so that 3 x 0.2 is the double nearest 0.6.
  const double power = std::pow(10.0, std::abs(best_exponent));
  for (double n = first; n <= last; n += 1.0) {
    double v = best_exponent < 0 ? n * best_mantissa / power : n * best_mantissa * power;
    if (std::abs(v) < 1e-12 * best_step) v = 0.0;
    ticks.push_back(v);
  }
  return ticks;
}

std::vector<double> LogTicks(double lo, double hi) {
  if (!(lo > 0.0) || !std::isfinite(hi) || lo > hi) {
    throw InputError("LogTicks: expected 0 < lo <= hi, got [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "]");
  }
  const int e0 = static_cast<int>(std::floor(std::log10(lo) + 1e-9));
  const int e1 = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
  const double decades = std::log10(hi / lo);
  std::vector<double> ticks;
  const int stride = std::max(1, static_cast<int>(std::ceil((e1 - e0) / 7.0)));
  for (int e = e0; e <= e1; ++e) {
    const double base = std::pow(10.0, e);
    if (decades < 2.0) {
      for (double m : {1.0, 2.0, 5.0}) {
        const double v = m * base;
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push_back(v);
      }
    } else if ((e - e0) % stride == 0 && base >= lo * (1 - 1e-9) && base <= hi * (1 + 1e-9)) {
      ticks.push_back(base);
    }
  }
  if (ticks.size() < 2 && decades < 2.0) {
    // Less than one 1-2-5 step inside: fall back to linear nice ticks.
    return NiceTicks(lo, hi, 4);
  }
  return ticks;
}

std::string FormatTick(double value, double step) {
  step = std::abs(step);
  if (step > 0.0 && std::abs(value) < 1e-9 * step) value = 0.0;
  const double magnitude = std::max(std::abs(value), step);
  char buffer[64];
  if (magnitude != 0.0 && (magnitude >= 1e5 || magnitude < 1e-3)) {
    // Scientific: as many digits as the step needs relative to the value.
    int digits = 0;
    if (step > 0.0 && value != 0.0) {
      const double relative = step / std::pow(10.0, std::floor(std::log10(std::abs(value))));
      while (digits < 6 && std::abs(relative * std::pow(10.0, digits) -
                                    std::round(relative * std::pow(10.0, digits))) > 1e-6) {
        ++digits;
      }
      digits = std::max(digits, static_cast<int>(std::ceil(-std::log10(relative) - 1e-9)));
    }
    std::snprintf(buffer, sizeof buffer, "%.*e", std::clamp(digits, 0, 6), value);
    // "1.0e-05" -> "1e-05" is fine as produced by %.0e; strip a "+0" exponent padding.
    std::string s = buffer;
    const auto e = s.find("e+");
    if (e != std::string::npos) s.erase(e + 1, 1);
    return s;
  }
  int decimals = 0;
  if (step > 0.0) {
    while (decimals < 10 && std::abs(step * std::pow(10.0, decimals) -
                                      std::round(step * std::pow(10.0, decimals))) >
                                1e-6 * std::max(1.0, step * std::pow(10.0, decimals))) {
      ++decimals;
    }
  }
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  std::string s = buffer;
  if (s == "-0" || s.find_first_not_of("-0.") == std::string::npos) {
    if (!s.empty() && s[0] == '-') s.erase(0, 1);
  }
  return s;
}

}  // namespace diffeoflow::plot
