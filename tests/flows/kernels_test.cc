// The GEMM and activation kernels of every instruction set the CPU has, against plain references.
#include "flows/kernels.h"

#include <cmath>
#include <limits>
#include <random>
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
  const Index m = 7, n = 13, pad = 3;
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

}  // namespace
}  // namespace diffeoflow::flows
