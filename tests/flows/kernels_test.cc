// The GEMM and activation kernels of every instruction set the CPU has, against plain references.
#include "flows/kernels.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "flows/kernels_isa.h"
#include "solvers/dynamics.h"
#include "tests/flows/test_util.h"

namespace diffeoflow::flows {
namespace {

using kernels::Index;

struct Variant {
  const char* name;
  bool available;
  decltype(&kernels::sse2::Gemm) gemm;
  decltype(&kernels::sse2::Tanh) tanh;
  decltype(&kernels::sse2::Sigmoid) sigmoid;
  decltype(&kernels::sse2::Softplus) softplus;
};

std::vector<Variant> Variants() {
  return {
      {"sse2", true, &kernels::sse2::Gemm, &kernels::sse2::Tanh, &kernels::sse2::Sigmoid,
       &kernels::sse2::Softplus},
      {"avx2", kernels::CpuHasAvx2(), &kernels::avx2::Gemm, &kernels::avx2::Tanh,
       &kernels::avx2::Sigmoid, &kernels::avx2::Softplus},
      {"avx512", kernels::CpuHasAvx512(), &kernels::avx512::Gemm, &kernels::avx512::Tanh,
       &kernels::avx512::Sigmoid, &kernels::avx512::Softplus},
      {"dispatch", true, &kernels::Gemm, &kernels::Tanh, &kernels::Sigmoid, &kernels::Softplus},
  };
}

TEST(Kernels, GemmMatchesNaiveProductForEveryTransposeAndStride) {
  std::mt19937 rng(3);
  const Index pad = 3;
  // Thin shapes (m or n ≤ 4) take the matrix–vector paths.
  const std::pair<Index, Index> shapes[] = {{7, 13}, {2, 13}, {7, 3}, {3, 2}};
  for (const auto& [m, n] : shapes) {
  for (const Variant& v : Variants()) {
    if (!v.available) continue;
    for (Index k : {1, 3, 5, 40}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        for (double beta : {0.0, 1.0, -0.5}) {
          const Index a_rows = ta ? k : m, a_cols = ta ? m : k;
          const Index b_rows = tb ? n : k, b_cols = tb ? k : n;
          const Index lda = a_rows + pad, ldb = b_rows + pad, ldc = m + pad;
          Vector a = testing::RandomVector(lda * a_cols, rng);
          Vector b = testing::RandomVector(ldb * b_cols, rng);
          Vector c = testing::RandomVector(ldc * n, rng);
          if (beta == 0.0) {
            for (Index j = 0; j < n; ++j) c[j * ldc] = std::numeric_limits<double>::quiet_NaN();
          }
          Vector expected = c;
          for (Index j = 0; j < n; ++j) {
            for (Index i = 0; i < m; ++i) {
              double sum = 0.0;
              for (Index l = 0; l < k; ++l) {
                const double ail = ta ? a[l + i * lda] : a[i + l * lda];
                const double blj = tb ? b[j + l * ldb] : b[l + j * ldb];
                sum += ail * blj;
              }
              expected[i + j * ldc] = 1.5 * sum + (beta == 0.0 ? 0.0 : beta * c[i + j * ldc]);
            }
          }
          v.gemm(ta, tb, m, n, k, 1.5, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
          for (Index j = 0; j < n; ++j) {
            for (Index i = 0; i < m; ++i) {
              EXPECT_NEAR(c[i + j * ldc], expected[i + j * ldc], 1e-12)
                  << v.name << " k=" << k << " ta=" << ta << " tb=" << tb << " beta=" << beta;
            }
            for (Index i = m; i < ldc; ++i) {
              EXPECT_EQ(c[i + j * ldc], expected[i + j * ldc]) << "padding touched by " << v.name;
            }
          }
        }
      }
    }
    }
  }
  }
}

// GemmBias = Gemm (β = 0) plus the bias in every column, on every path (thin inner dimension,
// thin output, general; no inner dimension at all).
TEST(Kernels, GemmBiasAddsTheBiasToEveryColumn) {
  std::mt19937 rng(5);
  const std::pair<Index, Index> shapes[] = {{7, 13}, {2, 13}, {7, 3}};
  const std::pair<decltype(&kernels::sse2::GemmBias), bool> variants[] = {
      {&kernels::sse2::GemmBias, true},
      {&kernels::avx2::GemmBias, kernels::CpuHasAvx2()},
      {&kernels::avx512::GemmBias, kernels::CpuHasAvx512()},
      {&kernels::GemmBias, true}};
  for (const auto& [m, n] : shapes) {
    for (Index k : {0, 3, 40}) {
      for (bool ta : {false, true}) {
        const Index lda = ta ? k : m;
        const Vector a = testing::RandomVector(std::max<Index>(lda * (ta ? m : k), 1), rng);
        const Vector b = testing::RandomVector(std::max<Index>(k * n, 1), rng);
        const Vector bias = testing::RandomVector(m, rng);
        Vector expected = Vector::Zero(m * n);
        if (k > 0) {
          kernels::sse2::Gemm(ta, false, m, n, k, 1.0, a.data(), std::max<Index>(lda, 1), b.data(),
                              k, 0.0, expected.data(), m);
        }
        for (Index j = 0; j < n; ++j) expected.segment(j * m, m) += bias;
        for (const auto& [gemm_bias, available] : variants) {
          if (!available) continue;
          Vector c = Vector::Constant(m * n, std::numeric_limits<double>::quiet_NaN());
          gemm_bias(ta, false, m, n, k, a.data(), std::max<Index>(lda, 1), b.data(),
                    std::max<Index>(k, 1), bias.data(), c.data(), m);
          EXPECT_LT((c - expected).cwiseAbs().maxCoeff(), 1e-12)
              << "m=" << m << " n=" << n << " k=" << k << " ta=" << ta;
        }
      }
    }
  }
}

// Inputs covering tiny, moderate, large and saturated arguments, of a length that is not a multiple
// of any vector width.
std::vector<double> Arguments() {
  std::vector<double> x;
  for (double v = -40.0; v <= 40.0; v += 0.0137) x.push_back(v);
  for (double v = 1e-300; v < 1.0; v *= 7.3) {
    x.push_back(v);
    x.push_back(-v);
  }
  x.push_back(0.0);
  x.push_back(-0.0);
  x.push_back(710.0);
  x.push_back(-710.0);
  return x;
}

// The documented bounds (flows/kernels.h): tanh ≤ 5 eps relative (4 ulp measured over 4·10⁶
// arguments); σ and softplus are composed of tanh, SLEEF exp/log1p (1 ulp)
// and of an add, so a few ULP relative to the result.
TEST(Kernels, ActivationsAreWithinAFewUlpOfLibm) {
  const std::vector<double> x = Arguments();
  const double eps = std::numeric_limits<double>::epsilon();
  for (const Variant& v : Variants()) {
    if (!v.available) continue;
    std::vector<double> y(x.size());
    v.tanh(x.data(), y.data(), static_cast<Index>(x.size()));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double ref = std::tanh(x[i]);
      ASSERT_LE(std::abs(y[i] - ref), 5 * eps * std::abs(ref) + 1e-320)
          << v.name << " tanh(" << x[i] << ")";
    }
    v.sigmoid(x.data(), y.data(), static_cast<Index>(x.size()));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double ref = 1.0 / (1.0 + std::exp(-x[i]));
      // ½(1 + tanh(x/2)) loses relative accuracy where σ is tiny; its absolute error stays ~ eps.
      ASSERT_LE(std::abs(y[i] - ref), 4 * eps * std::max(ref, 0.25))
          << v.name << " sigmoid(" << x[i] << ")";
    }
    v.softplus(x.data(), y.data(), static_cast<Index>(x.size()));
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double ref = std::max(x[i], 0.0) + std::log1p(std::exp(-std::abs(x[i])));
      ASSERT_LE(std::abs(y[i] - ref), 4 * eps * std::abs(ref) + 1e-320)
          << v.name << " softplus(" << x[i] << ")";
    }
  }
}

