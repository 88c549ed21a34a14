/* lmc_conv.c - 2-D convolution, NCHW, as implicit-im2col GEMMs on the micro-kernels of
 * lmc_gemm: weights pre-packed into 16-channel panels (layout lmc.conv2d.panel16.v2, the GEMM
 * layout per group), input patches packed block by block straight from x (or from a zero-padded
 * copy of x in the workspace, so packing needs no bounds checks: every patch row is one or two
 * contiguous or strided runs). Per shape, one of two tile orientations:
 *  - P: output channels are the micro-tile's rows (weights repacked per k block into MR-row
 *    micro-panels, a contiguous copy), pixels its wide side; a task owns a pixel block and every
 *    channel, so each patch block is packed once.
 *  - T: pixels are the rows, channels the wide side (the weight panels are read in place), for
 *    small images where pixels padded to the tile width would waste much (7x7: 49 of 64); the
 *    tile is computed transposed in scratch and transposed into y.
 * Depthwise shapes (one input channel per output channel) run a direct kernel on OIHW weights. */
#include "lmc_kern.h"

#ifndef LMC_MC_T
#define LMC_MC_T 256 /* orientation T: pixels per block (the packed block stays in L2) */
#endif
/* a T block (packed pixels [MC][kb] and a transposed tile at least NR wide) fits the scratch */
typedef char lmc__conv_t_fits[LMC_MC_T * (LMC_KC + LMC_NR) <= LMC_SCRATCH_FLOATS ? 1 : -1];

const char *lmc_conv2d_layout(void) { return "lmc.conv2d.panel16.v2"; }

static int lmc__conv_direct(const lmc_conv2d_shape *s) {
  return s->C / s->groups == 1 && s->K / s->groups <= 4;
}

size_t lmc_conv2d_packed_bytes(const lmc_conv2d_shape *s) {
  if (s->K <= 0 || s->C <= 0 || s->R <= 0 || s->S <= 0 || s->groups <= 0) return 0;
  int64_t kred = s->C / s->groups * s->R * s->S;
  if (lmc__conv_direct(s)) return (size_t)(s->K * kred) * sizeof(float);
  return (size_t)s->groups * lmc_gemm_packed_bytes(s->K / s->groups, kred);
}

void lmc_conv2d_pack(const lmc_conv2d_shape *s, const float *w, float *packed) {
  size_t n = lmc_conv2d_packed_bytes(s);
  if (!n) return;
  if (lmc__conv_direct(s)) {
    memcpy(packed, w, n);
    return;
  }
  int64_t kg = s->K / s->groups, kred = s->C / s->groups * s->R * s->S;
  int64_t per = (int64_t)(lmc_gemm_packed_bytes(kg, kred) / sizeof(float));
  for (int64_t g = 0; g < s->groups; g++)
    lmc_gemm_pack(kg, kred, w + g * kg * kred, kred, packed + g * per);
}

/* Extent of the input the output reads, in padded coordinates. */
static void lmc__conv_extent(const lmc_conv2d_shape *s, int64_t *hp, int64_t *wp) {
  *hp = (s->OH - 1) * s->stride_h + (s->R - 1) * s->dil_h + 1;
  *wp = (s->OW - 1) * s->stride_w + (s->S - 1) * s->dil_w + 1;
}

/* Whether some read falls outside x (then the GEMM path packs from a zero-padded copy). */
static int lmc__conv_needs_pad(const lmc_conv2d_shape *s) {
  int64_t hp, wp;
  lmc__conv_extent(s, &hp, &wp);
  return s->pad_top != 0 || s->pad_left != 0 || hp > s->H || wp > s->W;
}

size_t lmc_conv2d_workspace_bytes(const lmc_conv2d_shape *s) {
  if (s->N <= 0 || s->K <= 0 || s->OH <= 0 || s->OW <= 0 || s->groups <= 0) return 0;
  if (lmc__conv_direct(s) || !lmc__conv_needs_pad(s)) return 0;
  int64_t hp, wp;
  lmc__conv_extent(s, &hp, &wp);
  return (size_t)(s->N * s->C * hp * wp) * sizeof(float);
}

/* ---- the zero-padded copy ----------------------------------------------------------------- */

typedef struct {
  const lmc_conv2d_shape *s;
  const float *x;
  float *xp;
  int64_t hp, wp;
} lmc__padcopy;

