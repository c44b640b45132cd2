// The per-instruction-set variants behind flows/kernels.h (declared here so tests can compare them).
#pragma once

#include <cstdint>

#include "flows/kernels.h"

#define DIFFEOFLOW_DECLARE_KERNELS(isa)                                                         \
  namespace diffeoflow::flows::kernels::isa {                                                  \
  void Gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, double alpha, const double* a, \
            Index lda, const double* b, Index ldb, double beta, double* c, Index ldc);          \
  void GemmBias(bool trans_a, bool trans_b, Index m, Index n, Index k, const double* a,          \
                Index lda, const double* b, Index ldb, const double* bias, double* c, Index ldc); \
  void Tanh(const double* x, double* y, Index n);                                              \
  void Sigmoid(const double* x, double* y, Index n);                                           \
  void Softplus(const double* x, double* y, Index n);                                          \
  void TanhBackward(const double* y, const double* y_bar, double* x_bar, Index n);             \
  void SigmoidBackward(const double* y, const double* y_bar, double* x_bar, Index n);          \
  void Relu(const double* x, double* y, Index n);                                              \
  void ReluBackward(const double* x, const double* y_bar, double* x_bar, Index n);             \
  void RowSums(const double* y, Index rows, Index cols, double* sums);                         \
  void Gather(const double* source, const std::int32_t* index, double* y, Index n);           \
  void ScatterAdd(const double* x, const std::int32_t* index, double* target, Index n);       \
  void GemmSingle(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha,          \
                  const float* a, Index lda, const float* b, Index ldb, float beta, float* c,  \
                  Index ldc);                                                                  \
  void GatherSingle(const double* source, const std::int32_t* index, float* y, Index n);      \
  void ScatterAddSingle(const float* x, const std::int32_t* index, double* target, Index n);  \
  void PackChannels(const double* x, Index channels, Index pixels, Index block, float* y);    \
  void UnpackChannels(const float* y, Index channels, Index pixels, Index block, double* x);  \
  void GroupNormForward(const double* x, Index channels, Index pixels, const double* gamma,    \
                        const double* beta, double epsilon, double* y, double* statistics);    \
  void GroupNormBackward(const double* x, const double* y_bar, Index channels, Index pixels,  \
                         const double* gamma, const double* statistics, double* x_bar,        \
                         double* gamma_bar, double* beta_bar);                                \
  void BlockedGroupNormForward(const float* x, Index channels, Index pixels, Index block,      \
                               Index groups, const double* gamma, const double* beta,          \
                               double epsilon, bool relu, float* y, double* statistics);       \
  void BlockedGroupNormBackward(const float* x, const float* y, const float* y_bar,            \
                                Index channels, Index pixels, Index block, Index groups,       \
                                const double* gamma, const double* statistics, float* x_bar,   \
                                double* gamma_bar, double* beta_bar, double* sums);            \
  }

DIFFEOFLOW_DECLARE_KERNELS(sse2)
DIFFEOFLOW_DECLARE_KERNELS(avx2)
DIFFEOFLOW_DECLARE_KERNELS(avx512)

#undef DIFFEOFLOW_DECLARE_KERNELS

namespace diffeoflow::flows::kernels {
bool CpuHasAvx2();
bool CpuHasAvx512();
}  // namespace diffeoflow::flows::kernels
