"""ONNX converters for indexing (Gather*/Scatter*/OneHot), triangles, depth/space moves and
Resize."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ir.dtypes import DType
from ..ir.shapes import is_static
from .onnx_ops import Row, cast, mk
from .onnx_ops_ctx import OT, NodeCtx


def _indices(c: NodeCtx, i: int) -> OT:
    idx = c.x(i)
    return idx if idx.dtype in (DType.i32, DType.i64) else cast(c, idx, DType.i64)


def convert_gather_elements(c: NodeCtx) -> OT:
    return c.emit(mk("gather_elements", axis=int(c.attr("axis", 0))), c.x(0), _indices(c, 1))


def convert_gather_nd(c: NodeCtx) -> OT:
    op = mk("gather_nd", batch_dims=int(c.attr("batch_dims", 0)))
    return c.emit(op, c.x(0), _indices(c, 1))


def convert_scatter_elements(c: NodeCtx) -> OT:
    op = mk(
        "scatter_elements", axis=int(c.attr("axis", 0)), reduction=str(c.attr("reduction", "none"))
    )
    return c.emit(op, c.x(0), _indices(c, 1), c.x(2))


def convert_scatter_nd(c: NodeCtx) -> OT:
    op = mk("scatter_nd", reduction=str(c.attr("reduction", "none")))
    return c.emit(op, c.x(0), _indices(c, 1), c.x(2))


def convert_one_hot(c: NodeCtx) -> OT:
    idx = c.x(0)
    depth = int(np.asarray(c.const(1)).reshape(-1)[0])
    values = c.const(2).reshape(-1)
    vt = c.x(2).dtype
    work = idx if idx.dtype in (DType.i32, DType.i64) else cast(c, idx, DType.i64)
    op = mk(
        "one_hot",
        depth=depth,
        axis=int(c.attr("axis", -1)),
        on_value=float(values[1]),
        off_value=float(values[0]),
        dtype=vt,
    )
    return c.emit(op, work)


def convert_trilu(c: NodeCtx) -> OT:
    k = int(c.ints(1)[0]) if c.has(1) else 0
    return c.emit(mk("trilu", upper=bool(c.attr("upper", 1)), k=k), c.x(0))


def convert_depth_to_space(c: NodeCtx) -> OT:
    op = mk("depth_to_space", blocksize=int(c.attr("blocksize")), mode=str(c.attr("mode", "DCR")))
    return c.emit(op, c.x(0))


def convert_space_to_depth(c: NodeCtx) -> OT:
    if c.attr("mode", "DCR") != "DCR":
        c.fail(f"SpaceToDepth mode {c.attr('mode')!r}")
    return c.emit(mk("space_to_depth", blocksize=int(c.attr("blocksize"))), c.x(0))


def convert_center_crop_pad(c: NodeCtx) -> OT:
    x = c.x(0)
    shape = c.ints(1)
    axes = [int(a) % x.rank for a in (c.attr("axes") or range(x.rank))]
    y = x
    for a, want in zip(axes, shape):
        have = y.shape[a]
        if not (is_static(have) and is_static(want)):
            c.fail("CenterCropPad on symbolic dims")
        have, want = int(have), int(want)
        if want < have:
            start = (have - want) // 2
            y = c.emit(mk("slice", axes=(a,), starts=(start,), ends=(start + want,), steps=(1,)), y)
        elif want > have:
            before = (want - have) // 2
            pads = [0] * (2 * x.rank)
            pads[a], pads[x.rank + a] = before, want - have - before
            y = c.emit(mk("pad", pads=tuple(pads)), y)
    return y if y is not x else c.emit(mk("identity"), x)


def convert_compress(c: NodeCtx) -> OT:
    x = c.x(0)
    cond = c.const(1).reshape(-1).astype(bool)
    axis = c.attr("axis")
    if axis is None:
        x = c.emit(mk("reshape", shape=(math.prod(x.shape),)), x)
        axis = 0
    axis = int(axis) % x.rank
    keep = np.nonzero(cond[: x.shape[axis]])[0].astype(np.int64)
    return c.emit(mk("gather", axis=axis), x, c.const_ot(keep, DType.i64))


def convert_reverse_sequence(c: NodeCtx) -> Any:
    x = c.x(0)
    lens = c.const(1).reshape(-1).astype(np.int64)
    batch_axis, time_axis = int(c.attr("batch_axis", 1)), int(c.attr("time_axis", 0))
    t = x.shape[time_axis]
    if not is_static(t):
        c.fail("ReverseSequence over a symbolic time axis")
    shape = [1] * x.rank
    shape[batch_axis], shape[time_axis] = len(lens), int(t)
    idx = np.zeros((len(lens), int(t)), dtype=np.int64)
    for b, n in enumerate(lens):
        idx[b] = np.concatenate([np.arange(n)[::-1], np.arange(n, int(t))])
    idx = idx if batch_axis < time_axis else idx.T
    full = np.broadcast_to(idx.reshape(shape), [int(d) for d in x.shape])
    return c.emit(mk("gather_elements", axis=time_axis), x, c.const_ot(full.copy(), DType.i64))


ROWS: list[Row] = [
    ("GatherElements", (11, 13), convert_gather_elements),
    ("GatherND", (11, 12, 13), convert_gather_nd),
    ("ScatterElements", (11, 13, 16, 18), convert_scatter_elements),
    ("Scatter", (9, 11), convert_scatter_elements),
    ("ScatterND", (11, 13, 16, 18), convert_scatter_nd),
    ("OneHot", (9, 11, 28), convert_one_hot),
    ("Trilu", (14,), convert_trilu),
    ("DepthToSpace", (11, 13, 28), convert_depth_to_space),
    ("SpaceToDepth", (13, 28), convert_space_to_depth),
    ("CenterCropPad", (18,), convert_center_crop_pad),
    ("Compress", (11, 28), convert_compress),
    ("ReverseSequence", (10, 28), convert_reverse_sequence),
]