TEST(Kernels, ActivationsMayWorkInPlace) {
  std::vector<double> x = Arguments();
  std::vector<double> y(x.size());
  kernels::Tanh(x.data(), y.data(), static_cast<Index>(x.size()));
  kernels::Tanh(x.data(), x.data(), static_cast<Index>(x.size()));
  EXPECT_EQ(x, y);
}

// Every variant's element-wise backward passes, im2col gather and col2im scatter against plain loops
// (lengths that are not a multiple of any vector width; negative indices read and write nothing).
TEST(Kernels, BackwardPassesGatherAndScatterMatchPlainLoops) {
  struct Elementwise {
    const char* name;
    bool available;
    decltype(&kernels::sse2::TanhBackward) tanh_backward, sigmoid_backward, relu_backward;
    decltype(&kernels::sse2::Relu) relu;
    decltype(&kernels::sse2::Gather) gather;
    decltype(&kernels::sse2::ScatterAdd) scatter_add;
    decltype(&kernels::sse2::RowSums) row_sums;
  };
  const Elementwise variants[] = {
      {"sse2", true, &kernels::sse2::TanhBackward, &kernels::sse2::SigmoidBackward,
       &kernels::sse2::ReluBackward, &kernels::sse2::Relu, &kernels::sse2::Gather,
       &kernels::sse2::ScatterAdd, &kernels::sse2::RowSums},
      {"avx2", kernels::CpuHasAvx2(), &kernels::avx2::TanhBackward, &kernels::avx2::SigmoidBackward,
       &kernels::avx2::ReluBackward, &kernels::avx2::Relu, &kernels::avx2::Gather,
       &kernels::avx2::ScatterAdd, &kernels::avx2::RowSums},
      {"avx512", kernels::CpuHasAvx512(), &kernels::avx512::TanhBackward,
       &kernels::avx512::SigmoidBackward, &kernels::avx512::ReluBackward, &kernels::avx512::Relu,
       &kernels::avx512::Gather, &kernels::avx512::ScatterAdd, &kernels::avx512::RowSums},
      {"dispatch", true, &kernels::TanhBackward, &kernels::SigmoidBackward, &kernels::ReluBackward,
       &kernels::Relu, &kernels::Gather, &kernels::ScatterAdd, &kernels::RowSums},
  };
  std::mt19937 rng(8);
  const Index n = 37;
  const Vector x = testing::RandomVector(n, rng), y = testing::RandomVector(n, rng);
  const Vector y_bar = testing::RandomVector(n, rng);
  // A permutation of 0..n−1 with every third entry dropped (−1).
  std::vector<std::int32_t> index(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) index[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 10) % n);
  for (Index i = 0; i < n; i += 3) index[static_cast<std::size_t>(i)] = -1;
  for (const Elementwise& v : variants) {
    if (!v.available) continue;
    Vector out(n);
    v.tanh_backward(y.data(), y_bar.data(), out.data(), n);
    // Wide variants may contract to fused multiply–adds: a few ulp.
    EXPECT_LT(testing::RelativeMaxError(out, (y_bar.array() * (1.0 - y.array().square())).matrix()),
              1e-15)
        << v.name;
    v.sigmoid_backward(y.data(), y_bar.data(), out.data(), n);
    EXPECT_LT(
        testing::RelativeMaxError(out, (y_bar.array() * y.array() * (1.0 - y.array())).matrix()),
        1e-15)
        << v.name;
    v.relu_backward(x.data(), y_bar.data(), out.data(), n);
    for (Index i = 0; i < n; ++i) EXPECT_EQ(out[i], x[i] > 0.0 ? y_bar[i] : 0.0) << v.name;
    v.relu(x.data(), out.data(), n);
    EXPECT_EQ(out, x.cwiseMax(0.0)) << v.name;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const Vector with_nan = Vector::Constant(9, nan);
    v.relu(with_nan.data(), out.data(), 9);
    EXPECT_TRUE(out.head(9).array().isNaN().all()) << v.name << ": a diverged state must show";
    v.gather(x.data(), index.data(), out.data(), n);
    Vector target = y, expected = y;
    v.scatter_add(y_bar.data(), index.data(), target.data(), n);
    for (Index i = 0; i < n; ++i) {
      const std::int32_t k = index[static_cast<std::size_t>(i)];
      EXPECT_EQ(out[i], k >= 0 ? x[k] : 0.0) << v.name << " gather " << i;
      if (k >= 0) expected[k] += y_bar[i];
    }
    EXPECT_EQ(target, expected) << v.name << " scatter";
    // x's first 35 entries as a 5 × 7 matrix.
    Vector sums(5);
    v.row_sums(x.data(), 5, 7, sums.data());
    const Eigen::Map<const Matrix> m(x.data(), 5, 7);
    EXPECT_LT((sums - m.rowwise().sum()).cwiseAbs().maxCoeff(), 1e-14) << v.name;
  }
}

