/* kernels_bench.c - machine probes for benchmarks/kernels.py: STREAM-like triad and read-only
 * bandwidth, and an FMA loop for peak f32 FLOP/s, each split over an lmc thread pool. */
#include <stddef.h>
#include <stdint.h>

#include "lmc_kernels.h"
#include "lmc_simd.h"

typedef struct {
  float *a;
  const float *b, *c;
  float s;
  double sums[256];
  int64_t chunk;
  int64_t iters;
} bench_ctx;

/* a = b + s * c over [begin, end) chunks */
static void triad_task(void *ctx, int64_t t0, int64_t t1) {
  bench_ctx *p = (bench_ctx *)ctx;
  for (int64_t i = t0 * p->chunk; i < t1 * p->chunk; i++) p->a[i] = p->b[i] + p->s * p->c[i];
}

void bench_triad(struct lmc_pool *pool, int64_t n, float *a, const float *b, const float *c) {
  bench_ctx p = {a, b, c, 3.0f, {0}, 4096, 0};
  lmc_parallel_for(pool, n / p.chunk, 1, triad_task, &p);
}

/* four streams per task (as the GEMV reads four weight panels at once), 4 vectors each */
static void read_task(void *ctx, int64_t t0, int64_t t1) {
  bench_ctx *p = (bench_ctx *)ctx;
  lmc_vf acc[16];
  for (int j = 0; j < 16; j++) acc[j] = lmc_vzero();
  int64_t q = (t1 - t0) * p->chunk / 4;
  const float *b = p->b + t0 * p->chunk;
  for (int64_t i = 0; i + 4 * LMC_VL <= q; i += 4 * LMC_VL)
    for (int s = 0; s < 4; s++)
      for (int j = 0; j < 4; j++)
        acc[4 * s + j] = lmc_vadd(acc[4 * s + j], lmc_vload(b + s * q + i + j * LMC_VL));
  for (int j = 1; j < 16; j++) acc[0] = lmc_vadd(acc[0], acc[j]);
  p->sums[t0 % 256] = lmc_vsum(acc[0]);
}

/* sum of b[0:n) (n a multiple of 4096); read-only streaming bandwidth */
double bench_read(struct lmc_pool *pool, int64_t n, const float *b) {
  bench_ctx p = {NULL, b, NULL, 0.0f, {0}, 4096, 0};
  lmc_parallel_for(pool, n / p.chunk, 1, read_task, &p);
  double s = 0;
  for (int i = 0; i < 256; i++) s += p.sums[i];
  return s;
}

static void fma_task(void *ctx, int64_t t0, int64_t t1) {
  bench_ctx *p = (bench_ctx *)ctx;
  lmc_vf acc[12], x = lmc_vset1(0.999999f), y = lmc_vset1(1e-7f);
  for (int j = 0; j < 12; j++) acc[j] = lmc_vset1((float)j);
  for (int64_t t = t0; t < t1; t++)
    for (int64_t i = 0; i < p->iters; i++)
      for (int j = 0; j < 12; j++) acc[j] = lmc_vfma(acc[j], x, y);
  for (int j = 1; j < 12; j++) acc[0] = lmc_vadd(acc[0], acc[j]);
  p->sums[t0 % 256] = lmc_vsum(acc[0]);
}

/* tasks x iters x 12 vector FMAs; returns the flop count (2 per lane) */
double bench_fma(struct lmc_pool *pool, int64_t tasks, int64_t iters) {
  bench_ctx p = {NULL, NULL, NULL, 0.0f, {0}, 0, iters};
  lmc_parallel_for(pool, tasks, 1, fma_task, &p);
  return (double)tasks * (double)iters * 12.0 * LMC_VL * 2.0;
}

int bench_vector_lanes(void) { return LMC_VL; }
