/* lmc_w4a8.c - int4 weights x int8 activations (lmc_linear_w4a8_f32). The weights are the
 * weight-only kernel's (lmc.wq.panel16.v2, bits 4): a block is 16 u32 words, word j = row j's
 * 8 codes of 8 consecutive k as nibbles. Masking the low / high nibble of every byte gives 16
 * rows x 4 codes (k 0, 2, 4, 6 / k 1, 3, 5, 7) per 32-bit lane: one vpdpbusd each against the
 * matching 4 int8 activations broadcast to every lane. So the activations are quantized first,
 * per row into the workspace, already in that order ("quads"), with their per-group sums (the
 * zero point comes off as z * sum(q)). Per group the exact int32 sums are scaled in f32:
 * tot += scale * acc, and y = tot * sx + bias. Nothing dequantized is written anywhere. */
#include "lmc_kern.h"

#include <math.h>

#if defined(__GNUC__)
#define LMC__QI static inline __attribute__((always_inline))
#else
#define LMC__QI static inline
#endif

#define LMC__W4_RMAX 4 /* activation rows per pass (GEMM) */
#define LMC__W4_PMAX 4 /* panels per pass (GEMV) */

/* ---- ISA layer: 16 lanes of int32 (one per weight row) ---------------------------------- */

#if defined(LMC_AVX512) && defined(__AVX512BW__)
#if defined(__AVX512VNNI__)
#define LMC__W4A8_PATH "vnni"
#else
#define LMC__W4A8_PATH "avx512bw"
#endif
typedef __m512i lmc__i16;
LMC__QI lmc__i16 lmc__i16_zero(void) { return _mm512_setzero_si512(); }
LMC__QI lmc__i16 lmc__i16_load(const uint8_t *p) { return _mm512_loadu_si512((const void *)p); }
LMC__QI lmc__i16 lmc__i16_add(lmc__i16 a, lmc__i16 b) { return _mm512_add_epi32(a, b); }
LMC__QI lmc__i16 lmc__nib_lo(lmc__i16 w) { return _mm512_and_si512(w, _mm512_set1_epi8(15)); }
LMC__QI lmc__i16 lmc__nib_hi(lmc__i16 w) {
  return _mm512_and_si512(_mm512_srli_epi32(w, 4), _mm512_set1_epi8(15));
}
/* acc += sum over the 4 bytes of each lane of u8 code * s8 activation (q: 4 bytes) */
LMC__QI lmc__i16 lmc__dp4(lmc__i16 acc, lmc__i16 codes, int32_t q) {
#if defined(__AVX512VNNI__) && defined(__GNUC__) && !defined(__clang__)
  /* in place: GCC copies the accumulator around the intrinsic in unrolled loops (a move per
   * multiply-add, measured 1.6x slower at 128 x 1536 x 384) */
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(codes), "v"(_mm512_set1_epi32(q)));
  return acc;
#elif defined(__AVX512VNNI__)
  return _mm512_dpbusd_epi32(acc, codes, _mm512_set1_epi32(q));
#else
  __m512i pairs = _mm512_maddubs_epi16(codes, _mm512_set1_epi32(q)); /* |sum| <= 3810 */
  return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
#endif
}
/* tot + scale * (acc - zo * sum) in f32, one multiply-add. */
LMC__QI void lmc__w4a8_group(float *tot, const float *scale, lmc__i16 acc, lmc__i16 zo,
                             int32_t sum) {
  acc = _mm512_sub_epi32(acc, _mm512_mullo_epi32(zo, _mm512_set1_epi32(sum)));
  __m512 t = _mm512_fmadd_ps(_mm512_loadu_ps(scale), _mm512_cvtepi32_ps(acc), _mm512_loadu_ps(tot));
  _mm512_storeu_ps(tot, t);
}
LMC__QI lmc__i16 lmc__zero_lanes(const uint8_t *z) {
  return z ? _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)z)) : _mm512_set1_epi32(8);
}