// The channel-blocked packing of oneDNN tensors, every variant against the element-by-element
// definition: channel counts below, at and above the 8-wide register blocks, pixel counts with and
// without a remainder, blocks of 8 and 16; padding channels zeroed; unpacking inverts packing.
TEST(Kernels, ChannelPackingMatchesTheLayoutElementByElement) {
  struct Packing {
    const char* name;
    bool available;
    decltype(&kernels::sse2::PackChannels) pack;
    decltype(&kernels::sse2::UnpackChannels) unpack;
  };
  const Packing variants[] = {
      {"sse2", true, &kernels::sse2::PackChannels, &kernels::sse2::UnpackChannels},
      {"avx2", kernels::CpuHasAvx2(), &kernels::avx2::PackChannels, &kernels::avx2::UnpackChannels},
      {"avx512", kernels::CpuHasAvx512(), &kernels::avx512::PackChannels,
       &kernels::avx512::UnpackChannels},
      {"dispatch", true, &kernels::PackChannels, &kernels::UnpackChannels},
  };
  std::mt19937 rng(12);
  for (const Index block : {Index{8}, Index{16}}) {
    for (const Index channels : {Index{1}, Index{7}, Index{8}, Index{13}, Index{16}}) {
      if (channels > block) continue;
      for (const Index pixels : {Index{1}, Index{8}, Index{49}, Index{196}}) {
        const Vector x = testing::RandomVector(channels * pixels, rng);
        for (const Packing& v : variants) {
          if (!v.available) continue;
          SCOPED_TRACE(std::string(v.name) + " block " + std::to_string(block) + " channels " +
                       std::to_string(channels) + " pixels " + std::to_string(pixels));
          std::vector<float> y(static_cast<std::size_t>(pixels * block), 7.0F);
          v.pack(x.data(), channels, pixels, block, y.data());
          int wrong = 0;
          for (Index p = 0; p < pixels; ++p) {
            for (Index c = 0; c < block; ++c) {
              const float expected = c < channels ? static_cast<float>(x[c * pixels + p]) : 0.0F;
              wrong += y[static_cast<std::size_t>(p * block + c)] != expected;
            }
          }
          EXPECT_EQ(wrong, 0);
          Vector back = Vector::Constant(channels * pixels, -1.0);
          v.unpack(y.data(), channels, pixels, block, back.data());
          for (Index i = 0; i < channels * pixels; ++i) {
            wrong += back[i] != static_cast<double>(static_cast<float>(x[i]));
          }
          EXPECT_EQ(wrong, 0);
        }
      }
    }
  }
}

