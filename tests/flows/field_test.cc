// The network vector field as a Dynamics: its vjp against finite differences, batch sharding over
// threads, the forward cache, and no allocation inside f and vjp.
#include "flows/field.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>

#include <gtest/gtest.h>

#include "solvers/errors.h"
#include "solvers/gradient_check.h"
#include "tests/flows/test_util.h"

// Counts every allocation of the test binary (it only counts; ASan still sees the real malloc).
namespace {
std::atomic<long> g_allocations{0};
}  // namespace

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace diffeoflow::flows {
namespace {

using testing::RandomVector;
using testing::RelativeMaxError;

TEST(MlpField, HasTheLayoutOfTheChenEtAlField) {
  const Sequential net = MlpField(3, {16, 8}, Activation::kTanh);
  ASSERT_EQ(net.size(), 5u);
  EXPECT_EQ(net.layer(0).name(), "concat_linear");
  EXPECT_EQ(net.layer(2).name(), "linear");
  EXPECT_EQ(net.param_dim(), (4 * 16 + 16) + (16 * 8 + 8) + (8 * 3 + 3));
  EXPECT_THROW(MlpField(3, {}, Activation::kTanh), InputError);
}

TEST(NetworkField, VjpMatchesFiniteDifferencesWithOneAndTwoThreads) {
  const Index dim = 3, batch = 5;
  const Sequential net = MlpField(dim, {6, 4}, Activation::kSoftplus);
  std::mt19937 rng(7);
  Vector theta(net.param_dim());
  net.Initialize(rng, theta.data());
  const Vector x = RandomVector(dim * batch, rng);
  const Vector a = RandomVector(dim * batch, rng);
  const double t = 0.6;
  Vector reference_ax, reference_at;
  for (int threads : {1, 2}) {
    NetworkField field(net, batch, threads);
    EXPECT_EQ(field.threads(), threads);
    ASSERT_EQ(field.state_dim(), dim * batch);
    Vector dxdt(field.state_dim()), a_x(field.state_dim()), a_theta(field.param_dim());
    field.vjp(t, x, theta, a, a_x, a_theta);
    auto loss_x = [&](const Vector& xx) {
      Vector out(field.state_dim());
      field.f(t, xx, theta, out);
      return a.dot(out);
    };
    auto loss_theta = [&](const Vector& th) {
      Vector out(field.state_dim());
      field.f(t, x, th, out);
      return a.dot(out);
    };
    EXPECT_LT(RelativeMaxError(a_x, NumericalGradient(loss_x, x)), 1e-8);
    EXPECT_LT(RelativeMaxError(a_theta, NumericalGradient(loss_theta, theta)), 1e-8);
    if (threads == 1) {
      reference_ax = a_x;
      reference_at = a_theta;
    } else {
      EXPECT_LT(RelativeMaxError(a_x, reference_ax), 1e-14);
      EXPECT_LT(RelativeMaxError(a_theta, reference_at), 1e-14);
    }
  }
}

TEST(NetworkField, EachSampleIsMovedIndependently) {
  const Sequential net = MlpField(2, {5}, Activation::kTanh);
  std::mt19937 rng(1);
  Vector theta(net.param_dim());
  net.Initialize(rng, theta.data());
  NetworkField batch_field(net, 3), single(net, 1);
  const Vector x = RandomVector(6, rng);
  Vector out(6), one(2);
  batch_field.f(0.2, x, theta, out);
  for (Index b = 0; b < 3; ++b) {
    single.f(0.2, x.segment(2 * b, 2), theta, one);
    EXPECT_LT((out.segment(2 * b, 2) - one).norm(), 1e-15);
  }
}

TEST(NetworkField, ForwardCacheNeverServesAStaleState) {
  const Sequential net = MlpField(2, {5}, Activation::kTanh);
  std::mt19937 rng(4);
  Vector theta(net.param_dim());
  net.Initialize(rng, theta.data());
  NetworkField field(net, 2), fresh(net, 2);
  Vector x = RandomVector(4, rng);
  const Vector a = RandomVector(4, rng);
  Vector out(4), expected(4), a_x(4), a_theta(field.param_dim()), ex(4), et(field.param_dim());
  field.f(0.1, x, theta, out);
  x[3] += 0.5;  // same buffer, new contents
  field.vjp(0.1, x, theta, a, a_x, a_theta);
  fresh.vjp(0.1, x, theta, a, ex, et);
  EXPECT_EQ(a_x, ex);
  EXPECT_EQ(a_theta, et);
  theta[0] += 0.1;
  field.f(0.1, x, theta, out);
  NetworkField other(net, 2);
  other.f(0.1, x, theta, expected);
  EXPECT_EQ(out, expected);
  field.f(0.3, x, theta, out);
  other.f(0.3, x, theta, expected);
  EXPECT_EQ(out, expected);
}

// The discrete adjoint replays a step's stages, then asks for the vjp at each in reverse order: with
// as many cached passes as stages every vjp is served from its own pass, and equals a fresh field's;
// a fifth point evicts the least recently used pass, which is then recomputed, not served stale.
TEST(NetworkField, CachedStagePassesGiveTheSameVjpAsAFreshField) {
  const Sequential net = MlpField(3, {6}, Activation::kTanh);
  std::mt19937 rng(14);
  Vector theta(net.param_dim());
  net.Initialize(rng, theta.data());
  for (int threads : {1, 2}) {
    NetworkField field(net, 4, threads, /*cached_points=*/4);
    std::vector<Vector> xs;
    for (int k = 0; k < 5; ++k) xs.push_back(RandomVector(field.state_dim(), rng));
    const Vector a = RandomVector(field.state_dim(), rng);
    Vector out(field.state_dim());
    auto check = [&](int k) {
      NetworkField fresh(net, 4);
      Vector a_x(field.state_dim()), a_theta(field.param_dim());
      Vector ex(field.state_dim()), et(field.param_dim());
      field.vjp(0.1 * k, xs[static_cast<std::size_t>(k)], theta, a, a_x, a_theta);
      fresh.vjp(0.1 * k, xs[static_cast<std::size_t>(k)], theta, a, ex, et);
      EXPECT_EQ(a_x, ex) << "point " << k << ", " << threads << " thread(s)";
      EXPECT_LT(RelativeMaxError(a_theta, et), 1e-15) << "point " << k;
    };
    for (int k = 0; k < 4; ++k) field.f(0.1 * k, xs[static_cast<std::size_t>(k)], theta, out);
    for (int k = 3; k >= 0; --k) check(k);
    field.f(0.4, xs[4], theta, out);  // evicts point 3, the least recently used
    check(3);
    check(4);
    check(0);
  }
  EXPECT_THROW(NetworkField(net, 4, 1, 0), InputError);
}

TEST(NetworkField, FAndVjpDoNotAllocate) {
  const Sequential net = MlpField(4, {32, 16}, Activation::kTanh);
  std::mt19937 rng(9);
  Vector theta(net.param_dim());
  net.Initialize(rng, theta.data());
  for (int threads : {1, 2}) {
    NetworkField field(net, 64, threads);
    const Vector x = RandomVector(field.state_dim(), rng);
    const Vector a = RandomVector(field.state_dim(), rng);
    Vector dxdt(field.state_dim()), a_x(field.state_dim()), a_theta(field.param_dim());
    field.f(0.0, x, theta, dxdt);  // warm-up (thread start, first-call dispatch)
    field.vjp(0.0, x, theta, a, a_x, a_theta);
    const long before = g_allocations.load();
    for (int i = 0; i < 10; ++i) {
      const double t = 0.1 * i;
      field.f(t, x, theta, dxdt);
      field.vjp(t, x, theta, a, a_x, a_theta);
      field.vjp(t + 0.05, x, theta, a, a_x, a_theta);
    }
    EXPECT_EQ(g_allocations.load() - before, 0) << threads << " thread(s)";
  }
  // The counter does see allocations.
  const long before = g_allocations.load();
  auto probe = std::make_unique<Vector>(100);
  EXPECT_GT(g_allocations.load(), before);
}

TEST(NetworkField, RejectsANetworkThatIsNotAVectorField) {
  Sequential net;
  net.Add(std::make_unique<Linear>(3, 2));
  EXPECT_THROW(NetworkField(net, 4), InputError);
  EXPECT_THROW(NetworkField(MlpField(2, {3}, Activation::kTanh), 0), InputError);
}

}  // namespace
}  // namespace diffeoflow::flows
