/* lmc_kern.h - private declarations shared by the kernel library's .c files (not for generated
 * code): the ISA's micro-kernels, blocking constants, per-thread scratch and the GEMM driver
 * that the packed GEMM, the strided GEMM and the im2col convolution all run on. */
#ifndef LMC_KERN_H
#define LMC_KERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lmc_kernels.h"
#include "lmc_simd.h"

#if defined(LMC_AVX512)
#include "lmc_ukernel_avx512.h"
#elif defined(LMC_AVX2)
#include "lmc_ukernel_avx2.h"
#elif defined(LMC_NEON)
#include "lmc_ukernel_neon.h"
#elif defined(LMC_WASM_SIMD)
#include "lmc_ukernel_wasm.h"
#else
#include "lmc_ukernel_generic.h"
#endif

#define LMC_PANEL 16                 /* packed B panel width (fixed by the layout) */
#define LMC_NR (LMC_PANEL * LMC_NP)  /* micro-tile width */
#ifndef LMC_KC
#define LMC_KC 512                   /* k block */
#endif
#ifndef LMC_MC_MAX
#define LMC_MC_MAX (LMC_MR * 12)     /* rows per task (the packed A block stays in L2) */
#endif
#ifndef LMC_NC_MAX
#define LMC_NC_MAX 256               /* columns per task */
#endif

#if defined(_MSC_VER)
#define LMC_TLS __declspec(thread)
#else
#define LMC_TLS __thread
#endif

/* Per-thread scratch, LMC_SCRATCH_FLOATS floats, 64-byte aligned (thread-local storage, so no
 * allocation in kernels and no large stack frames: pool threads may have small stacks). */
#define LMC_SCRATCH_FLOATS (LMC_MC_MAX * LMC_KC + LMC_KC * LMC_NC_MAX)
float *lmc__scratch(void);