#else
#define LMC__W4A8_PATH "portable"
typedef struct {
  uint32_t v[16];
} lmc__i16;
LMC__QI lmc__i16 lmc__i16_zero(void) {
  lmc__i16 r;
  memset(&r, 0, sizeof r);
  return r;
}
LMC__QI lmc__i16 lmc__i16_load(const uint8_t *p) {
  lmc__i16 r;
  memcpy(r.v, p, sizeof r.v);
  return r;
}
LMC__QI lmc__i16 lmc__i16_add(lmc__i16 a, lmc__i16 b) {
  for (int l = 0; l < 16; l++) a.v[l] += b.v[l];
  return a;
}
LMC__QI lmc__i16 lmc__nib_lo(lmc__i16 w) {
  for (int l = 0; l < 16; l++) w.v[l] &= 0x0F0F0F0Fu;
  return w;
}
LMC__QI lmc__i16 lmc__nib_hi(lmc__i16 w) {
  for (int l = 0; l < 16; l++) w.v[l] = (w.v[l] >> 4) & 0x0F0F0F0Fu;
  return w;
}
LMC__QI lmc__i16 lmc__dp4(lmc__i16 acc, lmc__i16 codes, int32_t q) {
  const uint32_t uq = (uint32_t)q;
  for (int l = 0; l < 16; l++) {
    int32_t s = 0;
    for (int b = 0; b < 4; b++)
      s += (int32_t)((codes.v[l] >> (8 * b)) & 255u) * (int32_t)(int8_t)(uint8_t)(uq >> (8 * b));
    acc.v[l] = (uint32_t)((int32_t)acc.v[l] + s);
  }
  return acc;
}
LMC__QI void lmc__w4a8_group(float *tot, const float *scale, lmc__i16 acc, lmc__i16 zo,
                             int32_t sum) {
  for (int l = 0; l < 16; l++) {
    int32_t a = (int32_t)acc.v[l] - (int32_t)zo.v[l] * sum;
    tot[l] = fmaf(scale[l], (float)a, tot[l]);
  }
}
LMC__QI lmc__i16 lmc__zero_lanes(const uint8_t *z) {
  lmc__i16 r;
  for (int l = 0; l < 16; l++) r.v[l] = z ? z[l] : 8u;
  return r;
}
#endif

const char *lmc_w4a8_path(void) { return LMC__W4A8_PATH; }

/* ---- the quantized activations in the workspace ------------------------------------------
 * Per row: for each group, ceil(len / 8) blocks of two int32 quads (bytes: q of the block's
 * k 0, 2, 4, 6, then k 1, 3, 5, 7; 0 past the group); then, after every row's quads, the
 * int32 sum of q per row and group, then the f32 scale sx per row. */

typedef struct {
  lmc__wq_geom g;        /* the weights' panels */
  int64_t nblk, qstride; /* blocks per row, int32 quads per row (2 per block) */
} lmc__w4a8_geom;

static lmc__w4a8_geom lmc__w4a8_geometry(int64_t K, int64_t group, int has_zeros) {
  lmc__w4a8_geom q;
  q.g = lmc__wq_geometry(K, 4, group, has_zeros);
  q.nblk = 0;
  for (int64_t gi = 0; gi < q.g.ng; gi++) q.nblk += lmc__cdiv(lmc__min(q.g.gl, K - gi * q.g.gl), 8);
  q.qstride = 2 * q.nblk;
  return q;
}

size_t lmc_linear_w4a8_workspace_bytes(int64_t M, int64_t K, int64_t group) {
  if (M <= 0 || K <= 0) return 0;
  lmc__w4a8_geom q = lmc__w4a8_geometry(K, group, 0);
  return (size_t)(M * (q.qstride + q.g.ng + 1)) * 4;
}

typedef struct {
  const lmc_linear_w4a8_args *a;
  lmc__w4a8_geom q;
  int32_t *quads, *sums;
  float *sx;
  int64_t np, pc, mb, nchunks;
} lmc__w4a8_plan;

/* q[k] = clip(rint(x[k] / sx), -128, 127), 0 for NaN (sx > 0), for k < n: branch-free, so
 * the compiler vectorizes it (the division stays a division: the reference's rounding). */
static void lmc__q8_run(const float *x, int64_t n, float sx, int8_t *q) {
  for (int64_t k = 0; k < n; k++) {
    float v = x[k] / sx;
    v = v > -128.0f ? v : -128.0f; /* NaN -> -128 here, fixed below */
    v = v < 127.0f ? v : 127.0f;
    q[k] = (int8_t)(int32_t)rintf(x[k] == x[k] ? v : 0.0f);
  }
}

