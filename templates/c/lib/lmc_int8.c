/* lmc_int8.c - int8 GEMM: C[M,N] (int32) = (A - za) @ (B - zb) for i8/u8 A and pre-packed i8/u8
 * B. u8 operands are shifted to i8 (x ^ 0x80 = x - 128) with the zero point shifted alike, so
 * every path multiplies i8 x i8: `sdot` (LMC_DOTPROD, armv8.2-a+dotprod), NEON smull+sadalp
 * (LMC_NEON), AVX2 pmaddwd (__AVX2__), WASM i32x4.dot_i16x8_s (LMC_WASM_SIMD) or portable C
 * (the micro-kernel lmc__s8_tile is shared with lmc_w8a8.c); the zero points enter once
 * per output:
 * C = S - zb * rowsum(A) - za * colsum(B) + K * za * zb, all in wrapping 32-bit arithmetic. */
#include "lmc_kern.h"

#if defined(LMC_DOTPROD)
#if !defined(__ARM_FEATURE_DOTPROD)
#error "LMC_DOTPROD needs a compiler targeting the dot product extension (-march=armv8.2-a+dotprod)"
#endif
#include <arm_neon.h>
#define LMC__S8_PATH "sdot"
#elif defined(LMC_NEON)
#include <arm_neon.h>
#define LMC__S8_PATH "neon"
#elif defined(__AVX2__)
#include <immintrin.h>
#define LMC__S8_PATH "avx2"
#elif defined(LMC_WASM_SIMD)
#include <wasm_simd128.h>
#define LMC__S8_PATH "wasm"
#else
#define LMC__S8_PATH "portable"
#endif

#define LMC_S8_MR 4     /* rows per micro-tile */
#define LMC_S8_MC 64    /* rows per task */
#define LMC_S8_KC 4096  /* k block (a multiple of 4) */

/* The packed A block lives in the per-thread scratch. */
typedef char lmc__s8_scratch_fits[LMC_S8_MC * LMC_S8_KC <= LMC_SCRATCH_FLOATS * 4 ? 1 : -1];

const char *lmc_gemm_s8_layout(void) { return "lmc.gemm_s8.panel16k4.v1"; }
const char *lmc_gemm_s8_path(void) { return LMC__S8_PATH; }

static int64_t lmc__s8_kp(int64_t K) { return lmc__cdiv(K, 4) * 4; }

size_t lmc_gemm_s8_packed_bytes(int64_t N, int64_t K) {
  if (N <= 0 || K < 0) return 0;
  size_t cols = (size_t)lmc__cdiv(N, LMC_PANEL) * LMC_PANEL;
  return cols * (size_t)lmc__s8_kp(K) + cols * sizeof(int32_t);
}

/* Layout "lmc.gemm_s8.panel16k4.v1": ceil(N/16) panels of 16 columns; panel p holds, for each
 * group of 4 k (K padded to a multiple of 4), 16 columns x 4 bytes: packed[p*Kp*16 + (k/4)*64
 * + j*4 + k%4] = B'[k, 16p + j], B' = B for i8, B ^ 0x80 (B - 128) for u8, 0 past K or N. Then
 * int32 colsum[ceil(N/16)*16] = sum_k B'[k, n]. */
void lmc_gemm_s8_pack(int64_t N, int64_t K, const void *B, int b_u8, int64_t ldb_k,
                      int64_t ldb_n, uint8_t *packed) {
  if (N <= 0 || K < 0) return;
  const uint8_t *b = (const uint8_t *)B;
  const uint8_t flip = b_u8 ? 0x80 : 0x00;
  int64_t np = lmc__cdiv(N, LMC_PANEL), kp = lmc__s8_kp(K);
  int32_t *colsum = (int32_t *)(packed + np * LMC_PANEL * kp);
  for (int64_t p = 0; p < np; p++) {
    uint8_t *d = packed + p * kp * LMC_PANEL;
    for (int64_t j = 0; j < LMC_PANEL; j++) {
      int64_t n = p * LMC_PANEL + j;
      int32_t s = 0;
      for (int64_t k = 0; k < kp; k++) {
        uint8_t v = (n < N && k < K) ? (uint8_t)(b[k * ldb_k + n * ldb_n] ^ flip) : 0;
        d[(k / 4) * 64 + j * 4 + k % 4] = v;
        s += (int8_t)v;
      }
      colsum[n] = s;
    }
  }
}

