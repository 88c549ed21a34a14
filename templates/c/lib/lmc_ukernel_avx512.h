/* lmc_ukernel_avx512.h - AVX-512 GEMM/GEMV micro-kernels (included by lmc_kern.h only).
 * Operands: A micro-panel packed [k][LMC_MR]; B as 16-wide panels [k][16] (the layout of
 * lmc_gemm_pack), panel p of a micro-tile at b + p * bstride. Micro-tile 8 x 48 = 24 zmm
 * accumulators, three B loads and LMC_MR broadcasts per k: with 8 x 32 (16 accumulators) the
 * loop reached ~110 GFLOP/s of ~175 on an Ice Lake core, 8 x 48 ~170 (L1-resident operands). */
#ifndef LMC_UKERNEL_AVX512_H
#define LMC_UKERNEL_AVX512_H

#include <immintrin.h>

#ifndef LMC_MR
#define LMC_MR 8
#endif
#define LMC_NP 3    /* 16-wide panels per micro-tile */
/* GEMV: up to LMC_GEMV_MAXM rows; panels at once: 8 for M <= 2, 4 for M <= 4, else 2. Eight
 * panel streams in flight instead of four took the 4096^2 GEMV from DRAM on an Ice Lake core
 * from 87% to 95% of a plain read sweep of its bytes. */
#define LMC_GEMV_NP 8
#define LMC_GEMV_MAXM 8
/* Blocking for the 8 x 48 tile: an M block of 128 rows (a 128-token prompt packs A once and
 * streams the weights once; [128][KC] floats = 256 KB stays in L2) and N blocks of 6 tiles
 * (a multiple of the tile width, so no block ends in a narrow tile). */
#ifndef LMC_MC_MAX
#define LMC_MC_MAX (LMC_MR * 16)
#endif
#ifndef LMC_NC_MAX
#define LMC_NC_MAX (16 * LMC_NP * 6)
#endif

#define LMC__ALWAYS_INLINE static inline __attribute__((always_inline))

/* Adds (or, when `first`, writes with bias) acc rows into c; columns beyond nr are masked. */
LMC__ALWAYS_INLINE void lmc__uk_store(__m512 acc[LMC_MR][LMC_NP], const int m, const int np,
                                      float *c, int64_t ldc, int64_t mr, int64_t nr, int first,
                                      const float *bias_n, const float *bias_m) {
  __mmask16 mk[LMC_NP];
  __m512 bn[LMC_NP];
  for (int p = 0; p < np; p++) {
    int64_t w = nr - 16 * p;
    w = w < 0 ? 0 : (w > 16 ? 16 : w);
    mk[p] = (__mmask16)((1u << w) - 1u);
    bn[p] = (first && bias_n) ? _mm512_maskz_loadu_ps(mk[p], bias_n + 16 * p)
                              : _mm512_setzero_ps();
  }
#pragma GCC unroll 16
  for (int i = 0; i < m; i++) {
    if (i >= mr) break;
    float *ci = c + i * ldc;
    __m512 bm = _mm512_set1_ps((first && bias_m) ? bias_m[i] : 0.0f);
#pragma GCC unroll 4
    for (int p = 0; p < np; p++) {
      __m512 base = first ? _mm512_add_ps(bn[p], bm) : _mm512_maskz_loadu_ps(mk[p], ci + 16 * p);
      _mm512_mask_storeu_ps(ci + 16 * p, mk[p], _mm512_add_ps(base, acc[i][p]));
    }
  }
}

/* m (<= LMC_MR) rows: the A micro-panel is [k][m]. */
LMC__ALWAYS_INLINE void lmc__uk_body(const int m, const int np, int64_t kc, const float *ap,
                                     const float *bp, int64_t bstride, float *c, int64_t ldc,
                                     int64_t mr, int64_t nr, int first, const float *bias_n,
                                     const float *bias_m) {
  __m512 acc[LMC_MR][LMC_NP];
#pragma GCC unroll 16
  for (int i = 0; i < m; i++) {
#pragma GCC unroll 4
    for (int p = 0; p < np; p++) acc[i][p] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; k++) {
    __m512 b[LMC_NP];
#pragma GCC unroll 4
    for (int p = 0; p < np; p++) b[p] = _mm512_loadu_ps(bp + p * bstride + 16 * k);
    const float *a = ap + k * m;
#pragma GCC unroll 16
    for (int i = 0; i < m; i++) {
      __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
      for (int p = 0; p < np; p++) acc[i][p] = _mm512_fmadd_ps(ai, b[p], acc[i][p]);
    }
  }
  lmc__uk_store(acc, m, np, c, ldc, mr, nr, first, bias_n, bias_m);
}

