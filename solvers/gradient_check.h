// Central finite differences, the oracle every derivative in diffeoflow is tested against.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>

#include "solvers/dynamics.h"

namespace diffeoflow {

// Central difference of fn at x along direction d: (fn(x + h d) − fn(x − h d)) / 2h.
double DirectionalDifference(const std::function<double(const Vector&)>& fn, const Vector& x,
                             const Vector& direction, double h = 1e-6);

// Full central-difference gradient (n evaluations pairs).
Vector NumericalGradient(const std::function<double(const Vector&)>& fn, const Vector& x,
                         double h = 1e-6);

struct GradientCheckResult {
  double analytic = 0.0;   // ⟨∇f, d⟩
  double numeric = 0.0;    // central difference along d
  double relative_error = 0.0;  // |a − n| / max(|a|, |n|, tiny)
};

// Compares ⟨gradient, d⟩ with the central difference along a random unit direction d.
GradientCheckResult CheckDirectionalDerivative(const std::function<double(const Vector&)>& fn,
                                               const Vector& x, const Vector& gradient,
                                               std::mt19937& rng, double h = 1e-6);

// ---- the contract of a Dynamics -----------------------------------------------------------------
//
// CheckDynamics runs one Dynamics at one point (t, x, θ) through what dynamics.h asks of it:
//  - vjp against central differences: for random a and unit directions u (state) and s (θ),
//        ⟨a_x, u⟩ ≈ ⟨a, f(x + h u) − f(x − h u)⟩ / 2h,
//        ⟨a_θ, s⟩ ≈ ⟨a, f(θ + h s) − f(θ − h s)⟩ / 2h,
//    each error relative to max(‖a_x‖ ‖u‖, |difference|) (resp. a_θ), the Cauchy–Schwarz bound of
//    the product, so a near-zero product in one direction does not make the check meaningless;
//  - f and vjp overwrite their outputs: outputs filled with NaN before the call come out equal to
//    outputs filled with zeros;
//  - the replay contract (dynamics.h): after ReserveSlots(2), f_slot(0, x) and f_slot(1, x'),
//    then plain f and vjp at a third state, vjp_slot(0, x) and vjp_slot(1, x') equal plain vjps
//    at x and x', and f_slot equals f (to `slot_tolerance`, relative);
//  - ForStateRanges gives ranges that tile [0, state_dim()) (in any order, on any thread);
//  - f, vjp, f_slot, vjp_slot and ForStateRanges do not allocate: when `allocation_count` is given
//    (a test binary that replaces the global operator new supplies it), repeated calls after a
//    warm-up must not change the count.
struct DynamicsCheckOptions {
  double h = 1e-6;                // central-difference step along a unit direction
  double tolerance = 1e-6;        // largest relative error accepted
  int directions = 3;             // random (a, u, s) triples
  double slot_tolerance = 1e-12;  // slot calls against plain calls, relative
  std::uint32_t seed = 1;
  // Allocations made so far in the process; empty: allocations are not counted.
  std::function<long()> allocation_count;
  int allocation_repeats = 2;     // rounds of counted f and vjp calls (two states a round)
};

struct DynamicsCheckResult {
  double state_error = 0.0;  // largest relative error of ⟨a_x, u⟩ over the directions
  double param_error = 0.0;  // the same for ⟨a_θ, s⟩ (0 when param_dim() = 0)
  bool f_overwrites = true;
  bool vjp_overwrites = true;
  double slot_error = 0.0;    // largest relative difference of slot calls from plain calls
  bool ranges_tile = true;    // ForStateRanges' ranges tile the state
  long f_allocations = -1;    // allocations in the counted calls of f, f_slot and ForStateRanges;
                              // −1: not counted
  long vjp_allocations = -1;  // the same for vjp
  bool passed = false;        // errors ≤ tolerance, outputs overwritten, no allocation counted
  std::string Report() const;
};

// Throws std::invalid_argument when x or θ do not have the dynamics' sizes.
DynamicsCheckResult CheckDynamics(Dynamics& dynamics, double t, const Vector& x,
                                  const Vector& theta, const DynamicsCheckOptions& options = {});

}  // namespace diffeoflow
