// The replay contract of solvers/dynamics.h as the engine keeps it: every vjp_slot comes after an
// f_slot to the same slot at the same (t, x) bit for bit, within the reserved slots; the tape
// (GradientOptions::tape_slots, tape_bytes) changes how often f is called, never the gradient;
// and a fixed-step discrete adjoint that fits the tape calls f once per stage in all.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "solvers/errors.h"
#include "solvers/gradient_check.h"
#include "solvers/integrate.h"
#include "tests/common/allocation_counter.h"
#include "tests/solvers/test_dynamics.h"

namespace diffeoflow {
namespace {

using testing::TanhField;

// TanhField that checks what the engine does with the slots: f_slot keeps (t, x) per slot,
// vjp_slot counts a violation when its (t, x) is not the one kept in its slot, the slot was never
// filled or lies beyond the reserved ones.
class ContractRecorder : public TanhField {
 public:
  using TanhField::TanhField;
  void ReserveSlots(int slots) override {
    if (slots > reserved_) {
      reserved_ = slots;
      kept_x_.resize(static_cast<std::size_t>(slots), Vector::Zero(state_dim()));
      kept_t_.resize(static_cast<std::size_t>(slots), 0.0);
      filled_.resize(static_cast<std::size_t>(slots), false);
    }
  }
  void f_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta,
              VectorRef dxdt) override {
    ++f_slot_calls;
    if (slot < 0 || slot >= reserved_) {
      ++violations;
    } else {
      kept_x_[static_cast<std::size_t>(slot)] = x;
      kept_t_[static_cast<std::size_t>(slot)] = t;
      filled_[static_cast<std::size_t>(slot)] = true;
    }
    f(t, x, theta, dxdt);
  }
  void vjp_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                VectorRef a_x, VectorRef a_theta) override {
    ++vjp_slot_calls;
    const auto s = static_cast<std::size_t>(slot);
    if (slot < 0 || slot >= reserved_ || !filled_[s] || kept_t_[s] != t ||
        !(kept_x_[s].array() == x.array()).all()) {
      ++violations;
    }
    vjp(t, x, theta, a, a_x, a_theta);
  }
  long f_slot_calls = 0, vjp_slot_calls = 0, violations = 0;

 private:
  int reserved_ = 0;
  std::vector<Vector> kept_x_;
  std::vector<double> kept_t_;
  std::vector<bool> filled_;
};

double RelativeError(const Vector& a, const Vector& b) {
  return (a - b).norm() / std::max({a.norm(), b.norm(), 1e-300});
}

double Squares(const std::vector<Vector>& xs, std::vector<Vector>& grads) {
  double loss = 0.0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    loss += 0.5 * static_cast<double>(i + 1) * xs[i].squaredNorm();
    grads[i] = static_cast<double>(i + 1) * xs[i];
  }
  return loss;
}

struct Problem {
  ContractRecorder dyn{4, 2, 5};
  Vector x0, theta;
  Problem() {
    std::mt19937 rng(21);
    std::normal_distribution<double> normal(0.0, 1.0);
    x0 = Vector::NullaryExpr(dyn.state_dim(), [&] { return normal(rng); });
    theta = Vector::NullaryExpr(dyn.param_dim(), [&] { return 0.6 * normal(rng); });
  }
};

// The three ways the discrete adjoint keeps stage states, for a method: the forward pass on the
// tape (fixed steps, default tape), a replay of each 3-step segment onto the tape (the tape holds
// 3 steps), and a replay of the boundary states, then of each step again (the tape holds 1 step).
struct TapeCase {
  const char* name;
  int checkpoint_every;
  int tape_steps;  // 0: the default tape
};
constexpr TapeCase kTapeCases[] = {{"default", 0, 0}, {"segment", 3, 3}, {"step", 3, 1}};

class DiscreteTape : public ::testing::TestWithParam<Method> {};