static void lmc__w4a8_quantize(void *ctx, int64_t r0, int64_t r1) {
  const lmc__w4a8_plan *pl = (const lmc__w4a8_plan *)ctx;
  const lmc_linear_w4a8_args *a = pl->a;
  const int64_t K = a->K, gl = pl->q.g.gl;
  int8_t run[256];
  for (int64_t r = r0; r < r1; r++) {
    const float *x = a->x + r * a->ldx;
    float sx;
    if (a->x_scale) {
      sx = *a->x_scale;
    } else {
      float mx = 0.0f; /* NaN propagates, as numpy's max does */
      for (int64_t k = 0; k < K; k++) {
        float v = fabsf(x[k]);
        mx = (v > mx || v != v) ? v : mx;
      }
      sx = mx / 127.0f;
    }
    pl->sx[r] = sx;
    uint8_t *qb = (uint8_t *)(pl->quads + r * pl->q.qstride);
    int32_t *sums = pl->sums + r * pl->q.g.ng;
    for (int64_t gi = 0; gi < pl->q.g.ng; gi++) {
      int64_t k0 = gi * gl, len = lmc__min(gl, K - k0), s = 0;
      for (int64_t c0 = 0; c0 < len; c0 += 256) { /* runs of whole 8-k blocks */
        int64_t n = lmc__min(256, len - c0), nb = lmc__cdiv(n, 8);
        if (sx > 0.0f)
          lmc__q8_run(x + k0 + c0, n, sx, run);
        else
          memset(run, 0, (size_t)n);
        memset(run + n, 0, (size_t)(8 * nb - n));
        for (int64_t b = 0; b < nb; b++, qb += 8)
          for (int t = 0; t < 8; t++) {
            qb[(t & 1) * 4 + t / 2] = (uint8_t)run[8 * b + t];
            s += run[8 * b + t];
          }
      }
      sums[gi] = (int32_t)s;
    }
  }
}

/* Output rows m0..m0+R of panels p0..p0+P (16 weight rows each). */
LMC__QI void lmc__w4a8_pass(const lmc__w4a8_plan *pl, int64_t p0, const int P, int64_t m0,
                            const int R) {
  const lmc_linear_w4a8_args *a = pl->a;
  const lmc__wq_geom *g = &pl->q.g;
  float tot[LMC__W4_RMAX][LMC__W4_PMAX][16];
  memset(tot, 0, sizeof tot);
  const int32_t *qr[LMC__W4_RMAX];
  for (int r = 0; r < R; r++) qr[r] = pl->quads + (m0 + r) * pl->q.qstride;
  for (int64_t gi = 0; gi < g->ng; gi++) {
    int64_t len = lmc__min(g->gl, a->K - gi * g->gl), nb = lmc__cdiv(len, 8);
    const uint8_t *gp[LMC__W4_PMAX];
    /* the low- and high-nibble products in separate sums: twice the independent chains of
     * multiply-adds (their latency, not their throughput, bounded one sum per row and panel) */
    lmc__i16 acc[LMC__W4_RMAX][LMC__W4_PMAX], acc2[LMC__W4_RMAX][LMC__W4_PMAX];
    for (int p = 0; p < P; p++) {
      gp[p] = lmc__wq_group_at(g, a->packed, p0 + p, gi);
      for (int r = 0; r < R; r++) acc[r][p] = acc2[r][p] = lmc__i16_zero();
    }
    for (int64_t b = 0; b < nb; b++) {
      for (int p = 0; p < P; p++) {
        lmc__i16 w = lmc__i16_load(gp[p] + g->hdr + 64 * b);
        lmc__i16 lo = lmc__nib_lo(w), hi = lmc__nib_hi(w);
        for (int r = 0; r < R; r++) {
          acc[r][p] = lmc__dp4(acc[r][p], lo, qr[r][2 * b]);
          acc2[r][p] = lmc__dp4(acc2[r][p], hi, qr[r][2 * b + 1]);
        }
      }
    }
    for (int r = 0; r < R; r++)
      for (int p = 0; p < P; p++) acc[r][p] = lmc__i16_add(acc[r][p], acc2[r][p]);
    for (int r = 0; r < R; r++) qr[r] += 2 * nb;
    for (int p = 0; p < P; p++) {
      const uint8_t *z = a->has_zeros ? lmc__wq_zeros_at(g, a->packed, p0 + p, gi) : NULL;
      lmc__i16 zo = lmc__zero_lanes(z);
      for (int r = 0; r < R; r++)
        lmc__w4a8_group(tot[r][p], (const float *)(const void *)gp[p], acc[r][p], zo,
                        pl->sums[(m0 + r) * g->ng + gi]);
    }
  }
  for (int r = 0; r < R; r++) {
    const float sx = pl->sx[m0 + r];
    float *y = a->y + (m0 + r) * a->ldy;
    for (int p = 0; p < P; p++) {
      int64_t n0 = 16 * (p0 + p);
      for (int64_t j = 0; j < 16 && n0 + j < a->N; j++)
        y[n0 + j] = tot[r][p][j] * sx + (a->bias ? a->bias[n0 + j] : 0.0f);
    }
  }
}

