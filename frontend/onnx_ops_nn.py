"""ONNX converters for linear algebra, convolution, pooling and normalization ops."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.dtypes import DType
from ..ir.shapes import is_static
from .onnx_ops import Row, cast, mk
from .onnx_ops_ctx import OT, NodeCtx


# -- linear algebra ------------------------------------------------------------------------------
def convert_matmul(c: NodeCtx) -> OT:
    return c.emit(mk("matmul"), c.x(0), c.x(1))


def convert_gemm(c: NodeCtx) -> OT:
    a, b, bias = c.x(0), c.x(1), c.opt(2)
    alpha, beta = float(c.attr("alpha", 1.0)), float(c.attr("beta", 1.0))
    ta, tb = bool(c.attr("transA", 0)), bool(c.attr("transB", 0))
    if tb and not ta and alpha == 1.0 and (bias is None or (beta == 1.0 and bias.rank == 1)):
        if bias is None or bias.shape[0] == b.shape[0] and bias.shape[0] != 1:
            return c.emit(mk("linear"), a, b, bias)
    if ta:
        a = c.emit(mk("transpose", perm=(1, 0)), a)
    if tb:
        b = c.emit(mk("transpose", perm=(1, 0)), b)
    y = c.emit(mk("matmul"), a, b)
    if alpha != 1.0:
        y = c.emit(mk("mul"), y, c.scalar(alpha, y.dtype))
    if bias is not None and beta != 0.0:
        if beta != 1.0:
            bias = c.emit(mk("mul"), bias, c.scalar(beta, bias.dtype))
        y = c.emit(mk("add"), y, bias)
    return y


def convert_einsum(c: NodeCtx) -> OT:
    xs = [c.x(i) for i in range(len(c.ins))]
    return c.emit(mk("einsum", equation=str(c.attr("equation")).replace(" ", "")), *xs)


# -- convolution and pooling ----------------------------------------------------------------------
def _spatial(c: NodeCtx, x: OT, kernel: tuple[int, ...]) -> tuple[int, ...]:
    dims = x.shape[2:]
    if not all(is_static(d) for d in dims):
        c.fail(f"auto_pad SAME on symbolic spatial dims ({x.type})")
    return tuple(int(d) for d in dims)  # type: ignore[arg-type]


def auto_pads(
    c: NodeCtx, x: OT, kernel: tuple[int, ...], strides: tuple[int, ...], dilations: tuple[int, ...]
) -> tuple[int, ...]:
    """Explicit [begins..., ends...] pads from `auto_pad` / `pads` (ONNX Conv/Pool rules:
    SAME pads so that out = ceil(in / stride), the odd pad at the end for SAME_UPPER)."""
    nd = len(kernel)
    mode = c.attr("auto_pad", "NOTSET")
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        ins = _spatial(c, x, kernel)
        begins, ends = [], []
        for i in range(nd):
            out = -(-ins[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - ins[i])
            small, big = total // 2, total - total // 2
            begins.append(small if mode == "SAME_UPPER" else big)
            ends.append(big if mode == "SAME_UPPER" else small)
        return tuple(begins + ends)
    if mode == "VALID":
        return (0,) * (2 * nd)
    if mode != "NOTSET":
        c.fail(f"auto_pad {mode!r}")
    pads = c.attr("pads")
    return tuple(int(p) for p in pads) if pads is not None else (0,) * (2 * nd)


def _conv_attrs(c: NodeCtx, x: OT, w_kernel: tuple[Any, ...]) -> tuple:
    kernel = tuple(int(k) for k in (c.attr("kernel_shape") or w_kernel))
    nd = len(kernel)
    strides = tuple(int(s) for s in (c.attr("strides") or (1,) * nd))
    dilations = tuple(int(d) for d in (c.attr("dilations") or (1,) * nd))
    return kernel, strides, dilations


def convert_conv(c: NodeCtx) -> OT:
    x, w, b = c.x(0), c.x(1), c.opt(2)
    kernel, strides, dilations = _conv_attrs(c, x, w.shape[2:])
    pads = auto_pads(c, x, kernel, strides, dilations)
    op = mk(
        "conv", stride=strides, padding=pads, dilation=dilations, groups=int(c.attr("group", 1))
    )
    return c.emit(op, x, w, b)


def convert_conv_transpose(c: NodeCtx) -> OT:
    x, w, b = c.x(0), c.x(1), c.opt(2)
    kernel, s, d = _conv_attrs(c, x, w.shape[2:])
    nd = len(kernel)
    op_pad = tuple(int(v) for v in (c.attr("output_padding") or (0,) * nd))
    out_shape = c.attr("output_shape")
    out_shape = tuple(int(v) for v in out_shape[-nd:]) if out_shape is not None else None
    mode = c.attr("auto_pad", "NOTSET")
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        ins = _spatial(c, x, kernel)
        target = out_shape or tuple(ins[i] * s[i] for i in range(nd))
        total = [
            s[i] * (ins[i] - 1) + op_pad[i] + (kernel[i] - 1) * d[i] + 1 - target[i]
            for i in range(nd)
        ]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        pads = tuple(small + big) if mode == "SAME_UPPER" else tuple(big + small)
    elif mode == "VALID" or c.attr("pads") is None:
        pads = (0,) * (2 * nd)
    else:
        pads = tuple(int(p) for p in c.attr("pads"))
    if any(p < 0 for p in pads):
        c.fail(f"negative pads {pads}")
    groups = int(c.attr("group", 1))
    simple = out_shape is None and all(o < si or o < di for o, si, di in zip(op_pad, s, d))
    if simple:
        op = mk(
            "conv_transpose",
            stride=s,
            padding=pads,
            output_padding=op_pad,
            dilation=d,
            groups=groups,
        )
        return c.emit(op, x, w, b)
    # General case: no output_padding, then grow (zeros) or crop the end to the target size,
    # then add the bias everywhere (ONNX's col2im adds it to the grown part too).
    y = c.emit(mk("conv_transpose", stride=s, padding=pads, dilation=d, groups=groups), x, w)
    natural = y.shape[2:]
    target = out_shape or tuple(n + o for n, o in zip(natural, op_pad))
    if not all(is_static(n) for n in natural):
        c.fail("ConvTranspose output_shape with symbolic spatial dims")
    grow = [int(t) - int(n) for t, n in zip(target, natural)]
    if any(g > 0 for g in grow):
        ends = (0, 0) + tuple(max(g, 0) for g in grow)
        y = c.emit(mk("pad", pads=(0,) * (nd + 2) + ends), y)
    if any(g < 0 for g in grow):
        y = c.emit(
            mk(
                "slice",
                axes=tuple(range(2, 2 + nd)),
                starts=(0,) * nd,
                ends=tuple(int(t) for t in target),
                steps=(1,) * nd,
            ),
            y,
        )
    if b is not None:
        bias = c.emit(mk("reshape", shape=(b.shape[0],) + (1,) * nd), b)
        y = c.emit(mk("add"), y, bias)
    return y


# -- normalization ---------------------------------------------------------------------------------
def convert_batch_norm(c: NodeCtx) -> Any:
    x = c.x(0)
    if bool(c.attr("training_mode", 0)) or any(c.wants(i) for i in (1, 2)):
        from .onnx_ops_misc import convert_batch_norm_training

        return convert_batch_norm_training(c)
    params = [cast(c, c.x(i), x.dtype) for i in range(1, 5)]
    return c.emit(mk("batch_norm", eps=float(c.attr("epsilon", 1e-5))), x, *params)


def convert_instance_norm(c: NodeCtx) -> OT:
    x = c.x(0)
    return c.emit(mk("instance_norm", eps=float(c.attr("epsilon", 1e-5))), x, c.x(1), c.x(2))


def _stash(c: NodeCtx, x: OT) -> DType:
    stash = int(c.attr("stash_type", 1))
    return DType.f32 if stash == 1 and x.dtype in (DType.f16, DType.bf16) else x.dtype


def convert_layer_norm(c: NodeCtx) -> Any:
    x, w, b = c.x(0), c.opt(1), c.opt(2)
    axis = int(c.attr("axis", -1)) % x.rank
    eps = float(c.attr("epsilon", 1e-5))
    if not (c.wants(1) or c.wants(2)):
        return [c.emit(mk("layer_norm", axis=axis, eps=eps), x, w, b)]
    work = cast(c, x, _stash(c, x))
    axes = tuple(range(axis, x.rank))
    mean = c.emit(mk("reduce_mean", axes=axes, keepdims=True), work)
    centered = c.emit(mk("sub"), work, mean)
    var = c.emit(mk("reduce_mean", axes=axes, keepdims=True), c.emit(mk("mul"), centered, centered))
    inv = c.emit(mk("rsqrt"), c.emit(mk("add"), var, c.scalar(eps, work.dtype)))
    y = cast(c, c.emit(mk("mul"), centered, inv), x.dtype)
    if w is not None:
        y = c.emit(mk("mul"), y, w)
    if b is not None:
        y = c.emit(mk("add"), y, b)
    return [y, mean, inv]


def convert_group_norm(c: NodeCtx) -> OT:
    x, scale, bias = c.x(0), c.x(1), c.x(2)
    groups = int(c.attr("num_groups"))
    channels = x.shape[1]
    if c.since < 21 and not (is_static(channels) and scale.shape[0] == channels):
        # GroupNormalization-18 scales per group: repeat each value C/G times.
        if not is_static(channels):
            c.fail("per-group scale with a symbolic channel count")
        per = int(channels) // groups
        idx = c.const_ot(np.repeat(np.arange(groups), per), DType.i64)
        scale = c.emit(mk("gather", axis=0), scale, idx)
        bias = c.emit(mk("gather", axis=0), bias, idx)
    op = mk("group_norm", groups=groups, eps=float(c.attr("epsilon", 1e-5)))
    work = cast(c, x, _stash(c, x))
    y = c.emit(op, work, cast(c, scale, work.dtype), cast(c, bias, work.dtype))
    return cast(c, y, x.dtype)


def convert_rms_norm(c: NodeCtx) -> OT:
    x, w = c.x(0), c.opt(1)
    axis = int(c.attr("axis", -1)) % x.rank
    work = cast(c, x, _stash(c, x))
    y = c.emit(mk("rms_norm", axis=axis, eps=float(c.attr("epsilon", 1e-5))), work)
    y = cast(c, y, x.dtype)
    return c.emit(mk("mul"), y, w) if w is not None else y


def convert_mvn(c: NodeCtx) -> OT:
    x = c.x(0)
    axes = tuple(int(a) % x.rank for a in (c.attr("axes") or (0, 2, 3)))
    mean = c.emit(mk("reduce_mean", axes=axes, keepdims=True), x)
    sq_mean = c.emit(mk("reduce_mean", axes=axes, keepdims=True), c.emit(mk("mul"), x, x))
    var = c.emit(mk("sub"), sq_mean, c.emit(mk("mul"), mean, mean))
    std = c.emit(mk("add"), c.emit(mk("sqrt"), var), c.scalar(1e-9, x.dtype))
    return c.emit(mk("div"), c.emit(mk("sub"), x, mean), std)


def convert_lrn(c: NodeCtx) -> OT:
    x = c.x(0)
    size = int(c.attr("size"))
    alpha, beta = float(c.attr("alpha", 1e-4)), float(c.attr("beta", 0.75))
    bias = float(c.attr("bias", 1.0))
    if x.rank < 3:
        c.fail(f"LRN on {x.type}")
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    sq = c.emit(mk("mul"), x, x)
    rest = 1
    for d in x.shape[2:]:
        rest = rest * d
    flat = c.emit(mk("reshape", shape=(x.shape[0], 1, x.shape[1], rest)), sq)
    padded = c.emit(mk("pad", pads=(0, 0, lo, 0, 0, 0, hi, 0)), flat)
    window = c.emit(mk("avg_pool", kernel=(size, 1), count_include_pad=True), padded)
    sums = c.emit(mk("mul"), window, c.scalar(float(size), x.dtype))
    sums = c.emit(mk("reshape", shape=x.shape), sums)
    den = c.emit(
        mk("add"), c.emit(mk("mul"), sums, c.scalar(alpha / size, x.dtype)), c.scalar(bias, x.dtype)
    )
    return c.emit(mk("div"), x, c.emit(mk("pow"), den, c.scalar(beta, x.dtype)))


ROWS: list[Row] = [
    ("MatMul", (9, 13), convert_matmul),
    ("Gemm", (9, 11, 13), convert_gemm),
    ("Einsum", (12, 28), convert_einsum),
    ("Conv", (11, 22), convert_conv),
    ("ConvTranspose", (11, 22), convert_conv_transpose),
    ("BatchNormalization", (9, 14, 15), convert_batch_norm),
    ("InstanceNormalization", (6, 22), convert_instance_norm),
    ("LayerNormalization", (17,), convert_layer_norm),
    ("GroupNormalization", (18, 21), convert_group_norm),
    ("RMSNormalization", (23,), convert_rms_norm),
    ("MeanVarianceNormalization", (9, 13), convert_mvn),
    ("LRN", (13,), convert_lrn),
]
