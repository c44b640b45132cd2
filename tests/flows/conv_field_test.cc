// The ODE-Net field as one blocked float layer (flows/conv_field.h) against the same field as
// separate layers: in double (the function and its derivatives to float round-off) and in single
// precision; groups within a channel block and across blocks, non-square grids, t ≠ 0, batch sizes
// that change between calls, copies, the per-sample independence the classifier relies on, and the
// errors.
#include "flows/conv_field.h"

#include <cstdlib>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "flows/conv.h"
#include "solvers/errors.h"
#include "tests/flows/test_util.h"

namespace diffeoflow::flows {
namespace {

using testing::RandomVector;

// The oneDNN path whatever the caller's environment says.
class BlockedConvFieldTest : public ::testing::Test {
 protected:
  void SetUp() override { setenv("DIFFEOFLOW_CONVOLUTION", "onednn", 1); }
  void TearDown() override { unsetenv("DIFFEOFLOW_CONVOLUTION"); }
};

struct Outputs {
  Vector y, x_bar, theta_bar;
};

// Forward then Backward of a layer on a batch.
Outputs RunPass(Layer& layer, double t, const Vector& theta, const Vector& x,
                const Vector& y_bar, Index batch) {
  const Index n = layer.input_size();
  Outputs r{Vector(n * batch), Vector(n * batch), Vector(layer.param_dim())};
  layer.Forward(t, theta.data(), ConstMatrixView(x.data(), n, batch),
                MatrixView(r.y.data(), n, batch));
  layer.Backward(t, theta.data(), ConstMatrixView(x.data(), n, batch),
                 ConstMatrixView(r.y.data(), n, batch), ConstMatrixView(y_bar.data(), n, batch),
                 MatrixView(r.x_bar.data(), n, batch), r.theta_bar.data());
  return r;
}

Outputs RunPass(Sequential& net, double t, const Vector& theta, const Vector& x,
                const Vector& y_bar, Index batch) {
  const Index n = net.input_size();
  Outputs r{Vector(n * batch), Vector(n * batch), Vector(net.param_dim())};
  net.Reserve(batch);
  const ConstMatrixView out = net.Forward(t, theta.data(), ConstMatrixView(x.data(), n, batch));
  r.y = Eigen::Map<const Vector>(out.data(), n * batch);
  net.Backward(t, theta.data(), ConstMatrixView(x.data(), n, batch),
               ConstMatrixView(y_bar.data(), n, batch), MatrixView(r.x_bar.data(), n, batch),
               r.theta_bar.data());
  return r;
}

// The field as separate layers in the given precision.
Sequential Layers(ImageShape grid, Index groups, int stages, Precision precision) {
  Sequential net;
  for (int s = 0; s < stages; ++s) {
    net.Add(std::make_unique<GroupNorm>(grid, groups));
    net.Add(std::make_unique<ActivationLayer>(Activation::kRelu, grid.size()));
    net.Add(std::make_unique<Conv2d>(grid, grid.channels, 3, 1, 1, true, precision));
  }
  net.Add(std::make_unique<GroupNorm>(grid, groups));
  return net;
}

// γ and β away from their initial 1 and 0, so that the test sees them.
Vector Parameters(const Sequential& net, std::mt19937& rng) {
  Vector theta(net.param_dim());
  net.Initialize(rng, theta.data());
  for (std::size_t i = 0; i < net.size(); ++i) {
    if (net.layer(i).name() != "group_norm") continue;
    const Index C = net.layer(i).param_dim() / 2;
    theta.segment(net.param_offset(i), 2 * C) += RandomVector(2 * C, rng, 0.3);
  }
  return theta;
}

double RelativeError(const Vector& approximate, const Vector& exact) {
  return (approximate - exact).norm() / exact.norm();
}

struct Case {
  ImageShape grid;
  Index groups;
  int stages;
  Index batch;
};

TEST_F(BlockedConvFieldTest, MatchesTheSeparateLayers) {
  const Index block = BlockedConvField::Block();
  const Case cases[] = {
      {{2 * block, 7, 7}, 2 * block, 2, 5},  // a group a channel (the ODE-Net's 32 / 32)
      {{2 * block, 5, 6}, 4, 2, 3},          // groups of block / 2 channels: lanes combined
      {{2 * block, 4, 3}, 1, 1, 4},          // one group over two blocks
      {{block, 6, 5}, 2, 3, 2},              // three stages
  };
  std::mt19937 rng(3);
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.grid.channels) + " channels, " + std::to_string(c.groups) +
                 " groups, " + std::to_string(c.stages) + " stages");
    BlockedConvField field(c.grid, c.groups, c.stages);
    Sequential exact = Layers(c.grid, c.groups, c.stages, Precision::kDouble);
    Sequential single = Layers(c.grid, c.groups, c.stages, Precision::kSingle);
    ASSERT_EQ(field.param_dim(), exact.param_dim());
    // The same initial draws as the separate layers.
    std::mt19937 a(9), b(9);
    Vector theta_field(field.param_dim()), theta_layers(exact.param_dim());
    field.Initialize(a, theta_field.data());
    exact.Initialize(b, theta_layers.data());
    EXPECT_EQ(theta_field, theta_layers);

