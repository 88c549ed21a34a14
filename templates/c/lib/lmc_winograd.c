/* lmc_winograd.c - 3x3 stride-1 convolution by Winograd minimal filtering F(2x2, 3x3) (Lavin
 * and Gray, 2016): each 2x2 output tile takes 16 multiplies per (input, output) channel pair
 * instead of 36, so the GEMM work is 4/9 of im2col's. Tiles are vector lanes: a tile row is
 * padded to whole panels of 16 tiles (twp), so a panel never straddles two rows (the compiler
 * picks this path only where that padding wastes little: select_conv_algorithm). A task owns
 * a block of panels of one image and keeps everything in its thread-local scratch:
 *  1. input transform V = B^T d B per 4x4 patch, per channel from a zero-padded copy of the
 *     block's input rows split into even and odd columns (16 tiles read contiguous vectors),
 *     written as 16 GEMM B operands in the packed panel layout ([panel][C][16 tiles]);
 *  2. per chunk of output channels, 16 GEMMs M_xi[k, tile] = U_xi[k, :] @ V_xi[:, tile] on the
 *     shared micro-kernels, U = G g G^T transformed and packed into the micro-kernel's row
 *     panels at compile time (packing.pack_conv2d_winograd; the layout names LMC_MR);
 *  3. output transform Y = A^T M A, bias, y, then the epilogue on what was written.
 * Transforms (rows r, columns s of a 4x4 block):
 *   B^T d: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3 (then the same along s);
 *   A^T m: y0 = m0 + m1 + m2, y1 = m1 - m2 - m3 (then the same along s). */
#include "lmc_kern.h"

#ifndef LMC_WINO_FLOATS
#define LMC_WINO_FLOATS (256 * 1024) /* per-thread scratch of a task (1 MiB) */
#endif
#define LMC__WNV (LMC_PANEL / LMC_VL) /* vectors per 16-tile panel */
#define LMC__WKCH (64 / LMC_MR * LMC_MR) /* output channels per GEMM + output transform round */
#define LMC__WMAXP 6                  /* panels per block at most */

static LMC_TLS float lmc__wino_tls[LMC_WINO_FLOATS + 16];

typedef struct {
  const lmc_conv2d_shape *s;
  const float *x, *u, *bias;
  float *y;
  int64_t th, tw, pr; /* tile rows, tiles per row, panels per tile row */
  int64_t ppi, bp;    /* panels per image, panels per block */
  int64_t nblocks;    /* blocks per image */
  int64_t ew;         /* entries per parity in a split row (pr * 16 + 1) */
  lmc_epilogue_fn epi;
  void *epi_ctx;
} lmc__wino;

#define LMC__STR2(x) #x
#define LMC__STR(x) LMC__STR2(x)
const char *lmc_conv2d_wino_layout(void) { return "lmc.conv2d.wino2x3.mr" LMC__STR(LMC_MR) ".v1"; }

static int64_t lmc__wino_rows(const lmc_conv2d_shape *s) { return lmc__cdiv(s->K, LMC_MR) * LMC_MR; }

/* Floats a task needs for a block of bp panels: V, M and the split input rows. */
static int64_t lmc__wino_need(const lmc_conv2d_shape *s, int64_t pr, int64_t bp) {
  int64_t nb = bp * LMC_PANEL, kch = lmc__min(lmc__wino_rows(s), LMC__WKCH);
  int64_t rows = 2 * (lmc__cdiv(bp, pr) + 1) + 2; /* input rows of the tile rows it touches */
  return 16 * nb * (s->C + kch) + rows * 2 * (pr * LMC_PANEL + 1) + 64;
}

static void lmc__wino_geometry(const lmc_conv2d_shape *s, int64_t threads, lmc__wino *w) {
  w->th = lmc__cdiv(s->OH, 2);
  w->tw = lmc__cdiv(s->OW, 2);
  w->pr = lmc__cdiv(w->tw, LMC_PANEL);
  w->ppi = w->th * w->pr;
  w->ew = w->pr * LMC_PANEL + 1;
  /* panels per block: the fewest rounds of blocks over the threads, each block weighted by how
   * much of its micro-tiles' width it fills (whole LMC_NP-panel tiles are fastest) */
  double best = -1.0;
  w->bp = 0;
  for (int64_t bp = 1; bp <= lmc__min(LMC__WMAXP, w->ppi); bp++) {
    if (lmc__wino_need(s, w->pr, bp) > LMC_WINO_FLOATS) break;
    int64_t blocks = s->N * lmc__cdiv(w->ppi, bp);
    double fill = (double)bp / (double)(lmc__cdiv(bp, LMC_NP) * LMC_NP);
    double cost = (double)(lmc__cdiv(blocks, threads) * bp) / (0.5 + 0.5 * fill);
    if (best < 0.0 || cost < best - 1e-9) best = cost, w->bp = bp;
  }
  w->nblocks = w->bp ? lmc__cdiv(w->ppi, w->bp) : 0;
}

