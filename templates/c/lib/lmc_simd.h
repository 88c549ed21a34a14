/* lmc_simd.h - a thin f32 vector layer for the kernels that are not GEMM micro-kernels
 * (attention, row ops, GEMV tails): one type lmc_vf of LMC_VL lanes and a handful of inline
 * operations, mapped to AVX-512 (LMC_AVX512), AVX2+FMA (LMC_AVX2), AArch64 NEON (LMC_NEON),
 * WebAssembly SIMD128 (LMC_WASM_SIMD) or portable C whose fixed-length lane loops the compiler
 * vectorizes for whatever the target offers. */
#ifndef LMC_SIMD_H
#define LMC_SIMD_H

#include <stdint.h>

#include "lmc_math.h"

#if defined(LMC_AVX512)
#if !defined(__AVX512F__) || !defined(__FMA__)
#error "LMC_AVX512 needs a compiler targeting avx512f and fma (e.g. -mavx512f -mfma)"
#endif
#include <immintrin.h>
#define LMC_VL 16
typedef __m512 lmc_vf;
static inline lmc_vf lmc_vzero(void) { return _mm512_setzero_ps(); }
static inline lmc_vf lmc_vset1(float x) { return _mm512_set1_ps(x); }
static inline lmc_vf lmc_vload(const float *p) { return _mm512_loadu_ps(p); }
static inline void lmc_vstore(float *p, lmc_vf v) { _mm512_storeu_ps(p, v); }
static inline __mmask16 lmc__vmask(int64_t n) { /* the low min(max(n, 0), 16) bits */
  n = n < 0 ? 0 : (n > 16 ? 16 : n);
  return (__mmask16)(0xffffu >> (16 - n));
}
/* The first min(n, LMC_VL) lanes from / to p; other lanes read as 0 and are not written. */
static inline lmc_vf lmc_vload_n(const float *p, int64_t n) {
  return _mm512_maskz_loadu_ps(lmc__vmask(n), p);
}
static inline void lmc_vstore_n(float *p, lmc_vf v, int64_t n) {
  _mm512_mask_storeu_ps(p, lmc__vmask(n), v);
}
static inline lmc_vf lmc_vadd(lmc_vf a, lmc_vf b) { return _mm512_add_ps(a, b); }
static inline lmc_vf lmc_vsub(lmc_vf a, lmc_vf b) { return _mm512_sub_ps(a, b); }
static inline lmc_vf lmc_vmul(lmc_vf a, lmc_vf b) { return _mm512_mul_ps(a, b); }
static inline lmc_vf lmc_vfma(lmc_vf a, lmc_vf b, lmc_vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline lmc_vf lmc_vmax(lmc_vf a, lmc_vf b) { return _mm512_max_ps(a, b); }
static inline float lmc_vsum(lmc_vf a) { return _mm512_reduce_add_ps(a); }
static inline float lmc_vhmax(lmc_vf a) { return _mm512_reduce_max_ps(a); }
/* a where a > lo, else lo: the exp clamp that lets NaN through (max_ps would not). */
static inline lmc_vf lmc__vclamp_lo(lmc_vf a, float lo) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(lo), _CMP_LT_OQ), a,
                              _mm512_set1_ps(lo));
}
static inline lmc_vf lmc__vclamp_hi(lmc_vf a, float hi) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(hi), _CMP_GT_OQ), a,
                              _mm512_set1_ps(hi));
}
static inline lmc_vf lmc__vround(lmc_vf a) {
  return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* 2^n for integral n in [-126, 127]. */
static inline lmc_vf lmc__vpow2i(lmc_vf n) {
  __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
  return _mm512_castsi512_ps(_mm512_slli_epi32(i, 23));
}

#elif defined(LMC_AVX2)
#if !defined(__AVX2__) || !defined(__FMA__)
#error "LMC_AVX2 needs a compiler targeting avx2 and fma (e.g. -mavx2 -mfma)"
#endif
#include <immintrin.h>
#define LMC_VL 8
typedef __m256 lmc_vf;
static inline lmc_vf lmc_vzero(void) { return _mm256_setzero_ps(); }
static inline lmc_vf lmc_vset1(float x) { return _mm256_set1_ps(x); }
static inline lmc_vf lmc_vload(const float *p) { return _mm256_loadu_ps(p); }
static inline void lmc_vstore(float *p, lmc_vf v) { _mm256_storeu_ps(p, v); }
static inline __m256i lmc__vmask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline lmc_vf lmc_vload_n(const float *p, int64_t n) {
  return _mm256_maskload_ps(p, lmc__vmask(n));
}
static inline void lmc_vstore_n(float *p, lmc_vf v, int64_t n) {
  _mm256_maskstore_ps(p, lmc__vmask(n), v);
}
static inline lmc_vf lmc_vadd(lmc_vf a, lmc_vf b) { return _mm256_add_ps(a, b); }
static inline lmc_vf lmc_vsub(lmc_vf a, lmc_vf b) { return _mm256_sub_ps(a, b); }
static inline lmc_vf lmc_vmul(lmc_vf a, lmc_vf b) { return _mm256_mul_ps(a, b); }
static inline lmc_vf lmc_vfma(lmc_vf a, lmc_vf b, lmc_vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline lmc_vf lmc_vmax(lmc_vf a, lmc_vf b) { return _mm256_max_ps(a, b); }
static inline float lmc_vsum(lmc_vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline float lmc_vhmax(lmc_vf a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline lmc_vf lmc__vclamp_lo(lmc_vf a, float lo) {
  __m256 l = _mm256_set1_ps(lo);
  return _mm256_blendv_ps(a, l, _mm256_cmp_ps(a, l, _CMP_LT_OQ));
}
static inline lmc_vf lmc__vclamp_hi(lmc_vf a, float hi) {
  __m256 h = _mm256_set1_ps(hi);
  return _mm256_blendv_ps(a, h, _mm256_cmp_ps(a, h, _CMP_GT_OQ));
}
static inline lmc_vf lmc__vround(lmc_vf a) {
  return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline lmc_vf lmc__vpow2i(lmc_vf n) {
  __m256i i = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(i, 23));
}

#elif defined(LMC_NEON)
#if !defined(__ARM_NEON) || !defined(__aarch64__)
#error "LMC_NEON needs a compiler targeting AArch64 (NEON is part of armv8-a)"
#endif
#include <arm_neon.h>
#define LMC_VL 4
#define LMC__SIMD_EXP 1 /* lmc_vexp below from the lane primitives */
typedef float32x4_t lmc_vf;
static inline lmc_vf lmc_vzero(void) { return vdupq_n_f32(0.0f); }
static inline lmc_vf lmc_vset1(float x) { return vdupq_n_f32(x); }
static inline lmc_vf lmc_vload(const float *p) { return vld1q_f32(p); }
static inline void lmc_vstore(float *p, lmc_vf v) { vst1q_f32(p, v); }
/* Tails: the first min(n, 4) lanes through a small buffer (other lanes read as 0). */
static inline lmc_vf lmc_vload_n(const float *p, int64_t n) {
  float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int l = 0; l < 4 && l < n; l++) t[l] = p[l];
  return vld1q_f32(t);
}
static inline void lmc_vstore_n(float *p, lmc_vf v, int64_t n) {
  float t[4];
  vst1q_f32(t, v);
  for (int l = 0; l < 4 && l < n; l++) p[l] = t[l];
}
static inline lmc_vf lmc_vadd(lmc_vf a, lmc_vf b) { return vaddq_f32(a, b); }
static inline lmc_vf lmc_vsub(lmc_vf a, lmc_vf b) { return vsubq_f32(a, b); }
static inline lmc_vf lmc_vmul(lmc_vf a, lmc_vf b) { return vmulq_f32(a, b); }
static inline lmc_vf lmc_vfma(lmc_vf a, lmc_vf b, lmc_vf c) { return vfmaq_f32(c, a, b); }
/* a > b ? a : b, b when unordered (the x86 maxps rule the other paths share; fmax would
 * return NaN for either operand). */
static inline lmc_vf lmc_vmax(lmc_vf a, lmc_vf b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
static inline float lmc_vsum(lmc_vf a) { return vaddvq_f32(a); }
static inline float lmc_vhmax(lmc_vf a) {
  float32x2_t m = vget_low_f32(lmc_vmax(a, vextq_f32(a, a, 2)));
  m = vbsl_f32(vcgt_f32(m, vrev64_f32(m)), m, vrev64_f32(m));
  return vget_lane_f32(m, 0);
}
/* a where a > lo, else lo (NaN passes, like the other paths' exp clamps). */
static inline lmc_vf lmc__vclamp_lo(lmc_vf a, float lo) {
  lmc_vf l = vdupq_n_f32(lo);
  return vbslq_f32(vcltq_f32(a, l), l, a);
}
static inline lmc_vf lmc__vclamp_hi(lmc_vf a, float hi) {
  lmc_vf h = vdupq_n_f32(hi);
  return vbslq_f32(vcgtq_f32(a, h), h, a);
}
static inline lmc_vf lmc__vround(lmc_vf a) { return vrndnq_f32(a); } /* ties to even */
/* 2^n for integral n in [-126, 127] (NaN lanes convert to 0; the product stays NaN). */
static inline lmc_vf lmc__vpow2i(lmc_vf n) {
  int32x4_t i = vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127));
  return vreinterpretq_f32_s32(vshlq_n_s32(i, 23));
}

#elif defined(LMC_WASM_SIMD)
#if !defined(__wasm_simd128__)
#error "LMC_WASM_SIMD needs a compiler targeting WebAssembly SIMD128 (-msimd128)"
#endif
#include <wasm_simd128.h>
#define LMC_VL 4
#define LMC__SIMD_EXP 1 /* lmc_vexp below from the lane primitives */
typedef v128_t lmc_vf;
static inline lmc_vf lmc_vzero(void) { return wasm_f32x4_splat(0.0f); }
static inline lmc_vf lmc_vset1(float x) { return wasm_f32x4_splat(x); }
static inline lmc_vf lmc_vload(const float *p) { return wasm_v128_load(p); }
static inline void lmc_vstore(float *p, lmc_vf v) { wasm_v128_store(p, v); }
/* Tails: the first min(n, 4) lanes through a small buffer (other lanes read as 0). */
static inline lmc_vf lmc_vload_n(const float *p, int64_t n) {
  float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int l = 0; l < 4 && l < n; l++) t[l] = p[l];
  return wasm_v128_load(t);
}
static inline void lmc_vstore_n(float *p, lmc_vf v, int64_t n) {
  float t[4];
  wasm_v128_store(t, v);
  for (int l = 0; l < 4 && l < n; l++) p[l] = t[l];
}
static inline lmc_vf lmc_vadd(lmc_vf a, lmc_vf b) { return wasm_f32x4_add(a, b); }
static inline lmc_vf lmc_vsub(lmc_vf a, lmc_vf b) { return wasm_f32x4_sub(a, b); }
static inline lmc_vf lmc_vmul(lmc_vf a, lmc_vf b) { return wasm_f32x4_mul(a, b); }
/* SIMD128 has no fused multiply-add: a product and a sum (one rounding more than FMA). */
static inline lmc_vf lmc_vfma(lmc_vf a, lmc_vf b, lmc_vf c) {
  return wasm_f32x4_add(wasm_f32x4_mul(a, b), c);
}
/* a > b ? a : b, b when unordered (the other paths' NaN rule); pmax is one x86 maxps. */
static inline lmc_vf lmc_vmax(lmc_vf a, lmc_vf b) { return wasm_f32x4_pmax(b, a); }
static inline float lmc_vsum(lmc_vf a) {
  lmc_vf s = wasm_f32x4_add(a, wasm_i32x4_shuffle(a, a, 2, 3, 0, 1));
  s = wasm_f32x4_add(s, wasm_i32x4_shuffle(s, s, 1, 0, 3, 2));
  return wasm_f32x4_extract_lane(s, 0);
}
static inline float lmc_vhmax(lmc_vf a) {
  lmc_vf s = lmc_vmax(a, wasm_i32x4_shuffle(a, a, 2, 3, 0, 1));
  s = lmc_vmax(s, wasm_i32x4_shuffle(s, s, 1, 0, 3, 2));
  return wasm_f32x4_extract_lane(s, 0);
}
/* a where a > lo, else lo (NaN passes, like the other paths' exp clamps). */
static inline lmc_vf lmc__vclamp_lo(lmc_vf a, float lo) {
  lmc_vf l = wasm_f32x4_splat(lo);
  return wasm_v128_bitselect(l, a, wasm_f32x4_lt(a, l));
}
static inline lmc_vf lmc__vclamp_hi(lmc_vf a, float hi) {
  lmc_vf h = wasm_f32x4_splat(hi);
  return wasm_v128_bitselect(h, a, wasm_f32x4_gt(a, h));
}
static inline lmc_vf lmc__vround(lmc_vf a) { return wasm_f32x4_nearest(a); } /* ties to even */
/* 2^n for integral n in [-126, 127] (NaN lanes: trunc_sat gives 0, the product stays NaN). */
static inline lmc_vf lmc__vpow2i(lmc_vf n) {
  v128_t i = wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127));
  return wasm_i32x4_shl(i, 23);
}

