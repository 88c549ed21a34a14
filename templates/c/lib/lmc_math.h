/* lmc_math.h - scalar f32 math for generated elementwise code and the kernels (copied verbatim).
 * Every function is static inline, branch-free (selects, no calls into libm) so that loops
 * calling it auto-vectorize, and stays correct under -ffast-math (no magic-number rounding).
 * Accuracy against a correctly rounded reference, |x| in the ranges tested by
 * tests/backends/c/test_kernels.py: expf ~2 ulp; tanhf, sigmoidf, erff, gelu_* ~1e-6 relative
 * (erff/gelu_erff use erfc on the tail so gelu keeps its relative accuracy far into x < 0). */
#ifndef LMC_MATH_H
#define LMC_MATH_H

#include <stdint.h>
#include <string.h>

static inline float lmc__i2f(int32_t i) {
  float f;
  memcpy(&f, &i, sizeof f);
  return f;
}

static inline int32_t lmc__f2i(float f) {
  int32_t i;
  memcpy(&i, &f, sizeof i);
  return i;
}

/* c ? a : b without a branch (gcc does not if-convert float ternaries under -ftrapping-math, which
 * would keep loops calling these functions from vectorizing). */
static inline float lmc__select(int c, float a, float b) {
  int32_t m = -(int32_t)(c != 0);
  return lmc__i2f((lmc__f2i(a) & m) | (lmc__f2i(b) & ~m));
}

static inline float lmc__absf(float x) { return lmc__i2f(lmc__f2i(x) & 0x7fffffff); }

/* x with the sign of s. */
static inline float lmc__copysignf(float x, float s) {
  return lmc__i2f((lmc__f2i(x) & 0x7fffffff) | (lmc__f2i(s) & (int32_t)0x80000000u));
}

/* e^x: n = round(x / ln2), r = x - n ln2 (two-part ln2), e^r by the Cephes degree-6 polynomial,
 * 2^n applied as two factors so results down into the subnormal range stay right. Inputs are
 * clamped with comparisons that let NaN through. */
static inline float lmc_expf(float x) {
  x = lmc__select(x > 88.76f, 88.76f, x);
  x = lmc__select(x < -104.0f, -104.0f, x);
  float v = x * 1.44269504088896341f;
  v = lmc__select(v == v, v, 0.0f); /* NaN: keep the int conversion defined; r stays NaN */
  int32_t n = (int32_t)(v + lmc__select(v >= 0.0f, 0.5f, -0.5f));
  float fn = (float)n;
  float r = x - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t n1 = n >> 1;
  int32_t n2 = n - n1;
  return p * lmc__i2f((int32_t)((uint32_t)(n1 + 127) << 23)) *
         lmc__i2f((int32_t)((uint32_t)(n2 + 127) << 23));
}

static inline float lmc_sigmoidf(float x) { return 1.0f / (1.0f + lmc_expf(-x)); }

/* tanh: odd polynomial (Cephes) below 0.625, else 1 - 2 / (e^{2|x|} + 1), sign restored. */
static inline float lmc_tanhf(float x) {
  float a = lmc__absf(x);
  float s = x * x;
  float p = -5.70498872745e-3f;
  p = p * s + 2.06390887954e-2f;
  p = p * s - 5.37397155531e-2f;
  p = p * s + 1.33314422036e-1f;
  p = p * s - 3.33332819422e-1f;
  float small = p * s * x + x;
  float big = 1.0f - 2.0f / (lmc_expf(2.0f * a) + 1.0f);
  return lmc__copysignf(lmc__select(a < 0.625f, small, big), x); /* keeps tanh(-0) = -0 */
}

/* t * P(t^2) = erf(t) for t < 1 (relative error < 2e-9 before rounding). */
static inline float lmc__erf_small(float t, float s) {
  float p = 7.853889110e-05f;
  p = p * s - 8.010203601e-04f;
  p = p * s + 5.188329145e-03f;
  p = p * s - 2.685381286e-02f;
  p = p * s + 1.128358543e-01f;
  p = p * s - 3.761262596e-01f;
  p = p * s + 1.128379107e+00f;
  return t * p;
}

