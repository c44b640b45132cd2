// Image layers with hand-written VJPs (flows/layers.h conventions). One sample's features are its
// channels × height × width values (channel-major, rows contiguous), so a sample of C channels
// over an H × W grid is a column of C·H·W entries; for one sample that memory is the column-major
// (H·W) × C matrix the GEMMs below use.
//
// Conv2d (cross-correlation, as PyTorch): y[o, i, j] = b_o + Σ_{c, u, v} W[o, c, u, v]
//   x[c, s·i − p + u, s·j − p + v] (zero outside the image), by im2col + GEMM:
//   Yᵀ = P Wᵀ with the patch matrix P ((H'W') × (C·k·k)); VJP: W̄ᵀ = Pᵀ Ȳᵀ, b̄ = Σ Ȳ,
//   P̄ = Ȳᵀ W scattered back (col2im) into x̄ — or, for stride 1, x̄ directly as the convolution of
//   ȳ with the transposed kernel, x̄ᵀ = Q W̃ with Q the patch matrix of ȳ (taps (u, v) reading
//   ȳ[o, i + p − u, j + p − v]) and W̃[(o, u, v), c] = W[o, c, u, v]: a gather and a GEMM with a deep
//   inner dimension instead of a shallow GEMM and a scatter. The samples go through in chunks of a few (about
//   400 output pixels, so a chunk's patch matrix stays in the L2 cache): one GEMM a chunk, with
//   the patch rows of its samples stacked. With concat_time, an extra input channel holds t
//   everywhere (Chen et al. 2018, ConcatConv2d); θ = [W (C_out × C_in' × k × k), b (C_out)], the
//   layout of nn.Conv2d(C_in', C_out, k).
// GroupNorm (Wu & He 2018): per sample and group g of channels, x̂ = (x − μ_g)/√(σ_g² + ε),
//   y = γ_c x̂ + β_c; θ = [γ (C), β (C)];  x̄ = (ĝ − mean ĝ − x̂ mean(ĝ x̂)) / √(σ_g² + ε), ĝ = γ ȳ.
// GlobalAveragePool: y_c = mean over the grid of x_c; x̄ = ȳ_c / (H·W).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flows/conv_onednn.h"
#include "flows/layers.h"

namespace diffeoflow::flows {

// The arithmetic of a convolution. Inputs, outputs, θ and θ̄ stay double either way. kSingle runs
// the convolution in float on oneDNN (flows/conv_onednn.h; from 16 input channels on unless
// DIFFEOFLOW_CONVOLUTION says otherwise), or in float GEMMs here: the patch matrix, the weights and ȳ rounded to float (twice the flops a
// cycle, half the memory traffic), each chunk's weight gradient accumulated in float before it is
// added to θ̄ in double. Either agrees with kDouble to single-precision round-off (tested); the
// finite-difference tests use kDouble.
enum class Precision { kDouble, kSingle };
std::string PrecisionName(Precision p);
Precision ParsePrecision(const std::string& name, const std::string& argument = "--precision");

struct ImageShape {
  Index channels = 1, height = 1, width = 1;
  Index size() const { return channels * height * width; }
  Index pixels() const { return height * width; }
};

class Conv2d : public Layer {
 public:
  Conv2d(ImageShape input, Index out_channels, Index kernel, Index stride, Index padding,
         bool concat_time = false, Precision precision = Precision::kDouble);
  std::string name() const override { return concat_time_ ? "concat_conv2d" : "conv2d"; }
  Index input_size() const override { return in_.size(); }
  Index output_size() const override { return out_.size(); }
  Index param_dim() const override { return out_.channels * patch_ + out_.channels; }
  ImageShape output_shape() const { return out_; }
  Index in_channels_total() const { return in_.channels + concat_time_; }
  Index kernel() const { return kernel_; }
  Precision precision() const { return precision_; }
  // Whether the float convolution runs on oneDNN (OneDnnConvolution::Selected).
  bool on_onednn() const { return onednn_.has_value(); }
  void Initialize(std::mt19937& rng, double* theta) const override;
  void Reserve(Index batch) override;
  void Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) override;
  void Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) override;
  std::unique_ptr<Layer> Clone() const override { return std::make_unique<Conv2d>(*this); }
  // ẏ = W ⋆ ẋ (linear in x: no bias, no time channel); TangentBackward is Backward twice, at
  // (x, ȳ) and at (ẋ, ẏ̄), the second without its bias and time parts.
  bool has_tangents() const override { return true; }
  void ReserveTangents(Index batch) override;
  void Tangent(const double* theta, ConstMatrixView x, ConstMatrixView y, ConstMatrixView x_dot,
               MatrixView y_dot) override;
  void TangentBackward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                       ConstMatrixView x_dot, ConstMatrixView y_bar, ConstMatrixView y_dot_bar,
                       MatrixView x_bar, MatrixView x_dot_bar, double* theta_bar) override;

 private:
  // Where each entry of a patch column comes from: for tap (u, v) and target point q, the offset
  // of its source in one channel, or −1 in the zero padding.
  struct TapTable {
    Index points = 0;                  // targets per tap
    std::vector<std::int32_t> source;  // taps × points
    const std::int32_t* of(Index tap) const { return source.data() + tap * points; }
    // source[tap (u, v), target (i, j)] = source_of(u, v, i, j) over the targets' grid.
    template <typename Source>
    void Fill(Index kernel, ImageShape targets, Source source_of);
  };

  // The GEMM buffers of one precision.
  template <typename T>
  struct Buffers {
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> patches;      // (chunk_ · H'W') × patch_
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> patches_bar;  // (chunk_ · H'W') × patch_
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> y_chunk;      // (chunk_ · H'W') × C_out
    Eigen::Matrix<T, Eigen::Dynamic, 1> weights, weights_bar;       // patch_ · C_out
    // Stride 1: the patch matrix of ȳ, (chunk_ · HW) × (C_out · k · k); W̃, (C_out · k · k) × C_in;
    // x̄ᵀ of the chunk, (chunk_ · HW) × C_in.
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> adjoint_patches, adjoint_weights, x_bar_chunk;
  };
  template <typename T>
  void ForwardIn(Buffers<T>& buffers, double t, const double* theta, ConstMatrixView x,
                 MatrixView y);
  template <typename T>
  void BackwardIn(Buffers<T>& buffers, double t, const double* theta, ConstMatrixView x,
                  ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar);
  // Patch rows of samples x[0..count) (count ≤ chunk_) into `patches`, sample-major.
  template <typename T>
  void Im2col(const double* x, Index count, double t, T* patches) const;
  // Adds the patch-matrix adjoint rows of `count` samples back into x_bar (overwritten).
  template <typename T>
  void Col2im(Index count, const T* patches_bar, double* x_bar) const;
  // Stride 1: x̄ of samples [b0, b0 + count) by the transposed convolution of ȳ.
  template <typename T>
  void TransposedConvolution(Buffers<T>& buffers, ConstMatrixView y_bar, Index b0, Index count,
                             MatrixView x_bar) const;

  ImageShape in_, out_;
  Index kernel_, stride_, padding_;
  bool concat_time_;
  Precision precision_;
  Index patch_;        // C_in' · k · k
  Index chunk_;        // samples per GEMM
  // For tap (u, v) and output pixel (i, j): the input pixel s·(i, j) − p + (u, v).
  TapTable im2col_;
  // Stride 1, for tap (u, v) and input pixel (i, j): the output pixel (i + p − u, j + p − v) of ȳ.
  // Empty for strided layers.
  TapTable adjoint_;
  Buffers<double> double_;  // sized when precision_ is kDouble
  Buffers<float> single_;   // sized when precision_ is kSingle on the im2col path
  std::optional<OneDnnConvolution> onednn_;  // set when kSingle runs on oneDNN
  Vector linear_theta_, tangent_theta_bar_;  // θ with a zero bias; the tangent's part of θ̄
};

