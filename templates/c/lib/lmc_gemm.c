/* lmc_gemm.c - f32 GEMM: the packed-weight layout, the blocked driver shared with convolution
 * (tasks = batch x M blocks x N blocks handed out dynamically over the pool; per k block: pack
 * A, then micro-kernels over the tile), the small-batch GEMV that streams packed panels, and the
 * strided activation x activation GEMM. */
#include "lmc_kern.h"

static LMC_TLS float lmc__tls_scratch[LMC_SCRATCH_FLOATS + 16];

float *lmc__scratch(void) {
  uintptr_t p = (uintptr_t)lmc__tls_scratch;
  return (float *)((p + 63) & ~(uintptr_t)63);
}

/* ---- dynamic scheduling over the pool ----------------------------------------------------- */

typedef struct {
  int64_t next, n, chunk;
  lmc_task_fn fn;
  void *ctx;
  struct lmc_pool *pool;
} lmc__sched;

static void lmc__sched_worker(void *ctx, int64_t w0, int64_t w1) {
  lmc__sched *s = (lmc__sched *)ctx;
  (void)w1;
  for (;;) {
    if (w0 == 0) lmc_pool_let_workers_start(s->pool); /* the caller's piece */
#if defined(__GNUC__)
    int64_t t = __atomic_fetch_add(&s->next, s->chunk, __ATOMIC_RELAXED);
#else
    int64_t t = s->next; /* no atomics: only reached through the serial path below */
    s->next += s->chunk;
#endif
    if (t >= s->n) return;
    s->fn(s->ctx, t, lmc__min(t + s->chunk, s->n));
  }
}

void lmc__parallel(struct lmc_pool *pool, int64_t n, int64_t chunk, lmc_task_fn fn, void *ctx) {
  if (n <= 0) return;
  chunk = lmc__max(1, chunk);
  int64_t workers = lmc__min(lmc_pool_size(pool), lmc__cdiv(n, chunk));
#if !defined(__GNUC__)
  workers = 1;
#endif
  if (workers <= 1) {
    fn(ctx, 0, n);
    return;
  }
  lmc__sched s = {0, n, chunk, fn, ctx, pool};
  lmc_parallel_for(pool, workers, 1, lmc__sched_worker, &s);
}

/* ---- packed layout: ceil(N/16) panels, panel p = W[16p:16p+16, :] stored [k][16], zero past N */

const char *lmc_gemm_layout(void) { return "lmc.gemm.panel16.v1"; }

size_t lmc_gemm_packed_bytes(int64_t N, int64_t K) {
  if (N <= 0 || K <= 0) return 0;
  return (size_t)lmc__cdiv(N, LMC_PANEL) * LMC_PANEL * (size_t)K * sizeof(float);
}

void lmc_gemm_pack(int64_t N, int64_t K, const float *W, int64_t ldw, float *packed) {
  if (N <= 0 || K <= 0) return;
  for (int64_t p = 0; p < lmc__cdiv(N, LMC_PANEL); p++) {
    float *d = packed + p * K * LMC_PANEL;
    for (int64_t j = 0; j < LMC_PANEL; j++) {
      int64_t n = p * LMC_PANEL + j;
      if (n < N) {
        const float *s = W + n * ldw;
        for (int64_t k = 0; k < K; k++) d[k * LMC_PANEL + j] = s[k];
      } else {
        for (int64_t k = 0; k < K; k++) d[k * LMC_PANEL + j] = 0.0f;
      }
    }
  }
}

/* ---- the blocked driver ------------------------------------------------------------------- */

typedef struct {
  const lmc__gemm *g;
  int64_t MC, NC, mblocks, nblocks;
} lmc__gemm_plan;

/* A[0:mc, k0:k0+kc] into MR-row micro-panels [k][MR], rows past mc zero. */
static void lmc__pack_a(const float *A, int64_t lda, int64_t mc, int64_t k0, int64_t kc,
                        float *dst) {
  for (int64_t ir = 0; ir < mc; ir += LMC_MR) {
    float *d = dst + ir * kc;
    int64_t mr = lmc__min(LMC_MR, mc - ir);
    for (int64_t i = 0; i < LMC_MR; i++) {
      if (i < mr) {
        const float *s = A + (ir + i) * lda + k0;
        for (int64_t k = 0; k < kc; k++) d[k * LMC_MR + i] = s[k];
      } else {
        for (int64_t k = 0; k < kc; k++) d[k * LMC_MR + i] = 0.0f;
      }
    }
  }
}