static void lmc__pad_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__padcopy *pc = (const lmc__padcopy *)ctx;
  const lmc_conv2d_shape *s = pc->s;
  int64_t wp = pc->wp, lo = lmc__min(lmc__max(s->pad_left, 0), wp);
  int64_t hi = lmc__min(lmc__max(s->W + s->pad_left, lo), wp);
  for (int64_t t = t0; t < t1; t++) {
    const float *xc = pc->x + t * s->H * s->W;
    float *d = pc->xp + t * pc->hp * wp;
    for (int64_t i = 0; i < pc->hp; i++, d += wp) {
      int64_t ih = i - s->pad_top;
      if (ih < 0 || ih >= s->H) {
        memset(d, 0, (size_t)wp * sizeof(float));
        continue;
      }
      memset(d, 0, (size_t)lo * sizeof(float));
      memcpy(d + lo, xc + ih * s->W + (lo - s->pad_left), (size_t)(hi - lo) * sizeof(float));
      memset(d + hi, 0, (size_t)(wp - hi) * sizeof(float));
    }
  }
}

/* ---- patch packing ------------------------------------------------------------------------- */

typedef struct {
  const lmc_conv2d_shape *s;
  const float *src;              /* x or its padded copy */
  int64_t ldr, ldp, ldn;         /* row, channel-plane and image strides of src */
  int fast;                      /* every read lies inside src (no bounds checks) */
  const float *w, *bias;
  float *y;
  int64_t cg, kg, kred, ohw, wpg; /* wpg: packed weight floats per group */
  int64_t mrt, MC, NC, mblocks, nblocks; /* T: tile rows, block sizes; both: block counts */
  lmc_epilogue_fn epi;
  void *epi_ctx;
} lmc__conv;

/* dst[0:n] = s[0], s[sw], ..., s[(n-1)*sw] for n <= 16 (reads nothing past the last). */
static inline void lmc__copy_run(float *d, const float *s, int64_t n, int64_t sw) {
#if defined(LMC_AVX512)
  if (sw == 1) {
    __mmask16 m = lmc__vmask(n);
    _mm512_mask_storeu_ps(d, m, _mm512_maskz_loadu_ps(m, s));
    return;
  }
  if (sw == 2) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    __m512 lo = _mm512_maskz_loadu_ps(lmc__vmask(2 * n - 1), s);
    __m512 hi = _mm512_maskz_loadu_ps(lmc__vmask(2 * n - 17), s + 16);
    _mm512_mask_storeu_ps(d, lmc__vmask(n), _mm512_permutex2var_ps(lo, even, hi));
    return;
  }
#endif
  if (sw == 1 && n == 16) {
    memcpy(d, s, 16 * sizeof(float));
  } else if (sw == 1) {
    for (int64_t j = 0; j < n; j++) d[j] = s[j];
  } else {
    for (int64_t j = 0; j < n; j++) d[j] = s[j * sw];
  }
}

/* koff[kk]: offset in src of reduction index k0 + kk = (c*R + r)*S + t. */
static void lmc__conv_koff(const lmc__conv *cv, int64_t k0, int64_t kc, int64_t *koff) {
  const lmc_conv2d_shape *s = cv->s;
  int64_t c = k0 / (s->R * s->S), r = (k0 / s->S) % s->R, t = k0 % s->S;
  for (int64_t kk = 0; kk < kc; kk++) {
    koff[kk] = c * cv->ldp + r * s->dil_h * cv->ldr + t * s->dil_w;
    if (++t == s->S) {
      t = 0;
      if (++r == s->R) r = 0, c++;
    }
  }
}

/* dst[kk*ws + l] = B[k0 + kk, p0 + l] (B = the patch matrix [kred, OH*OW] of one image and
 * group, xg its source) for l < w, zero for w <= l < ws (ws <= 16). The w pixels are cut into
 * runs along which the source advances by stride_w (a run crosses output rows where src rows
 * join up, e.g. unpadded 1x1 convs). */
