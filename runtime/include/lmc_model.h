/* lmc_model.h - the public C API of an lmc artifact (host, arm64, wasm32).
 *
 * Typical use:
 *   lmc_model *m; char err[256];
 *   if (lmc_model_load("weights.safetensors", 0, &m, err, sizeof err) != LMC_OK) { puts(err); }
 *   lmc_set_input(m, 0, data, shape, 2, LMC_F32);
 *   if (lmc_run(m) != LMC_OK) puts(lmc_last_error(m));
 *   lmc_get_output(m, 0, &out, &out_shape, &out_rank);
 *   lmc_model_free(m);
 * Every function checks its arguments and returns an error code; none aborts on bad input.
 * One lmc_model must not be used from two threads at once; distinct models are independent.
 */
#ifndef LMC_MODEL_H
#define LMC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LMC_ABI_VERSION 1

/* The public functions stay visible when an artifact is built with -fvisibility=hidden (which
 * keeps lmc_model_definition & co. private, so two models can live in one process). */
#ifndef LMC_API
#if defined(_WIN32)
#define LMC_API
#else
#define LMC_API __attribute__((visibility("default")))
#endif
#endif

typedef enum {
  LMC_OK = 0,
  LMC_ERR_ARGUMENT = 1, /* a NULL pointer, an index out of range */
  LMC_ERR_IO = 2,       /* the weights file cannot be opened or read */
  LMC_ERR_FORMAT = 3,   /* the weights file is truncated or not this model's */
  LMC_ERR_DIGEST = 4,   /* the weights digest does not match the compiled model */
  LMC_ERR_MEMORY = 5,   /* allocation failed */
  LMC_ERR_INPUT = 6,    /* an input has the wrong dtype, rank, dims or is missing */
  LMC_ERR_INTERNAL = 7  /* a kernel reported an error */
} lmc_status;

/* Element types. The values are ABI: new types are appended, never renumbered (u16/u32/u64
 * came after bool). Element sizes in bytes: f64 8, f32 4, f16 2, bf16 2 (raw bfloat16 bits),
 * i64 8, i32 4, i16 2, i8 1, u8 1, i4 1, u4 1 (one value per byte), bool 1, u16 2, u32 4, u64 8. */
typedef enum {
  LMC_F64 = 0, LMC_F32, LMC_F16, LMC_BF16, LMC_I64, LMC_I32, LMC_I16, LMC_I8, LMC_U8,
  LMC_I4, LMC_U4, LMC_BOOL, LMC_U16, LMC_U32, LMC_U64
} lmc_dtype;
#define LMC_NUM_DTYPES 15

typedef struct lmc_model lmc_model;

/* Description of one input or output. dims[i] >= 0 is a static dim; -1 marks a symbolic dim
 * whose text (e.g. "s0" or "2*s0") is dim_text[i]; its bounds come from lmc_symbol_info. */
typedef struct {
  const char *name;
  lmc_dtype dtype;
  int32_t rank;
  const int64_t *dims;
  const char *const *dim_text;
} lmc_tensor_info;

/* Load from a weights file (mmap where available, else read). num_threads 0 = all cores.
 * Checks the file's layout, its size against the model and its digest. */
LMC_API lmc_status lmc_model_load(const char *weights_path, int num_threads,
                                  lmc_model **out, char *err, size_t err_len);
/* Load from weights bytes already in memory. The data region is used in place when it is
 * LMC_ALIGN (64) aligned in memory -- then `data` must stay alive until lmc_model_free -- and
 * copied otherwise. `err` may be NULL; on failure *out is NULL and err holds the message. */
LMC_API lmc_status lmc_model_load_memory(const void *data, size_t size, int num_threads,
                                         lmc_model **out, char *err, size_t err_len);
LMC_API void lmc_model_free(lmc_model *m);

/* Counts; -1 when m is NULL. */
LMC_API int lmc_num_inputs(const lmc_model *m);
LMC_API int lmc_num_outputs(const lmc_model *m);
LMC_API int lmc_num_symbols(const lmc_model *m);
LMC_API lmc_status lmc_input_info(const lmc_model *m, int index, lmc_tensor_info *out);
LMC_API lmc_status lmc_output_info(const lmc_model *m, int index, lmc_tensor_info *out);
/* name, lo and hi may each be NULL. */
LMC_API lmc_status lmc_symbol_info(const lmc_model *m, int index, const char **name,
                                   int64_t *lo, int64_t *hi);
LMC_API size_t lmc_arena_bytes(const lmc_model *m);

/* Bind input `index` (the caller keeps `data` alive until lmc_run returns). */
LMC_API lmc_status lmc_set_input(lmc_model *m, int index, const void *data,
                                 const int64_t *shape, int32_t rank, lmc_dtype dtype);
/* Check all inputs against the model (dtype, rank, symbol bounds, consistent symbols), run. */
LMC_API lmc_status lmc_run(lmc_model *m);
/* Output `index` of the last successful run; the buffer and shape are owned by the model and
 * stay valid until the next lmc_run or lmc_model_free. */
LMC_API lmc_status lmc_get_output(const lmc_model *m, int index, const void **data,
                                  const int64_t **shape, int32_t *rank);

/* The message of the last error on this model ("" if none; a fixed text when m is NULL). */
LMC_API const char *lmc_last_error(const lmc_model *m);
/* 0 = all cores; returns the number of threads now used (>= 1), or -1 when m is NULL. */
LMC_API int lmc_set_num_threads(lmc_model *m, int num_threads);

#ifdef __cplusplus
}
#endif
#endif /* LMC_MODEL_H */
