/* lmc_quant.c - weight-only quantized linears (lmc_linear_wq_f32): int4 / int8 codes, weights
 * pre-packed at compile time (backends/c/packing.py pack_wq); nothing dequantized is ever
 * written to memory. (int8 weights x int8 activations: lmc_w8a8.c.)
 *
 * Layout "lmc.wq.panel16.v2" (lmc_kern.h): 16 output rows per panel, the 16 rows in vector
 * lanes, so every code block is an outer-product step (no horizontal sums). int4 codes are
 * turned into floats in registers with one shift and one bit-select: nibble c placed in
 * mantissa bits 19..22 of 16.0f reads as 16 + c. Per group: acc = sum (16 + c) x, and the
 * group adds s * (acc - (16 + z) * sum x) (z the zero point, 8 when symmetric). int8 codes
 * widen to float (sign extension + convert), asymmetric ones stored as c - 128 with offset
 * z - 128. Sums in f32. Batch 1 streams the panels once (4.25 bits per weight at group 128,
 * symmetric); larger batches unpack each code block once for 4 (2) rows. */
#include "lmc_kern.h"

#if defined(__GNUC__)
#define LMC__QI static inline __attribute__((always_inline))
#else
#define LMC__QI static inline
#endif

#define LMC__NV (16 / LMC_VL) /* float vectors per 16-row panel */
#ifndef LMC__WQ_PF
#define LMC__WQ_PF 512 /* prefetch distance in a panel's code stream, bytes */
#endif
#if defined(__GNUC__)
#define lmc__prefetch(p) __builtin_prefetch((const void *)(p), 0, 3)
#else
#define lmc__prefetch(p) ((void)(p))
#endif
#define LMC__RMAX 4
#define LMC__PMAX 4

/* ---- ISA layer: word vectors of int4 codes, nibble -> 16 + c, 16 int8 codes -> floats ------- */