int lmc_conv2d_wino_applies(const lmc_conv2d_shape *s) {
  if (s->R != 3 || s->S != 3 || s->stride_h != 1 || s->stride_w != 1 || s->dil_h != 1 ||
      s->dil_w != 1 || s->groups != 1 || s->N <= 0 || s->C <= 0 || s->K <= 0 || s->OH <= 0 ||
      s->OW <= 0)
    return 0;
  lmc__wino w;
  lmc__wino_geometry(s, 1, &w);
  return w.bp > 0;
}

size_t lmc_conv2d_wino_packed_bytes(const lmc_conv2d_shape *s) {
  return (size_t)(16 * lmc__wino_rows(s) * s->C) * sizeof(float);
}

/* U[xi] = G g G^T for g = w[k, c] (3x3), G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2],
 * [0, 0, 1]], stored per xi as micro-panels of LMC_MR output channels, [K/MR][C][MR] (rows
 * past K zero). The same arithmetic as packing.pack_conv2d_winograd (float64 there). */
void lmc_conv2d_wino_pack(const lmc_conv2d_shape *s, const float *wt, float *packed) {
  static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  const int64_t kr = lmc__wino_rows(s);
  memset(packed, 0, lmc_conv2d_wino_packed_bytes(s));
  for (int64_t k = 0; k < s->K; k++)
    for (int64_t c = 0; c < s->C; c++) {
      const float *g = wt + (k * s->C + c) * 9;
      double t[4][3];
      for (int a = 0; a < 4; a++)
        for (int j = 0; j < 3; j++)
          t[a][j] = G[a][0] * g[j] + G[a][1] * g[3 + j] + G[a][2] * g[6 + j];
      for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
          double u = t[a][0] * G[b][0] + t[a][1] * G[b][1] + t[a][2] * G[b][2];
          float *panel = packed + (int64_t)(4 * a + b) * kr * s->C + (k / LMC_MR) * s->C * LMC_MR;
          panel[c * LMC_MR + k % LMC_MR] = (float)u;
        }
    }
}

/* e[m] = p[2m], o[m] = p[2m + 1] for the first whole vectors of m < n; returns how many m. */
static inline int64_t lmc__deinterleave(const float *p, float *e, float *o, int64_t n) {
  int64_t m = 0;
#if defined(LMC_AVX2) || defined(LMC_AVX512)
  for (; m + 8 <= n; m += 8) {
    __m256 a = _mm256_loadu_ps(p + 2 * m), b = _mm256_loadu_ps(p + 2 * m + 8);
    __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    __m256 od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    _mm256_storeu_ps(e + m, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8)));
    _mm256_storeu_ps(o + m, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xD8)));
  }
#elif defined(LMC_NEON)
  for (; m + 4 <= n; m += 4) {
    float32x4x2_t v = vld2q_f32(p + 2 * m);
    vst1q_f32(e + m, v.val[0]);
    vst1q_f32(o + m, v.val[1]);
  }
#elif defined(LMC_WASM_SIMD)
  for (; m + 4 <= n; m += 4) {
    v128_t a = wasm_v128_load(p + 2 * m), b = wasm_v128_load(p + 2 * m + 4);
    wasm_v128_store(e + m, wasm_i32x4_shuffle(a, b, 0, 2, 4, 6));
    wasm_v128_store(o + m, wasm_i32x4_shuffle(a, b, 1, 3, 5, 7));
  }
#else
  (void)p, (void)e, (void)o, (void)n;
#endif
  return m;
}

/* One input row (W floats at xr, NULL: a row of the padding) zero-padded by pl on the left and
 * to 2 * ew in all, split: e[m] = padded[2m], o[m] = padded[2m + 1]. */
static void lmc__wino_split_row(const float *xr, int64_t W, int64_t pl, int64_t ew, float *e,
                                float *o) {
  if (!xr) {
    memset(e, 0, (size_t)ew * sizeof(float));
    memset(o, 0, (size_t)ew * sizeof(float));
    return;
  }
  const float *row = xr - pl; /* padded column q is row[q] where 0 <= q - pl < W */
  /* m whose two inputs 2m - pl and 2m + 1 - pl both lie in the row */
  int64_t lo = lmc__min(ew, (pl + 1) / 2), hi = lmc__max(lo, lmc__min(ew, (W + pl - 1) / 2));
  for (int64_t m = 0; m < ew; m++) {
    if (m == lo) { /* the interior: no bounds to check */
      m += lmc__deinterleave(row + 2 * m, e + m, o + m, hi - m);
      for (; m < hi; m++) e[m] = row[2 * m], o[m] = row[2 * m + 1];
      if (m == ew) break;
    }
    int64_t q = 2 * m - pl;
    e[m] = q >= 0 && q < W ? row[2 * m] : 0.0f;
    o[m] = q + 1 >= 0 && q + 1 < W ? row[2 * m + 1] : 0.0f;
  }
}

