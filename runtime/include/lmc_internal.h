/* lmc_internal.h - the contract between generated model code and the lmc runtime.
 * Generated code defines `lmc_model_definition()`; the runtime (lmc_runtime.c) implements the
 * public API of lmc_model.h on top of it. Not part of the public API.
 *
 * NOTE 2026-11-23 (runtime helper), changes since the first draft -- codegen/kernels, please
 * read:
 *  - lmc_model.h: dtypes LMC_U16, LMC_U32, LMC_U64 appended (values 12, 13, 14; the old values
 *    are unchanged), LMC_NUM_DTYPES; public functions carry LMC_API (visibility "default"), so
 *    build artifacts with -fvisibility=hidden: lmc_model_definition, lmc_parallel_for and
 *    lmc_digest64 then stay private to each .so and two models load into one process.
 *  - lmc_parallel_for: fn gets a range [begin, end), called at most once per thread; `grain` is
 *    the least number of items per call and every `begin` is a multiple of it (see below).
 *  - new: lmc_pool_size (threads a kernel may plan for), lmc_pool_create/lmc_pool_destroy and
 *    lmc_num_cores (used by the runtime and by test drivers), lmc_dtype_size.
 *  - lmc_model_def.run returns 0 on success; nonzero -> LMC_ERR_INTERNAL with ex->err's text.
 *  - dim_table entries that are neither static nor a bare symbol (value -1, sym -1) are
 *    expressions: eval_dims must fill every entry (static ones too); the runtime checks input
 *    dims against them after binding the symbols from bare-symbol dims. Every symbol must
 *    appear bare in some input dim, or lmc_run reports it as unbindable.
 *  - output_capacity[i] must be >= the output's bytes at the symbols' upper bounds; the runtime
 *    checks the computed output bytes against it before calling run (LMC_ERR_INTERNAL if not).
 *  - the runtime checks the definition at load (ABI version, table pointers, dim indices,
 *    weight entries 64-aligned inside weights_bytes): a mismatch is LMC_ERR_FORMAT, not a crash.
 *  - lmc_num_inputs/outputs/symbols return -1 for a NULL model.
 */
#ifndef LMC_INTERNAL_H
#define LMC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lmc_model.h"

#define LMC_ALIGN 64

struct lmc_pool;

/* Run fn over [0, n) on the pool's threads, the calling thread included, and return when all
 * calls have returned. Static chunking: the range is cut into at most lmc_pool_size(pool)
 * contiguous pieces, one `fn(ctx, begin, end)` call each; every piece has at least `grain`
 * items (the last one may have fewer when n is not a multiple) and every `begin` is a multiple
 * of `grain` (grain <= 0 means 1). Serial -- one call fn(ctx, 0, n) -- when pool is NULL, when
 * n <= grain, or when called from inside a task of the same pool (nested calls never
 * deadlock). Nothing is called when n <= 0. */
typedef void (*lmc_task_fn)(void *ctx, int64_t begin, int64_t end);
void lmc_parallel_for(struct lmc_pool *pool, int64_t n, int64_t grain, lmc_task_fn fn, void *ctx);
/* Threads that run a parallel_for on this pool, the caller included (1 for NULL). */
int lmc_pool_size(const struct lmc_pool *pool);
/* For the caller's piece of a dynamically shared job, between its chunks: when a worker of the
 * running parallel_for has not started yet (its wake-up can sit queued behind the caller on the
 * caller's CPU), yield the CPU once so it can start (and move to another CPU). */
void lmc_pool_let_workers_start(struct lmc_pool *pool);
/* A pool of num_threads threads in all (the caller counts as one; <= 0 = lmc_num_cores()).
 * Returns NULL -- run serially -- for one thread, without pthreads (LMC_NO_THREADS) or when no
 * thread could be started. Idle workers sleep on a condition variable after a short spin. */
struct lmc_pool *lmc_pool_create(int num_threads);
void lmc_pool_destroy(struct lmc_pool *pool);
int lmc_num_cores(void);

/* What a generated `run` gets for one execution. */
typedef struct lmc_exec {
  const int64_t *sym;       /* symbol values, in the graph's symbol order */
  const int64_t *dim;       /* values of every dim expression (see lmc_model_def.dims) */
  const void *const *in;    /* input data */
  void *const *out;         /* output buffers, sized for the symbols' upper bounds */
  uint8_t *arena;           /* intermediate values, LMC_ALIGN-aligned, arena_bytes long */
  const uint8_t *weights;   /* the weights data region, LMC_ALIGN-aligned */
  struct lmc_pool *pool;    /* thread pool or NULL */
  char *err;                /* where a kernel writes a message before returning nonzero */
  size_t err_len;
} lmc_exec;

/* One input/output: dims are indices into lmc_model_def.dim_table. */
typedef struct {
  const char *name;
  int32_t dtype;            /* an lmc_dtype */
  int32_t rank;
  const int32_t *dims;      /* entry k: dim_table index */
  const char *const *dim_text;
} lmc_io_def;

/* A dim-table entry: static value, or the symbol it is (sym >= 0), or an expression evaluated
 * by eval_dims (value -1, sym -1). */
typedef struct {
  int64_t value;            /* static value, or -1 */
  int32_t sym;              /* >= 0: this dim is exactly symbol `sym` */
} lmc_dim_def;

typedef struct {
  const char *key;
  uint64_t offset;          /* from the start of the weights data region, LMC_ALIGN-aligned */
  uint64_t nbytes;
} lmc_weight_def;

typedef struct lmc_model_def {
  uint32_t abi_version;     /* LMC_ABI_VERSION */
  const char *graph_name;
  const char *lmc_version;
  int32_t num_symbols;
  const char *const *symbol_names;
  const int64_t *symbol_lo;
  const int64_t *symbol_hi;
  int32_t num_dims;
  const lmc_dim_def *dim_table;
  /* Fill out[0..num_dims) from symbol values (static entries included). */
  void (*eval_dims)(const int64_t *sym, int64_t *out);
  int32_t num_inputs;
  const lmc_io_def *inputs;
  int32_t num_outputs;
  const lmc_io_def *outputs;
  const uint64_t *output_capacity; /* bytes per output at the symbols' upper bounds */
  uint64_t arena_bytes;
  uint64_t weights_bytes;   /* size of the data region */
  uint64_t weights_digest;  /* lmc_digest64 of the data region */
  int32_t num_weights;
  const lmc_weight_def *weights;
  int (*run)(const lmc_exec *ex); /* 0 = success */
} lmc_model_def;

const lmc_model_def *lmc_model_definition(void);

/* The weights digest: a fast 64-bit hash over 8-byte little-endian words (tail zero-padded),
 * the same function as lmc.runtime.artifact.digest64 in Python. Word i (value w) contributes
 * mix(w ^ ((i + 1) * K0)) to a wrapping 64-bit sum; the result is fmix(sum ^ n) -- see
 * lmc_digest.c for the constants. Order-independent sums let it run in parallel lanes. */
uint64_t lmc_digest64(const uint8_t *data, uint64_t n);

/* Bytes per element of an lmc_dtype (0 for an unknown value). */
size_t lmc_dtype_size(int32_t dtype);

#endif /* LMC_INTERNAL_H */
