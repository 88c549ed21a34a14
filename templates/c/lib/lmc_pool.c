/* lmc_pool.c - 2-D max pooling of f32 planes (NCHW: every leading index is one plane). Windows
 * of stride 1 or 2 along W without dilation (the common 2x2 / 3x3 pools) are separable: each
 * input row's window maxima along W first (stride 2 through de-interleaved even / odd columns),
 * then each output row is the max of its window's rows; every pass is a plain loop over
 * contiguous data that the compiler vectorizes. Other windows fold tap by tap. NaN propagates,
 * as in the IR reference (np.maximum). */
#include <math.h>

#include "lmc_kern.h"

typedef struct {
  const lmc_pool2d_shape *s;
  const float *x;
  float *y;
} lmc__maxpool;

/* max(a, v), NaN when either is NaN. */
static inline float lmc__maxnan(float a, float v) {
  float m = a > v ? a : v; /* v when either is NaN */
  return a != a ? a : m;
}

/* yr[ow] = max(yr[ow], every tap of row xr inside x) (the general path). */
static void lmc__maxpool_taps(const lmc_pool2d_shape *s, const float *xr, float *yr) {
  for (int64_t t = 0; t < s->KW; t++) {
    int64_t off = t * s->dil_w - s->pad_left, lo, hi;
    lmc__valid_range(off, s->stride_w, s->W, s->OW, &lo, &hi);
    for (int64_t ow = lo; ow < hi; ow++) yr[ow] = lmc__maxnan(yr[ow], xr[ow * s->stride_w + off]);
  }
}

static void lmc__maxpool_general(const lmc_pool2d_shape *s, const float *x, float *y) {
  for (int64_t oh = 0; oh < s->OH; oh++) {
    float *yr = y + oh * s->OW;
    for (int64_t ow = 0; ow < s->OW; ow++) yr[ow] = -INFINITY;
    for (int64_t r = 0; r < s->KH; r++) {
      int64_t ih = oh * s->stride_h + r * s->dil_h - s->pad_top;
      if (ih >= 0 && ih < s->H) lmc__maxpool_taps(s, x + ih * s->W, yr);
    }
  }
}

/* The separable path: W stride 1 or 2, no W dilation, [H][OW] row maxima + 2 rows of
 * de-interleaved columns fit the per-thread scratch. */
static int lmc__maxpool_separable(const lmc_pool2d_shape *s) {
  return s->dil_w == 1 && (s->stride_w == 1 || s->stride_w == 2) &&
         s->H * s->OW + 2 * (s->OW + 1) <= LMC_SCRATCH_FLOATS;
}

/* h[j] = max over taps t < KW of b[j*sw + t] for j in [lo, hi), all inside the row (b: the row
 * shifted by the left pad); e, o: scratch of hi + 1 floats. */
static void lmc__maxpool_hrow(const lmc_pool2d_shape *s, const float *restrict b, int64_t lo,
                              int64_t hi, float *restrict e, float *restrict o,
                              float *restrict h) {
  if (lo >= hi) return;
  if (s->stride_w == 2 && (s->KW == 2 || s->KW == 3)) {
    for (int64_t j = lo; j < hi; j++) e[j] = b[2 * j], o[j] = b[2 * j + 1];
    if (s->KW == 2) {
      for (int64_t j = lo; j < hi; j++) h[j] = lmc__maxnan(e[j], o[j]);
    } else {
      e[hi] = b[2 * hi];
      for (int64_t j = lo; j < hi; j++) h[j] = lmc__maxnan(lmc__maxnan(e[j], o[j]), e[j + 1]);
    }
    return;
  }
  for (int64_t j = lo; j < hi; j++) h[j] = b[j * s->stride_w];
  for (int64_t t = 1; t < s->KW; t++) {
    const float *restrict bt = b + t;
    if (s->stride_w == 1)
      for (int64_t j = lo; j < hi; j++) h[j] = lmc__maxnan(h[j], bt[j]);
    else
      for (int64_t j = lo; j < hi; j++) h[j] = lmc__maxnan(h[j], bt[2 * j]);
  }
}

static void lmc__maxpool_sep(const lmc_pool2d_shape *s, const float *x, float *y) {
  float *hb = lmc__scratch(), *e = hb + s->H * s->OW, *o = e + s->OW + 1;
  /* [lo, hi): output columns whose whole window lies inside the row; the others tap by tap */
  int64_t lo, hi, lo2, hi2;
  lmc__valid_range(-s->pad_left, s->stride_w, s->W, s->OW, &lo, &hi);
  lmc__valid_range(s->KW - 1 - s->pad_left, s->stride_w, s->W, s->OW, &lo2, &hi2);
  lo = lmc__max(lo, lo2), hi = lmc__max(lo, lmc__min(hi, hi2));
  for (int64_t ih = 0; ih < s->H; ih++) {
    const float *xr = x + ih * s->W;
    float *h = hb + ih * s->OW;
    lmc__maxpool_hrow(s, xr - s->pad_left, lo, hi, e, o, h);
    for (int64_t ow = 0; ow < lo; ow++) h[ow] = -INFINITY;
    for (int64_t ow = hi; ow < s->OW; ow++) h[ow] = -INFINITY;
    for (int64_t t = 0; t < s->KW && (lo > 0 || hi < s->OW); t++) {
      int64_t off = t - s->pad_left, a, b;
      lmc__valid_range(off, s->stride_w, s->W, s->OW, &a, &b);
      for (int64_t ow = a; ow < lmc__min(b, lo); ow++)
        h[ow] = lmc__maxnan(h[ow], xr[ow * s->stride_w + off]);
      for (int64_t ow = lmc__max(a, hi); ow < b; ow++)
        h[ow] = lmc__maxnan(h[ow], xr[ow * s->stride_w + off]);
    }
  }
  for (int64_t oh = 0; oh < s->OH; oh++) {
    float *restrict yr = y + oh * s->OW;
    int none = 1;
    for (int64_t r = 0; r < s->KH; r++) {
      int64_t ih = oh * s->stride_h + r * s->dil_h - s->pad_top;
      if (ih < 0 || ih >= s->H) continue;
      const float *restrict h = hb + ih * s->OW;
      if (none)
        for (int64_t ow = 0; ow < s->OW; ow++) yr[ow] = h[ow];
      else
        for (int64_t ow = 0; ow < s->OW; ow++) yr[ow] = lmc__maxnan(yr[ow], h[ow]);
      none = 0;
    }
    if (none)
      for (int64_t ow = 0; ow < s->OW; ow++) yr[ow] = -INFINITY;
  }
}

static void lmc__maxpool_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__maxpool *mp = (const lmc__maxpool *)ctx;
  const lmc_pool2d_shape *s = mp->s;
  int sep = lmc__maxpool_separable(s);
  for (int64_t p = t0; p < t1; p++) {
    const float *x = mp->x + p * s->H * s->W;
    float *y = mp->y + p * s->OH * s->OW;
    if (sep)
      lmc__maxpool_sep(s, x, y);
    else
      lmc__maxpool_general(s, x, y);
  }
}

void lmc_max_pool2d_f32(struct lmc_pool *pool, const lmc_pool2d_shape *s, const float *x,
                        float *y) {
  if (s->planes <= 0 || s->OH <= 0 || s->OW <= 0) return;
  lmc__maxpool mp = {s, x, y};
  int64_t chunk = lmc__max(1, 16384 / (s->OH * s->OW + s->H * s->W));
  lmc__parallel(pool, s->planes, chunk, lmc__maxpool_task, &mp);
}
