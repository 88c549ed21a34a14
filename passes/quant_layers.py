"""Shared pieces of the quantization passes: the linears they rewrite (sites), integer grids,
building quantized linear nodes, per-layer error statistics, and the float originals the
mixed-precision step restores."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir.graph import Graph, Node, Value
from ..ir.op import Op
from ..ir.ops.linalg import Linear
from ..ir.ops.quant import LinearW4, LinearW8, dequant_weight, pack_int4
from ..ir.ops.source import Param
from .calibration import Calibration, LinearInput, linear_nodes
from .manager import PassContext
from .quant_spec import QuantSpec


@dataclass
class Site:
    """One float linear a pass may quantize: `linear(x, W[, b])` or `matmul(x, W[in, out])`."""

    name: str
    node: Node
    key: str
    weight: np.ndarray  # float32 [out, in] (transposed from a matmul's [in, out])
    transposed: bool

    @property
    def x(self) -> Value:
        return self.node.inputs[0]

    @property
    def bias(self) -> Value | None:
        return self.node.inputs[2] if len(self.node.inputs) > 2 else None


def find_sites(g: Graph, spec: QuantSpec, ctx: PassContext) -> list[Site]:
    """The float linears with a stored weight, minus those the spec's skip globs name (which
    are recorded as `skipped` in the pass stats, never dropped silently)."""
    sites, skipped = [], []
    for name, n in linear_nodes(g).items():
        if n.op.name not in ("linear", "matmul"):
            continue  # already quantized
        key = n.inputs[1].node.op.key
        w = g.weights.get(key)
        if not isinstance(w, np.ndarray) or w.dtype.kind != "f":
            record_layer(ctx, name, {"kind": "float", "reason": "weight not a stored float array"})
            continue
        if spec.skips(key):
            skipped.append(name)
            record_layer(ctx, name, {"kind": "float", "reason": f"skip={'|'.join(spec.skip)}"})
            continue
        transposed = n.op.name == "matmul"
        arr = (w.T if transposed else w).astype(np.float32)
        sites.append(Site(name, n, key, arr, transposed))
    if skipped:
        ctx.stat("skipped", skipped, add=False)
    return sites


# -- integer grids ---------------------------------------------------------------------------
CLIP_RATIOS = tuple(1.0 - 0.025 * i for i in range(17))  # 1.0 down to 0.6


@dataclass(frozen=True)
class Grid:
    """b-bit codes 0..2^b - 1 with a zero point: w ≈ (code - zero) * scale. Symmetric grids
    use zero = 2^(b-1) and scale = max|w| / (2^(b-1) - 1); asymmetric ones min/max with 0 in
    range, scale = (max - min) / (2^b - 1), zero = round(-min / scale)."""

    bits: int
    sym: bool
    clip: bool = False  # search a per-row clip ratio minimizing the rounding error (MSE)

    @property
    def maxq(self) -> int:
        return 2**self.bits - 1

    @property
    def mid(self) -> int:
        return 2 ** (self.bits - 1)

    def params(
        self, w: np.ndarray, importance: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-row (scale, zero) for the columns `w` [out, k], as float64; scales are rounded
        to f32 (what the op stores) so codes are chosen against the stored grid.

        With `clip` the range is shrunk by the ratio in CLIP_RATIOS (per row) that gives the
        smallest rounding error Σ_j importance_j·(w_j - ŵ_j)² (importance: per column, e.g.
        diag(H); default 1), the clipping search of AWQ / OmniQuant-style quantizers."""
        if not self.clip:
            return self._params(w, 1.0)
        imp = np.ones(w.shape[1]) if importance is None else np.asarray(importance, np.float64)
        best = None
        for r in CLIP_RATIOS:
            scale, zero = self._params(w, r)
            q = (self.codes(w, scale[:, None], zero[:, None]) - zero[:, None]) * scale[:, None]
            err = ((w - q) ** 2) @ imp
            if best is None:
                best = (err, scale, zero)
                continue
            better = err < best[0]
            best = (
                np.where(better, err, best[0]),
                np.where(better, scale, best[1]),
                np.where(better, zero, best[2]),
            )
        assert best is not None
        return best[1], best[2]

    def _params(self, w: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
        if self.sym:
            scale = ratio * np.abs(w).max(axis=1) / (self.mid - 1)
            zero = np.full(w.shape[0], float(self.mid))
        else:
            lo = ratio * np.minimum(w.min(axis=1), 0.0)
            hi = ratio * np.maximum(w.max(axis=1), 0.0)
            scale = (hi - lo) / self.maxq
            safe = np.where(scale > 0, scale, 1.0)
            zero = np.clip(np.rint(-lo / safe), 0, self.maxq)
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32).astype(np.float64)
        return scale, zero

    def codes(self, w: np.ndarray, scale: np.ndarray, zero: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(w / scale) + zero, 0, self.maxq)


