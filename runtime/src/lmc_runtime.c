/* lmc_runtime.c - the public API of lmc_model.h on top of a generated lmc_model_definition():
 * weights loading (mmap, read, or memory), file and digest checks, buffers, input checks,
 * symbol binding and runs. No stdio: errors are codes plus messages in the model. */
#if defined(__linux__) && !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lmc_internal.h"

#if defined(__unix__) || defined(__APPLE__) || defined(__wasi__)
#define LMC_POSIX_IO 1
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#if !defined(__wasi__) && !defined(LMC_NO_MMAP)
#define LMC_USE_MMAP 1
#include <sys/mman.h>
#endif
#else
#include <stdio.h>
#endif

#define ERR_LEN 512

struct lmc_model {
  const lmc_model_def *def;
  const uint8_t *weights; /* the data region */
  void *map;              /* mmap of the whole file, or NULL */
  size_t map_len;
  uint8_t *owned;         /* aligned copy of the data region, or NULL */
  uint8_t *arena;
  void **out;
  int64_t *sym, *dim;
  int32_t *sym_in, *sym_axis; /* where each symbol was bound in the current run */
  const void **in;
  uint8_t *in_set;
  int32_t *in_off, *out_off;  /* first entry of each input/output in the shape arrays */
  int64_t *in_shape, *out_shape, *info_dims; /* info_dims: inputs then outputs */
  int32_t out_info;           /* first info_dims entry of the outputs */
  int has_output, num_threads;
  struct lmc_pool *pool;
  char err[ERR_LEN], kerr[ERR_LEN];
};

/* ---- messages: a tiny formatter (%s, %d int, %D int64, %X uint64 as 0x + 16 hex) ---------- */

typedef struct {
  char *buf;
  size_t cap, len;
} sbuf;

static void put_c(sbuf *b, char c) {
  if (b->len + 1 < b->cap) b->buf[b->len++] = c;
}

static void put_s(sbuf *b, const char *s) {
  for (s = s ? s : "(null)"; *s; s++) put_c(b, *s);
}

static void put_i64(sbuf *b, int64_t v) {
  char t[24];
  int k = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do t[k++] = (char)('0' + u % 10); while ((u /= 10) != 0);
  if (v < 0) put_c(b, '-');
  while (k) put_c(b, t[--k]);
}

static void vformat(char *buf, size_t cap, const char *f, va_list ap) {
  sbuf b = {buf, cap, 0};
  if (!buf || cap == 0) return;
  for (; *f; f++) {
    if (*f != '%' || !f[1]) {
      put_c(&b, *f);
      continue;
    }
    switch (*++f) {
      case 's': put_s(&b, va_arg(ap, const char *)); break;
      case 'd': put_i64(&b, va_arg(ap, int)); break;
      case 'D': put_i64(&b, va_arg(ap, int64_t)); break;
      case 'X': {
        uint64_t v = va_arg(ap, uint64_t);
        put_s(&b, "0x");
        for (int i = 60; i >= 0; i -= 4) put_c(&b, "0123456789abcdef"[(v >> i) & 15]);
        break;
      }
      default: put_c(&b, *f);
    }
  }
  b.buf[b.len] = 0;
}

static lmc_status fail(lmc_model *m, lmc_status code, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  vformat(m->err, sizeof m->err, f, ap);
  va_end(ap);
  return code;
}

static const char *const DTYPE_NAMES[LMC_NUM_DTYPES] = {
    "f64", "f32", "f16", "bf16", "i64", "i32", "i16", "i8",
    "u8",  "i4",  "u4",  "bool", "u16", "u32", "u64"};
static const uint8_t DTYPE_SIZES[LMC_NUM_DTYPES] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1, 1, 1, 2, 4, 8};

size_t lmc_dtype_size(int32_t dtype) {
  return dtype >= 0 && dtype < LMC_NUM_DTYPES ? DTYPE_SIZES[dtype] : 0;
}

