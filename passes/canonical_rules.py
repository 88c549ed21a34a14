"""The rewrite rules of `canonicalize`: local identities, each exact under the reference.

Every rule returns values of exactly the replaced node's type (the engine checks it), so an
identity such as x + 0 -> x fires only when broadcasting the constant changes nothing.
"""

from __future__ import annotations

import dataclasses

from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, Value
from ..ir.op import OPS
from ..ir.ops.source import Constant
from .fold_constants import constant_values, is_symbolic, shape_values
from .rewrite import RuleSet

RULES = RuleSet("canonical")

# Rules match ops by name (the op families are declared in several ir/ops modules).
# Ops that only change the shape: the elements keep their row-major order.
RESHAPES = ("reshape", "squeeze", "unsqueeze", "flatten")


def made_by(v: Value, *names: str) -> bool:
    """Whether `v` is a result of one of the named ops."""
    return v.node.op.name in names


def splat(v: Value) -> object | None:
    """The one value every element of a numeric constant holds (None: not such a constant,
    or NaN, which equals nothing)."""
    a = constant_values(v)
    if a is None or a.size == 0 or is_symbolic(a):
        return None
    first = a.reshape(-1)[0]
    return first.item() if bool((a == first).all()) else None


def same_type(a: Value, b: Value) -> bool:
    return a.type.dtype == b.type.dtype and a.type.same_as(b.type)


def is_constant(v: Value) -> bool:
    return isinstance(v.node.op, Constant)


# -- arithmetic identities -----------------------------------------------------------------
@RULES.rule()
def constant_to_right(g: Graph, n: Node) -> Value | None:
    """c op x -> x op c for commutative binary ops: one spelling for the identity rules and
    for CSE (broadcasting is symmetric, so the type is unchanged)."""
    if not n.op.commutative or len(n.inputs) != 2 or len(n.outputs) != 1:
        return None
    a, b = n.inputs
    if not is_constant(a) or is_constant(b):
        return None
    return g.add_node(n.op, (b, a), before=n).out


@RULES.rule("add")
def add_zero(g: Graph, n: Node) -> Value | None:
    """x + 0 -> x and 0 + x -> x."""
    a, b = n.inputs
    for x, c in ((a, b), (b, a)):
        if splat(c) == 0 and same_type(x, n.out):
            return x
    return None


@RULES.rule("sub")
def sub_zero(g: Graph, n: Node) -> Value | None:
    """x - 0 -> x."""
    x, c = n.inputs
    return x if splat(c) == 0 and same_type(x, n.out) else None


@RULES.rule("mul")
def mul_one(g: Graph, n: Node) -> Value | None:
    """x * 1 -> x and 1 * x -> x."""
    a, b = n.inputs
    for x, c in ((a, b), (b, a)):
        if splat(c) == 1 and same_type(x, n.out):
            return x
    return None


@RULES.rule("div")
def div_one(g: Graph, n: Node) -> Value | None:
    """x / 1 -> x (exact for floats, and for integer division)."""
    x, c = n.inputs
    return x if splat(c) == 1 and same_type(x, n.out) else None


@RULES.rule("neg")
def neg_neg(g: Graph, n: Node) -> Value | None:
    """-(-x) -> x (exact: negation flips the sign bit, wrapping ints included)."""
    (x,) = n.inputs
    return x.node.inputs[0] if made_by(x, "neg") else None


@RULES.rule("identity")
def identity_elim(g: Graph, n: Node) -> Value:
    """identity(x) -> x."""
    return n.inputs[0]


# -- casts ---------------------------------------------------------------------------------
_INT_WIDER = {
    DType.u4: {DType.u8, DType.i8, DType.i16, DType.i32, DType.i64},
    DType.i4: {DType.i8, DType.i16, DType.i32, DType.i64},
    DType.u8: {DType.i16, DType.i32, DType.i64},
    DType.i8: {DType.i16, DType.i32, DType.i64},
    DType.i16: {DType.i32, DType.i64},
    DType.i32: {DType.i64},
}
_FLOAT_WIDER = {
    DType.f16: {DType.f32, DType.f64},
    DType.bf16: {DType.f32, DType.f64},
    DType.f32: {DType.f64},
}
_INT_TO_FLOAT = {
    DType.u4: {DType.f16, DType.bf16, DType.f32, DType.f64},
    DType.i4: {DType.f16, DType.bf16, DType.f32, DType.f64},
    DType.u8: {DType.f16, DType.bf16, DType.f32, DType.f64},
    DType.i8: {DType.f16, DType.bf16, DType.f32, DType.f64},
    DType.i16: {DType.f32, DType.f64},
    DType.i32: {DType.f64},
}


