// RNODE's Jacobian-norm regulariser on MLP fields (flows/jacobian_norm.h): its value against the
// dense Jacobian, Hutchinson's estimate exact over every sign pattern, and its exact gradient
// through the Dynamics contract (vjp against central differences, no allocation).
#include "flows/jacobian_norm.h"

#include <random>

#include <gtest/gtest.h>

#include "flows/field.h"
#include "solvers/errors.h"
#include "solvers/kinetic_energy.h"
#include "tests/common/dynamics_check.h"
#include "tests/flows/test_util.h"

namespace diffeoflow::flows {
namespace {

using testing::RandomVector;

constexpr Index kFeatures = 2, kBatch = 3;

// ‖εᵀ J‖² with J = ∂f/∂x of the field, from the dense Jacobian.
double DenseRate(NetworkField& field, double t, const Vector& x, const Vector& theta,
                 const Vector& probe) {
  const Matrix jacobian = field.JacobianX(t, x, theta);
  return (jacobian.transpose() * probe).squaredNorm();
}

class JacobianNormActivation : public ::testing::TestWithParam<Activation> {};

TEST_P(JacobianNormActivation, RateIsTheProbedJacobianNormAndTheVjpIsExact) {
  const Sequential mlp = MlpField(kFeatures, {6, 5}, GetParam());
  NetworkField field(mlp, kBatch);
  const double weight = 1.0 / kBatch;
  JacobianNormAugmented regularised(field, mlp, kFeatures, kBatch, weight);
  std::mt19937 rng(4);
  regularised.DrawProbe(rng);
  const Vector theta = RandomVector(mlp.param_dim(), rng, 0.8);
  const Vector x = RandomVector(regularised.state_dim(), rng);
  const double t = 0.3;

  Vector rate(regularised.state_dim());
  regularised.f(t, x, theta, rate);
  const Vector batch = x.head(kFeatures * kBatch);
  EXPECT_NEAR(rate[kFeatures * kBatch],
              weight * DenseRate(field, t, batch, theta, regularised.probe()), 1e-12);
  Vector inner(kFeatures * kBatch);
  field.f(t, batch, theta, inner);
  EXPECT_EQ(rate.head(kFeatures * kBatch), inner);

  // (ReLU is left out: central differences across its kink do not see a zero σ''.)
  diffeoflow::testing::ExpectDynamicsContract(regularised, t, x, theta);
}

INSTANTIATE_TEST_SUITE_P(Activations, JacobianNormActivation,
                         ::testing::Values(Activation::kTanh, Activation::kSoftplus,
                                           Activation::kSigmoid),
                         [](const auto& info) { return ActivationName(info.param); });

TEST(JacobianNorm, HutchinsonOverEverySignPatternIsTheFrobeniusNorm) {
  const Sequential mlp = MlpField(kFeatures, {7}, Activation::kTanh);
  NetworkField field(mlp, kBatch);
  JacobianNormAugmented regularised(field, mlp, kFeatures, kBatch, 1.0);
  std::mt19937 rng(9);
  const Vector theta = RandomVector(mlp.param_dim(), rng, 0.8);
  const Vector x = RandomVector(regularised.state_dim(), rng);
  const Index n = kFeatures * kBatch;
  double mean = 0.0;
  Vector rate(regularised.state_dim()), probe(n);
  for (int pattern = 0; pattern < (1 << n); ++pattern) {
    for (Index i = 0; i < n; ++i) probe[i] = (pattern >> i) & 1 ? 1.0 : -1.0;
    regularised.SetProbe(probe);
    regularised.f(0.5, x, theta, rate);
    mean += rate[n] / (1 << n);
  }
  const Matrix jacobian = field.JacobianX(0.5, x.head(n), theta);
  EXPECT_NEAR(mean, jacobian.squaredNorm(), 1e-12 * jacobian.squaredNorm());
}

TEST(JacobianNorm, StacksOnTheKineticEnergyState) {
  const Sequential mlp = MlpField(kFeatures, {6}, Activation::kSoftplus);
  NetworkField field(mlp, kBatch);
  KineticEnergyAugmented kinetic(field, 0.5);
  JacobianNormAugmented both(kinetic, mlp, kFeatures, kBatch, 0.25);
  std::mt19937 rng(6);
  both.DrawProbe(rng);
  EXPECT_EQ(both.state_dim(), kFeatures * kBatch + 2);
  diffeoflow::testing::ExpectDynamicsContract(both, 0.7, RandomVector(both.state_dim(), rng),
                                  RandomVector(mlp.param_dim(), rng, 0.8));
}

TEST(JacobianNorm, RefusesFieldsItHasNoSecondDerivativeFor) {
  const Sequential mlp = MlpField(kFeatures, {6}, Activation::kTanh);
  NetworkField field(mlp, kBatch);
  EXPECT_THROW(JacobianNormAugmented(field, mlp, kFeatures + 1, kBatch, 1.0), InputError);
  JacobianNormAugmented regularised(field, mlp, kFeatures, kBatch, 1.0);
  EXPECT_THROW(regularised.SetProbe(Vector::Ones(5)), InputError);
}

}  // namespace
}  // namespace diffeoflow::flows