#if defined(LMC_AVX512)
#define LMC__WQ_PATH "avx512"
#define LMC__PV 4 /* panels per GEMV pass */
#define LMC__PM 2 /* panels per GEMM pass */
#define LMC__RM 4 /* rows per GEMM pass */
typedef __m512i lmc__vw;
LMC__QI lmc__vw lmc__vw_load(const uint8_t *p) { return _mm512_loadu_si512((const void *)p); }
LMC__QI lmc_vf lmc__nib(lmc__vw w, int j) {
  __m512i t;
  switch (j) {
    case 0: t = _mm512_slli_epi32(w, 19); break;
    case 1: t = _mm512_slli_epi32(w, 15); break;
    case 2: t = _mm512_slli_epi32(w, 11); break;
    case 3: t = _mm512_slli_epi32(w, 7); break;
    case 4: t = _mm512_slli_epi32(w, 3); break;
    case 5: t = _mm512_srli_epi32(w, 1); break;
    case 6: t = _mm512_srli_epi32(w, 5); break;
    default: t = _mm512_srli_epi32(w, 9); break;
  }
  /* (t & 0x00780000) | 0x41800000 in one ternary-logic op */
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(t, _mm512_set1_epi32(0x00780000),
                                                       _mm512_set1_epi32(0x41800000), 0xEA));
}
LMC__QI void lmc__i8_floats(const uint8_t *p, lmc_vf f[LMC__NV]) {
  f[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

#elif defined(LMC_AVX2)
#define LMC__WQ_PATH "avx2"
#define LMC__PV 2
#define LMC__PM 1
#define LMC__RM 4
typedef __m256i lmc__vw;
LMC__QI lmc__vw lmc__vw_load(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
LMC__QI lmc_vf lmc__nib(lmc__vw w, int j) {
  __m256i t;
  switch (j) {
    case 0: t = _mm256_slli_epi32(w, 19); break;
    case 1: t = _mm256_slli_epi32(w, 15); break;
    case 2: t = _mm256_slli_epi32(w, 11); break;
    case 3: t = _mm256_slli_epi32(w, 7); break;
    case 4: t = _mm256_slli_epi32(w, 3); break;
    case 5: t = _mm256_srli_epi32(w, 1); break;
    case 6: t = _mm256_srli_epi32(w, 5); break;
    default: t = _mm256_srli_epi32(w, 9); break;
  }
  t = _mm256_or_si256(_mm256_and_si256(t, _mm256_set1_epi32(0x00780000)),
                      _mm256_set1_epi32(0x41800000));
  return _mm256_castsi256_ps(t);
}
LMC__QI void lmc__i8_floats(const uint8_t *p, lmc_vf f[LMC__NV]) {
  f[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
  f[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8))));
}

#elif defined(LMC_NEON)
#define LMC__WQ_PATH "neon"
#define LMC__PV 2
#define LMC__PM 1
#define LMC__RM 2
typedef uint32x4_t lmc__vw;
LMC__QI lmc__vw lmc__vw_load(const uint8_t *p) { return vreinterpretq_u32_u8(vld1q_u8(p)); }
LMC__QI lmc_vf lmc__nib(lmc__vw w, int j) {
  uint32x4_t t;
  switch (j) {
    case 0: t = vshlq_n_u32(w, 19); break;
    case 1: t = vshlq_n_u32(w, 15); break;
    case 2: t = vshlq_n_u32(w, 11); break;
    case 3: t = vshlq_n_u32(w, 7); break;
    case 4: t = vshlq_n_u32(w, 3); break;
    case 5: t = vshrq_n_u32(w, 1); break;
    case 6: t = vshrq_n_u32(w, 5); break;
    default: t = vshrq_n_u32(w, 9); break;
  }
  return vreinterpretq_f32_u32(vbslq_u32(vdupq_n_u32(0x00780000u), t, vdupq_n_u32(0x41800000u)));
}
LMC__QI void lmc__i8_floats(const uint8_t *p, lmc_vf f[LMC__NV]) {
  int8x16_t b = vld1q_s8((const int8_t *)p);
  int16x8_t lo = vmovl_s8(vget_low_s8(b)), hi = vmovl_high_s8(b);
  f[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
  f[1] = vcvtq_f32_s32(vmovl_high_s16(lo));
  f[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
  f[3] = vcvtq_f32_s32(vmovl_high_s16(hi));
}

#elif defined(LMC_WASM_SIMD)
#define LMC__WQ_PATH "wasm"
#define LMC__PV 1
#define LMC__PM 1
#define LMC__RM 2
typedef v128_t lmc__vw;
LMC__QI lmc__vw lmc__vw_load(const uint8_t *p) { return wasm_v128_load(p); }
LMC__QI lmc_vf lmc__nib(lmc__vw w, int j) {
  v128_t t;
  switch (j) {
    case 0: t = wasm_i32x4_shl(w, 19); break;
    case 1: t = wasm_i32x4_shl(w, 15); break;
    case 2: t = wasm_i32x4_shl(w, 11); break;
    case 3: t = wasm_i32x4_shl(w, 7); break;
    case 4: t = wasm_i32x4_shl(w, 3); break;
    case 5: t = wasm_u32x4_shr(w, 1); break;
    case 6: t = wasm_u32x4_shr(w, 5); break;
    default: t = wasm_u32x4_shr(w, 9); break;
  }
  return wasm_v128_bitselect(t, wasm_i32x4_splat(0x41800000), wasm_i32x4_splat(0x00780000));
}
LMC__QI void lmc__i8_floats(const uint8_t *p, lmc_vf f[LMC__NV]) {
  v128_t b = wasm_v128_load(p);
  v128_t lo = wasm_i16x8_extend_low_i8x16(b), hi = wasm_i16x8_extend_high_i8x16(b);
  f[0] = wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(lo));
  f[1] = wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(lo));
  f[2] = wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(hi));
  f[3] = wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(hi));
}

#else
#define LMC__WQ_PATH "portable"
#define LMC__PV 1
#define LMC__PM 1
#define LMC__RM 2
typedef struct {
  uint32_t v[LMC_VL];
} lmc__vw;
LMC__QI lmc__vw lmc__vw_load(const uint8_t *p) {
  lmc__vw w;
  memcpy(w.v, p, sizeof w.v);
  return w;
}
LMC__QI lmc_vf lmc__nib(lmc__vw w, int j) {
  lmc_vf r;
  for (int l = 0; l < LMC_VL; l++) r.v[l] = 16.0f + (float)((w.v[l] >> (4 * j)) & 15u);
  return r;
}
LMC__QI void lmc__i8_floats(const uint8_t *p, lmc_vf f[LMC__NV]) {
  for (int v = 0; v < LMC__NV; v++)
    for (int l = 0; l < LMC_VL; l++) f[v].v[l] = (float)(int8_t)p[v * LMC_VL + l];
}
#endif

