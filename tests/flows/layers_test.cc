// Every layer's vector–Jacobian product, a stack's, and the cross-entropy's gradient against central
// finite differences (solvers/gradient_check.h).
#include "flows/layers.h"

#include <functional>
#include <memory>
#include <random>

#include <gtest/gtest.h>

#include "flows/conv.h"
#include "flows/network.h"
#include "solvers/errors.h"
#include "solvers/gradient_check.h"
#include "tests/flows/test_util.h"

namespace diffeoflow::flows {
namespace {

using testing::RandomVector;
using testing::RelativeMaxError;

// L(x, θ) = ⟨w, layer(t, x; θ)⟩; Backward with ȳ = w must give ∇ₓL and ∇_θL.
void CheckLayerGradients(Layer& layer, Index batch, double t, double tolerance,
                         double input_scale = 1.0) {
  std::mt19937 rng(11);
  const Index in = layer.input_size(), out = layer.output_size();
  Vector theta = RandomVector(layer.param_dim(), rng, 0.7);
  Vector x = RandomVector(in * batch, rng, input_scale);
  const Vector w = RandomVector(out * batch, rng);
  layer.Reserve(batch);

  Vector y(out * batch), x_bar(in * batch), theta_bar(layer.param_dim());
  auto loss = [&](const Vector& xx, const Vector& th) {
    Vector yy(out * batch);
    layer.Forward(t, th.data(), ConstMatrixView(xx.data(), in, batch),
                  MatrixView(yy.data(), out, batch));
    return w.dot(yy);
  };
  layer.Forward(t, theta.data(), ConstMatrixView(x.data(), in, batch),
                MatrixView(y.data(), out, batch));
  layer.Backward(t, theta.data(), ConstMatrixView(x.data(), in, batch),
                 ConstMatrixView(y.data(), out, batch), ConstMatrixView(w.data(), out, batch),
                 MatrixView(x_bar.data(), in, batch), theta_bar.data());

  const Vector numeric_x = NumericalGradient([&](const Vector& xx) { return loss(xx, theta); }, x);
  EXPECT_LT(RelativeMaxError(x_bar, numeric_x), tolerance) << layer.name() << " x̄";
  if (layer.param_dim() > 0) {
    const Vector numeric_theta =
        NumericalGradient([&](const Vector& th) { return loss(x, th); }, theta);
    EXPECT_LT(RelativeMaxError(theta_bar, numeric_theta), tolerance) << layer.name() << " θ̄";
  }
}

TEST(Layers, LinearVjpMatchesFiniteDifferences) {
  Linear layer(5, 3);
  CheckLayerGradients(layer, 4, 0.3, 1e-8);
}

TEST(Layers, TimeConcatenatedLinearVjpMatchesFiniteDifferences) {
  Linear layer(4, 6, /*concat_time=*/true);
  CheckLayerGradients(layer, 3, 0.7, 1e-8);
}

TEST(Layers, TimeConcatenatedLinearUsesTheLastWeightColumnForT) {
  Linear layer(2, 1, true);
  const double theta[] = {1.0, 2.0, 10.0, 0.5};  // W = [1 2 10], b = 0.5
  const double x[] = {3.0, -1.0};
  double y = 0.0;
  layer.Reserve(1);
  layer.Forward(0.25, theta, ConstMatrixView(x, 2, 1), MatrixView(&y, 1, 1));
  EXPECT_DOUBLE_EQ(y, 3.0 - 2.0 + 2.5 + 0.5);
}

TEST(Layers, ActivationVjpsMatchFiniteDifferences) {
  for (Activation a : {Activation::kTanh, Activation::kSoftplus, Activation::kSigmoid,
                       Activation::kRelu}) {
    ActivationLayer layer(a, 7);
    // ReLU's kink: inputs of scale 3 stay ≫ h away from 0 with this seed.
    CheckLayerGradients(layer, 5, 0.0, 1e-7, 3.0);
  }
}

TEST(Layers, Conv2dVjpMatchesFiniteDifferences) {
  Conv2d plain({2, 5, 4}, 3, 3, 1, 1);
  CheckLayerGradients(plain, 2, 0.0, 1e-8);
  Conv2d strided({2, 6, 5}, 3, 3, 2, 1);
  EXPECT_EQ(strided.output_shape().height, 3);
  EXPECT_EQ(strided.output_shape().width, 3);
  CheckLayerGradients(strided, 2, 0.0, 1e-8);
  Conv2d timed({3, 4, 4}, 2, 3, 1, 1, /*concat_time=*/true);
  CheckLayerGradients(timed, 2, 0.8, 1e-8);
  Conv2d unpadded({1, 5, 5}, 2, 4, 2, 0);
  CheckLayerGradients(unpadded, 3, 0.0, 1e-8);
  // Stride 1 takes x̄ from the transposed convolution: also with an even kernel and no padding
  // (the output grid smaller than the input) and with more padding than "same" (larger).
  Conv2d shrinking({2, 5, 6}, 3, 4, 1, 0);
  EXPECT_EQ(shrinking.output_shape().height, 2);
  CheckLayerGradients(shrinking, 2, 0.0, 1e-8);
  Conv2d growing({2, 4, 3}, 2, 3, 1, 2, /*concat_time=*/true);
  EXPECT_EQ(growing.output_shape().width, 5);
  CheckLayerGradients(growing, 2, 0.4, 1e-8);
}

// Samples go through the GEMMs in chunks; a batch of several chunks and a partial one must give
// each sample's own output and input adjoint, and the sum of the samples' θ̄.
TEST(Layers, Conv2dBatchOfManyChunksEqualsOneSampleAtATime) {
  const ImageShape in{2, 4, 4};
  Conv2d batched(in, 3, 3, 1, 1, /*concat_time=*/true), single(in, 3, 3, 1, 1, true);
  const Index batch = 61, n_in = in.size(), n_out = batched.output_size();
  std::mt19937 rng(12);
  const Vector theta = RandomVector(batched.param_dim(), rng);
  const Vector x = RandomVector(n_in * batch, rng), y_bar = RandomVector(n_out * batch, rng);
  const double t = 0.45;
  Vector y(n_out * batch), x_bar(n_in * batch), theta_bar(batched.param_dim());
  batched.Reserve(batch);
  batched.Forward(t, theta.data(), ConstMatrixView(x.data(), n_in, batch),
                  MatrixView(y.data(), n_out, batch));
  batched.Backward(t, theta.data(), ConstMatrixView(x.data(), n_in, batch),
                   ConstMatrixView(y.data(), n_out, batch),
                   ConstMatrixView(y_bar.data(), n_out, batch),
                   MatrixView(x_bar.data(), n_in, batch), theta_bar.data());
  Vector sum = Vector::Zero(batched.param_dim());
  Vector one_y(n_out), one_x_bar(n_in), one_theta_bar(batched.param_dim());
  single.Reserve(1);
  for (Index b = 0; b < batch; ++b) {
    single.Forward(t, theta.data(), ConstMatrixView(x.data() + b * n_in, n_in, 1),
                   MatrixView(one_y.data(), n_out, 1));
    single.Backward(t, theta.data(), ConstMatrixView(x.data() + b * n_in, n_in, 1),
                    ConstMatrixView(one_y.data(), n_out, 1),
                    ConstMatrixView(y_bar.data() + b * n_out, n_out, 1),
                    MatrixView(one_x_bar.data(), n_in, 1), one_theta_bar.data());
    EXPECT_LT((y.segment(b * n_out, n_out) - one_y).cwiseAbs().maxCoeff(), 1e-13) << b;
    EXPECT_LT((x_bar.segment(b * n_in, n_in) - one_x_bar).cwiseAbs().maxCoeff(), 1e-13) << b;
    sum += one_theta_bar;
  }
  EXPECT_LT(RelativeMaxError(theta_bar, sum), 1e-13);
}

// The single-precision convolution computes the same as the double one to float round-off: its
// forward values, x̄ and θ̄, for plain, strided, time-concatenated and unpadded layers and a batch
// of many chunks.
TEST(Layers, Conv2dInSinglePrecisionAgreesWithDouble) {
  struct Case {
    ImageShape in;
    Index out, kernel, stride, padding;
    bool time;
  };
  const Case cases[] = {{{2, 5, 4}, 3, 3, 1, 1, false},
                        {{2, 6, 5}, 3, 3, 2, 1, false},
                        {{3, 7, 7}, 8, 3, 1, 1, true},
                        {{1, 5, 5}, 2, 4, 2, 0, false},
                        {{2, 6, 5}, 3, 4, 1, 0, false},
                        {{2, 4, 3}, 2, 3, 1, 2, true}};
  std::mt19937 rng(21);
  for (const Case& c : cases) {
    Conv2d exact(c.in, c.out, c.kernel, c.stride, c.padding, c.time, Precision::kDouble);
    Conv2d fast(c.in, c.out, c.kernel, c.stride, c.padding, c.time, Precision::kSingle);
    const Index batch = 70, n_in = exact.input_size(), n_out = exact.output_size();
    const Vector theta = RandomVector(exact.param_dim(), rng);
    const Vector x = RandomVector(n_in * batch, rng), y_bar = RandomVector(n_out * batch, rng);
    Vector y[2], x_bar[2], theta_bar[2];
    Conv2d* layers[2] = {&exact, &fast};
    for (int k = 0; k < 2; ++k) {
      y[k].resize(n_out * batch);
      x_bar[k].resize(n_in * batch);
      theta_bar[k].resize(exact.param_dim());
      layers[k]->Forward(0.3, theta.data(), ConstMatrixView(x.data(), n_in, batch),
                         MatrixView(y[k].data(), n_out, batch));
      layers[k]->Backward(0.3, theta.data(), ConstMatrixView(x.data(), n_in, batch),
                          ConstMatrixView(y[k].data(), n_out, batch),
                          ConstMatrixView(y_bar.data(), n_out, batch),
                          MatrixView(x_bar[k].data(), n_in, batch), theta_bar[k].data());
    }
    // float has a 6e-8 unit round-off; sums of a few hundred products lose a little more.
    EXPECT_LT((y[1] - y[0]).norm() / y[0].norm(), 1e-6);
    EXPECT_LT((x_bar[1] - x_bar[0]).norm() / x_bar[0].norm(), 1e-6);
    EXPECT_LT((theta_bar[1] - theta_bar[0]).norm() / theta_bar[0].norm(), 1e-6);
    EXPECT_GT((y[1] - y[0]).norm(), 0.0);  // the single-precision path was taken
  }
  EXPECT_EQ(ParsePrecision("single"), Precision::kSingle);
  EXPECT_EQ(PrecisionName(Precision::kDouble), "double");
  try {
    ParsePrecision("half", "--precision");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--precision"), std::string::npos) << e.what();
  }
}

// y[o,i,j] = b_o + Σ W[o,c,u,v] x[c, s i − p + u, s j − p + v], written out directly.
TEST(Layers, Conv2dIsTheCrossCorrelationOfNnConv2d) {
  const ImageShape in{2, 5, 6};
  for (bool time : {false, true}) {
    Conv2d conv(in, 3, 3, 2, 1, time);
    std::mt19937 rng(4);
    const Vector theta = RandomVector(conv.param_dim(), rng);
    const Vector x = RandomVector(in.size(), rng);
    const double t = 0.37;
    Vector y(conv.output_size());
    conv.Forward(t, theta.data(), ConstMatrixView(x.data(), in.size(), 1),
                 MatrixView(y.data(), y.size(), 1));
    const ImageShape out = conv.output_shape();
    const Index cin = in.channels + time;
    for (Index o = 0; o < out.channels; ++o) {
      for (Index i = 0; i < out.height; ++i) {
        for (Index j = 0; j < out.width; ++j) {
          double sum = theta[out.channels * cin * 9 + o];
          for (Index c = 0; c < cin; ++c) {
            for (Index u = 0; u < 3; ++u) {
              for (Index v = 0; v < 3; ++v) {
                const Index r = 2 * i - 1 + u, q = 2 * j - 1 + v;
                if (r < 0 || r >= in.height || q < 0 || q >= in.width) continue;
                const double xv = c == in.channels ? t : x[(c * in.height + r) * in.width + q];
                sum += theta[((o * cin + c) * 3 + u) * 3 + v] * xv;
              }
            }
          }
          EXPECT_NEAR(y[(o * out.height + i) * out.width + j], sum, 1e-13);
        }
      }
    }
  }
}

TEST(Layers, GroupNormAndPoolingVjpsMatchFiniteDifferences) {
  GroupNorm norm({4, 3, 2}, 2);
  CheckLayerGradients(norm, 3, 0.0, 1e-7);
  GroupNorm single({3, 2, 2}, 1);
  CheckLayerGradients(single, 2, 0.0, 1e-7);
  GlobalAveragePool pool({3, 2, 4});
  CheckLayerGradients(pool, 2, 0.0, 1e-9);
  EXPECT_THROW(GroupNorm({6, 2, 2}, 4), InputError);
}

TEST(Layers, GroupNormNormalisesEachGroup) {
  GroupNorm norm({4, 3, 3}, 2);
  std::mt19937 rng(6);
  Vector theta(norm.param_dim());
  norm.Initialize(rng, theta.data());
  const Vector x = RandomVector(norm.input_size(), rng, 3.0).array() + 5.0;
  Vector y(x.size());
  norm.Reserve(1);
  norm.Forward(0.0, theta.data(), ConstMatrixView(x.data(), x.size(), 1),
               MatrixView(y.data(), y.size(), 1));
  for (Index g = 0; g < 2; ++g) {
    const Vector group = y.segment(g * 18, 18);
    EXPECT_NEAR(group.mean(), 0.0, 1e-12);
    EXPECT_NEAR((group.array() - group.mean()).square().mean(), 1.0, 1e-4);  // ε = 1e-5
  }
}

TEST(Layers, ParseActivationNamesTheArgument) {
  EXPECT_EQ(ParseActivation("softplus"), Activation::kSoftplus);
  try {
    ParseActivation("gelu", "--activation");
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--activation"), std::string::npos);
  }
}

TEST(Layers, SoftmaxCrossEntropyGradientMatchesFiniteDifferences) {
  std::mt19937 rng(5);
  const Index classes = 4, batch = 6;
  const Vector z = RandomVector(classes * batch, rng, 2.0);
  const int labels[] = {0, 3, 1, 1, 2, 3};
  Vector z_bar(classes * batch);
  MatrixView z_bar_view(z_bar.data(), classes, batch);
  Index correct = -1;
  const double loss =
      SoftmaxCrossEntropy(ConstMatrixView(z.data(), classes, batch), labels, &z_bar_view, &correct);
  EXPECT_GT(loss, 0.0);
  EXPECT_GE(correct, 0);
  const Vector numeric = NumericalGradient(
      [&](const Vector& zz) {
        return SoftmaxCrossEntropy(ConstMatrixView(zz.data(), classes, batch), labels, nullptr);
      },
      z);
  EXPECT_LT(RelativeMaxError(z_bar, numeric), 1e-8);
  // Uniform logits: log(classes).
  const Vector flat = Vector::Zero(classes * batch);
  EXPECT_NEAR(SoftmaxCrossEntropy(ConstMatrixView(flat.data(), classes, batch), labels, nullptr),
              std::log(4.0), 1e-15);
}

TEST(Layers, LabelSmoothedCrossEntropyIsTheCrossEntropyWithTheSmoothedTarget) {
  std::mt19937 rng(6);
  const Index classes = 5, batch = 4;
  const double epsilon = 0.1;
  const Vector z = RandomVector(classes * batch, rng, 2.0);
  const int labels[] = {4, 0, 2, 2};
  const auto loss = [&](const Vector& zz, MatrixView* z_bar) {
    return SoftmaxCrossEntropy(ConstMatrixView(zz.data(), classes, batch), labels, z_bar, nullptr,
                               epsilon);
  };
  // Against −(1/B) Σ_b Σ_c q_cb log softmax(z)_cb written out.
  double expected = 0.0;
  for (Index b = 0; b < batch; ++b) {
    const double log_sum = std::log(z.segment(b * classes, classes).array().exp().sum());
    for (Index c = 0; c < classes; ++c) {
      const double q = (c == labels[b] ? 1.0 - epsilon : 0.0) + epsilon / classes;
      expected -= q * (z[b * classes + c] - log_sum) / batch;
    }
  }
  Vector z_bar(classes * batch);
  MatrixView z_bar_view(z_bar.data(), classes, batch);
  EXPECT_NEAR(loss(z, &z_bar_view), expected, 1e-14);
  EXPECT_NEAR(loss(z, nullptr), expected, 1e-14);
  EXPECT_LT(RelativeMaxError(z_bar, NumericalGradient([&](const Vector& zz) {
                                                       return loss(zz, nullptr);
                                                     }, z)),
            1e-8);
  // Its minimum is at softmax(z) = q: logits log q have a zero gradient and the loss is the
  // entropy of q.
  Vector at_target(classes * batch);
  double entropy = 0.0;
  for (Index b = 0; b < batch; ++b) {
    for (Index c = 0; c < classes; ++c) {
      const double q = (c == labels[b] ? 1.0 - epsilon : 0.0) + epsilon / classes;
      at_target[b * classes + c] = std::log(q);
      entropy -= q * std::log(q) / batch;
    }
  }
  EXPECT_NEAR(loss(at_target, &z_bar_view), entropy, 1e-14);
  EXPECT_LT(z_bar.cwiseAbs().maxCoeff(), 1e-15);
}

TEST(Layers, SoftmaxCrossEntropyRejectsLabelsOutOfRange) {
  const Vector z = Vector::Zero(6);
  const int labels[] = {0, 3};
  EXPECT_THROW(SoftmaxCrossEntropy(ConstMatrixView(z.data(), 3, 2), labels, nullptr), InputError);
}

TEST(Network, SequentialVjpMatchesFiniteDifferences) {
  Sequential net;
  net.Add(std::make_unique<Linear>(3, 8, true));
  net.Add(std::make_unique<ActivationLayer>(Activation::kSoftplus, 8));
  net.Add(std::make_unique<Linear>(8, 5));
  net.Add(std::make_unique<ActivationLayer>(Activation::kTanh, 5));
  net.Add(std::make_unique<Linear>(5, 2));
  std::mt19937 rng(2);
  const Index batch = 4;
  const double t = 0.4;
  Vector theta(net.param_dim());
  net.Initialize(rng, theta.data());
  const Vector x = RandomVector(3 * batch, rng);
  const Vector w = RandomVector(2 * batch, rng);
  net.Reserve(batch);
  auto loss = [&](const Vector& xx, const Vector& th) {
    ConstMatrixView y = net.Forward(t, th.data(), ConstMatrixView(xx.data(), 3, batch));
    return w.dot(Eigen::Map<const Vector>(y.data(), y.size()));
  };
  loss(x, theta);
  Vector x_bar(3 * batch), theta_bar(net.param_dim());
  net.Backward(t, theta.data(), ConstMatrixView(x.data(), 3, batch),
               ConstMatrixView(w.data(), 2, batch), MatrixView(x_bar.data(), 3, batch),
               theta_bar.data());
  EXPECT_LT(RelativeMaxError(x_bar, NumericalGradient([&](const Vector& v) { return loss(v, theta); }, x)),
            1e-8);
  EXPECT_LT(RelativeMaxError(theta_bar,
                             NumericalGradient([&](const Vector& v) { return loss(x, v); }, theta)),
            1e-8);
}

TEST(Network, MismatchedLayerSizesAreRejected) {
  Sequential net;
  net.Add(std::make_unique<Linear>(3, 8));
  EXPECT_THROW(net.Add(std::make_unique<Linear>(7, 2)), InputError);
}

TEST(Network, CopiesAreIndependent) {
  Sequential net;
  net.Add(std::make_unique<Linear>(2, 3));
  net.Add(std::make_unique<ActivationLayer>(Activation::kTanh, 3));
  Sequential copy = net;
  EXPECT_EQ(copy.param_dim(), net.param_dim());
  EXPECT_EQ(copy.size(), 2u);
  EXPECT_EQ(copy.layer(1).name(), "tanh");
  EXPECT_NE(&copy.layer(0), &net.layer(0));
}

}  // namespace
}  // namespace diffeoflow::flows
