// Memory of the checkpointed gradient modes: the number of states held does not grow with the
// number of steps beyond the checkpoint count, and the heap actually used stays within what the
// Summary reports.
#include <malloc.h>

#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include "solvers/integrate.h"

namespace diffeoflow {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kHeapMeasurable = false;  // ASan's allocator does not report through mallinfo2
#else
constexpr bool kHeapMeasurable = true;
#endif

std::size_t HeapInUse() {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

// dx/dt = −a x + sin(t) elementwise on a large state; samples the heap at every call.
class DecayDynamics : public Dynamics {
 public:
  explicit DecayDynamics(Eigen::Index n) : n_(n) {}
  Eigen::Index state_dim() const override { return n_; }
  Eigen::Index param_dim() const override { return 1; }
  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override {
    Sample();
    dxdt.array() = -theta[0] * x.array() + std::sin(t);
  }
  void vjp(double, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override {
    Sample();
    a_x = -theta[0] * a;
    a_theta[0] = -a.dot(x);
  }
  std::size_t peak = 0;

 private:
  void Sample() {
    if (kHeapMeasurable) peak = std::max(peak, HeapInUse());
  }
  Eigen::Index n_;
};

double HalfSquares(const std::vector<Vector>& xs, std::vector<Vector>& grads) {
  grads[0] = xs[0];
  return 0.5 * xs[0].squaredNorm();
}

class CheckpointMemory : public ::testing::TestWithParam<GradientMode> {};

TEST_P(CheckpointMemory, StatesHeldDoNotGrowWithStepsBeyondCheckpoints) {
  const Eigen::Index n = 20000;
  DecayDynamics dyn(n);
  const Vector x0 = Vector::Ones(n);
  Vector theta(1);
  theta << 0.7;
  GradientOptions gopts;
  gopts.mode = GetParam();
  gopts.checkpoint_every = 8;
  SolverOptions options;
  options.method = Method::kRk4;
  long excess = -1;
  for (int steps : {64, 256}) {
    options.steps = steps;
    dyn.peak = 0;
    const std::size_t before = HeapInUse();
    const GradientResult r = Gradient(dyn, x0, theta, {1.0}, HalfSquares, options, gopts);
    EXPECT_EQ(r.summary.checkpoints, steps / 8 + 1) << GradientModeName(GetParam());
    const long now = r.summary.states_held_peak - r.summary.checkpoints;
    if (excess >= 0) {
      EXPECT_EQ(now, excess) << GradientModeName(GetParam());
    }
    excess = now;
    if (kHeapMeasurable) {
      const double held_bytes = static_cast<double>(dyn.peak) - static_cast<double>(before);
      const double reported = static_cast<double>(r.summary.states_held_peak + 1) * n * 8;
      EXPECT_LE(held_bytes, reported)
          << GradientModeName(GetParam()) << " steps " << steps << ": heap grew by "
          << held_bytes / (8.0 * n) << " states, summary says " << r.summary.states_held_peak;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Engine, CheckpointMemory,
                         ::testing::Values(GradientMode::kDiscrete, GradientMode::kCheckpointed),
                         [](const auto& info) { return GradientModeName(info.param); });

TEST(GradientBacksolve, MemoryIsConstantInTheNumberOfSteps) {
  const Eigen::Index n = 20000;
  DecayDynamics dyn(n);
  Vector theta(1);
  theta << 0.7;
  GradientOptions gopts;
  gopts.mode = GradientMode::kBacksolve;
  SolverOptions options;
  options.method = Method::kRk4;
  std::vector<long> held;
  for (int steps : {32, 512}) {
    options.steps = steps;
    held.push_back(
        Gradient(dyn, Vector::Ones(n), theta, {1.0}, HalfSquares, options, gopts).summary.states_held_peak);
  }
  EXPECT_EQ(held[0], held[1]);
}

}  // namespace
}  // namespace diffeoflow