class GroupNorm : public Layer {
 public:
  GroupNorm(ImageShape shape, Index groups, double epsilon = 1e-5);
  std::string name() const override { return "group_norm"; }
  Index input_size() const override { return shape_.size(); }
  Index output_size() const override { return shape_.size(); }
  Index param_dim() const override { return 2 * shape_.channels; }
  void Initialize(std::mt19937& rng, double* theta) const override;  // γ = 1, β = 0
  void Reserve(Index batch) override;
  void Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) override;
  void Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) override;
  std::unique_ptr<Layer> Clone() const override { return std::make_unique<GroupNorm>(*this); }
  // With s = √(σ_g² + ε), m = mean(x̂ ẋ) and J = (I − 11ᵀ/N − x̂x̂ᵀ/N)/s the (symmetric) Jacobian
  // of x̂ over a group of N entries: ẏ = γ J ẋ = γ (ẋ − mean ẋ − x̂ m)/s. Its adjoint, with
  // P = γ ẏ̄, A = Σ P (ẋ − mean ẋ), B = Σ P x̂ and q = −(B ẋ/N + m P)/s:
  //   ẋ̄ = J P,  x̄ = J (γ ȳ + q) + (m B − A)/(s² N) x̂,
  //   γ̄ = Σ (ȳ x̂ + ẏ̄ (ẋ − mean ẋ − x̂ m)/s),  β̄ = Σ ȳ  (sums over a channel's pixels).
  bool has_tangents() const override { return true; }
  void Tangent(const double* theta, ConstMatrixView x, ConstMatrixView y, ConstMatrixView x_dot,
               MatrixView y_dot) override;
  void TangentBackward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                       ConstMatrixView x_dot, ConstMatrixView y_bar, ConstMatrixView y_dot_bar,
                       MatrixView x_bar, MatrixView x_dot_bar, double* theta_bar) override;

 private:
  ImageShape shape_;
  Index groups_;
  double epsilon_;
  Matrix mean_, inv_std_;  // groups × batch, from the last Forward
};

class GlobalAveragePool : public Layer {
 public:
  explicit GlobalAveragePool(ImageShape shape) : shape_(shape) {}
  std::string name() const override { return "global_average_pool"; }
  Index input_size() const override { return shape_.size(); }
  Index output_size() const override { return shape_.channels; }
  void Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) override;
  void Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) override;
  std::unique_ptr<Layer> Clone() const override {
    return std::make_unique<GlobalAveragePool>(*this);
  }

 private:
  ImageShape shape_;
};

}  // namespace diffeoflow::flows
