// The vector field of the convolutional ODE-Net (flows/classifier.h) in single precision as one
// layer, its activations kept in float in oneDNN's channel-blocked layout from the first layer to
// the last:
//
//   x → [GroupNorm → ReLU → ConcatConv2d (3 × 3, stride 1, padding 1)] × stages → GroupNorm → y
//
// The same function and the same θ layout as the Sequential of those layers in
// Precision::kSingle (GroupNorm γ, β; Conv2d W, b; …; GroupNorm γ, β): it differs from it by float
// round-off only (tested). The Sequential converts every convolution's input and output between
// double and oneDNN's layout and runs GroupNorm and ReLU on doubles; here the state is converted
// once on the way in and once on the way out (ȳ and x̄ once each in Backward), GroupNorm and ReLU
// run in one pass on floats in the blocked layout (kernels::BlockedGroupNorm*, statistics and sums
// in double), and the convolutions read and write those tensors directly
// (OneDnnConvolution::ForwardBlocked). The block is 16 channels with AVX-512 and 8 otherwise.
//
// Forward keeps every stage's GroupNorm input and ReLU output and the statistics for Backward
// (flows/layers.h contract: Backward follows the last Forward). No tangents: the Jacobian-norm
// regulariser uses the Sequential.
#pragma once

#include <vector>

#include "flows/conv.h"
#include "flows/network.h"

namespace diffeoflow::flows {

class BlockedConvField : public Layer {
 public:
  // The channel block of the layout on this CPU (16 with AVX-512, else 8).
  static Index Block();
  // Whether a field of `channels` channels can run here: single-precision convolutions of that
  // width take oneDNN (OneDnnConvolution::Selected) and `channels` is a multiple of Block().
  static bool Available(Index channels);

  // `grid`: channels × height × width of the state; `groups` divides the channels. Throws
  // InputError when !Available(grid.channels) or the groups do not divide the channels.
  BlockedConvField(ImageShape grid, Index groups, int stages);
  std::string name() const override { return "blocked_conv_field"; }
  Index input_size() const override { return grid_.size(); }
  Index output_size() const override { return grid_.size(); }
  Index param_dim() const override { return layers_.param_dim(); }
  // As the Sequential of the separate layers (the same draws from rng).
  void Initialize(std::mt19937& rng, double* theta) const override;
  void Reserve(Index batch) override;
  void Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) override;
  void Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) override;
  std::unique_ptr<Layer> Clone() const override {
    return std::make_unique<BlockedConvField>(*this);
  }
  // The same field as separate layers (GroupNorm, ReLU, Conv2d in Precision::kSingle).
  const Sequential& layers() const { return layers_; }

 private:
  using FloatBuffer = Eigen::Matrix<float, Eigen::Dynamic, 1>;
  // Where stage s's GroupNorm and convolution (s < stages) and the last GroupNorm (s = stages)
  // read their θ.
  Index NormOffset(int s) const;
  Index ConvOffset(int s) const { return NormOffset(s) + 2 * grid_.channels; }
  double* Statistics(int s, Index sample) {
    return statistics_.data() + (s * reserved_ + sample) * 2 * groups_;
  }

  ImageShape grid_;
  Index groups_;
  int stages_;
  Index block_;
  Sequential layers_;
  std::vector<OneDnnConvolution> convolutions_;
  Index reserved_ = 0;
  // inputs_[s]: stage s's GroupNorm input (inputs_[0] the state, inputs_[s + 1] convolution s's
  // output, inputs_[stages] the last GroupNorm's); relu_[s]: stage s's ReLU output, its
  // convolution's input; each batch × channels × pixels floats in the blocked layout.
  std::vector<FloatBuffer> inputs_, relu_;
  FloatBuffer adjoint_[2];  // ping-pong adjoints in Backward; adjoint_[0] the output in Forward
  Vector statistics_;       // (stages + 1) × batch × groups × (μ, 1/σ)
  Vector sums_;             // 2 · groups: BlockedGroupNormBackward's workspace
};

}  // namespace diffeoflow::flows
