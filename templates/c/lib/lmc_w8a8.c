/* lmc_w8a8.c - int8 weights x int8 activations (lmc_linear_w8a8_f32). Per-token (or static)
 * activation quantization happens while packing A (one pass over the row for max|x|, one
 * quantizing it into the micro-kernel's tile layout; no pass over memory of its own), then int32
 * sums over the weights pre-packed as lmc.gemm_s8.panel16k4.v1 (W^T, packing.pack_gemm_s8):
 * AVX-512 VNNI vpdpbusd (A shifted to u8 by +128, the shift removed with 128 * colsum(W)),
 * AVX2 vpmaddubsw/vpmaddwd (|w| times q * sign(w), exact for q in -127..127; a block holding a
 * -128 code, possible only with a static scale, takes lmc_int8.c's exact pmaddwd kernel), else
 * lmc_int8.c's micro-kernel (sdot, NEON smull, WASM i32x4.dot_i16x8_s, portable). The sums are
 * exact; y = ((float)acc * sx) * sw + b. */
#include "lmc_kern.h"

#include <math.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#if defined(__GNUC__)
#define LMC__QI static inline __attribute__((always_inline))
#else
#define LMC__QI static inline
#endif

#if defined(LMC_AVX512) && defined(__AVX512VNNI__)
#define LMC__A8_PATH "vnni"
#define LMC__A8_VNNI 1
#define LMC__A8_PN 4
#elif defined(__AVX2__)
#define LMC__A8_PATH "avx2"
#define LMC__A8_MADDUBS 1
#define LMC__A8_PN 1
#else
#define LMC__A8_PATH lmc_gemm_s8_path()
#define LMC__A8_PN 1
#endif

const char *lmc_w8a8_path(void) { return LMC__A8_PATH; }

/* max |x[k]| over n floats (0 for n = 0). */
static float lmc__absmax(const float *x, int64_t n) {
  lmc_vf m = lmc_vzero(), z = lmc_vzero();
  int64_t k = 0;
  for (; k + LMC_VL <= n; k += LMC_VL) {
    lmc_vf v = lmc_vload(x + k);
    m = lmc_vmax(m, lmc_vmax(v, lmc_vsub(z, v)));
  }
  if (k < n) {
    lmc_vf v = lmc_vload_n(x + k, n - k);
    m = lmc_vmax(m, lmc_vmax(v, lmc_vsub(z, v)));
  }
  return lmc_vhmax(m);
}

/* q[k] = clip(round_half_even(x[k] / s), -128, 127) for k < n (s > 0); the smallest code. */
static int lmc__quant_i8(const float *x, int64_t n, float s, int8_t *q) {
  int64_t k = 0;
  int lo = 127;
#if defined(LMC_AVX512)
  const __m512 vs = _mm512_set1_ps(s), vlo = _mm512_set1_ps(-128.0f), vhi = _mm512_set1_ps(127.0f);
  __m512i mn = _mm512_set1_epi32(127);
  for (; k + 16 <= n; k += 16) {
    __m512 v = _mm512_div_ps(_mm512_loadu_ps(x + k), vs);
    __m512i i = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, vlo), vhi));
    mn = _mm512_min_epi32(mn, i);
    _mm_storeu_si128((__m128i *)(q + k), _mm512_cvtepi32_epi8(i));
  }
  lo = _mm512_reduce_min_epi32(mn);
#elif defined(__AVX2__)
  const __m256 vs = _mm256_set1_ps(s), vlo = _mm256_set1_ps(-128.0f), vhi = _mm256_set1_ps(127.0f);
  __m256i mn = _mm256_set1_epi32(127);
  for (; k + 8 <= n; k += 8) {
    __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + k), vs);
    __m256i i = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, vlo), vhi));
    mn = _mm256_min_epi32(mn, i);
    __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64((__m128i *)(q + k), _mm_packs_epi16(p16, p16));
  }
  int32_t t[8];
  _mm256_storeu_si256((__m256i *)t, mn);
  for (int l = 0; l < 8; l++) lo = t[l] < lo ? t[l] : lo;
