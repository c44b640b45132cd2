#include "flows/conv.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "flows/kernels.h"
#include "solvers/errors.h"

namespace diffeoflow::flows {

namespace {

// The kernels for each precision, so that one body serves both.
void GatherInto(const double* source, const std::int32_t* index, double* y, Index n) {
  kernels::Gather(source, index, y, n);
}
void GatherInto(const double* source, const std::int32_t* index, float* y, Index n) {
  kernels::GatherSingle(source, index, y, n);
}
void ScatterAddFrom(const double* x, const std::int32_t* index, double* target, Index n) {
  kernels::ScatterAdd(x, index, target, n);
}
void ScatterAddFrom(const float* x, const std::int32_t* index, double* target, Index n) {
  kernels::ScatterAddSingle(x, index, target, n);
}
void GemmIn(bool ta, bool tb, Index m, Index n, Index k, const double* a, Index lda,
            const double* b, Index ldb, double beta, double* c, Index ldc) {
  kernels::Gemm(ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
}
void GemmIn(bool ta, bool tb, Index m, Index n, Index k, const float* a, Index lda, const float* b,
            Index ldb, float beta, float* c, Index ldc) {
  kernels::GemmSingle(ta, tb, m, n, k, 1.0F, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

std::string PrecisionName(Precision p) { return p == Precision::kSingle ? "single" : "double"; }

Precision ParsePrecision(const std::string& name, const std::string& argument) {
  if (name == "single") return Precision::kSingle;
  if (name == "double") return Precision::kDouble;
  throw InputError(argument + ": unknown precision '" + name + "' (expected single or double)");
}

template <typename Source>
void Conv2d::TapTable::Fill(Index kernel, ImageShape targets, Source source_of) {
  points = targets.pixels();
  source.resize(static_cast<std::size_t>(kernel * kernel * points));
  std::int32_t* entry = source.data();
  for (Index u = 0; u < kernel; ++u) {
    for (Index v = 0; v < kernel; ++v) {
      for (Index i = 0; i < targets.height; ++i) {
        for (Index j = 0; j < targets.width; ++j) *entry++ = source_of(u, v, i, j);
      }
    }
  }
}

Conv2d::Conv2d(ImageShape input, Index out_channels, Index kernel, Index stride, Index padding,
               bool concat_time, Precision precision)
    : in_(input),
      kernel_(kernel),
      stride_(stride),
      padding_(padding),
      concat_time_(concat_time),
      precision_(precision) {
  if (input.size() < 1 || out_channels < 1 || kernel < 1 || stride < 1 || padding < 0) {
    throw InputError("Conv2d: sizes must be positive (padding ≥ 0)");
  }
  out_.channels = out_channels;
  out_.height = (in_.height + 2 * padding - kernel) / stride + 1;
  out_.width = (in_.width + 2 * padding - kernel) / stride + 1;
  if (out_.height < 1 || out_.width < 1) throw InputError("Conv2d: kernel larger than the image");
  patch_ = in_channels_total() * kernel * kernel;
  // Source pixel (row, col) of an image of `width` columns, or −1 outside `height` × `width`.
  const auto offset = [](Index row, Index col, Index height, Index width) {
    const bool inside = row >= 0 && row < height && col >= 0 && col < width;
    return inside ? static_cast<std::int32_t>(row * width + col) : std::int32_t{-1};
  };
  im2col_.Fill(kernel, out_, [&](Index u, Index v, Index i, Index j) {
    return offset(stride * i - padding + u, stride * j - padding + v, in_.height, in_.width);
  });
  if (stride == 1) {
    adjoint_.Fill(kernel, in_, [&](Index u, Index v, Index i, Index j) {
      return offset(i + padding - u, j + padding - v, out_.height, out_.width);
    });
  }
  constexpr Index kChunkRows = 384;
  chunk_ = std::max<Index>(1, (kChunkRows + out_.pixels() - 1) / out_.pixels());
  const auto size = [&](auto& buffers) {
    buffers.patches.resize(chunk_ * out_.pixels(), patch_);
    buffers.y_chunk.resize(chunk_ * out_.pixels(), out_.channels);
    buffers.weights.resize(patch_ * out_.channels);
    buffers.weights_bar.resize(patch_ * out_.channels);
    if (stride == 1) {
      const Index taps = out_.channels * kernel * kernel;
      buffers.adjoint_patches.resize(chunk_ * in_.pixels(), taps);
      buffers.adjoint_weights.resize(taps, in_.channels);
      buffers.x_bar_chunk.resize(chunk_ * in_.pixels(), in_.channels);
    } else {
      buffers.patches_bar.resize(chunk_ * out_.pixels(), patch_);
    }
  };
  if (precision_ == Precision::kSingle && OneDnnConvolution::Selected(in_.channels)) {
    onednn_.emplace(ConvolutionGeometry{in_.channels, in_.height, in_.width, out_.channels,
                                        out_.height, out_.width, kernel, stride, padding,
                                        concat_time});
  } else if (precision_ == Precision::kSingle) {
    size(single_);
  } else {
    size(double_);
  }
}

void Conv2d::Initialize(std::mt19937& rng, double* theta) const {
  const double bound = 1.0 / std::sqrt(static_cast<double>(patch_));
  std::uniform_real_distribution<double> u(-bound, bound);
  for (Index i = 0; i < param_dim(); ++i) theta[i] = u(rng);
}

void Conv2d::Reserve(Index batch) {
  if (onednn_) onednn_->Reserve(batch);
}

template <typename T>
void Conv2d::Im2col(const double* x, Index count, double t, T* patches) const {
  const Index P = out_.pixels(), ld = chunk_ * P, taps = kernel_ * kernel_;
  for (Index c = 0; c < in_channels_total(); ++c) {
    const bool time = c == in_.channels;
    for (Index tap = 0; tap < taps; ++tap) {
      const std::int32_t* source = im2col_.of(tap);
      T* column = patches + (c * taps + tap) * ld;
      for (Index b = 0; b < count; ++b) {
        T* dst = column + b * P;
        if (time) {
          for (Index p = 0; p < P; ++p) dst[p] = source[p] >= 0 ? static_cast<T>(t) : T(0);
          continue;
        }
        GatherInto(x + b * in_.size() + c * in_.pixels(), source, dst, P);
      }
    }
  }
}

template <typename T>
void Conv2d::Col2im(Index count, const T* patches_bar, double* x_bar) const {
  const Index P = out_.pixels(), ld = chunk_ * P, taps = kernel_ * kernel_;
  std::fill(x_bar, x_bar + count * in_.size(), 0.0);
  for (Index c = 0; c < in_.channels; ++c) {
    for (Index tap = 0; tap < taps; ++tap) {
      const std::int32_t* source = im2col_.of(tap);
      const T* column = patches_bar + (c * taps + tap) * ld;
      for (Index b = 0; b < count; ++b) {
        ScatterAddFrom(column + b * P, source, x_bar + b * in_.size() + c * in_.pixels(), P);
      }
    }
  }
}

template <typename T>
void Conv2d::TransposedConvolution(Buffers<T>& buffers, ConstMatrixView y_bar, Index b0,
                                   Index count, MatrixView x_bar) const {
  const Index P = in_.pixels(), ld = buffers.adjoint_patches.rows(), taps = kernel_ * kernel_;
  for (Index o = 0; o < out_.channels; ++o) {
    for (Index tap = 0; tap < taps; ++tap) {
      T* column = buffers.adjoint_patches.data() + (o * taps + tap) * ld;
      for (Index b = 0; b < count; ++b) {
        GatherInto(y_bar.col(b0 + b).data() + o * out_.pixels(), adjoint_.of(tap),
                   column + b * P, P);
      }
    }
  }
  GemmIn(false, false, count * P, in_.channels, out_.channels * taps,
         buffers.adjoint_patches.data(), ld, buffers.adjoint_weights.data(),
         buffers.adjoint_weights.rows(), T(0), buffers.x_bar_chunk.data(), ld);
  for (Index b = 0; b < count; ++b) {
    double* xb = x_bar.col(b0 + b).data();
    for (Index c = 0; c < in_.channels; ++c) {
      Eigen::Map<Vector>(xb + c * P, P) =
          buffers.x_bar_chunk.col(c).segment(b * P, P).template cast<double>();
    }
  }
}

void Conv2d::Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) {
  if (onednn_) {
    onednn_->Forward(t, theta, x, y);
  } else if (precision_ == Precision::kSingle) {
    ForwardIn(single_, t, theta, x, y);
  } else {
    ForwardIn(double_, t, theta, x, y);
  }
}

void Conv2d::Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView /*y*/,
                      ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) {
  if (onednn_) {
    onednn_->Backward(t, theta, x, y_bar, x_bar, theta_bar);
  } else if (precision_ == Precision::kSingle) {
    BackwardIn(single_, t, theta, x, y_bar, x_bar, theta_bar);
  } else {
    BackwardIn(double_, t, theta, x, y_bar, x_bar, theta_bar);
  }
}

void Conv2d::ReserveTangents(Index /*batch*/) {
  linear_theta_.resize(param_dim());
  tangent_theta_bar_.resize(param_dim());
}

void Conv2d::Tangent(const double* theta, ConstMatrixView /*x*/, ConstMatrixView /*y*/,
                     ConstMatrixView x_dot, MatrixView y_dot) {
  // The convolution is linear in x: ẏ is the layer at t = 0 (no time channel) with no bias.
  const Index weights = out_.channels * patch_;
  linear_theta_.head(weights) = Eigen::Map<const Vector>(theta, weights);
  linear_theta_.tail(out_.channels).setZero();
  Forward(0.0, linear_theta_.data(), x_dot, y_dot);
}

void Conv2d::TangentBackward(double t, const double* theta, ConstMatrixView x, ConstMatrixView y,
                             ConstMatrixView x_dot, ConstMatrixView y_bar,
                             ConstMatrixView y_dot_bar, MatrixView x_bar, MatrixView x_dot_bar,
                             double* theta_bar) {
  Backward(t, theta, x, y, y_bar, x_bar, theta_bar);
  // ẏ = W ⋆ ẋ: its adjoint is the layer's at (0, ẋ, ẏ̄) — t = 0 leaves the time weights out —
  // without the bias.
  Backward(0.0, theta, x_dot, y, y_dot_bar, x_dot_bar, tangent_theta_bar_.data());
  tangent_theta_bar_.tail(out_.channels).setZero();
  Eigen::Map<Vector>(theta_bar, param_dim()) += tangent_theta_bar_;
}

template <typename T>
void Conv2d::ForwardIn(Buffers<T>& buffers, double t, const double* theta, ConstMatrixView x,
                       MatrixView y) {
  const Index P = out_.pixels(), C = out_.channels, ld = buffers.patches.rows();
  const double* bias = theta + C * patch_;
  buffers.weights = Eigen::Map<const Vector>(theta, C * patch_).cast<T>();
  for (Index b0 = 0; b0 < x.cols(); b0 += chunk_) {
    const Index count = std::min(chunk_, x.cols() - b0), rows = count * P;
    Im2col(x.col(b0).data(), count, t, buffers.patches.data());
    GemmIn(false, false, rows, C, patch_, buffers.patches.data(), ld, buffers.weights.data(),
           patch_, T(0), buffers.y_chunk.data(), ld);
    for (Index b = 0; b < count; ++b) {
      double* yb = y.col(b0 + b).data();
      for (Index o = 0; o < C; ++o) {
        Eigen::Map<Vector>(yb + o * P, P) =
            buffers.y_chunk.col(o).segment(b * P, P).template cast<double>().array() + bias[o];
      }
    }
  }
}

template <typename T>
void Conv2d::BackwardIn(Buffers<T>& buffers, double t, const double* theta, ConstMatrixView x,
                        ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) {
  const Index P = out_.pixels(), C = out_.channels, ld = buffers.patches.rows();
  Eigen::Map<Vector> weights_bar(theta_bar, C * patch_);
  weights_bar.setZero();
  double* bias_bar = theta_bar + C * patch_;
  Eigen::Map<Vector>(bias_bar, C).setZero();
  const Index taps = kernel_ * kernel_;
  if (stride_ != 1) {
    buffers.weights = Eigen::Map<const Vector>(theta, C * patch_).cast<T>();  // P̄ = Ȳᵀ W
  } else {
    // W̃[(o, tap), c] = W[o, c, tap]: the time channel's weights are not needed (t is no state).
    for (Index o = 0; o < C; ++o) {
      for (Index c = 0; c < in_.channels; ++c) {
        for (Index tap = 0; tap < taps; ++tap) {
          buffers.adjoint_weights(o * taps + tap, c) =
              static_cast<T>(theta[o * patch_ + c * taps + tap]);
        }
      }
    }
  }
  for (Index b0 = 0; b0 < x.cols(); b0 += chunk_) {
    const Index count = std::min(chunk_, x.cols() - b0), rows = count * P;
    Im2col(x.col(b0).data(), count, t, buffers.patches.data());
    for (Index b = 0; b < count; ++b) {
      const double* yb = y_bar.col(b0 + b).data();
      for (Index o = 0; o < C; ++o) {
        const Eigen::Map<const Vector> column(yb + o * P, P);
        bias_bar[o] += column.sum();
        buffers.y_chunk.col(o).segment(b * P, P) = column.cast<T>();
      }
    }
    // W̄ᵀ += Pᵀ Ȳᵀ: in double straight into θ̄; in float per chunk, then added in double.
    if constexpr (std::is_same_v<T, double>) {
      GemmIn(true, false, patch_, C, rows, buffers.patches.data(), ld, buffers.y_chunk.data(), ld,
             1.0, theta_bar, patch_);
    } else {
      GemmIn(true, false, patch_, C, rows, buffers.patches.data(), ld, buffers.y_chunk.data(), ld,
             T(0), buffers.weights_bar.data(), patch_);
      weights_bar += buffers.weights_bar.template cast<double>();
    }
    if (stride_ == 1) {
      TransposedConvolution(buffers, y_bar, b0, count, x_bar);
    } else {
      GemmIn(false, true, rows, patch_, C, buffers.y_chunk.data(), ld, buffers.weights.data(),
             patch_, T(0), buffers.patches_bar.data(), ld);
      Col2im(count, buffers.patches_bar.data(), x_bar.col(b0).data());
    }
  }
}

GroupNorm::GroupNorm(ImageShape shape, Index groups, double epsilon)
    : shape_(shape), groups_(groups), epsilon_(epsilon) {
  if (groups < 1 || shape.channels % groups != 0) {
    throw InputError("GroupNorm: " + std::to_string(shape.channels) +
                     " channels do not split into " + std::to_string(groups) + " groups");
  }
}

void GroupNorm::Initialize(std::mt19937& /*rng*/, double* theta) const {
  for (Index c = 0; c < shape_.channels; ++c) {
    theta[c] = 1.0;
    theta[shape_.channels + c] = 0.0;
  }
}

void GroupNorm::Reserve(Index batch) {
  mean_.resize(groups_, batch);
  inv_std_.resize(groups_, batch);
}

void GroupNorm::Forward(double /*t*/, const double* theta, ConstMatrixView x, MatrixView y) {
  if (mean_.cols() < x.cols()) Reserve(x.cols());
  const Index per_group = shape_.size() / groups_, P = shape_.pixels();
  const Index channels_per_group = shape_.channels / groups_;
  for (Index b = 0; b < x.cols(); ++b) {
    for (Index g = 0; g < groups_; ++g) {
      const Index c = g * channels_per_group;
      double statistics[2];
      kernels::GroupNormForward(x.col(b).data() + g * per_group, channels_per_group, P,
                                theta + c, theta + shape_.channels + c, epsilon_,
                                y.col(b).data() + g * per_group, statistics);
      mean_(g, b) = statistics[0];
      inv_std_(g, b) = statistics[1];
    }
  }
}

void GroupNorm::Backward(double /*t*/, const double* theta, ConstMatrixView x,
                         ConstMatrixView /*y*/, ConstMatrixView y_bar, MatrixView x_bar,
                         double* theta_bar) {
  const Index P = shape_.pixels(), C = shape_.channels;
  const Index channels_per_group = C / groups_, per_group = channels_per_group * P;
  Eigen::Map<Vector>(theta_bar, 2 * C).setZero();
  for (Index b = 0; b < x.cols(); ++b) {
    for (Index g = 0; g < groups_; ++g) {
      const Index c = g * channels_per_group, at = g * per_group;
      const double statistics[2] = {mean_(g, b), inv_std_(g, b)};
      kernels::GroupNormBackward(x.col(b).data() + at, y_bar.col(b).data() + at,
                                 channels_per_group, P, theta + c, statistics,
                                 x_bar.col(b).data() + at, theta_bar + c, theta_bar + C + c);
    }
  }
}

void GroupNorm::Tangent(const double* theta, ConstMatrixView x, ConstMatrixView /*y*/,
                        ConstMatrixView x_dot, MatrixView y_dot) {
  const Index P = shape_.pixels(), per_group = shape_.size() / groups_;
  const Index channels_per_group = shape_.channels / groups_;
  const double n = static_cast<double>(per_group);
  for (Index b = 0; b < x.cols(); ++b) {
    for (Index g = 0; g < groups_; ++g) {
      const double mean = mean_(g, b), inv_std = inv_std_(g, b);
      const Index at = g * per_group;
      const Eigen::Map<const Eigen::ArrayXd> xs(x.col(b).data() + at, per_group);
      const Eigen::Map<const Eigen::ArrayXd> xd(x_dot.col(b).data() + at, per_group);
      const double mean_xd = xd.sum() / n;
      const double m = ((xs - mean) * inv_std * xd).sum() / n;  // mean(x̂ ẋ)
      for (Index k = 0; k < channels_per_group; ++k) {
        const Index c = g * channels_per_group + k, o = at + k * P;
        const Eigen::Map<const Eigen::ArrayXd> xc(x.col(b).data() + o, P);
        const Eigen::Map<const Eigen::ArrayXd> xdc(x_dot.col(b).data() + o, P);
        Eigen::Map<Eigen::ArrayXd>(y_dot.col(b).data() + o, P) =
            (theta[c] * inv_std) * (xdc - mean_xd - (xc - mean) * (inv_std * m));
      }
    }
  }
}

void GroupNorm::TangentBackward(double /*t*/, const double* theta, ConstMatrixView x,
                                ConstMatrixView /*y*/, ConstMatrixView x_dot,
                                ConstMatrixView y_bar, ConstMatrixView y_dot_bar,
                                MatrixView x_bar, MatrixView x_dot_bar, double* theta_bar) {
  const Index P = shape_.pixels(), C = shape_.channels, per_group = shape_.size() / groups_;
  const Index channels_per_group = C / groups_;
  const double n = static_cast<double>(per_group);
  Eigen::Map<Vector>(theta_bar, 2 * C).setZero();
  using ConstArray = Eigen::Map<const Eigen::ArrayXd>;
  for (Index b = 0; b < x.cols(); ++b) {
    for (Index g = 0; g < groups_; ++g) {
      const double mean = mean_(g, b), s_inv = inv_std_(g, b);
      const Index at = g * per_group;
      const ConstArray xs(x.col(b).data() + at, per_group);
      const ConstArray xd(x_dot.col(b).data() + at, per_group);
      const double mean_xd = xd.sum() / n;
      const double m = ((xs - mean) * s_inv * xd).sum() / n;
      // Over the group, with P = γ ẏ̄ and ĝ = γ ȳ: Σ P, A = Σ P (ẋ − mean ẋ), B = Σ P x̂, and the
      // channels' γ̄ and β̄.
      double sum_p = 0.0, a = 0.0, bb = 0.0;
      for (Index k = 0; k < channels_per_group; ++k) {
        const Index c = g * channels_per_group + k, o = at + k * P;
        const ConstArray xc(x.col(b).data() + o, P), xdc(x_dot.col(b).data() + o, P);
        const ConstArray yb(y_bar.col(b).data() + o, P), ydb(y_dot_bar.col(b).data() + o, P);
        const auto x_hat = (xc - mean) * s_inv;
        const auto centred = xdc - mean_xd;
        theta_bar[c] += (yb * x_hat).sum() + s_inv * (ydb * (centred - x_hat * m)).sum();
        theta_bar[C + c] += yb.sum();
        sum_p += theta[c] * ydb.sum();
        a += theta[c] * (ydb * centred).sum();
        bb += theta[c] * (ydb * x_hat).sum();
      }
      // w = ĝ + q with q = −(B ẋ/N + m P)/s, kept in x̄; x̄ = J w + (m B − A)/(s² N) x̂ needs
      // mean w and mean(x̂ w).
      double sum_w = 0.0, sum_wx = 0.0;
      for (Index k = 0; k < channels_per_group; ++k) {
        const Index c = g * channels_per_group + k, o = at + k * P;
        const ConstArray xc(x.col(b).data() + o, P), xdc(x_dot.col(b).data() + o, P);
        const ConstArray yb(y_bar.col(b).data() + o, P), ydb(y_dot_bar.col(b).data() + o, P);
        Eigen::Map<Eigen::ArrayXd> w(x_bar.col(b).data() + o, P);
        w = theta[c] * yb - s_inv * ((bb / n) * xdc + (m * theta[c]) * ydb);
        sum_w += w.sum();
        sum_wx += (w * (xc - mean) * s_inv).sum();
      }
      const double extra = (m * bb - a) * s_inv * s_inv / n;
      for (Index k = 0; k < channels_per_group; ++k) {
        const Index c = g * channels_per_group + k, o = at + k * P;
        const ConstArray xc(x.col(b).data() + o, P), ydb(y_dot_bar.col(b).data() + o, P);
        const auto x_hat = (xc - mean) * s_inv;
        Eigen::Map<Eigen::ArrayXd> w(x_bar.col(b).data() + o, P);
        w = s_inv * (w - sum_w / n - x_hat * (sum_wx / n)) + extra * x_hat;
        Eigen::Map<Eigen::ArrayXd>(x_dot_bar.col(b).data() + o, P) =
            s_inv * (theta[c] * ydb - sum_p / n - x_hat * (bb / n));
      }
    }
  }
}

void GlobalAveragePool::Forward(double /*t*/, const double* /*theta*/, ConstMatrixView x,
                                MatrixView y) {
  const Index P = shape_.pixels();
  for (Index b = 0; b < x.cols(); ++b) {
    for (Index c = 0; c < shape_.channels; ++c) {
      y(c, b) = Eigen::Map<const Vector>(x.col(b).data() + c * P, P).mean();
    }
  }
}

void GlobalAveragePool::Backward(double /*t*/, const double* /*theta*/, ConstMatrixView x,
                                 ConstMatrixView /*y*/, ConstMatrixView y_bar, MatrixView x_bar,
                                 double* /*theta_bar*/) {
  const Index P = shape_.pixels();
  for (Index b = 0; b < x.cols(); ++b) {
    for (Index c = 0; c < shape_.channels; ++c) {
      Eigen::Map<Vector>(x_bar.col(b).data() + c * P, P).setConstant(y_bar(c, b) / P);
    }
  }
}

}  // namespace diffeoflow::flows
