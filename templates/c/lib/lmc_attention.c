/* lmc_attention.c - fused scaled-dot-product attention, flash style: one task per (batch, q head,
 * block of LMC_AQ queries); keys in blocks of LMC_AK with a running max and sum per query, so
 * only one LMC_AQ x LMC_AK block of scores ever exists (in per-thread scratch). Two layouts of
 * the work: query blocks of more than LMC_AROWS rows put queries in the vector lanes (Q^T is
 * packed once per task; scores, softmax and the value product are all lane-parallel FMAs);
 * a few rows (decoding) take dot products along the head dim instead. */
#include <float.h>

#include "lmc_kern.h"

#define LMC_AQV 2                      /* query vectors per block */
#define LMC_AQ (LMC_AQV * LMC_VL)      /* queries per task */
#define LMC_AK 64                      /* keys per block (a multiple of LMC_VL) */
#define LMC_ADV 512                    /* value columns per pass (larger Dv: several passes) */
#define LMC_AROWS 4                    /* blocks up to this many queries use the row layout */
#define LMC_AJ 4                       /* keys per score step (lane layout) */
#define LMC_ADG (LMC_VL >= 16 ? 8 : 4) /* value columns per value-product step (lane layout) */

typedef struct {
  const lmc_attention_args *a;
  int64_t nqb, group;
  int lanes_fit; /* Q^T and the blocks fit the scratch */
} lmc__attn_plan;

/* Row layout: S[i][j] = scale * q_i . k_j by dot products along the head dim. */
static void lmc__attn_scores(const lmc_attention_args *a, const float *q, const float *k,
                             int64_t bq, int64_t bk, float *S) {
  int64_t D = a->D;
  for (int64_t i = 0; i < bq; i++) {
    const float *qi = q + i * a->q_ss;
    for (int64_t j = 0; j < bk; j++) {
      const float *kj = k + j * a->k_ss;
      lmc_vf acc0 = lmc_vzero(), acc1 = lmc_vzero();
      int64_t d = 0;
      for (; d + 2 * LMC_VL <= D; d += 2 * LMC_VL) {
        acc0 = lmc_vfma(lmc_vload(qi + d), lmc_vload(kj + d), acc0);
        acc1 = lmc_vfma(lmc_vload(qi + d + LMC_VL), lmc_vload(kj + d + LMC_VL), acc1);
      }
      for (; d < D; d += LMC_VL)
        acc0 = lmc_vfma(lmc_vload_n(qi + d, D - d), lmc_vload_n(kj + d, D - d), acc0);
      S[i * LMC_AK + j] = lmc_vsum(lmc_vadd(acc0, acc1)) * a->scale;
    }
  }
}

/* Row layout: mask, causal limit and the -inf padding past bk, in place on the scores. */
static void lmc__attn_mask(const lmc_attention_args *a, int64_t b, int64_t h, int64_t i0,
                           int64_t j0, int64_t bq, int64_t bk, float *S) {
  const float ninf = -__builtin_inff();
  for (int64_t i = 0; i < bq; i++) {
    float *s = S + i * LMC_AK;
    int64_t qi = i0 + i;
    if (a->mask_kind != 0) {
      int64_t off = b * a->m_sb + h * a->m_sh + qi * a->m_sq + j0 * a->m_sk;
      if (a->mask_kind == 1) {
        const uint8_t *m = (const uint8_t *)a->mask + off;
        for (int64_t j = 0; j < bk; j++) s[j] = m[j * a->m_sk] ? s[j] : ninf;
      } else {
        const float *m = (const float *)a->mask + off;
        for (int64_t j = 0; j < bk; j++) s[j] += m[j * a->m_sk];
      }
    }
    int64_t lim = a->causal ? qi + a->causal_offset - j0 + 1 : bk; /* keys j < lim are kept */
    lim = lim < 0 ? 0 : (lim > bk ? bk : lim);
    for (int64_t j = lim; j < LMC_AK; j++) s[j] = ninf;
  }
}

