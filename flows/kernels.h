// Dense kernels the layers run on: a column-major GEMM and vectorised activations.
//
// Each kernel exists three times, compiled for the x86-64 baseline (SSE2), for AVX2+FMA and for
// AVX-512 (flows/kernels_{generic,avx2,avx512}.cc); the first call picks the widest one the CPU
// supports. The wide variants compile their own copy of Eigen under a private namespace, so no
// Eigen symbol or alignment assumption crosses into code built for the baseline; every argument is a
// raw pointer with an explicit leading dimension (BLAS convention).
//
// tanh is our own: with a = min(|x|, 20) (tanh 20 rounds to 1), 2a = k ln2 + r (|r| ≤ ln2/2,
// Cody–Waite), e^r − 1 by its Taylor polynomial of degree 13, expm1(2a) = 2^k(e^r − 1) + 2^k − 1 and
// tanh(a) = expm1(2a) / (expm1(2a) + 2): no cancellation for small a; relative error ≤ 5·2⁻⁵²
// (4 ulp the worst measured over 4·10⁶ arguments; tested).
// exp and log1p come from SLEEF (Shibata & Petrogalli 2020, 1-ulp variants):
//   tanh(x)                                  (≤ 5·2⁻⁵² relative),
//   σ(x) = ½(1 + tanh(x/2))                  (absolute error ≤ 4 ulp of max(σ, ¼): a tiny σ
//                                             loses relative accuracy),
//   softplus(x) = max(x, 0) + log1p(e^{−|x|}) (≤ 4 ulp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace diffeoflow::flows::kernels {

using Index = std::ptrdiff_t;

// C = α op(A) op(B) + β C with op(A) m×k and op(B) k×n, all column-major with leading dimensions
// lda, ldb, ldc. β = 0 overwrites C without reading it. C must not alias A or B.
void Gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, double alpha, const double* a,
          Index lda, const double* b, Index ldb, double beta, double* c, Index ldc);

// C = op(A) op(B) + bias 1ᵀ (bias: m entries added to every column), in one pass over C.
void GemmBias(bool trans_a, bool trans_b, Index m, Index n, Index k, const double* a, Index lda,
              const double* b, Index ldb, const double* bias, double* c, Index ldc);

// y_i = f(x_i) for i < n; y may equal x.
void Tanh(const double* x, double* y, Index n);
void Sigmoid(const double* x, double* y, Index n);
void Softplus(const double* x, double* y, Index n);
void Relu(const double* x, double* y, Index n);
// Back-propagation through them: x̄_i = ȳ_i (1 − y_i²), ȳ_i y_i (1 − y_i), ȳ_i [x_i > 0].
void TanhBackward(const double* y, const double* y_bar, double* x_bar, Index n);
void SigmoidBackward(const double* y, const double* y_bar, double* x_bar, Index n);
void ReluBackward(const double* x, const double* y_bar, double* x_bar, Index n);

// Column-major y (rows × cols): sums = y 1 (the gradient of a bias added to every column).
void RowSums(const double* y, Index rows, Index cols, double* sums);

// y_i = source[index_i], 0 where index_i < 0 (im2col). ScatterAdd: target[index_i] += x_i where
// index_i ≥ 0 (col2im); the non-negative indices must be distinct.
void Gather(const double* source, const std::int32_t* index, double* y, Index n);
void ScatterAdd(const double* x, const std::int32_t* index, double* target, Index n);

// Single precision for the convolutions (flows/conv.h): the GEMM above on floats, and the gather /
// scatter-add above reading doubles into floats and adding floats into doubles.
void GemmSingle(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const float* a,
                Index lda, const float* b, Index ldb, float beta, float* c, Index ldc);
void GatherSingle(const double* source, const std::int32_t* index, float* y, Index n);
void ScatterAddSingle(const float* x, const std::int32_t* index, double* target, Index n);

// The channel-blocked layouts of oneDNN (nChw8c, nChw16c; flows/conv_onednn.h): `channels` ≤
// `block` channels of `pixels` doubles each (x: channel c at x + c·pixels) rounded to float into y, pixel
// p's channels at y + p·block, the channels from `channels` to `block` set to zero. Unpack is the
// way back (y's padding channels are not read).
void PackChannels(const double* x, Index channels, Index pixels, Index block, float* y);
void UnpackChannels(const float* y, Index channels, Index pixels, Index block, double* x);

// Group normalisation of one group of one sample (flows/conv.h GroupNorm): x holds `channels`
// channels of `pixels` values each. Forward: μ and 1/σ = 1/√(mean((x − μ)²) + ε) of the whole
// group into statistics[0], statistics[1], and y_c = γ_c (x_c − μ)/σ + β_c. Backward, from those
// statistics: x̄ (overwritten), and γ̄_c += Σ ȳ_c x̂_c, β̄_c += Σ ȳ_c.
void GroupNormForward(const double* x, Index channels, Index pixels, const double* gamma,
                      const double* beta, double epsilon, double* y, double* statistics);
void GroupNormBackward(const double* x, const double* y_bar, Index channels, Index pixels,
                       const double* gamma, const double* statistics, double* x_bar,
                       double* gamma_bar, double* beta_bar);

// The same in float, on one sample in a channel-blocked layout (nChw8c, nChw16c: channel
// cb·block + l of pixel p at x[(cb·pixels + p)·block + l]), `channels` a multiple of `block` (8 or
// 16), `groups` groups of channels/groups channels each; the sums and statistics in double.
// Forward: statistics[2g], statistics[2g + 1] = μ_g and 1/σ_g, y = γ_c (x − μ)/σ + β_c, then
// max(y, 0) when `relu`. Backward from those statistics, with ȳ the adjoint of the output:
// ḡ = ȳ, or ȳ [y > 0] when y (the forward's output after its ReLU) is given (null: no ReLU);
// x̄ = (γ ḡ − mean γ ḡ − x̂ mean(γ ḡ x̂))/σ over the group (overwritten; x_bar may equal
// y_bar), γ̄_c += Σ ḡ x̂, β̄_c += Σ ḡ; `sums` is 2·groups doubles of workspace.
void BlockedGroupNormForward(const float* x, Index channels, Index pixels, Index block,
                             Index groups, const double* gamma, const double* beta,
                             double epsilon, bool relu, float* y, double* statistics);
void BlockedGroupNormBackward(const float* x, const float* y, const float* y_bar, Index channels,
                              Index pixels, Index block, Index groups, const double* gamma,
                              const double* statistics, float* x_bar, double* gamma_bar,
                              double* beta_bar, double* sums);

// "avx512", "avx2" or "sse2": the variant in use.
std::string InstructionSet();

}  // namespace diffeoflow::flows::kernels