/* K == 0: the tile is the bias (or zero). */
static void lmc__fill_bias(float *c, int64_t ldc, int64_t mc, int64_t nc, const float *bias_n,
                           const float *bias_m) {
  for (int64_t i = 0; i < mc; i++)
    for (int64_t j = 0; j < nc; j++)
      c[i * ldc + j] = (bias_n ? bias_n[j] : 0.0f) + (bias_m ? bias_m[i] : 0.0f);
}

/* The tile's packed A (micro-panel ir of the k block at pc: [kc][LMC_MR] at return + ir * *ar).
 * A thread packs the whole row block A[m0:m0+mc, :] once per GEMM run and reuses it for the
 * run's later tiles of the same rows (they differ in N only: a 128-token prompt times a
 * 32000-wide head is 112 tiles of one row block) when it fits the scratch next to nothing
 * else (pre-packed B); otherwise each k block is packed when its turn comes. */
static LMC_TLS struct {
  uint64_t run;
  const float *A;
  int64_t mc;
} lmc__apacked;

static const float *lmc__tile_a(const lmc__gemm *g, const float *A, int64_t b, int64_t m0,
                                int64_t mc, int64_t pc, int64_t kc, int64_t kb, int64_t *ar,
                                float *apack) {
  if (g->ap) {
    *ar = g->K;
    return g->ap + (b % g->a_mod) * g->a_bs + m0 * g->K + pc * LMC_MR;
  }
  int64_t mcr = lmc__cdiv(mc, LMC_MR) * LMC_MR;
  *ar = kc;
  if (g->pack_b || g->run == 0 || mcr * g->K > LMC_SCRATCH_FLOATS || apack != lmc__scratch()) {
    lmc__pack_a(A, g->lda, mc, pc, kc, apack);
    return apack;
  }
  if (pc == 0 && !(lmc__apacked.run == g->run && lmc__apacked.A == A && lmc__apacked.mc == mc)) {
    lmc__apacked.run = 0; /* invalid while packing */
    for (int64_t k0 = 0; k0 < g->K; k0 += kb)
      lmc__pack_a(A, g->lda, mc, k0, lmc__min(kb, g->K - k0), apack + mcr * k0);
    lmc__apacked.run = g->run, lmc__apacked.A = A, lmc__apacked.mc = mc;
  }
  return apack + mcr * pc;
}

static void lmc__gemm_tile(const lmc__gemm *g, int64_t b, int64_t m0, int64_t mc, int64_t n0,
                           int64_t nc) {
  const float *A = g->ap ? NULL : g->A + (b % g->a_mod) * g->a_bs + m0 * g->lda;
  float *C = g->C + b * g->c_bs + m0 * g->ldc + n0;
  const float *bias_n = g->bias_n ? g->bias_n + n0 : NULL;
  const float *bias_m = g->bias_m ? g->bias_m + (b % g->bm_mod) * g->bm_bs + m0 : NULL;
  if (g->K == 0) lmc__fill_bias(C, g->ldc, mc, nc, bias_n, bias_m);
  float *apack = g->apack ? g->apack : lmc__scratch();
  float *bpack = apack + LMC_MC_MAX * LMC_KC;
  int64_t nkb = lmc__max(1, lmc__cdiv(g->K, LMC_KC));
  int64_t kb = lmc__cdiv(lmc__cdiv(g->K, nkb), 8) * 8; /* balanced k blocks, <= LMC_KC */
  for (int64_t pc = 0; pc < g->K; pc += kb) {
    int64_t kc = lmc__min(kb, g->K - pc), ar;
    const float *a0 = lmc__tile_a(g, A, b, m0, mc, pc, kc, kb, &ar, apack);
    const float *bbase;
    int64_t pstride;
    if (g->bp) {
      bbase = g->bp + b * g->b_bs + n0 * g->K + pc * LMC_PANEL;
      pstride = g->K * LMC_PANEL;
    } else {
      g->pack_b(g->bctx, b, pc, kc, n0, nc, bpack);
      bbase = bpack;
      pstride = kc * LMC_PANEL;
    }
    for (int64_t ir = 0; ir < mc; ir += LMC_MR) {
      int64_t mr = lmc__min(LMC_MR, mc - ir);
      for (int64_t jr = 0; jr < nc; jr += LMC_NR) {
        int64_t nr = lmc__min(LMC_NR, nc - jr);
        lmc__ukernel(kc, a0 + ir * ar, bbase + (jr / LMC_PANEL) * pstride, pstride,
                     C + ir * g->ldc + jr, g->ldc, mr, nr, pc == 0, bias_n ? bias_n + jr : NULL,
                     bias_m ? bias_m + ir : NULL);
      }
    }
  }
  if (g->epi) g->epi(g->epi_ctx, C, g->ldc, b * g->M + m0, n0, mc, nc);
}

