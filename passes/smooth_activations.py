"""SmoothQuant (Xiao et al., ICML 2023): move activation outliers into the weights before
int8 activation quantization, with a per-channel scale that cancels exactly."""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Value
from ..ir.ops.elementwise import Mul
from ..ir.ops.source import Param
from .calibration import Calibration, linear_nodes, record
from .manager import PassContext, graph_pass
from .quant_layers import add_param, record_layer
from .quant_spec import spec_option

S_RANGE = (1e-5, 1e5)  # smoothing factors are clamped to this range


def _exclusive(g: Graph, v: Value, reader: Node) -> bool:
    """v is a param read by `reader` only, whose key no other param reads."""
    n = v.node
    if not isinstance(n.op, Param) or g.is_output(v) or any(u is not reader for u, _ in v.uses):
        return False
    return sum(1 for m in g.nodes if isinstance(m.op, Param) and m.op.key == n.op.key) == 1


def _scale_param(g: Graph, v: Value, factor: np.ndarray) -> None:
    """Store key's array times `factor` (a new array: the old one may be shared)."""
    key = v.node.op.key
    g.weights[key] = (np.asarray(g.weights[key], np.float64) * factor).astype(g.weights[key].dtype)


def _fold_target(g: Graph, x: Value, readers: list[Node]) -> list[Value] | None:
    """The 1-D params that scale x's channels when x is only read by `readers`: the weight
    (and bias) of a last-axis layer_norm / rms_norm, or the vector of `mul(p, y)`; None
    when nothing can absorb 1/s."""
    if any(u not in readers for u, _ in x.uses) or g.is_output(x):
        return None
    n, size = x.node, x.type.shape[-1]
    if n.op.name in ("layer_norm", "rms_norm"):
        ps = list(n.inputs[1:])
        ok = (
            n.op.axis in (-1, x.type.rank - 1)
            and len(ps) == (3 if n.op.name == "layer_norm" else 2) - 1
        )
        if ok and all(p.type.shape == (size,) and _exclusive(g, p, n) for p in ps):
            return ps
        return None
    if n.op.name == "mul":
        for p in n.inputs:
            other = n.inputs[1] if p is n.inputs[0] else n.inputs[0]
            if p.type.shape == (size,) and other.type.shape == x.type.shape and _exclusive(g, p, n):
                return [p]
    return None


@graph_pass(tolerance=(1e-4, 1e-5))
def smooth_activations(g: Graph, ctx: PassContext) -> Graph:
    """For each group of float linears reading one activation X, pick per input channel
    s_j = max|X_j|^α / max|W_j|^(1-α) (α from options["quantize"], default 0.5; the weight
    max over the group), multiply the weights' columns by s and divide X by s: folded into
    the producing layer_norm / rms_norm weight and bias (or `mul` by a vector) when only
    these linears read X, else by an inserted `mul(X, 1/s)`. Exact up to float rounding:
    (X / s) (W s)ᵀ = X Wᵀ. Needs ctx.calibration (per-channel max|X|)."""
    spec = spec_option(ctx.options, "w8a8-smooth")
    cal: Calibration = record(g, ctx, what="smooth_activations")
    groups: dict[int, list[tuple[str, Node]]] = {}
    for name, n in linear_nodes(g).items():
        key = n.inputs[1].node.op.key
        if n.op.name != "linear" or spec.skips(key) or not _exclusive(g, n.inputs[1], n):
            continue
        groups.setdefault(id(n.inputs[0]), []).append((name, n))
    folded = inserted = 0
    for members in groups.values():
        x = members[0][1].inputs[0]
        ax = cal.inputs[members[0][0]].stats.absmax_channel.astype(np.float64)
        wmax = np.max(
            [np.abs(g.weights[n.inputs[1].node.op.key]).max(axis=0) for _, n in members], axis=0
        ).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = ax**spec.alpha / wmax ** (1 - spec.alpha)
        s = np.where((ax > 0) & (wmax > 0) & np.isfinite(s), s, 1.0).clip(*S_RANGE)
        readers = [n for _, n in members]
        target = _fold_target(g, x, readers)
        if target is not None:
            for p in target:
                _scale_param(g, p, 1.0 / s)
            folded += 1
            how = x.node.op.name
        else:
            inv = add_param(
                g,
                f"{members[0][1].inputs[1].node.op.key}.smooth",
                (1.0 / s).astype(x.type.dtype.np),
            )
            xs = g.apply(Mul(), x, inv, before=readers[0])
            for n in readers:
                g.set_input(n, 0, xs)
            inserted += 1
            how = "inserted mul"
        for name, n in members:
            _scale_param(g, n.inputs[1], s[None, :])
            record_layer(
                ctx,
                name,
                {"smooth_min": float(s.min()), "smooth_max": float(s.max()), "smooth_into": how},
            )
    cal.invalidate()  # activations at the linears changed
    ctx.stat("folded", folded)
    ctx.stat("inserted_mul", inserted)
    return g
