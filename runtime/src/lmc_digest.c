/* lmc_digest.c - lmc_digest64, the weights digest (the same function as
 * lmc.runtime.artifact.digest64). Not cryptographic: it catches corrupted, truncated or
 * swapped weights; the manifest's sha256 is the integrity record. */
#include <string.h>

#include "lmc_internal.h"

#define K0 0x9E3779B97F4A7C15ull /* position key: word i is keyed with (i + 1) * K0 */
#define M1 0xD6E8FEB86659FD93ull

static uint64_t load_le64(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

/* A bijective 64-bit mixer (xorshift-multiply). */
static inline uint64_t mix(uint64_t v) {
  v ^= v >> 32;
  v *= M1;
  v ^= v >> 32;
  v *= M1;
  v ^= v >> 32;
  return v;
}

/* The splitmix64 finalizer. */
static uint64_t fmix(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z;
}

uint64_t lmc_digest64(const uint8_t *data, uint64_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  uint64_t words = n / 8, i = 0;
  uint64_t p = K0; /* (i + 1) * K0 for the current i */
  if (!data) n = words = 0;
  /* Four independent sums: the total is a plain wrapping sum, so lanes may be split freely. */
  for (; i + 4 <= words; i += 4, p += 4 * K0) {
    const uint8_t *q = data + 8 * i;
    s0 += mix(load_le64(q) ^ p);
    s1 += mix(load_le64(q + 8) ^ (p + K0));
    s2 += mix(load_le64(q + 16) ^ (p + 2 * K0));
    s3 += mix(load_le64(q + 24) ^ (p + 3 * K0));
  }
  for (; i < words; i++, p += K0) s0 += mix(load_le64(data + 8 * i) ^ p);
  if (n % 8) {
    uint8_t tail[8] = {0};
    memcpy(tail, data + 8 * words, (size_t)(n % 8));
    s0 += mix(load_le64(tail) ^ p);
  }
  return fmix((s0 + s1 + s2 + s3) ^ n);
}