// Group normalisation of one group, every variant against the formulas in plain loops, and the
// same bits wherever the group lies in memory (the batch's samples sit at every alignment).
TEST(Kernels, GroupNormMatchesThePlainFormulasAtEveryAddress) {
  struct Norm {
    const char* name;
    bool available;
    decltype(&kernels::sse2::GroupNormForward) forward;
    decltype(&kernels::sse2::GroupNormBackward) backward;
  };
  const Norm variants[] = {
      {"sse2", true, &kernels::sse2::GroupNormForward, &kernels::sse2::GroupNormBackward},
      {"avx2", kernels::CpuHasAvx2(), &kernels::avx2::GroupNormForward,
       &kernels::avx2::GroupNormBackward},
      {"avx512", kernels::CpuHasAvx512(), &kernels::avx512::GroupNormForward,
       &kernels::avx512::GroupNormBackward},
      {"dispatch", true, &kernels::GroupNormForward, &kernels::GroupNormBackward},
  };
  std::mt19937 rng(4);
  const Index channels = 3, pixels = 49, n = channels * pixels;
  const double epsilon = 1e-5;
  const Vector x = testing::RandomVector(n, rng), y_bar = testing::RandomVector(n, rng);
  const Vector gamma = testing::RandomVector(channels, rng);
  const Vector beta = testing::RandomVector(channels, rng);
  // The reference.
  const double mean = x.mean();
  const double inv_std = 1.0 / std::sqrt((x.array() - mean).square().mean() + epsilon);
  const Vector x_hat = ((x.array() - mean) * inv_std).matrix();
  Vector y(n), x_bar(n), gamma_bar(channels), beta_bar(channels);
  double sum_g = 0.0, sum_gx = 0.0;
  for (Index c = 0; c < channels; ++c) {
    const auto s = Eigen::seqN(c * pixels, pixels);
    y(s) = (gamma[c] * x_hat(s).array() + beta[c]).matrix();
    gamma_bar[c] = 1.0 + y_bar(s).dot(x_hat(s));  // the kernel adds to what is there
    beta_bar[c] = 2.0 + y_bar(s).sum();
    sum_g += gamma[c] * y_bar(s).sum();
    sum_gx += gamma[c] * y_bar(s).dot(x_hat(s));
  }
  for (Index c = 0; c < channels; ++c) {
    const auto s = Eigen::seqN(c * pixels, pixels);
    x_bar(s) = (inv_std * (gamma[c] * y_bar(s).array() - sum_g / static_cast<double>(n) -
                           x_hat(s).array() * (sum_gx / static_cast<double>(n))))
                   .matrix();
  }
  for (const Norm& v : variants) {
    if (!v.available) continue;
    std::vector<Vector> outputs;
    for (Index shift = 0; shift < 4; ++shift) {  // x, ȳ and the outputs at 4 alignments
      SCOPED_TRACE(std::string(v.name) + " shifted by " + std::to_string(shift));
      Vector xs = Vector::Zero(n + 4), ybs = Vector::Zero(n + 4), out = Vector::Zero(n + 4);
      Vector out_bar = Vector::Zero(n + 4);
      xs.segment(shift, n) = x;
      ybs.segment(shift, n) = y_bar;
      double statistics[2];
      v.forward(xs.data() + shift, channels, pixels, gamma.data(), beta.data(), epsilon,
                out.data() + shift, statistics);
      EXPECT_NEAR(statistics[0], mean, 1e-15);
      EXPECT_NEAR(statistics[1], inv_std, 1e-13 * inv_std);
      EXPECT_LT(testing::RelativeMaxError(out.segment(shift, n), y), 1e-13);
      Vector gb = Vector::Ones(channels), bb = Vector::Constant(channels, 2.0);
      v.backward(xs.data() + shift, ybs.data() + shift, channels, pixels, gamma.data(),
                 statistics, out_bar.data() + shift, gb.data(), bb.data());
      EXPECT_LT(testing::RelativeMaxError(out_bar.segment(shift, n), x_bar), 1e-12);
      EXPECT_LT(testing::RelativeMaxError(gb, gamma_bar), 1e-13);
      EXPECT_LT(testing::RelativeMaxError(bb, beta_bar), 1e-13);
      Vector all(2 * n + 2 * channels + 2);
      all << out.segment(shift, n), out_bar.segment(shift, n), gb, bb, statistics[0], statistics[1];
      outputs.push_back(all);
    }
    for (std::size_t k = 1; k < outputs.size(); ++k) {
      EXPECT_TRUE((outputs[k].array() == outputs[0].array()).all()) << v.name << " shift " << k;
    }
  }
}

