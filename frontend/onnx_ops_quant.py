"""ONNX converters for quantization: QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear
decomposed into IR elementwise ops with ONNX's exact rounding (round half to even, then
saturate), and the integer ops MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.dtypes import DType
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
    scale = per_axis(c, scale, x, axis, block)
    zp = per_axis(c, zp, x, axis, block) if zp is not None else None
    return quantize(c, x, scale, zp, target, precision)


def convert_dequantize(c: NodeCtx) -> OT:
    x, scale, zp = c.x(0), c.x(1), c.opt(2)
    axis, block = int(c.attr("axis", 1)), int(c.attr("block_size", 0))
    out = onnx_dtype(c, int(c.attr("output_dtype"))) if c.attr("output_dtype") else scale.dtype
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


def convert_matmul_integer(c: NodeCtx) -> OT:
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