@dataclass
class QuantWeight:
    """A quantized [out, in] weight: unsigned grid codes, per-group scales and zeros."""

    codes: np.ndarray  # uint8 [out, in], 0..maxq
    scales: np.ndarray  # float32 [out, groups]
    zeros: np.ndarray  # uint8 [out, groups]
    grid: Grid
    group: int

    def dequant(self) -> np.ndarray:
        """The weight the op computes with (float32, exactly as its reference)."""
        n = self.codes.shape[1]
        return dequant_weight(self.codes, self.scales, self.zeros, 0, n, self.group)


def group_slices(n: int, group: int) -> Iterator[slice]:
    step = group or n
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def quantize_rtn(w: np.ndarray, grid: Grid, group: int) -> QuantWeight:
    """Round-to-nearest on the grid, per group of `group` input columns (0: whole rows)."""
    w = w.astype(np.float64)
    codes, scales, zeros = np.empty(w.shape, np.uint8), [], []
    for sl in group_slices(w.shape[1], group):
        scale, zero = grid.params(w[:, sl])
        codes[:, sl] = grid.codes(w[:, sl], scale[:, None], zero[:, None])
        scales.append(scale)
        zeros.append(zero)
    return QuantWeight(
        codes,
        np.stack(scales, 1).astype(np.float32),
        np.stack(zeros, 1).astype(np.uint8),
        grid,
        group,
    )


# -- graph rewriting -------------------------------------------------------------------------
def fresh_key(g: Graph, base: str) -> str:
    taken = set(g.weights) | {n.op.key for n in g.nodes if isinstance(n.op, Param)}
    key, k = base, 0
    while key in taken:
        k += 1
        key = f"{base}.{k}"
    return key


def add_param(g: Graph, base: str, array: np.ndarray) -> Value:
    key = fresh_key(g, base)
    return g.param(key, array, name=key)


def drop_if_unused(g: Graph, v: Value) -> None:
    """Remove a param node nobody reads, and its weights entry when no param reads the key."""
    n = v.node
    if not isinstance(n.op, Param) or v.uses or g.is_output(v):
        return
    g.remove_node(n)
    if not any(isinstance(m.op, Param) and m.op.key == n.op.key for m in g.nodes):
        g.weights.pop(n.op.key, None)


def replace_site(g: Graph, node: Node, op: Op, operands: list[Value]) -> Node:
    """Put `op(operands)` in place of `node` and drop params the old node alone read."""
    new = g.add_node(op, operands, before=node)
    g.replace_all_uses(node.outputs[0], new.outputs[0])
    old_inputs = list(node.inputs)
    g.remove_node(node)
    for v in old_inputs:
        drop_if_unused(g, v)
    return new


def emit_weight_only(g: Graph, site: Site, qw: QuantWeight) -> Node:
    """Replace the site by linear_w4 / linear_w8 reading the quantized weight."""
    base = site.key
    extra: list[Value] = []
    if qw.grid.bits == 4:
        codes = add_param(g, f"{base}.codes", pack_int4(qw.codes))
        op: Op = LinearW4(group=qw.group)
        if not qw.grid.sym:
            extra.append(add_param(g, f"{base}.zeros", qw.zeros))
    elif qw.grid.sym:
        signed = (qw.codes.astype(np.int16) - qw.grid.mid).astype(np.int8)
        codes = add_param(g, f"{base}.codes", signed)
        op = LinearW8(group=qw.group)
    else:
        codes = add_param(g, f"{base}.codes", qw.codes)
        op = LinearW8(group=qw.group)
        extra.append(add_param(g, f"{base}.zeros", qw.zeros))
    scales = add_param(g, f"{base}.scales", qw.scales)
    bias = [site.bias] if site.bias is not None else []
    return replace_site(g, site.node, op, [site.x, codes, scales, *extra, *bias])