static void lmc__gemm_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__gemm_plan *pl = (const lmc__gemm_plan *)ctx;
  for (int64_t t = t0; t < t1; t++) {
    int64_t nb = t % pl->nblocks, rest = t / pl->nblocks;
    int64_t mb = rest % pl->mblocks, b = rest / pl->mblocks;
    int64_t m0 = mb * pl->MC, n0 = nb * pl->NC;
    lmc__gemm_tile(pl->g, b, m0, lmc__min(pl->MC, pl->g->M - m0), n0,
                   lmc__min(pl->NC, pl->g->N - n0));
  }
}

/* A new id per GEMM run (never 0): a packed A cached by a thread is only valid in its run. */
static uint64_t lmc__new_run(void) {
  static uint64_t runs;
#if defined(__GNUC__)
  return __atomic_add_fetch(&runs, 1, __ATOMIC_RELAXED);
#else
  return ++runs;
#endif
}

void lmc__gemm_run(struct lmc_pool *pool, const lmc__gemm *g0) {
  lmc__gemm copy = *g0, *g = &copy;
  copy.run = lmc__new_run();
  if (g->M <= 0 || g->N <= 0 || g->batch <= 0) return;
  lmc__gemm_plan pl;
  pl.g = g;
  /* one M block when it fits (B is then streamed once); N blocks as wide as possible while
   * there are >= 2 tasks per thread (each thread packs a row block of A once: lmc__tile_a) */
  pl.MC = lmc__min(lmc__cdiv(g->M, LMC_MR) * LMC_MR, LMC_MC_MAX);
  pl.mblocks = lmc__cdiv(g->M, pl.MC);
  int64_t want = 2 * (int64_t)lmc_pool_size(pool), have = g->batch * pl.mblocks;
  int64_t split = have >= want || lmc_pool_size(pool) == 1 ? 1 : lmc__cdiv(want, have);
  pl.NC = lmc__cdiv(lmc__cdiv(g->N, split), LMC_NR) * LMC_NR;
  pl.NC = lmc__max(LMC_NR, lmc__min(pl.NC, LMC_NC_MAX));
  pl.nblocks = lmc__cdiv(g->N, pl.NC);
  lmc__parallel(pool, g->batch * pl.mblocks * pl.nblocks, 1, lmc__gemm_task, &pl);
}

void lmc__gemm_serial(const lmc__gemm *g0) {
  lmc__gemm copy = *g0, *g = &copy;
  copy.run = lmc__new_run();
  for (int64_t b = 0; b < g->batch; b++)
    for (int64_t m0 = 0; m0 < g->M; m0 += LMC_MC_MAX)
      for (int64_t n0 = 0; n0 < g->N; n0 += LMC_NC_MAX)
        lmc__gemm_tile(g, b, m0, lmc__min(LMC_MC_MAX, g->M - m0), n0,
                       lmc__min(LMC_NC_MAX, g->N - n0));
}

/* ---- GEMV: M <= LMC_GEMV_MAXM rows against packed panels, streamed once --------------- */

typedef struct {
  int64_t M, N, K, lda, ldc, group;
  const float *A, *packed, *bias;
  float *C;
  lmc_epilogue_fn epi;
  void *epi_ctx;
} lmc__gemv_plan;

static void lmc__gemv_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__gemv_plan *pl = (const lmc__gemv_plan *)ctx;
  float out[LMC_GEMV_MAXM * LMC_PANEL * LMC_GEMV_NP];
  int64_t npanels = lmc__cdiv(pl->N, LMC_PANEL);
  for (int64_t t = t0; t < t1; t++) {
    int64_t p0 = t * pl->group, p1 = lmc__min(p0 + pl->group, npanels);
    for (int64_t p = p0; p < p1; p += LMC_GEMV_NP) {
      int np = (int)lmc__min(LMC_GEMV_NP, p1 - p);
      lmc__gemv((int)pl->M, np, pl->K, pl->A, pl->lda, pl->packed + p * pl->K * LMC_PANEL,
                pl->K * LMC_PANEL, out);
      int64_t n0 = p * LMC_PANEL, w = lmc__min(np * LMC_PANEL, pl->N - n0);
      for (int64_t i = 0; i < pl->M; i++) {
        float *c = pl->C + i * pl->ldc + n0;
        const float *o = out + i * LMC_PANEL * LMC_GEMV_NP;
        for (int64_t j = 0; j < w; j++) c[j] = o[j] + (pl->bias ? pl->bias[n0 + j] : 0.0f);
      }
    }
    if (pl->epi) {
      int64_t n0 = p0 * LMC_PANEL;
      pl->epi(pl->epi_ctx, pl->C + n0, pl->ldc, 0, n0, pl->M,
              lmc__min(p1 * LMC_PANEL, pl->N) - n0);
    }
  }
}