static void lmc__pack_chunk(const lmc__conv *cv, const float *xg, const int64_t *koff,
                            int64_t kc, int64_t p0, int64_t w, int64_t ws, float *dst) {
  const lmc_conv2d_shape *s = cv->s;
  int64_t sw = s->stride_w, oh = p0 / s->OW, ow = p0 % s->OW;
  int64_t l0[16], len[16], off[16], runs = 0;
  for (int64_t l = 0; l < w; l++) {
    int64_t o = oh * s->stride_h * cv->ldr + ow * sw;
    if (runs && o == off[runs - 1] + len[runs - 1] * sw) {
      len[runs - 1]++;
    } else {
      l0[runs] = l, len[runs] = 1, off[runs] = o;
      runs++;
    }
    if (++ow == s->OW) ow = 0, oh++;
  }
  if (runs == 1 && w == ws) {
    const float *b = xg + off[0];
    if (sw == 1 && ws == 16)
      for (int64_t kk = 0; kk < kc; kk++) lmc__copy_run(dst + kk * 16, b + koff[kk], 16, 1);
    else
      for (int64_t kk = 0; kk < kc; kk++) lmc__copy_run(dst + kk * ws, b + koff[kk], ws, sw);
    return;
  }
  for (int64_t kk = 0; kk < kc; kk++) {
    float *d = dst + kk * ws;
    for (int64_t q = 0; q < runs; q++) lmc__copy_run(d + l0[q], xg + off[q] + koff[kk], len[q], sw);
    for (int64_t l = w; l < ws; l++) d[l] = 0.0f;
  }
}

/* The same with bounds checks, reading x itself (no padded copy: the caller had no workspace). */
static void lmc__pack_chunk_checked(const lmc__conv *cv, const float *xg, int64_t k0, int64_t kc,
                                    int64_t p0, int64_t w, int64_t ws, float *dst) {
  const lmc_conv2d_shape *s = cv->s;
  int64_t ih0[16], iw0[16], oh = p0 / s->OW, ow = p0 % s->OW;
  for (int64_t l = 0; l < w; l++) {
    ih0[l] = oh * s->stride_h - s->pad_top, iw0[l] = ow * s->stride_w - s->pad_left;
    if (++ow == s->OW) ow = 0, oh++;
  }
  int64_t c = k0 / (s->R * s->S), r = (k0 / s->S) % s->R, t = k0 % s->S;
  for (int64_t kk = 0; kk < kc; kk++) {
    float *d = dst + kk * ws;
    const float *xc = xg + c * cv->ldp;
    for (int64_t l = 0; l < w; l++) {
      int64_t ih = ih0[l] + r * s->dil_h, iw = iw0[l] + t * s->dil_w;
      d[l] = ih >= 0 && ih < s->H && iw >= 0 && iw < s->W ? xc[ih * cv->ldr + iw] : 0.0f;
    }
    for (int64_t l = w; l < ws; l++) d[l] = 0.0f;
    if (++t == s->S) {
      t = 0;
      if (++r == s->R) r = 0, c++;
    }
  }
}

/* Pixels [p0, p0 + np) of image-group b, reduction rows [k0, k0 + kc), as chunks of ws pixels
 * [kc][ws] one after another. koff: scratch of LMC_KC offsets. */
static void lmc__pack_pixels(const lmc__conv *cv, int64_t b, int64_t k0, int64_t kc, int64_t p0,
                             int64_t np, int64_t ws, float *dst, int64_t *koff) {
  const lmc_conv2d_shape *s = cv->s;
  const float *xg = cv->src + (b / s->groups) * cv->ldn + (b % s->groups) * cv->cg * cv->ldp;
  if (cv->fast) lmc__conv_koff(cv, k0, kc, koff);
  for (int64_t q = 0; q * ws < np; q++) {
    int64_t w = lmc__min(ws, np - q * ws);
    if (cv->fast)
      lmc__pack_chunk(cv, xg, koff, kc, p0 + q * ws, w, ws, dst + q * kc * ws);
    else
      lmc__pack_chunk_checked(cv, xg, k0, kc, p0 + q * ws, w, ws, dst + q * kc * ws);
  }
}

/* Rows [m0, m0 + mc) x reduction [k0, k0 + kc) of a group's weight panels ([kred][16] each) as
 * MR-row micro-panels [kc][MR]. Rows past the group's channels are the panels' zeros or, for
 * micro-panels that straddle a panel, zero-filled. */