TEST(Kernels, DispatchPicksTheWidestAvailableVariant) {
  const std::string isa = kernels::InstructionSet();
  if (kernels::CpuHasAvx512()) {
    EXPECT_EQ(isa, "avx512");
  } else if (kernels::CpuHasAvx2()) {
    EXPECT_EQ(isa, "avx2");
  } else {
    EXPECT_EQ(isa, "sse2");
  }
}


// The blocked float group normalisation (and its ReLU) of every variant against the double
// kernels above on the same values in the channel-major layout: blocks of 8 and 16 channels,
// groups of one channel, of a part of a block and of several blocks; and the same bits wherever
// the sample lies in memory.
TEST(Kernels, BlockedGroupNormMatchesTheDoubleKernelsAtEveryAddress) {
  struct Norm {
    const char* name;
    bool available;
    decltype(&kernels::sse2::BlockedGroupNormForward) forward;
    decltype(&kernels::sse2::BlockedGroupNormBackward) backward;
  };
  const Norm variants[] = {
      {"sse2", true, &kernels::sse2::BlockedGroupNormForward,
       &kernels::sse2::BlockedGroupNormBackward},
      {"avx2", kernels::CpuHasAvx2(), &kernels::avx2::BlockedGroupNormForward,
       &kernels::avx2::BlockedGroupNormBackward},
      {"avx512", kernels::CpuHasAvx512(), &kernels::avx512::BlockedGroupNormForward,
       &kernels::avx512::BlockedGroupNormBackward},
      {"dispatch", true, &kernels::BlockedGroupNormForward, &kernels::BlockedGroupNormBackward},
  };
  struct Shape {
    Index block, channels, groups, pixels;
  };
  const Shape shapes[] = {{8, 16, 16, 49}, {8, 16, 4, 9}, {8, 32, 1, 25}, {16, 32, 32, 49},
                          {16, 16, 2, 7},  {16, 32, 4, 30}};
  const double epsilon = 1e-5;
  std::mt19937 rng(8);
  for (const Shape& shape : shapes) {
    for (const bool relu : {false, true}) {
      const Index C = shape.channels, P = shape.pixels, n = C * P, B = shape.block;
      const Index per_group = C / shape.groups;
      // Float values, and the same values channel-major in double.
      Vector x_plain = testing::RandomVector(n, rng, 2.0);
      Vector y_bar_plain = testing::RandomVector(n, rng);
      x_plain.array() += 0.7;
      std::vector<float> x(static_cast<std::size_t>(n)), y_bar(x.size());
      const auto blocked = [&](Index c, Index p) { return ((c / B) * P + p) * B + c % B; };
      for (Index c = 0; c < C; ++c) {
        for (Index p = 0; p < P; ++p) {
          const auto at = static_cast<std::size_t>(blocked(c, p));
          x[at] = static_cast<float>(x_plain[c * P + p]);
          y_bar[at] = static_cast<float>(y_bar_plain[c * P + p]);
          x_plain[c * P + p] = x[at];
          y_bar_plain[c * P + p] = y_bar[at];
        }
      }
      const Vector gamma = testing::RandomVector(C, rng), beta = testing::RandomVector(C, rng);
      // The reference: the double kernels group by group, the ReLU's mask on ȳ.
      Vector y_ref(n), x_bar_ref(n), g_plain(n);
      Vector gamma_bar_ref = Vector::Zero(C), beta_bar_ref = Vector::Zero(C);
      Vector statistics_ref(2 * shape.groups);
      for (Index g = 0; g < shape.groups; ++g) {
        const Index at = g * per_group * P, c0 = g * per_group;
        kernels::GroupNormForward(x_plain.data() + at, per_group, P, gamma.data() + c0,
                                  beta.data() + c0, epsilon, y_ref.data() + at,
                                  statistics_ref.data() + 2 * g);
      }
      for (Index i = 0; i < n; ++i) {
        g_plain[i] = relu && y_ref[i] <= 0.0 ? 0.0 : y_bar_plain[i];
        if (relu) y_ref[i] = std::max(y_ref[i], 0.0);
      }
      for (Index g = 0; g < shape.groups; ++g) {
        const Index at = g * per_group * P, c0 = g * per_group;
        kernels::GroupNormBackward(x_plain.data() + at, g_plain.data() + at, per_group, P,
                                   gamma.data() + c0, statistics_ref.data() + 2 * g,
                                   x_bar_ref.data() + at, gamma_bar_ref.data() + c0,
                                   beta_bar_ref.data() + c0);
      }
      for (const Norm& v : variants) {
        if (!v.available) continue;
        std::vector<float> bits;
        for (Index shift = 0; shift < 4; ++shift) {
          SCOPED_TRACE(std::string(v.name) + ", block " + std::to_string(B) + ", " +
                       std::to_string(C) + " channels in " + std::to_string(shape.groups) +
                       " groups, relu " + std::to_string(relu) + ", shifted by " +
                       std::to_string(shift));
          std::vector<float> xs(x.size() + 4), ybs(x.size() + 4), out(x.size() + 4);
          std::copy(x.begin(), x.end(), xs.begin() + shift);
          std::copy(y_bar.begin(), y_bar.end(), ybs.begin() + shift);
          Vector statistics(2 * shape.groups), sums(2 * shape.groups);
          v.forward(xs.data() + shift, C, P, B, shape.groups, gamma.data(), beta.data(), epsilon,
                    relu, out.data() + shift, statistics.data());
          EXPECT_LT(testing::RelativeMaxError(statistics, statistics_ref), 1e-13);
          Vector y(n);
          for (Index c = 0; c < C; ++c) {
            for (Index p = 0; p < P; ++p) {
              y[c * P + p] = out[static_cast<std::size_t>(blocked(c, p) + shift)];
            }
          }
          EXPECT_LT(testing::RelativeMaxError(y, y_ref), 1e-6);
          // Backward in place over ȳ, as the field runs it.
          Vector gamma_bar = Vector::Zero(C), beta_bar = Vector::Zero(C);
          v.backward(xs.data() + shift, relu ? out.data() + shift : nullptr, ybs.data() + shift, C,
                     P, B, shape.groups, gamma.data(), statistics.data(), ybs.data() + shift,
                     gamma_bar.data(), beta_bar.data(), sums.data());
          Vector x_bar(n);
          for (Index c = 0; c < C; ++c) {
            for (Index p = 0; p < P; ++p) {
              x_bar[c * P + p] = ybs[static_cast<std::size_t>(blocked(c, p) + shift)];
            }
          }
          EXPECT_LT(testing::RelativeMaxError(x_bar, x_bar_ref), 1e-6);
          EXPECT_LT(testing::RelativeMaxError(gamma_bar, gamma_bar_ref), 1e-13);
          EXPECT_LT(testing::RelativeMaxError(beta_bar, beta_bar_ref), 1e-13);
          std::vector<float> all(out.begin() + shift, out.begin() + shift + n);
          all.insert(all.end(), ybs.begin() + shift, ybs.begin() + shift + n);
          if (shift == 0) {
            bits = all;
          } else {
            EXPECT_TRUE(all == bits);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace diffeoflow::flows
