/* lmc_kernels.h - the hand-written C kernel library that generated code calls (copied verbatim
 * into every C artifact). The KERNELS side implements these; the CODEGEN side only calls them.
 * SIMD path chosen at build time: LMC_AVX512 (avx512f), LMC_AVX2 (avx2+fma), LMC_NEON (with
 * LMC_DOTPROD for the int8 sdot kernel), LMC_WASM_SIMD, else portable C. Every function is
 * correct for any sizes (including 0) and any strides given; row-major, element strides.
 *
 * NOTE (2026-11-23, KERNELS): clarifications and additions, all source compatible:
 *  - the scalar math functions at the end are now `static inline` definitions from lmc_math.h
 *    (same names and signatures) so elementwise loops inline and vectorize them;
 *  - epilogue arguments are spelled out below (`c` points at the tile, not at C);
 *  - lmc_attention_args gained a trailing field `causal_offset` (0 = the IR's top-left causal;
 *    zero-initialize the struct and nothing changes);
 *  - conv: the packed weight layout is OIHW as given, the epilogue sees y as the matrix
 *    [N*K, OH*OW], and the workspace is 0 bytes (scratch is per-thread TLS in the library).
 * NOTE (2026-11-23, ARM64): added the int8 GEMM (lmc_gemm_s8*, lmc_int8.c; layout
 *  "lmc.gemm_s8.panel16k4.v1", packed by packing.pack_gemm_s8), called by the matmul_integer
 *  emitter (emit_int8.py); NEON micro-kernels in lmc_ukernel_neon.h and an LMC_NEON branch in
 *  lmc_simd.h. Nothing existing changed.
 * Build: compile every .c here with -O3 (gcc -O2 does not vectorize the lmc_math loops) and the
 * ISA macro plus its flags: -DLMC_AVX512 -mavx512f -mfma (add -mavx2), or -DLMC_AVX2 -mavx2
 * -mfma; no macro = portable C. Avoid -ffast-math (it breaks NaN/overflow handling in
 * lmc_math.h); -fno-trapping-math is fine. Kernels use a static thread-local scratch of
 * ~0.7 MiB (zero-initialized .tbss; no malloc, little stack) in each thread that runs them.
 * Work is handed out dynamically (an atomic counter) to lmc_pool_size(pool) workers started
 * through lmc_parallel_for, so a descheduled thread delays one chunk, not the whole call. */
#ifndef LMC_KERNELS_H
#define LMC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "lmc_internal.h"
#include "lmc_math.h"

/* Called on each finished output tile C[row0:row0+rows, col0:col0+cols] (leading dim ldc)
 * while it is hot in cache: generated code applies bias/activation/residual epilogues here.
 * `c` points at the tile's first element, C + row0 * ldc + col0; row0/col0 are absolute in the
 * output matrix. Tiles are disjoint and cover the output once; calls may run concurrently on
 * different threads (an epilogue must only touch its tile, and must not call back into this
 * library: the caller's per-thread scratch is live). Bias is already added. */
typedef void (*lmc_epilogue_fn)(void *ctx, float *c, int64_t ldc, int64_t row0, int64_t col0,
                                int64_t rows, int64_t cols);

/* ---- GEMM: C[M,N] = A[M,K] @ W[N,K]^T (+ bias[N]) then epilogue -------------------------- */
/* Weights (linear: W is [out=N, in=K]) are pre-packed at compile time by
 * backends/c/packing.py into the layout named by lmc_gemm_layout(); this is its byte size.
 * Layout "lmc.gemm.panel16.v1" (the same for every ISA): ceil(N/16) panels; panel p holds
 * rows 16p..16p+15 of W stored k-major, packed[(p*K + k)*16 + j] = W[16p + j, k], zero for
 * 16p + j >= N. Small M (<= 8 with AVX-512, else <= 4) takes the GEMV path, which streams
 * the weights once at memory bandwidth. */
const char *lmc_gemm_layout(void);
size_t lmc_gemm_packed_bytes(int64_t N, int64_t K);
/* Packs at run time too (tests, and weights that are computed values). */
void lmc_gemm_pack(int64_t N, int64_t K, const float *W, int64_t ldw, float *packed);
void lmc_gemm_f32_packed(struct lmc_pool *pool, int64_t M, int64_t N, int64_t K,
                         const float *A, int64_t lda, const float *packed, float *C,
                         int64_t ldc, const float *bias, lmc_epilogue_fn epi, void *epi_ctx);
/* Unpacked operands (activation x activation, e.g. batched matmul): C = A @ B where B is
 * [K,N] with strides (ldb_k, ldb_n) so transposed views need no copy (B is packed block-wise
 * at run time). C must not alias A or B. */
void lmc_gemm_f32(struct lmc_pool *pool, int64_t M, int64_t N, int64_t K, const float *A,
                  int64_t lda, const float *B, int64_t ldb_k, int64_t ldb_n, float *C,
                  int64_t ldc, const float *bias, lmc_epilogue_fn epi, void *epi_ctx);

/* ---- int8 GEMM: C[M,N] (int32) = (A - za) @ (B - zb) (lmc_int8.c) ------------------------
 * A is [M, K] i8 or u8 (a_u8) with leading dim lda; B is [K, N] i8 or u8 (b_u8), pre-packed by
 * lmc_gemm_s8_pack (or backends/c/packing.py) into the layout named by lmc_gemm_s8_layout():
 * 16-column panels of groups of 4 k, then the column sums. Zero points are int32: row m uses
 * a_zp[m % a_zp_period], column n b_zp[n % b_zp_period] (period 1: one value; NULL: 0). The
 * arithmetic wraps modulo 2^32 like numpy's int32 matmul of the centered operands. Paths: sdot
 * (LMC_DOTPROD), NEON smull (LMC_NEON), AVX2, portable C; lmc_gemm_s8_path() names the one
 * built. C must not alias A. */
