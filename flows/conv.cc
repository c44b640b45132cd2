#include "flows/conv.h"

#include <cmath>

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
  patches_.resize(out_.pixels(), patch_);
  patches_bar_.resize(out_.pixels(), patch_);
}

void Conv2d::Initialize(std::mt19937& rng, double* theta) const {
  const double bound = 1.0 / std::sqrt(static_cast<double>(patch_));
  std::uniform_real_distribution<double> u(-bound, bound);
  for (Index i = 0; i < param_dim(); ++i) theta[i] = u(rng);
}

void Conv2d::Reserve(Index /*batch*/) {}

void Conv2d::Im2col(const double* x, double t, double* patches) const {
  const Index P = out_.pixels();
  for (Index c = 0; c < in_channels_total(); ++c) {
    const bool time = c == in_.channels;
    for (Index u = 0; u < kernel_; ++u) {
      for (Index v = 0; v < kernel_; ++v) {
        double* column = patches + ((c * kernel_ + u) * kernel_ + v) * P;
        for (Index i = 0; i < out_.height; ++i) {
          const Index row = stride_ * i - padding_ + u;
          const bool row_in = row >= 0 && row < in_.height;
          for (Index j = 0; j < out_.width; ++j) {
            const Index col = stride_ * j - padding_ + v;
            const bool in = row_in && col >= 0 && col < in_.width;
            column[i * out_.width + j] =
                !in ? 0.0 : time ? t : x[(c * in_.height + row) * in_.width + col];
          }
        }
      }
    }
  }
}

void Conv2d::Col2im(const double* patches, double* x_bar) const {
  const Index P = out_.pixels();
  for (Index k = 0; k < in_.size(); ++k) x_bar[k] = 0.0;
  for (Index c = 0; c < in_.channels; ++c) {
    for (Index u = 0; u < kernel_; ++u) {
      for (Index v = 0; v < kernel_; ++v) {
        const double* column = patches + ((c * kernel_ + u) * kernel_ + v) * P;
        for (Index i = 0; i < out_.height; ++i) {
          const Index row = stride_ * i - padding_ + u;
          if (row < 0 || row >= in_.height) continue;
          for (Index j = 0; j < out_.width; ++j) {
            const Index col = stride_ * j - padding_ + v;
            if (col < 0 || col >= in_.width) continue;
            x_bar[(c * in_.height + row) * in_.width + col] += column[i * out_.width + j];
          }
        }
      }
    }
  }
}

void Conv2d::Forward(double t, const double* theta, ConstMatrixView x, MatrixView y) {
  const Index P = out_.pixels(), C = out_.channels;
  const double* bias = theta + C * patch_;
  for (Index b = 0; b < x.cols(); ++b) {
    Im2col(x.col(b).data(), t, patches_.data());
    double* yb = y.col(b).data();
    kernels::Gemm(false, false, P, C, patch_, 1.0, patches_.data(), P, theta, patch_, 0.0, yb, P);
    for (Index o = 0; o < C; ++o) {
      Eigen::Map<Vector>(yb + o * P, P).array() += bias[o];
    }
  }
}

void Conv2d::Backward(double t, const double* theta, ConstMatrixView x, ConstMatrixView /*y*/,
                      ConstMatrixView y_bar, MatrixView x_bar, double* theta_bar) {
  const Index P = out_.pixels(), C = out_.channels;
  Eigen::Map<Vector>(theta_bar, param_dim()).setZero();
  double* bias_bar = theta_bar + C * patch_;
  for (Index b = 0; b < x.cols(); ++b) {
    Im2col(x.col(b).data(), t, patches_.data());
    const double* yb = y_bar.col(b).data();
    kernels::Gemm(true, false, patch_, C, P, 1.0, patches_.data(), P, yb, P, 1.0, theta_bar,
                  patch_);
    for (Index o = 0; o < C; ++o) bias_bar[o] += Eigen::Map<const Vector>(yb + o * P, P).sum();
    kernels::Gemm(false, true, P, patch_, C, 1.0, yb, P, theta, patch_, 0.0, patches_bar_.data(),
                  P);
    Col2im(patches_bar_.data(), x_bar.col(b).data());
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