const char *lmc_wq_layout(void) { return "lmc.wq.panel16.v2"; }
const char *lmc_wq_path(void) { return LMC__WQ_PATH; }

/* ---- weight-only layout: lmc__wq_geometry (lmc_kern.h) ---------------------------------------- */

size_t lmc_wq_packed_bytes(int64_t N, int64_t K, int bits, int64_t group, int has_zeros) {
  if (N <= 0 || K <= 0) return 0;
  return (size_t)(lmc__cdiv(N, 16) * lmc__wq_geometry(K, bits, group, has_zeros).pstride);
}

/* ---- weight-only kernel: passes of P panels x R rows over every group ---------------------- */

typedef struct {
  const lmc_linear_wq_args *a;
  lmc__wq_geom g;
  int w4, offset;
  int64_t np, pc, mb, nchunks;
} lmc__wq_plan;

static float lmc__sumf(const float *x, int64_t n) {
  lmc_vf s = lmc_vzero();
  int64_t k = 0;
  for (; k + LMC_VL <= n; k += LMC_VL) s = lmc_vadd(s, lmc_vload(x + k));
  if (k < n) s = lmc_vadd(s, lmc_vload_n(x + k, n - k));
  return lmc_vsum(s);
}

#define LMC__W4_STEP(j)                                                         \
  do {                                                                          \
    lmc_vf xb[LMC__RMAX];                                                       \
    for (int r = 0; r < R; r++) xb[r] = lmc_vset1(xs[r][j]);                    \
    for (int p = 0; p < P; p++)                                                 \
      for (int v = 0; v < LMC__NV; v++) {                                       \
        lmc_vf f = lmc__nib(w[p][v], j);                                        \
        for (int r = 0; r < R; r++) acc[r][p][v] = lmc_vfma(f, xb[r], acc[r][p][v]); \
      }                                                                         \
  } while (0)

/* acc[r][p] += sum over the block's 8 k of (16 + c) * xs[r][k]. The code streams are read
 * LMC__WQ_PF bytes ahead: unpacking keeps the core busy, so without it the loads from memory
 * and the arithmetic do not overlap (4096^2 int4 GEMV from DRAM on one Ice Lake core: 1.08 -> 0.90 ms). */
LMC__QI void lmc__w4_block(const uint8_t *const *gp, const int P, int64_t off,
                           const float *const *xs, const int R,
                           lmc_vf acc[LMC__RMAX][LMC__PMAX][LMC__NV]) {
  lmc__vw w[LMC__PMAX][LMC__NV];
  for (int p = 0; p < P; p++) {
    lmc__prefetch(gp[p] + off + LMC__WQ_PF);
    for (int v = 0; v < LMC__NV; v++) w[p][v] = lmc__vw_load(gp[p] + off + v * LMC_VL * 4);
  }
  LMC__W4_STEP(0);
  LMC__W4_STEP(1);
  LMC__W4_STEP(2);
  LMC__W4_STEP(3);
  LMC__W4_STEP(4);
  LMC__W4_STEP(5);
  LMC__W4_STEP(6);
  LMC__W4_STEP(7);
}