/* Input rows [r0, r0 + rows) of plane xc as split rows: [rows][e: ew | o: ew]. */
static void lmc__wino_split(const lmc__wino *w, const float *xc, int64_t r0, int64_t rows,
                            float *buf) {
  const lmc_conv2d_shape *s = w->s;
  for (int64_t r = 0; r < rows; r++) {
    int64_t ih = r0 + r - s->pad_top;
    const float *xr = ih >= 0 && ih < s->H ? xc + ih * s->W : NULL;
    float *e = buf + r * 2 * w->ew;
    lmc__wino_split_row(xr, s->W, s->pad_left, w->ew, e, e + w->ew);
  }
}

/* 16 tiles' 4x4 patches (from split rows at rs: row r at rs + r * 2ew) -> the 16 transformed
 * values, each 16 tiles wide at dst + xi * xs. */
static inline void lmc__wino_in_panel(const float *rs, int64_t ew, float *dst, int64_t xs) {
  for (int q = 0; q < LMC__WNV; q++) {
    lmc_vf d[4][4], t[4][4];
    for (int r = 0; r < 4; r++) {
      const float *e = rs + r * 2 * ew + q * LMC_VL, *o = e + ew;
      d[r][0] = lmc_vload(e);
      d[r][1] = lmc_vload(o);
      d[r][2] = lmc_vload(e + 1);
      d[r][3] = lmc_vload(o + 1);
    }
    for (int c = 0; c < 4; c++) {
      t[0][c] = lmc_vsub(d[0][c], d[2][c]);
      t[1][c] = lmc_vadd(d[1][c], d[2][c]);
      t[2][c] = lmc_vsub(d[2][c], d[1][c]);
      t[3][c] = lmc_vsub(d[1][c], d[3][c]);
    }
    for (int r = 0; r < 4; r++) {
      float *o4 = dst + q * LMC_VL + (int64_t)(4 * r) * xs;
      lmc_vstore(o4, lmc_vsub(t[r][0], t[r][2]));
      lmc_vstore(o4 + xs, lmc_vadd(t[r][1], t[r][2]));
      lmc_vstore(o4 + 2 * xs, lmc_vsub(t[r][2], t[r][1]));
      lmc_vstore(o4 + 3 * xs, lmc_vsub(t[r][1], t[r][3]));
    }
  }
}

/* y[0:n] = y0[0], y1[0], y0[1], y1[1], ... (n <= 2 * LMC_VL): two output columns per tile. */
static inline void lmc__wino_zip_store(float *y, lmc_vf y0, lmc_vf y1, int64_t n) {
#if defined(LMC_AVX512)
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30,
                                       15, 31);
  lmc_vstore_n(y, _mm512_permutex2var_ps(y0, lo, y1), n);
  if (n > 16) lmc_vstore_n(y + 16, _mm512_permutex2var_ps(y0, hi, y1), n - 16);
#else
  float a[LMC_VL], b[LMC_VL];
  lmc_vstore(a, y0);
  lmc_vstore(b, y1);
  for (int64_t l = 0; l < n; l++) y[l] = (l & 1) ? b[l >> 1] : a[l >> 1];
#endif
}

