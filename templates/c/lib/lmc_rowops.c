/* lmc_rowops.c - softmax / log-softmax, layer_norm and rms_norm over the last axis, vectorized
 * with lmc_simd.h (several accumulators per reduction) and split into row ranges over the pool. */
#include <math.h>

#include "lmc_kern.h"

#define LMC_ROW_GRAIN_ELEMS 16384 /* about this many elements per task */

typedef struct {
  int64_t cols;
  const float *x, *w, *b;
  float *y;
  float eps;
  int flag;
} lmc__rows;

static int64_t lmc__row_grain(int64_t cols) {
  return lmc__max(1, LMC_ROW_GRAIN_ELEMS / lmc__max(1, cols));
}

static float lmc__row_max(const float *x, int64_t n) {
  lmc_vf m0 = lmc_vset1(-__builtin_inff()), m1 = m0;
  int64_t j = 0;
  for (; j + 2 * LMC_VL <= n; j += 2 * LMC_VL) {
    m0 = lmc_vmax(m0, lmc_vload(x + j));
    m1 = lmc_vmax(m1, lmc_vload(x + j + LMC_VL));
  }
  float m = lmc_vhmax(lmc_vmax(m0, m1));
  for (; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}

static float lmc__row_sum(const float *x, int64_t n) {
  lmc_vf s0 = lmc_vzero(), s1 = s0;
  int64_t j = 0;
  for (; j + 2 * LMC_VL <= n; j += 2 * LMC_VL) {
    s0 = lmc_vadd(s0, lmc_vload(x + j));
    s1 = lmc_vadd(s1, lmc_vload(x + j + LMC_VL));
  }
  float s = lmc_vsum(lmc_vadd(s0, s1));
  for (; j < n; j++) s += x[j];
  return s;
}

/* sum of (x - c)^2 */
static float lmc__row_sqdev(const float *x, int64_t n, float c) {
  lmc_vf s0 = lmc_vzero(), s1 = s0, cv = lmc_vset1(c);
  int64_t j = 0;
  for (; j + 2 * LMC_VL <= n; j += 2 * LMC_VL) {
    lmc_vf d0 = lmc_vsub(lmc_vload(x + j), cv), d1 = lmc_vsub(lmc_vload(x + j + LMC_VL), cv);
    s0 = lmc_vfma(d0, d0, s0);
    s1 = lmc_vfma(d1, d1, s1);
  }
  float s = lmc_vsum(lmc_vadd(s0, s1));
  for (; j < n; j++) s += (x[j] - c) * (x[j] - c);
  return s;
}

/* y = x * a + c, then * w and + b when given: the normalization's final pass. */
static void lmc__row_affine(const float *x, int64_t n, float a, float c, const float *w,
                            const float *b, float *y) {
  lmc_vf av = lmc_vset1(a), cv = lmc_vset1(c);
  int64_t j = 0;
  for (; j + LMC_VL <= n; j += LMC_VL) {
    lmc_vf v = lmc_vfma(lmc_vload(x + j), av, cv);
    if (w) v = lmc_vmul(v, lmc_vload(w + j));
    if (b) v = lmc_vadd(v, lmc_vload(b + j));
    lmc_vstore(y + j, v);
  }
  for (; j < n; j++) {
    float v = x[j] * a + c;
    if (w) v *= w[j];
    if (b) v += b[j];
    y[j] = v;
  }
}

static void lmc__softmax_task(void *ctx, int64_t r0, int64_t r1) {
  const lmc__rows *p = (const lmc__rows *)ctx;
  int64_t n = p->cols;
  for (int64_t r = r0; r < r1; r++) {
    const float *x = p->x + r * n;
    float *y = p->y + r * n;
    float m = lmc__row_max(x, n);
    lmc_vf mv = lmc_vset1(m), s0 = lmc_vzero();
    float s = 0.0f;
    int64_t j = 0;
    if (p->flag) { /* log-softmax: y = x - m - log(sum e^{x-m}) */
      for (; j + LMC_VL <= n; j += LMC_VL)
        s0 = lmc_vadd(s0, lmc_vexp(lmc_vsub(lmc_vload(x + j), mv)));
      s = lmc_vsum(s0);
      for (; j < n; j++) s += lmc_expf(x[j] - m);
      float c = m + logf(s);
      lmc__row_affine(x, n, 1.0f, -c, NULL, NULL, y);
    } else {
      for (; j + LMC_VL <= n; j += LMC_VL) {
        lmc_vf e = lmc_vexp(lmc_vsub(lmc_vload(x + j), mv));
        s0 = lmc_vadd(s0, e);
        lmc_vstore(y + j, e);
      }
      s = lmc_vsum(s0);
      for (; j < n; j++) {
        y[j] = lmc_expf(x[j] - m);
        s += y[j];
      }
      lmc__row_affine(y, n, 1.0f / s, 0.0f, NULL, NULL, y);
    }
  }
}

void lmc_softmax_f32(struct lmc_pool *pool, int64_t rows, int64_t cols, const float *x, float *y,
                     int log_softmax) {
  if (rows <= 0 || cols <= 0) return;
  lmc__rows p = {cols, x, NULL, NULL, y, 0.0f, log_softmax};
  lmc__parallel(pool, rows, lmc__row_grain(cols), lmc__softmax_task, &p);
}

static void lmc__norm_task(void *ctx, int64_t r0, int64_t r1) {
  const lmc__rows *p = (const lmc__rows *)ctx;
  int64_t n = p->cols;
  for (int64_t r = r0; r < r1; r++) {
    const float *x = p->x + r * n;
    if (p->flag) { /* layer_norm: two passes (mean, then centered squares) for accuracy */
      float mean = lmc__row_sum(x, n) / (float)n;
      float inv = 1.0f / sqrtf(lmc__row_sqdev(x, n, mean) / (float)n + p->eps);
      lmc__row_affine(x, n, inv, -mean * inv, p->w, p->b, p->y + r * n);
    } else {
      float inv = 1.0f / sqrtf(lmc__row_sqdev(x, n, 0.0f) / (float)n + p->eps);
      lmc__row_affine(x, n, inv, 0.0f, p->w, NULL, p->y + r * n);
    }
  }
}

void lmc_layer_norm_f32(struct lmc_pool *pool, int64_t rows, int64_t cols, const float *x,
                        const float *w, const float *b, float eps, float *y) {
  if (rows <= 0 || cols <= 0) return;
  lmc__rows p = {cols, x, w, b, y, eps, 1};
  lmc__parallel(pool, rows, lmc__row_grain(cols), lmc__norm_task, &p);
}

void lmc_rms_norm_f32(struct lmc_pool *pool, int64_t rows, int64_t cols, const float *x,
                      const float *w, float eps, float *y) {
  if (rows <= 0 || cols <= 0) return;
  lmc__rows p = {cols, x, w, NULL, y, eps, 0};
  lmc__parallel(pool, rows, lmc__row_grain(cols), lmc__norm_task, &p);
}

/* ---- rotary embedding of one row ---------------------------------------------------------- */

void lmc_rotary_row_f32(const float *x, const float *c, const float *s, float *y, int64_t half,
                        int64_t d, int interleaved) {
  int64_t j = 0;
  if (interleaved) {
    for (; j < half; j++) {
      float a = x[2 * j], b = x[2 * j + 1];
      y[2 * j] = a * c[j] - b * s[j];
      y[2 * j + 1] = b * c[j] + a * s[j];
    }
  } else {
    /* both halves are loaded before either is stored: y may be x */
    for (; j + LMC_VL <= half; j += LMC_VL) {
      lmc_vf a = lmc_vload(x + j), b = lmc_vload(x + half + j);
      lmc_vf cv = lmc_vload(c + j), sv = lmc_vload(s + j);
      lmc_vstore(y + j, lmc_vsub(lmc_vmul(a, cv), lmc_vmul(b, sv)));
      lmc_vstore(y + half + j, lmc_vadd(lmc_vmul(b, cv), lmc_vmul(a, sv)));
    }
    if (j < half) {
      int64_t n = half - j;
      lmc_vf a = lmc_vload_n(x + j, n), b = lmc_vload_n(x + half + j, n);
      lmc_vf cv = lmc_vload_n(c + j, n), sv = lmc_vload_n(s + j, n);
      lmc_vstore_n(y + j, lmc_vsub(lmc_vmul(a, cv), lmc_vmul(b, sv)), n);
      lmc_vstore_n(y + half + j, lmc_vadd(lmc_vmul(b, cv), lmc_vmul(a, sv)), n);
    }
  }
  if (y != x)
    for (j = 2 * half; j < d; j++) y[j] = x[j];
}