void lmc_gemm_f32_packed(struct lmc_pool *pool, int64_t M, int64_t N, int64_t K, const float *A,
                         int64_t lda, const float *packed, float *C, int64_t ldc,
                         const float *bias, lmc_epilogue_fn epi, void *epi_ctx) {
  if (M <= 0 || N <= 0) return;
  if (M <= LMC_GEMV_MAXM) {
    lmc__gemv_plan pl = {M, N, K, lda, ldc, 0, A, packed, bias, C, epi, epi_ctx};
    int64_t npanels = lmc__cdiv(N, LMC_PANEL);
    /* about 16 tasks, each a whole number of kernel calls */
    pl.group = lmc__cdiv(lmc__cdiv(npanels, 16), LMC_GEMV_NP) * LMC_GEMV_NP;
    lmc__parallel(pool, lmc__cdiv(npanels, pl.group), 1, lmc__gemv_task, &pl);
    return;
  }
  lmc__gemm g;
  memset(&g, 0, sizeof g);
  g.M = M, g.N = N, g.K = K, g.batch = 1;
  g.A = A, g.lda = lda, g.a_mod = 1;
  g.bp = packed;
  g.C = C, g.ldc = ldc;
  g.bias_n = bias, g.bm_mod = 1;
  g.epi = epi, g.epi_ctx = epi_ctx;
  lmc__gemm_run(pool, &g);
}

/* ---- strided B: packed per block at run time ---------------------------------------------- */

typedef struct {
  const float *B;
  int64_t ldk, ldn;
} lmc__strided_b;

static void lmc__pack_b_strided(const void *ctx, int64_t batch, int64_t k0, int64_t kc,
                                int64_t n0, int64_t nc, float *dst) {
  const lmc__strided_b *s = (const lmc__strided_b *)ctx;
  (void)batch;
  for (int64_t p = 0; p * LMC_PANEL < nc; p++) {
    float *d = dst + p * kc * LMC_PANEL;
    int64_t w = lmc__min(LMC_PANEL, nc - p * LMC_PANEL);
    const float *src = s->B + k0 * s->ldk + (n0 + p * LMC_PANEL) * s->ldn;
    if (s->ldn == 1) {
      for (int64_t k = 0; k < kc; k++) {
        const float *r = src + k * s->ldk;
        for (int64_t j = 0; j < w; j++) d[k * LMC_PANEL + j] = r[j];
        for (int64_t j = w; j < LMC_PANEL; j++) d[k * LMC_PANEL + j] = 0.0f;
      }
    } else {
      for (int64_t j = 0; j < LMC_PANEL; j++) {
        const float *col = src + j * s->ldn;
        if (j < w)
          for (int64_t k = 0; k < kc; k++) d[k * LMC_PANEL + j] = col[k * s->ldk];
        else
          for (int64_t k = 0; k < kc; k++) d[k * LMC_PANEL + j] = 0.0f;
      }
    }
  }
}

void lmc_gemm_f32(struct lmc_pool *pool, int64_t M, int64_t N, int64_t K, const float *A,
                  int64_t lda, const float *B, int64_t ldb_k, int64_t ldb_n, float *C,
                  int64_t ldc, const float *bias, lmc_epilogue_fn epi, void *epi_ctx) {
  lmc__strided_b sb = {B, ldb_k, ldb_n};
  lmc__gemm g;
  memset(&g, 0, sizeof g);
  g.M = M, g.N = N, g.K = K, g.batch = 1;
  g.A = A, g.lda = lda, g.a_mod = 1;
  g.pack_b = lmc__pack_b_strided, g.bctx = &sb;
  g.C = C, g.ldc = ldc;
  g.bias_n = bias, g.bm_mod = 1;
  g.epi = epi, g.epi_ctx = epi_ctx;
  lmc__gemm_run(pool, &g);
}

/* ---- several packed weights over one A (sibling linears merged at compile time) ----------- */

#define LMC__MAX_PIECES 8

