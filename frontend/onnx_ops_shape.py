"""ONNX converters for shape and data-movement ops (Shape, Reshape, Slice, Concat, Split, Pad,
Expand, ...), constants and casts. Shape-like operands are folded at import: when they hold
symbolic dims the result is computed on numpy object arrays (see `OT.symbolic`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy

from ..ir.dtypes import DType
from ..ir.shapes import Dim, broadcast_shapes, dim_eq, floor_div, is_static, norm, numel
from .onnx_ops import Row, cast, mk, onnx_dtype
from .onnx_ops_ctx import NARROW, OT, NodeCtx, tensor_to_numpy

HUGE = 2**62  # |bound| >= HUGE means "to the end" in Slice


def _axis(axis: int, rank: int, c: NodeCtx) -> int:
    if not -rank <= axis < rank:
        c.fail(f"axis {axis} out of range for rank {rank}")
    return axis % rank


def _obj(ot: OT) -> np.ndarray:
    assert ot.const is not None
    return ot.const.astype(object)


def _fold_all(c: NodeCtx, *ots: OT | None) -> bool:
    """Every given operand is known and one holds symbolic dims: fold on object arrays."""
    present = [o for o in ots if o is not None]
    return all(o.const is not None for o in present) and any(o.symbolic for o in present)


# -- shapes ------------------------------------------------------------------------------------
def convert_shape(c: NodeCtx) -> OT:
    x = c.x(0)
    start, end = int(c.attr("start", 0)), c.attr("end")
    dims = list(x.shape[start : end if end is None else int(end)])
    arr = np.empty(len(dims), dtype=object)
    arr[:] = dims
    return c.const_ot(arr, DType.i64)


def convert_size(c: NodeCtx) -> OT:
    return c.const_ot(np.array(numel(c.x(0).shape), dtype=object), DType.i64)


def reshape_target(c: NodeCtx, x: OT, spec: list[Dim], allowzero: bool) -> list[Dim]:
    """ONNX Reshape's shape operand resolved: 0 copies the input dim (unless allowzero), -1 is
    inferred from the element count."""
    out: list[Dim] = []
    infer_at = None
    for i, d in enumerate(spec):
        if is_static(d) and d == 0 and not allowzero:
            if i >= x.rank:
                c.fail(f"shape {spec}: 0 at {i} copies a dim the input {x.type} lacks")
            out.append(x.shape[i])
        elif is_static(d) and d == -1:
            if infer_at is not None:
                c.fail(f"shape {spec} has two -1")
            infer_at = i
            out.append(1)
        else:
            out.append(d)
    if infer_at is not None:
        known = numel(out)
        if is_static(known) and known == 0:
            c.fail(f"cannot infer -1 in {spec} next to a zero dim")
        total = numel(x.shape)
        if is_static(total) and is_static(known):
            if total % known:
                c.fail(f"shape {spec} does not divide {total} elements")
            out[infer_at] = total // known
        else:
            out[infer_at] = norm(sympy.sympify(total) / known)
    return out


def convert_reshape(c: NodeCtx) -> OT:
    x = c.x(0)
    if c.since < 5:
        c.fail("Reshape-1 (shape attribute) is not supported")
    shape = reshape_target(c, x, c.ints(1), bool(c.attr("allowzero", 0)))
    if x.symbolic:
        return c.const_ot(_obj(x).reshape([int(d) for d in shape]), x.dtype)
    return c.emit(mk("reshape", shape=tuple(shape)), x)


def convert_flatten(c: NodeCtx) -> OT:
    x = c.x(0)
    axis = int(c.attr("axis", 1))
    if x.symbolic:
        ax = axis % (x.rank + 1) if axis < 0 else axis
        return c.const_ot(_obj(x).reshape(math.prod(x.shape[:ax]), -1), x.dtype)
    return c.emit(mk("flatten", axis=axis), x)


def _axes_operand(c: NodeCtx, i: int, attr_before: int) -> list[int] | None:
    """Axes from an attribute (before version `attr_before`) or from operand i."""
    if c.since < attr_before:
        v = c.attr("axes")
        return None if v is None else [int(a) for a in v]
    return [int(a) for a in c.ints(i)] if c.has(i) else None


def convert_squeeze(c: NodeCtx) -> OT:
    x = c.x(0)
    axes = _axes_operand(c, 1, 13)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if is_static(d) and d == 1]
    axes = sorted(_axis(a, x.rank, c) for a in axes)
    if x.symbolic:
        return c.const_ot(np.squeeze(_obj(x), axis=tuple(axes)), x.dtype)
    return c.emit(mk("squeeze", axes=tuple(axes)), x)


def convert_unsqueeze(c: NodeCtx) -> OT:
    x = c.x(0)
    axes = _axes_operand(c, 1, 13) or []
    r = x.rank + len(axes)
    axes = sorted(_axis(a, r, c) for a in axes)
    if x.symbolic:
        return c.const_ot(np.expand_dims(_obj(x), tuple(axes)), x.dtype)
    return c.emit(mk("unsqueeze", axes=tuple(axes)), x)


def convert_transpose(c: NodeCtx) -> OT:
    x = c.x(0)
    perm = c.attr("perm")
    perm = tuple(int(p) for p in perm) if perm is not None else tuple(reversed(range(x.rank)))
    if x.symbolic:
        return c.const_ot(np.transpose(_obj(x), perm), x.dtype)
    return c.emit(mk("transpose", perm=perm), x)


def convert_concat(c: NodeCtx) -> OT:
    xs = [c.x(i) for i in range(len(c.ins)) if c.has(i)]
    axis = int(c.attr("axis"))
    if _fold_all(c, *xs):
        ax = _axis(axis, xs[0].rank, c)
        return c.const_ot(np.concatenate([_obj(x) for x in xs], axis=ax), xs[0].dtype)
    if len(xs) == 1:
        return c.emit(mk("identity"), xs[0])
    return c.emit(mk("concat", axis=axis), *xs)


def convert_gather(c: NodeCtx) -> OT:
    x, idx = c.x(0), c.x(1)
    axis = int(c.attr("axis", 0))
    if _fold_all(c, x, idx):
        ax = _axis(axis, x.rank, c)
        i = idx.const.astype(np.int64)
        n = x.shape[ax]
        return c.const_ot(np.take(_obj(x), np.where(i < 0, i + n, i), axis=ax), x.dtype)
    if idx.dtype not in (DType.i32, DType.i64):
        c.fail(f"indices of dtype {idx.dtype}")
    return c.emit(mk("gather", axis=axis), x, idx)


# -- slicing -----------------------------------------------------------------------------------
def _clamp(v: Dim) -> Dim:
    if is_static(v) and v >= HUGE:
        return 2**63 - 1
    if is_static(v) and v <= -HUGE:
        return -(2**63)
    return v


def convert_slice(c: NodeCtx) -> OT:
    x = c.x(0)
    if c.since < 10:
        starts, ends = list(c.attr("starts")), list(c.attr("ends"))
        axes = list(c.attr("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = c.ints(1), c.ints(2)
        axes = [int(a) for a in c.ints(3)] if c.has(3) else list(range(len(starts)))
        steps = [int(s) for s in c.ints(4)] if c.has(4) else [1] * len(starts)
    axes = [_axis(int(a), x.rank, c) for a in axes]
    starts, ends = [_clamp(norm(s)) for s in starts], [_clamp(norm(e)) for e in ends]
    if x.symbolic and all(is_static(v) for v in starts + ends):
        index = [slice(None)] * x.rank
        for a, s, e, st in zip(axes, starts, ends, steps):
            index[a] = slice(s, e, st)
        return c.const_ot(_obj(x)[tuple(index)], x.dtype)
    y = x
    plain = [], [], [], []
    for a, s, e, st in zip(axes, starts, ends, steps):
        if (
            st == 1
            and not (is_static(s) and is_static(e))
            and is_static(x.shape[a])
            and c.prove_le(0, s)
            and c.prove_le(s, e)
            and c.prove_le(e, x.shape[a])
        ):
            # A symbolic window inside a static axis: the IR would clamp it to
            # Min(end, dim), which only the symbol bounds resolve; gather a range instead.
            idx = c.emit(mk("range", start=s, limit=e, delta=1, dtype=DType.i64))
            y = c.emit(mk("gather", axis=a), y, idx)
            continue
        for lst, v in zip(plain, (a, s, e, st)):
            lst.append(v)
    if plain[0]:
        y = c.emit(
            mk(
                "slice",
                axes=tuple(plain[0]),
                starts=tuple(plain[1]),
                ends=tuple(plain[2]),
                steps=tuple(plain[3]),
            ),
            y,
        )
    return y


def split_sizes(c: NodeCtx, d: Dim, n: int) -> list[Dim]:
    """num_outputs-style split of a dim of size d: ceil(d/n) each, the last one smaller."""
    if is_static(d):
        chunk = -(-d // n)
        sizes = [min(chunk, max(d - i * chunk, 0)) for i in range(n)]
        return sizes
    part = floor_div(d, n)
    if not dim_eq(part * n, d):
        c.fail(f"cannot split symbolic dim {d} into {n} parts")
    return [part] * n


def convert_split(c: NodeCtx) -> Any:
    x = c.x(0)
    axis = _axis(int(c.attr("axis", 0)), x.rank, c)
    if c.since < 13:
        sizes = c.attr("split")
    else:
        sizes = c.ints(1) if c.has(1) else None
    n = c.n_out
    if sizes is None:
        sizes = split_sizes(c, x.shape[axis], int(c.attr("num_outputs", n)))
    sizes = [norm(s) for s in sizes]
    if x.symbolic:
        cuts = np.cumsum([int(s) for s in sizes])[:-1]
        return [c.const_ot(p, x.dtype) for p in np.split(_obj(x), cuts, axis=axis)]
    outs = c.emit(mk("split", axis=axis, sizes=tuple(sizes)), x)
    return list(outs) if isinstance(outs, tuple) else [outs]


# -- padding, tiling, broadcasting ----------------------------------------------------------------
def convert_pad(c: NodeCtx) -> OT:
    x = c.x(0)
    mode = c.attr("mode", "constant")
    if c.since < 11:
        pads, value = [int(p) for p in c.attr("pads")], float(c.attr("value", 0.0))
    else:
        pads = c.ints(1)
        value = 0.0
        if c.has(2):
            v = c.const(2)
            value = v.reshape(-1)[0].item() if v.size else 0.0
        if c.has(3):
            axes = [_axis(int(a), x.rank, c) for a in c.ints(3)]
            full: list[Dim] = [0] * (2 * x.rank)
            for k, a in enumerate(axes):
                full[a], full[x.rank + a] = pads[k], pads[len(axes) + k]
            pads = full
    if x.dtype == DType.bool:
        value = float(bool(value))
    return c.emit(mk("pad", pads=tuple(pads), mode=mode, value=float(value)), x)


def convert_tile(c: NodeCtx) -> OT:
    return c.emit(mk("tile", repeats=tuple(c.ints(1))), c.x(0))


def convert_expand(c: NodeCtx) -> OT:
    x = c.x(0)
    shape = broadcast_shapes(x.shape, c.ints(1))
    if shape is None:
        c.fail(f"{x.type} does not broadcast with {c.ints(1)}")
    if x.symbolic:
        return c.const_ot(np.broadcast_to(_obj(x), [int(d) for d in shape]).copy(), x.dtype)
    return c.emit(mk("expand", shape=tuple(shape)), x)


# -- constants, casts, identities -----------------------------------------------------------------
def convert_constant(c: NodeCtx) -> OT:
    for name, dt in (
        ("value_float", DType.f32),
        ("value_floats", DType.f32),
        ("value_int", DType.i64),
        ("value_ints", DType.i64),
    ):
        if name in c.attrs:
            return c.const_ot(np.array(c.attr(name), dtype=dt.np), dt)
    if "value" in c.attrs:
        arr, dt = tensor_to_numpy(c.attrs["value"].t, "Constant value")
        return c.const_ot(arr, dt)
    c.fail(f"Constant with {sorted(c.attrs)} (strings and sparse tensors are not supported)")


def convert_constant_of_shape(c: NodeCtx) -> OT:
    shape = tuple(c.ints(0)) if c.x(0).shape != (0,) else ()
    value, dtype = 0.0, DType.f32
    if "value" in c.attrs:
        arr, dtype = tensor_to_numpy(c.attrs["value"].t, "ConstantOfShape value")
        value = arr.reshape(-1)[0].item()
    return c.emit(mk("full", shape=shape, value=float(value), dtype=dtype))


def convert_range(c: NodeCtx) -> OT:
    x = c.x(0)
    vals = []
    for i in range(3):
        v = c.const(i).reshape(-1)[0]
        vals.append(float(v) if x.dtype.is_float and not c.x(i).symbolic else norm(v))
    return c.emit(mk("range", start=vals[0], limit=vals[1], delta=vals[2], dtype=x.dtype))


def convert_cast(c: NodeCtx) -> OT:
    x = c.x(0)
    if int(c.attr("to")) in NARROW:
        return cast_narrow(c, x, int(c.attr("to")))
    to = onnx_dtype(c, int(c.attr("to")))
    if x.symbolic and to != DType.bool:
        return c.const_ot(x.const, to)  # dims stay exact integers in any number type
    if to == x.dtype:
        return c.emit(mk("identity"), x)
    return _cast_onnx(c, x, to)


def cast_narrow(c: NodeCtx, x: OT, elem: int) -> OT:
    """Cast to INT2/UINT2: truncate, then wrap into the 2-bit range (as ml_dtypes and ONNX's
    tests do), kept in 8-bit storage marked with the ONNX type."""
    storage, lo, _ = NARROW[elem]
    if x.narrow:
        x = cast(c, x, DType.i32)
    v = cast(c, x, DType.i32)
    v = c.emit(mk("sub"), v, c.scalar(lo, DType.i32))
    v = c.emit(mk("mod"), v, c.scalar(4, DType.i32))
    v = cast(c, c.emit(mk("add"), v, c.scalar(lo, DType.i32)), storage)
    return OT(v.dtype, v.shape, value=v.value, const=v.const, deps=v.deps, narrow=elem)


def _cast_onnx(c: NodeCtx, x: OT, to: DType) -> OT:
    """ONNX Cast: float -> int4/uint4 truncates then wraps (through i32), unlike the IR cast
    which saturates out-of-range floats."""
    if to in (DType.i4, DType.u4) and x.dtype.is_float:
        x = cast(c, x, DType.i32)
    return cast(c, x, to)


def convert_cast_like(c: NodeCtx) -> OT:
    x, like = c.x(0), c.x(1)
    if like.narrow:
        return cast_narrow(c, x, like.narrow)
    if x.symbolic and like.dtype != DType.bool:
        return c.const_ot(x.const, like.dtype)
    return _cast_onnx(c, x, like.dtype) if x.dtype != like.dtype else c.emit(mk("identity"), x)


def convert_identity(c: NodeCtx) -> OT:
    x = c.x(0)
    return x if x.symbolic else c.emit(mk("identity"), x)


def convert_dropout(c: NodeCtx) -> Any:
    x = c.x(0)
    training = bool(c.const(2).reshape(-1)[0]) if c.has(2) else False
    ratio = float(c.const(1).reshape(-1)[0]) if c.has(1) else 0.5
    if training and ratio != 0.0:
        c.fail("training-mode Dropout is random")
    y = c.emit(mk("identity"), x)
    if not c.wants(1):
        return [y]
    mask = c.emit(mk("full", shape=x.shape, value=1.0, dtype=DType.bool))
    return [y, mask]


def convert_eye_like(c: NodeCtx) -> OT:
    x = c.x(0)
    dt = onnx_dtype(c, int(c.attr("dtype"))) if c.attr("dtype") is not None else x.dtype
    if len(x.shape) != 2 or not all(is_static(d) for d in x.shape):
        c.fail(f"EyeLike needs a static 2-D input, got {x.type}")
    return c.const_ot(np.eye(*x.shape, k=int(c.attr("k", 0)), dtype=dt.np), dt)


ROWS: list[Row] = [
    ("Shape", (13, 15, 19, 21, 23, 24, 25), convert_shape),
    ("Size", (13, 19, 21, 23, 24, 25), convert_size),
    ("Reshape", (5, 13, 14, 19, 21, 23, 24, 25), convert_reshape),
    ("Flatten", (9, 11, 13, 21, 23, 24, 25), convert_flatten),
    ("Squeeze", (11, 13, 21, 23, 24, 25), convert_squeeze),
    ("Unsqueeze", (11, 13, 21, 23, 24, 25), convert_unsqueeze),
    ("Transpose", (13, 21, 23, 24, 25), convert_transpose),
    ("Concat", (4, 11, 13), convert_concat),
    ("Gather", (11, 13), convert_gather),
    ("Slice", (10, 11, 13), convert_slice),
    ("Split", (11, 13, 18), convert_split),
    ("Pad", (11, 13, 18, 19, 21, 23, 24, 25), convert_pad),
    ("Tile", (6, 13), convert_tile),
    ("Expand", (8, 13), convert_expand),
    ("Constant", (9, 11, 12, 13, 19, 21, 23, 24, 25), convert_constant),
    ("ConstantOfShape", (9, 20, 21, 23, 24, 25), convert_constant_of_shape),
    ("Range", (11, 27), convert_range),
    ("Cast", (6, 9, 13, 19, 21, 23, 24, 25, 28), convert_cast),
    ("CastLike", (15, 19, 21, 23, 24, 25), convert_cast_like),
    ("Identity", (1, 13, 14, 16, 19, 21, 23, 24, 25), convert_identity),
    ("Dropout", (12, 13, 22), convert_dropout),
    ("EyeLike", (9, 22), convert_eye_like),
]
