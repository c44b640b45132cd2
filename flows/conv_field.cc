#include "flows/conv_field.h"

#include <string>
#include <utility>

#include "flows/kernels.h"
#include "solvers/errors.h"

namespace diffeoflow::flows {

namespace {

constexpr double kEpsilon = 1e-5;  // GroupNorm's default (flows/conv.h)

// Sample by sample, the channel-major doubles of a batch (features × batch) into the blocked
// float tensor, and back.
void Pack(ConstMatrixView x, Index channels, Index pixels, Index block, float* tensor) {
  const Index features = channels * pixels;
  for (Index n = 0; n < x.cols(); ++n) {
    for (Index c0 = 0; c0 < channels; c0 += block) {
      kernels::PackChannels(x.col(n).data() + c0 * pixels, block, pixels, block,
                            tensor + n * features + c0 * pixels);
    }
  }
}

void Unpack(const float* tensor, Index channels, Index pixels, Index block, MatrixView x) {
  const Index features = channels * pixels;
  for (Index n = 0; n < x.cols(); ++n) {
    for (Index c0 = 0; c0 < channels; c0 += block) {
      kernels::UnpackChannels(tensor + n * features + c0 * pixels, block, pixels, block,
                              x.col(n).data() + c0 * pixels);
    }
  }
}

}  // namespace

Index BlockedConvField::Block() { return kernels::InstructionSet() == "avx512" ? 16 : 8; }

bool BlockedConvField::Available(Index channels) {
  return channels > 0 && channels % Block() == 0 && OneDnnConvolution::Selected(channels);
}

BlockedConvField::BlockedConvField(ImageShape grid, Index groups, int stages)
    : grid_(grid), groups_(groups), stages_(stages), block_(Block()) {
  const Index C = grid.channels;
  if (!Available(C)) {
    throw InputError("blocked convolutional field: " + std::to_string(C) +
                     " channels do not run blocked on oneDNN here (a multiple of " +
                     std::to_string(block_) + " on oneDNN is needed)");
  }
  if (groups <= 0 || C % groups != 0 || stages < 1) {
    throw InputError("blocked convolutional field: " + std::to_string(groups) +
                     " groups must divide " + std::to_string(C) + " channels, and stages (" +
                     std::to_string(stages) + ") must be at least 1");
  }
  ConvolutionGeometry geometry;
  geometry.in_channels = geometry.out_channels = C;
  geometry.in_height = geometry.out_height = grid.height;
  geometry.in_width = geometry.out_width = grid.width;
  geometry.kernel = 3;
  geometry.stride = 1;
  geometry.padding = 1;
  geometry.concat_time = true;
  for (int s = 0; s < stages; ++s) {
    layers_.Add(std::make_unique<GroupNorm>(grid, groups, kEpsilon));
    layers_.Add(std::make_unique<ActivationLayer>(Activation::kRelu, grid.size()));
    layers_.Add(std::make_unique<Conv2d>(grid, C, 3, 1, 1, /*concat_time=*/true,
                                         Precision::kSingle));
    convolutions_.emplace_back(geometry, block_);
  }
  layers_.Add(std::make_unique<GroupNorm>(grid, groups, kEpsilon));
  inputs_.resize(static_cast<std::size_t>(stages + 1));
  relu_.resize(static_cast<std::size_t>(stages));
  sums_.resize(2 * groups);
}

Index BlockedConvField::NormOffset(int s) const {
  return layers_.param_offset(static_cast<std::size_t>(3 * s));
}

void BlockedConvField::Initialize(std::mt19937& rng, double* theta) const {
  layers_.Initialize(rng, theta);
}

void BlockedConvField::Reserve(Index batch) {
  if (batch <= reserved_) return;
  const Index floats = batch * grid_.size();
  for (FloatBuffer& b : inputs_) b.resize(floats);
  for (FloatBuffer& b : relu_) b.resize(floats);
  for (FloatBuffer& b : adjoint_) b.resize(floats);
  statistics_.resize((stages_ + 1) * batch * 2 * groups_);
  reserved_ = batch;
  for (OneDnnConvolution& conv : convolutions_) conv.Reserve(batch);
}

void BlockedConvField::Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) {
  const Index B = x.cols(), C = grid_.channels, P = grid_.pixels(), F = grid_.size();
  Reserve(B);
  Pack(x, C, P, block_, inputs_[0].data());
  for (int s = 0; s <= stages_; ++s) {
    const double* gamma = theta + NormOffset(s);
    const bool last = s == stages_;
    float* out = last ? adjoint_[0].data() : relu_[static_cast<std::size_t>(s)].data();
    const float* in = inputs_[static_cast<std::size_t>(s)].data();
    for (Index n = 0; n < B; ++n) {
      kernels::BlockedGroupNormForward(in + n * F, C, P, block_, groups_, gamma, gamma + C,
                                       kEpsilon, /*relu=*/!last, out + n * F, Statistics(s, n));
    }
    if (last) break;
    convolutions_[static_cast<std::size_t>(s)].ForwardBlocked(
        t, theta + ConvOffset(s), out, B, inputs_[static_cast<std::size_t>(s + 1)].data());
  }
  Unpack(adjoint_[0].data(), C, P, block_, y);
}

void BlockedConvField::Backward(double t, const double* theta, ConstMatrixView /*x*/,
                                ConstMatrixView /*y*/, ConstMatrixView y_bar, MatrixView x_bar,
                                double* theta_bar) {
  const Index B = y_bar.cols(), C = grid_.channels, P = grid_.pixels(), F = grid_.size();
  Eigen::Map<Vector>(theta_bar, param_dim()).setZero();
  float* current = adjoint_[0].data();
  float* other = adjoint_[1].data();
  Pack(y_bar, C, P, block_, current);
  for (int s = stages_; s >= 0; --s) {
    const double* gamma = theta + NormOffset(s);
    double* gamma_bar = theta_bar + NormOffset(s);
    const float* in = inputs_[static_cast<std::size_t>(s)].data();
    const float* relu = s == stages_ ? nullptr : relu_[static_cast<std::size_t>(s)].data();
    if (s < stages_) {
      // current: the adjoint of convolution s's output; other: of its input (the ReLU output).
      convolutions_[static_cast<std::size_t>(s)].BackwardBlocked(
          t, theta + ConvOffset(s), relu, current, B, other, theta_bar + ConvOffset(s));
      std::swap(current, other);
    }
    for (Index n = 0; n < B; ++n) {
      kernels::BlockedGroupNormBackward(in + n * F, relu == nullptr ? nullptr : relu + n * F,
                                        current + n * F, C, P, block_, groups_, gamma,
                                        Statistics(s, n), current + n * F, gamma_bar,
                                        gamma_bar + C, sums_.data());
    }
  }
  Unpack(current, C, P, block_, x_bar);
}

}  // namespace diffeoflow::flows