#elif defined(LMC_NEON)
  const float32x4_t vs = vdupq_n_f32(s), vlo = vdupq_n_f32(-128.0f), vhi = vdupq_n_f32(127.0f);
  int32x4_t mn = vdupq_n_s32(127);
  for (; k + 4 <= n; k += 4) {
    float32x4_t v = vminq_f32(vmaxq_f32(vdivq_f32(vld1q_f32(x + k), vs), vlo), vhi);
    int32x4_t i = vcvtnq_s32_f32(v); /* round to nearest, ties to even */
    mn = vminq_s32(mn, i);
    int8x8_t b = vmovn_s16(vcombine_s16(vmovn_s32(i), vmovn_s32(i)));
    vst1_lane_s32((int32_t *)(void *)(q + k), vreinterpret_s32_s8(b), 0);
  }
  lo = vminvq_s32(mn);
#elif defined(LMC_WASM_SIMD)
  const v128_t vs = wasm_f32x4_splat(s), vlo = wasm_f32x4_splat(-128.0f);
  const v128_t vhi = wasm_f32x4_splat(127.0f);
  v128_t mn = wasm_i32x4_splat(127);
  for (; k + 4 <= n; k += 4) {
    v128_t v = wasm_f32x4_div(wasm_v128_load(x + k), vs);
    v = wasm_f32x4_nearest(wasm_f32x4_pmin(wasm_f32x4_pmax(v, vlo), vhi));
    v128_t i = wasm_i32x4_trunc_sat_f32x4(v);
    mn = wasm_i32x4_min(mn, i);
    v128_t h = wasm_i16x8_narrow_i32x4(i, i), b = wasm_i8x16_narrow_i16x8(h, h);
    wasm_v128_store32_lane(q + k, b, 0);
  }
  for (int l = 0; l < 4; l++) {
    int32_t e = wasm_i32x4_extract_lane(mn, 0);
    lo = e < lo ? e : lo;
    mn = wasm_i32x4_shuffle(mn, mn, 1, 2, 3, 0);
  }
#endif
  for (; k < n; k++) {
    float v = x[k] / s;
    v = v > -128.0f ? v : -128.0f;
    v = v < 127.0f ? v : 127.0f;
    int i = (int)rintf(v);
    lo = i < lo ? i : lo;
    q[k] = (int8_t)i;
  }
  return lo;
}

typedef struct {
  const lmc_linear_w8a8_args *a;
  int64_t np, kp, mc, mblocks, group, ngroups;
} lmc__a8_plan;

/* Rows m0..m0+mc of x, quantized, as tiles of 4 rows: [t][k/4][4 rows][4 k] (rows past mc and k
 * past K are 0), each byte ^ flip; sx[i] the row's scale. Returns whether a code is -128. */
static int lmc__a8_pack(const lmc__a8_plan *pl, int64_t m0, int64_t mc, uint8_t flip,
                        uint8_t *dst, float *sx) {
  const lmc_linear_w8a8_args *a = pl->a;
  const int64_t kp = pl->kp, K = a->K;
  const uint32_t fw = 0x01010101u * flip;
  int8_t q[256];
  int lo = 0;
  for (int64_t r = 0; r < lmc__cdiv(mc, 4) * 4; r++) {
    uint8_t *d = dst + (r / 4) * 4 * kp + 4 * (r % 4);
    float s = 0.0f;
    if (r < mc) {
      const float *x = a->x + (m0 + r) * a->ldx;
      s = a->x_scale ? *a->x_scale : lmc__absmax(x, K) / 127.0f;
    }
    sx[r] = s;
    for (int64_t k = 0; k < kp; k += 256) {
      int64_t n = r < mc && s > 0.0f ? lmc__max(0, lmc__min(256, K - k)) : 0;
      int64_t nk = lmc__min(256, kp - k);
      if (n > 0) {
        int l = lmc__quant_i8(a->x + (m0 + r) * a->ldx + k, n, s, q);
        lo = l < lo ? l : lo;
      }
      for (int64_t t = n; t < nk; t++) q[t] = 0;
      for (int64_t t = 0; t < nk; t += 4) {
        uint32_t w;
        memcpy(&w, q + t, 4);
        w ^= fw;
        memcpy(d + 16 * ((k + t) / 4), &w, 4);
      }
    }
  }
  return lo == -128;
}

