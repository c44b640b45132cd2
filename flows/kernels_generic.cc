// The x86-64 baseline (SSE2) variant of flows/kernels.h.
#include <emmintrin.h>
#include <sleef.h>

#define DIFFEOFLOW_KERNEL_ISA sse2
using KVec = __m128d;
constexpr int KWidth = 2;
#define KLoad _mm_loadu_pd
#define KStore _mm_storeu_pd
#define KSet1 _mm_set1_pd
#define KAdd _mm_add_pd
#define KSub _mm_sub_pd
#define KMul _mm_mul_pd
#define KMax _mm_max_pd
#define KAbs(v) _mm_andnot_pd(_mm_set1_pd(-0.0), (v))
#define KFma(a, b, c) _mm_add_pd(_mm_mul_pd((a), (b)), (c))
#define KDiv _mm_div_pd
#define KMin _mm_min_pd
#define KAnd _mm_and_pd
#define KOr _mm_or_pd
#define KBits _mm_castpd_si128
#define KFromBits _mm_castsi128_pd
#define KAddI64(v, c) _mm_add_epi64((v), _mm_set1_epi64x(c))
#define KShiftLeft52(v) _mm_slli_epi64((v), 52)
#define KExp Sleef_expd2_u10sse2
#define KLog1p Sleef_log1pd2_u10sse2

#include "flows/kernels_impl.inc"