static const char *dtype_name(int32_t dtype) {
  return dtype >= 0 && dtype < LMC_NUM_DTYPES ? DTYPE_NAMES[dtype] : "(unknown dtype)";
}

/* ---- buffers ------------------------------------------------------------------------------- */

/* LMC_ALIGN-aligned block; the malloc pointer sits just before it. */
static void *alloc_aligned(uint64_t n) {
  uint8_t *raw;
  uintptr_t p;
  if (n > (uint64_t)SIZE_MAX - 2 * LMC_ALIGN) return NULL;
  raw = (uint8_t *)malloc((size_t)n + 2 * LMC_ALIGN);
  if (!raw) return NULL;
  p = ((uintptr_t)raw + LMC_ALIGN) & ~(uintptr_t)(LMC_ALIGN - 1);
  memcpy((void *)(p - sizeof(void *)), &raw, sizeof raw);
  return (void *)p;
}

static void free_aligned(void *p) {
  void *raw;
  if (!p) return;
  memcpy(&raw, (uint8_t *)p - sizeof(void *), sizeof raw);
  free(raw);
}

static void *zalloc(size_t n, size_t size) { return calloc(n ? n : 1, size); }

void lmc_model_free(lmc_model *m) {
  if (!m) return;
  lmc_pool_destroy(m->pool);
#ifdef LMC_USE_MMAP
  if (m->map) munmap(m->map, m->map_len);
#endif
  free_aligned(m->owned);
  free_aligned(m->arena);
  if (m->out && m->def)
    for (int i = 0; i < m->def->num_outputs; i++) free_aligned(m->out[i]);
  free(m->out);
  free(m->sym);
  free(m->dim);
  free(m->sym_in);
  free(m->sym_axis);
  free((void *)m->in);
  free(m->in_set);
  free(m->in_off);
  free(m->out_off);
  free(m->in_shape);
  free(m->out_shape);
  free(m->info_dims);
  free(m);
}

/* ---- the model definition ------------------------------------------------------------------ */

static lmc_status check_io(lmc_model *m, const lmc_io_def *io, int n, const char *what) {
  const lmc_model_def *d = m->def;
  if (n < 0 || (n > 0 && !io))
    return fail(m, LMC_ERR_FORMAT, "model definition: bad %s table", what);
  for (int i = 0; i < n; i++) {
    if (!io[i].name || io[i].rank < 0 || (io[i].rank > 0 && (!io[i].dims || !io[i].dim_text)) ||
        lmc_dtype_size(io[i].dtype) == 0)
      return fail(m, LMC_ERR_FORMAT, "model definition: bad %s %d", what, i);
    for (int k = 0; k < io[i].rank; k++)
      if (io[i].dims[k] < 0 || io[i].dims[k] >= d->num_dims || !io[i].dim_text[k])
        return fail(m, LMC_ERR_FORMAT, "model definition: %s '%s' axis %d: bad dim index",
                    what, io[i].name, k);
  }
  return LMC_OK;
}

/* The generated tables are trusted to be well-formed, but a mismatch between generator and
 * runtime must not become a crash: check what the runtime indexes with. */
