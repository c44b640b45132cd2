#include "flows/kernels.h"

#include "flows/kernels_isa.h"

namespace diffeoflow::flows::kernels {

bool CpuHasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool CpuHasAvx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
}

namespace {

struct Variant {
  const char* name;
  decltype(&sse2::Gemm) gemm;
  decltype(&sse2::Tanh) tanh;
  decltype(&sse2::Sigmoid) sigmoid;
  decltype(&sse2::Softplus) softplus;
};

// Chosen once from the CPU; immutable afterwards.
const Variant& Active() {
  static const Variant variant = [] {
    if (CpuHasAvx512()) {
      return Variant{"avx512", &avx512::Gemm, &avx512::Tanh, &avx512::Sigmoid, &avx512::Softplus};
    }
    if (CpuHasAvx2()) {
      return Variant{"avx2", &avx2::Gemm, &avx2::Tanh, &avx2::Sigmoid, &avx2::Softplus};
    }
    return Variant{"sse2", &sse2::Gemm, &sse2::Tanh, &sse2::Sigmoid, &sse2::Softplus};
  }();
  return variant;
}

}  // namespace

void Gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, double alpha, const double* a,
          Index lda, const double* b, Index ldb, double beta, double* c, Index ldc) {
  Active().gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void Tanh(const double* x, double* y, Index n) { Active().tanh(x, y, n); }
void Sigmoid(const double* x, double* y, Index n) { Active().sigmoid(x, y, n); }
void Softplus(const double* x, double* y, Index n) { Active().softplus(x, y, n); }
std::string InstructionSet() { return Active().name; }

}  // namespace diffeoflow::flows::kernels
