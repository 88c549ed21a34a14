/* peak.c - the SIMD128 f32 arithmetic peak of a wasm engine, for benchmarks/wasm.py: 16
 * independent f32x4 multiply-add chains (SIMD128 has no fused multiply-add, so a multiply and an
 * add per lane: 2 flops), the same shape of loop as the host's FMA probe (kernels_bench.c). */
#include <wasm_simd128.h>

__attribute__((export_name("peak"))) float peak(int iters) {
  v128_t a[16], m = wasm_f32x4_splat(0.9999f), c = wasm_f32x4_splat(1e-4f);
  for (int i = 0; i < 16; i++) a[i] = wasm_f32x4_splat((float)i);
  for (int it = 0; it < iters; it++)
#pragma clang loop unroll(full)
    for (int i = 0; i < 16; i++) a[i] = wasm_f32x4_add(wasm_f32x4_mul(a[i], m), c);
  v128_t s = a[0];
  for (int i = 1; i < 16; i++) s = wasm_f32x4_add(s, a[i]);
  return wasm_f32x4_extract_lane(s, 0); /* keeps the chains live */
}
