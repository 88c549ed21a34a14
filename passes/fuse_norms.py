"""fuse_norms: decomposed RMS and layer normalizations (what HF LLaMA's RMSNorm, ONNX exports
and hand-written models leave behind) -> one `rms_norm` / `layer_norm` node, weight and bias
folded in when a single multiply / add follows."""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, Value
from ..ir.ops.nn import LayerNorm, RmsNorm
from ..ir.ops.shape import Reshape
from ..ir.ops.source import Param
from ..ir.shapes import broadcast_shapes, dim_eq, is_static, shape_eq
from .canonical_rules import made_by, same_type, splat
from .manager import PassContext, graph_pass
from .rewrite import RuleSet, apply_rules

RULES = RuleSet("fuse_norms")


# -- matchers --------------------------------------------------------------------------------
def _only_use(v: Value, g: Graph) -> bool:
    return len(v.uses) == 1 and not g.is_output(v)


def _scalar(v: Value) -> float | None:
    """The one value of a splat numeric constant, or of a param whose stored array holds one
    value everywhere (ONNX initializers arrive as params), else None."""
    if isinstance(v.node.op, Param):
        a = v.node.graph.weights.get(v.node.op.key)
        if a is None or a.size == 0 or a.size > 64 or a.dtype.kind not in "iuf":
            return None
        first = a.reshape(-1)[0]
        return float(first) if bool((a == first).all()) else None
    c = splat(v)
    return float(c) if isinstance(c, (int, float)) and not isinstance(c, bool) else None


def _eps(c: Value, dtype: DType) -> float | None:
    """A constant epsilon in the attribute form: an f32 constant becomes the shortest decimal
    that rounds to the same f32 (1e-05, not 9.99999974737875e-06); the references add eps in
    the input's float type, so the value is unchanged."""
    v = _scalar(c)
    if v is None or v < 0:
        return None
    if dtype in (DType.f32, DType.f16, DType.bf16):
        return float(str(np.float32(v)))
    return v


def _trailing_axes(axes: tuple[int, ...], rank: int) -> int | None:
    """The first axis k when `axes` are exactly k..rank-1 (negative axes allowed), else None."""
    if not axes:
        return None
    norm = sorted(a % rank for a in axes)
    return norm[0] if norm == list(range(norm[0], rank)) else None


def _square_of(v: Value) -> Value | None:
    """x when v = pow(x, 2) or mul(x, x)."""
    n = v.node
    if made_by(v, "pow") and _scalar(n.inputs[1]) == 2.0:
        return n.inputs[0]
    if made_by(v, "mul") and n.inputs[0] is n.inputs[1]:
        return n.inputs[0]
    return None


def _mean_over(v: Value) -> tuple[Value, int] | None:
    """(m, k) when v = mean of m over axes k..end with kept dims: reduce_mean, or reduce_sum
    divided by (or multiplied by the reciprocal of) the number of reduced elements."""
    n = v.node
    if made_by(v, "reduce_mean") and n.op.keepdims:  # type: ignore[attr-defined]
        m = n.inputs[0]
        k = _trailing_axes(tuple(n.op.axes), m.type.rank)  # type: ignore[attr-defined]
        return (m, k) if k is not None else None
    if not made_by(v, "div", "mul"):
        return None
    s, c = n.inputs
    if not made_by(s, "reduce_sum") or not s.node.op.keepdims:  # type: ignore[attr-defined]
        return None
    m = s.node.inputs[0]
    k = _trailing_axes(tuple(s.node.op.axes), m.type.rank)  # type: ignore[attr-defined]
    scale = _scalar(c)
    if k is None or scale is None or not all(is_static(d) for d in m.type.shape[k:]):
        return None
    count = int(np.prod([int(d) for d in m.type.shape[k:]]))
    if count == 0:
        return None
    want = float(count) if made_by(v, "div") else 1.0 / count
    return (m, k) if abs(scale - want) <= 1e-7 * want else None


def _plus_eps(v: Value) -> tuple[Value, Value] | None:
    """(m, eps constant) when v = m + eps (either order)."""
    if not made_by(v, "add"):
        return None
    a, b = v.node.inputs
    if _scalar(b) is not None:
        return a, b
    if _scalar(a) is not None:
        return b, a
    return None


def _inverse_sqrt(v: Value) -> tuple[Value, Value] | None:
    """(m, eps) when v = 1 / sqrt(m + eps): rsqrt, reciprocal(sqrt), 1 / sqrt, pow(., -0.5)."""
    n = v.node
    if made_by(v, "rsqrt"):
        return _plus_eps(n.inputs[0])
    if made_by(v, "reciprocal") and made_by(n.inputs[0], "sqrt"):
        return _plus_eps(n.inputs[0].node.inputs[0])
    if made_by(v, "div") and _scalar(n.inputs[0]) == 1.0 and made_by(n.inputs[1], "sqrt"):
        return _plus_eps(n.inputs[1].node.inputs[0])
    if made_by(v, "pow") and _scalar(n.inputs[1]) == -0.5:
        return _plus_eps(n.inputs[0])
    return None


def _normalized(n: Node) -> tuple[Value, Value, Value] | None:
    """(x, m, eps) when n computes x / sqrt(m + eps): mul(x, inv) in either order, or
    div(x, sqrt(m + eps))."""
    if n.op.name == "div" and made_by(n.inputs[1], "sqrt"):
        found = _plus_eps(n.inputs[1].node.inputs[0])
        return (n.inputs[0], *found) if found else None
    if n.op.name != "mul":
        return None
    a, b = n.inputs
    for x, inv in ((a, b), (b, a)):
        found = _inverse_sqrt(inv)
        if found:
            return (x, *found)
    return None


