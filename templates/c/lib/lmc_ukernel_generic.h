/* lmc_ukernel_generic.h - portable C GEMM/GEMV micro-kernels (included by lmc_kern.h only).
 * Same operand layouts as the SIMD kernels; the 16-wide inner loops are written so that the
 * compiler vectorizes them for the target's vectors (SSE, NEON, WASM SIMD). */
#ifndef LMC_UKERNEL_GENERIC_H
#define LMC_UKERNEL_GENERIC_H

#define LMC_MR 4
#define LMC_NP 1
#define LMC_GEMV_NP 2
#define LMC_GEMV_MAXM 4 /* rows the GEMV path takes */

/* c[0:mr, 0:nr] (+)= A_panel @ B (one 16-wide panel; bstride unused). */
static inline void lmc__ukernel(int64_t kc, const float *ap, const float *b0, int64_t bstride,
                                float *c, int64_t ldc, int64_t mr, int64_t nr, int first,
                                const float *bias_n, const float *bias_m) {
  (void)bstride;
  float acc[LMC_MR][16];
  for (int i = 0; i < LMC_MR; i++)
    for (int j = 0; j < 16; j++) acc[i][j] = 0.0f;
  for (int64_t k = 0; k < kc; k++) {
    const float *b = b0 + 16 * k;
    const float *a = ap + k * LMC_MR;
    for (int i = 0; i < LMC_MR; i++) {
      float ai = a[i];
      for (int j = 0; j < 16; j++) acc[i][j] += ai * b[j];
    }
  }
  int64_t w = nr > 16 ? 16 : nr;
  for (int64_t i = 0; i < mr && i < LMC_MR; i++) {
    float *ci = c + i * ldc;
    float bm = (first && bias_m) ? bias_m[i] : 0.0f;
    for (int64_t j = 0; j < w; j++) {
      float base = first ? bm + (bias_n ? bias_n[j] : 0.0f) : ci[j];
      ci[j] = base + acc[i][j];
    }
  }
}

/* GEMV: out[i][16p + j] = sum_k a[i*lda + k] * panel_p[k][j] for i < m (1..4), p < np. */
static inline void lmc__gemv(int m, int np, int64_t K, const float *a, int64_t lda,
                             const float *bp, int64_t pstride, float *out) {
  for (int p = 0; p < np; p++) {
    const float *b = bp + p * pstride;
    float acc[4][16];
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 16; j++) acc[i][j] = 0.0f;
    for (int64_t k = 0; k < K; k++) {
      const float *bk = b + 16 * k;
      for (int i = 0; i < m; i++) {
        float ai = a[i * lda + k];
        for (int j = 0; j < 16; j++) acc[i][j] += ai * bk[j];
      }
    }
    for (int i = 0; i < m; i++)
      for (int j = 0; j < 16; j++) out[i * 16 * LMC_GEMV_NP + 16 * p + j] = acc[i][j];
  }
}

#endif /* LMC_UKERNEL_GENERIC_H */
