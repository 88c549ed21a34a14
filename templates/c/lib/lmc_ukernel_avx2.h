/* lmc_ukernel_avx2.h - AVX2+FMA GEMM/GEMV micro-kernels (included by lmc_kern.h only).
 * Operands: A micro-panel packed [k][LMC_MR]; B as 16-wide panels [k][16] (the layout of
 * lmc_gemm_pack), read as two ymm per k. Micro-tile 6 x 16 = 12 ymm accumulators. */
#ifndef LMC_UKERNEL_AVX2_H
#define LMC_UKERNEL_AVX2_H

#include <immintrin.h>

#ifndef LMC_MR
#define LMC_MR 6
#endif
#define LMC_NP 1    /* 16-wide panels per micro-tile */
#define LMC_GEMV_NP 2
#define LMC_GEMV_MAXM 4 /* rows the GEMV path takes */

#define LMC__ALWAYS_INLINE static inline __attribute__((always_inline))

static inline __m256i lmc__mask8(int64_t w) {
  w = w < 0 ? 0 : (w > 8 ? 8 : w);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* c[0:mr, 0:nr] (+)= A_panel @ B (one 16-wide panel; bstride unused). */
static inline void lmc__ukernel(int64_t kc, const float *ap, const float *b0, int64_t bstride,
                                float *c, int64_t ldc, int64_t mr, int64_t nr, int first,
                                const float *bias_n, const float *bias_m) {
  (void)bstride;
  __m256 acc[LMC_MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < LMC_MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m256 x0 = _mm256_loadu_ps(b0 + 16 * k);
    __m256 x1 = _mm256_loadu_ps(b0 + 16 * k + 8);
    const float *a = ap + k * LMC_MR;
#pragma GCC unroll 8
    for (int i = 0; i < LMC_MR; i++) {
      __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, x0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, x1, acc[i][1]);
    }
  }
  __m256i mk[2] = {lmc__mask8(nr), lmc__mask8(nr - 8)};
  __m256 bn[2];
  for (int h = 0; h < 2; h++)
    bn[h] = (first && bias_n) ? _mm256_maskload_ps(bias_n + 8 * h, mk[h]) : _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < LMC_MR; i++) {
    if (i >= mr) break;
    float *ci = c + i * ldc;
    __m256 bm = _mm256_set1_ps((first && bias_m) ? bias_m[i] : 0.0f);
    for (int h = 0; h < 2; h++) {
      __m256 base = first ? _mm256_add_ps(bn[h], bm) : _mm256_maskload_ps(ci + 8 * h, mk[h]);
      _mm256_maskstore_ps(ci + 8 * h, mk[h], _mm256_add_ps(base, acc[i][h]));
    }
  }
}

/* GEMV: out[i][16p + j] = sum_k a[i*lda + k] * panel_p[k][j] for i < m (1..4), p < np. */
LMC__ALWAYS_INLINE void lmc__gemv_body(const int m, const int np, int64_t K, const float *a,
                                       int64_t lda, const float *bp, int64_t pstride,
                                       float *out) {
  __m256 acc[4][2 * LMC_GEMV_NP];
  for (int i = 0; i < m; i++)
    for (int h = 0; h < 2 * np; h++) acc[i][h] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; k++) {
    __m256 ai[4];
    for (int i = 0; i < m; i++) ai[i] = _mm256_broadcast_ss(a + i * lda + k);
    for (int h = 0; h < 2 * np; h++) {
      __m256 bv = _mm256_loadu_ps(bp + (h >> 1) * pstride + 16 * k + 8 * (h & 1));
      for (int i = 0; i < m; i++) acc[i][h] = _mm256_fmadd_ps(ai[i], bv, acc[i][h]);
    }
  }
  for (int i = 0; i < m; i++)
    for (int h = 0; h < 2 * np; h++)
      _mm256_storeu_ps(out + i * 16 * LMC_GEMV_NP + 8 * h, acc[i][h]);
}

/* 3-4 rows: one panel at a time (8 accumulators; two panels would need all 16 registers). */
#define LMC__GEMV_CASE(M)                                                         \
  case M:                                                                         \
    if (np == LMC_GEMV_NP && M <= 2)                                              \
      lmc__gemv_body(M, LMC_GEMV_NP, K, a, lda, bp, pstride, out);                \
    else                                                                          \
      for (int p = 0; p < np; p++)                                                \
        lmc__gemv_body(M, 1, K, a, lda, bp + p * pstride, pstride, out + 16 * p); \
    break;

/* out is [m][16 * LMC_GEMV_NP]; np <= LMC_GEMV_NP panels at stride pstride floats. */
static inline void lmc__gemv(int m, int np, int64_t K, const float *a, int64_t lda,
                             const float *bp, int64_t pstride, float *out) {
  switch (m) {
    LMC__GEMV_CASE(1)
    LMC__GEMV_CASE(2)
    LMC__GEMV_CASE(3)
    LMC__GEMV_CASE(4)
    default:
      break;
  }
}

#endif /* LMC_UKERNEL_AVX2_H */
