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
  decltype(&sse2::GemmBias) gemm_bias;
  decltype(&sse2::Tanh) tanh;
  decltype(&sse2::Sigmoid) sigmoid;
  decltype(&sse2::Softplus) softplus;
  decltype(&sse2::Relu) relu;
  decltype(&sse2::TanhBackward) tanh_backward;
  decltype(&sse2::SigmoidBackward) sigmoid_backward;
  decltype(&sse2::ReluBackward) relu_backward;
  decltype(&sse2::RowSums) row_sums;
  decltype(&sse2::Gather) gather;
  decltype(&sse2::ScatterAdd) scatter_add;
  decltype(&sse2::GemmSingle) gemm_single;
  decltype(&sse2::GatherSingle) gather_single;
  decltype(&sse2::ScatterAddSingle) scatter_add_single;
  decltype(&sse2::PackChannels) pack_channels;
  decltype(&sse2::UnpackChannels) unpack_channels;
  decltype(&sse2::GroupNormForward) group_norm_forward;
  decltype(&sse2::GroupNormBackward) group_norm_backward;
  decltype(&sse2::BlockedGroupNormForward) blocked_group_norm_forward;
  decltype(&sse2::BlockedGroupNormBackward) blocked_group_norm_backward;
};

#define DIFFEOFLOW_VARIANT(isa)                                                            \
  Variant {                                                                                \
    #isa, &isa::Gemm, &isa::GemmBias, &isa::Tanh, &isa::Sigmoid, &isa::Softplus, &isa::Relu, \
        &isa::TanhBackward, &isa::SigmoidBackward, &isa::ReluBackward, &isa::RowSums,      \
        &isa::Gather, &isa::ScatterAdd, &isa::GemmSingle, &isa::GatherSingle,              \
        &isa::ScatterAddSingle, &isa::PackChannels, &isa::UnpackChannels,                  \
        &isa::GroupNormForward, &isa::GroupNormBackward, &isa::BlockedGroupNormForward,    \
        &isa::BlockedGroupNormBackward                                                     \
  }

// Chosen once from the CPU; immutable afterwards.
const Variant& Active() {
  static const Variant variant = [] {
    if (CpuHasAvx512()) {
      return DIFFEOFLOW_VARIANT(avx512);
    }
    if (CpuHasAvx2()) {
      return DIFFEOFLOW_VARIANT(avx2);
    }
    return DIFFEOFLOW_VARIANT(sse2);
  }();
  return variant;
}

}  // namespace

void Gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, double alpha, const double* a,
          Index lda, const double* b, Index ldb, double beta, double* c, Index ldc) {
  Active().gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void GemmBias(bool trans_a, bool trans_b, Index m, Index n, Index k, const double* a, Index lda,
              const double* b, Index ldb, const double* bias, double* c, Index ldc) {
  Active().gemm_bias(trans_a, trans_b, m, n, k, a, lda, b, ldb, bias, c, ldc);
}
void Tanh(const double* x, double* y, Index n) { Active().tanh(x, y, n); }
void Sigmoid(const double* x, double* y, Index n) { Active().sigmoid(x, y, n); }
void Softplus(const double* x, double* y, Index n) { Active().softplus(x, y, n); }
void Relu(const double* x, double* y, Index n) { Active().relu(x, y, n); }
void TanhBackward(const double* y, const double* y_bar, double* x_bar, Index n) {
  Active().tanh_backward(y, y_bar, x_bar, n);
}
void SigmoidBackward(const double* y, const double* y_bar, double* x_bar, Index n) {
  Active().sigmoid_backward(y, y_bar, x_bar, n);
}
void ReluBackward(const double* x, const double* y_bar, double* x_bar, Index n) {
  Active().relu_backward(x, y_bar, x_bar, n);
}
void RowSums(const double* y, Index rows, Index cols, double* sums) {
  Active().row_sums(y, rows, cols, sums);
}
void Gather(const double* source, const std::int32_t* index, double* y, Index n) {
  Active().gather(source, index, y, n);
}
void ScatterAdd(const double* x, const std::int32_t* index, double* target, Index n) {
  Active().scatter_add(x, index, target, n);
}
void GemmSingle(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const float* a,
                Index lda, const float* b, Index ldb, float beta, float* c, Index ldc) {
  Active().gemm_single(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void GatherSingle(const double* source, const std::int32_t* index, float* y, Index n) {
  Active().gather_single(source, index, y, n);
}
void ScatterAddSingle(const float* x, const std::int32_t* index, double* target, Index n) {
  Active().scatter_add_single(x, index, target, n);
}
void PackChannels(const double* x, Index channels, Index pixels, Index block, float* y) {
  Active().pack_channels(x, channels, pixels, block, y);
}
void UnpackChannels(const float* y, Index channels, Index pixels, Index block, double* x) {
  Active().unpack_channels(y, channels, pixels, block, x);
}
void GroupNormForward(const double* x, Index channels, Index pixels, const double* gamma,
                      const double* beta, double epsilon, double* y, double* statistics) {
  Active().group_norm_forward(x, channels, pixels, gamma, beta, epsilon, y, statistics);
}
void GroupNormBackward(const double* x, const double* y_bar, Index channels, Index pixels,
                       const double* gamma, const double* statistics, double* x_bar,
                       double* gamma_bar, double* beta_bar) {
  Active().group_norm_backward(x, y_bar, channels, pixels, gamma, statistics, x_bar, gamma_bar,
                               beta_bar);
}
void BlockedGroupNormForward(const float* x, Index channels, Index pixels, Index block,
                             Index groups, const double* gamma, const double* beta,
                             double epsilon, bool relu, float* y, double* statistics) {
  Active().blocked_group_norm_forward(x, channels, pixels, block, groups, gamma, beta, epsilon,
                                      relu, y, statistics);
}
void BlockedGroupNormBackward(const float* x, const float* y, const float* y_bar, Index channels,
                              Index pixels, Index block, Index groups, const double* gamma,
                              const double* statistics, float* x_bar, double* gamma_bar,
                              double* beta_bar, double* sums) {
  Active().blocked_group_norm_backward(x, y, y_bar, channels, pixels, block, groups, gamma,
                                       statistics, x_bar, gamma_bar, beta_bar, sums);
}
std::string InstructionSet() { return Active().name; }

}  // namespace diffeoflow::flows::kernels
