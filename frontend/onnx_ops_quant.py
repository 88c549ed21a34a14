"""ONNX converters for quantization: QuantizeLinear / DequantizeLinear as the IR's `quantize` /
`dequantize` ops (per tensor, per axis, blocked), falling back to elementwise ops with ONNX's
exact rounding (round half to even, then saturate) for the rest; DynamicQuantizeLinear; and the
integer ops MatMulInteger (`matmul_integer`), ConvInteger, QLinearMatMul, QLinearConv.

A DequantizeLinear of a quantized weight (an initializer) is kept as a node rather than folded
to float, so `fuse_quantized_linear` can turn the MatMul / Gemm it feeds into a quantized
linear."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.dtypes import DType
from ..ir.ops.quant import DEQUANT_DTYPES
from ..ir.ops.quant import QUANT_RANGES as OP_RANGES
from ..ir.ops.source import MAX_INLINE_CONSTANT
from .onnx_ops import Row, cast, mk, onnx_dtype
from .onnx_ops_ctx import OT, NodeCtx

QUANT_RANGES = {
    DType.u8: (0, 255),
    DType.i8: (-128, 127),
    DType.i16: (-32768, 32767),
    DType.u4: (0, 15),
    DType.i4: (-8, 7),
    DType.i32: (-(2**31), 2**31 - 1),
}


def _op_layout(c: NodeCtx, x: OT, scale: OT, zp: OT | None, axis: int, block: int):
    """(axis, block, scale, zero point) for the IR ops, or None when ONNX's layout does not
    map onto them. Scales of one element are per tensor (reshaped to scalars)."""
    if scale.rank == 0 or (scale.rank == 1 and scale.shape[0] == 1 and not block):
        if zp is not None and (zp.rank > 1 or zp.rank == 1 and zp.shape[0] != 1):
            return None
        scale = c.emit(mk("reshape", shape=()), scale) if scale.rank else scale
        zp = c.emit(mk("reshape", shape=()), zp) if zp is not None and zp.rank else zp
        return None, 0, scale, zp
    if not -x.rank <= axis < x.rank:
        return None
    if block and scale.rank != x.rank or not block and scale.rank != 1:
        return None
    return axis % x.rank, block, scale, zp


def _unfolded(c: NodeCtx, x: OT) -> OT:
    """A large known integer tensor (a quantized weight) as a graph value, so the op reading
    it is emitted instead of folded into a float constant."""
    if x.const is None or x.symbolic or x.const.size <= MAX_INLINE_CONSTANT:
        return x
    return OT(x.dtype, x.shape, value=c.imp.value_of(x), deps=x.deps)


def per_axis(c: NodeCtx, p: OT, x: OT, axis: int, block: int) -> OT:
    """A scale / zero point made broadcastable to x (ONNX's reshape_input): scalars stay,
    1-D per-axis values go to `axis`, blocked values repeat `block` times along it."""
    if p.rank == 0:
        return p
    if p.rank == 1 and p.shape[0] == 1 and not block:
        return c.emit(mk("reshape", shape=()), p)
    ax = axis % x.rank
    if not block:
        shape = [1] * x.rank
        shape[ax] = p.shape[0]
        return c.emit(mk("reshape", shape=tuple(shape)), p)
    n = x.shape[ax]
    if not isinstance(n, int):
        c.fail("blocked quantization over a symbolic axis")
    idx = c.const_ot(np.arange(n, dtype=np.int64) // block, DType.i64)
    return c.emit(mk("gather", axis=ax), p, idx)


def quantize(
    c: NodeCtx, x: OT, scale: OT, zp: OT | None, target: DType, compute: DType | None = None
) -> OT:
    """saturate(round_half_even(x / scale) + zp) as `target`."""
    if target not in QUANT_RANGES:
        c.fail(f"quantizing to {target}")
    work = compute or x.dtype
    q = c.emit(mk("div"), cast(c, x, work), cast(c, scale, work))
    q = cast(c, c.emit(mk("round"), q), DType.f64)
    if zp is not None:
        q = c.emit(mk("add"), q, cast(c, zp, DType.f64))
    lo, hi = QUANT_RANGES[target]
    return cast(c, c.emit(mk("clip", min=float(lo), max=float(hi)), q), target)


def convert_quantize(c: NodeCtx) -> OT:
    x, scale, zp = c.x(0), c.x(1), c.opt(2)
    axis, block = int(c.attr("axis", 1)), int(c.attr("block_size", 0))
    if zp is not None:
        target = zp.dtype
    elif c.attr("output_dtype"):
        target = onnx_dtype(c, int(c.attr("output_dtype")))
    else:
        target = DType.u8
    precision = onnx_dtype(c, int(c.attr("precision"))) if c.attr("precision") else None
    if precision is None and target in OP_RANGES and x.dtype.is_float:
        layout = _op_layout(c, x, scale, zp, axis, block)
        if layout is not None:
            ax, blk, sc, z = layout
            return c.emit(mk("quantize", axis=ax, dtype=target, block=blk), x, sc, z)
    scale = per_axis(c, scale, x, axis, block)
    zp = per_axis(c, zp, x, axis, block) if zp is not None else None
    return quantize(c, x, scale, zp, target, precision)


def convert_dequantize(c: NodeCtx) -> OT:
    x, scale, zp = c.x(0), c.x(1), c.opt(2)
    axis, block = int(c.attr("axis", 1)), int(c.attr("block_size", 0))
    out = onnx_dtype(c, int(c.attr("output_dtype"))) if c.attr("output_dtype") else scale.dtype
    if out == scale.dtype and x.dtype in DEQUANT_DTYPES and x.dtype != DType.i32:
        layout = _op_layout(c, x, scale, zp, axis, block)
        if layout is not None:
            ax, blk, sc, z = layout
            return c.emit(mk("dequantize", axis=ax, block=blk), _unfolded(c, x), sc, z)
    dx = cast(c, x, DType.f32)
    if zp is not None:
        dx = c.emit(mk("sub"), dx, cast(c, per_axis(c, zp, x, axis, block), DType.f32))
    y = c.emit(mk("mul"), dx, cast(c, per_axis(c, scale, x, axis, block), DType.f32))
    return cast(c, y, out)


def convert_dynamic_quantize(c: NodeCtx) -> Any:
    """y_scale = (max(0, max x) - min(0, min x)) / 255; zp = saturate(round(-min / scale))."""
    x = c.x(0)
    axes = tuple(range(x.rank))
    zero = c.scalar(0.0, DType.f32)
    hi = c.emit(mk("maximum"), c.emit(mk("reduce_max", axes=axes), x), zero)
    lo = c.emit(mk("minimum"), c.emit(mk("reduce_min", axes=axes), x), zero)
    scale = c.emit(mk("div"), c.emit(mk("sub"), hi, lo), c.scalar(255.0, DType.f32))
    zp_float = c.emit(mk("sub"), zero, c.emit(mk("div"), lo, scale))
    zp = cast(c, c.emit(mk("clip", min=0.0, max=255.0), c.emit(mk("round"), zp_float)), DType.u8)
    y = quantize(c, x, scale, zp, DType.u8)
    return [y, scale, zp]


def _centered(c: NodeCtx, x: OT, zp: OT | None, row_axis: int | None) -> OT:
    """x - zero point, as i32; a 1-D zero point applies along `row_axis` of x."""
    wide = cast(c, x, DType.i32)
    if zp is None:
        return wide
    z = cast(c, zp, DType.i32)
    if z.rank == 1 and z.shape[0] != 1 and row_axis is not None:
        shape = [1] * x.rank
        shape[row_axis % x.rank] = z.shape[0]
        z = c.emit(mk("reshape", shape=tuple(shape)), z)
    return c.emit(mk("sub"), wide, z)


def _zero_point_i32(c: NodeCtx, zp: OT | None) -> OT:
    return c.scalar(0, DType.i32) if zp is None else cast(c, zp, DType.i32)


def convert_matmul_integer(c: NodeCtx) -> OT:
    a, b, za, zb = c.x(0), c.x(1), c.opt(2), c.opt(3)
    if a.rank >= 2 and b.rank == 2 and all(z is None or z.rank <= 1 for z in (za, zb)):
        return c.emit(
            mk("matmul_integer"), a, _unfolded(c, b), _zero_point_i32(c, za), _zero_point_i32(c, zb)
        )
    a = _centered(c, c.x(0), c.opt(2), -2)
    b = _centered(c, c.x(1), c.opt(3), -1)
    return c.emit(mk("matmul"), a, b)


def _conv_integer(c: NodeCtx, x: OT, w: OT, x_zp: OT | None, w_zp: OT | None) -> OT:
    from .onnx_ops_nn import _conv_attrs, auto_pads

    xc = cast(c, _centered(c, x, x_zp, None), DType.f64)
    wc = cast(c, _centered(c, w, w_zp, 0), DType.f64)
    kernel, strides, dilations = _conv_attrs(c, x, w.shape[2:])
    pads = auto_pads(c, x, kernel, strides, dilations)
    op = mk(
        "conv", stride=strides, padding=pads, dilation=dilations, groups=int(c.attr("group", 1))
    )
    return c.emit(op, xc, wc)


def convert_conv_integer(c: NodeCtx) -> OT:
    return cast(c, _conv_integer(c, c.x(0), c.x(1), c.opt(2), c.opt(3)), DType.i32)


def _requantize(c: NodeCtx, acc: OT, a_scale: OT, b_scale: OT, y_scale: OT, y_zp: OT) -> OT:
    """round(acc * a_scale * b_scale / y_scale) + y_zp, saturated to y_zp's dtype."""
    scale = c.emit(
        mk("div"),
        c.emit(mk("mul"), cast(c, a_scale, DType.f32), cast(c, b_scale, DType.f32)),
        cast(c, y_scale, DType.f32),
    )
    y = c.emit(mk("mul"), cast(c, acc, DType.f32), scale)
    return quantize(c, y, c.scalar(1.0, DType.f32), y_zp, y_zp.dtype)


def convert_qlinear_matmul(c: NodeCtx) -> OT:
    a = _centered(c, c.x(0), c.x(2), -2)
    b = _centered(c, c.x(3), c.x(5), -1)
    acc = c.emit(mk("matmul"), a, b)
    return _requantize(c, acc, c.x(1), c.x(4), c.x(6), c.x(7))


def convert_qlinear_conv(c: NodeCtx) -> OT:
    x, w = c.x(0), c.x(3)
    acc = _conv_integer(c, x, w, c.x(2), c.x(5))
    w_scale = c.x(4)
    if w_scale.rank == 1 and w_scale.shape[0] != 1:
        w_scale = c.emit(mk("reshape", shape=(w_scale.shape[0],) + (1,) * (x.rank - 2)), w_scale)
    if c.has(8):
        bias = cast(c, c.x(8), DType.f64)
        acc = c.emit(
            mk("add"),
            acc,
            c.emit(mk("reshape", shape=(bias.shape[0],) + (1,) * (x.rank - 2)), bias),
        )
    return _requantize(c, acc, c.x(1), w_scale, c.x(6), c.x(7))


_QDQ_VERSIONS = (10, 13, 19, 21, 23, 24, 25, 28)

ROWS: list[Row] = [
    ("QuantizeLinear", _QDQ_VERSIONS, convert_quantize),
    ("DequantizeLinear", _QDQ_VERSIONS, convert_dequantize),
    ("DynamicQuantizeLinear", (11,), convert_dynamic_quantize),
    ("MatMulInteger", (10,), convert_matmul_integer),
    ("ConvInteger", (10,), convert_conv_integer),
    ("QLinearMatMul", (10, 21), convert_qlinear_matmul),
    ("QLinearConv", (10,), convert_qlinear_conv),
]