static inline int64_t lmc__min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t lmc__max(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t lmc__cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Sliding windows: the first o in [0, out) with o*stride + off >= 0 (*lo), and one past the
 * last with o*stride + off < len (*hi, >= *lo). */
static inline void lmc__valid_range(int64_t off, int64_t stride, int64_t len, int64_t out,
                                    int64_t *lo, int64_t *hi) {
  int64_t a = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t b = len - off <= 0 ? 0 : (len - off - 1) / stride + 1;
  *lo = lmc__min(a, out);
  *hi = lmc__max(*lo, lmc__min(b, out));
}

/* fn(ctx, t0, t1) over [0, n) in chunks of `chunk` handed out dynamically (an atomic counter)
 * to the pool's threads: a thread that is descheduled or has slower tasks delays only its
 * current chunk, where lmc_parallel_for's static split would stall the whole call. */
void lmc__parallel(struct lmc_pool *pool, int64_t n, int64_t chunk, lmc_task_fn fn, void *ctx);

/* Packs B[k0:k0+kc, n0:n0+nc] of one batch entry into ceil(nc/16) panels [kc][16] at dst,
 * zero-filling columns past nc. */
typedef void (*lmc__pack_b_fn)(const void *ctx, int64_t batch, int64_t k0, int64_t kc,
                               int64_t n0, int64_t nc, float *dst);

/* C_b[M,N] = A_b[M,K] @ B_b[K,N] (+ bias_n[N]) (+ bias_m_b[M]) for b < batch, then epi per
 * finished tile (rows reported as b * M + row). A_b = A + (b % a_mod) * a_bs, row-major with
 * lda, or pre-packed (ap: micro-panels [ceil(M/LMC_MR)][K][LMC_MR], rows past M zero, of batch
 * b at ap + (b % a_mod) * a_bs; A and lda unused); B either pre-packed (bp: panel p of batch b at bp + b * b_bs + p * K * 16; b_bs 0 when
 * the batches share it) or packed per block by pack_b; C_b = C + b * c_bs; bias_m_b = bias_m +
 * (b % bm_mod) * bm_bs. */
typedef struct {
  int64_t M, N, K, batch;
  const float *A, *ap;
  int64_t lda, a_bs, a_mod;
  const float *bp;
  int64_t b_bs;
  lmc__pack_b_fn pack_b;
  const void *bctx;
  float *C;
  int64_t ldc, c_bs;
  const float *bias_n;
  const float *bias_m;
  int64_t bm_bs, bm_mod;
  lmc_epilogue_fn epi;
  void *epi_ctx;
  float *apack; /* room for the packed A block (LMC_MC_MAX * LMC_KC floats); NULL: the scratch */
  uint64_t run;  /* set by the runners: tiles of one run may reuse a thread's packed A */
} lmc__gemm;

void lmc__gemm_run(struct lmc_pool *pool, const lmc__gemm *g);
/* The same on the calling thread only, for callers already inside a parallel task (needs a
 * pre-packed B when apack points into the caller's own scratch). */
void lmc__gemm_serial(const lmc__gemm *g);

/* The int8 GEMM's micro-kernel (lmc_int8.c; lmc_w8a8.c's too outside x86): acc[4][16] = sum over kg
 * groups of 4 k of A'[i][k] * B'[k][j]; ap a tile [kg][4 rows][4 k], bp a packed panel. */
void lmc__s8_tile(int64_t kg, const int8_t *ap, const int8_t *bp, int32_t *acc);

/* The weight-only layout lmc.wq.panel16.v2 (lmc_quant.c, lmc_w4a8.c): ceil(N/16) panels; panel
 * p: with zeros, first every group's 16 int8 zero bytes (rows 16p..16p+15; int4: z; int8:
 * z - 128), zero-padded to a multiple of 64 bytes (zpre); then for each group (gl = group, or K
 * when group is 0; the last one may be shorter) a header of 16 f32 scales (0 past N) and the
 * codes: int4, ceil(len/8) blocks of 16 u32 words (word j: row 16p+j, nibble t = code of the
 * block's k t, 0 past the group); int8, len blocks of 16 bytes (byte j: row 16p+j; u8 codes
 * stored as c - 128). With 64-byte multiples per group (int4 always, int8 when len % 4 == 0)
 * every code block load stays within one cache line. */

typedef struct {
  int64_t zpre, hdr, blk, kb, ng, gl, gstride, pstride;
} lmc__wq_geom;

static inline lmc__wq_geom lmc__wq_geometry(int64_t K, int bits, int64_t group, int has_zeros) {
  lmc__wq_geom g;
  g.hdr = 64;
  g.kb = bits == 4 ? 8 : 1;
  g.blk = bits == 4 ? 64 : 16;
  g.gl = group > 0 ? group : K;
  g.ng = K > 0 ? lmc__cdiv(K, g.gl) : 0;
  g.zpre = has_zeros ? lmc__cdiv(16 * g.ng, 64) * 64 : 0;
  g.gstride = g.hdr + lmc__cdiv(g.gl, g.kb) * g.blk;
  g.pstride = 0;
  if (g.ng > 0) {
    int64_t last = K - (g.ng - 1) * g.gl;
    g.pstride = g.zpre + (g.ng - 1) * g.gstride + g.hdr + lmc__cdiv(last, g.kb) * g.blk;
  }
  return g;
}

/* Group gi of panel p: its header (scales, then codes), and its 16 zero bytes. */
static inline const uint8_t *lmc__wq_group_at(const lmc__wq_geom *g, const uint8_t *packed,
                                              int64_t p, int64_t gi) {
  return packed + p * g->pstride + g->zpre + gi * g->gstride;
}
static inline const uint8_t *lmc__wq_zeros_at(const lmc__wq_geom *g, const uint8_t *packed,
                                              int64_t p, int64_t gi) {
  return packed + p * g->pstride + 16 * gi;
}

#endif /* LMC_KERN_H */
