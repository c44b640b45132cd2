// The single-precision Conv2d (flows/conv.h) on oneDNN (the library PyTorch's CPU convolutions
// use): forward, backward-data and backward-weights primitives in f32, in the memory layouts oneDNN
// prefers (blocked, e.g. nChw16c on AVX-512), created once per batch size and reused.
//
// States, θ and θ̄ stay double (flows/layers.h); a call converts x (or ȳ) to float straight into
// the primitive's layout, and the outputs back, so no oneDNN reorder runs on activations. In the
// blocked mode (the second constructor) the caller keeps its activations in float in one blocked
// layout and the calls read and write them as they are (flows/conv_field.h).
//
// The time channel of ConcatConv2d (Chen et al. 2018) is not given to oneDNN as a constant input
// channel: its contribution is t·M with M[o, i, j] = Σ over the taps (u, v) that land inside the
// image of W[o, C_in, u, v] (zero padding makes M differ near the border), added in double with
// the bias while the output is converted. This keeps the convolution's input at C_in channels (32,
// two AVX-512 blocks, instead of 33 padded to 48) and computes no x̄ for t. Its weight gradient is
// W̄[o, C_in, u, v] = t Σ_{(i, j) inside} S[o, i, j] with S = Σ_b ȳ, and b̄_o = Σ_{i, j} S[o, i, j].
//
// oneDNN is built on OpenMP; a call runs on the calling thread only (the batch is already split
// over threads by flows/field.h and the classifier). oneDNN has no f64 convolution on CPU: the
// double path stays the im2col one of conv.cc.
#pragma once

#include <memory>
#include <vector>

#include "flows/layers.h"

namespace diffeoflow::flows {

// The geometry of one convolution: input C_in × H × W, output C_out × H' × W', k × k kernel.
struct ConvolutionGeometry {
  Index in_channels = 1, in_height = 1, in_width = 1;
  Index out_channels = 1, out_height = 1, out_width = 1;
  Index kernel = 1, stride = 1, padding = 0;
  bool concat_time = false;
};

class OneDnnConvolution {
 public:
  // Whether Conv2d in single precision takes oneDNN for a layer of `in_channels` input channels
  // (without the time channel), from the environment variable DIFFEOFLOW_CONVOLUTION:
  //   unset, "" or "auto": oneDNN from kMinChannels input channels on, im2col below (measured by
  //     bench/conv_layer.cc: oneDNN 1.4–2× faster at 32 channels, 3–5× slower at 1, where its
  //     backward-data pads one channel to a 16-wide block);
  //   "onednn": oneDNN for every layer;  "im2col": the hand-written path for every layer.
  // Throws InputError naming the variable for any other value.
  static constexpr Index kMinChannels = 16;
  static bool Selected(Index in_channels);

  explicit OneDnnConvolution(const ConvolutionGeometry& geometry);
  // For a caller that keeps its activations in float in one channel-blocked layout, nChw8c or
  // nChw16c (`block` = 8 or 16; flows/conv_field.h): every activation tensor of the three
  // primitives is in that layout, and ForwardBlocked / BackwardBlocked read and write the
  // caller's tensors (batch × C/block × H × W × block floats; the channel counts must be
  // multiples of `block`) with no conversion. Forward and Backward are not for this object.
  OneDnnConvolution(const ConvolutionGeometry& geometry, Index block);
  // A copy has the same geometry and builds its own primitives and buffers (one per thread shard).
  OneDnnConvolution(const OneDnnConvolution& other);
  OneDnnConvolution& operator=(const OneDnnConvolution& other);
  ~OneDnnConvolution();

  // Creates the primitives and buffers for batches of `batch` samples (other sizes get theirs on
  // first use).
  void Reserve(Index batch);
  // θ = [W (C_out × C_in' × k × k), b (C_out)] as in Conv2d.
  void Forward(double t, const double* theta, ConstMatrixView x, MatrixView y);
  void Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y_bar,
                MatrixView x_bar, double* theta_bar);
  // The blocked calls (the second constructor): dst = W ⋆ src + b + t M for `batch` samples, and
  // after it, from the adjoint diff_dst of dst: diff_src and θ̄ (both overwritten).
  void ForwardBlocked(double t, const double* theta, const float* src, Index batch, float* dst);
  void BackwardBlocked(double t, const double* theta, const float* src, const float* diff_dst,
                       Index batch, float* diff_src, double* theta_bar);
  Index block() const { return block_; }  // 0: the layouts oneDNN prefers

 private:
  struct Plan;  // the primitives, memories and scratchpad of one batch size
  Plan& PlanFor(Index batch);
  // The float weights of θ without the time channel, into the plan's weights memories.
  void LoadWeights(Plan& plan, const double* theta);
  // Points the plan's activation memories at buffers_.
  void Bind(Plan& plan);
  // The plan of `batch`, bound, with θ's weights loaded.
  Plan& Prepare(Index batch, const double* theta);

  // shift_ (b + t M) into shift_blocked_, in the blocked layout of one sample's output.
  void ComputeShift(double t, const double* theta);
  // θ̄ from the weight gradient of the last backward primitive and S = Σ_b ȳ in shift_.
  void WriteThetaBar(double t, const Plan& plan, double* theta_bar) const;

  ConvolutionGeometry geometry_;
  Index block_ = 0;
  std::vector<std::unique_ptr<Plan>> plans_;
  // The activation tensors, shared by all plans (sized for the largest): a Forward needs its input
  // and output, a Backward its input, x̄ and ȳ (twice when its two primitives want ȳ in different
  // layouts), so the forward's output and the backward's x̄ share a buffer.
  using Buffer = Eigen::Matrix<float, Eigen::Dynamic, 1>;
  enum Role { kInput, kOutput, kOutputAdjoint, kSecondOutputAdjoint, kRoles };
  Buffer buffers_[kRoles];
  // inside_[tap · H'W' + p]: tap (u, v) reads a pixel inside the image at output pixel p.
  std::vector<unsigned char> inside_;
  Matrix shift_;  // (H'W') × C_out: b_o + t M[o, p]; in Backward, S = Σ_b ȳ
  // The blocked path: shift_ in the layout of one sample's output, and S = Σ_b ȳ in that layout.
  Eigen::Matrix<float, Eigen::Dynamic, 1> shift_blocked_;
  Vector sum_blocked_;
  // The batch whose float copy the input buffer holds, as the last Forward left it (null once a
  // Backward put another input there). A Backward with that x — the layer contract: Backward
  // follows the Forward of its x (flows/layers.h) — reads it instead of converting x again.
  const double* input_held_ = nullptr;
  Index input_held_batch_ = 0;
};

}  // namespace diffeoflow::flows