def cast_through(a: DType, b: DType, c: DType) -> bool:
    """True when cast(cast(x: a, b), c) == cast(x, c) for every x: b holds every value of a
    exactly, and converting that value from b to c is the same as converting it from a.

    Int -> float -> int is excluded: float -> int saturates where int -> int wraps.
    """
    if a == DType.bool:
        return b != DType.bool
    if b in _INT_WIDER.get(a, ()) or b in _FLOAT_WIDER.get(a, ()):
        return True
    return b in _INT_TO_FLOAT.get(a, ()) and (c.is_float or c == DType.bool)


@RULES.rule("cast")
def cast_same_dtype(g: Graph, n: Node) -> Value | None:
    """cast(x: t, t) -> x."""
    (x,) = n.inputs
    return x if x.type.dtype == n.op.dtype else None


@RULES.rule("cast")
def cast_cast(g: Graph, n: Node) -> Value | None:
    """cast(cast(x, b), c) -> cast(x, c) when the inner cast is a lossless widening."""
    (y,) = n.inputs
    if not made_by(y, "cast"):
        return None
    x = y.node.inputs[0]
    if not cast_through(x.type.dtype, y.type.dtype, n.op.dtype):
        return None
    return g.add_node(n.op, (x,), before=n).out


# -- shape ops -----------------------------------------------------------------------------
@RULES.rule("squeeze")
def squeeze_unsqueeze(g: Graph, n: Node) -> Value | None:
    """squeeze(unsqueeze(x, axes), axes) -> x."""
    (y,) = n.inputs
    if not made_by(y, "unsqueeze") or not n.op.axes:
        return None
    rank = y.type.rank
    inner = sorted(a % rank for a in y.node.op.axes)
    return y.node.inputs[0] if sorted(a % rank for a in n.op.axes) == inner else None


@RULES.rule(*RESHAPES)
def reshape_to_same_shape(g: Graph, n: Node) -> Value | None:
    """reshape / squeeze / unsqueeze / flatten to x's own shape -> x."""
    (x,) = n.inputs
    return x if same_type(x, n.out) else None


@RULES.rule(*RESHAPES)
def merge_reshapes(g: Graph, n: Node) -> Value | None:
    """A chain of shape-only ops (reshape, squeeze, unsqueeze, flatten) -> one reshape of the
    chain's input to the final shape (the row-major element order never changes)."""
    (y,) = n.inputs
    if not made_by(y, *RESHAPES):
        return None
    x = y.node.inputs[0]
    return g.add_node(OPS["reshape"](shape=n.out.type.shape), (x,), before=n).out


@RULES.rule("transpose")
def transpose_identity(g: Graph, n: Node) -> Value | None:
    """transpose(x, [0, 1, ..., r-1]) -> x."""
    return n.inputs[0] if tuple(n.op.perm) == tuple(range(len(n.op.perm))) else None


@RULES.rule("transpose")
def transpose_transpose(g: Graph, n: Node) -> Value | None:
    """transpose(transpose(x, p), q) -> transpose(x, [p[q[j]] for j])."""
    (y,) = n.inputs
    if not made_by(y, "transpose"):
        return None
    p, q = y.node.op.perm, n.op.perm
    perm = tuple(p[j] for j in q)
    return g.add_node(dataclasses.replace(n.op, perm=perm), (y.node.inputs[0],), before=n).out


@RULES.rule("expand")
def expand_to_same_shape(g: Graph, n: Node) -> Value | None:
    """expand(x) to x's own shape -> x."""
    (x,) = n.inputs
    return x if same_type(x, n.out) else None


@RULES.rule("slice")
def slice_whole(g: Graph, n: Node) -> Value | None:
    """A slice with unit steps whose result has x's shape takes every element -> x."""
    (x,) = n.inputs
    return x if all(s == 1 for s in n.op.steps) and same_type(x, n.out) else None


@RULES.rule("concat")
def concat_single(g: Graph, n: Node) -> Value | None:
    """concat(x) -> x."""
    return n.inputs[0] if len(n.inputs) == 1 else None


@RULES.rule("split")
def split_single(g: Graph, n: Node) -> list[Value] | None:
    """split(x) into one piece -> x."""
    return [n.inputs[0]] if len(n.outputs) == 1 else None


@RULES.rule("shape")
def shape_to_constant(g: Graph, n: Node) -> Value | None:
    """shape(x) -> an i64 constant of x's dims (symbolic dims stay symbolic in the values)."""
    dims = shape_values(n)
    if dims is None:
        return None
    return g.constant(dims, n.out.type, before=n)