/* Row layout: online softmax update of one block: m, l running max / sum; O rows scaled by e^{m-m'}
 * and p = e^{s - m'} V added. */
static void lmc__attn_update(const lmc_attention_args *a, const float *v, int64_t bq,
                             int64_t bk, int64_t dv, float *S, float *m, float *l, float *O) {
  const float ninf = -__builtin_inff();
  for (int64_t i = 0; i < bq; i++) {
    float *s = S + i * LMC_AK;
    lmc_vf mx = lmc_vset1(ninf);
    for (int64_t j = 0; j < LMC_AK; j += LMC_VL) mx = lmc_vmax(mx, lmc_vload(s + j));
    float bmax = lmc_vhmax(mx);
    float mnew = bmax > m[i] ? bmax : m[i];
    if (mnew == ninf) continue; /* every key so far masked */
    float alpha = m[i] == ninf ? 0.0f : lmc_expf(m[i] - mnew);
    lmc_vf mv = lmc_vset1(mnew), sum = lmc_vzero();
    for (int64_t j = 0; j < LMC_AK; j += LMC_VL) {
      lmc_vf p = lmc_vexp(lmc_vsub(lmc_vload(s + j), mv));
      sum = lmc_vadd(sum, p);
      lmc_vstore(s + j, p);
    }
    l[i] = l[i] * alpha + lmc_vsum(sum);
    m[i] = mnew;
    float *o = O + i * LMC_ADV;
    lmc_vf al = lmc_vset1(alpha);
    for (int64_t c0 = 0; c0 < dv; c0 += 8 * LMC_VL) {
      int64_t w = lmc__min(8 * LMC_VL, dv - c0), nv = lmc__cdiv(w, LMC_VL);
      lmc_vf acc[8];
      for (int64_t t = 0; t < nv; t++)
        acc[t] = lmc_vmul(lmc_vload_n(o + c0 + t * LMC_VL, w - t * LMC_VL), al);
      for (int64_t j = 0; j < bk; j++) {
        if (s[j] == 0.0f) continue;
        lmc_vf pj = lmc_vset1(s[j]);
        const float *vj = v + j * a->v_ss + c0;
        if (w == 8 * LMC_VL)
          for (int t = 0; t < 8; t++) acc[t] = lmc_vfma(pj, lmc_vload(vj + t * LMC_VL), acc[t]);
        else
          for (int64_t t = 0; t < nv; t++)
            acc[t] = lmc_vfma(pj, lmc_vload_n(vj + t * LMC_VL, w - t * LMC_VL), acc[t]);
      }
      for (int64_t t = 0; t < nv; t++)
        lmc_vstore_n(o + c0 + t * LMC_VL, acc[t], w - t * LMC_VL);
    }
  }
}

static void lmc__attn_rows(const lmc_attention_args *a, int64_t b, int64_t h, int64_t i0,
                           int64_t bq, const float *q, const float *k, const float *v, float *out,
                           int64_t jend) {
  float *S = lmc__scratch();
  float *O = S + LMC_AQ * LMC_AK;
  float m[LMC_AROWS], l[LMC_AROWS];
  for (int64_t c0 = 0; c0 < a->Dv; c0 += LMC_ADV) {
    int64_t dv = lmc__min(LMC_ADV, a->Dv - c0);
    for (int64_t i = 0; i < bq; i++) {
      m[i] = -__builtin_inff();
      l[i] = 0.0f;
      for (int64_t c = 0; c < dv; c++) O[i * LMC_ADV + c] = 0.0f;
    }
    for (int64_t j0 = 0; j0 < jend; j0 += LMC_AK) {
      int64_t bk = lmc__min(LMC_AK, jend - j0);
      lmc__attn_scores(a, q, k + j0 * a->k_ss, bq, bk, S);
      lmc__attn_mask(a, b, h, i0, j0, bq, bk, S);
      lmc__attn_update(a, v + j0 * a->v_ss + c0, bq, bk, dv, S, m, l, O);
    }
    for (int64_t i = 0; i < bq; i++) {
      float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
      for (int64_t c = 0; c < dv; c++) out[i * a->o_ss + c0 + c] = O[i * LMC_ADV + c] * inv;
    }
  }
}