#else /* portable C: fixed 8-lane loops that compilers vectorize (SSE, NEON, WASM SIMD) */
#define LMC_VL 8
typedef struct {
  float v[LMC_VL];
} lmc_vf;
#define LMC__LANES(expr)            \
  lmc_vf r;                         \
  for (int l = 0; l < LMC_VL; l++) \
    r.v[l] = (expr);                \
  return r
static inline lmc_vf lmc_vzero(void) { LMC__LANES(0.0f); }
static inline lmc_vf lmc_vset1(float x) { LMC__LANES(x); }
static inline lmc_vf lmc_vload(const float *p) { LMC__LANES(p[l]); }
static inline void lmc_vstore(float *p, lmc_vf v) {
  for (int l = 0; l < LMC_VL; l++) p[l] = v.v[l];
}
static inline lmc_vf lmc_vload_n(const float *p, int64_t n) {
  lmc_vf r;
  for (int l = 0; l < LMC_VL; l++) r.v[l] = l < n ? p[l] : 0.0f;
  return r;
}
static inline void lmc_vstore_n(float *p, lmc_vf v, int64_t n) {
  for (int l = 0; l < LMC_VL && l < n; l++) p[l] = v.v[l];
}
static inline lmc_vf lmc_vadd(lmc_vf a, lmc_vf b) { LMC__LANES(a.v[l] + b.v[l]); }
static inline lmc_vf lmc_vsub(lmc_vf a, lmc_vf b) { LMC__LANES(a.v[l] - b.v[l]); }
static inline lmc_vf lmc_vmul(lmc_vf a, lmc_vf b) { LMC__LANES(a.v[l] * b.v[l]); }
static inline lmc_vf lmc_vfma(lmc_vf a, lmc_vf b, lmc_vf c) {
  LMC__LANES(a.v[l] * b.v[l] + c.v[l]);
}
static inline lmc_vf lmc_vmax(lmc_vf a, lmc_vf b) {
  LMC__LANES(lmc__select(a.v[l] > b.v[l], a.v[l], b.v[l]));
}
static inline float lmc_vsum(lmc_vf a) {
  float s = 0.0f;
  for (int l = 0; l < LMC_VL; l++) s += a.v[l];
  return s;
}
static inline float lmc_vhmax(lmc_vf a) {
  float m = a.v[0];
  for (int l = 1; l < LMC_VL; l++) m = a.v[l] > m ? a.v[l] : m;
  return m;
}
#endif

