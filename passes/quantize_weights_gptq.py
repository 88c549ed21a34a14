"""GPTQ weight quantization (Frantar et al., ICLR 2023): float linears -> linear_w4 /
linear_w8 with codes chosen to minimize the layer's output error on calibration data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.errors import LmcError
from ..ir.graph import Graph
from .calibration import record
from .manager import PassContext, Prop, graph_pass
from .quant_layers import (
    Grid,
    QuantWeight,
    emit_weight_only,
    find_sites,
    hessian_error,
    record_layer,
    remember_float,
    weight_sqnr_db,
)
from .quant_spec import spec_option

BLOCK = 128  # columns per lazy batch update
MAX_DAMP_TRIES = 8  # damping grows 10x per failed Cholesky


class GptqError(LmcError):
    """GPTQ could not factor a layer's Hessian even with heavy damping."""


@dataclass
class GptqInfo:
    damp: float  # the damping added to H's diagonal (absolute)
    damp_retries: int  # Cholesky failures before it succeeded
    dead_inputs: int  # input columns never active in calibration


def tril_inverse(lower: np.ndarray) -> np.ndarray:
    """The inverse of a lower-triangular matrix by 2x2 blocks (GEMM work, n³/3 flops):
    [[A, 0], [B, C]]⁻¹ = [[A⁻¹, 0], [-C⁻¹ B A⁻¹, C⁻¹]]."""
    n = lower.shape[0]
    if n <= 128:
        return np.tril(np.linalg.inv(lower))
    k = n // 2
    a_inv = tril_inverse(lower[:k, :k])
    c_inv = tril_inverse(lower[k:, k:])
    out = np.zeros_like(lower)
    out[:k, :k] = a_inv
    out[k:, k:] = c_inv
    out[k:, :k] = -(c_inv @ (lower[k:, :k] @ a_inv))
    return out


def inverse_cholesky(h: np.ndarray, damp_frac: float, name: str) -> tuple[np.ndarray, float, int]:
    """U upper with H⁻¹ = UᵀU, for H + λI, λ = damp_frac · mean(diag H).

    Fallback: while a factorization fails (H singular or ill-conditioned in float64), λ grows
    tenfold, up to MAX_DAMP_TRIES times; the final λ and the retries are reported in stats."""
    n = h.shape[0]
    lam = damp_frac * float(np.mean(np.diag(h)))
    if not lam > 0:
        lam = damp_frac
    for tries in range(MAX_DAMP_TRIES):
        try:
            hd = h + lam * np.eye(n)
            # Flip trick: with J the reversal, chol(J H J) = L gives H⁻¹ = UᵀU for
            # U = J L⁻¹ J (upper); one factorization and one triangular inverse.
            rev = np.ascontiguousarray(hd[::-1, ::-1])
            lower = np.linalg.cholesky(rev)
            linv = tril_inverse(lower)
            u = np.ascontiguousarray(linv[::-1, ::-1])
            if not np.all(np.isfinite(u)) or np.any(np.diag(u) <= 0):
                raise np.linalg.LinAlgError("non-finite inverse factor")
            return np.triu(u), lam, tries
        except np.linalg.LinAlgError:
            lam *= 10.0
    raise GptqError(
        f"quantize_weights_gptq: layer {name!r}: Hessian not positive definite even with "
        f"damping {lam / 10:.3g} after {MAX_DAMP_TRIES} tries"
    )