static void lmc__pack_wpanel(const float *wg, int64_t kg, int64_t kred, int64_t m0, int64_t mc,
                             int64_t k0, int64_t kc, float *dst) {
  for (int64_t ir = 0; ir < mc; ir += LMC_MR) {
    float *d = dst + ir * kc;
    int64_t m = m0 + ir, lane = m % LMC_PANEL;
    if (lane + LMC_MR <= LMC_PANEL) {
      const float *src = wg + ((m / LMC_PANEL) * kred + k0) * LMC_PANEL + lane;
      for (int64_t k = 0; k < kc; k++)
        memcpy(d + k * LMC_MR, src + k * LMC_PANEL, LMC_MR * sizeof(float));
      continue;
    }
    for (int64_t i = 0; i < LMC_MR; i++) {
      int64_t row = m + i;
      const float *src = wg + ((row / LMC_PANEL) * kred + k0) * LMC_PANEL + row % LMC_PANEL;
      if (row < kg)
        for (int64_t k = 0; k < kc; k++) d[k * LMC_MR + i] = src[k * LMC_PANEL];
      else
        for (int64_t k = 0; k < kc; k++) d[k * LMC_MR + i] = 0.0f;
    }
  }
}

/* Balanced k blocks of at most kmax, multiples of 8. */
static int64_t lmc__conv_kblock(int64_t kred, int64_t kmax) {
  int64_t nkb = lmc__max(1, lmc__cdiv(kred, kmax));
  return lmc__min(kmax, lmc__cdiv(lmc__cdiv(kred, nkb), 8) * 8);
}
/* Orientation T's k block: the weight block a channel tile reads (kb x NR floats, 24 KB for
 * the 8 x 48 tile) stays in L1 over the block's pixel tiles (ResNet-18's 7 x 7 x 512 convs on
 * an Ice Lake core: 80 -> 86 GFLOP/s; a 64 k block was slower than 512) */
#ifndef LMC_KC_T
#define LMC_KC_T 128
#endif

/* Block i of n over `units` tiles of `width`, clipped to `len`: [*lo, *hi). */
static void lmc__block(int64_t i, int64_t n, int64_t units, int64_t width, int64_t len,
                       int64_t *lo, int64_t *hi) {
  *lo = i * units / n * width;
  *hi = lmc__min(len, (i + 1) * units / n * width);
}

/* ---- orientation P: rows = output channels, wide side = pixels --------------------------- */

static void lmc__conv_p_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__conv *cv = (const lmc__conv *)ctx;
  const lmc_conv2d_shape *s = cv->s;
  float *bpack = lmc__scratch(), *apack = bpack + LMC_KC * LMC_NC_MAX;
  int64_t koff[LMC_KC], kb = lmc__conv_kblock(cv->kred, LMC_KC), ohw = cv->ohw;
  for (int64_t t = t0; t < t1; t++) {
    int64_t b = t / cv->nblocks, g = b % s->groups, n0, n1;
    lmc__block(t % cv->nblocks, cv->nblocks, lmc__cdiv(ohw, LMC_NR), LMC_NR, ohw, &n0, &n1);
    int64_t nc = n1 - n0, row0 = (b / s->groups) * s->K + g * cv->kg;
    const float *wg = cv->w + g * cv->wpg;
    const float *bias = cv->bias ? cv->bias + g * cv->kg : NULL;
    float *C = cv->y + row0 * ohw + n0;
    for (int64_t pc = 0; pc < cv->kred; pc += kb) {
      int64_t kc = lmc__min(kb, cv->kred - pc);
      lmc__pack_pixels(cv, b, pc, kc, n0, nc, LMC_PANEL, bpack, koff);
      for (int64_t m0 = 0; m0 < cv->kg; m0 += LMC_MC_MAX) {
        int64_t mc = lmc__min(LMC_MC_MAX, cv->kg - m0);
        lmc__pack_wpanel(wg, cv->kg, cv->kred, m0, mc, pc, kc, apack);
        for (int64_t ir = 0; ir < mc; ir += LMC_MR) {
          int64_t mr = lmc__min(LMC_MR, mc - ir);
          for (int64_t jr = 0; jr < nc; jr += LMC_NR) {
            int64_t nr = lmc__min(LMC_NR, nc - jr);
            lmc__ukernel(kc, apack + ir * kc, bpack + jr * kc, kc * LMC_PANEL,
                         C + (m0 + ir) * ohw + jr, ohw, mr, nr, pc == 0, NULL,
                         bias ? bias + m0 + ir : NULL);
          }
        }
        if (pc + kc >= cv->kred && cv->epi)
          cv->epi(cv->epi_ctx, C + m0 * ohw, ohw, row0 + m0, n0, mc, nc);
      }
    }
  }
}