TEST_P(DiscreteTape, EveryWayOfKeepingStagesGivesTheSameGradientAndKeepsTheContract) {
  const Method method = GetParam();
  const bool adaptive = IsAdaptive(method);
  SolverOptions options;
  options.method = method;
  options.steps = 10;
  if (adaptive) {
    options.rtol = 1e-2;
    options.atol = 1e-2;
    options.initial_dt = 0.1;
    options.max_dt = 0.1;
  }
  const std::vector<double> times = {0.35, 1.0};
  std::vector<GradientResult> results;
  for (const TapeCase& c : kTapeCases) {
    SCOPED_TRACE(std::string(c.name) + " " + MethodName(method));
    Problem p;
    GradientOptions gopts;
    gopts.mode = GradientMode::kDiscrete;
    gopts.checkpoint_every = c.checkpoint_every;
    if (c.tape_steps > 0) {
      // tape_slots counts stage evaluations: make room for exactly tape_steps steps.
      const GradientResult probe =
          Gradient(p.dyn, p.x0, p.theta, times, Squares, options, GradientOptions{});
      const long per_step = probe.summary.vjp_backward / probe.summary.steps_accepted;
      gopts.tape_slots = static_cast<int>(per_step) * c.tape_steps;
      p.dyn.f_slot_calls = p.dyn.vjp_slot_calls = 0;
    }
    const GradientResult r = Gradient(p.dyn, p.x0, p.theta, times, Squares, options, gopts);
    const SolveSummary& s = r.summary;
    EXPECT_EQ(p.dyn.violations, 0);
    EXPECT_EQ(p.dyn.vjp_slot_calls, s.vjp_backward);  // every vjp reuses a slot
    const long per_step = s.vjp_backward / s.steps_accepted;
    EXPECT_EQ(s.vjp_backward, per_step * s.steps_accepted);
    if (std::string(c.name) == "default" && !adaptive) {
      // Taped forward pass: one f per stage, none in the backward sweep.
      EXPECT_EQ(s.nfe_forward, per_step * s.steps_accepted);
      EXPECT_EQ(s.nfe_backward, 0);
    } else if (std::string(c.name) == "segment" || std::string(c.name) == "default") {
      // One replay of every step (the first segment starts at a checkpoint).
      EXPECT_EQ(s.nfe_backward, per_step * s.steps_accepted);
    } else {
      // Boundary states, then every step again: 2 replays of all but each segment's first step.
      EXPECT_GT(s.nfe_backward, per_step * s.steps_accepted);
      EXPECT_LE(s.nfe_backward, 2 * per_step * s.steps_accepted);
    }
    results.push_back(r);
  }
  for (std::size_t k = 1; k < results.size(); ++k) {
    EXPECT_LT(RelativeError(results[k].grad_x0, results[0].grad_x0), 1e-12) << kTapeCases[k].name;
    EXPECT_LT(RelativeError(results[k].grad_theta, results[0].grad_theta), 1e-12)
        << kTapeCases[k].name;
  }
  // And the gradient is the derivative of the discrete map.
  Problem p;
  auto loss_of = [&](const Vector& x0) {
    const Solution sol = Integrate(p.dyn, x0, p.theta, times, options);
    std::vector<Vector> grads(sol.states.size());
    return Squares(sol.states, grads);
  };
  EXPECT_LT(RelativeError(results[0].grad_x0, NumericalGradient(loss_of, p.x0, 1e-5)), 1e-8);
}

INSTANTIATE_TEST_SUITE_P(Engine, DiscreteTape,
                         ::testing::Values(Method::kEuler, Method::kRk4, Method::kDopri5,
                                           Method::kFehlberg78),
                         [](const auto& info) { return MethodName(info.param); });

// A GradientWorkspace lends memory and nothing else: shared by problems of other sizes, other
// methods and other Dynamics objects, it gives the same gradient bit for bit as a call without
// one, keeps the replay contract (a tape kept from a longer solve still reserves the slots of the
// new Dynamics), and a repeated call allocates none of the tape again.
TEST(GradientWorkspace, LendsMemoryAndChangesNoResult) {
  struct Call {
    int batch, dim;
    Method method;
    GradientMode mode;
    int steps, checkpoint_every;
  };
  const Call calls[] = {
      {6, 3, Method::kRk4, GradientMode::kDiscrete, 12, 0},      // the longest tape first
      {4, 2, Method::kRk4, GradientMode::kDiscrete, 10, 0},      // fewer, smaller rows
      {4, 2, Method::kDopri5, GradientMode::kDiscrete, 10, 3},   // replayed segments
      {5, 2, Method::kFehlberg78, GradientMode::kDiscrete, 6, 0},
      {4, 2, Method::kDopri5, GradientMode::kCheckpointed, 10, 3},
      {4, 2, Method::kRk4, GradientMode::kDiscrete, 10, 0},
  };
  GradientWorkspace workspace;
  for (const Call& c : calls) {
    SCOPED_TRACE(MethodName(c.method) + " " + GradientModeName(c.mode) + " batch " +
                 std::to_string(c.batch));
    SolverOptions options;
    options.method = c.method;
    options.steps = c.steps;
    options.rtol = options.atol = 1e-3;
    GradientOptions gopts;
    gopts.mode = c.mode;
    gopts.checkpoint_every = c.checkpoint_every;
    const std::vector<double> times = {0.4, 1.0};
    std::mt19937 rng(static_cast<unsigned>(c.batch * 7 + c.steps));
    std::normal_distribution<double> normal(0.0, 1.0);
    ContractRecorder alone(c.batch, c.dim, 5), lent(c.batch, c.dim, 5);
    const Vector x0 = Vector::NullaryExpr(alone.state_dim(), [&] { return normal(rng); });
    const Vector theta = Vector::NullaryExpr(alone.param_dim(), [&] { return 0.6 * normal(rng); });
    const GradientResult a = Gradient(alone, x0, theta, times, Squares, options, gopts);
    const GradientResult b = Gradient(lent, x0, theta, times, Squares, options, gopts, &workspace);
    EXPECT_EQ(lent.violations, 0);
    EXPECT_EQ(a.loss, b.loss);
    EXPECT_TRUE((a.grad_x0.array() == b.grad_x0.array()).all());
    EXPECT_TRUE((a.grad_theta.array() == b.grad_theta.array()).all());
    EXPECT_EQ(a.summary.nfe_forward, b.summary.nfe_forward);
    EXPECT_EQ(a.summary.nfe_backward, b.summary.nfe_backward);
  }
  // A taped RK4 solve of 10 steps keeps 40 stage states: a repeated call with the workspace
  // allocates none of them, a call without one allocates all of them.
  Problem p;
  SolverOptions options;
  options.steps = 10;
  GradientWorkspace kept;
  Gradient(p.dyn, p.x0, p.theta, {1.0}, Squares, options, GradientOptions{}, &kept);
  long before = testing::AllocationCount();
  Gradient(p.dyn, p.x0, p.theta, {1.0}, Squares, options, GradientOptions{}, &kept);
  const long with_workspace = testing::AllocationCount() - before;
  before = testing::AllocationCount();
  Gradient(p.dyn, p.x0, p.theta, {1.0}, Squares, options, GradientOptions{});
  const long without = testing::AllocationCount() - before;
  EXPECT_GE(without - with_workspace, 40) << without << " against " << with_workspace;
}