def _keeps_type(x: Value, n: Node) -> bool:
    """x is a float value of the node's exact type (the statistic only broadcasts)."""
    return x.type.dtype.is_float and same_type(x, n.outputs[0])


# -- rules -------------------------------------------------------------------------------------
@RULES.rule("mul", "div")
def layer_norm_decomposed(g: Graph, n: Node) -> Value | None:
    """d / sqrt(mean(d^2) + eps) with d = x - mean(x), both means over axes k..end ->
    layer_norm(x) {axis=k-rank, eps}."""
    found = _normalized(n)
    if found is None:
        return None
    d, var, c = found
    mean_sq = _mean_over(var)
    if mean_sq is None or _square_of(mean_sq[0]) is not d or not made_by(d, "sub"):
        return None
    x, mu = d.node.inputs
    mean_x = _mean_over(mu)
    if mean_x is None or mean_x[0] is not x or mean_x[1] != mean_sq[1]:
        return None
    eps = _eps(c, x.type.dtype)
    if eps is None or not _keeps_type(x, n) or not _keeps_type(d, n):
        return None
    return g.apply(LayerNorm(axis=mean_x[1] - x.type.rank, eps=eps), x, before=n)


@RULES.rule("mul", "div")
def rms_norm_decomposed(g: Graph, n: Node) -> Value | None:
    """x / sqrt(mean(x^2 over axes k..end) + eps) (any spelling of the inverse square root
    and of the mean) -> rms_norm(x) {axis=k-rank, eps}."""
    found = _normalized(n)
    if found is None:
        return None
    x, ms, c = found
    mean = _mean_over(ms)
    if mean is None or _square_of(mean[0]) is not x or not _keeps_type(x, n):
        return None
    eps = _eps(c, x.type.dtype)
    if eps is None or ms.type.dtype != x.type.dtype:
        return None
    return g.apply(RmsNorm(axis=mean[1] - x.type.rank, eps=eps), x, before=n)


def _trailing_param(g: Graph, n: Node, p: Value, y: Value) -> Value | None:
    """p as an operand of the norm producing y: it must broadcast over y's normalized axes
    only (a [D] vector, or [1, ..., 1, D]); returned reshaped to the normalized shape when
    it has extra leading 1s."""
    norm = y.node
    ax = norm.op.axis % y.type.rank  # type: ignore[attr-defined]
    tail = y.type.shape[ax:]
    if p.type.dtype != y.type.dtype or p.type.rank > y.type.rank:
        return None
    out = broadcast_shapes(p.type.shape, y.type.shape)
    if out is None or not shape_eq(out, y.type.shape):
        return None
    lead = p.type.shape[: max(p.type.rank - len(tail), 0)]
    if not all(dim_eq(d, 1) for d in lead):
        return None
    if len(lead) == 0:
        return p
    return g.apply(Reshape(shape=tuple(p.type.shape[len(lead) :])), p, before=n)


@RULES.rule("mul")
def norm_weight(g: Graph, n: Node) -> Value | None:
    """rms_norm(x) * w or layer_norm(x) * w (either order; w broadcasting over the normalized
    axes only, the norm read by nothing else) -> the norm with weight w."""
    a, b = n.inputs
    for y, w in ((a, b), (b, a)):
        if not made_by(y, "rms_norm", "layer_norm") or len(y.node.inputs) != 1:
            continue
        if not _only_use(y, g) or not same_type(y, n.outputs[0]):
            continue
        wv = _trailing_param(g, n, w, y)
        if wv is not None:
            return g.apply(y.node.op, y.node.inputs[0], wv, before=n)
    return None


@RULES.rule("add")
def layer_norm_bias(g: Graph, n: Node) -> Value | None:
    """layer_norm(x, w) + b (either order; b broadcasting over the normalized axes only, the
    norm read by nothing else) -> layer_norm(x, w, b)."""
    a, b = n.inputs
    for y, bias in ((a, b), (b, a)):
        if not made_by(y, "layer_norm") or len(y.node.inputs) != 2:
            continue
        if not _only_use(y, g) or not same_type(y, n.outputs[0]):
            continue
        bv = _trailing_param(g, n, bias, y)
        if bv is not None:
            return g.apply(y.node.op, *y.node.inputs, bv, before=n)
    return None


@graph_pass(tolerance=(1e-5, 1e-6))
def fuse_norms(g: Graph, ctx: PassContext) -> Graph:
    """Replace decomposed normalizations by one op: x * rsqrt(mean(x^2) + eps) (also with
    reciprocal(sqrt(.)), 1/sqrt(.), pow(., -0.5), division by sqrt, mean as reduce_mean or
    reduce_sum / n, the square as pow(x, 2) or x * x) -> rms_norm(x) {eps}; the same over
    d = x - mean(x) -> layer_norm(x); then a following multiply by a weight and (layer_norm)
    add of a bias broadcasting over the normalized axes fold into the norm. HF LLaMA's
    cast-to-f32 variant fuses the f32 part (rms_norm of the widened x); the cast back and the
    weight multiply in the narrow type stay, so no extra rounding is introduced.

    Safe: each pattern computes the op's reference formula over the same axes with the same
    epsilon (an f32 epsilon is printed as the shortest decimal of the same f32 value); only
    the rounding differs (one 1/sqrt instead of rsqrt, the mean's summation order): hence the
    tolerance. Rewritten nodes keep their exact types; the decomposed chain is deleted when
    nothing else reads it. One node per normalization lets the C backend call its row kernels
    (lmc_rms_norm_f32 / lmc_layer_norm_f32) instead of five elementwise and reduction kernels.
    """
    for rule, count in sorted(apply_rules(g, RULES).items()):
        ctx.stat(rule, count)
    return g


__all__ = ["RULES", "fuse_norms"]