static lmc_status check_def(lmc_model *m) {
  const lmc_model_def *d = m->def;
  lmc_status st;
  if (!d) return fail(m, LMC_ERR_FORMAT, "lmc_model_definition() returned NULL");
  if (d->abi_version != LMC_ABI_VERSION)
    return fail(m, LMC_ERR_FORMAT, "model ABI version %d, this runtime implements %d",
                (int)d->abi_version, LMC_ABI_VERSION);
  if (d->num_symbols < 0 || d->num_dims < 0 || d->num_weights < 0 || !d->eval_dims || !d->run ||
      (d->num_symbols > 0 && (!d->symbol_names || !d->symbol_lo || !d->symbol_hi)) ||
      (d->num_dims > 0 && !d->dim_table) || (d->num_weights > 0 && !d->weights) ||
      (d->num_outputs > 0 && !d->output_capacity))
    return fail(m, LMC_ERR_FORMAT, "model definition: missing tables");
  for (int j = 0; j < d->num_dims; j++)
    if (d->dim_table[j].sym >= d->num_symbols)
      return fail(m, LMC_ERR_FORMAT, "model definition: dim %d names symbol %d of %d", j,
                  d->dim_table[j].sym, d->num_symbols);
  if ((st = check_io(m, d->inputs, d->num_inputs, "input")) != LMC_OK) return st;
  if ((st = check_io(m, d->outputs, d->num_outputs, "output")) != LMC_OK) return st;
  for (int w = 0; w < d->num_weights; w++) {
    const lmc_weight_def *e = &d->weights[w];
    if (e->offset % LMC_ALIGN || e->offset > d->weights_bytes ||
        e->nbytes > d->weights_bytes - e->offset)
      return fail(m, LMC_ERR_FORMAT, "model definition: weight '%s' lies outside the data region",
                  e->key);
  }
  return LMC_OK;
}

/* off[i] = the first shape-array entry of io[i]; returns the total rank. */
static int32_t io_offsets(const lmc_io_def *io, int n, int32_t *off) {
  int32_t total = 0;
  for (int i = 0; i < n; i++) {
    off[i] = total;
    total += io[i].rank;
  }
  return total;
}

static lmc_status alloc_buffers(lmc_model *m, int num_threads) {
  const lmc_model_def *d = m->def;
  int ni = d->num_inputs, no = d->num_outputs, k = 0;
  int32_t in_total, out_total;
  m->in_off = (int32_t *)zalloc((size_t)ni, sizeof(int32_t));
  m->out_off = (int32_t *)zalloc((size_t)no, sizeof(int32_t));
  if (!m->in_off || !m->out_off) return fail(m, LMC_ERR_MEMORY, "out of memory");
  in_total = io_offsets(d->inputs, ni, m->in_off);
  out_total = io_offsets(d->outputs, no, m->out_off);
  m->out_info = in_total;
  m->sym = (int64_t *)zalloc((size_t)d->num_symbols, sizeof(int64_t));
  m->sym_in = (int32_t *)zalloc((size_t)d->num_symbols, sizeof(int32_t));
  m->sym_axis = (int32_t *)zalloc((size_t)d->num_symbols, sizeof(int32_t));
  m->dim = (int64_t *)zalloc((size_t)d->num_dims, sizeof(int64_t));
  m->in = (const void **)zalloc((size_t)ni, sizeof(void *));
  m->in_set = (uint8_t *)zalloc((size_t)ni, 1);
  m->out = (void **)zalloc((size_t)no, sizeof(void *));
  m->in_shape = (int64_t *)zalloc((size_t)in_total, sizeof(int64_t));
  m->out_shape = (int64_t *)zalloc((size_t)out_total, sizeof(int64_t));
  m->info_dims = (int64_t *)zalloc((size_t)(in_total + out_total), sizeof(int64_t));
  if (!m->sym || !m->sym_in || !m->sym_axis || !m->dim || !m->in || !m->in_set || !m->out ||
      !m->in_shape || !m->out_shape || !m->info_dims)
    return fail(m, LMC_ERR_MEMORY, "out of memory");
  for (int i = 0; i < ni + no; i++) {
    const lmc_io_def *io = i < ni ? &d->inputs[i] : &d->outputs[i - ni];
    for (int a = 0; a < io->rank; a++) m->info_dims[k++] = d->dim_table[io->dims[a]].value;
  }
  if (!(m->arena = (uint8_t *)alloc_aligned(d->arena_bytes)))
    return fail(m, LMC_ERR_MEMORY, "out of memory: arena of %D bytes", (int64_t)d->arena_bytes);
  for (int i = 0; i < no; i++)
    if (!(m->out[i] = alloc_aligned(d->output_capacity[i])))
      return fail(m, LMC_ERR_MEMORY, "out of memory: output '%s' of %D bytes", d->outputs[i].name,
                  (int64_t)d->output_capacity[i]);
  m->pool = lmc_pool_create(num_threads);
  m->num_threads = lmc_pool_size(m->pool);
  return LMC_OK;
}