def remember_float(ctx: PassContext, site: Site, codes_key: str) -> None:
    """Keep the float weight of a quantized layer (for keep_sensitive_float)."""
    cal = ctx.calibration
    if isinstance(cal, Calibration):
        cal.originals[site.name] = {
            "weight": site.weight,
            "key": site.key,
            "transposed": site.transposed,
            "codes_key": codes_key,
        }


def restore_float(g: Graph, node: Node, original: dict[str, Any]) -> Node:
    """Replace a quantized linear by `linear(x, W[, b])` with its float weight (the bias is
    the quantized op's 1-D float operand: zeros are u8, x_scale is 0-D)."""
    x = node.inputs[0]
    base = original["key"] + (".t" if original["transposed"] else "")
    wv = add_param(g, base, original["weight"].astype(x.type.dtype.np))
    bias = [v for v in node.inputs[3:] if v.type.dtype.is_float and v.type.rank == 1]
    return replace_site(g, node, Linear(), [x, wv, *bias])


# -- per-layer statistics --------------------------------------------------------------------
def weight_sqnr_db(w: np.ndarray, wq: np.ndarray) -> float:
    err = float(np.sum((w.astype(np.float64) - wq) ** 2))
    sig = float(np.sum(w.astype(np.float64) ** 2))
    return _db(sig, err)


EXACT_DB = 300.0  # the SQNR reported for an exact match (finite, so stats stay JSON)


def _db(sig: float, err: float) -> float:
    if err <= 0:
        return EXACT_DB
    return float(min(10.0 * np.log10(max(sig, 1e-300) / err), EXACT_DB))


def hessian_error(w: np.ndarray, wq: np.ndarray, inp: LinearInput) -> dict[str, float]:
    """Output error of x @ Ŵᵀ against x @ Wᵀ over every calibration row, from H:
    ‖ΔW X‖² = tr(ΔW H ΔWᵀ)·n/2 (the factor cancels in the ratios)."""
    h = inp.hessian
    w64, q64 = w.astype(np.float64), wq.astype(np.float64)
    wh, qh = w64 @ h, q64 @ h
    yy, qq, yq = float(np.sum(wh * w64)), float(np.sum(qh * q64)), float(np.sum(wh * q64))
    ee = max(yy - 2.0 * yq + qq, 0.0)
    d = w64 - q64
    if ee < 1e-6 * yy:  # cancellation: compute the small error directly
        ee = float(np.sum((d @ h) * d))
    return _ratios(yy, qq, yq, ee, inp.rows, "all rows (Hessian)")


def sample_error(y: np.ndarray, yq: np.ndarray) -> dict[str, float]:
    """Output error of yq against y on the sampled calibration rows."""
    y64, q64 = y.astype(np.float64), yq.astype(np.float64)
    yy, qq = float(np.sum(y64 * y64)), float(np.sum(q64 * q64))
    yq_ = float(np.sum(y64 * q64))
    ee = float(np.sum((y64 - q64) ** 2))
    return _ratios(yy, qq, yq_, ee, y.shape[0], "sampled rows")


def _ratios(yy: float, qq: float, yq: float, ee: float, rows: int, how: str) -> dict[str, Any]:
    rel = float(np.sqrt(max(ee, 0.0) / yy)) if yy > 0 else (0.0 if ee <= 0 else 1.0)
    cos = yq / np.sqrt(yy * qq) if yy > 0 and qq > 0 else (1.0 if ee <= 0 else 0.0)
    return {
        "output_rel_err": rel,
        "output_cos": float(min(max(cos, -1.0), 1.0)),
        "output_sqnr_db": _db(yy, ee),
        "rows": int(rows),
        "measured_on": how,
    }


def record_layer(ctx: PassContext, name: str, numbers: dict[str, Any]) -> None:
    """Per-layer numbers of the running pass: ctx.stats[pass]["layers"][name]."""
    d = ctx.stats.setdefault(ctx.current or "?", {}).setdefault("layers", {})
    d.setdefault(name, {}).update(numbers)


QUANT_STAT_PASSES = (
    "smooth_activations",
    "quantize_weights_rtn",
    "quantize_weights_gptq",
    "quantize_activations",
    "keep_sensitive_float",
)


def quant_stats(stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """layer -> numbers, merged over the quantization passes in pipeline order (the later
    pass's numbers win: they describe the final layer)."""
    out: dict[str, dict[str, Any]] = {}
    for p in QUANT_STAT_PASSES:
        for name, numbers in stats.get(p, {}).get("layers", {}).items():
            out.setdefault(name, {}).update(numbers)
    return out
