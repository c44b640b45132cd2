// The AVX2+FMA variant of flows/kernels.h (this file is compiled with -mavx2 -mfma; Eigen is
// renamed so that its AVX instantiations stay private to this object).
#include <immintrin.h>
#include <sleef.h>

#define Eigen diffeoflow_eigen_avx2
#define DIFFEOFLOW_KERNEL_ISA avx2
using KVec = __m256d;
constexpr int KWidth = 4;
#define KLoad _mm256_loadu_pd
#define KStore _mm256_storeu_pd
#define KSet1 _mm256_set1_pd
#define KAdd _mm256_add_pd
#define KSub _mm256_sub_pd
#define KMul _mm256_mul_pd
#define KMax _mm256_max_pd
#define KAbs(v) _mm256_andnot_pd(_mm256_set1_pd(-0.0), (v))
#define KFma _mm256_fmadd_pd
#define KDiv _mm256_div_pd
#define KMin _mm256_min_pd
#define KAnd _mm256_and_pd
#define KOr _mm256_or_pd
#define KBits _mm256_castpd_si256
#define KFromBits _mm256_castsi256_pd
#define KAddI64(v, c) _mm256_add_epi64((v), _mm256_set1_epi64x(c))
#define KShiftLeft52(v) _mm256_slli_epi64((v), 52)
#define KExp Sleef_expd4_u10avx2
#define KLog1p Sleef_log1pd4_u10avx2

#include "flows/kernels_impl.inc"