/* One group of codes: acc[r][p] = sum_k code term * x[r][k0 + k] over its len k. */
LMC__QI void lmc__wq_group(const lmc__wq_plan *pl, const uint8_t *const *gp, const int P,
                           const float *const *xr, const int R, int64_t k0, int64_t len,
                           lmc_vf acc[LMC__RMAX][LMC__PMAX][LMC__NV]) {
  const int64_t hdr = pl->g.hdr;
  if (pl->w4) {
    int64_t nfull = len / 8;
    for (int64_t b = 0; b < nfull; b++) {
      const float *xs[LMC__RMAX];
      for (int r = 0; r < R; r++) xs[r] = xr[r] + k0 + 8 * b;
      lmc__w4_block(gp, P, hdr + 64 * b, xs, R, acc);
    }
    if (len % 8) { /* x zero-padded to the block; the padded codes are 0 */
      float xt[LMC__RMAX][8];
      const float *xs[LMC__RMAX];
      for (int r = 0; r < R; r++) {
        for (int t = 0; t < 8; t++) xt[r][t] = 8 * nfull + t < len ? xr[r][k0 + 8 * nfull + t] : 0;
        xs[r] = xt[r];
      }
      lmc__w4_block(gp, P, hdr + 64 * nfull, xs, R, acc);
    }
    return;
  }
  for (int64_t k = 0; k < len; k++) {
    lmc_vf xb[LMC__RMAX];
    for (int r = 0; r < R; r++) xb[r] = lmc_vset1(xr[r][k0 + k]);
    for (int p = 0; p < P; p++) {
      lmc_vf f[LMC__NV];
      lmc__i8_floats(gp[p] + hdr + 16 * k, f);
      for (int v = 0; v < LMC__NV; v++)
        for (int r = 0; r < R; r++) acc[r][p][v] = lmc_vfma(f[v], xb[r], acc[r][p][v]);
    }
  }
}

/* The zero-point offsets of a group's 16 rows (int4: 16 + z, z = 8 when symmetric); z the
 * group's zero bytes. */
LMC__QI void lmc__wq_offsets(const lmc__wq_plan *pl, const uint8_t *z, lmc_vf zo[LMC__NV]) {
  if (pl->a->has_zeros) {
    lmc__i8_floats(z, zo);
    if (pl->w4)
      for (int v = 0; v < LMC__NV; v++) zo[v] = lmc_vadd(zo[v], lmc_vset1(16.0f));
  } else {
    for (int v = 0; v < LMC__NV; v++) zo[v] = lmc_vset1(24.0f);
  }
}

LMC__QI void lmc__wq_pass(const lmc__wq_plan *pl, int64_t p0, const int P, int64_t m0,
                          const int R) {
  const lmc_linear_wq_args *a = pl->a;
  lmc_vf tot[LMC__RMAX][LMC__PMAX][LMC__NV];
  const float *xr[LMC__RMAX];
  for (int r = 0; r < R; r++) {
    xr[r] = a->x + (m0 + r) * a->ldx;
    for (int p = 0; p < P; p++)
      for (int v = 0; v < LMC__NV; v++) tot[r][p][v] = lmc_vzero();
  }
  for (int64_t gi = 0; gi < pl->g.ng; gi++) {
    int64_t k0 = gi * pl->g.gl, len = lmc__min(pl->g.gl, a->K - k0);
    const uint8_t *gp[LMC__PMAX];
    lmc_vf acc[LMC__RMAX][LMC__PMAX][LMC__NV];
    for (int p = 0; p < P; p++) gp[p] = lmc__wq_group_at(&pl->g, a->packed, p0 + p, gi);
    for (int r = 0; r < R; r++)
      for (int p = 0; p < P; p++)
        for (int v = 0; v < LMC__NV; v++) acc[r][p][v] = lmc_vzero();
    lmc__wq_group(pl, gp, P, xr, R, k0, len, acc);
    float xs[LMC__RMAX] = {0};
    if (pl->offset)
      for (int r = 0; r < R; r++) xs[r] = lmc__sumf(xr[r] + k0, len);
    for (int p = 0; p < P; p++) {
      lmc_vf zo[LMC__NV];
      for (int v = 0; v < LMC__NV; v++) zo[v] = lmc_vzero();
      if (pl->offset) lmc__wq_offsets(pl, lmc__wq_zeros_at(&pl->g, a->packed, p0 + p, gi), zo);
      for (int v = 0; v < LMC__NV; v++) {
        lmc_vf s = lmc_vload((const float *)(const void *)(gp[p] + 4 * LMC_VL * v));
        for (int r = 0; r < R; r++) {
          lmc_vf t = acc[r][p][v];
          if (pl->offset) t = lmc_vsub(t, lmc_vmul(zo[v], lmc_vset1(xs[r])));
          tot[r][p][v] = lmc_vfma(s, t, tot[r][p][v]);
        }
      }
    }
  }
  for (int p = 0; p < P; p++)
    for (int v = 0; v < LMC__NV; v++) {
      int64_t n = 16 * (p0 + p) + v * LMC_VL, cols = a->N - n;
      if (cols <= 0) continue;
      lmc_vf b = a->bias ? lmc_vload_n(a->bias + n, cols) : lmc_vzero();
      for (int r = 0; r < R; r++) {
        float *y = a->y + (m0 + r) * a->ldy + n;
        lmc_vf t = lmc_vadd(tot[r][p][v], b);
        if (cols >= LMC_VL)
          lmc_vstore(y, t);
        else
          lmc_vstore_n(y, t, cols);
      }
    }
}

