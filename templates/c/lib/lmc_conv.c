/* lmc_conv.c - 2-D convolution, NCHW. Per shape: a direct kernel when every output channel
 * reads one input channel (depthwise, C/groups == 1), else the GEMM driver with
 * A = weights [K/groups, C/groups*R*S] and B = the input patches, packed block by block straight
 * from x (implicit im2col: no patch matrix in memory; 1x1 stride-1 unpadded convs copy rows of x
 * instead). Each (image, group) is one batch entry of the driver. */
#include "lmc_kern.h"

const char *lmc_conv2d_layout(void) { return "lmc.conv2d.oihw.v1"; }

size_t lmc_conv2d_packed_bytes(const lmc_conv2d_shape *s) {
  if (s->K <= 0 || s->C <= 0 || s->R <= 0 || s->S <= 0 || s->groups <= 0) return 0;
  return (size_t)(s->K * (s->C / s->groups) * s->R * s->S) * sizeof(float);
}

void lmc_conv2d_pack(const lmc_conv2d_shape *s, const float *w, float *packed) {
  size_t n = lmc_conv2d_packed_bytes(s);
  if (n) memcpy(packed, w, n);
}

size_t lmc_conv2d_workspace_bytes(const lmc_conv2d_shape *s) {
  (void)s;
  return 0;
}

/* ---- implicit im2col --------------------------------------------------------------------- */

typedef struct {
  const lmc_conv2d_shape *s;
  const float *x;
  int64_t cg; /* input channels per group */
} lmc__im2col;

/* B[k, p] = x[n, g*cg + c, oh*sh + r*dh - pt, ow*sw + s*dw - pl], k = (c*R + r)*S + s,
 * p = oh*OW + ow; batch = n*groups + g. A panel's 16 columns are split into runs within one
 * output row; each run is a strided copy of one input row with zeros where it leaves x. */
static void lmc__pack_im2col(const void *ctx, int64_t batch, int64_t k0, int64_t kc, int64_t n0,
                             int64_t nc, float *dst) {
  const lmc__im2col *ic = (const lmc__im2col *)ctx;
  const lmc_conv2d_shape *s = ic->s;
  int64_t n = batch / s->groups, g = batch % s->groups, sw = s->stride_w;
  const float *xg = ic->x + (n * s->C + g * ic->cg) * s->H * s->W;
  for (int64_t pn = 0; pn * LMC_PANEL < nc; pn++) {
    float *d = dst + pn * kc * LMC_PANEL;
    int64_t p0 = n0 + pn * LMC_PANEL, w = lmc__min(LMC_PANEL, nc - pn * LMC_PANEL);
    int64_t run_j[LMC_PANEL], run_len[LMC_PANEL], run_ih[LMC_PANEL], run_iw[LMC_PANEL], runs = 0;
    for (int64_t j = 0; j < w; runs++) {
      int64_t oh = (p0 + j) / s->OW, ow = (p0 + j) % s->OW;
      run_j[runs] = j;
      run_len[runs] = lmc__min(w - j, s->OW - ow);
      run_ih[runs] = oh * s->stride_h - s->pad_top;
      run_iw[runs] = ow * sw - s->pad_left;
      j += run_len[runs];
    }
    int64_t c = k0 / (s->R * s->S), r = (k0 / s->S) % s->R, t = k0 % s->S;
    for (int64_t kk = 0; kk < kc; kk++) {
      float *dk = d + kk * LMC_PANEL;
      const float *xc = xg + c * s->H * s->W;
      for (int64_t q = 0; q < runs; q++) {
        float *o = dk + run_j[q];
        int64_t len = run_len[q], ih = run_ih[q] + r * s->dil_h, iw = run_iw[q] + t * s->dil_w;
        int64_t lo = 0, hi = 0; /* columns [lo, hi) of the run read inside x */
        if (ih >= 0 && ih < s->H) {
          lo = iw >= 0 ? 0 : lmc__cdiv(-iw, sw);
          hi = s->W - iw <= 0 ? 0 : (s->W - 1 - iw) / sw + 1;
          lo = lmc__min(lo, len);
          hi = lmc__max(lo, lmc__min(hi, len));
        }
        const float *xr = xc + ih * s->W + iw;
        for (int64_t j = 0; j < lo; j++) o[j] = 0.0f;
        if (sw == 1)
          for (int64_t j = lo; j < hi; j++) o[j] = xr[j];
        else
          for (int64_t j = lo; j < hi; j++) o[j] = xr[j * sw];
        for (int64_t j = hi; j < len; j++) o[j] = 0.0f;
      }
      for (int64_t j = w; j < LMC_PANEL; j++) dk[j] = 0.0f;
      if (++t == s->S) {
        t = 0;
        if (++r == s->R) r = 0, c++;
      }
    }
  }
}

