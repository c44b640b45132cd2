// The AVX-512 variant of flows/kernels.h (this file is compiled with -mavx512f -mavx512dq and
// friends; Eigen is renamed so that its AVX-512 instantiations stay private to this object).
#include <immintrin.h>
#include <sleef.h>

#define Eigen diffeoflow_eigen_avx512
#define DIFFEOFLOW_KERNEL_ISA avx512
using KVec = __m512d;
constexpr int KWidth = 8;
#define KLoad _mm512_loadu_pd
#define KStore _mm512_storeu_pd
#define KSet1 _mm512_set1_pd
#define KAdd _mm512_add_pd
#define KSub _mm512_sub_pd
#define KMul _mm512_mul_pd
#define KMax _mm512_max_pd
#define KAbs _mm512_abs_pd
#define KFma _mm512_fmadd_pd
#define KDiv _mm512_div_pd
#define KMin _mm512_min_pd
#define KAnd _mm512_and_pd
#define KOr _mm512_or_pd
#define KBits _mm512_castpd_si512
#define KFromBits _mm512_castsi512_pd
#define KAddI64(v, c) _mm512_add_epi64((v), _mm512_set1_epi64(c))
#define KShiftLeft52(v) _mm512_slli_epi64((v), 52)
#define KExp Sleef_expd8_u10avx512f
#define KLog1p Sleef_log1pd8_u10avx512f

#include "flows/kernels_impl.inc"
