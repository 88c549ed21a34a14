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
 *  - conv: the epilogue sees y as the matrix [N*K, OH*OW] (weight layout and workspace: see
 *    the 2026-11-24 note below).
 * NOTE (2026-11-23, ARM64): added the int8 GEMM (lmc_gemm_s8*, lmc_int8.c; layout
 *  "lmc.gemm_s8.panel16k4.v1", packed by packing.pack_gemm_s8), called by the matmul_integer
 *  emitter (emit_int8.py); NEON micro-kernels in lmc_ukernel_neon.h and an LMC_NEON branch in
 *  lmc_simd.h. Nothing existing changed.
 * NOTE (2026-11-24, KERNELS): conv weights are now pre-packed in 16-channel GEMM panels (layout
 *  "lmc.conv2d.panel16.v2", packing.pack_conv2d / lmc_conv2d_pack; depthwise shapes keep OIHW),
 *  and lmc_conv2d_workspace_bytes is nonzero for padded convs (a zero-padded input copy; NULL
 *  still works, slower). Added lmc_max_pool2d_f32 (lmc_pool.c).
 * NOTE (2026-11-24, QUANT): added the quantized linears: lmc_linear_wq_f32 (lmc_quant.c;
 *  weight-only int4 / int8, layout "lmc.wq.panel16.v2", packing.pack_wq) and
 *  lmc_linear_w8a8_f32 (lmc_w8a8.c; int8 x int8, weights in the int8 GEMM's layout); the int8
 *  GEMM gained a WASM SIMD128 path and shares its micro-kernel (lmc_kern.h). Nothing existing
 *  changed.
 * NOTE (2026-11-24, FUSION): added lmc_gemm_f32_packed_multi (one parallel region over several
 *  packed weights read by one A: merged sibling linears, linear_split) and lmc_rotary_row_f32
 *  (one row of rotary_embedding, vectorized, y may be x). Nothing existing changed.
 * NOTE (2026-12-07, KERNELS): added lmc_conv2d_wino_* (lmc_winograd.c: Winograd F(2x2, 3x3),
 *  weights in the layout "lmc.conv2d.wino2x3.mr<MR>.v1", packing.pack_conv2d_winograd) and
 *  lmc_linear_w4a8_f32 (lmc_w4a8.c: int4 weights in the weight-only layout x int8 activations,
 *  with a workspace). Nothing existing changed.
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
/* Several packed weights over one A in one parallel region (sibling linears merged at compile
 * time, e.g. q/k/v): piece p computes C_p[M, N_p] = A @ W_p^T (+ bias_p) with W_p packed as by
 * lmc_gemm_pack (a run of whole panels of a bigger packed weight is one). No epilogues. */
typedef struct {
  int64_t N;
  const float *packed;
  float *C;
  int64_t ldc;
  const float *bias;
} lmc_gemm_piece;
void lmc_gemm_f32_packed_multi(struct lmc_pool *pool, int64_t M, int64_t K, const float *A,
                               int64_t lda, int64_t npieces, const lmc_gemm_piece *pieces);

/* ---- int8 GEMM: C[M,N] (int32) = (A - za) @ (B - zb) (lmc_int8.c) ------------------------
 * A is [M, K] i8 or u8 (a_u8) with leading dim lda; B is [K, N] i8 or u8 (b_u8), pre-packed by
 * lmc_gemm_s8_pack (or backends/c/packing.py) into the layout named by lmc_gemm_s8_layout():
 * 16-column panels of groups of 4 k, then the column sums. Zero points are int32: row m uses
 * a_zp[m % a_zp_period], column n b_zp[n % b_zp_period] (period 1: one value; NULL: 0). The
 * arithmetic wraps modulo 2^32 like numpy's int32 matmul of the centered operands. Paths: sdot
 * (LMC_DOTPROD), NEON smull (LMC_NEON), AVX2, WASM SIMD128, portable C; lmc_gemm_s8_path()
 * names the one built. C must not alias A. */
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

/* ---- quantized linears (lmc_quant.c, lmc_w8a8.c) --------------------------------------------
 * Weight-only: y[M,N] = x[M,K] @ W^T (+ bias), W[n, k] = (code - zero) * scale per group of
 * `group` k (0: one group per row), codes int4 (bits 4; zero 8 unless has_zeros) or int8 (bits
 * 8; i8 codes, or u8 codes with zeros), all pre-packed by packing.pack_wq into the layout named
 * by lmc_wq_layout() (16-row panels: the groups' zeros, then per group scales and codes; 4.25
 * (symmetric) or 4.3125 bits per int4 weight at group 128). Codes become floats in registers;
 * sums in f32, one scale per group. */
typedef struct {
  int64_t M, N, K;
  const float *x; int64_t ldx;
  const uint8_t *packed; int bits; int64_t group; int has_zeros;
  const float *bias; /* NULL: none */
  float *y; int64_t ldy;
} lmc_linear_wq_args;
const char *lmc_wq_layout(void);
const char *lmc_wq_path(void);
size_t lmc_wq_packed_bytes(int64_t N, int64_t K, int bits, int64_t group, int has_zeros);
void lmc_linear_wq_f32(struct lmc_pool *pool, const lmc_linear_wq_args *a);
/* int4 weights x int8 activations (lmc_w4a8.c; linear_w4a8's reference): the weights packed
 * exactly as for lmc_linear_wq_f32 with bits 4 (scales f32); activations quantized per row,
 * sx = max|x_row| / 127 (x_scale NULL), or with *x_scale, q = clip(round_half_even(x / sx),
 * -128, 127), 0 where sx <= 0; acc_g = sum over group g of q * (code - zero) in int32;
 * y = (sum_g acc_g * scale_g) * sx + bias in f32 (multiply-adds may be fused). The workspace
 * (lmc_linear_w4a8_workspace_bytes, from the arena) holds the quantized rows. Paths: vnni
 * (AVX-512 VNNI vpdpbusd), avx512bw (vpmaddubsw + vpmaddwd), else portable C. */
typedef struct {
  int64_t M, N, K;
  const float *x; int64_t ldx;
  const uint8_t *packed; int64_t group; int has_zeros;
  const float *x_scale; /* NULL: per row */
  const float *bias;    /* NULL: none */
  float *y; int64_t ldy;
  void *workspace;
} lmc_linear_w4a8_args;
const char *lmc_w4a8_path(void);
size_t lmc_linear_w4a8_workspace_bytes(int64_t M, int64_t K, int64_t group);
void lmc_linear_w4a8_f32(struct lmc_pool *pool, const lmc_linear_w4a8_args *a);
/* W8A8: q = clip(round_half_even(x / sx), -128, 127) with sx = max|x_row| / 127 per row
 * (x_scale NULL) or *x_scale (static), q = 0 where sx <= 0; acc = q @ W^T exactly in int32 (W
 * i8 [N, K], packed as the int8 GEMM's B = W^T: lmc_gemm_s8_pack / packing.pack_gemm_s8);
 * y = ((float)acc * sx) * w_scales[n] (+ bias[n]). The quantization happens while packing A
 * (no pass of its own). Paths: vnni (AVX-512 VNNI), avx2 (vpmaddubsw), else lmc_int8.c's. */
typedef struct {
  int64_t M, N, K;
  const float *x; int64_t ldx;
  const uint8_t *w_packed;
  const float *w_scales; const float *bias; /* bias may be NULL */
  const float *x_scale;                     /* NULL: dynamic per token */
  float *y; int64_t ldy;
} lmc_linear_w8a8_args;
const char *lmc_w8a8_path(void);
void lmc_linear_w8a8_f32(struct lmc_pool *pool, const lmc_linear_w8a8_args *a);

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
 * implicit im2col (patches packed per block straight from x, or from a zero-padded copy of x
 * in the workspace) + GEMM otherwise, with output channels or pixels on the micro-tile's wide
 * side, whichever wastes less. Layout "lmc.conv2d.panel16.v2": per group g (groups one after
 * another), the GEMM layout "lmc.gemm.panel16.v1" of w[g*K/groups : (g+1)*K/groups] viewed as
 * [K/groups, C/groups*R*S] (reduction index (c*R + r)*S + s); shapes on the direct path
 * (C/groups == 1 and K/groups <= 4) keep w as given, [K, 1, R, S] contiguous. Workspace:
 * lmc_conv2d_workspace_bytes(s) bytes (0 when the conv reads nothing outside x; callers may
 * pass NULL, which is slower for padded convs: patches are then packed with bounds checks). */
typedef struct {
  int64_t N, C, H, W, K /* out channels */, R, S /* kernel */, OH, OW;
  int64_t stride_h, stride_w, pad_top, pad_left, dil_h, dil_w, groups;
} lmc_conv2d_shape;
size_t lmc_conv2d_workspace_bytes(const lmc_conv2d_shape *s);
/* w is packed by packing.py (layout lmc_conv2d_layout()) or by lmc_conv2d_pack at run time
 * (weights that are computed values); workspace from the arena. */
const char *lmc_conv2d_layout(void);
size_t lmc_conv2d_packed_bytes(const lmc_conv2d_shape *s);
void lmc_conv2d_pack(const lmc_conv2d_shape *s, const float *w, float *packed);
void lmc_conv2d_f32(struct lmc_pool *pool, const lmc_conv2d_shape *s, const float *x,
                    const float *packed_w, const float *bias, float *y, void *workspace,
                    lmc_epilogue_fn epi, void *epi_ctx);
/* The same convolution by Winograd's F(2x2, 3x3) (lmc_winograd.c) for shapes where
 * lmc_conv2d_wino_applies (3x3, stride 1, dilation 1, one group, channels within the per-thread
 * scratch): 4/9 of the multiplies, with rounding that differs from the direct sum (transforms
 * in f32). Layout "lmc.conv2d.wino2x3.v1": U[xi][k][c] = (G g G^T)[xi] for xi < 16, f32,
 * [16][K][C] (packing.pack_conv2d_winograd, or lmc_conv2d_wino_pack at run time). No
 * workspace: each task keeps its block of tiles in a thread-local scratch (~1 MiB). */
const char *lmc_conv2d_wino_layout(void);
int lmc_conv2d_wino_applies(const lmc_conv2d_shape *s);
size_t lmc_conv2d_wino_packed_bytes(const lmc_conv2d_shape *s);
void lmc_conv2d_wino_pack(const lmc_conv2d_shape *s, const float *w, float *packed);
void lmc_conv2d_wino_f32(struct lmc_pool *pool, const lmc_conv2d_shape *s, const float *x,
                         const float *packed_u, const float *bias, float *y,
                         lmc_epilogue_fn epi, void *epi_ctx);

/* ---- max pooling (2-D, f32; 1-D callers pass H = KH = 1) ---------------------------------
 * y[p, oh, ow] = max over (r, t) of x[p, oh*stride_h + r*dil_h - pad_top, ow*stride_w +
 * t*dil_w - pad_left] for p < planes (every leading index, e.g. N*C); taps outside x are
 * skipped (-inf when none is inside); NaN propagates. The end pads / ceil mode are implied by
 * OH, OW. Vectorized along W. */
typedef struct {
  int64_t planes, H, W, OH, OW, KH, KW, stride_h, stride_w, pad_top, pad_left, dil_h, dil_w;
} lmc_pool2d_shape;
void lmc_max_pool2d_f32(struct lmc_pool *pool, const lmc_pool2d_shape *s, const float *x,
                        float *y);

/* ---- row-wise ops over the last axis (rows contiguous, y may alias x) ---------------------
 * w / b may be NULL (no scale / no shift); layer_norm uses the biased variance. */
void lmc_softmax_f32(struct lmc_pool *pool, int64_t rows, int64_t cols, const float *x,
                     float *y, int log_softmax);
void lmc_layer_norm_f32(struct lmc_pool *pool, int64_t rows, int64_t cols, const float *x,
                        const float *w, const float *b, float eps, float *y);
void lmc_rms_norm_f32(struct lmc_pool *pool, int64_t rows, int64_t cols, const float *x,
                      const float *w, float eps, float *y);
/* One row of rotary_embedding: x, y [d]; cos, sin [half]. Rotate-half: y[j] = x[j] c[j] -
 * x[j+half] s[j], y[j+half] = x[j+half] c[j] + x[j] s[j]; interleaved: pairs (x[2j], x[2j+1]);
 * features from 2*half on are copied. y may be x (in place); products are not fused into FMAs,
 * so f32 results match the reference's rounding. */
void lmc_rotary_row_f32(const float *x, const float *c, const float *s, float *y, int64_t half,
                        int64_t d, int interleaved);

/* ---- scalar math for generated elementwise code (inline, auto-vectorizable) --------------
 * Defined static inline in lmc_math.h (included above):
 *   float lmc_expf(float x);      float lmc_tanhf(float x);       float lmc_erff(float x);
 *   float lmc_sigmoidf(float x);  float lmc_gelu_erff(float x);   float lmc_gelu_tanhf(float x);
 */

#endif /* LMC_KERNELS_H */