/* 1x1, stride 1, no padding: B is x[n, g*cg:(g+1)*cg, :] as a [cg, H*W] matrix. */
static void lmc__pack_pointwise(const void *ctx, int64_t batch, int64_t k0, int64_t kc,
                                int64_t n0, int64_t nc, float *dst) {
  const lmc__im2col *ic = (const lmc__im2col *)ctx;
  const lmc_conv2d_shape *s = ic->s;
  int64_t n = batch / s->groups, g = batch % s->groups, hw = s->H * s->W;
  const float *xb = ic->x + (n * s->C + g * ic->cg + k0) * hw + n0;
  for (int64_t pn = 0; pn * LMC_PANEL < nc; pn++) {
    float *d = dst + pn * kc * LMC_PANEL;
    int64_t w = lmc__min(LMC_PANEL, nc - pn * LMC_PANEL);
    for (int64_t kk = 0; kk < kc; kk++) {
      const float *src = xb + kk * hw + pn * LMC_PANEL;
      float *dk = d + kk * LMC_PANEL;
      if (w == LMC_PANEL) {
        memcpy(dk, src, LMC_PANEL * sizeof(float));
      } else {
        for (int64_t j = 0; j < w; j++) dk[j] = src[j];
        for (int64_t j = w; j < LMC_PANEL; j++) dk[j] = 0.0f;
      }
    }
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

/* First o in [0, out) with o*stride + off >= 0, and one past the last with o*stride + off < len. */
static void lmc__valid_range(int64_t off, int64_t stride, int64_t len, int64_t out, int64_t *lo,
                             int64_t *hi) {
  int64_t a = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t b = len - off <= 0 ? 0 : (len - off - 1) / stride + 1;
  *lo = lmc__min(a, out);
  *hi = lmc__max(*lo, lmc__min(b, out));
}

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

void lmc_conv2d_f32(struct lmc_pool *pool, const lmc_conv2d_shape *s, const float *x,
                    const float *packed_w, const float *bias, float *y, void *workspace,
                    lmc_epilogue_fn epi, void *epi_ctx) {
  (void)workspace;
  if (s->N <= 0 || s->K <= 0 || s->OH <= 0 || s->OW <= 0 || s->groups <= 0) return;
  int64_t cg = s->C / s->groups, kg = s->K / s->groups, ohw = s->OH * s->OW;
  if (cg == 1 && kg <= 4) {
    lmc__direct dc = {s, x, packed_w, bias, y, kg, epi, epi_ctx};
    lmc__parallel(pool, s->N * s->K, 1, lmc__direct_task, &dc);
    return;
  }
  lmc__im2col ic = {s, x, cg};
  int pointwise = s->R == 1 && s->S == 1 && s->stride_h == 1 && s->stride_w == 1 &&
                  s->pad_top == 0 && s->pad_left == 0 && s->OH == s->H && s->OW == s->W;
  lmc__gemm g;
  memset(&g, 0, sizeof g);
  g.M = kg, g.N = ohw, g.K = cg * s->R * s->S, g.batch = s->N * s->groups;
  g.A = packed_w, g.lda = g.K, g.a_bs = kg * g.K, g.a_mod = s->groups;
  g.pack_b = pointwise ? lmc__pack_pointwise : lmc__pack_im2col, g.bctx = &ic;
  g.C = y, g.ldc = ohw, g.c_bs = kg * ohw;
  g.bias_m = bias, g.bm_bs = kg, g.bm_mod = s->groups;
  g.epi = epi, g.epi_ctx = epi_ctx;
  lmc__gemm_run(pool, &g);
}