/* ---- orientation T: rows = pixels, wide side = output channels --------------------------- */

/* c (+)= A @ B on an mrt-row micro-tile (LMC_MR or the ISA's LMC_MR_ALT). */
static inline void lmc__ukernel_rows(int64_t mrt, int64_t kc, const float *ap, const float *b0,
                                     int64_t bstride, float *c, int64_t ldc, int64_t mr,
                                     int64_t nr, int first, const float *bias_n) {
#if defined(LMC_MR_ALT)
  if (mrt == LMC_MR_ALT) {
    lmc__ukernel_alt(kc, ap, b0, bstride, c, ldc, mr, nr, first, bias_n, NULL);
    return;
  }
#endif
  (void)mrt;
  lmc__ukernel(kc, ap, b0, bstride, c, ldc, mr, nr, first, bias_n, NULL);
}

static void lmc__conv_t_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__conv *cv = (const lmc__conv *)ctx;
  const lmc_conv2d_shape *s = cv->s;
  int64_t koff[LMC_KC], kb = lmc__conv_kblock(cv->kred, LMC_KC_T), mrt = cv->mrt, ldt = cv->NC;
  float *apack = lmc__scratch(), *ct = apack + cv->MC * kb;
  for (int64_t t = t0; t < t1; t++) {
    int64_t rest = t / cv->nblocks, b = rest / cv->mblocks, g = b % s->groups, m0, m1, c0, c1;
    lmc__block(t % cv->nblocks, cv->nblocks, lmc__cdiv(cv->kg, LMC_NR), LMC_NR, cv->kg, &c0, &c1);
    lmc__block(rest % cv->mblocks, cv->mblocks, lmc__cdiv(cv->ohw, mrt), mrt, cv->ohw, &m0, &m1);
    int64_t nc = c1 - c0, mc = m1 - m0, row0 = (b / s->groups) * s->K + g * cv->kg + c0;
    const float *wg = cv->w + g * cv->wpg + c0 * cv->kred;
    const float *bias = cv->bias ? cv->bias + g * cv->kg + c0 : NULL;
    for (int64_t pc = 0; pc < cv->kred; pc += kb) {
      int64_t kc = lmc__min(kb, cv->kred - pc);
      lmc__pack_pixels(cv, b, pc, kc, m0, mc, mrt, apack, koff);
      for (int64_t jr = 0; jr < nc; jr += LMC_NR) {
        int64_t nr = lmc__min(LMC_NR, nc - jr);
        const float *b0 = wg + jr * cv->kred + pc * LMC_PANEL;
        for (int64_t ir = 0; ir < mc; ir += mrt)
          lmc__ukernel_rows(mrt, kc, apack + ir * kc, b0, cv->kred * LMC_PANEL, ct + ir * ldt + jr, ldt,
                            lmc__min(mrt, mc - ir), nr, pc == 0, bias ? bias + jr : NULL);
      }
    }
    float *yt = cv->y + row0 * cv->ohw + m0;
    for (int64_t j0 = 0; j0 < nc; j0 += 8)
      for (int64_t i0 = 0; i0 < mc; i0 += 8)
        for (int64_t j = j0; j < lmc__min(j0 + 8, nc); j++)
          for (int64_t i = i0; i < lmc__min(i0 + 8, mc); i++)
            yt[j * cv->ohw + i] = ct[i * ldt + j];
    if (cv->epi) cv->epi(cv->epi_ctx, yt, cv->ohw, row0, m0, nc, mc);
  }
}

/* ---- direct path: one input channel per output channel ---------------------------------- */

typedef struct {
  const lmc_conv2d_shape *s;
  const float *x, *w, *bias;
  float *y;
  int64_t kg;
  lmc_epilogue_fn epi;
  void *epi_ctx;
} lmc__direct;

/* y (one channel plane, bias-initialized) += every tap of w over x: per tap, the output rows
 * and columns whose input lies inside x, vectorized along the row. */
