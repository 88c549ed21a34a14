/* lmc_threads.c - the thread pool behind lmc_parallel_for: static chunking, the calling thread
 * takes the first piece, idle workers spin briefly and then sleep on a condition variable.
 * Built with LMC_NO_THREADS (wasm32) everything runs serially on the caller. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity */
#endif

#include "lmc_internal.h"

#define LMC_MAX_THREADS 256

#if defined(LMC_NO_THREADS)

struct lmc_pool {
  int unused;
};

int lmc_num_cores(void) { return 1; }
struct lmc_pool *lmc_pool_create(int num_threads) {
  (void)num_threads;
  return NULL;
}
void lmc_pool_destroy(struct lmc_pool *pool) { (void)pool; }
int lmc_pool_size(const struct lmc_pool *pool) {
  (void)pool;
  return 1;
}
void lmc_pool_let_workers_start(struct lmc_pool *pool) { (void)pool; }
void lmc_parallel_for(struct lmc_pool *pool, int64_t n, int64_t grain, lmc_task_fn fn, void *ctx) {
  (void)pool;
  (void)grain;
  if (n > 0 && fn) fn(ctx, 0, n);
}

#else

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <sched.h>

#define SPIN_ROUNDS 2048 /* ~5-100 us of polling (pause) before a thread sleeps */

/* One polling round: a pause, and every 64th round a yield, so an oversubscribed machine
 * (more runnable threads than cores) lets the thread being waited for run. */
static inline void cpu_relax(int round) {
  if ((round & 63) == 63) {
    sched_yield();
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* One piece of [0, n): pieces get near-equal numbers of grain-sized units. */
static void piece_range(int64_t n, int64_t grain, int pieces, int t, int64_t *b, int64_t *e) {
  int64_t units = (n - 1) / grain + 1;
  int64_t base = units / pieces, rem = units % pieces;
  int64_t u0 = t * base + (t < rem ? t : rem);
  int64_t u1 = u0 + base + (t < rem ? 1 : 0);
  *b = u0 * grain;
  *e = u1 * grain < n ? u1 * grain : n;
}

struct lmc_worker {
  struct lmc_pool *pool;
  int id;
  atomic_int cpu; /* the CPU it waits on for the next job (-1: unknown) */
};

static int current_cpu(void) {
#if defined(__linux__)
  return sched_getcpu();
#else
  return -1;
#endif
}

/* Hand-off protocol. `job` packs a generation (bits 16..) and the number of pieces (bits
 * 0..15); workers wait for it to change. Only workers with id < pieces touch the job's fields
 * and count down `pending`, and the caller waits for pending == 0 before the fields change
 * again. Sleepers are counted, so the hot path takes no lock when everyone is spinning; both
 * sides write their own flag, then read the other's (seq_cst), so no wake-up is lost. */
struct lmc_pool {
  int size;                 /* threads in a parallel_for, the caller included */
  pthread_t *threads;       /* size - 1 workers */
  struct lmc_worker *workers;
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  atomic_uint_fast64_t job;
  atomic_int pending;       /* pieces not finished by workers */
  atomic_int late;          /* workers of the current job that have not started it */
  atomic_int sleepers;      /* workers blocked (or about to block) on `wake` */
  atomic_int waiting;       /* the caller is blocked (or about to block) on `done` */
  atomic_int busy;          /* a parallel_for is running: nested calls run serially */
  atomic_int stop;
  lmc_task_fn fn;           /* the current job, written before `job` changes */
  void *ctx;
  int64_t n, grain;
  int caller_cpu;           /* the CPU the caller published the job from (-1: unknown) */
};

int lmc_num_cores(void) {
  long n = 1;
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  else n = sysconf(_SC_NPROCESSORS_ONLN);
#elif defined(_SC_NPROCESSORS_ONLN)
  n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
  if (n < 1) n = 1;
  return n > LMC_MAX_THREADS ? LMC_MAX_THREADS : (int)n;
}

int lmc_pool_size(const struct lmc_pool *pool) { return pool ? pool->size : 1; }

static void run_piece(struct lmc_pool *p, int t, int pieces) {
  int64_t b, e;
  piece_range(p->n, p->grain, pieces, t, &b, &e);
  if (b < e) p->fn(p->ctx, b, e);
}

/* A worker woken onto the CPU its caller runs on (Linux's wake-up placement does this when the
 * other CPUs look busy, e.g. a VM's idle vCPUs after a pause) would share that CPU with the
 * caller for the whole job; it moves to another allowed CPU instead and then lifts the
 * restriction again, so nothing stays pinned. */
static void leave_caller_cpu(int caller_cpu) {
#if defined(__linux__)
  cpu_set_t allowed, others;
  int cpu = current_cpu();
  if (caller_cpu < 0 || cpu != caller_cpu || sched_getaffinity(0, sizeof allowed, &allowed) != 0)
    return;
  others = allowed;
  CPU_CLR(cpu, &others);
  if (CPU_COUNT(&others) == 0 || sched_setaffinity(0, sizeof others, &others) != 0) return;
  sched_setaffinity(0, sizeof allowed, &allowed);
#else
  (void)caller_cpu;
#endif
}

static void *worker_main(void *arg) {
  struct lmc_worker *w = (struct lmc_worker *)arg;
  struct lmc_pool *p = w->pool;
  uint_fast64_t seen = 0, j;
  for (;;) {
    j = atomic_load(&p->job);
    atomic_store(&w->cpu, current_cpu());
    for (int i = 0; j == seen && i < SPIN_ROUNDS; i++) {
      cpu_relax(i);
      j = atomic_load(&p->job);
    }
    if (j == seen) {
      pthread_mutex_lock(&p->mu);
      atomic_fetch_add(&p->sleepers, 1);
      atomic_store(&w->cpu, -1);
      while ((j = atomic_load(&p->job)) == seen) pthread_cond_wait(&p->wake, &p->mu);
      atomic_fetch_sub(&p->sleepers, 1);
      pthread_mutex_unlock(&p->mu);
    }
    seen = j;
    if (atomic_load(&p->stop)) break;
    if (w->id >= (int)(j & 0xFFFF)) continue;
    leave_caller_cpu(p->caller_cpu);
    atomic_fetch_sub(&p->late, 1);
    run_piece(p, w->id, (int)(j & 0xFFFF));
    if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->waiting)) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
  return NULL;
}

/* Publishes a new job word (generation + 1, `pieces`) and wakes sleeping workers; returns
 * whether some were asleep. */
static int publish(struct lmc_pool *p, int pieces) {
  uint_fast64_t gen = (atomic_load(&p->job) >> 16) + 1;
  atomic_store(&p->job, gen << 16 | (uint_fast64_t)pieces);
  if (atomic_load(&p->sleepers) == 0) return 0;
  pthread_mutex_lock(&p->mu);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  return 1;
}

struct lmc_pool *lmc_pool_create(int num_threads) {
  int size = num_threads <= 0 ? lmc_num_cores() : num_threads, started = 0;
  struct lmc_pool *p;
  sigset_t all, old;
  if (size > LMC_MAX_THREADS) size = LMC_MAX_THREADS;
  if (size < 2) return NULL;
  p = (struct lmc_pool *)calloc(1, sizeof *p);
  if (!p) return NULL;
  p->threads = (pthread_t *)calloc((size_t)size, sizeof *p->threads);
  p->workers = (struct lmc_worker *)calloc((size_t)size, sizeof *p->workers);
  if (!p->threads || !p->workers || pthread_mutex_init(&p->mu, NULL) != 0) goto fail_mem;
  if (pthread_cond_init(&p->wake, NULL) != 0) goto fail_mutex;
  if (pthread_cond_init(&p->done, NULL) != 0) goto fail_wake;
  atomic_init(&p->job, 0);
  atomic_init(&p->pending, 0);
  atomic_init(&p->late, 0);
  atomic_init(&p->sleepers, 0);
  atomic_init(&p->waiting, 0);
  atomic_init(&p->busy, 0);
  atomic_init(&p->stop, 0);
  /* Workers start with every signal blocked, so signals reach the application's threads. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  for (; started < size - 1; started++) {
    p->workers[started].pool = p;
    p->workers[started].id = started + 1;
    atomic_init(&p->workers[started].cpu, -1);
    if (pthread_create(&p->threads[started], NULL, worker_main, &p->workers[started]) != 0) break;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (started == 0) goto fail_all;
  p->size = started + 1;
  return p;
fail_all:
  pthread_cond_destroy(&p->done);
fail_wake:
  pthread_cond_destroy(&p->wake);
fail_mutex:
  pthread_mutex_destroy(&p->mu);
fail_mem:
  free(p->threads);
  free(p->workers);
  free(p);
  return NULL;
}

void lmc_pool_destroy(struct lmc_pool *p) {
  if (!p) return;
  atomic_store(&p->stop, 1);
  pthread_mutex_lock(&p->mu); /* under the lock: no worker is between its check and its wait */
  atomic_store(&p->job, ((atomic_load(&p->job) >> 16) + 1) << 16);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->size - 1; i++) pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->done);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->mu);
  free(p->threads);
  free(p->workers);
  free(p);
}

