/* lmc_gen.h - small scalar helpers that generated lmc model code calls (copied verbatim into
 * every C artifact): f16 / bf16 conversions, integer division and modulo with the reference
 * interpreter's semantics (x / 0 == 0, no traps), saturating float -> int casts, and the
 * activations that need more than one expression. All static inline. */
#ifndef LMC_GEN_H
#define LMC_GEN_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lmc_internal.h"

/* What epilogue callbacks of fused GEMM / conv kernels get as ctx. */
typedef struct {
  const lmc_exec *ex;
  int64_t row_base; /* added to tile rows: the batch's first row of a batched matmul */
} lmc_epi_ctx;

/* ---- f16 (IEEE binary16, stored as uint16_t) and bf16 (kept in f32 storage) -------------- */

static inline float lmc_h2f(uint16_t h) {
  uint32_t o = (uint32_t)(h & 0x7fffu) << 13, e = o & (0x7c00u << 13);
  float f;
  o += (uint32_t)(127 - 15) << 23;
  if (e == (0x7c00u << 13)) {
    o += (uint32_t)(128 - 16) << 23; /* inf, nan */
    memcpy(&f, &o, 4);
  } else if (e == 0) {
    o += 1u << 23; /* zero, subnormal: renormalize through a float subtraction */
    memcpy(&f, &o, 4);
    f -= 6.103515625e-05f;
  } else {
    memcpy(&f, &o, 4);
  }
  if (h & 0x8000u) f = -f;
  return f;
}