typedef struct {
  int64_t M, N, K;
  const void *a; int64_t lda; int a_u8;
  const int32_t *a_zp; int64_t a_zp_period;
  const uint8_t *b_packed; int b_u8;
  const int32_t *b_zp; int64_t b_zp_period;
  int32_t *c; int64_t ldc;
} lmc_gemm_s8_args;
const char *lmc_gemm_s8_layout(void);
const char *lmc_gemm_s8_path(void);
size_t lmc_gemm_s8_packed_bytes(int64_t N, int64_t K);
/* B[k, n] is read at B[k * ldb_k + n * ldb_n] (bytes). */
void lmc_gemm_s8_pack(int64_t N, int64_t K, const void *B, int b_u8, int64_t ldb_k,
                      int64_t ldb_n, uint8_t *packed);
void lmc_gemm_s8(struct lmc_pool *pool, const lmc_gemm_s8_args *g);

/* ---- attention: out = softmax(q k^T * scale + mask, causal) v -------------------------------
 * Layout [B, H, S, D] with explicit element strides for every tensor (so [B, S, H, D] views
 * work); GQA: q head h reads kv head h / (Hq / Hkv). mask_kind 0 none, 1 bool (uint8, nonzero =
 * keep), 2 float (added); mask strides over [B, H, Sq, Skv] (0 = broadcast). A row with every
 * key masked yields zeros. Never materializes more than one block of scores per thread.
 * causal keeps key j <= query i + causal_offset (0: torch is_causal, top-left aligned; Skv - Sq:
 * bottom-right, for a KV cache). scale is used as given (pass 1/sqrt(D) for the default). */
typedef struct {
  int64_t B, Hq, Hkv, Sq, Skv, D, Dv;
  const float *q; int64_t q_sb, q_sh, q_ss;   /* last-dim stride is 1 */
  const float *k; int64_t k_sb, k_sh, k_ss;
  const float *v; int64_t v_sb, v_sh, v_ss;
  float *out; int64_t o_sb, o_sh, o_ss;
  int mask_kind; const void *mask; int64_t m_sb, m_sh, m_sq, m_sk;
  int causal; float scale;
  int64_t causal_offset;
} lmc_attention_args;
void lmc_attention_f32(struct lmc_pool *pool, const lmc_attention_args *a);

/* ---- convolution (2-D, NCHW; 1-D callers pass H = 1) --------------------------------------
 * y[n, k, oh, ow] = bias[k] + sum_{c, r, s} x[n, g*C/groups + c, oh*stride_h + r*dil_h - pad_top,
 * ow*stride_w + s*dil_w - pad_left] * w[k, c, r, s], g = k / (K/groups), zero outside x (the end
 * pads are implied by OH, OW). Epilogue tiles are in y viewed as the matrix [N*K, OH*OW]: row =
 * n*K + k, col = oh*OW + ow, ldc = OH*OW. Paths: direct for C/groups == 1 (depthwise),
 * implicit im2col (packed per block, no buffer) + GEMM otherwise, 1x1 stride-1 unpadded convs
 * read x as the GEMM operand directly. Layout "lmc.conv2d.oihw.v1": w as given, [K, C/groups,
 * R, S] contiguous. */
typedef struct {
  int64_t N, C, H, W, K /* out channels */, R, S /* kernel */, OH, OW;
  int64_t stride_h, stride_w, pad_top, pad_left, dil_h, dil_w, groups;
} lmc_conv2d_shape;
size_t lmc_conv2d_workspace_bytes(const lmc_conv2d_shape *s);
/* w is packed by packing.py (layout lmc_conv2d_layout()); workspace from the arena. */
const char *lmc_conv2d_layout(void);
size_t lmc_conv2d_packed_bytes(const lmc_conv2d_shape *s);
void lmc_conv2d_pack(const lmc_conv2d_shape *s, const float *w, float *packed);
void lmc_conv2d_f32(struct lmc_pool *pool, const lmc_conv2d_shape *s, const float *x,
                    const float *packed_w, const float *bias, float *y, void *workspace,
                    lmc_epilogue_fn epi, void *epi_ctx);

/* ---- row-wise ops over the last axis (rows contiguous, y may alias x) ---------------------
 * w / b may be NULL (no scale / no shift); layer_norm uses the biased variance. */
void lmc_softmax_f32(struct lmc_pool *pool, int64_t rows, int64_t cols, const float *x,
                     float *y, int log_softmax);
void lmc_layer_norm_f32(struct lmc_pool *pool, int64_t rows, int64_t cols, const float *x,
                        const float *w, const float *b, float eps, float *y);
void lmc_rms_norm_f32(struct lmc_pool *pool, int64_t rows, int64_t cols, const float *x,
                      const float *w, float eps, float *y);

/* ---- scalar math for generated elementwise code (inline, auto-vectorizable) --------------
 * Defined static inline in lmc_math.h (included above):
 *   float lmc_expf(float x);      float lmc_tanhf(float x);       float lmc_erff(float x);
 *   float lmc_sigmoidf(float x);  float lmc_gelu_erff(float x);   float lmc_gelu_tanhf(float x);
 */

#endif /* LMC_KERNELS_H */