/* m-row tile over ceil(nr / 16) panels (only the panels that hold columns are read). */
LMC__ALWAYS_INLINE void lmc__uk_rows(const int m, int64_t kc, const float *ap, const float *b0,
                                     int64_t bstride, float *c, int64_t ldc, int64_t mr,
                                     int64_t nr, int first, const float *bias_n,
                                     const float *bias_m) {
  if (nr > 32)
    lmc__uk_body(m, 3, kc, ap, b0, bstride, c, ldc, mr, nr, first, bias_n, bias_m);
  else if (nr > 16)
    lmc__uk_body(m, 2, kc, ap, b0, bstride, c, ldc, mr, nr, first, bias_n, bias_m);
  else
    lmc__uk_body(m, 1, kc, ap, b0, bstride, c, ldc, mr, nr, first, bias_n, bias_m);
}

/* c[0:mr, 0:nr] (+)= A_panel @ B; panel p of B at b0 + p * bstride. */
static inline void lmc__ukernel(int64_t kc, const float *ap, const float *b0, int64_t bstride,
                                float *c, int64_t ldc, int64_t mr, int64_t nr, int first,
                                const float *bias_n, const float *bias_m) {
  lmc__uk_rows(LMC_MR, kc, ap, b0, bstride, c, ldc, mr, nr, first, bias_n, bias_m);
}

#if LMC_MR == 8
/* A second micro-tile height for callers that choose the row count per shape (convolution
 * with pixels as rows: 7 x 7 = 49 pixels fill seven 7-row tiles exactly). */
#define LMC_MR_ALT 7
static inline void lmc__ukernel_alt(int64_t kc, const float *ap, const float *b0,
                                    int64_t bstride, float *c, int64_t ldc, int64_t mr,
                                    int64_t nr, int first, const float *bias_n,
                                    const float *bias_m) {
  lmc__uk_rows(7, kc, ap, b0, bstride, c, ldc, mr, nr, first, bias_n, bias_m);
}
#endif

/* GEMV: out[i][16p + j] = sum_k a[i*lda + k] * panel_p[k][j] for i < m (1..8), p < np. */
LMC__ALWAYS_INLINE void lmc__gemv_body(const int m, const int np, int64_t K, const float *a,
                                       int64_t lda, const float *bp, int64_t pstride,
                                       float *out) {
  __m512 acc[LMC_GEMV_MAXM][LMC_GEMV_NP];
  for (int i = 0; i < m; i++)
    for (int p = 0; p < np; p++) acc[i][p] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k++) {
    __m512 ai[LMC_GEMV_MAXM];
    for (int i = 0; i < m; i++) ai[i] = _mm512_set1_ps(a[i * lda + k]);
    for (int p = 0; p < np; p++) {
      const float *b = bp + p * pstride + 16 * k;
      __m512 bv = _mm512_loadu_ps(b);
      for (int i = 0; i < m; i++) acc[i][p] = _mm512_fmadd_ps(ai[i], bv, acc[i][p]);
    }
  }
  for (int i = 0; i < m; i++)
    for (int p = 0; p < np; p++)
      _mm512_storeu_ps(out + i * 16 * LMC_GEMV_NP + 16 * p, acc[i][p]);
}

#define LMC__GEMV_CASE(M, NP)                                                         \
  case M:                                                                             \
    for (int p = 0; p < np; p += NP) {                                                \
      if (p + NP <= np)                                                               \
        lmc__gemv_body(M, NP, K, a, lda, bp + p * pstride, pstride, out + 16 * p);    \
      else                                                                            \
        for (int q = p; q < np; q++)                                                  \
          lmc__gemv_body(M, 1, K, a, lda, bp + q * pstride, pstride, out + 16 * q);   \
    }                                                                                 \
    break;

/* out is [m][16 * LMC_GEMV_NP]; np <= LMC_GEMV_NP panels at stride pstride floats. */
static inline void lmc__gemv(int m, int np, int64_t K, const float *a, int64_t lda,
                             const float *bp, int64_t pstride, float *out) {
  switch (m) {
    LMC__GEMV_CASE(1, 8)
    LMC__GEMV_CASE(2, 8)
    LMC__GEMV_CASE(3, 4)
    LMC__GEMV_CASE(4, 4)
    LMC__GEMV_CASE(5, 2)
    LMC__GEMV_CASE(6, 2)
    LMC__GEMV_CASE(7, 2)
    LMC__GEMV_CASE(8, 2)
    default:
      break;
  }
}

#endif /* LMC_UKERNEL_AVX512_H */