/* Round to nearest even; overflow to inf; NaN stays NaN. */
static inline uint16_t lmc_f2h(float f) {
  uint32_t u, sign;
  uint16_t o;
  memcpy(&u, &f, 4);
  sign = u & 0x80000000u;
  u ^= sign;
  if (u >= (uint32_t)(127 + 16) << 23) {
    o = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (u < (uint32_t)113 << 23) {
    float a, magic;
    uint32_t m = (uint32_t)((127 - 15) + (23 - 10) + 1) << 23;
    memcpy(&a, &u, 4);
    memcpy(&magic, &m, 4);
    a += magic;
    memcpy(&u, &a, 4);
    o = (uint16_t)(u - m);
  } else {
    uint32_t odd = (u >> 13) & 1u;
    u += ((uint32_t)(15 - 127) << 23) + 0xfffu;
    u += odd;
    o = (uint16_t)(u >> 13);
  }
  return (uint16_t)(o | (sign >> 16));
}

/* x rounded to the nearest f16 value, as a float (f16 results of fused expressions). */
static inline float lmc_rh(float x) { return lmc_h2f(lmc_f2h(x)); }

/* x rounded to the nearest bf16 value (ties to even), kept as a float. */
static inline float lmc_rbf16(float x) {
  uint32_t u;
  if (x != x) return x;
  memcpy(&u, &x, 4);
  u = (u + ((u >> 16) & 1u) + 0x7fffu) & 0xffff0000u;
  memcpy(&x, &u, 4);
  return x;
}

static inline float lmc_bf2f(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline uint16_t lmc_f2bf(float x) {
  uint32_t u;
  x = lmc_rbf16(x);
  memcpy(&u, &x, 4);
  return (uint16_t)(u >> 16);
}

/* ---- casts ------------------------------------------------------------------------------- */

/* Truncate toward zero, saturate to [lo, hi], NaN -> 0 (the reference's float -> int cast). */
static inline int64_t lmc_f2i(double x, int64_t lo, int64_t hi) {
  double t = trunc(x);
  if (t != t) return 0;
  if (t >= (double)hi) return hi;
  if (t <= (double)lo) return lo;
  return (int64_t)t;
}

static inline uint64_t lmc_f2u64(double x) {
  double t = trunc(x);
  if (t != t || t <= 0.0) return 0;
  if (t >= 18446744073709551615.0) return UINT64_MAX;
  return (uint64_t)t;
}

static inline int8_t lmc_wrap_i4(int64_t v) { return (int8_t)(((v + 8) & 15) - 8); }
static inline uint8_t lmc_wrap_u4(int64_t v) { return (uint8_t)(v & 15); }

/* ---- integer division and modulo (x / 0 and x % 0 give 0; INT_MIN / -1 wraps) ------------ */

static inline int64_t lmc_divs(int64_t a, int64_t b) {
  if (b == 0) return 0;
  if (b == -1) return (int64_t)(0 - (uint64_t)a);
  return a / b;
}
static inline uint64_t lmc_divu(uint64_t a, uint64_t b) { return b ? a / b : 0; }
/* Python's a % b: the sign of b. */
static inline int64_t lmc_mods(int64_t a, int64_t b) {
  int64_t r;
  if (b == 0 || b == -1) return 0;
  r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
/* C's fmod: the sign of a. */
static inline int64_t lmc_fmods(int64_t a, int64_t b) { return (b == 0 || b == -1) ? 0 : a % b; }
static inline uint64_t lmc_modu(uint64_t a, uint64_t b) { return b ? a % b : 0; }

/* Python's float a % b (numpy remainder): the sign of b; x % 0 is NaN. */
static inline float lmc_pymodf(float a, float b) {
  float r = fmodf(a, b);
  if (r != 0.0f) {
    if ((r < 0.0f) != (b < 0.0f)) r += b;
  } else {
    r = copysignf(0.0f, b);
  }
  return r;
}
static inline double lmc_pymod(double a, double b) {
  double r = fmod(a, b);
  if (r != 0.0) {
    if ((r < 0.0) != (b < 0.0)) r += b;
  } else {
    r = copysign(0.0, b);
  }
  return r;
}

/* ---- activations --------------------------------------------------------------------------- */

/* min(max(x, lo), hi) letting NaN through. */
static inline float lmc_clipf(float x, float lo, float hi) {
  x = x < lo ? lo : x;
  return x > hi ? hi : x;
}
static inline double lmc_clip(double x, double lo, double hi) {
  x = x < lo ? lo : x;
  return x > hi ? hi : x;
}
/* ln(1 + e^x) without overflow. */
static inline float lmc_softplusf(float x) {
  return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
}
static inline double lmc_softplus(double x) {
  return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x));
}
static inline double lmc_sigmoid(double x) {
  return x >= 0.0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}
static inline double lmc_gelu_erf(double x) { return 0.5 * x * (1.0 + erf(x * 0.70710678118654752)); }
static inline double lmc_gelu_tanh(double x) {
  return 0.5 * x * (1.0 + tanh(0.79788456080286536 * (x + 0.044715 * x * x * x)));
}
static inline float lmc_nanmaxf(float a, float b) { return (a != a || a > b) ? a : b; }
static inline float lmc_nanminf(float a, float b) { return (a != a || a < b) ? a : b; }
static inline double lmc_nanmax(double a, double b) { return (a != a || a > b) ? a : b; }
static inline double lmc_nanmin(double a, double b) { return (a != a || a < b) ? a : b; }

/* ---- indexing ------------------------------------------------------------------------------ */

/* Source index of padded position t (begin pad already subtracted) in a dim of n, or -1 where
 * constant padding applies. mode 0 constant, 1 reflect (mirror without the edge), 2 edge,
 * 3 wrap; reflect and wrap repeat periodically for pads wider than the dim. */
static inline int64_t lmc_pad_index(int64_t t, int64_t n, int mode) {
  int64_t p, r;
  if (t >= 0 && t < n) return t;
  if (mode == 0 || n <= 0) return -1;
  if (mode == 2) return t < 0 ? 0 : n - 1;
  if (mode == 3) {
    r = t % n;
    return r < 0 ? r + n : r;
  }
  p = 2 * (n - 1);
  if (p == 0) return 0;
  r = t % p;
  if (r < 0) r += p;
  return r < n ? r : p - r;
}

static inline int64_t lmc_imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t lmc_imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- resize (ONNX Resize, one axis) ------------------------------------------------------- */

/* Taps (source indices, weights) of output index y along one axis of n_in -> size elements.
 * ctm: 0 half_pixel, 1 half_pixel_symmetric, 2 pytorch_half_pixel, 3 align_corners,
 * 4 asymmetric; mode: 0 nearest, 1 linear, 2 cubic; nearest: 0 round_prefer_floor,
 * 1 round_prefer_ceil, 2 floor, 3 ceil. Arithmetic follows the reference (double). */
static inline int lmc_resize_taps(int64_t y, int64_t n_in, int64_t size, double scale, int ctm,
                                  int mode, int nearest, double a, int exclude, int64_t *idx,
                                  double *w) {
  double n_out = scale * (double)n_in, yd = (double)y, x, base, frac, total = 0.0;
  int taps = mode == 0 ? 1 : (mode == 1 ? 2 : 4), first = mode == 2 ? -1 : 0;
  if (size == n_in && scale == 1.0) {
    idx[0] = y;
    w[0] = 1.0;
    return 1;
  }
  if (ctm == 4) {
    x = yd / scale;
  } else if (ctm == 3) {
    x = n_out == 1.0 ? 0.0 : yd * (double)(n_in - 1) / (n_out - 1.0);
  } else if (ctm == 2 && n_out == 1.0) {
    x = -0.5;
  } else if (ctm == 1) {
    double offset = (double)n_in / 2.0 * (1.0 - (double)size / n_out);
    x = offset + (yd + 0.5) / scale - 0.5;
  } else {
    x = (yd + 0.5) / scale - 0.5;
  }
  base = floor(x);
  frac = x - base;
  if (mode == 0) {
    int up = nearest == 0 ? frac > 0.5 : nearest == 1 ? frac >= 0.5 : nearest == 2 ? 0 : frac > 0.0;
    int64_t i = (int64_t)base + up;
    idx[0] = i < 0 ? 0 : (i > n_in - 1 ? n_in - 1 : i);
    w[0] = 1.0;
    return 1;
  }
  if (mode == 1) {
    w[0] = 1.0 - frac;
    w[1] = frac;
  } else {
    double t = frac, u = 1.0 - frac;
    w[0] = ((a * (t + 1.0) - 5.0 * a) * (t + 1.0) + 8.0 * a) * (t + 1.0) - 4.0 * a;
    w[1] = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
    w[2] = ((a + 2.0) * u - (a + 3.0)) * u * u + 1.0;
    w[3] = ((a * (u + 1.0) - 5.0 * a) * (u + 1.0) + 8.0 * a) * (u + 1.0) - 4.0 * a;
  }
  for (int t = 0; t < taps; ++t) {
    int64_t i = (int64_t)base + first + t;
    if (exclude && (i < 0 || i >= n_in)) w[t] = 0.0;
    total += w[t];
    idx[t] = i < 0 ? 0 : (i > n_in - 1 ? n_in - 1 : i);
  }
  if (exclude)
    for (int t = 0; t < taps; ++t) w[t] = w[t] / (total == 0.0 ? 1.0 : total);
  return taps;
}

/* ---- errors ---------------------------------------------------------------------------------- */

/* Write "<prefix><value>" into err (bounded) and return nonzero: a kernel's error exit. */
static inline int lmc_fail(char *err, size_t err_len, const char *prefix, int64_t value) {
  size_t n = 0;
  char digits[24];
  int k = 0;
  uint64_t u = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
  if (!err || err_len == 0) return 1;
  while (*prefix && n + 1 < err_len) err[n++] = *prefix++;
  if (value < 0 && n + 1 < err_len) err[n++] = '-';
  do digits[k++] = (char)('0' + u % 10); while ((u /= 10) != 0);
  while (k && n + 1 < err_len) err[n++] = digits[--k];
  err[n] = 0;
  return 1;
}

#endif /* LMC_GEN_H */