static void lmc__dw_plane(const lmc_conv2d_shape *s, const float *xc, const float *wk, float *y) {
  for (int64_t r = 0; r < s->R; r++) {
    int64_t oh_lo, oh_hi;
    lmc__valid_range(r * s->dil_h - s->pad_top, s->stride_h, s->H, s->OH, &oh_lo, &oh_hi);
    for (int64_t t = 0; t < s->S; t++) {
      int64_t off = t * s->dil_w - s->pad_left, ow_lo, ow_hi;
      lmc__valid_range(off, s->stride_w, s->W, s->OW, &ow_lo, &ow_hi);
      float wv = wk[r * s->S + t];
      for (int64_t oh = oh_lo; oh < oh_hi; oh++) {
        const float *xr = xc + (oh * s->stride_h + r * s->dil_h - s->pad_top) * s->W;
        float *yr = y + oh * s->OW;
        /* plain loops: the compiler's vectorized tails beat masked vector stores here, which
         * block store-to-load forwarding into the next tap */
        if (s->stride_w == 1)
          for (int64_t ow = ow_lo; ow < ow_hi; ow++) yr[ow] += wv * xr[ow + off];
        else
          for (int64_t ow = ow_lo; ow < ow_hi; ow++) yr[ow] += wv * xr[ow * s->stride_w + off];
      }
    }
  }
}

static void lmc__direct_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__direct *dc = (const lmc__direct *)ctx;
  const lmc_conv2d_shape *s = dc->s;
  int64_t ohw = s->OH * s->OW;
  for (int64_t t = t0; t < t1; t++) {
    int64_t n = t / s->K, k = t % s->K, ci = k / dc->kg;
    const float *xc = dc->x + (n * s->C + ci) * s->H * s->W;
    float *yk = dc->y + t * ohw;
    float b = dc->bias ? dc->bias[k] : 0.0f;
    for (int64_t i = 0; i < ohw; i++) yk[i] = b;
    lmc__dw_plane(s, xc, dc->w + k * s->R * s->S, yk);
    if (dc->epi) dc->epi(dc->epi_ctx, yk, ohw, t, 0, 1, ohw);
  }
}

/* ---- entry --------------------------------------------------------------------------------- */

/* Fraction of a tiling's multiply-adds that land in the output. */
static double lmc__tile_use(int64_t rows, int64_t mr, int64_t cols) {
  return (double)rows / (double)(lmc__cdiv(rows, mr) * mr) * (double)cols /
         (double)(lmc__cdiv(cols, LMC_NR) * LMC_NR);
}

/* How many blocks to cut `units` tiles into: at least `least`, and with `others` blocks of the
 * other dimensions, enough tasks (a multiple of the thread count where possible) to keep the
 * pool's threads evenly busy. */
static int64_t lmc__nblocks(int64_t units, int64_t least, int64_t others, int64_t threads) {
  int64_t n = lmc__max(1, least);
  if (threads > 1) {
    n = lmc__max(n, lmc__cdiv(2 * threads, others));
    while (n < units && (n * others) % threads) n++;
  }
  return lmc__min(n, units);
}

/* Orientation T's blocks: mblocks pixel blocks (of whole mrt-row tiles, at most LMC_MC_T rows)
 * x nblocks channel blocks (of NR-wide tiles, as many as the scratch holds next to the packed
 * pixels: [MC][kb] + the transposed tile [MC][NC]), minimizing, in micro-tile units, the
 * busiest thread's tiles (tasks handed out in rounds) plus the pixel packing repeated per
 * channel block (one tile row of pixels packs in about 1/8 of a tile's time). */
static void lmc__t_blocks(lmc__conv *cv, int64_t batches, int64_t threads) {
  int64_t kb = lmc__conv_kblock(cv->kred, LMC_KC_T), mrt = cv->mrt;
  int64_t mu = lmc__cdiv(cv->ohw, mrt), nu = lmc__cdiv(cv->kg, LMC_NR);
  double best = -1.0;
  int64_t mb0 = lmc__cdiv(mu, LMC_MC_T / mrt);
  for (int64_t mb = mb0; mb <= lmc__min(mu, lmc__max(64, mb0 + 4 * threads)); mb++) {
    int64_t MC = lmc__cdiv(mu, mb) * mrt, cap = (LMC_SCRATCH_FLOATS / MC - kb) / LMC_NR;
    if (cap < 1) continue;
    int64_t nb0 = lmc__cdiv(nu, cap);
    for (int64_t nb = nb0; nb <= lmc__min(nu, nb0 + 2 * threads); nb++) {
      int64_t tasks = batches * mb * nb, per = lmc__cdiv(mu, mb) * lmc__cdiv(nu, nb);
      double cost = (double)(lmc__cdiv(tasks, threads) * per) +
                    (double)(nb * mu * batches) / (8.0 * (double)threads);
      if (best < 0.0 || cost < best - 1e-9) {
        best = cost;
        cv->mblocks = mb, cv->nblocks = nb, cv->MC = MC;
        cv->NC = lmc__cdiv(nu, nb) * LMC_NR;
      }
    }
  }
}