#if defined(LMC_AVX512) || defined(LMC_AVX2) || defined(LMC__SIMD_EXP)
/* e^x lane-wise, the algorithm of lmc_expf (same polynomial and clamps). */
static inline lmc_vf lmc_vexp(lmc_vf x) {
  x = lmc__vclamp_hi(lmc__vclamp_lo(x, -104.0f), 88.76f);
  lmc_vf n = lmc__vround(lmc_vmul(x, lmc_vset1(1.44269504088896341f)));
  lmc_vf r = lmc_vfma(n, lmc_vset1(-0.693359375f), x);
  r = lmc_vfma(n, lmc_vset1(2.12194440e-4f), r);
  lmc_vf p = lmc_vset1(1.9875691500e-4f);
  p = lmc_vfma(p, r, lmc_vset1(1.3981999507e-3f));
  p = lmc_vfma(p, r, lmc_vset1(8.3334519073e-3f));
  p = lmc_vfma(p, r, lmc_vset1(4.1665795894e-2f));
  p = lmc_vfma(p, r, lmc_vset1(1.6666665459e-1f));
  p = lmc_vfma(p, r, lmc_vset1(5.0000001201e-1f));
  p = lmc_vfma(lmc_vmul(p, r), r, lmc_vadd(r, lmc_vset1(1.0f)));
  /* n in [-150, 128]: two factors 2^(n/2) keep subnormal results and 2^128 * (p < 1) right */
  lmc_vf h = lmc__vround(lmc_vmul(n, lmc_vset1(0.5f)));
  return lmc_vmul(lmc_vmul(p, lmc__vpow2i(h)), lmc__vpow2i(lmc_vsub(n, h)));
}
#else
static inline lmc_vf lmc_vexp(lmc_vf x) { LMC__LANES(lmc_expf(x.v[l])); }
#endif

#endif /* LMC_SIMD_H */
