/* lmc_ukernel_wasm.h - WebAssembly SIMD128 GEMM/GEMV micro-kernels (included by lmc_kern.h
 * only). Operands: A micro-panel packed [k][LMC_MR]; B as 16-wide panels [k][16] (the layout of
 * lmc_gemm_pack). SIMD128 has 4-lane f32 vectors and no FMA, and the engines that run it (V8,
 * wasmtime) map v128 values onto the 16 SSE/AVX registers of x86-64 (or 32 NEON ones), so a
 * micro-tile keeps at most 8 accumulators live: LMC_MR rows x 8 columns, the 16-wide panel in
 * two column halves (the A panel, kc x LMC_MR floats, is read twice from L1). */
#ifndef LMC_UKERNEL_WASM_H
#define LMC_UKERNEL_WASM_H

#include <wasm_simd128.h>

#ifndef LMC_MR
#define LMC_MR 4
#endif
#define LMC_NP 1        /* 16-wide panels per micro-tile */
#define LMC_GEMV_NP 2   /* panels per GEMV call */
#define LMC_GEMV_MAXM 4 /* rows the GEMV path takes */

#define LMC__ALWAYS_INLINE static inline __attribute__((always_inline))

/* v into c[0:w] (w in 0..4) */
LMC__ALWAYS_INLINE void lmc__wstore_n(float *c, v128_t v, int64_t w) {
  if (w >= 4) {
    wasm_v128_store(c, v);
  } else if (w > 0) {
    float t[4];
    wasm_v128_store(t, v);
    for (int64_t j = 0; j < w; j++) c[j] = t[j];
  }
}

LMC__ALWAYS_INLINE v128_t lmc__wload_n(const float *c, int64_t w) {
  if (w >= 4) return wasm_v128_load(c);
  float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t j = 0; j < w; j++) t[j] = c[j];
  return wasm_v128_load(t);
}

/* c[0:mr, 8h:8h+8] (+)= A_panel @ B[:, 8h:8h+8], columns past nr untouched. */
LMC__ALWAYS_INLINE void lmc__uk_half(const int h, int64_t kc, const float *ap, const float *b0,
                                     float *c, int64_t ldc, int64_t mr, int64_t nr, int first,
                                     const float *bias_n, const float *bias_m) {
  v128_t acc[LMC_MR][2];
  for (int i = 0; i < LMC_MR; i++) acc[i][0] = acc[i][1] = wasm_f32x4_splat(0.0f);
  const float *b = b0 + 8 * h;
  for (int64_t k = 0; k < kc; k++) {
    v128_t x0 = wasm_v128_load(b + 16 * k);
    v128_t x1 = wasm_v128_load(b + 16 * k + 4);
    const float *a = ap + k * LMC_MR;
    for (int i = 0; i < LMC_MR; i++) {
      v128_t ai = wasm_v128_load32_splat(a + i);
      acc[i][0] = wasm_f32x4_add(acc[i][0], wasm_f32x4_mul(ai, x0));
      acc[i][1] = wasm_f32x4_add(acc[i][1], wasm_f32x4_mul(ai, x1));
    }
  }
  int64_t w[2] = {nr - 8 * h, nr - 8 * h - 4};
  v128_t bn[2];
  for (int q = 0; q < 2; q++)
    bn[q] = (first && bias_n) ? lmc__wload_n(bias_n + 8 * h + 4 * q, w[q])
                              : wasm_f32x4_splat(0.0f);
  for (int i = 0; i < LMC_MR; i++) {
    if (i >= mr) break;
    float *ci = c + i * ldc + 8 * h;
    v128_t bm = wasm_f32x4_splat((first && bias_m) ? bias_m[i] : 0.0f);
    for (int q = 0; q < 2; q++) {
      v128_t base = first ? wasm_f32x4_add(bn[q], bm) : lmc__wload_n(ci + 4 * q, w[q]);
      lmc__wstore_n(ci + 4 * q, wasm_f32x4_add(base, acc[i][q]), w[q]);
    }
  }
}

/* c[0:mr, 0:nr] (+)= A_panel @ B (one 16-wide panel; bstride unused). */
static inline void lmc__ukernel(int64_t kc, const float *ap, const float *b0, int64_t bstride,
                                float *c, int64_t ldc, int64_t mr, int64_t nr, int first,
                                const float *bias_n, const float *bias_m) {
  (void)bstride;
  lmc__uk_half(0, kc, ap, b0, c, ldc, mr, nr, first, bias_n, bias_m);
  if (nr > 8) lmc__uk_half(1, kc, ap, b0, c, ldc, mr, nr, first, bias_n, bias_m);
}

/* GEMV body: out[i][4j:4j+4] for i < m, j in [j0, j0 + nv) where vector j is columns
 * 4(j % 4) .. of panel j / 4; m * nv <= 8 accumulators. */
LMC__ALWAYS_INLINE void lmc__gemv_body(const int m, const int j0, const int nv, int64_t K,
                                       const float *a, int64_t lda, const float *bp,
                                       int64_t pstride, float *out) {
  v128_t acc[4][8];
  for (int i = 0; i < m; i++)
    for (int j = 0; j < nv; j++) acc[i][j] = wasm_f32x4_splat(0.0f);
  const float *bj[8];
  for (int j = 0; j < nv; j++) bj[j] = bp + ((j0 + j) >> 2) * pstride + 4 * ((j0 + j) & 3);
  for (int64_t k = 0; k < K; k++) {
    v128_t ai[4];
    for (int i = 0; i < m; i++) ai[i] = wasm_v128_load32_splat(a + i * lda + k);
    for (int j = 0; j < nv; j++) {
      v128_t bv = wasm_v128_load(bj[j] + 16 * k);
      for (int i = 0; i < m; i++) acc[i][j] = wasm_f32x4_add(acc[i][j], wasm_f32x4_mul(ai[i], bv));
    }
  }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < nv; j++)
      wasm_v128_store(out + i * 16 * LMC_GEMV_NP + 4 * (j0 + j), acc[i][j]);
}

/* out is [m][16 * LMC_GEMV_NP]; np <= LMC_GEMV_NP panels at stride pstride floats. One or two
 * rows: a panel per pass (one weight stream at a time: ~25% more bandwidth from DRAM than two
 * interleaved panels in V8); three or four rows: half a panel per pass. */
static inline void lmc__gemv(int m, int np, int64_t K, const float *a, int64_t lda,
                             const float *bp, int64_t pstride, float *out) {
  switch (m) {
    case 1:
      for (int j = 0; j < 4 * np; j += 4) lmc__gemv_body(1, j, 4, K, a, lda, bp, pstride, out);
      break;
    case 2:
      for (int j = 0; j < 4 * np; j += 4) lmc__gemv_body(2, j, 4, K, a, lda, bp, pstride, out);
      break;
    case 3:
      for (int j = 0; j < 4 * np; j += 2) lmc__gemv_body(3, j, 2, K, a, lda, bp, pstride, out);
      break;
    case 4:
      for (int j = 0; j < 4 * np; j += 2) lmc__gemv_body(4, j, 2, K, a, lda, bp, pstride, out);
      break;
    default:
      break;
  }
}

#endif /* LMC_UKERNEL_WASM_H */
