#include "flows/conv.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "flows/kernels.h"
#include "solvers/errors.h"

namespace diffeoflow::flows {

Conv2d::Conv2d(ImageShape input, Index out_channels, Index kernel, Index stride, Index padding,
               bool concat_time)
    : in_(input), kernel_(kernel), stride_(stride), padding_(padding), concat_time_(concat_time) {
  if (input.size() < 1 || out_channels < 1 || kernel < 1 || stride < 1 || padding < 0) {
    throw InputError("Conv2d: sizes must be positive (padding ≥ 0)");
  }
  out_.channels = out_channels;
  out_.height = (in_.height + 2 * padding - kernel) / stride + 1;
  out_.width = (in_.width + 2 * padding - kernel) / stride + 1;
  if (out_.height < 1 || out_.width < 1) throw InputError("Conv2d: kernel larger than the image");
  patch_ = in_channels_total() * kernel * kernel;
  source_.resize(static_cast<std::size_t>(kernel * kernel * out_.pixels()));
  for (Index u = 0; u < kernel; ++u) {
    for (Index v = 0; v < kernel; ++v) {
      for (Index i = 0; i < out_.height; ++i) {
        for (Index j = 0; j < out_.width; ++j) {
          const Index row = stride * i - padding + u, col = stride * j - padding + v;
          const bool inside = row >= 0 && row < in_.height && col >= 0 && col < in_.width;
          source_[static_cast<std::size_t>(((u * kernel + v) * out_.height + i) * out_.width + j)] =
              inside ? static_cast<std::int32_t>(row * in_.width + col) : -1;
        }
      }
    }
  }
  constexpr Index kChunkRows = 384;
  chunk_ = std::max<Index>(1, (kChunkRows + out_.pixels() - 1) / out_.pixels());
  patches_.resize(chunk_ * out_.pixels(), patch_);
  patches_bar_.resize(chunk_ * out_.pixels(), patch_);
  y_chunk_.resize(chunk_ * out_.pixels(), out_.channels);
}

void Conv2d::Initialize(std::mt19937& rng, double* theta) const {
  const double bound = 1.0 / std::sqrt(static_cast<double>(patch_));
  std::uniform_real_distribution<double> u(-bound, bound);
  for (Index i = 0; i < param_dim(); ++i) theta[i] = u(rng);
}

void Conv2d::Reserve(Index /*batch*/) {}

void Conv2d::Im2col(const double* x, Index count, double t) {
  const Index P = out_.pixels(), ld = patches_.rows(), taps = kernel_ * kernel_;
  for (Index c = 0; c < in_channels_total(); ++c) {
    const bool time = c == in_.channels;
    for (Index tap = 0; tap < taps; ++tap) {
      const std::int32_t* source = source_.data() + tap * P;
      double* column = patches_.data() + (c * taps + tap) * ld;
      for (Index b = 0; b < count; ++b) {
        double* dst = column + b * P;
        if (time) {
          for (Index p = 0; p < P; ++p) dst[p] = source[p] >= 0 ? t : 0.0;
          continue;
        }
        kernels::Gather(x + b * in_.size() + c * in_.pixels(), source, dst, P);
      }
    }
  }
}

void Conv2d::Col2im(Index count, double* x_bar) const {
  const Index P = out_.pixels(), ld = patches_bar_.rows(), taps = kernel_ * kernel_;
  std::fill(x_bar, x_bar + count * in_.size(), 0.0);
  for (Index c = 0; c < in_.channels; ++c) {
    for (Index tap = 0; tap < taps; ++tap) {
      const std::int32_t* source = source_.data() + tap * P;
      const double* column = patches_bar_.data() + (c * taps + tap) * ld;
      for (Index b = 0; b < count; ++b) {
        kernels::ScatterAdd(column + b * P, source, x_bar + b * in_.size() + c * in_.pixels(), P);
      }
    }
  }
}

void Conv2d::Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) {
  const Index P = out_.pixels(), C = out_.channels, ld = patches_.rows();
  const double* bias = theta + C * patch_;
  for (Index b0 = 0; b0 < x.cols(); b0 += chunk_) {
    const Index count = std::min(chunk_, x.cols() - b0), rows = count * P;
    Im2col(x.col(b0).data(), count, t);
    kernels::Gemm(false, false, rows, C, patch_, 1.0, patches_.data(), ld, theta, patch_, 0.0,
                  y_chunk_.data(), ld);
    for (Index b = 0; b < count; ++b) {
      double* yb = y.col(b0 + b).data();
      for (Index o = 0; o < C; ++o) {
        Eigen::Map<Vector>(yb + o * P, P) =
            y_chunk_.col(o).segment(b * P, P).array() + bias[o];
      }
    }
  }
}

