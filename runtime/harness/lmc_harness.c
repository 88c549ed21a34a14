/* lmc_harness.c - a small command-line driver for an artifact's static library, used to run
 * cross-compiled artifacts (arm64 under qemu-aarch64) with inputs and outputs through files.
 *
 *   lmc_harness [-t THREADS] WEIGHTS JOB_DIR...
 *
 * Loads the model from WEIGHTS once, then for each JOB_DIR reads in<i>.lmct for every input
 * i, runs, and writes out<i>.lmct for every output into the same folder. Tensor files
 * (little-endian): "LMCT", u32 version (1), i32 dtype (an lmc_dtype), i32 rank, i64 dims[rank],
 * then the raw elements (row-major; bf16 as its 16 bits).
 * Exit status: 0 success; 1..7 the lmc_status of a runtime error, whose message goes to stderr
 * as "lmc_harness: [JOB_DIR: ]MESSAGE"; 64 bad usage; 65 a tensor file cannot be read or
 * written. Jobs after a failing one are not run. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmc_model.h"

#define LMCT_MAGIC "LMCT"
#define LMCT_VERSION 1u
#define MAX_RANK 64
#define EXIT_USAGE 64
#define EXIT_FILE 65

static const size_t DTYPE_SIZE[LMC_NUM_DTYPES] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1, 1, 1, 2, 4, 8};

typedef struct {
  int32_t dtype, rank;
  int64_t dims[MAX_RANK];
  void *data;
} tensor;

static int fail(int code, const char *job, const char *msg) {
  fprintf(stderr, "lmc_harness: %s%s%s\n", job ? job : "", job ? ": " : "", msg);
  return code;
}

/* Reads a tensor file; 0 on success, else a message in err. */
static int read_tensor(const char *path, tensor *t, char *err, size_t len) {
  FILE *f = fopen(path, "rb");
  char magic[4];
  uint32_t version;
  if (!f) return snprintf(err, len, "cannot open %s", path), 1;
  t->data = NULL;
  if (fread(magic, 1, 4, f) != 4 || memcmp(magic, LMCT_MAGIC, 4) != 0 ||
      fread(&version, 4, 1, f) != 1 || version != LMCT_VERSION ||
      fread(&t->dtype, 4, 1, f) != 1 || fread(&t->rank, 4, 1, f) != 1 || t->dtype < 0 ||
      t->dtype >= LMC_NUM_DTYPES || t->rank < 0 || t->rank > MAX_RANK ||
      fread(t->dims, 8, (size_t)t->rank, f) != (size_t)t->rank) {
    fclose(f);
    return snprintf(err, len, "%s is not an LMCT v1 tensor file", path), 1;
  }
  size_t n = DTYPE_SIZE[t->dtype];
  for (int k = 0; k < t->rank; k++) {
    if (t->dims[k] < 0) {
      fclose(f);
      return snprintf(err, len, "%s: negative dim", path), 1;
    }
    n *= (size_t)t->dims[k];
  }
  t->data = malloc(n ? n : 1);
  if (!t->data || fread(t->data, 1, n, f) != n) {
    fclose(f);
    free(t->data);
    t->data = NULL;
    return snprintf(err, len, "%s: truncated data (want %zu bytes)", path, n), 1;
  }
  fclose(f);
  return 0;
}

static int write_tensor(const char *path, int32_t dtype, int32_t rank, const int64_t *dims,
                        const void *data) {
  FILE *f = fopen(path, "wb");
  uint32_t version = LMCT_VERSION;
  size_t n = DTYPE_SIZE[dtype];
  int ok = f != NULL;
  for (int k = 0; k < rank; k++) n *= (size_t)dims[k];
  ok = ok && fwrite(LMCT_MAGIC, 1, 4, f) == 4 && fwrite(&version, 4, 1, f) == 1;
  ok = ok && fwrite(&dtype, 4, 1, f) == 1 && fwrite(&rank, 4, 1, f) == 1;
  ok = ok && fwrite(dims, 8, (size_t)rank, f) == (size_t)rank;
  ok = ok && (n == 0 || fwrite(data, 1, n, f) == n);
  if (f && fclose(f) != 0) ok = 0;
  return ok ? 0 : 1;
}

static int run_job(lmc_model *m, const char *job) {
  int ni = lmc_num_inputs(m), no = lmc_num_outputs(m), code = 0;
  tensor *ins = calloc((size_t)(ni > 0 ? ni : 1), sizeof(tensor));
  char path[4096], err[4608];
  if (!ins) return fail(LMC_ERR_MEMORY, job, "out of memory");
  for (int i = 0; i < ni && code == 0; i++) {
    snprintf(path, sizeof path, "%s/in%d.lmct", job, i);
    if (read_tensor(path, &ins[i], err, sizeof err)) {
      code = fail(EXIT_FILE, job, err);
      break;
    }
    lmc_status st = lmc_set_input(m, i, ins[i].data, ins[i].dims, ins[i].rank,
                                  (lmc_dtype)ins[i].dtype);
    if (st != LMC_OK) code = fail((int)st, job, lmc_last_error(m));
  }
  if (code == 0) {
    lmc_status st = lmc_run(m);
    if (st != LMC_OK) code = fail((int)st, job, lmc_last_error(m));
  }
  for (int i = 0; i < no && code == 0; i++) {
    const void *data;
    const int64_t *shape;
    int32_t rank;
    lmc_tensor_info info;
    lmc_status st = lmc_output_info(m, i, &info);
    if (st == LMC_OK) st = lmc_get_output(m, i, &data, &shape, &rank);
    if (st != LMC_OK) {
      code = fail((int)st, job, lmc_last_error(m));
      break;
    }
    snprintf(path, sizeof path, "%s/out%d.lmct", job, i);
    if (write_tensor(path, (int32_t)info.dtype, rank, shape, data)) {
      snprintf(err, sizeof err, "cannot write %s", path);
      code = fail(EXIT_FILE, job, err);
    }
  }
  for (int i = 0; i < ni; i++) free(ins[i].data);
  free(ins);
  return code;
}

int main(int argc, char **argv) {
  int threads = 1, a = 1;
  if (a + 1 < argc && strcmp(argv[a], "-t") == 0) {
    threads = atoi(argv[a + 1]);
    a += 2;
  }
  if (argc - a < 1)
    return fail(EXIT_USAGE, NULL, "usage: lmc_harness [-t THREADS] WEIGHTS JOB_DIR...");
  lmc_model *m = NULL;
  char err[1024];
  lmc_status st = lmc_model_load(argv[a], threads, &m, err, sizeof err);
  if (st != LMC_OK) return fail((int)st, NULL, err);
  int code = 0;
  for (int j = a + 1; j < argc && code == 0; j++) code = run_job(m, argv[j]);
  lmc_model_free(m);
  return code;
}