/* ---- lane layout: queries in the vector lanes ---------------------------------------------- */

/* st[j][0:AQ] = scale * k_j . Q^T[:, 0:AQ] for j < bk (LMC_AJ keys per step). */
static void lmc__attn_scores_t(const lmc_attention_args *a, const float *qt, const float *k,
                               int64_t bk, float *st) {
  lmc_vf sc = lmc_vset1(a->scale);
  for (int64_t j = 0; j < bk; j += LMC_AJ) {
    const float *kp[LMC_AJ];
    lmc_vf acc[LMC_AJ][LMC_AQV];
    for (int jj = 0; jj < LMC_AJ; jj++) {
      kp[jj] = k + lmc__min(j + jj, bk - 1) * a->k_ss; /* past bk: recomputed, not stored */
      for (int v = 0; v < LMC_AQV; v++) acc[jj][v] = lmc_vzero();
    }
    for (int64_t d = 0; d < a->D; d++) {
      lmc_vf qv[LMC_AQV];
      for (int v = 0; v < LMC_AQV; v++) qv[v] = lmc_vload(qt + d * LMC_AQ + v * LMC_VL);
      for (int jj = 0; jj < LMC_AJ; jj++) {
        lmc_vf kd = lmc_vset1(kp[jj][d]);
        for (int v = 0; v < LMC_AQV; v++) acc[jj][v] = lmc_vfma(kd, qv[v], acc[jj][v]);
      }
    }
    for (int jj = 0; jj < LMC_AJ && j + jj < bk; jj++)
      for (int v = 0; v < LMC_AQV; v++)
        lmc_vstore(st + (j + jj) * LMC_AQ + v * LMC_VL, lmc_vmul(acc[jj][v], sc));
  }
}

/* Mask and causal limit on st[j][i] (key j, query i). */
static void lmc__attn_mask_t(const lmc_attention_args *a, int64_t b, int64_t h, int64_t i0,
                             int64_t j0, int64_t bq, int64_t bk, float *st) {
  const float ninf = -__builtin_inff();
  for (int64_t j = 0; j < bk; j++) {
    float *s = st + j * LMC_AQ;
    if (a->mask_kind != 0) {
      int64_t off = b * a->m_sb + h * a->m_sh + i0 * a->m_sq + (j0 + j) * a->m_sk;
      if (a->mask_kind == 1) {
        const uint8_t *m = (const uint8_t *)a->mask + off;
        for (int64_t i = 0; i < bq; i++) s[i] = m[i * a->m_sq] ? s[i] : ninf;
      } else {
        const float *m = (const float *)a->mask + off;
        for (int64_t i = 0; i < bq; i++) s[i] += m[i * a->m_sq];
      }
    }
    if (a->causal) { /* query i keeps key j0 + j when j0 + j <= i0 + i + offset */
      int64_t lim = lmc__min(j0 + j - i0 - a->causal_offset, LMC_AQ);
      for (int64_t i = 0; i < lim; i++) s[i] = ninf;
    }
  }
}

