// The network vector field as a Dynamics: the Dynamics contract (vjp against finite differences,
// no allocation inside f and vjp), batch sharding over threads and the forward cache.
#include "flows/field.h"

#include <random>

#include <gtest/gtest.h>

#include "flows/classifier.h"
#include "solvers/errors.h"
#include "tests/common/dynamics_check.h"
#include "tests/flows/test_util.h"

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

// The Dynamics contract with one and two threads (vjp against central differences, outputs
// overwritten, no allocation once warm), and two threads give the one-thread vjp.
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
    DynamicsCheckOptions options;
    options.tolerance = 1e-8;
    diffeoflow::testing::ExpectDynamicsContract(field, t, x, theta, options);
    Vector a_x(field.state_dim()), a_theta(field.param_dim());
    field.vjp(t, x, theta, a, a_x, a_theta);
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

// The replay contract: forward passes kept in slots by f_slot serve vjp_slot in any order, with
// plain calls and other slots in between, and each vjp equals a fresh field's (which runs the
// forward pass itself); refilling a slot replaces what it held.
TEST(NetworkField, SlotsGiveTheSameVjpAsAFreshField) {
  const Sequential net = MlpField(3, {6}, Activation::kTanh);
  std::mt19937 rng(14);
  Vector theta(net.param_dim());
  net.Initialize(rng, theta.data());
  for (int threads : {1, 2}) {
    NetworkField field(net, 4, threads);
    field.ReserveSlots(4);
    std::vector<Vector> xs;
    for (int k = 0; k < 5; ++k) xs.push_back(RandomVector(field.state_dim(), rng));
    const Vector a = RandomVector(field.state_dim(), rng);
    Vector out(field.state_dim()), expected(field.state_dim());
    auto check = [&](int slot, int k) {
      NetworkField fresh(net, 4);
      Vector a_x(field.state_dim()), a_theta(field.param_dim());
      Vector ex(field.state_dim()), et(field.param_dim());
      field.vjp_slot(slot, 0.1 * k, xs[static_cast<std::size_t>(k)], theta, a, a_x, a_theta);
      fresh.vjp(0.1 * k, xs[static_cast<std::size_t>(k)], theta, a, ex, et);
      EXPECT_EQ(a_x, ex) << "point " << k << ", " << threads << " thread(s)";
      EXPECT_LT(RelativeMaxError(a_theta, et), 1e-15) << "point " << k;
    };
    for (int k = 0; k < 4; ++k) {
      field.f_slot(k, 0.1 * k, xs[static_cast<std::size_t>(k)], theta, out);
      field.f(0.1 * k, xs[static_cast<std::size_t>(k)], theta, expected);
      EXPECT_EQ(out, expected);
    }
    field.f(0.4, xs[4], theta, out);  // a plain call leaves the slots alone
    for (int k = 3; k >= 0; --k) check(k, k);
    field.f_slot(3, 0.4, xs[4], theta, out);  // slot 3 now holds point 4
    check(3, 4);
    check(0, 0);
  }
}

// A field of the size training uses (64 points, two hidden layers), f and vjp at t and t + 0.05
// as a step's stages ask for them: no allocation once warm, with one and two threads.
TEST(NetworkField, FAndVjpDoNotAllocate) {
  const Sequential net = MlpField(4, {32, 16}, Activation::kTanh);
  std::mt19937 rng(9);
  Vector theta(net.param_dim());
  net.Initialize(rng, theta.data());
  for (int threads : {1, 2}) {
    NetworkField field(net, 64, threads);
    const Vector x = RandomVector(field.state_dim(), rng);
    for (double t : {0.3, 0.35}) {
      const DynamicsCheckResult r =
          diffeoflow::testing::ExpectDynamicsContract(field, t, x, theta);
      EXPECT_EQ(r.f_allocations, 0) << threads << " thread(s)";
      EXPECT_EQ(r.vjp_allocations, 0) << threads << " thread(s)";
    }
  }
  // The counter does see allocations, Eigen's heap storage among them.
  const long before = diffeoflow::testing::AllocationCount();
  const Vector probe = RandomVector(100, rng);
  EXPECT_GT(diffeoflow::testing::AllocationCount(), before);
}

// The convolutional ODE-Net's field (GroupNorm–ReLU–ConcatConv stages) in double precision, with
// its slots: the same contract.
TEST(NetworkField, ConvolutionalFieldKeepsTheContract) {
  ModelSpec spec;
  spec.kind = ModelKind::kOdeNet;
  spec.input_shape = {1, 12, 12};
  spec.classes = 3;
  spec.width = 4;
  spec.precision = Precision::kDouble;
  Classifier model(spec);
  const Vector all = model.Initialize(3);
  const Sequential& net = model.flow_field();
  const Vector theta = all.segment(model.flow_offset(), net.param_dim());
  std::mt19937 rng(5);
  for (int threads : {1, 2}) {
    NetworkField field(net, 3, threads);
    const Vector x = RandomVector(field.state_dim(), rng);
    diffeoflow::testing::ExpectDynamicsContract(field, 0.25, x, theta);
  }
}

TEST(NetworkField, RejectsANetworkThatIsNotAVectorField) {
  Sequential net;
  net.Add(std::make_unique<Linear>(3, 2));
  EXPECT_THROW(NetworkField(net, 4), InputError);
  EXPECT_THROW(NetworkField(MlpField(2, {3}, Activation::kTanh), 0), InputError);
}

}  // namespace
}  // namespace diffeoflow::flows