/* ---- loading ------------------------------------------------------------------------------- */

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* Checks the safetensors framing of a file of `size` bytes whose first 9 bytes (or fewer, when
 * the file is shorter) are `head`; sets *data_off to the start of the data region. */
static lmc_status check_frame(lmc_model *m, const uint8_t *head, uint64_t size,
                              uint64_t *data_off) {
  uint64_t n, want = m->def->weights_bytes;
  if (size < 9)
    return fail(m, LMC_ERR_FORMAT, "weights file is %D bytes: too short", (int64_t)size);
  n = le64(head);
  if (n > size - 8)
    return fail(m, LMC_ERR_FORMAT, "weights header claims %D bytes but the file has %D "
                "(truncated, or not a safetensors file)", (int64_t)n, (int64_t)size);
  if (head[8] != '{') return fail(m, LMC_ERR_FORMAT, "not a safetensors file (no JSON header)");
  if ((8 + n) % LMC_ALIGN)
    return fail(m, LMC_ERR_FORMAT, "weights data region starts at byte %D, not %d-aligned "
                "(not written by lmc)", (int64_t)(8 + n), LMC_ALIGN);
  if (size - 8 - n != want)
    return fail(m, LMC_ERR_FORMAT, "weights data region is %D bytes, the model expects %D "
                "(truncated, or the weights of another model)", (int64_t)(size - 8 - n),
                (int64_t)want);
  *data_off = 8 + n;
  return LMC_OK;
}

static lmc_status check_digest(lmc_model *m) {
  uint64_t got = lmc_digest64(m->weights, m->def->weights_bytes), want = m->def->weights_digest;
  if (got != want)
    return fail(m, LMC_ERR_DIGEST, "weights digest mismatch: the model expects %X, the file has %X "
                "(modified, or the weights of another build)", want, got);
  return LMC_OK;
}

static void copy_msg(char *err, size_t err_len, const char *msg) {
  size_t n = strlen(msg);
  if (!err || err_len == 0) return;
  n = n < err_len - 1 ? n : err_len - 1;
  memcpy(err, msg, n);
  err[n] = 0;
}

static lmc_status begin_load(lmc_model **out, char *err, size_t err_len, lmc_model **m) {
  copy_msg(err, err_len, "");
  if (!out) {
    copy_msg(err, err_len, "lmc_model_load: out is NULL");
    return LMC_ERR_ARGUMENT;
  }
  *out = NULL;
  *m = (lmc_model *)calloc(1, sizeof **m);
  if (!*m) {
    copy_msg(err, err_len, "out of memory");
    return LMC_ERR_MEMORY;
  }
  (*m)->def = lmc_model_definition();
  return check_def(*m);
}

/* Runs the checks common to both loaders once the data region is in m->weights. */
static lmc_status end_load(lmc_model *m, lmc_status st, int num_threads, lmc_model **out,
                           char *err, size_t err_len) {
  if (st == LMC_OK) st = check_digest(m);
  if (st == LMC_OK) st = alloc_buffers(m, num_threads);
  if (st != LMC_OK) {
    copy_msg(err, err_len, m->err);
    lmc_model_free(m);
    return st;
  }
  m->err[0] = 0;
  *out = m;
  return LMC_OK;
}