// TanhField whose state ranges are three uneven pieces handed out last first, as threads would
// take them in any order.
class SplitRanges : public TanhField {
 public:
  using TanhField::TanhField;
  void ForStateRanges(const RangeJob& job) override {
    const Eigen::Index n = state_dim();
    job(n / 2, n);
    job(1, n / 2);
    job(0, 1);
    ++calls;
  }
  long calls = 0;
};

// The engine's stage arithmetic through ForStateRanges gives the same gradient bit for bit
// however the state is cut, in every way the discrete adjoint keeps its stages.
TEST(ReplayContract, StateRangesChangeNoBit) {
  for (const Method method : {Method::kRk4, Method::kDopri5, Method::kFehlberg78}) {
    for (const int checkpoint_every : {0, 3}) {
      SCOPED_TRACE(MethodName(method) + " checkpoint_every " + std::to_string(checkpoint_every));
      SolverOptions options;
      options.method = method;
      options.steps = 8;
      options.rtol = options.atol = 1e-3;
      GradientOptions gopts;
      gopts.checkpoint_every = checkpoint_every;
      Problem p;
      SplitRanges split(4, 2, 5);
      const GradientResult whole =
          Gradient(p.dyn, p.x0, p.theta, {0.5, 1.0}, Squares, options, gopts);
      const GradientResult pieces =
          Gradient(split, p.x0, p.theta, {0.5, 1.0}, Squares, options, gopts);
      EXPECT_GT(split.calls, 0);
      EXPECT_EQ(whole.loss, pieces.loss);
      EXPECT_TRUE((whole.grad_x0.array() == pieces.grad_x0.array()).all());
      EXPECT_TRUE((whole.grad_theta.array() == pieces.grad_theta.array()).all());
    }
  }
}

// Backsolve asks for the vjp right after f at the same point, through slot 0.
TEST(ReplayContract, BacksolveCallsVjpSlotAfterFSlotAtTheSamePoint) {
  Problem p;
  SolverOptions options;
  options.method = Method::kDopri5;
  GradientOptions gopts;
  gopts.mode = GradientMode::kBacksolve;
  const GradientResult r = Gradient(p.dyn, p.x0, p.theta, {0.5, 1.0}, Squares, options, gopts);
  EXPECT_EQ(p.dyn.violations, 0);
  EXPECT_EQ(p.dyn.vjp_slot_calls, r.summary.vjp_backward);
  EXPECT_GT(r.summary.vjp_backward, 0);
}

TEST(ReplayContract, BadTapeOptionsNameTheField) {
  Problem p;
  GradientOptions gopts;
  gopts.tape_slots = 0;
  try {
    Gradient(p.dyn, p.x0, p.theta, {1.0}, Squares, SolverOptions{}, gopts);
    FAIL() << "tape_slots = 0 accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tape_slots"), std::string::npos) << e.what();
  }
  gopts = GradientOptions{};
  gopts.tape_bytes = -1.0;
  EXPECT_THROW(Gradient(p.dyn, p.x0, p.theta, {1.0}, Squares, SolverOptions{}, gopts), InputError);
}

}  // namespace
}  // namespace diffeoflow