/* ---- micro-kernels: acc[4][16] = sum over kg groups of 4 k of A'[i][k] * B'[k][j] ----------
 * ap: the A tile, kg groups of [4 rows][4 k]; bp: a panel from the tile's first k group. */

#if defined(LMC_DOTPROD)
#define LMC__SDOT_ROW(i)                                  \
  c##i##0 = vdotq_laneq_s32(c##i##0, b0, a, i);           \
  c##i##1 = vdotq_laneq_s32(c##i##1, b1, a, i);           \
  c##i##2 = vdotq_laneq_s32(c##i##2, b2, a, i);           \
  c##i##3 = vdotq_laneq_s32(c##i##3, b3, a, i)
#define LMC__SDOT_STORE(i)                                \
  vst1q_s32(acc + 16 * i, c##i##0);                       \
  vst1q_s32(acc + 16 * i + 4, c##i##1);                   \
  vst1q_s32(acc + 16 * i + 8, c##i##2);                   \
  vst1q_s32(acc + 16 * i + 12, c##i##3)

void lmc__s8_tile(int64_t kg, const int8_t *ap, const int8_t *bp, int32_t *acc) {
  int32x4_t z = vdupq_n_s32(0);
  int32x4_t c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
  int32x4_t c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
  for (int64_t g = 0; g < kg; g++) {
    int8x16_t a = vld1q_s8(ap + 16 * g);
    int8x16_t b0 = vld1q_s8(bp + 64 * g), b1 = vld1q_s8(bp + 64 * g + 16);
    int8x16_t b2 = vld1q_s8(bp + 64 * g + 32), b3 = vld1q_s8(bp + 64 * g + 48);
    LMC__SDOT_ROW(0);
    LMC__SDOT_ROW(1);
    LMC__SDOT_ROW(2);
    LMC__SDOT_ROW(3);
  }
  LMC__SDOT_STORE(0);
  LMC__SDOT_STORE(1);
  LMC__SDOT_STORE(2);
  LMC__SDOT_STORE(3);
}

#elif defined(LMC_NEON)
/* Two rows per pass: smull (8 x i16 products, cols 2v..2v+1 x 4 k) and sadalp into i32 lanes
 * [c(k0+k1), c(k2+k3)] per column; a final pairwise add gives one lane per column. */
static void lmc__s8_rows2(int64_t kg, const int8_t *ap, int r, const int8_t *bp, int32_t *acc) {
  int32x4_t lo[2][4], hi[2][4];
  for (int i = 0; i < 2; i++)
    for (int v = 0; v < 4; v++) lo[i][v] = hi[i][v] = vdupq_n_s32(0);
  for (int64_t g = 0; g < kg; g++) {
    int32_t w0, w1;
    memcpy(&w0, ap + 16 * g + 4 * r, 4);
    memcpy(&w1, ap + 16 * g + 4 * r + 4, 4);
    int8x16_t a0 = vreinterpretq_s8_s32(vdupq_n_s32(w0));
    int8x16_t a1 = vreinterpretq_s8_s32(vdupq_n_s32(w1));
    for (int v = 0; v < 4; v++) {
      int8x16_t b = vld1q_s8(bp + 64 * g + 16 * v);
      lo[0][v] = vpadalq_s16(lo[0][v], vmull_s8(vget_low_s8(b), vget_low_s8(a0)));
      hi[0][v] = vpadalq_s16(hi[0][v], vmull_high_s8(b, a0));
      lo[1][v] = vpadalq_s16(lo[1][v], vmull_s8(vget_low_s8(b), vget_low_s8(a1)));
      hi[1][v] = vpadalq_s16(hi[1][v], vmull_high_s8(b, a1));
    }
  }
  for (int i = 0; i < 2; i++)
    for (int v = 0; v < 4; v++)
      vst1q_s32(acc + 16 * (r + i) + 4 * v, vpaddq_s32(lo[i][v], hi[i][v]));
}

void lmc__s8_tile(int64_t kg, const int8_t *ap, const int8_t *bp, int32_t *acc) {
  lmc__s8_rows2(kg, ap, 0, bp, acc);
  lmc__s8_rows2(kg, ap, 2, bp, acc);
}

#elif defined(__AVX2__)
/* Two rows per pass: 16 bytes of B (4 columns x 4 k) widened to i16, pmaddwd with the row's 4
 * k broadcast gives lanes [c(k0+k1), c(k2+k3)] per column; the pairs are added at the end. */
static void lmc__s8_rows2(int64_t kg, const int8_t *ap, int r, const int8_t *bp, int32_t *acc) {
  __m256i s[2][4];
  for (int i = 0; i < 2; i++)
    for (int v = 0; v < 4; v++) s[i][v] = _mm256_setzero_si256();
  for (int64_t g = 0; g < kg; g++) {
    int32_t w0, w1;
    memcpy(&w0, ap + 16 * g + 4 * r, 4);
    memcpy(&w1, ap + 16 * g + 4 * r + 4, 4);
    __m256i a0 = _mm256_cvtepi8_epi16(_mm_set1_epi32(w0));
    __m256i a1 = _mm256_cvtepi8_epi16(_mm_set1_epi32(w1));
    for (int v = 0; v < 4; v++) {
      __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(bp + 64 * g + 16 * v)));
      s[0][v] = _mm256_add_epi32(s[0][v], _mm256_madd_epi16(b, a0));
      s[1][v] = _mm256_add_epi32(s[1][v], _mm256_madd_epi16(b, a1));
    }
  }
  for (int i = 0; i < 2; i++)
    for (int v = 0; v < 4; v++) {
      int32_t t[8];
      _mm256_storeu_si256((__m256i *)t, s[i][v]);
      for (int c = 0; c < 4; c++)
        acc[16 * (r + i) + 4 * v + c] = (int32_t)((uint32_t)t[2 * c] + (uint32_t)t[2 * c + 1]);
    }
}

void lmc__s8_tile(int64_t kg, const int8_t *ap, const int8_t *bp, int32_t *acc) {
  lmc__s8_rows2(kg, ap, 0, bp, acc);
  lmc__s8_rows2(kg, ap, 2, bp, acc);
}

#elif defined(LMC_WASM_SIMD)
/* Two rows per pass: 16 bytes of B (4 columns x 4 k) widened to two i16x8, each dotted with the
 * row's 4 k (as i16, twice): lanes [c(k0+k1), c(k2+k3)] for two columns; the pairs are added at
 * the end. */
static void lmc__s8_rows2(int64_t kg, const int8_t *ap, int r, const int8_t *bp, int32_t *acc) {
  v128_t s[2][8];
  for (int i = 0; i < 2; i++)
    for (int v = 0; v < 8; v++) s[i][v] = wasm_i32x4_splat(0);
  for (int64_t g = 0; g < kg; g++) {
    int32_t w0, w1;
    memcpy(&w0, ap + 16 * g + 4 * r, 4);
    memcpy(&w1, ap + 16 * g + 4 * r + 4, 4);
    v128_t a0 = wasm_i16x8_extend_low_i8x16(wasm_i32x4_splat(w0));
    v128_t a1 = wasm_i16x8_extend_low_i8x16(wasm_i32x4_splat(w1));
    for (int v = 0; v < 4; v++) {
      v128_t b = wasm_v128_load(bp + 64 * g + 16 * v);
      v128_t lo = wasm_i16x8_extend_low_i8x16(b), hi = wasm_i16x8_extend_high_i8x16(b);
      s[0][2 * v] = wasm_i32x4_add(s[0][2 * v], wasm_i32x4_dot_i16x8(lo, a0));
      s[0][2 * v + 1] = wasm_i32x4_add(s[0][2 * v + 1], wasm_i32x4_dot_i16x8(hi, a0));
      s[1][2 * v] = wasm_i32x4_add(s[1][2 * v], wasm_i32x4_dot_i16x8(lo, a1));
      s[1][2 * v + 1] = wasm_i32x4_add(s[1][2 * v + 1], wasm_i32x4_dot_i16x8(hi, a1));
    }
  }
  for (int i = 0; i < 2; i++)
    for (int v = 0; v < 4; v++) {
      v128_t x = s[i][2 * v], y = s[i][2 * v + 1];
      v128_t c = wasm_i32x4_add(wasm_i32x4_shuffle(x, y, 0, 2, 4, 6),
                                wasm_i32x4_shuffle(x, y, 1, 3, 5, 7));
      wasm_v128_store(acc + 16 * (r + i) + 4 * v, c);
    }
}

void lmc__s8_tile(int64_t kg, const int8_t *ap, const int8_t *bp, int32_t *acc) {
  lmc__s8_rows2(kg, ap, 0, bp, acc);
  lmc__s8_rows2(kg, ap, 2, bp, acc);
}

#else
void lmc__s8_tile(int64_t kg, const int8_t *ap, const int8_t *bp, int32_t *acc) {
  int32_t t[LMC_S8_MR * 16];
  for (int i = 0; i < LMC_S8_MR * 16; i++) t[i] = 0;
  for (int64_t g = 0; g < kg; g++) {
    const int8_t *a = ap + 16 * g, *b = bp + 64 * g;
    for (int i = 0; i < LMC_S8_MR; i++)
      for (int j = 0; j < 16; j++)
        t[16 * i + j] += a[4 * i] * b[4 * j] + a[4 * i + 1] * b[4 * j + 1] +
                         a[4 * i + 2] * b[4 * j + 2] + a[4 * i + 3] * b[4 * j + 3];
  }
  for (int i = 0; i < LMC_S8_MR * 16; i++) acc[i] = t[i];
}
#endif

/* ---- driver: tasks = M blocks x groups of panels; per k block, pack A then run the tiles --- */

typedef struct {
  const lmc_gemm_s8_args *g;
  int64_t mblocks, group, ngroups, np, kp;
} lmc__s8_plan;

/* A'[m0:m0+mc, k0:k0+kc] as tiles of [kc/4][4 rows][4 k], rows past mc and k past K zero;
 * rowsum[i] += the row's sum. */
static void lmc__s8_pack_a(const lmc_gemm_s8_args *g, int64_t m0, int64_t mc, int64_t k0,
                           int64_t kc, int8_t *dst, int32_t *rowsum) {
  const uint8_t flip = g->a_u8 ? 0x80 : 0x00;
  for (int64_t t = 0; t * LMC_S8_MR < mc; t++) {
    int8_t *d = dst + t * LMC_S8_MR * kc;
    for (int64_t i = 0; i < LMC_S8_MR; i++) {
      int64_t r = t * LMC_S8_MR + i;
      const uint8_t *src = (const uint8_t *)g->a + (m0 + r) * g->lda;
      int64_t kend = r < mc ? lmc__min(kc, g->K - k0) : 0;
      int32_t s = 0;
      for (int64_t k = 0; k < kc; k++) {
        int8_t v = k < kend ? (int8_t)(src[k0 + k] ^ flip) : 0;
        d[(k / 4) * 16 + i * 4 + k % 4] = v;
        s += v;
      }
      if (r < mc) rowsum[r] += s;
    }
  }
}

static int32_t lmc__s8_zp(const int32_t *zp, int64_t period, int64_t i, int shifted) {
  uint32_t z = zp ? (uint32_t)zp[i % (period > 0 ? period : 1)] : 0u;
  return (int32_t)(z - (shifted ? 128u : 0u));
}

static void lmc__s8_block(const lmc__s8_plan *pl, int64_t m0, int64_t mc, int64_t p0,
                          int64_t p1) {
  const lmc_gemm_s8_args *g = pl->g;
  int8_t *apack = (int8_t *)lmc__scratch();
  int32_t rowsum[LMC_S8_MC];
  int32_t acc[LMC_S8_MR * 16];
  int64_t n0 = p0 * LMC_PANEL, n1 = lmc__min(p1 * LMC_PANEL, g->N);
  for (int64_t i = 0; i < mc; i++) rowsum[i] = 0;
  for (int64_t k0 = 0; k0 < pl->kp; k0 += LMC_S8_KC) {
    int64_t kc = lmc__min(LMC_S8_KC, pl->kp - k0);
    lmc__s8_pack_a(g, m0, mc, k0, kc, apack, rowsum);
    for (int64_t p = p0; p < p1; p++) {
      const int8_t *bp = (const int8_t *)g->b_packed + p * pl->kp * LMC_PANEL + k0 * LMC_PANEL;
      int64_t w = lmc__min(LMC_PANEL, g->N - p * LMC_PANEL);
      for (int64_t t = 0; t * LMC_S8_MR < mc; t++) {
        lmc__s8_tile(kc / 4, apack + t * LMC_S8_MR * kc, bp, acc);
        int64_t rows = lmc__min(LMC_S8_MR, mc - t * LMC_S8_MR);
        for (int64_t i = 0; i < rows; i++) {
          int32_t *c = g->c + (m0 + t * LMC_S8_MR + i) * g->ldc + p * LMC_PANEL;
          const int32_t *t = acc + 16 * i;
          for (int64_t j = 0; j < w; j++)
            c[j] = k0 == 0 ? t[j] : (int32_t)((uint32_t)c[j] + (uint32_t)t[j]);
        }
      }
    }
  }
  const int32_t *colsum = (const int32_t *)(g->b_packed + pl->np * LMC_PANEL * pl->kp);
  uint32_t K = (uint32_t)g->K;
  for (int64_t i = 0; i < mc; i++) {
    uint32_t za = (uint32_t)lmc__s8_zp(g->a_zp, g->a_zp_period, m0 + i, g->a_u8);
    uint32_t rs = (uint32_t)rowsum[i];
    int32_t *c = g->c + (m0 + i) * g->ldc;
    for (int64_t n = n0; n < n1; n++) {
      uint32_t zb = (uint32_t)lmc__s8_zp(g->b_zp, g->b_zp_period, n, g->b_u8);
      c[n] = (int32_t)((uint32_t)c[n] - zb * rs - za * (uint32_t)colsum[n] + K * za * zb);
    }
  }
}

static void lmc__s8_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__s8_plan *pl = (const lmc__s8_plan *)ctx;
  for (int64_t t = t0; t < t1; t++) {
    int64_t mb = t / pl->ngroups, gr = t % pl->ngroups;
    int64_t m0 = mb * LMC_S8_MC, p0 = gr * pl->group;
    lmc__s8_block(pl, m0, lmc__min(LMC_S8_MC, pl->g->M - m0), p0,
                  lmc__min(p0 + pl->group, pl->np));
  }
}

void lmc_gemm_s8(struct lmc_pool *pool, const lmc_gemm_s8_args *g) {
  if (g->M <= 0 || g->N <= 0) return;
  if (g->K <= 0) { /* every term of the sum is empty */
    for (int64_t i = 0; i < g->M; i++)
      for (int64_t n = 0; n < g->N; n++) g->c[i * g->ldc + n] = 0;
    return;
  }
  lmc__s8_plan pl;
  pl.g = g;
  pl.np = lmc__cdiv(g->N, LMC_PANEL);
  pl.kp = lmc__s8_kp(g->K);
  pl.mblocks = lmc__cdiv(g->M, LMC_S8_MC);
  /* panel groups: at least 2 tasks per thread when the panels allow */
  int64_t want = 2 * (int64_t)lmc_pool_size(pool);
  int64_t split = pl.mblocks >= want ? 1 : lmc__cdiv(want, pl.mblocks);
  pl.group = lmc__max(1, lmc__cdiv(pl.np, split));
  pl.ngroups = lmc__cdiv(pl.np, pl.group);
  lmc__parallel(pool, pl.mblocks * pl.ngroups, 1, lmc__s8_task, &pl);
}