    const Vector theta = Parameters(exact, rng);
    const Index n = c.grid.size();
    for (const Index batch : {c.batch, c.batch + 2, Index{1}}) {
      const double t = 0.37;
      const Vector x = RandomVector(n * batch, rng);
      const Vector y_bar = RandomVector(n * batch, rng);
      field.Reserve(batch);
      const Outputs got = RunPass(field, t, theta, x, y_bar, batch);
      const Outputs want = RunPass(exact, t, theta, x, y_bar, batch);
      const Outputs layered = RunPass(single, t, theta, x, y_bar, batch);
      // Float round-off (measured 1.5–3.1e-7 for each of the three).
      EXPECT_LT(RelativeError(got.y, want.y), 1e-6) << "batch " << batch;
      EXPECT_LT(RelativeError(got.x_bar, want.x_bar), 1e-6) << "batch " << batch;
      EXPECT_LT(RelativeError(got.theta_bar, want.theta_bar), 1e-6) << "batch " << batch;
      // As close to double as the separate layers in single precision are.
      EXPECT_LT(RelativeError(got.x_bar, want.x_bar),
                2.0 * RelativeError(layered.x_bar, want.x_bar));
      EXPECT_LT(RelativeError(got.theta_bar, want.theta_bar),
                2.0 * RelativeError(layered.theta_bar, want.theta_bar));
      // Each part of θ̄ (γ, β, the weights, the bias, the time channel's weights) on its own.
      for (std::size_t i = 0; i < exact.size(); ++i) {
        const Index at = exact.param_offset(i), size = exact.layer(i).param_dim();
        if (size == 0) continue;
        const Vector part = got.theta_bar.segment(at, size);
        EXPECT_LT(RelativeError(part, want.theta_bar.segment(at, size)), 5e-6)
            << "layer " << i << " (" << exact.layer(i).name() << "), batch " << batch;
      }
    }
  }
}

// A copy computes the same bits; a sample's output and x̄ do not depend on the other samples of
// the batch or on its place in it (the classifier re-makes fields for other batch sizes).
TEST_F(BlockedConvFieldTest, CopiesAndBatchesGiveTheSameBits) {
  const ImageShape grid{2 * BlockedConvField::Block(), 7, 7};
  BlockedConvField field(grid, grid.channels, 2);
  std::mt19937 rng(5);
  const Vector theta = Parameters(field.layers(), rng);
  const Index n = grid.size(), batch = 6;
  const Vector x = RandomVector(n * batch, rng), y_bar = RandomVector(n * batch, rng);
  field.Reserve(batch);
  const Outputs whole = RunPass(field, 0.5, theta, x, y_bar, batch);
  std::unique_ptr<Layer> copy = field.Clone();
  const Outputs again = RunPass(*copy, 0.5, theta, x, y_bar, batch);
  EXPECT_EQ(again.y, whole.y);
  EXPECT_EQ(again.x_bar, whole.x_bar);
  EXPECT_EQ(again.theta_bar, whole.theta_bar);
  // Samples 2 and 3 as a batch of their own.
  const Vector x_part = x.segment(2 * n, 2 * n), y_bar_part = y_bar.segment(2 * n, 2 * n);
  const Outputs part = RunPass(field, 0.5, theta, x_part, y_bar_part, 2);
  EXPECT_EQ(part.y, whole.y.segment(2 * n, 2 * n));
  EXPECT_EQ(part.x_bar, whole.x_bar.segment(2 * n, 2 * n));
}

TEST_F(BlockedConvFieldTest, RefusesWhatItCannotRun) {
  const Index block = BlockedConvField::Block();
  EXPECT_FALSE(BlockedConvField::Available(block + 4));
  EXPECT_TRUE(BlockedConvField::Available(2 * block));
  try {
    BlockedConvField field({block + 4, 5, 5}, 1, 2);
    FAIL() << "a channel count that is not a multiple of the block was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(block + 4) + " channels"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(BlockedConvField({2 * block, 5, 5}, 3, 2), InputError);  // 3 ∤ channels
  // The convolution's blocked mode: a block of 8 or 16 dividing both channel counts.
  ConvolutionGeometry geometry;
  geometry.in_channels = 2 * block;
  geometry.out_channels = block + 4;
  EXPECT_THROW(OneDnnConvolution(geometry, block), InputError);
  geometry.out_channels = 2 * block;
  EXPECT_THROW(OneDnnConvolution(geometry, 4), InputError);
  EXPECT_EQ(OneDnnConvolution(geometry, block).block(), block);
  setenv("DIFFEOFLOW_CONVOLUTION", "im2col", 1);
  EXPECT_FALSE(BlockedConvField::Available(2 * block));
}

}  // namespace
}  // namespace diffeoflow::flows
