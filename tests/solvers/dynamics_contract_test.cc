// The Dynamics contract (solvers/gradient_check.h) over the engine's own Dynamics and the checker
// itself: it passes the test systems and catches a wrong vjp, an accumulating output and an
// allocation. The landmark Dynamics are checked in landmarks_test.cc, the network field in
// tests/flows, the registration flows in tests/registration.
#include <random>

#include <gtest/gtest.h>

#include "solvers/gradient_check.h"
#include "solvers/kinetic_energy.h"
#include "solvers/landmarks.h"
#include "tests/common/dynamics_check.h"
#include "tests/solvers/test_dynamics.h"

namespace diffeoflow {
namespace {

Vector Random(Eigen::Index n, std::mt19937& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  return Vector::NullaryExpr(n, [&] { return normal(rng); });
}

TEST(DynamicsContract, TestSystems) {
  std::mt19937 rng(1);
  testing::LinearDynamics linear(4);
  testing::ExpectDynamicsContract(linear, 0.3, Random(4, rng), Random(16, rng));
  testing::TanhField field(5, 3, 7);
  testing::ExpectDynamicsContract(field, 0.7, Random(field.state_dim(), rng),
                                  Random(field.param_dim(), rng, 0.5));
}

TEST(DynamicsContract, KineticEnergyAugmented) {
  std::mt19937 rng(2);
  testing::TanhField field(4, 2, 6);
  KineticEnergyAugmented on_field(field, 0.25);
  testing::ExpectDynamicsContract(on_field, 0.4, Random(on_field.state_dim(), rng),
                                  Random(on_field.param_dim(), rng, 0.5));
  LandmarkHamiltonian hamiltonian(2, 5, 0.7);
  KineticEnergyAugmented on_landmarks(hamiltonian, 1.0);
  testing::ExpectDynamicsContract(on_landmarks, 0.0, Random(on_landmarks.state_dim(), rng, 0.5),
                                  Vector());
}

// dx/dt = x² with a vjp that can be made wrong, accumulating or allocating.
class Faulty : public Dynamics {
 public:
  enum Fault { kNone, kWrongVjp, kAccumulates, kAllocates };
  explicit Faulty(Fault fault) : fault_(fault) {}
  Eigen::Index state_dim() const override { return 3; }
  Eigen::Index param_dim() const override { return 1; }
  void f(double, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override {
    if (fault_ == kAllocates) {
      const Vector copy = x;  // a temporary on the heap
      dxdt = theta[0] * copy.array().square().matrix();
    } else {
      dxdt = theta[0] * x.array().square().matrix();
    }
  }
  void vjp(double, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override {
    const double scale = fault_ == kWrongVjp ? 2.1 : 2.0;
    if (fault_ == kAccumulates) {
      a_x += scale * theta[0] * a.cwiseProduct(x);
    } else {
      a_x = scale * theta[0] * a.cwiseProduct(x);
    }
    a_theta[0] = a.dot(x.array().square().matrix());
  }

 protected:
  Fault fault_;
};

// Keeps one forward evaluation whatever the slot: vjp_slot(0) after f_slot(1) is served x of
// slot 1, the bug a cache of the last evaluation has when the engine keeps several stages.
class OneSlotOnly : public Faulty {
 public:
  OneSlotOnly() : Faulty(kNone), kept_(3) {}
  void f_slot(int, double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override {
    kept_ = x;
    f(t, x, theta, dxdt);
  }
  void vjp_slot(int, double t, ConstVectorRef, ConstVectorRef theta, ConstVectorRef a,
                VectorRef a_x, VectorRef a_theta) override {
    vjp(t, kept_, theta, a, a_x, a_theta);
  }

 private:
  Vector kept_;
};

// Hands out state ranges that overlap ([0, 2) and [1, 3)), or leave the last entry out.
class BadRanges : public Faulty {
 public:
  explicit BadRanges(bool overlap) : Faulty(kNone), overlap_(overlap) {}
  void ForStateRanges(const RangeJob& job) override {
    job(0, 2);
    if (overlap_) job(1, 3);
  }

 private:
  bool overlap_;
};

TEST(DynamicsContract, TheCheckerCatchesEachFault) {
  const Vector x = Vector::LinSpaced(3, -0.5, 1.2);
  const Vector theta = Vector::Constant(1, 0.8);
  DynamicsCheckOptions options;
  options.allocation_count = testing::AllocationCount;
  Faulty good(Faulty::kNone), wrong(Faulty::kWrongVjp), accumulates(Faulty::kAccumulates),
      allocates(Faulty::kAllocates);
  const DynamicsCheckResult ok = CheckDynamics(good, 0.0, x, theta, options);
  EXPECT_TRUE(ok.passed) << ok.Report();
  EXPECT_EQ(ok.f_allocations, 0);
  EXPECT_EQ(ok.vjp_allocations, 0);
  const DynamicsCheckResult bad_vjp = CheckDynamics(wrong, 0.0, x, theta, options);
  EXPECT_FALSE(bad_vjp.passed);
  EXPECT_GT(bad_vjp.state_error, 1e-2);
  EXPECT_LT(bad_vjp.param_error, 1e-6);
  const DynamicsCheckResult adds = CheckDynamics(accumulates, 0.0, x, theta, options);
  EXPECT_FALSE(adds.passed);
  EXPECT_FALSE(adds.vjp_overwrites);
  EXPECT_TRUE(adds.f_overwrites);
  const DynamicsCheckResult heap = CheckDynamics(allocates, 0.0, x, theta, options);
  EXPECT_FALSE(heap.passed);
  EXPECT_GT(heap.f_allocations, 0);
  EXPECT_EQ(heap.vjp_allocations, 0);
  OneSlotOnly one_slot;
  const DynamicsCheckResult stale = CheckDynamics(one_slot, 0.0, x, theta, options);
  EXPECT_FALSE(stale.passed);
  EXPECT_GT(stale.slot_error, 1e-6);
  EXPECT_EQ(ok.slot_error, 0.0);
  EXPECT_TRUE(ok.ranges_tile);
  for (const bool overlap : {true, false}) {
    BadRanges ranges(overlap);
    const DynamicsCheckResult untiled = CheckDynamics(ranges, 0.0, x, theta, options);
    EXPECT_FALSE(untiled.passed) << overlap;
    EXPECT_FALSE(untiled.ranges_tile) << overlap;
  }
  // Without a counter nothing is counted, and the check still compares derivatives.
  const DynamicsCheckResult uncounted = CheckDynamics(allocates, 0.0, x, theta);
  EXPECT_TRUE(uncounted.passed) << uncounted.Report();
  EXPECT_EQ(uncounted.f_allocations, -1);
  EXPECT_THROW(CheckDynamics(good, 0.0, Vector::Zero(2), theta), std::invalid_argument);
}

}  // namespace
}  // namespace diffeoflow