static void lmc__wq_pass_gemv(const lmc__wq_plan *pl, int64_t p0, int64_t m0) {
  lmc__wq_pass(pl, p0, LMC__PV, m0, 1);
}
static void lmc__wq_pass_1(const lmc__wq_plan *pl, int64_t p0, int64_t m0) {
  lmc__wq_pass(pl, p0, 1, m0, 1);
}
static void lmc__wq_pass_gemm(const lmc__wq_plan *pl, int64_t p0, int64_t m0) {
  lmc__wq_pass(pl, p0, LMC__PM, m0, LMC__RM);
}
static void lmc__wq_pass_rows(const lmc__wq_plan *pl, int64_t p0, int64_t m0) {
  lmc__wq_pass(pl, p0, 1, m0, LMC__RM);
}

static void lmc__wq_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__wq_plan *pl = (const lmc__wq_plan *)ctx;
  const int64_t M = pl->a->M;
  for (int64_t t = t0; t < t1; t++) {
    int64_t pa = (t % pl->nchunks) * pl->pc, pb = lmc__min(pa + pl->pc, pl->np);
    int64_t ma = (t / pl->nchunks) * pl->mb, mbe = lmc__min(ma + pl->mb, M);
    if (mbe - ma == 1) { /* GEMV: every panel once, P at a time */
      int64_t p = pa;
      for (; p + LMC__PV <= pb; p += LMC__PV) lmc__wq_pass_gemv(pl, p, ma);
      for (; p < pb; p++) lmc__wq_pass_1(pl, p, ma);
      continue;
    }
    int64_t p = pa;
    for (; p < pb; p += LMC__PM) { /* the panels' codes stay in cache over the row blocks */
      int full = p + LMC__PM <= pb;
      int64_t m = ma;
      for (; m + LMC__RM <= mbe; m += LMC__RM) {
        if (full)
          lmc__wq_pass_gemm(pl, p, m);
        else
          for (int64_t q = p; q < pb; q++) lmc__wq_pass_rows(pl, q, m);
      }
      for (; m < mbe; m++)
        for (int64_t q = p; q < lmc__min(p + LMC__PM, pb); q++) lmc__wq_pass_1(pl, q, m);
    }
  }
}

void lmc_linear_wq_f32(struct lmc_pool *pool, const lmc_linear_wq_args *a) {
  if (a->M <= 0 || a->N <= 0) return;
  if (a->K <= 0) { /* no terms: the bias (or 0) */
    for (int64_t m = 0; m < a->M; m++)
      for (int64_t n = 0; n < a->N; n++) a->y[m * a->ldy + n] = a->bias ? a->bias[n] : 0.0f;
    return;
  }
  lmc__wq_plan pl;
  pl.a = a;
  pl.g = lmc__wq_geometry(a->K, a->bits, a->group, a->has_zeros);
  pl.w4 = a->bits == 4;
  pl.offset = pl.w4 || a->has_zeros;
  pl.np = lmc__cdiv(a->N, 16);
  /* tasks: row blocks x panel chunks, >= 4 per thread when the panels allow */
  int64_t threads = lmc_pool_size(pool), unit = a->M == 1 ? LMC__PV : LMC__PM;
  pl.mb = a->M == 1 ? 1 : 64;
  int64_t mblocks = lmc__cdiv(a->M, pl.mb);
  int64_t want = lmc__max(1, lmc__cdiv(4 * threads, mblocks));
  pl.pc = lmc__max(unit, lmc__cdiv(lmc__cdiv(pl.np, want), unit) * unit);
  pl.nchunks = lmc__cdiv(pl.np, pl.pc);
  lmc__parallel(pool, mblocks * pl.nchunks, 1, lmc__wq_task, &pl);
}
