// RNODE's Jacobian-norm regulariser (flows/jacobian_norm.h) on MLP and convolutional fields: each
// layer's tangent pass against central differences, the rate against the dense Jacobian,
// Hutchinson's estimate exact over every sign pattern, the exact gradient through the Dynamics
// contract (vjp against central differences, no allocation), single against double precision.
#include "flows/jacobian_norm.h"

#include <cmath>
#include <functional>
#include <memory>
#include <ostream>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "flows/classifier.h"
#include "flows/conv.h"
#include "flows/field.h"
#include "solvers/errors.h"
#include "solvers/integrate.h"
#include "solvers/kinetic_energy.h"
#include "tests/common/dynamics_check.h"
#include "tests/flows/test_util.h"

namespace diffeoflow::flows {
namespace {

using testing::RandomVector;
using testing::RelativeMaxError;

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
  JacobianProbe probe(field);
  JacobianNormAugmented regularised(field, probe, weight);
  std::mt19937 rng(4);
  probe.DrawProbe(rng);
  const Vector theta = RandomVector(mlp.param_dim(), rng, 0.8);
  const Vector x = RandomVector(regularised.state_dim(), rng);
  const double t = 0.3;

  Vector rate(regularised.state_dim());
  regularised.f(t, x, theta, rate);
  const Vector batch = x.head(kFeatures * kBatch);
  EXPECT_NEAR(rate[kFeatures * kBatch],
              weight * DenseRate(field, t, batch, theta, probe.probe()), 1e-12);
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
  JacobianProbe probes(field);
  JacobianNormAugmented regularised(field, probes, 1.0);
  std::mt19937 rng(9);
  const Vector theta = RandomVector(mlp.param_dim(), rng, 0.8);
  const Vector x = RandomVector(regularised.state_dim(), rng);
  const Index n = kFeatures * kBatch;
  double mean = 0.0;
  Vector rate(regularised.state_dim()), probe(n);
  for (int pattern = 0; pattern < (1 << n); ++pattern) {
    for (Index i = 0; i < n; ++i) probe[i] = (pattern >> i) & 1 ? 1.0 : -1.0;
    probes.SetProbe(probe);
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
  JacobianProbe probe(field);
  JacobianNormAugmented both(kinetic, probe, 0.25);
  std::mt19937 rng(6);
  probe.DrawProbe(rng);
  EXPECT_EQ(both.state_dim(), kFeatures * kBatch + 2);
  diffeoflow::testing::ExpectDynamicsContract(both, 0.7, RandomVector(both.state_dim(), rng),
                                  RandomVector(mlp.param_dim(), rng, 0.8));
}

// A layer without a tangent pass (a stand-in: an identity with no second derivative written).
class PlainIdentity : public Layer {
 public:
  explicit PlainIdentity(Index size) : size_(size) {}
  std::string name() const override { return "plain_identity"; }
  Index input_size() const override { return size_; }
  Index output_size() const override { return size_; }
  void Forward(double, const double*, ConstMatrixView x, MatrixView y) override { y = x; }
  void Backward(double, const double*, ConstMatrixView, ConstMatrixView, ConstMatrixView y_bar,
                MatrixView x_bar, double*) override {
    x_bar = y_bar;
  }
  std::unique_ptr<Layer> Clone() const override { return std::make_unique<PlainIdentity>(*this); }

