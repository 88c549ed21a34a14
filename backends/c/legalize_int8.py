"""Legalization rule for the C targets: integer matmuls of 8-bit data -> matmul_integer, which
the int8 GEMM kernels (lmc_int8.c: sdot on arm64+dotprod) compute.

ONNX MatMulInteger arrives as `matmul(cast<i32>(a8) - za, cast<i32>(b8) - zb)` in i32, and
constant folding turns a weight side into an i32 param; both forms are matched. An i32 param
is stored as 8-bit values plus zero points when each column spans at most 256 values. Exact:
every form computes the same int32 sums (mod 2^32).
"""

from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...ir.ops.elementwise import Cast, Sub
from ...ir.ops.linalg import Matmul
from ...ir.ops.quant import EIGHT_BIT, MatmulInteger
from ...ir.ops.shape import Reshape
from ...ir.ops.source import Param
from ...ir.shapes import Dim, dim_eq, shape_eq
from ...ir.types import TensorType
from .legalize import RULES

S8_KEY = "#s8"  # suffixes of the params made from an i32 weight
S8_ZERO_KEY = "#s8_zero"


def _widened(v: Value) -> tuple[Value, Value | None] | None:
    """(8-bit source, i32 zero point or None) when v = cast<i32>(x8) or cast<i32>(x8) - z."""
    z = None
    n = v.node
    if isinstance(n.op, Sub) and shape_eq(v.type.shape, n.inputs[0].type.shape):
        z = n.inputs[1]
        n = n.inputs[0].node
        if z.type.dtype != DType.i32:
            return None
    if not (isinstance(n.op, Cast) and n.op.dtype == DType.i32):
        return None
    src = n.inputs[0]
    return (src, z) if src.type.dtype in EIGHT_BIT else None


def _zero_shape(z: Value, d: Dim, column: bool) -> tuple[Dim, ...] | None:
    """The matmul_integer shape of zero point z ([] or [d]) when z broadcasts as one value or
    as one per row ([..., d, 1]) / per column ([..., d]) of its operand; None otherwise."""
    shape = list(z.type.shape)
    if all(isinstance(x, int) and x == 1 for x in shape):
        return ()
    while shape and isinstance(shape[0], int) and shape[0] == 1:
        shape.pop(0)
    want = [d] if column else [d, 1]
    if len(shape) == len(want) and all(dim_eq(a, b) for a, b in zip(shape, want)):
        return (d,)
    return None


def _i32_weight(g: Graph, b: Value) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(8-bit array, i32 per-column zero points or None) holding i32 param b exactly."""
    if not (isinstance(b.node.op, Param) and b.type.dtype == DType.i32 and b.type.rank == 2):
        return None
    w = np.asarray(g.weights.get(b.node.op.key))  # type: ignore[attr-defined]
    if w.ndim != 2 or w.size == 0 or w.dtype != np.int32:
        return None
    lo, hi = w.min(axis=0).astype(np.int64), w.max(axis=0).astype(np.int64)
    if lo.min() >= -128 and hi.max() <= 127:
        return w.astype(np.int8), None
    if lo.min() >= 0 and hi.max() <= 255:
        return w.astype(np.uint8), None
    if (hi - lo).max() > 255:
        return None
    shift = lo + 128  # column n holds w - shift in [-128, 127] and zero point -shift
    return (w - shift).astype(np.int8), (-shift).astype(np.int32)


@RULES.rule(Matmul)
def integer_matmul_to_s8(g: Graph, node: Node) -> Value | None:
    """matmul in i32 of widened 8-bit operands (minus zero points), or of a widened operand
    and an i32 weight whose columns each span <= 256 values -> matmul_integer."""
    a, b = node.inputs
    if node.outputs[0].type.dtype != DType.i32 or a.type.rank < 2 or b.type.rank != 2:
        return None
    left = _widened(a)
    if left is None:
        return None
    x, za = left
    m, n = a.type.shape[-2], b.type.shape[1]
    za_shape = _zero_shape(za, m, column=False) if za is not None else ()
    right = _widened(b)
    weight = None
    if right is not None:
        y, zb = right
        zb_shape = _zero_shape(zb, n, column=True) if zb is not None else ()
        if zb_shape is None or y.type.rank != 2:
            return None
    else:
        weight = _i32_weight(g, b)
        if weight is None:
            return None
        zb, zb_shape = None, (n,) if weight[1] is not None else ()
    if za_shape is None:
        return None
    if weight is not None:
        key = b.node.op.key  # type: ignore[attr-defined]
        if key + S8_KEY in g.weights or key + S8_ZERO_KEY in g.weights:
            return None  # the names are taken: leave the i32 matmul alone
        y = g.param(key + S8_KEY, weight[0])
        if weight[1] is not None:
            zb = g.param(key + S8_ZERO_KEY, weight[1])
    zp_a = _as_zero_point(g, node, za, za_shape)
    zp_b = _as_zero_point(g, node, zb, zb_shape)
    return g.apply(MatmulInteger(), x, y, zp_a, zp_b, before=node)


def _as_zero_point(g: Graph, node: Node, z: Value | None, shape: tuple[Dim, ...]) -> Value:
    if z is None:
        return g.constant((0,), TensorType(DType.i32, ()), before=node)
    if shape_eq(z.type.shape, shape):
        return z
    return g.apply(Reshape(shape), z, before=node)