void lmc_pool_let_workers_start(struct lmc_pool *p) {
  if (p && atomic_load(&p->late) > 0) sched_yield();
}

void lmc_parallel_for(struct lmc_pool *p, int64_t n, int64_t grain, lmc_task_fn fn, void *ctx) {
  int idle = 0, pieces;
  int64_t units;
  if (n <= 0 || !fn) return;
  if (grain < 1) grain = 1;
  if (!p || p->size < 2 || n <= grain || !atomic_compare_exchange_strong(&p->busy, &idle, 1)) {
    fn(ctx, 0, n);
    return;
  }
  units = (n - 1) / grain + 1;
  pieces = units < p->size ? (int)units : p->size;
  p->fn = fn;
  p->ctx = ctx;
  p->n = n;
  p->grain = grain;
  p->caller_cpu = current_cpu();
  atomic_store(&p->pending, pieces - 1);
  atomic_store(&p->late, pieces - 1);
  /* A woken worker may be queued on this CPU, and a spinning one may have been placed on it
   * (see leave_caller_cpu): yielding once lets it run and move away now instead of after this
   * thread's time slice. */
  int share = publish(p, pieces);
  for (int i = 0; i < pieces - 1 && !share; i++)
    share = p->caller_cpu >= 0 && atomic_load(&p->workers[i].cpu) == p->caller_cpu;
  if (share) sched_yield();
  run_piece(p, 0, pieces);
  for (int i = 0; atomic_load(&p->pending) != 0 && i < SPIN_ROUNDS; i++) cpu_relax(i);
  if (atomic_load(&p->pending) != 0) {
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->waiting, 1);
    while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->done, &p->mu);
    atomic_store(&p->waiting, 0);
    pthread_mutex_unlock(&p->mu);
  }
  atomic_store(&p->busy, 0);
}

#endif /* LMC_NO_THREADS */