 private:
  Index size_;
};

TEST(JacobianNorm, RefusesFieldsItHasNoSecondDerivativeFor) {
  Sequential net = MlpField(kFeatures, {6}, Activation::kTanh);
  net.Add(std::make_unique<PlainIdentity>(kFeatures));
  NetworkField plain(net, kBatch);
  try {
    JacobianProbe probe(plain);
    ADD_FAILURE() << "a layer without a tangent pass was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("plain_identity"), std::string::npos) << e.what();
  }
  const Sequential mlp = MlpField(kFeatures, {6}, Activation::kTanh);
  NetworkField field(mlp, kBatch), other(MlpField(kFeatures, {5}, Activation::kTanh), kBatch);
  JacobianProbe probe(field);
  EXPECT_THROW(JacobianNormAugmented(other, probe, 1.0), InputError);  // another θ
  EXPECT_THROW(probe.SetProbe(Vector::Ones(5)), InputError);
}

// Each layer's tangent pass against central differences of its forward pass:
//   ẏ = (y(x + hẋ) − y(x − hẋ))/2h, and with S(x, ẋ, θ) = ⟨ȳ, y⟩ + ⟨ẏ̄, ẏ⟩, x̄, ẋ̄ and θ̄ are ∂S.
struct LayerCase {
  std::string name;
  std::function<std::unique_ptr<Layer>()> make;
};

void PrintTo(const LayerCase& c, std::ostream* out) { *out << c.name; }

class LayerTangents : public ::testing::TestWithParam<LayerCase> {};

TEST_P(LayerTangents, MatchCentralDifferences) {
  std::unique_ptr<Layer> layer = GetParam().make();
  const Index batch = 3, in = layer->input_size(), out = layer->output_size();
  layer->Reserve(batch);
  layer->ReserveTangents(batch);
  std::mt19937 rng(17);
  Vector theta = RandomVector(layer->param_dim(), rng, 0.7);
  const Vector x = RandomVector(in * batch, rng), x_dot = RandomVector(in * batch, rng);
  const Vector y_bar = RandomVector(out * batch, rng), y_dot_bar = RandomVector(out * batch, rng);
  const double t = 0.4;
  Matrix y(out, batch), y_dot(out, batch);
  auto forward = [&](const Vector& at, const Vector& th, Matrix& result) {
    layer->Forward(t, th.data(), ConstMatrixView(at.data(), in, batch),
                   MatrixView(result.data(), out, batch));
  };
  // S at (x, ẋ, θ): the tangent needs the forward pass at the same point first.
  auto s = [&](const Vector& at, const Vector& dot, const Vector& th) {
    Matrix value(out, batch), tangent(out, batch);
    forward(at, th, value);
    layer->Tangent(th.data(), ConstMatrixView(at.data(), in, batch),
                   ConstMatrixView(value.data(), out, batch),
                   ConstMatrixView(dot.data(), in, batch), MatrixView(tangent.data(), out, batch));
    return value.reshaped().dot(y_bar) + tangent.reshaped().dot(y_dot_bar);
  };
  const double h = 1e-6;
  forward(x, theta, y);
  layer->Tangent(theta.data(), ConstMatrixView(x.data(), in, batch),
                 ConstMatrixView(y.data(), out, batch), ConstMatrixView(x_dot.data(), in, batch),
                 MatrixView(y_dot.data(), out, batch));
  Matrix plus(out, batch), minus(out, batch);
  forward(x + h * x_dot, theta, plus);
  forward(x - h * x_dot, theta, minus);
  const Vector numeric_tangent = ((plus - minus) / (2 * h)).reshaped();
  EXPECT_LT(RelativeMaxError(y_dot.reshaped(), numeric_tangent), 1e-7) << GetParam().name;

  forward(x, theta, y);
  Matrix x_bar(in, batch), x_dot_bar(in, batch);
  Vector theta_bar = Vector::Constant(layer->param_dim(), 7.0);  // overwritten
  layer->TangentBackward(t, theta.data(), ConstMatrixView(x.data(), in, batch),
                         ConstMatrixView(y.data(), out, batch),
                         ConstMatrixView(x_dot.data(), in, batch),
                         ConstMatrixView(y_bar.data(), out, batch),
                         ConstMatrixView(y_dot_bar.data(), out, batch),
                         MatrixView(x_bar.data(), in, batch),
                         MatrixView(x_dot_bar.data(), in, batch), theta_bar.data());
  for (int direction = 0; direction < 3; ++direction) {
    const Vector u = RandomVector(in * batch, rng), v = RandomVector(in * batch, rng);
    const Vector w = RandomVector(layer->param_dim(), rng);
    const double along_x = (s(x + h * u, x_dot, theta) - s(x - h * u, x_dot, theta)) / (2 * h);
    const double along_dot = (s(x, x_dot + h * v, theta) - s(x, x_dot - h * v, theta)) / (2 * h);
    EXPECT_NEAR(x_bar.reshaped().dot(u), along_x, 1e-6 * (1.0 + std::abs(along_x)))
        << GetParam().name << ": x̄";
    EXPECT_NEAR(x_dot_bar.reshaped().dot(v), along_dot, 1e-6 * (1.0 + std::abs(along_dot)))
        << GetParam().name << ": ẋ̄";
    if (layer->param_dim() > 0) {
      const double along_theta =
          (s(x, x_dot, theta + h * w) - s(x, x_dot, theta - h * w)) / (2 * h);
      EXPECT_NEAR(theta_bar.dot(w), along_theta, 1e-6 * (1.0 + std::abs(along_theta)))
          << GetParam().name << ": θ̄";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layers, LayerTangents,
    ::testing::Values(
        LayerCase{"linear", [] { return std::make_unique<Linear>(4, 3); }},
        LayerCase{"concat_linear", [] { return std::make_unique<Linear>(4, 5, true); }},
        LayerCase{"tanh", [] { return std::make_unique<ActivationLayer>(Activation::kTanh, 6); }},
        LayerCase{"softplus",
                  [] { return std::make_unique<ActivationLayer>(Activation::kSoftplus, 6); }},
        LayerCase{"sigmoid",
                  [] { return std::make_unique<ActivationLayer>(Activation::kSigmoid, 6); }},
        LayerCase{"relu", [] { return std::make_unique<ActivationLayer>(Activation::kRelu, 6); }},
        LayerCase{"concat_conv2d",
                  [] {
                    return std::make_unique<Conv2d>(ImageShape{3, 5, 4}, 2, 3, 1, 1, true);
                  }},
        LayerCase{"conv2d_stride_2",
                  [] { return std::make_unique<Conv2d>(ImageShape{2, 6, 5}, 3, 3, 2, 1); }},
        LayerCase{"group_norm_2_groups",
                  [] { return std::make_unique<GroupNorm>(ImageShape{4, 3, 3}, 2); }},
        LayerCase{"group_norm_1_group",
                  [] { return std::make_unique<GroupNorm>(ImageShape{3, 2, 4}, 1); }}),
    [](const auto& info) { return info.param.name; });

// The convolutional ODE-Net's field (GroupNorm–ReLU–ConcatConv stages, double precision): the
// regularised rate is the probed norm of the dense Jacobian, and the augmented dynamics keep the
// Dynamics contract (vjp against central differences, no allocation) with one and two threads.
TEST(JacobianNorm, ConvolutionalFieldRateAndContract) {
  ModelSpec spec = testing::ConvSpec(12, 12, 3, 4, 2, Precision::kDouble);
  Classifier model(spec);
  const Vector all = model.Initialize(3);
  const Sequential& net = model.flow_field();
  std::mt19937 rng(5);
  // γ and the biases away from their initial 1 and 0, so every term of the derivative shows.
  const Vector theta = all.segment(model.flow_offset(), net.param_dim()) +
                       RandomVector(net.param_dim(), rng, 0.2);
  for (const int threads : {1, 2}) {
    NetworkField field(net, 3, threads);
    JacobianProbe probe(field);
    probe.DrawProbe(rng);
    JacobianNormAugmented regularised(field, probe, 1.0 / 3);
    const Vector x = RandomVector(regularised.state_dim(), rng);
    const Index n = field.state_dim();
    Vector rate(regularised.state_dim());
    regularised.f(0.25, x, theta, rate);
    const double dense = DenseRate(field, 0.25, x.head(n), theta, probe.probe()) / 3;
    EXPECT_NEAR(rate[n], dense, 1e-11 * dense) << threads;
    diffeoflow::testing::ExpectDynamicsContract(regularised, 0.25, x, theta);
  }
}

// A convolutional field with a smooth activation (GroupNorm–softplus–ConcatConv stages): the
// gradient of r(1) = ∫‖εᵀ∂f/∂x‖² dt through the continuous adjoint (checkpointed, Dopri5 at 1e-10)
// equals central differences of the solve. With ReLU it does not (docs/flows.md: the integrand
// jumps where a ReLU switches); the smooth field shows that the continuous modes carry GroupNorm's
// and the convolution's tangent passes correctly.
TEST(JacobianNorm, SmoothConvolutionalFieldGradientInTheContinuousAdjoint) {
  const ImageShape grid{4, 3, 3};
  Sequential net;
  for (int stage = 0; stage < 2; ++stage) {
    net.Add(std::make_unique<GroupNorm>(grid, 2));
    net.Add(std::make_unique<ActivationLayer>(Activation::kSoftplus, grid.size()));
    net.Add(std::make_unique<Conv2d>(grid, 4, 3, 1, 1, /*concat_time=*/true));
  }
  net.Add(std::make_unique<GroupNorm>(grid, 2));
  std::mt19937 rng(12);
  Vector theta(net.param_dim());
  net.Initialize(rng, theta.data());
  theta += RandomVector(net.param_dim(), rng, 0.1);
  NetworkField field(net, 2);
  JacobianProbe probe(field);
  probe.DrawProbe(rng);
  JacobianNormAugmented regularised(field, probe, 0.5);
  const Vector z0 = regularised.Augment(RandomVector(field.state_dim(), rng));
  SolverOptions solver;
  solver.method = Method::kDopri5;
  solver.rtol = 1e-10;
  solver.atol = 1e-10;
  GradientOptions gradient;
  gradient.mode = GradientMode::kCheckpointed;
  const Index r = field.state_dim();
  const TrajectoryLoss loss = [r](const std::vector<Vector>& states, std::vector<Vector>& grads) {
    grads[0][r] = 1.0;
    return states[0][r];
  };
  const GradientResult g = Gradient(regularised, z0, theta, {1.0}, loss, solver, gradient);
  EXPECT_GT(g.loss, 0.0);
  auto value = [&](const Vector& x0, const Vector& th) {
    return Integrate(regularised, x0, th, {1.0}, solver).states[0][r];
  };
  const double h = 1e-5;
  for (int direction = 0; direction < 3; ++direction) {
    const Vector s = RandomVector(theta.size(), rng), u = RandomVector(z0.size() - 1, rng);
    Vector u_full = Vector::Zero(z0.size());
    u_full.head(u.size()) = u;
    const double along_theta = (value(z0, theta + h * s) - value(z0, theta - h * s)) / (2 * h);
    const double along_x =
        (value(z0 + h * u_full, theta) - value(z0 - h * u_full, theta)) / (2 * h);
    EXPECT_NEAR(g.grad_theta.dot(s), along_theta, 1e-6 * std::abs(along_theta));
    EXPECT_NEAR(g.grad_x0.dot(u_full), along_x, 1e-6 * std::abs(along_x));
  }
}

// In single precision (the convolutions on oneDNN from 16 channels) the regulariser's value and
// gradient agree with double to single-precision round-off.
TEST(JacobianNorm, ConvolutionalFieldInSinglePrecisionAgreesWithDouble) {
  Classifier exact(testing::ConvSpec(8, 8, 3, 16, 2, Precision::kDouble));
  Classifier fast(testing::ConvSpec(8, 8, 3, 16, 2, Precision::kSingle));
  const Vector all = exact.Initialize(4);
  const Vector theta = all.segment(exact.flow_offset(), exact.flow_field().param_dim());
  std::mt19937 rng(2);
  NetworkField exact_field(exact.flow_field(), 5, 2), fast_field(fast.flow_field(), 5, 2);
  JacobianProbe exact_probe(exact_field), fast_probe(fast_field);
  exact_probe.DrawProbe(rng);
  fast_probe.SetProbe(exact_probe.probe());
  const Vector x = RandomVector(exact_field.state_dim(), rng);
  const double value = exact_probe.SquaredNorm(0.5, x.data(), theta.data());
  const double single = fast_probe.SquaredNorm(0.5, x.data(), theta.data());
  EXPECT_NEAR(single, value, 1e-5 * value);
  Vector x_bar = Vector::Zero(x.size()), x_bar_single = Vector::Zero(x.size());
  Vector theta_bar = Vector::Zero(theta.size()), theta_bar_single = Vector::Zero(theta.size());
  exact_probe.AddGradient(0.5, x.data(), theta.data(), 1.0, x_bar.data(), theta_bar.data());
  fast_probe.AddGradient(0.5, x.data(), theta.data(), 1.0, x_bar_single.data(),
                         theta_bar_single.data());
  const double x_error = (x_bar_single - x_bar).norm() / x_bar.norm();
  const double theta_error = (theta_bar_single - theta_bar).norm() / theta_bar.norm();
  EXPECT_LT(x_error, 1e-5);
  EXPECT_LT(theta_error, 1e-5);
  EXPECT_GT(x_error + theta_error, 0.0);  // the single-precision path was taken
}

}  // namespace
}  // namespace diffeoflow::flows