lmc_status lmc_model_load_memory(const void *data, size_t size, int num_threads, lmc_model **out,
                                 char *err, size_t err_len) {
  lmc_model *m = NULL;
  uint64_t off = 0;
  lmc_status st = begin_load(out, err, err_len, &m);
  if (!m) return st;
  if (st == LMC_OK && !data) st = fail(m, LMC_ERR_ARGUMENT, "lmc_model_load_memory: data is NULL");
  if (st == LMC_OK) st = check_frame(m, (const uint8_t *)data, size, &off);
  if (st == LMC_OK) {
    const uint8_t *region = (const uint8_t *)data + off;
    if ((uintptr_t)region % LMC_ALIGN == 0) {
      m->weights = region;
    } else if ((m->owned = (uint8_t *)alloc_aligned(m->def->weights_bytes)) != NULL) {
      memcpy(m->owned, region, (size_t)m->def->weights_bytes);
      m->weights = m->owned;
    } else {
      st = fail(m, LMC_ERR_MEMORY, "out of memory copying %D bytes of weights",
                (int64_t)m->def->weights_bytes);
    }
  }
  return end_load(m, st, num_threads, out, err, err_len);
}

#ifdef LMC_POSIX_IO
static int read_full(int fd, uint8_t *p, uint64_t n) {
  while (n > 0) {
    size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : (size_t)n;
    ssize_t r = read(fd, p, chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (uint64_t)r;
  }
  return 0;
}

static lmc_status load_fd(lmc_model *m, int fd, const char *path) {
  struct stat stt;
  uint8_t head[9] = {0};
  uint64_t size, off = 0;
  lmc_status st;
  if (fstat(fd, &stt) != 0 || !S_ISREG(stt.st_mode))
    return fail(m, LMC_ERR_IO, "cannot read '%s': not a regular file", path);
  size = (uint64_t)stt.st_size;
#ifdef LMC_USE_MMAP
  if (size >= 9 && size <= SIZE_MAX) {
    void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      m->map = p;
      m->map_len = (size_t)size;
      st = check_frame(m, (const uint8_t *)p, size, &off);
      m->weights = (const uint8_t *)p + off;
      return st;
    }
  }
#endif
  if (read_full(fd, head, size < 9 ? size : 9) != 0)
    return fail(m, LMC_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
  if ((st = check_frame(m, head, size, &off)) != LMC_OK) return st;
  if (!(m->owned = (uint8_t *)alloc_aligned(m->def->weights_bytes)))
    return fail(m, LMC_ERR_MEMORY, "out of memory reading %D bytes of weights",
                (int64_t)m->def->weights_bytes);
  if (lseek(fd, (off_t)off, SEEK_SET) != (off_t)off ||
      read_full(fd, m->owned, m->def->weights_bytes) != 0)
    return fail(m, LMC_ERR_IO, "cannot read '%s': short read", path);
  m->weights = m->owned;
  return LMC_OK;
}
#endif

lmc_status lmc_model_load(const char *path, int num_threads, lmc_model **out, char *err,
                          size_t err_len) {
  lmc_model *m = NULL;
  lmc_status st = begin_load(out, err, err_len, &m);
  if (!m) return st;
  if (st == LMC_OK && !path) st = fail(m, LMC_ERR_ARGUMENT, "lmc_model_load: path is NULL");
  if (st == LMC_OK) {
#ifdef LMC_POSIX_IO
    int fd;
    do fd = open(path, O_RDONLY); while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      st = fail(m, LMC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    } else {
      st = load_fd(m, fd, path);
      close(fd);
    }
#else
    FILE *f = fopen(path, "rb");
    long size = -1;
    uint64_t off = 0;
    uint8_t head[9] = {0};
    if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
      st = fail(m, LMC_ERR_IO, "cannot open '%s'", path);
    else if (fread(head, 1, size < 9 ? (size_t)size : 9, f) != (size < 9 ? (size_t)size : 9))
      st = fail(m, LMC_ERR_IO, "cannot read '%s'", path);
    else if ((st = check_frame(m, head, (uint64_t)size, &off)) == LMC_OK) {
      if (!(m->owned = (uint8_t *)alloc_aligned(m->def->weights_bytes)))
        st = fail(m, LMC_ERR_MEMORY, "out of memory reading weights");
      else if (fseek(f, (long)off, SEEK_SET) != 0 ||
               fread(m->owned, 1, (size_t)m->def->weights_bytes, f) != m->def->weights_bytes)
        st = fail(m, LMC_ERR_IO, "cannot read '%s': short read", path);
      m->weights = m->owned;
    }
    if (f) fclose(f);
#endif
  }
  return end_load(m, st, num_threads, out, err, err_len);
}

/* ---- queries ------------------------------------------------------------------------------- */

int lmc_num_inputs(const lmc_model *m) { return m ? m->def->num_inputs : -1; }
int lmc_num_outputs(const lmc_model *m) { return m ? m->def->num_outputs : -1; }
int lmc_num_symbols(const lmc_model *m) { return m ? m->def->num_symbols : -1; }
size_t lmc_arena_bytes(const lmc_model *m) { return m ? (size_t)m->def->arena_bytes : 0; }

const char *lmc_last_error(const lmc_model *m) {
  return m ? m->err : "lmc: the model pointer is NULL";
}

int lmc_set_num_threads(lmc_model *m, int num_threads) {
  if (!m) return -1;
  lmc_pool_destroy(m->pool);
  m->pool = lmc_pool_create(num_threads);
  m->num_threads = lmc_pool_size(m->pool);
  return m->num_threads;
}

static lmc_status io_info(const lmc_model *cm, int index, lmc_tensor_info *out, int is_out) {
  lmc_model *m = (lmc_model *)cm; /* only m->err is written */
  int n;
  const lmc_io_def *io;
  if (!m) return LMC_ERR_ARGUMENT;
  n = is_out ? m->def->num_outputs : m->def->num_inputs;
  if (!out) return fail(m, LMC_ERR_ARGUMENT, "tensor info: out is NULL");
  if (index < 0 || index >= n)
    return fail(m, LMC_ERR_ARGUMENT, "%s index %d out of range (the model has %d)",
                is_out ? "output" : "input", index, n);
  io = is_out ? &m->def->outputs[index] : &m->def->inputs[index];
  out->name = io->name;
  out->dtype = (lmc_dtype)io->dtype;
  out->rank = io->rank;
  out->dims = m->info_dims + (is_out ? m->out_info + m->out_off[index] : m->in_off[index]);
  out->dim_text = io->dim_text;
  return LMC_OK;
}

lmc_status lmc_input_info(const lmc_model *m, int index, lmc_tensor_info *out) {
  return io_info(m, index, out, 0);
}

lmc_status lmc_output_info(const lmc_model *m, int index, lmc_tensor_info *out) {
  return io_info(m, index, out, 1);
}

lmc_status lmc_symbol_info(const lmc_model *cm, int index, const char **name, int64_t *lo,
                           int64_t *hi) {
  lmc_model *m = (lmc_model *)cm;
  if (!m) return LMC_ERR_ARGUMENT;
  if (index < 0 || index >= m->def->num_symbols)
    return fail(m, LMC_ERR_ARGUMENT, "symbol index %d out of range (the model has %d)", index,
                m->def->num_symbols);
  if (name) *name = m->def->symbol_names[index];
  if (lo) *lo = m->def->symbol_lo[index];
  if (hi) *hi = m->def->symbol_hi[index];
  return LMC_OK;
}

/* ---- inputs and runs ----------------------------------------------------------------------- */

lmc_status lmc_set_input(lmc_model *m, int index, const void *data, const int64_t *shape,
                         int32_t rank, lmc_dtype dtype) {
  const lmc_model_def *d;
  const lmc_io_def *io;
  int64_t *dst;
  if (!m) return LMC_ERR_ARGUMENT;
  d = m->def;
  m->err[0] = 0;
  if (index < 0 || index >= d->num_inputs)
    return fail(m, LMC_ERR_ARGUMENT, "input index %d out of range (the model has %d inputs)",
                index, d->num_inputs);
  io = &d->inputs[index];
  m->in_set[index] = 0;
  if (rank > 0 && !shape) return fail(m, LMC_ERR_ARGUMENT, "input '%s': shape is NULL", io->name);
  if ((int32_t)dtype != io->dtype)
    return fail(m, LMC_ERR_INPUT, "input '%s': dtype %s, expected %s", io->name,
                dtype_name((int32_t)dtype), dtype_name(io->dtype));
  if (rank != io->rank)
    return fail(m, LMC_ERR_INPUT, "input '%s': rank %d, expected %d", io->name, (int)rank,
                (int)io->rank);
  for (int k = 0; k < rank; k++) {
    const lmc_dim_def *e = &d->dim_table[io->dims[k]];
    int64_t v = shape[k];
    if (v < 0) return fail(m, LMC_ERR_INPUT, "input '%s' axis %d: negative dim %D", io->name, k, v);
    if (e->value >= 0 && v != e->value)
      return fail(m, LMC_ERR_INPUT, "input '%s' axis %d: expected %D, got %D", io->name, k,
                  e->value, v);
    if (e->value < 0 && e->sym >= 0) {
      int64_t lo = d->symbol_lo[e->sym], hi = d->symbol_hi[e->sym];
      if (v < lo || v > hi)
        return fail(m, LMC_ERR_INPUT, "input '%s' axis %d (%s): %D is outside %s's bounds %D..%D",
                    io->name, k, io->dim_text[k], v, d->symbol_names[e->sym], lo, hi);
    }
  }
  dst = m->in_shape + m->in_off[index];
  for (int k = 0; k < rank; k++) dst[k] = shape[k];
  m->in[index] = data;
  m->in_set[index] = 1;
  return LMC_OK;
}

/* Binds every symbol from the input dims that are exactly that symbol. */
static lmc_status bind_symbols(lmc_model *m) {
  const lmc_model_def *d = m->def;
  for (int s = 0; s < d->num_symbols; s++) m->sym_in[s] = -1;
  for (int i = 0; i < d->num_inputs; i++) {
    const lmc_io_def *io = &d->inputs[i];
    const int64_t *shape = m->in_shape + m->in_off[i];
    for (int k = 0; k < io->rank; k++) {
      const lmc_dim_def *e = &d->dim_table[io->dims[k]];
      int s = e->sym;
      if (e->value >= 0 || s < 0) continue;
      if (m->sym_in[s] < 0) {
        m->sym[s] = shape[k];
        m->sym_in[s] = i;
        m->sym_axis[s] = k;
      } else if (m->sym[s] != shape[k]) {
        return fail(m, LMC_ERR_INPUT, "input '%s' axis %d (%s): got %D, but input '%s' axis %d "
                    "gave %s = %D", io->name, k, io->dim_text[k], shape[k],
                    d->inputs[m->sym_in[s]].name, m->sym_axis[s], d->symbol_names[s], m->sym[s]);
      }
    }
  }
  for (int s = 0; s < d->num_symbols; s++)
    if (m->sym_in[s] < 0)
      return fail(m, LMC_ERR_INPUT, "symbol %s is not the whole of any input dim, so no input "
                  "binds it", d->symbol_names[s]);
  return LMC_OK;
}

/* Bytes of a tensor of `rank` dims of dtype, or -1 on overflow. */
static int64_t tensor_bytes(const int64_t *shape, int32_t rank, int32_t dtype) {
  uint64_t n = lmc_dtype_size(dtype);
  for (int k = 0; k < rank; k++) {
    if (shape[k] < 0) return -1;
    if (shape[k] != 0 && n > (uint64_t)INT64_MAX / (uint64_t)shape[k]) return -1;
    n *= (uint64_t)shape[k];
  }
  return (int64_t)n;
}

static lmc_status check_inputs(lmc_model *m) {
  const lmc_model_def *d = m->def;
  lmc_status st;
  for (int i = 0; i < d->num_inputs; i++)
    if (!m->in_set[i])
      return fail(m, LMC_ERR_INPUT, "input '%s' (index %d) is not set", d->inputs[i].name, i);
  if ((st = bind_symbols(m)) != LMC_OK) return st;
  d->eval_dims(m->sym, m->dim);
  for (int i = 0; i < d->num_inputs; i++) {
    const lmc_io_def *io = &d->inputs[i];
    const int64_t *shape = m->in_shape + m->in_off[i];
    int64_t bytes;
    for (int k = 0; k < io->rank; k++)
      if (shape[k] != m->dim[io->dims[k]])
        return fail(m, LMC_ERR_INPUT, "input '%s' axis %d (%s): expected %D from the bound "
                    "symbols, got %D", io->name, k, io->dim_text[k], m->dim[io->dims[k]],
                    shape[k]);
    bytes = tensor_bytes(shape, io->rank, io->dtype);
    if (bytes < 0) return fail(m, LMC_ERR_INPUT, "input '%s': size overflows", io->name);
    if (bytes > 0 && !m->in[i])
      return fail(m, LMC_ERR_ARGUMENT, "input '%s': data is NULL", io->name);
  }
  return LMC_OK;
}

lmc_status lmc_run(lmc_model *m) {
  const lmc_model_def *d;
  lmc_status st;
  lmc_exec ex;
  int rc;
  if (!m) return LMC_ERR_ARGUMENT;
  d = m->def;
  m->err[0] = 0;
  m->has_output = 0;
  if ((st = check_inputs(m)) != LMC_OK) return st;
  for (int i = 0; i < d->num_outputs; i++) {
    const lmc_io_def *io = &d->outputs[i];
    int64_t *shape = m->out_shape + m->out_off[i], bytes;
    for (int k = 0; k < io->rank; k++) shape[k] = m->dim[io->dims[k]];
    bytes = tensor_bytes(shape, io->rank, io->dtype);
    if (bytes < 0 || (uint64_t)bytes > d->output_capacity[i])
      return fail(m, LMC_ERR_INTERNAL, "output '%s' needs %D bytes, more than its capacity %D "
                  "(model definition inconsistent)", io->name, bytes,
                  (int64_t)d->output_capacity[i]);
  }
  ex.sym = m->sym;
  ex.dim = m->dim;
  ex.in = m->in;
  ex.out = m->out;
  ex.arena = m->arena;
  ex.weights = m->weights;
  ex.pool = m->pool;
  ex.err = m->kerr;
  ex.err_len = sizeof m->kerr;
  m->kerr[0] = 0;
  rc = d->run(&ex);
  if (rc != 0) {
    m->kerr[sizeof m->kerr - 1] = 0;
    return fail(m, LMC_ERR_INTERNAL, "kernel error %d: %s", rc,
                m->kerr[0] ? m->kerr : "(no message)");
  }
  m->has_output = 1;
  return LMC_OK;
}

lmc_status lmc_get_output(const lmc_model *cm, int index, const void **data,
                          const int64_t **shape, int32_t *rank) {
  lmc_model *m = (lmc_model *)cm; /* only m->err is written */
  if (!m) return LMC_ERR_ARGUMENT;
  if (index < 0 || index >= m->def->num_outputs)
    return fail(m, LMC_ERR_ARGUMENT, "output index %d out of range (the model has %d outputs)",
                index, m->def->num_outputs);
  if (!m->has_output)
    return fail(m, LMC_ERR_ARGUMENT, "no output: the last lmc_run failed or none ran yet");
  if (data) *data = m->out[index];
  if (shape) *shape = m->out_shape + m->out_off[index];
  if (rank) *rank = m->def->outputs[index].rank;
  return LMC_OK;
}