#if defined(LMC__A8_VNNI)
/* acc[i][p] (16 int32 lanes: columns of panel p) += sum over kg groups of 4 k, u8 A x s8 B. */
LMC__QI void lmc__vnni_tile(int64_t kg, const uint8_t *ap, const int8_t *bp, int64_t pstride,
                            const int PN, __m512i acc[4][LMC__A8_PN]) {
  for (int i = 0; i < 4; i++)
    for (int p = 0; p < PN; p++) acc[i][p] = _mm512_setzero_si512();
  for (int64_t g = 0; g < kg; g++) {
    __m512i b[LMC__A8_PN];
    for (int p = 0; p < PN; p++)
      b[p] = _mm512_loadu_si512((const void *)(bp + p * pstride + 64 * g));
    for (int i = 0; i < 4; i++) {
      int32_t w;
      memcpy(&w, ap + 16 * g + 4 * i, 4);
      __m512i av = _mm512_set1_epi32(w);
      for (int p = 0; p < PN; p++) acc[i][p] = _mm512_dpbusd_epi32(acc[i][p], av, b[p]);
    }
  }
}

LMC__QI void lmc__vnni_block(const lmc__a8_plan *pl, int64_t m0, int64_t rows, int64_t p,
                             const int PN, const uint8_t *ap, const float *sx) {
  const lmc_linear_w8a8_args *a = pl->a;
  const int64_t pstride = pl->kp * 16;
  const int32_t *colsum = (const int32_t *)(const void *)(a->w_packed + pl->np * pstride);
  __m512i acc[4][LMC__A8_PN];
  lmc__vnni_tile(pl->kp / 4, ap, (const int8_t *)a->w_packed + p * pstride, pstride, PN, acc);
  for (int q = 0; q < PN; q++) {
    int64_t n = 16 * (p + q), cols = lmc__min(16, a->N - n);
    __mmask16 mk = (__mmask16)(0xffffu >> (16 - cols));
    __m512i c128 = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(colsum + n)), 7);
    __m512 sw = _mm512_maskz_loadu_ps(mk, a->w_scales + n);
    __m512 b = a->bias ? _mm512_maskz_loadu_ps(mk, a->bias + n) : _mm512_setzero_ps();
    for (int64_t i = 0; i < rows; i++) {
      __m512 y = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][q], c128));
      y = _mm512_mul_ps(_mm512_mul_ps(y, _mm512_set1_ps(sx[i])), sw);
      _mm512_mask_storeu_ps(a->y + (m0 + i) * a->ldy + n, mk, _mm512_add_ps(y, b));
    }
  }
}
#endif

#if defined(LMC__A8_MADDUBS)
/* acc[i][16] = sum over kg groups of q * w for 4 rows x one panel: vpmaddubsw(|w|, q sign(w))
 * (exact while q > -128), then vpmaddwd with ones into int32. */
static void lmc__maddubs_tile(int64_t kg, const int8_t *ap, const int8_t *bp, int32_t *out) {
  __m256i acc[4][2];
  const __m256i ones = _mm256_set1_epi16(1);
  for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  for (int64_t g = 0; g < kg; g++) {
    __m256i b0 = _mm256_loadu_si256((const __m256i *)(bp + 64 * g));
    __m256i b1 = _mm256_loadu_si256((const __m256i *)(bp + 64 * g + 32));
    __m256i u0 = _mm256_abs_epi8(b0), u1 = _mm256_abs_epi8(b1);
    for (int i = 0; i < 4; i++) {
      int32_t w;
      memcpy(&w, ap + 16 * g + 4 * i, 4);
      __m256i av = _mm256_set1_epi32(w);
      __m256i s0 = _mm256_maddubs_epi16(u0, _mm256_sign_epi8(av, b0));
      __m256i s1 = _mm256_maddubs_epi16(u1, _mm256_sign_epi8(av, b1));
      acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(s0, ones));
      acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(s1, ones));
    }
  }
  for (int i = 0; i < 4; i++) {
    _mm256_storeu_si256((__m256i *)(out + 16 * i), acc[i][0]);
    _mm256_storeu_si256((__m256i *)(out + 16 * i + 8), acc[i][1]);
  }
}
#endif

#if !defined(LMC__A8_VNNI)
/* int32 tile [4][16] -> y for `rows` rows of panel p. */
static void lmc__a8_store(const lmc_linear_w8a8_args *a, int64_t m0, int64_t rows, int64_t p,
                          const int32_t *acc, const float *sx) {
  int64_t n0 = 16 * p, cols = lmc__min(16, a->N - n0);
  for (int64_t i = 0; i < rows; i++) {
    float *y = a->y + (m0 + i) * a->ldy + n0;
    for (int64_t j = 0; j < cols; j++) {
      float t = ((float)acc[16 * i + j] * sx[i]) * a->w_scales[n0 + j];
      y[j] = a->bias ? t + a->bias[n0 + j] : t;
    }
  }
}
#endif

