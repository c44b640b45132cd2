// The per-instruction-set variants behind flows/kernels.h (declared here so tests can compare them).
#pragma once

#include "flows/kernels.h"

#define DIFFEOFLOW_DECLARE_KERNELS(isa)                                                         \
  namespace diffeoflow::flows::kernels::isa {                                                  \
  void Gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, double alpha, const double* a, \
            Index lda, const double* b, Index ldb, double beta, double* c, Index ldc);          \
  void Tanh(const double* x, double* y, Index n);                                              \
  void Sigmoid(const double* x, double* y, Index n);                                           \
  void Softplus(const double* x, double* y, Index n);                                          \
  }

DIFFEOFLOW_DECLARE_KERNELS(sse2)
DIFFEOFLOW_DECLARE_KERNELS(avx2)
DIFFEOFLOW_DECLARE_KERNELS(avx512)

#undef DIFFEOFLOW_DECLARE_KERNELS

namespace diffeoflow::flows::kernels {
bool CpuHasAvx2();
bool CpuHasAvx512();
}  // namespace diffeoflow::flows::kernels