/* ot[c][0:AQ] = ot[c] * alpha + sum_j v[j][c] * p[j][0:AQ] for c < dv (LMC_ADG columns a step). */
static void lmc__attn_pv_t(const lmc_attention_args *a, const float *v, int64_t bk, int64_t dv,
                           const float *st, const lmc_vf *alpha, float *ot) {
  for (int64_t c = 0; c < dv; c += LMC_ADG) {
    int64_t col[LMC_ADG];
    lmc_vf acc[LMC_ADG][LMC_AQV];
    for (int g = 0; g < LMC_ADG; g++) {
      col[g] = lmc__min(c + g, dv - 1); /* past dv: recomputed, not stored */
      for (int u = 0; u < LMC_AQV; u++)
        acc[g][u] = lmc_vmul(lmc_vload(ot + col[g] * LMC_AQ + u * LMC_VL), alpha[u]);
    }
    for (int64_t j = 0; j < bk; j++) {
      const float *vj = v + j * a->v_ss;
      lmc_vf p[LMC_AQV];
      for (int u = 0; u < LMC_AQV; u++) p[u] = lmc_vload(st + j * LMC_AQ + u * LMC_VL);
      for (int g = 0; g < LMC_ADG; g++) {
        lmc_vf x = lmc_vset1(vj[col[g]]);
        for (int u = 0; u < LMC_AQV; u++) acc[g][u] = lmc_vfma(x, p[u], acc[g][u]);
      }
    }
    for (int g = 0; g < LMC_ADG && c + g < dv; g++)
      for (int u = 0; u < LMC_AQV; u++) lmc_vstore(ot + (c + g) * LMC_AQ + u * LMC_VL, acc[g][u]);
  }
}

static void lmc__attn_lanes(const lmc_attention_args *a, int64_t b, int64_t h, int64_t i0,
                            int64_t bq, const float *q, const float *k, const float *v,
                            float *out, int64_t jend) {
  float *st = lmc__scratch();
  float *ot = st + LMC_AK * LMC_AQ;
  float *qt = ot + LMC_ADV * LMC_AQ;
  float lsum[LMC_AQ];
  for (int64_t i = 0; i < LMC_AQ; i++) /* Q^T, zero past bq */
    for (int64_t d = 0; d < a->D; d++) qt[d * LMC_AQ + i] = i < bq ? q[i * a->q_ss + d] : 0.0f;
  for (int64_t c0 = 0; c0 < a->Dv; c0 += LMC_ADV) {
    int64_t dv = lmc__min(LMC_ADV, a->Dv - c0);
    /* m starts at -FLT_MAX, not -inf: e^{m - m'} and e^{s - m'} stay defined (0) while every
     * key so far is masked, and l stays 0, which yields a zero row */
    lmc_vf m[LMC_AQV], l[LMC_AQV];
    for (int u = 0; u < LMC_AQV; u++) m[u] = lmc_vset1(-FLT_MAX), l[u] = lmc_vzero();
    for (int64_t x = 0; x < dv * LMC_AQ; x++) ot[x] = 0.0f;
    for (int64_t j0 = 0; j0 < jend; j0 += LMC_AK) {
      int64_t bk = lmc__min(LMC_AK, jend - j0);
      lmc__attn_scores_t(a, qt, k + j0 * a->k_ss, bk, st);
      lmc__attn_mask_t(a, b, h, i0, j0, bq, bk, st);
      lmc_vf mx[LMC_AQV], alpha[LMC_AQV], sum[LMC_AQV];
      for (int u = 0; u < LMC_AQV; u++) {
        mx[u] = m[u];
        for (int64_t j = 0; j < bk; j++)
          mx[u] = lmc_vmax(mx[u], lmc_vload(st + j * LMC_AQ + u * LMC_VL));
        alpha[u] = lmc_vexp(lmc_vsub(m[u], mx[u]));
        sum[u] = lmc_vzero();
        for (int64_t j = 0; j < bk; j++) {
          float *sj = st + j * LMC_AQ + u * LMC_VL;
          lmc_vf p = lmc_vexp(lmc_vsub(lmc_vload(sj), mx[u]));
          sum[u] = lmc_vadd(sum[u], p);
          lmc_vstore(sj, p);
        }
        l[u] = lmc_vfma(l[u], alpha[u], sum[u]);
        m[u] = mx[u];
      }
      lmc__attn_pv_t(a, v + j0 * a->v_ss + c0, bk, dv, st, alpha, ot);
    }
    for (int u = 0; u < LMC_AQV; u++) lmc_vstore(lsum + u * LMC_VL, l[u]);
    for (int64_t i = 0; i < bq; i++) {
      float inv = lsum[i] > 0.0f ? 1.0f / lsum[i] : 0.0f;
      for (int64_t c = 0; c < dv; c++) out[i * a->o_ss + c0 + c] = ot[c * LMC_AQ + i] * inv;
    }
  }
}