static void lmc__a8_block(const lmc__a8_plan *pl, int64_t m0, int64_t mc, int64_t p0,
                          int64_t p1) {
  uint8_t *apack = (uint8_t *)lmc__scratch();
  float sx[64];
#if defined(LMC__A8_VNNI)
  lmc__a8_pack(pl, m0, mc, 0x80, apack, sx);
  int64_t p = p0;
  for (; p + LMC__A8_PN <= p1; p += LMC__A8_PN)
    for (int64_t t = 0; t * 4 < mc; t++)
      lmc__vnni_block(pl, m0 + 4 * t, lmc__min(4, mc - 4 * t), p, LMC__A8_PN,
                      apack + t * 4 * pl->kp, sx + 4 * t);
  for (; p < p1; p++)
    for (int64_t t = 0; t * 4 < mc; t++)
      lmc__vnni_block(pl, m0 + 4 * t, lmc__min(4, mc - 4 * t), p, 1, apack + t * 4 * pl->kp,
                      sx + 4 * t);
#else
  const lmc_linear_w8a8_args *a = pl->a;
  int has_m128 = lmc__a8_pack(pl, m0, mc, 0, apack, sx);
  int32_t acc[64];
  const int64_t pstride = pl->kp * 16;
  for (int64_t p = p0; p < p1; p++)
    for (int64_t t = 0; t * 4 < mc; t++) {
      const int8_t *ap = (const int8_t *)apack + t * 4 * pl->kp;
      const int8_t *bp = (const int8_t *)a->w_packed + p * pstride;
#if defined(LMC__A8_MADDUBS)
      if (!has_m128)
        lmc__maddubs_tile(pl->kp / 4, ap, bp, acc);
      else
#endif
        lmc__s8_tile(pl->kp / 4, ap, bp, acc);
      lmc__a8_store(a, m0 + 4 * t, lmc__min(4, mc - 4 * t), p, acc, sx + 4 * t);
    }
  (void)has_m128;
#endif
}

static void lmc__a8_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__a8_plan *pl = (const lmc__a8_plan *)ctx;
  for (int64_t t = t0; t < t1; t++) {
    int64_t mb = t / pl->ngroups, gr = t % pl->ngroups;
    int64_t m0 = mb * pl->mc, p0 = gr * pl->group;
    int64_t p1 = lmc__min(p0 + pl->group, pl->np);
    lmc__a8_block(pl, m0, lmc__min(pl->mc, pl->a->M - m0), p0, p1);
  }
}

void lmc_linear_w8a8_f32(struct lmc_pool *pool, const lmc_linear_w8a8_args *a) {
  if (a->M <= 0 || a->N <= 0) return;
  if (a->K <= 0) { /* no terms: the bias (or 0) */
    for (int64_t m = 0; m < a->M; m++)
      for (int64_t n = 0; n < a->N; n++) a->y[m * a->ldy + n] = a->bias ? a->bias[n] : 0.0f;
    return;
  }
  lmc__a8_plan pl;
  pl.a = a;
  pl.np = lmc__cdiv(a->N, 16);
  pl.kp = lmc__cdiv(a->K, 4) * 4;
  /* packed A (mc rows x kp bytes) in the per-thread scratch: mc <= 64, a multiple of 4 */
  int64_t fit = (int64_t)(LMC_SCRATCH_FLOATS * sizeof(float)) / pl.kp / 4 * 4;
  pl.mc = lmc__max(4, lmc__min(64, fit));
  pl.mblocks = lmc__cdiv(a->M, pl.mc);
  int64_t want = 2 * (int64_t)lmc_pool_size(pool);
  int64_t split = pl.mblocks >= want ? 1 : lmc__cdiv(want, pl.mblocks);
  pl.group = lmc__max(1, lmc__cdiv(pl.np, split));
  if (pl.group > LMC__A8_PN) pl.group = lmc__cdiv(pl.group, LMC__A8_PN) * LMC__A8_PN;
  pl.ngroups = lmc__cdiv(pl.np, pl.group);
  lmc__parallel(pool, pl.mblocks * pl.ngroups, 1, lmc__a8_task, &pl);
}