static void lmc__conv_gemm(struct lmc_pool *pool, lmc__conv *cv) {
  const lmc_conv2d_shape *s = cv->s;
  int64_t batches = s->N * s->groups, threads = lmc_pool_size(pool), ohw = cv->ohw;
  int64_t mrt = LMC_MR;
#if defined(LMC_MR_ALT)
  if (lmc__cdiv(ohw, LMC_MR_ALT) * LMC_MR_ALT < lmc__cdiv(ohw, LMC_MR) * LMC_MR) mrt = LMC_MR_ALT;
#endif
  if (lmc__tile_use(ohw, mrt, cv->kg) > 1.05 * lmc__tile_use(cv->kg, LMC_MR, ohw)) {
    cv->mrt = mrt;
    lmc__t_blocks(cv, batches, threads);
    lmc__parallel(pool, batches * cv->mblocks * cv->nblocks, 1, lmc__conv_t_task, cv);
    return;
  }
  int64_t nu = lmc__cdiv(ohw, LMC_NR);
  cv->nblocks = lmc__nblocks(nu, lmc__cdiv(nu, LMC_NC_MAX / LMC_NR), batches, threads);
  lmc__parallel(pool, batches * cv->nblocks, 1, lmc__conv_p_task, cv);
}

void lmc_conv2d_f32(struct lmc_pool *pool, const lmc_conv2d_shape *s, const float *x,
                    const float *packed_w, const float *bias, float *y, void *workspace,
                    lmc_epilogue_fn epi, void *epi_ctx) {
  if (s->N <= 0 || s->K <= 0 || s->OH <= 0 || s->OW <= 0 || s->groups <= 0) return;
  int64_t cg = s->C / s->groups, kg = s->K / s->groups, ohw = s->OH * s->OW;
  if (lmc__conv_direct(s)) {
    lmc__direct dc = {s, x, packed_w, bias, y, kg, epi, epi_ctx};
    lmc__parallel(pool, s->N * s->K, 1, lmc__direct_task, &dc);
    return;
  }
  if (cg * s->R * s->S <= 0) { /* nothing to reduce: y = bias */
    for (int64_t row = 0; row < s->N * s->K; row++)
      for (int64_t i = 0; i < ohw; i++) y[row * ohw + i] = bias ? bias[row % s->K] : 0.0f;
    if (epi) epi(epi_ctx, y, ohw, 0, 0, s->N * s->K, ohw);
    return;
  }
  lmc__conv cv;
  memset(&cv, 0, sizeof cv);
  cv.s = s, cv.w = packed_w, cv.bias = bias, cv.y = y, cv.epi = epi, cv.epi_ctx = epi_ctx;
  cv.cg = cg, cv.kg = kg, cv.kred = cg * s->R * s->S, cv.ohw = ohw;
  cv.wpg = (int64_t)(lmc_gemm_packed_bytes(kg, cv.kred) / sizeof(float));
  cv.src = x, cv.ldr = s->W, cv.ldp = s->H * s->W, cv.ldn = s->C * s->H * s->W, cv.fast = 1;
  if (lmc__conv_needs_pad(s)) {
    cv.fast = workspace != NULL;
    if (workspace) {
      lmc__padcopy pc = {s, x, (float *)workspace, 0, 0};
      lmc__conv_extent(s, &pc.hp, &pc.wp);
      lmc__parallel(pool, s->N * s->C, lmc__max(1, 4096 / (pc.hp * pc.wp)), lmc__pad_task, &pc);
      cv.src = pc.xp, cv.ldr = pc.wp, cv.ldp = pc.hp * pc.wp, cv.ldn = s->C * cv.ldp;
    }
  }
  lmc__conv_gemm(pool, &cv);
}
