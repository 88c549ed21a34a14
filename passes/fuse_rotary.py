"""fuse_rotary: the rotate-half rotary embedding that HF models spell as
x * cos + cat(-x2, x1) * sin (x1, x2 the halves of the last axis) -> one `rotary_embedding`
node over half-width cos / sin."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..ir.graph import Graph, Node, Value
from ..ir.ops.elementwise import Binary, Cast, Unary
from ..ir.ops.linalg import compute_dtype
from ..ir.ops.nn import RotaryEmbedding
from ..ir.ops.shape import slice_range
from ..ir.ops.source import Constant
from ..ir.shapes import Dim, dim_eq, is_static
from ..ir.types import TensorType
from .canonical_rules import made_by, same_type
from .fold_constants import constant_values, is_symbolic
from .manager import PassContext, graph_pass
from .rewrite import RuleSet, apply_rules

RULES = RuleSet("fuse_rotary")


def _last_axis(axis: int, rank: int) -> bool:
    return rank > 0 and axis % rank == rank - 1


def _half_slice(v: Value, first: bool) -> Value | None:
    """x when v = x[..., :D/2] (first) or x[..., D/2:] (not first), D = x's static, even last
    dim; unit step, the bounds in any ONNX spelling (negative, clamped)."""
    if not made_by(v, "slice"):
        return None
    op, x = v.node.op, v.node.inputs[0]
    d = x.type.shape[-1] if x.type.rank else None
    if len(op.axes) != 1 or not _last_axis(op.axes[0], x.type.rank) or op.steps != (1,):  # type: ignore[attr-defined]
        return None
    if not is_static(d) or int(d) % 2:  # type: ignore[arg-type]
        return None
    s, e, _ = slice_range("slice", d, op.starts[0], op.ends[0], 1)  # type: ignore[arg-type, attr-defined]
    want = (0, int(d) // 2) if first else (int(d) // 2, int(d))  # type: ignore[arg-type]
    return x if (s, e) == want else None


def _rotate_half_of(v: Value) -> Value | None:
    """x when v = concat(-x[..., D/2:], x[..., :D/2]) along the last axis."""
    if not made_by(v, "concat") or len(v.node.inputs) != 2:
        return None
    if not _last_axis(v.node.op.axis, v.type.rank):  # type: ignore[attr-defined]
        return None
    a, b = v.node.inputs
    if not made_by(a, "neg"):
        return None
    x = _half_slice(a.node.inputs[0], first=False)
    return x if x is not None and _half_slice(b, first=True) is x else None


def _with_last(shape: tuple[Dim, ...], last: Dim) -> tuple[Dim, ...]:
    return tuple(shape[:-1]) + (last,)


def half_of(g: Graph, v: Value, h: int, before: Node) -> Value | None:
    """A value equal to v[..., :h] when v[..., :h] == v[..., h:2h] provably (v's last dim is
    2h): v = concat(a, a) along the last axis, or an elementwise op / a shape op that keeps
    the last axis applied to such values, or a constant with equal halves. New nodes go before
    `before`; None when the halves cannot be shown equal."""
    n, t = v.node, v.type
    if t.rank == 0 or not dim_eq(t.shape[-1], 2 * h):
        return None
    op = n.op
    if made_by(v, "concat") and len(n.inputs) == 2 and n.inputs[0] is n.inputs[1]:
        return n.inputs[0] if _last_axis(op.axis, t.rank) else None  # type: ignore[attr-defined]
    if isinstance(op, Constant):
        a = constant_values(v)
        if a is None or is_symbolic(a) or not np.array_equal(a[..., :h], a[..., h:]):
            return None
        return g.constant(a[..., :h], TensorType(t.dtype, _with_last(t.shape, h)), before)
    if isinstance(op, (Unary, Cast)) and len(n.inputs) == 1:
        u = half_of(g, n.inputs[0], h, before)
        return g.apply(op, u, before=before) if u is not None else None
    if isinstance(op, Binary):
        args = []
        for a in n.inputs:
            if a.type.rank == 0 or dim_eq(a.type.shape[-1], 1):
                args.append(a)  # broadcast along the last axis: the same for both halves
                continue
            ah = half_of(g, a, h, before)
            if ah is None:
                return None
            args.append(ah)
        return g.apply(op, *args, before=before)
    return _half_through_shape_op(g, v, h, before)


def _half_through_shape_op(g: Graph, v: Value, h: int, before: Node) -> Value | None:
    """half_of through reshape / expand / unsqueeze / squeeze / transpose that keep the last
    axis (a reshape keeping the last dim only regroups whole rows)."""
    n, t = v.node, v.type
    op = n.op
    if not n.inputs:
        return None
    x = n.inputs[0]
    if x.type.rank == 0 or not dim_eq(x.type.shape[-1], t.shape[-1]):
        return None
    if made_by(v, "reshape", "expand"):
        new_op = dataclasses.replace(op, shape=_with_last(op.shape, h))  # type: ignore[arg-type, attr-defined]
    elif made_by(v, "unsqueeze", "squeeze"):
        rank = t.rank if made_by(v, "unsqueeze") else x.type.rank
        if not op.axes or any(_last_axis(a, rank) for a in op.axes):  # type: ignore[attr-defined]
            return None
        new_op = op
    elif made_by(v, "transpose"):
        if op.perm[-1] != t.rank - 1:  # type: ignore[attr-defined]
            return None
        new_op = op
    else:
        return None
    xh = half_of(g, x, h, before)
    return g.apply(new_op, xh, before=before) if xh is not None else None


@RULES.rule("add")
def rotary_rotate_half(g: Graph, n: Node) -> Value | None:
    """x * cos + cat(-x[..., D/2:], x[..., :D/2]) * sin (any operand order) with cos and sin
    of x's last dim D whose halves are provably equal -> rotary_embedding(x, cos[..., :D/2],
    sin[..., :D/2])."""
    muls = [a for a in n.inputs if made_by(a, "mul")]
    if len(muls) != 2 or muls[0] is muls[1]:
        return None
    for rot_mul, x_mul in ((muls[0], muls[1]), (muls[1], muls[0])):
        for rot, sin in (rot_mul.node.inputs, reversed(rot_mul.node.inputs)):
            x = _rotate_half_of(rot)
            if x is None or x not in x_mul.node.inputs:
                continue
            a, b = x_mul.node.inputs
            cos = b if a is x else a
            fused = _rotary(g, n, x, cos, sin)
            if fused is not None:
                return fused
    return None


def _rotary(g: Graph, n: Node, x: Value, cos: Value, sin: Value) -> Value | None:
    t = x.type
    if not t.dtype.is_float or compute_dtype(t.dtype.np) != t.dtype.np:
        return None  # f16 / bf16: the op rounds once, the decomposed chain after each step
    if not same_type(x, n.outputs[0]) or cos.type.dtype != t.dtype or sin.type.dtype != t.dtype:
        return None
    if not same_type(cos, sin) or cos.type.rank < 1 or cos.type.rank > t.rank:
        return None
    if not dim_eq(cos.type.shape[-1], t.shape[-1]) or not is_static(t.shape[-1]):
        return None
    h = int(t.shape[-1]) // 2  # type: ignore[arg-type]
    start = len(g.nodes)
    ch = half_of(g, cos, h, n)
    sh = half_of(g, sin, h, n) if ch is not None else None
    if ch is None or sh is None:
        _drop_new(g, start, n)
        return None
    return g.apply(RotaryEmbedding(interleaved=False), x, ch, sh, before=n)


def _drop_new(g: Graph, size: int, anchor: Node) -> None:
    """Remove the (unread) nodes a failed half_of inserted before `anchor`."""
    added = len(g.nodes) - size
    pos = g.position(anchor)
    for node in reversed(g.nodes[pos - added : pos]):
        g.remove_node(node)


@graph_pass()
def fuse_rotary(g: Graph, ctx: PassContext) -> Graph:
    """Replace HF's rotate-half rotary embedding, x * cos + cat(-x2, x1) * sin with x1, x2 the
    first and second half of x's last axis, by rotary_embedding(x, cos_h, sin_h). HF passes
    full-width cos / sin (the frequencies concatenated with themselves); the op takes the half
    width, so the pass rebuilds the cos / sin chain at half width (cos(cat(f, f)) ->
    cos(f), through elementwise and row-preserving shape ops), and fuses only where the halves
    are provably equal.

    Safe (exact): for f32 / f64 the op's reference computes x1 c - x2 s and x2 c + x1 s in the
    input dtype, the same products and sums as the decomposed graph (x1 c + (-x2) s is
    x1 c - x2 s exactly); f16 / bf16 are left alone (the op rounds once, the chain per step).
    The half-width cos / sin hold the same values. The slices, neg, concat and the two
    multiplies go when nothing else reads them: one pass over x instead of five.
    """
    for rule, count in sorted(apply_rules(g, RULES).items()):
        ctx.stat(rule, count)
    return g


__all__ = ["RULES", "fuse_rotary", "half_of"]