/* Output channels [k0, k0 + kc) of the block's panels from M ([16][kc][nb]) into y. */
static void lmc__wino_out(const lmc__wino *w, int64_t n, int64_t p0, int64_t np, int64_t k0,
                          int64_t kc, const float *m) {
  const lmc_conv2d_shape *s = w->s;
  const int64_t nb = np * LMC_PANEL, ms = kc * nb, ohw = s->OH * s->OW;
  for (int64_t k = 0; k < kc; k++) {
    float *yk = w->y + (n * s->K + k0 + k) * ohw;
    lmc_vf b = lmc_vset1(w->bias ? w->bias[k0 + k] : 0.0f);
    for (int64_t p = 0; p < np; p++) {
      int64_t i = (p0 + p) / w->pr, j0 = ((p0 + p) % w->pr) * LMC_PANEL;
      for (int q = 0; q < LMC__WNV && j0 + q * LMC_VL < w->tw; q++) {
        const float *src = m + k * nb + p * LMC_PANEL + q * LMC_VL;
        lmc_vf mm[4][4], u[2][4];
        for (int a = 0; a < 4; a++)
          for (int c = 0; c < 4; c++) mm[a][c] = lmc_vload(src + (int64_t)(4 * a + c) * ms);
        for (int c = 0; c < 4; c++) {
          u[0][c] = lmc_vadd(lmc_vadd(mm[0][c], mm[1][c]), mm[2][c]);
          u[1][c] = lmc_vsub(lmc_vsub(mm[1][c], mm[2][c]), mm[3][c]);
        }
        int64_t ow = 2 * (j0 + q * LMC_VL), cols = lmc__min(2 * LMC_VL, s->OW - ow);
        for (int a = 0; a < 2 && 2 * i + a < s->OH; a++) {
          lmc_vf y0 = lmc_vadd(lmc_vadd(lmc_vadd(u[a][0], u[a][1]), u[a][2]), b);
          lmc_vf y1 = lmc_vadd(lmc_vsub(lmc_vsub(u[a][1], u[a][2]), u[a][3]), b);
          lmc__wino_zip_store(yk + (2 * i + a) * s->OW + ow, y0, y1, cols);
        }
      }
    }
  }
  if (!w->epi) return;
  for (int64_t p = 0; p < np; p++) { /* each panel's output runs, two rows */
    int64_t i = (p0 + p) / w->pr, ow = 2 * ((p0 + p) % w->pr) * LMC_PANEL;
    int64_t cols = lmc__min(2 * LMC_PANEL, s->OW - ow);
    for (int64_t oh = 2 * i; oh < lmc__min(2 * i + 2, s->OH) && cols > 0; oh++)
      w->epi(w->epi_ctx, w->y + (n * s->K + k0) * ohw + oh * s->OW + ow, ohw, n * s->K + k0,
             oh * s->OW + ow, kc, cols);
  }
}

static void lmc__wino_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__wino *w = (const lmc__wino *)ctx;
  const lmc_conv2d_shape *s = w->s;
  float *sc = (float *)(((uintptr_t)lmc__wino_tls + 63) & ~(uintptr_t)63);
  const int64_t kr = lmc__wino_rows(s), kch = lmc__min(kr, LMC__WKCH);
  for (int64_t t = t0; t < t1; t++) {
    int64_t n = t / w->nblocks, p0 = (t % w->nblocks) * w->bp;
    int64_t np = lmc__min(w->bp, w->ppi - p0), nb = np * LMC_PANEL;
    int64_t i_lo = p0 / w->pr, rows = 2 * ((p0 + np - 1) / w->pr - i_lo + 1) + 2;
    float *v = sc, *m = v + 16 * nb * s->C, *split = m + 16 * nb * kch;
    const int64_t xs = nb * s->C; /* between the 16 transformed inputs */
    for (int64_t c = 0; c < s->C; c++) {
      lmc__wino_split(w, w->x + (n * s->C + c) * s->H * s->W, 2 * i_lo, rows, split);
      for (int64_t p = 0; p < np; p++) {
        int64_t i = (p0 + p) / w->pr, j0 = ((p0 + p) % w->pr) * LMC_PANEL;
        lmc__wino_in_panel(split + 2 * (i - i_lo) * 2 * w->ew + j0, w->ew,
                           v + (p * s->C + c) * LMC_PANEL, xs);
      }
    }
    for (int64_t k0 = 0; k0 < s->K; k0 += kch) {
      int64_t kc = lmc__min(kch, s->K - k0);
      lmc__gemm g;
      memset(&g, 0, sizeof g);
      g.M = kc, g.N = nb, g.K = s->C, g.batch = 16;
      g.ap = w->u + k0 * s->C, g.a_bs = kr * s->C, g.a_mod = 16;
      g.bp = v, g.b_bs = xs;
      g.C = m, g.ldc = nb, g.c_bs = kc * nb;
      g.bm_mod = 1;
      lmc__gemm_serial(&g);
      lmc__wino_out(w, n, p0, np, k0, kc, m);
    }
  }
}

void lmc_conv2d_wino_f32(struct lmc_pool *pool, const lmc_conv2d_shape *s, const float *x,
                         const float *packed_u, const float *bias, float *y,
                         lmc_epilogue_fn epi, void *epi_ctx) {
  if (s->N <= 0 || s->K <= 0 || s->OH <= 0 || s->OW <= 0) return;
  lmc__wino w;
  memset(&w, 0, sizeof w);
  lmc__wino_geometry(s, lmc_pool_size(pool), &w);
  if (w.bp == 0) return; /* !lmc_conv2d_wino_applies: callers check first */
  w.s = s, w.x = x, w.u = packed_u, w.bias = bias, w.y = y, w.epi = epi, w.epi_ctx = epi_ctx;
  lmc__parallel(pool, s->N * w.nblocks, 1, lmc__wino_task, &w);
}
