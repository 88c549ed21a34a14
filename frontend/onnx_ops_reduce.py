"""ONNX converters for reductions, arg-reductions, CumSum, TopK and the softmax family."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.dtypes import DType
from ..ir.shapes import norm
from .onnx_ops import Row, cast, mk
from .onnx_ops_ctx import OT, NodeCtx

# ONNX op -> (IR reduction, float-only in the IR)
REDUCTIONS = {
    "ReduceSum": ("reduce_sum", False),
    "ReduceMean": ("reduce_mean", True),
    "ReduceMax": ("reduce_max", False),
    "ReduceMin": ("reduce_min", False),
    "ReduceProd": ("reduce_prod", False),
    "ReduceL1": ("reduce_l1", False),
    "ReduceL2": ("reduce_l2", True),
    "ReduceSumSquare": ("reduce_sum_square", False),
    "ReduceLogSumExp": ("reduce_log_sum_exp", True),
    "ReduceLogSum": ("reduce_sum", True),
}
# The version from which each reduction takes `axes` as an operand instead of an attribute.
AXES_OPERAND_SINCE = {"ReduceSum": 13}


def _reduce_axes(c: NodeCtx) -> list[int] | None:
    if c.since >= AXES_OPERAND_SINCE.get(c.op_type, 18):
        if not c.has(1):
            return None
        return [int(a) for a in c.ints(1)]
    axes = c.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def convert_reduce(c: NodeCtx) -> OT:
    x = c.x(0)
    name, float_only = REDUCTIONS[c.op_type]
    keepdims = bool(c.attr("keepdims", 1))
    axes = _reduce_axes(c)
    if not axes:
        if bool(c.attr("noop_with_empty_axes", 0)):
            return c.emit(mk("identity"), x)
        axes = list(range(x.rank))
    axes = sorted(a % x.rank for a in axes) if x.rank else []
    if x.symbolic and c.op_type in ("ReduceProd", "ReduceSum"):
        fn = np.prod if c.op_type == "ReduceProd" else np.sum
        res = fn(x.const.astype(object), axis=tuple(axes), keepdims=keepdims)
        return c.const_ot(np.asarray(res, dtype=object), x.dtype)
    work = x
    if x.dtype == DType.bool:
        work = cast(c, x, DType.u8)
    elif float_only and not x.dtype.is_float:
        work = cast(c, x, DType.f64)
    if x.rank == 0:
        y = c.emit(mk("identity"), work)
        if c.op_type in ("ReduceL1", "ReduceL2"):
            y = c.emit(mk("abs"), y)
        elif c.op_type == "ReduceSumSquare":
            y = c.emit(mk("mul"), y, y)
        elif c.op_type == "ReduceLogSum":
            y = c.emit(mk("log"), y)
    else:
        y = c.emit(mk(name, axes=tuple(axes), keepdims=keepdims), work)
        if c.op_type == "ReduceLogSum":
            y = c.emit(mk("log"), y)
    return cast(c, y, x.dtype)


def convert_arg(c: NodeCtx) -> OT:
    x = c.x(0)
    name = "argmax" if c.op_type == "ArgMax" else "argmin"
    op = mk(
        name,
        axis=int(c.attr("axis", 0)),
        keepdims=bool(c.attr("keepdims", 1)),
        select_last_index=bool(c.attr("select_last_index", 0)),
    )
    return c.emit(op, cast(c, x, DType.u8) if x.dtype == DType.bool else x)


def convert_cumsum(c: NodeCtx) -> OT:
    axis = int(c.ints(1)[0])
    op = mk(
        "cumsum",
        axis=axis,
        exclusive=bool(c.attr("exclusive", 0)),
        reverse=bool(c.attr("reverse", 0)),
    )
    return c.emit(op, c.x(0))


def convert_topk(c: NodeCtx) -> Any:
    x = c.x(0)
    k = norm(c.ints(1)[0])
    op = mk(
        "topk",
        k=k,
        axis=int(c.attr("axis", -1)),
        largest=bool(c.attr("largest", 1)),
        sorted=bool(c.attr("sorted", 1)),
    )
    values, indices = c.emit(op, x)
    return [values, indices]


def _coerce_2d(c: NodeCtx, op_name: str) -> OT:
    """Softmax-family before opset 13: flatten to [prod(:axis), prod(axis:)], apply on the
    last axis, restore the shape."""
    x = c.x(0)
    axis = int(c.attr("axis", 1)) % max(x.rank, 1)
    flat = c.emit(mk("flatten", axis=axis), x)
    y = _apply(c, op_name, flat, 1)
    return c.emit(mk("reshape", shape=x.shape), y)


def _apply(c: NodeCtx, op_name: str, x: OT, axis: int) -> OT:
    if op_name != "hardmax":
        return c.emit(mk(op_name, axis=axis), x)
    ax = axis % x.rank
    depth = x.shape[ax]
    if not isinstance(depth, int):
        c.fail(f"Hardmax over a symbolic axis ({x.type})")
    idx = c.emit(mk("argmax", axis=ax, keepdims=False), x)
    return c.emit(mk("one_hot", depth=depth, axis=ax, dtype=x.dtype), idx)


def softmax_like(op_name: str):
    def convert_softmax(c: NodeCtx) -> OT:
        if c.since < 13:
            return _coerce_2d(c, op_name)
        return _apply(c, op_name, c.x(0), int(c.attr("axis", -1)))

    convert_softmax.__name__ = f"convert_{op_name}"
    return convert_softmax


_REDUCE_VERSIONS = {
    "ReduceSum": (11, 13),
    "ReduceMean": (11, 13, 18),
    "ReduceMax": (11, 12, 13, 18, 20),
    "ReduceMin": (11, 12, 13, 18, 20),
    "ReduceProd": (11, 13, 18),
    "ReduceL1": (11, 13, 18),
    "ReduceL2": (11, 13, 18),
    "ReduceSumSquare": (11, 13, 18),
    "ReduceLogSumExp": (11, 13, 18, 28),
    "ReduceLogSum": (11, 13, 18, 28),
}

ROWS: list[Row] = [(op, vs, convert_reduce) for op, vs in _REDUCE_VERSIONS.items()] + [
    ("ArgMax", (11, 12, 13), convert_arg),
    ("ArgMin", (11, 12, 13), convert_arg),
    ("CumSum", (11, 14), convert_cumsum),
    ("TopK", (10, 11, 24), convert_topk),
    ("Softmax", (11, 13), softmax_like("softmax")),
    ("LogSoftmax", (11, 13), softmax_like("log_softmax")),
    ("Hardmax", (11, 13), softmax_like("hardmax")),
]