/* erfc(t) for t >= 0 with relative accuracy, given t^2 = hi + lo (|lo| <= ulp(hi)):
 * exp(-t^2) = exp(-hi) (1 - lo), times erfc(t) e^{t^2} from a polynomial in t - 1 on [0.5, 2.5]
 * or (1/t) P(1/t^2) above 2.5; below 0.5 it is 1 - erf. */
static inline float lmc__erfc_pos(float t, float hi, float lo) {
  float u = t - 1.0f;
  float m = 2.839843910e-05f;
  m = m * u - 2.368285059e-04f;
  m = m * u + 9.652578738e-04f;
  m = m * u - 2.794484142e-03f;
  m = m * u + 7.024841849e-03f;
  m = m * u - 1.667499729e-02f;
  m = m * u + 3.756409883e-02f;
  m = m * u - 7.922396809e-02f;
  m = m * u + 1.543719321e-01f;
  m = m * u - 2.732121348e-01f;
  m = m * u + 4.275835752e-01f;
  float tb = lmc__select(t > 2.5f, t, 2.5f);
  float q = 1.0f / tb;
  float y = q * q;
  float b = -2.578082561e+00f;
  b = b * y + 2.066895008e+00f;
  b = b * y - 9.395645261e-01f;
  b = b * y + 4.184458852e-01f;
  b = b * y - 2.820071876e-01f;
  b = b * y + 5.641890168e-01f;
  b = b * q;
  float tail = lmc__select(t < 2.5f, m, b) * (lmc_expf(-hi) * (1.0f - lo));
  float near = 1.0f - lmc__erf_small(t, hi + lo);
  return lmc__select(t < 0.5f, near, tail);
}

/* t^2 = hi + lo, hi = fl(t^2) and lo the exact remainder (Dekker: t split into its high 12
 * bits and the rest, so every partial product below is exact). */
static inline void lmc__square_split(float t, float *hi, float *lo) {
  float th = lmc__i2f(lmc__f2i(t) & (int32_t)0xfffff000u);
  float tl = t - th;
  float h = t * t;
  *hi = h;
  *lo = ((th * th - h) + (th + th) * tl) + tl * tl;
}

static inline float lmc_erff(float x) {
  float t = lmc__absf(x);
  t = lmc__select(t > 10.0f, 10.0f, t); /* erfc(10) underflows; NaN passes */
  float hi, lo;
  lmc__square_split(t, &hi, &lo);
  float big = lmc__copysignf(1.0f - lmc__erfc_pos(t, hi, lo), x);
  return lmc__select(t < 1.0f, lmc__erf_small(x, x * x), big);
}

/* 0.5 x (1 + erf(x / sqrt 2)); for x < 0 this is 0.5 x erfc(|x| / sqrt 2), computed directly
 * (with (x/sqrt2)^2 = x^2 / 2 split exactly) so tiny negative-side values stay accurate. */
static inline float lmc_gelu_erff(float x) {
  float a = lmc__absf(x);
  a = lmc__select(a > 14.0f, 14.0f, a);
  float hi, lo;
  lmc__square_split(a, &hi, &lo);
  float e = lmc__erfc_pos(a * 0.7071067811865476f, 0.5f * hi, 0.5f * lo);
  float y = 0.5f * x * lmc__select(x >= 0.0f, 2.0f - e, e);
  return lmc__select(x < -14.0f, -0.0f, y); /* |y| < 1e-43 there; -inf gives -0, not NaN */
}

/* 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3). */
static inline float lmc_gelu_tanhf(float x) {
  float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  return x / (1.0f + lmc_expf(-2.0f * u));
}

#endif /* LMC_MATH_H */