typedef struct {
  int64_t n;                                  /* pieces */
  int64_t first[LMC__MAX_PIECES + 1];         /* task index where each piece's tasks start */
  int64_t nblocks[LMC__MAX_PIECES];
  lmc__gemm g[LMC__MAX_PIECES];               /* GEMM path */
  lmc__gemv_plan v[LMC__MAX_PIECES];          /* GEMV path */
  int64_t MC, NC[LMC__MAX_PIECES];
  int gemv;
} lmc__multi_plan;

static void lmc__multi_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__multi_plan *pl = (const lmc__multi_plan *)ctx;
  int64_t p = 0;
  for (int64_t t = t0; t < t1; t++) {
    while (t >= pl->first[p + 1]) p++;
    int64_t local = t - pl->first[p];
    if (pl->gemv) {
      lmc__gemv_task((void *)&pl->v[p], local, local + 1);
      continue;
    }
    const lmc__gemm *g = &pl->g[p];
    int64_t nb = local % pl->nblocks[p], mb = local / pl->nblocks[p];
    int64_t m0 = mb * pl->MC, n0 = nb * pl->NC[p];
    lmc__gemm_tile(g, 0, m0, lmc__min(pl->MC, g->M - m0), n0, lmc__min(pl->NC[p], g->N - n0));
  }
}

void lmc_gemm_f32_packed_multi(struct lmc_pool *pool, int64_t M, int64_t K, const float *A,
                               int64_t lda, int64_t npieces, const lmc_gemm_piece *pieces) {
  if (M <= 0 || npieces <= 0) return;
  if (npieces > LMC__MAX_PIECES) { /* more than the plan holds: in groups */
    lmc_gemm_f32_packed_multi(pool, M, K, A, lda, LMC__MAX_PIECES, pieces);
    lmc_gemm_f32_packed_multi(pool, M, K, A, lda, npieces - LMC__MAX_PIECES,
                              pieces + LMC__MAX_PIECES);
    return;
  }
  lmc__multi_plan pl;
  memset(&pl, 0, sizeof pl);
  const uint64_t run = lmc__new_run();
  pl.n = npieces;
  pl.gemv = M <= LMC_GEMV_MAXM;
  int64_t panels = 0;
  for (int64_t p = 0; p < npieces; p++) panels += lmc__cdiv(lmc__max(pieces[p].N, 0), LMC_PANEL);
  /* GEMV: panel groups sized as for one call over all the panels (about 16 tasks); GEMM: the
   * M blocks of one call, each piece's N split as lmc__gemm_run would split it */
  int64_t group = lmc__cdiv(lmc__cdiv(lmc__max(panels, 1), 16), LMC_GEMV_NP) * LMC_GEMV_NP;
  pl.MC = lmc__min(lmc__cdiv(M, LMC_MR) * LMC_MR, LMC_MC_MAX);
  int64_t mblocks = lmc__cdiv(M, pl.MC);
  int64_t want = 2 * (int64_t)lmc_pool_size(pool);
  int64_t split = mblocks >= want || lmc_pool_size(pool) == 1 ? 1 : lmc__cdiv(want, mblocks);
  for (int64_t p = 0; p < npieces; p++) {
    const lmc_gemm_piece *c = &pieces[p];
    int64_t tasks = 0;
    if (c->N > 0 && pl.gemv) {
      lmc__gemv_plan v = {M, c->N, K, lda, c->ldc, group, A, c->packed, c->bias, c->C, NULL,
                          NULL};
      pl.v[p] = v;
      tasks = lmc__cdiv(lmc__cdiv(c->N, LMC_PANEL), group);
    } else if (c->N > 0) {
      lmc__gemm *g = &pl.g[p];
      g->run = run; /* the pieces share A, and so its packed blocks */
      g->M = M, g->N = c->N, g->K = K, g->batch = 1;
      g->A = A, g->lda = lda, g->a_mod = 1;
      g->bp = c->packed;
      g->C = c->C, g->ldc = c->ldc;
      g->bias_n = c->bias, g->bm_mod = 1;
      int64_t nc = lmc__cdiv(lmc__cdiv(c->N, split), LMC_NR) * LMC_NR;
      pl.NC[p] = lmc__max(LMC_NR, lmc__min(nc, LMC_NC_MAX));
      pl.nblocks[p] = lmc__cdiv(c->N, pl.NC[p]);
      tasks = mblocks * pl.nblocks[p];
    }
    pl.first[p + 1] = pl.first[p] + tasks;
  }
  lmc__parallel(pool, pl.first[npieces], 1, lmc__multi_task, &pl);
}