/* With a mask: 1 + the last key that some query of the block keeps (a causal mask given as
 * data, as HF builds it, then costs what `causal` costs). Keys past it would only add exp(-inf)
 * = 0 terms, so the result is unchanged. */
static int64_t lmc__attn_mask_end(const lmc_attention_args *a, int64_t b, int64_t h, int64_t i0,
                                  int64_t bq, int64_t jend) {
  if (a->mask_kind == 0) return jend;
  const float ninf = -__builtin_inff();
  int64_t base = b * a->m_sb + h * a->m_sh + i0 * a->m_sq;
  for (; jend > 0; jend--) {
    int64_t off = base + (jend - 1) * a->m_sk;
    if (a->mask_kind == 1) {
      const uint8_t *m = (const uint8_t *)a->mask + off;
      for (int64_t i = 0; i < bq; i++)
        if (m[i * a->m_sq]) return jend;
    } else {
      const float *m = (const float *)a->mask + off;
      for (int64_t i = 0; i < bq; i++)
        if (m[i * a->m_sq] != ninf) return jend;
    }
  }
  return 0;
}

static void lmc__attn_task(void *ctx, int64_t t0, int64_t t1) {
  const lmc__attn_plan *pl = (const lmc__attn_plan *)ctx;
  const lmc_attention_args *a = pl->a;
  for (int64_t t = t0; t < t1; t++) {
    /* zig-zag over query blocks: heavy (late, causal) and light blocks alternate */
    int64_t z = t % pl->nqb, bh = t / pl->nqb;
    int64_t qb = (z & 1) ? pl->nqb - 1 - z / 2 : z / 2;
    int64_t b = bh / a->Hq, h = bh % a->Hq, hk = h / pl->group;
    int64_t i0 = qb * LMC_AQ, bq = lmc__min(LMC_AQ, a->Sq - i0);
    const float *q = a->q + b * a->q_sb + h * a->q_sh + i0 * a->q_ss;
    const float *k = a->k + b * a->k_sb + hk * a->k_sh;
    const float *v = a->v + b * a->v_sb + hk * a->v_sh;
    float *out = a->out + b * a->o_sb + h * a->o_sh + i0 * a->o_ss;
    int64_t jend = a->Skv; /* keys any query of the block may see */
    if (a->causal) jend = lmc__max(0, lmc__min(jend, i0 + bq + a->causal_offset));
    jend = lmc__attn_mask_end(a, b, h, i0, bq, jend);
    if (bq > LMC_AROWS && pl->lanes_fit)
      lmc__attn_lanes(a, b, h, i0, bq, q, k, v, out, jend);
    else
      for (int64_t r = 0; r < bq; r += LMC_AROWS)
        lmc__attn_rows(a, b, h, i0 + r, lmc__min(LMC_AROWS, bq - r), q + r * a->q_ss, k, v,
                       out + r * a->o_ss, jend);
  }
}

void lmc_attention_f32(struct lmc_pool *pool, const lmc_attention_args *a) {
  if (a->B <= 0 || a->Hq <= 0 || a->Sq <= 0 || a->Dv <= 0) return;
  lmc__attn_plan pl;
  pl.a = a;
  pl.nqb = lmc__cdiv(a->Sq, LMC_AQ);
  pl.group = a->Hkv > 0 ? a->Hq / a->Hkv : 1;
  if (pl.group < 1) pl.group = 1;
  pl.lanes_fit = (a->D + LMC_AK + LMC_ADV) * LMC_AQ <= LMC_SCRATCH_FLOATS;
  lmc__parallel(pool, a->B * a->Hq * pl.nqb, 1, lmc__attn_task, &pl);
}
