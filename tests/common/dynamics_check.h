// The contract of a Dynamics (solvers/gradient_check.h: vjp against central differences, outputs
// overwritten, no allocation in f and vjp) as a test expectation, with the test binary's
// allocation counter.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "solvers/gradient_check.h"
#include "tests/common/allocation_counter.h"

namespace diffeoflow::testing {

// Runs CheckDynamics at (t, x, θ), counting allocations, and expects it to pass; the result's
// report is recorded as the test property "dynamics_check" (see --gtest_output=xml).
inline DynamicsCheckResult ExpectDynamicsContract(Dynamics& dynamics, double t, const Vector& x,
                                                  const Vector& theta,
                                                  DynamicsCheckOptions options = {}) {
  options.allocation_count = AllocationCount;
  const DynamicsCheckResult result = CheckDynamics(dynamics, t, x, theta, options);
  EXPECT_TRUE(result.passed) << "t = " << t << ": " << result.Report();
  ::testing::Test::RecordProperty("dynamics_check", result.Report());
  return result;
}

}  // namespace diffeoflow::testing