void Conv2d::Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView /*y*/,
                      ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) {
  const Index P = out_.pixels(), C = out_.channels, ld = patches_.rows();
  Eigen::Map<Vector>(theta_bar, param_dim()).setZero();
  double* bias_bar = theta_bar + C * patch_;
  for (Index b0 = 0; b0 < x.cols(); b0 += chunk_) {
    const Index count = std::min(chunk_, x.cols() - b0), rows = count * P;
    Im2col(x.col(b0).data(), count, t);
    for (Index b = 0; b < count; ++b) {
      const double* yb = y_bar.col(b0 + b).data();
      for (Index o = 0; o < C; ++o) {
        y_chunk_.col(o).segment(b * P, P) = Eigen::Map<const Vector>(yb + o * P, P);
      }
    }
    kernels::Gemm(true, false, patch_, C, rows, 1.0, patches_.data(), ld, y_chunk_.data(), ld,
                  1.0, theta_bar, patch_);
    for (Index o = 0; o < C; ++o) bias_bar[o] += y_chunk_.col(o).head(rows).sum();
    kernels::Gemm(false, true, rows, patch_, C, 1.0, y_chunk_.data(), ld, theta, patch_, 0.0,
                  patches_bar_.data(), ld);
    Col2im(count, x_bar.col(b0).data());
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
      Eigen::Map<const Vector> xs(x.col(b).data() + g * per_group, per_group);
      const double mean = xs.mean();
      const double var = (xs.array() - mean).square().mean();
      const double inv_std = 1.0 / std::sqrt(var + epsilon_);
      mean_(g, b) = mean;
      inv_std_(g, b) = inv_std;
      for (Index k = 0; k < channels_per_group; ++k) {
        const Index c = g * channels_per_group + k;
        const double gamma = theta[c], beta = theta[shape_.channels + c];
        Eigen::Map<const Vector> xc(x.col(b).data() + c * P, P);
        Eigen::Map<Vector> yc(y.col(b).data() + c * P, P);
        yc = ((xc.array() - mean) * (inv_std * gamma) + beta).matrix();
      }
    }
  }
}

void GroupNorm::Backward(double /*t*/, const double* theta, ConstMatrixView x,
                         ConstMatrixView /*y*/, ConstMatrixView y_bar, MatrixView x_bar,
                         double* theta_bar) {
  const Index P = shape_.pixels(), C = shape_.channels;
  const Index channels_per_group = C / groups_;
  const double n = static_cast<double>(channels_per_group * P);
  Eigen::Map<Vector>(theta_bar, 2 * C).setZero();
  for (Index b = 0; b < x.cols(); ++b) {
    for (Index g = 0; g < groups_; ++g) {
      const double mean = mean_(g, b), inv_std = inv_std_(g, b);
      // Σ ĝ and Σ ĝ x̂ over the group.
      double sum_g = 0.0, sum_gx = 0.0;
      for (Index k = 0; k < channels_per_group; ++k) {
        const Index c = g * channels_per_group + k;
        Eigen::Map<const Vector> xc(x.col(b).data() + c * P, P);
        Eigen::Map<const Vector> yb(y_bar.col(b).data() + c * P, P);
        const auto x_hat = (xc.array() - mean) * inv_std;
        theta_bar[c] += (yb.array() * x_hat).sum();
        theta_bar[C + c] += yb.sum();
        sum_g += theta[c] * yb.sum();
        sum_gx += theta[c] * (yb.array() * x_hat).sum();
      }
      for (Index k = 0; k < channels_per_group; ++k) {
        const Index c = g * channels_per_group + k;
        Eigen::Map<const Vector> xc(x.col(b).data() + c * P, P);
        Eigen::Map<const Vector> yb(y_bar.col(b).data() + c * P, P);
        Eigen::Map<Vector> xb(x_bar.col(b).data() + c * P, P);
        const auto x_hat = (xc.array() - mean) * inv_std;
        xb = (inv_std * (theta[c] * yb.array() - sum_g / n - x_hat * (sum_gx / n))).matrix();
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
