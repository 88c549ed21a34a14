/* lmc_ukernel_neon.h - AArch64 NEON GEMM/GEMV micro-kernels (included by lmc_kern.h only).
 * Operands: A micro-panel packed [k][LMC_MR]; B as 16-wide panels [k][16] (the layout of
 * lmc_gemm_pack), read as four q registers per k. Micro-tile 6 x 16 = 24 accumulators, 4 B
 * registers and 2 A registers: 30 of the 32 vector registers, no spills. */
#ifndef LMC_UKERNEL_NEON_H
#define LMC_UKERNEL_NEON_H

#include <arm_neon.h>

#ifndef LMC_MR
#define LMC_MR 6
#endif
#define LMC_NP 1 /* 16-wide panels per micro-tile */
#define LMC_GEMV_NP 2
#define LMC_GEMV_MAXM 4 /* rows the GEMV path takes */

#define LMC__ALWAYS_INLINE static inline __attribute__((always_inline))

/* The first w (0..4) lanes of v to p. */
LMC__ALWAYS_INLINE void lmc__neon_store_n(float *p, float32x4_t v, int64_t w) {
  if (w >= 4) {
    vst1q_f32(p, v);
    return;
  }
  float t[4];
  vst1q_f32(t, v);
  for (int64_t j = 0; j < w; j++) p[j] = t[j];
}

LMC__ALWAYS_INLINE float32x4_t lmc__neon_load_n(const float *p, int64_t w) {
  if (w >= 4) return vld1q_f32(p);
  float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t j = 0; j < w; j++) t[j] = p[j];
  return vld1q_f32(t);
}

/* c[0:mr, 0:nr] (+)= A_panel @ B (one 16-wide panel; bstride unused). */
static inline void lmc__ukernel(int64_t kc, const float *ap, const float *b0, int64_t bstride,
                                float *c, int64_t ldc, int64_t mr, int64_t nr, int first,
                                const float *bias_n, const float *bias_m) {
  (void)bstride;
  float32x4_t acc[LMC_MR][4];
#pragma GCC unroll 8
  for (int i = 0; i < LMC_MR; i++)
    for (int h = 0; h < 4; h++) acc[i][h] = vdupq_n_f32(0.0f);
  for (int64_t k = 0; k < kc; k++) {
    const float *b = b0 + 16 * k;
    float32x4_t x0 = vld1q_f32(b), x1 = vld1q_f32(b + 4);
    float32x4_t x2 = vld1q_f32(b + 8), x3 = vld1q_f32(b + 12);
    const float *a = ap + k * LMC_MR;
#pragma GCC unroll 8
    for (int i = 0; i < LMC_MR; i++) {
      float ai = a[i];
      acc[i][0] = vfmaq_n_f32(acc[i][0], x0, ai);
      acc[i][1] = vfmaq_n_f32(acc[i][1], x1, ai);
      acc[i][2] = vfmaq_n_f32(acc[i][2], x2, ai);
      acc[i][3] = vfmaq_n_f32(acc[i][3], x3, ai);
    }
  }
  float32x4_t bn[4];
  for (int h = 0; h < 4; h++)
    bn[h] = (first && bias_n) ? lmc__neon_load_n(bias_n + 4 * h, nr - 4 * h) : vdupq_n_f32(0.0f);
#pragma GCC unroll 8
  for (int i = 0; i < LMC_MR; i++) {
    if (i >= mr) break;
    float *ci = c + i * ldc;
    float32x4_t bm = vdupq_n_f32((first && bias_m) ? bias_m[i] : 0.0f);
    for (int h = 0; h < 4; h++) {
      int64_t w = nr - 4 * h;
      if (w <= 0) break;
      float32x4_t base = first ? vaddq_f32(bn[h], bm) : lmc__neon_load_n(ci + 4 * h, w);
      lmc__neon_store_n(ci + 4 * h, vaddq_f32(base, acc[i][h]), w);
    }
  }
}

/* One panel, M (1..4, a constant after inlining) rows: out[i][0:16]. */
LMC__ALWAYS_INLINE void lmc__gemv_panel(const int m, int64_t K, const float *a, int64_t lda,
                                        const float *b, float *out) {
  float32x4_t acc[4][4];
  for (int i = 0; i < m; i++)
    for (int h = 0; h < 4; h++) acc[i][h] = vdupq_n_f32(0.0f);
  for (int64_t k = 0; k < K; k++) {
    float32x4_t x0 = vld1q_f32(b + 16 * k), x1 = vld1q_f32(b + 16 * k + 4);
    float32x4_t x2 = vld1q_f32(b + 16 * k + 8), x3 = vld1q_f32(b + 16 * k + 12);
    for (int i = 0; i < m; i++) {
      float ai = a[i * lda + k];
      acc[i][0] = vfmaq_n_f32(acc[i][0], x0, ai);
      acc[i][1] = vfmaq_n_f32(acc[i][1], x1, ai);
      acc[i][2] = vfmaq_n_f32(acc[i][2], x2, ai);
      acc[i][3] = vfmaq_n_f32(acc[i][3], x3, ai);
    }
  }
  for (int i = 0; i < m; i++)
    for (int h = 0; h < 4; h++) vst1q_f32(out + i * 16 * LMC_GEMV_NP + 4 * h, acc[i][h]);
}

#define LMC__GEMV_CASE(M)                                                          \
  case M:                                                                          \
    for (int p = 0; p < np; p++)                                                   \
      lmc__gemv_panel(M, K, a, lda, bp + p * pstride, out + 16 * p);               \
    break;

/* GEMV: out[i][16p + j] = sum_k a[i*lda + k] * panel_p[k][j] for i < m (1..4), p < np; out is
 * [m][16 * LMC_GEMV_NP], the np <= LMC_GEMV_NP panels lie pstride floats apart. */
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

#endif /* LMC_UKERNEL_NEON_H */
