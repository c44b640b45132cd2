// The single-precision Conv2d on oneDNN (flows/conv_onednn.h) against the double im2col Conv2d:
// forward values, x̄, and θ̄ split into its parts (the image weights, the time channel's weights,
// the bias), each to float round-off; odd shapes, batch sizes that change between calls, copies,
// the path selection, and the whole convolutional ODE-Net's gradient.
#include "flows/conv_onednn.h"

#include <cstdlib>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "flows/classifier.h"
#include "flows/conv.h"
#include "solvers/errors.h"
#include "tests/common/allocation_counter.h"
#include "tests/flows/test_util.h"

namespace diffeoflow::flows {
namespace {

using testing::RandomVector;

double RelativeError(const Eigen::Ref<const Vector>& approximate,
                     const Eigen::Ref<const Vector>& exact) {
  return (approximate - exact).norm() / exact.norm();
}

// The tests want the oneDNN path for every single-precision layer, whatever the caller's
// environment says (by default layers of few channels stay on im2col).
class OneDnnConvolutionTest : public ::testing::Test {
 protected:
  void SetUp() override { setenv("DIFFEOFLOW_CONVOLUTION", "onednn", 1); }
  void TearDown() override { unsetenv("DIFFEOFLOW_CONVOLUTION"); }
};

struct Outputs {
  Vector y, x_bar, theta_bar;
};

Outputs RunLayer(Conv2d& conv, double t, const Vector& theta, const Vector& x, const Vector& y_bar,
            Index batch) {
  const Index n_in = conv.input_size(), n_out = conv.output_size();
  Outputs r{Vector(n_out * batch), Vector(n_in * batch), Vector(conv.param_dim())};
  conv.Forward(t, theta.data(), ConstMatrixView(x.data(), n_in, batch),
               MatrixView(r.y.data(), n_out, batch));
  conv.Backward(t, theta.data(), ConstMatrixView(x.data(), n_in, batch),
                ConstMatrixView(r.y.data(), n_out, batch),
                ConstMatrixView(y_bar.data(), n_out, batch),
                MatrixView(r.x_bar.data(), n_in, batch), r.theta_bar.data());
  return r;
}

struct Case {
  ImageShape in;
  Index out, kernel, stride, padding;
  bool time;
  Index batch;
};

// Float round-off: 6e-8 a rounding, sums of up to a few thousand products (θ̄ sums over the batch
// and the grid) lose a little more.
void ExpectAgreesWithDouble(const Case& c, std::mt19937& rng) {
  SCOPED_TRACE(::testing::Message() << c.in.channels << "x" << c.in.height << "x" << c.in.width
                                    << " -> " << c.out << ", k " << c.kernel << " s " << c.stride
                                    << " p " << c.padding << (c.time ? " time" : "") << ", batch "
                                    << c.batch);
  Conv2d exact(c.in, c.out, c.kernel, c.stride, c.padding, c.time, Precision::kDouble);
  Conv2d fast(c.in, c.out, c.kernel, c.stride, c.padding, c.time, Precision::kSingle);
  ASSERT_FALSE(exact.on_onednn());
  ASSERT_TRUE(fast.on_onednn());
  const Vector theta = RandomVector(exact.param_dim(), rng);
  const Vector x = RandomVector(exact.input_size() * c.batch, rng);
  const Vector y_bar = RandomVector(exact.output_size() * c.batch, rng);
  const double t = 0.7;
  const Outputs a = RunLayer(exact, t, theta, x, y_bar, c.batch);
  const Outputs b = RunLayer(fast, t, theta, x, y_bar, c.batch);
  EXPECT_LT(RelativeError(b.y, a.y), 1e-6);
  EXPECT_GT((b.y - a.y).norm(), 0.0);  // the float path was taken
  EXPECT_LT(RelativeError(b.x_bar, a.x_bar), 1e-6);
  const Index taps = c.kernel * c.kernel, per_output = (c.in.channels + c.time) * taps;
  for (Index o = 0; o < c.out; ++o) {
    const Index image = c.in.channels * taps;
    EXPECT_LT(RelativeError(b.theta_bar.segment(o * per_output, image),
                            a.theta_bar.segment(o * per_output, image)),
              1e-5)
        << "image weights of output channel " << o;
    if (c.time) {
      EXPECT_LT(RelativeError(b.theta_bar.segment(o * per_output + image, taps),
                              a.theta_bar.segment(o * per_output + image, taps)),
                1e-5)
          << "time weights of output channel " << o;
    }
  }
  EXPECT_LT(RelativeError(b.theta_bar.tail(c.out), a.theta_bar.tail(c.out)), 1e-5) << "bias";
}

TEST_F(OneDnnConvolutionTest, AgreesWithTheDoubleIm2colLayer) {
  const Case cases[] = {
      // The convolutional ODE-Net on Fashion-MNIST: 28×28 → 14×14 → 7×7, then the field's
      // ConcatConv2d at 7×7.
      {{1, 28, 28}, 32, 3, 2, 1, false, 3},
      {{32, 14, 14}, 32, 3, 2, 1, false, 3},
      {{32, 7, 7}, 32, 3, 1, 1, true, 3},
      // Odd shapes: one channel, batch 1, 7×7 kernels, channel counts off every SIMD block,
      // padding wider than the kernel's half, no padding, rectangular grids.
      {{1, 7, 7}, 1, 3, 1, 1, true, 1},
      {{1, 9, 8}, 3, 7, 1, 3, true, 3},
      {{3, 7, 7}, 5, 7, 2, 3, false, 1},
      {{5, 6, 5}, 7, 3, 1, 2, true, 3},
      {{2, 6, 5}, 3, 4, 1, 0, false, 3},
      {{1, 5, 5}, 2, 4, 2, 0, true, 1},
      {{17, 7, 7}, 33, 3, 1, 1, true, 3},
  };
  std::mt19937 rng(31);
  for (const Case& c : cases) ExpectAgreesWithDouble(c, rng);
}

// The weight gradient reads the float copy of x the Forward left when the Backward is at that x,
// and converts x otherwise: a convolution is linear in x, so a Backward at another input without
// its Forward (Conv2d::TangentBackward runs one at ẋ) is the same as with it, bit for bit, and a
// Backward at the forward's x after it converts again.
TEST_F(OneDnnConvolutionTest, BackwardAtAnotherInputConvertsIt) {
  const ImageShape in{16, 7, 7};
  const Index batch = 3;
  Conv2d conv(in, 16, 3, 1, 1, /*concat_time=*/true, Precision::kSingle);
  ASSERT_TRUE(conv.on_onednn());
  std::mt19937 rng(5);
  const Vector theta = RandomVector(conv.param_dim(), rng);
  const Vector x = RandomVector(in.size() * batch, rng);
  const Vector other = RandomVector(in.size() * batch, rng);
  const Vector y_bar = RandomVector(conv.output_size() * batch, rng);
  const Outputs at_x = RunLayer(conv, 0.3, theta, x, y_bar, batch);
  const Outputs at_other = RunLayer(conv, 0.3, theta, other, y_bar, batch);
  ASSERT_GT((at_x.theta_bar - at_other.theta_bar).norm(), 0.0);
  // Forward at x, then Backward at the other input, then at x again.
  const auto backward = [&](const Vector& input) {
    Vector x_bar(in.size() * batch), theta_bar(conv.param_dim());
    conv.Backward(0.3, theta.data(), ConstMatrixView(input.data(), in.size(), batch),
                  ConstMatrixView(at_x.y.data(), conv.output_size(), batch),
                  ConstMatrixView(y_bar.data(), conv.output_size(), batch),
                  MatrixView(x_bar.data(), in.size(), batch), theta_bar.data());
    return theta_bar;
  };
  Vector y(conv.output_size() * batch);
  conv.Forward(0.3, theta.data(), ConstMatrixView(x.data(), in.size(), batch),
               MatrixView(y.data(), conv.output_size(), batch));
  EXPECT_EQ(backward(other), at_other.theta_bar);
  EXPECT_EQ(backward(x), at_x.theta_bar);
}

// Primitives are made once per batch size and kept: alternating sizes gives, call for call, the
// same results as a fresh layer; a copy gives the same results as the original.
TEST_F(OneDnnConvolutionTest, BatchSizesAndCopiesGiveTheSameResults) {
  const ImageShape in{4, 6, 6};
  Conv2d conv(in, 8, 3, 1, 1, /*concat_time=*/true, Precision::kSingle);
  conv.Reserve(5);
  std::mt19937 rng(2);
  const Vector theta = RandomVector(conv.param_dim(), rng);
  for (const Index batch : {5, 1, 3, 5, 1}) {
    const Vector x = RandomVector(in.size() * batch, rng);
    const Vector y_bar = RandomVector(conv.output_size() * batch, rng);
    Conv2d fresh(in, 8, 3, 1, 1, true, Precision::kSingle);
    const Outputs kept = RunLayer(conv, 0.4, theta, x, y_bar, batch);
    const Outputs expected = RunLayer(fresh, 0.4, theta, x, y_bar, batch);
    std::unique_ptr<Layer> copy = conv.Clone();
    const Outputs copied = RunLayer(static_cast<Conv2d&>(*copy), 0.4, theta, x, y_bar, batch);
    for (const Outputs* r : {&kept, &copied}) {
      EXPECT_EQ(r->y, expected.y) << batch;
      EXPECT_EQ(r->x_bar, expected.x_bar) << batch;
      EXPECT_EQ(r->theta_bar, expected.theta_bar) << batch;
    }
  }
}

// Once a batch size has its primitives, a call creates nothing: its only allocations are the few
// small ones inside oneDNN's dnnl_primitive_execute (its map of arguments), as many for 4 samples
// as for 40, where a primitive or buffer made per call would add hundreds of kilobytes and
// dozens of allocations.
TEST_F(OneDnnConvolutionTest, CallsAfterTheFirstCreateNothing) {
  const ImageShape in{32, 7, 7};
  Conv2d conv(in, 32, 3, 1, 1, /*concat_time=*/true, Precision::kSingle);
  std::mt19937 rng(8);
  const Vector theta = RandomVector(conv.param_dim(), rng);
  long per_call[2] = {0, 0};
  const Index batches[2] = {4, 40};
  for (int k = 0; k < 2; ++k) {
    const Index batch = batches[k];
    const Vector x = RandomVector(in.size() * batch, rng);
    const Vector y_bar = RandomVector(conv.output_size() * batch, rng);
    Outputs r = RunLayer(conv, 0.2, theta, x, y_bar, batch);  // creates the batch size's plan
    const long before = diffeoflow::testing::AllocationCount();
    conv.Forward(0.3, theta.data(), ConstMatrixView(x.data(), in.size(), batch),
                 MatrixView(r.y.data(), conv.output_size(), batch));
    conv.Backward(0.3, theta.data(), ConstMatrixView(x.data(), in.size(), batch),
                  ConstMatrixView(r.y.data(), conv.output_size(), batch),
                  ConstMatrixView(y_bar.data(), conv.output_size(), batch),
                  MatrixView(r.x_bar.data(), in.size(), batch), r.theta_bar.data());
    per_call[k] = diffeoflow::testing::AllocationCount() - before;
  }
  EXPECT_EQ(per_call[0], per_call[1]);
  EXPECT_LT(per_call[0], 64);
}

TEST_F(OneDnnConvolutionTest, EnvironmentSelectsThePath) {
  const ImageShape in{2, 5, 5}, wide{16, 5, 5};
  EXPECT_TRUE(Conv2d(in, 3, 3, 1, 1, true, Precision::kSingle).on_onednn());
  setenv("DIFFEOFLOW_CONVOLUTION", "im2col", 1);
  EXPECT_FALSE(Conv2d(wide, 3, 3, 1, 1, true, Precision::kSingle).on_onednn());
  for (const char* automatic : {"auto", ""}) {
    setenv("DIFFEOFLOW_CONVOLUTION", automatic, 1);
    EXPECT_FALSE(Conv2d(in, 3, 3, 1, 1, true, Precision::kSingle).on_onednn());
    EXPECT_TRUE(Conv2d(wide, 3, 3, 1, 1, true, Precision::kSingle).on_onednn());
  }
  unsetenv("DIFFEOFLOW_CONVOLUTION");
  EXPECT_FALSE(Conv2d(in, 3, 3, 1, 1, true, Precision::kSingle).on_onednn());
  EXPECT_TRUE(Conv2d(wide, 3, 3, 1, 1, true, Precision::kSingle).on_onednn());
  // Double precision never goes to oneDNN (it has no f64 convolution on the CPU).
  setenv("DIFFEOFLOW_CONVOLUTION", "onednn", 1);
  EXPECT_FALSE(Conv2d(wide, 3, 3, 1, 1, true, Precision::kDouble).on_onednn());
  setenv("DIFFEOFLOW_CONVOLUTION", "mkl", 1);
  try {
    Conv2d conv(in, 3, 3, 1, 1, true, Precision::kSingle);
    FAIL() << "an unknown path was accepted";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("DIFFEOFLOW_CONVOLUTION"), std::string::npos) << message;
    EXPECT_NE(message.find("mkl"), std::string::npos) << message;
  }
}

// The whole convolutional ODE-Net at the Fashion-MNIST shapes (28 × 28, 32 channels, RK4, discrete
// adjoint, two threads): the loss and gradient with oneDNN in float are those in double.
TEST_F(OneDnnConvolutionTest, OdeNetGradientAgreesWithDouble) {
  ModelSpec spec = testing::ConvSpec(28, 28, 10, 32, 2, Precision::kDouble);
  Classifier exact(spec, 2);
  spec.precision = Precision::kSingle;
  Classifier fast(spec, 2);
  for (std::size_t i = 0; i < fast.flow_field().size(); ++i) {
    if (const auto* conv = dynamic_cast<const Conv2d*>(&fast.flow_field().layer(i))) {
      EXPECT_TRUE(conv->on_onednn());
    }
  }
  // ReLU makes the gradient jump where a pre-activation crosses zero: float round-off moves a few
  // units across at some parameters (seed 6 here: 2e-3, the same with the float im2col path).
  const Vector theta = exact.Initialize(2);
  std::mt19937 rng(12);
  const Index batch = 6;
  Matrix x(28 * 28, batch);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = std::uniform_real_distribution<>(0, 1)(rng);
  std::vector<int> labels(batch);
  for (Index b = 0; b < batch; ++b) labels[static_cast<std::size_t>(b)] = static_cast<int>(b);
  Vector g_exact, g_fast;
  const BatchResult r_exact = exact.Evaluate(theta, x, labels.data(), &g_exact);
  const BatchResult r_fast = fast.Evaluate(theta, x, labels.data(), &g_fast);
  EXPECT_NEAR(r_fast.loss, r_exact.loss, 1e-6 * r_exact.loss);
  const double error = RelativeError(g_fast, g_exact);
  EXPECT_LT(error, 1e-5);
  EXPECT_GT(error, 0.0);
}

}  // namespace
}  // namespace diffeoflow::flows