def gptq(
    w: np.ndarray,
    h: np.ndarray,
    grid: Grid,
    group: int,
    act_order: bool = False,
    damp: float = 0.01,
    name: str = "",
) -> tuple[QuantWeight, GptqInfo]:
    """Quantize w [out, in] column by column, spreading each column's rounding error over the
    columns not yet quantized through the inverse Hessian's Cholesky factor.

    Groups (of `group` input columns; 0: whole rows) take their grid when their first
    column comes up, from the already-compensated weights. With act_order columns go in
    decreasing diag(H) order and the group grids are fixed up front on the original weights
    in the original column order ("static groups"), so inference needs no permutation."""
    w = w.astype(np.float64).copy()
    h = h.astype(np.float64).copy()
    n = w.shape[1]
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    n_groups = 1 if group == 0 else -(-n // group)
    scales = np.zeros((w.shape[0], n_groups))
    zeros = np.zeros((w.shape[0], n_groups))
    static = act_order or group == 0
    if static:  # grids fixed before any update
        for gi in range(n_groups):
            sl = slice(0, n) if group == 0 else slice(gi * group, min((gi + 1) * group, n))
            scales[:, gi], zeros[:, gi] = grid.params(w[:, sl], np.diag(h)[sl])
    perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(n)
    w = w[:, perm]
    h = h[np.ix_(perm, perm)]
    u, lam, tries = inverse_cholesky(h, damp, name)
    gidx = np.zeros(n, np.int64) if group == 0 else perm // group
    codes = np.zeros(w.shape)
    hdiag = np.diag(h).copy()
    # Blocks hold whole groups, so a group's grid is taken from compensated columns.
    block = BLOCK if static else max(BLOCK // group, 1) * group
    for i1 in range(0, n, block):
        i2 = min(i1 + block, n)
        w1 = w[:, i1:i2].copy()
        e1 = np.zeros_like(w1)
        u1 = u[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if not static and col % group == 0:
                sc, ze = grid.params(w1[:, i : i + group], hdiag[col : col + group])
                scales[:, col // group], zeros[:, col // group] = sc, ze
            s, z = scales[:, gidx[col]], zeros[:, gidx[col]]
            q = grid.codes(w1[:, i], s, z)
            codes[:, col] = q
            err = (w1[:, i] - (q - z) * s) / u1[i, i]
            w1[:, i:] -= np.outer(err, u1[i, i:])
            e1[:, i] = err
        w[:, i2:] -= e1 @ u[i1:i2, i2:]
    inv = np.argsort(perm)
    qw = QuantWeight(
        codes[:, inv].astype(np.uint8),
        scales.astype(np.float32),
        zeros.astype(np.uint8),
        grid,
        group,
    )
    return qw, GptqInfo(lam, tries, int(dead.sum()))


@graph_pass(ensures={Prop.TYPED, Prop.QUANTIZED}, tolerance=(0.25, 0.25))
def quantize_weights_gptq(g: Graph, ctx: PassContext) -> Graph:
    """Replace each float linear with a stored weight (minus the spec's skip globs) by
    linear_w4 / linear_w8 whose codes GPTQ chose from the layer's calibration Hessian
    H = 2XᵀX/n (options["quantize"], default w4-gptq-g128; damping 0.1·mean(diag H), which
    regularizes Hessians from small calibration sets; for W4 each group's grid comes from a
    clip-ratio search minimizing Σ diag(H)_j·(w_j - ŵ_j)² on the compensated weights; dead
    inputs zeroed, blocks of 128 columns with lazy updates). Approximate like
    round-to-nearest, with a lower output error per layer. Needs ctx.calibration."""
    spec = spec_option(ctx.options, "w4-gptq-g128")
    grid = Grid(spec.bits, spec.sym, spec.clip)
    sites = find_sites(g, spec, ctx)
    cal = record(g, ctx, hessians=True, what="quantize_weights_gptq", keys=[s.name for s in sites])
    for site in sites:
        inp = cal.inputs[site.name]
        qw, info = gptq(
            site.weight, inp.hessian, grid, spec.group, spec.act_order, spec.damp, site.name
        )
        wq = qw.dequant()
        node = emit_weight_only(g, site, qw)
        numbers = {
            "kind": f"w{spec.bits}",
            "method": "gptq",
            "group": spec.group,
            "sym": spec.sym,
            "clip": spec.clip,
            "act_order": spec.act_order,
            "weight_sqnr_db": weight_sqnr_db(site.weight, wq),
            "damp": info.damp,
            "damp_retries": info.damp_retries,
            "dead_inputs": info.dead_inputs,
        }
        numbers.update(hessian_error(site.weight, wq, inp))
        record_layer(ctx, site.name, numbers)
        remember_float(ctx, site, node.inputs[1].node.op.key)
        if info.damp_retries:
            ctx.stat("damping_increased", 1)
    ctx.stat("quantized", len(sites))
    return g