static void lmc__w4a8_gemv(const lmc__w4a8_plan *pl, int64_t p, int64_t m) {
  lmc__w4a8_pass(pl, p, LMC__W4_PMAX, m, 1);
}
static void lmc__w4a8_one(const lmc__w4a8_plan *pl, int64_t p, int64_t m) {
  lmc__w4a8_pass(pl, p, 1, m, 1);
}
static void lmc__w4a8_rows(const lmc__w4a8_plan *pl, int64_t p, int64_t m) {
  lmc__w4a8_pass(pl, p, 1, m, LMC__W4_RMAX);
}

static void lmc__w4a8_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__w4a8_plan *pl = (const lmc__w4a8_plan *)ctx;
  const int64_t M = pl->a->M;
  for (int64_t t = t0; t < t1; t++) {
    int64_t pa = (t % pl->nchunks) * pl->pc, pb = lmc__min(pa + pl->pc, pl->np);
    int64_t ma = (t / pl->nchunks) * pl->mb, me = lmc__min(ma + pl->mb, M);
    if (me - ma == 1) { /* GEMV: every panel once, several at a time */
      int64_t p = pa;
      for (; p + LMC__W4_PMAX <= pb; p += LMC__W4_PMAX) lmc__w4a8_gemv(pl, p, ma);
      for (; p < pb; p++) lmc__w4a8_one(pl, p, ma);
      continue;
    }
    for (int64_t p = pa; p < pb; p++) { /* the panel's codes stay in cache over the rows */
      int64_t m = ma;
      for (; m + LMC__W4_RMAX <= me; m += LMC__W4_RMAX) lmc__w4a8_rows(pl, p, m);
      for (; m < me; m++) lmc__w4a8_one(pl, p, m);
    }
  }
}

void lmc_linear_w4a8_f32(struct lmc_pool *pool, const lmc_linear_w4a8_args *a) {
  if (a->M <= 0 || a->N <= 0) return;
  if (a->K <= 0) { /* no terms: the bias (or 0) */
    for (int64_t m = 0; m < a->M; m++)
      for (int64_t n = 0; n < a->N; n++) a->y[m * a->ldy + n] = a->bias ? a->bias[n] : 0.0f;
    return;
  }
  lmc__w4a8_plan pl;
  pl.a = a;
  pl.q = lmc__w4a8_geometry(a->K, a->group, a->has_zeros);
  pl.quads = (int32_t *)a->workspace;
  pl.sums = pl.quads + a->M * pl.q.qstride;
  pl.sx = (float *)(void *)(pl.sums + a->M * pl.q.g.ng);
  lmc__parallel(pool, a->M, lmc__max(1, 4096 / a->K), lmc__w4a8_quantize, &pl);
  /* tasks: row blocks x panel chunks, >= 4 per thread when the panels allow */
  pl.np = lmc__cdiv(a->N, 16);
  int64_t threads = lmc_pool_size(pool), unit = a->M == 1 ? LMC__W4_PMAX : 1;
  pl.mb = a->M == 1 ? 1 : 64;
  int64_t mblocks = lmc__cdiv(a->M, pl.mb);
  int64_t want = lmc__max(1, lmc__cdiv(4 * threads, mblocks));
  pl.pc = lmc__max(unit, lmc__cdiv(lmc__cdiv(pl.np, want), unit) * unit);
  pl.nchunks = lmc__cdiv(pl.np, pl.pc);
  lmc__parallel(pool, mblocks * pl.nchunks, 1, lmc__w4a8_task, &pl);
}
