"""ONNX converters for pooling: MaxPool, AveragePool, LpPool and the global pools.

The IR pools take padding up to half the window and (for averages) no dilation. Other cases
are decomposed: the input is padded explicitly (including the extra end a ceil-mode output
needs), window sums come from a depthwise conv with a ones kernel, and average divisors from
the same conv over a constant indicator of the counted positions (ONNX counts elements inside
the padded input, or inside the input itself when count_include_pad=0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ir.dtypes import DType
from ..ir.shapes import is_static
from .onnx_ops import Row, cast, mk
from .onnx_ops_ctx import OT, NodeCtx
from .onnx_ops_nn import _spatial, auto_pads


def pool_attrs(c: NodeCtx, x: OT) -> tuple:
    """(kernel, strides, dilations, pads, ceil_mode) with auto_pad resolved."""
    kernel = tuple(int(k) for k in c.attr("kernel_shape"))
    nd = len(kernel)
    strides = tuple(int(s) for s in (c.attr("strides") or (1,) * nd))
    dilations = tuple(int(d) for d in (c.attr("dilations") or (1,) * nd))
    mode = c.attr("auto_pad", "NOTSET")
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        # ONNX's pooling reference pads for the undilated kernel (ceil(in / stride) outputs).
        ins = _spatial(c, x, kernel)
        begins, ends = [], []
        for i in range(nd):
            out = -(-ins[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + kernel[i] - ins[i])
            small, big = total // 2, total - total // 2
            begins.append(small if mode == "SAME_UPPER" else big)
            ends.append(big if mode == "SAME_UPPER" else small)
        pads = tuple(begins + ends)
    else:
        pads = auto_pads(c, x, kernel, strides, dilations)
    return kernel, strides, dilations, pads, bool(c.attr("ceil_mode", 0))


def _fits_ir(kernel: tuple, dilations: tuple, pads: tuple) -> bool:
    nd = len(kernel)
    return all(
        max(pads[i], pads[nd + i]) <= (dilations[i] * (kernel[i] - 1) + 1) // 2 for i in range(nd)
    )


def _out_len(n: int, k_eff: int, s: int, pb: int, pe: int, ceil_mode: bool) -> int:
    span = n + pb + pe - k_eff
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    return out - 1 if (out - 1) * s >= n + pb else out


def _explicit(
    c: NodeCtx,
    x: OT,
    kernel: tuple,
    strides: tuple,
    dilations: tuple,
    pads: tuple,
    ceil_mode: bool,
    fill: float,
) -> tuple[OT, tuple[int, ...], tuple[tuple, ...]]:
    """x padded with `fill` for every window of every output; (padded, out dims, per-dim
    (pad_begin, length, pad_end, extra))."""
    nd = len(kernel)
    lengths = _spatial(c, x, kernel)
    outs, geo = [], []
    for i in range(nd):
        k_eff = dilations[i] * (kernel[i] - 1) + 1
        out = _out_len(lengths[i], k_eff, strides[i], pads[i], pads[nd + i], ceil_mode)
        need = (out - 1) * strides[i] + k_eff
        extra = max(0, need - (lengths[i] + pads[i] + pads[nd + i]))
        outs.append(out)
        geo.append((pads[i], lengths[i], pads[nd + i], extra))
    full = (0, 0) + tuple(g[0] for g in geo) + (0, 0) + tuple(g[2] + g[3] for g in geo)
    return c.emit(mk("pad", pads=full, value=fill), x), tuple(outs), tuple(geo)


def _crop(c: NodeCtx, y: OT, outs: tuple[int, ...]) -> OT:
    nd = len(outs)
    if tuple(y.shape[2:]) == outs:
        return y
    return c.emit(
        mk("slice", axes=tuple(range(2, 2 + nd)), starts=(0,) * nd, ends=outs, steps=(1,) * nd), y
    )


def _window_sum(
    c: NodeCtx, xp: OT, channels: Any, kernel: tuple, strides: tuple, dilations: tuple
) -> OT:
    if not is_static(channels):
        c.fail("pooling fallback needs a static channel count")
    w = c.const_ot(np.ones((int(channels), 1) + kernel, dtype=xp.dtype.np), xp.dtype)
    op = mk("conv", stride=strides, dilation=dilations, groups=int(channels))
    return c.emit(op, xp, w)


def sum_pool(
    c: NodeCtx,
    x: OT,
    kernel: tuple,
    strides: tuple,
    dilations: tuple,
    pads: tuple,
    ceil_mode: bool,
    counted: str | None,
) -> OT:
    """Window sums (zero padding), divided by the count of `counted` positions
    ("padded": inside the padded input, "input": inside x) when given."""
    xp, outs, geo = _explicit(c, x, kernel, strides, dilations, pads, ceil_mode, 0.0)
    sums = _crop(c, _window_sum(c, xp, x.shape[1], kernel, strides, dilations), outs)
    if counted is None:
        return sums
    mask = np.ones((1, 1), dtype=x.dtype.np)
    for pb, n, pe, extra in geo:
        line = np.zeros(pb + n + pe + extra, dtype=x.dtype.np)
        if counted == "padded":
            line[: pb + n + pe] = 1
        else:
            line[pb : pb + n] = 1
        mask = np.multiply.outer(mask, line)
    mask = mask.reshape((1, 1) + mask.shape[2:])
    counts = _crop(
        c, _window_sum(c, c.const_ot(mask, x.dtype), 1, kernel, strides, dilations), outs
    )
    return c.emit(mk("div"), sums, counts)


def max_pool_with_indices(
    c: NodeCtx, x: OT, kernel: tuple, strides: tuple, dilations: tuple, pads: tuple, ceil_mode: bool
) -> list[OT]:
    """MaxPool's values and Indices: every window offset sliced from the -inf padded input,
    stacked, argmax'ed (first maximum wins), and turned into a flat row-major index of x
    (storage_order=1: column-major over the spatial dims)."""
    nd = len(kernel)
    if not all(is_static(d) for d in x.shape):
        c.fail("MaxPool Indices with symbolic dims")
    shape = [int(d) for d in x.shape]
    xp, outs, _ = _explicit(c, x, kernel, strides, dilations, pads, ceil_mode, -math.inf)
    offsets = list(np.ndindex(*kernel))
    views = []
    for off in offsets:
        starts = tuple(o * d for o, d in zip(off, dilations))
        ends = tuple(st + s * (n - 1) + 1 for st, s, n in zip(starts, strides, outs))
        v = c.emit(
            mk("slice", axes=tuple(range(2, 2 + nd)), starts=starts, ends=ends, steps=strides), xp
        )
        views.append(c.emit(mk("unsqueeze", axes=(0,)), v))
    stacked = c.emit(mk("concat", axis=0), *views) if len(views) > 1 else views[0]
    values = c.emit(mk("reduce_max", axes=(0,)), stacked)
    which = c.emit(mk("argmax", axis=0), stacked)
    flat: OT | None = None
    col_major = int(c.attr("storage_order", 0)) == 1
    spatial = shape[2:]
    order = list(range(nd))[::-1] if col_major else list(range(nd))
    for i in order:
        table = c.const_ot(np.array([o[i] * dilations[i] for o in offsets], np.int64), DType.i64)
        grid_shape = [1] * (2 + nd)
        grid_shape[2 + i] = outs[i]
        grid = np.arange(outs[i], dtype=np.int64).reshape(grid_shape) * strides[i] - pads[i]
        pos = c.emit(
            mk("add"), c.emit(mk("gather", axis=0), table, which), c.const_ot(grid, DType.i64)
        )
        flat = (
            pos
            if flat is None
            else c.emit(mk("add"), c.emit(mk("mul"), flat, c.scalar(spatial[i], DType.i64)), pos)
        )
    n_c = np.arange(shape[0] * shape[1], dtype=np.int64).reshape(shape[0], shape[1])
    base = c.const_ot(n_c.reshape(shape[:2] + [1] * nd) * math.prod(spatial), DType.i64)
    return [values, c.emit(mk("add"), flat, base)]


def convert_max_pool(c: NodeCtx) -> Any:
    x = c.x(0)
    kernel, strides, dilations, pads, ceil_mode = pool_attrs(c, x)
    if c.wants(1):
        return max_pool_with_indices(c, x, kernel, strides, dilations, pads, ceil_mode)
    if int(c.attr("storage_order", 0)) != 0:
        c.fail("storage_order=1 without Indices")
    work = cast(c, x, DType.i16) if x.dtype in (DType.u8, DType.i8) else x
    if _fits_ir(kernel, dilations, pads):
        op = mk(
            "max_pool",
            kernel=kernel,
            stride=strides,
            padding=pads,
            dilation=dilations,
            ceil_mode=ceil_mode,
        )
        return cast(c, c.emit(op, work), x.dtype)
    lowest = -math.inf if work.dtype.is_float else float(np.iinfo(work.dtype.np).min)
    xp, outs, _ = _explicit(c, work, kernel, strides, dilations, pads, ceil_mode, lowest)
    y = c.emit(mk("max_pool", kernel=kernel, stride=strides, dilation=dilations), xp)
    return cast(c, _crop(c, y, outs), x.dtype)


def convert_avg_pool(c: NodeCtx) -> OT:
    x = c.x(0)
    kernel, strides, dilations, pads, ceil_mode = pool_attrs(c, x)
    include = bool(c.attr("count_include_pad", 0))
    if all(d == 1 for d in dilations) and _fits_ir(kernel, dilations, pads):
        op = mk(
            "avg_pool",
            kernel=kernel,
            stride=strides,
            padding=pads,
            ceil_mode=ceil_mode,
            count_include_pad=include,
        )
        return c.emit(op, x)
    return sum_pool(
        c, x, kernel, strides, dilations, pads, ceil_mode, "padded" if include else "input"
    )


def convert_lp_pool(c: NodeCtx) -> OT:
    x = c.x(0)
    p = float(c.attr("p", 2))
    kernel, strides, dilations, pads, ceil_mode = pool_attrs(c, x)
    xp = c.emit(mk("pow"), c.emit(mk("abs"), x), c.scalar(p, x.dtype))
    if all(d == 1 for d in dilations) and _fits_ir(kernel, dilations, pads):
        avg = c.emit(
            mk(
                "avg_pool",
                kernel=kernel,
                stride=strides,
                padding=pads,
                ceil_mode=ceil_mode,
                count_include_pad=True,
            ),
            xp,
        )
        total = c.emit(mk("mul"), avg, c.scalar(float(math.prod(kernel)), x.dtype))
    else:
        total = sum_pool(c, xp, kernel, strides, dilations, pads, ceil_mode, None)
    return c.emit(mk("pow"), total, c.scalar(1.0 / p, x.dtype))


def global_pool(name: str) -> Any:
    def convert_global_pool(c: NodeCtx) -> OT:
        return c.emit(mk(name), c.x(0))

    convert_global_pool.__name__ = f"convert_{name}"
    return convert_global_pool


def convert_global_lp_pool(c: NodeCtx) -> OT:
    x = c.x(0)
    p = float(c.attr("p", 2))
    xp = c.emit(mk("pow"), c.emit(mk("abs"), x), c.scalar(p, x.dtype))
    s = c.emit(mk("reduce_sum", axes=tuple(range(2, x.rank)), keepdims=True), xp)
    return c.emit(mk("pow"), s, c.scalar(1.0 / p, x.dtype))


ROWS: list[Row] = [
    ("MaxPool", (8, 10, 11, 12, 22), convert_max_pool),
    ("AveragePool", (11, 19, 22), convert_avg_pool),
    ("LpPool", (11, 18, 22), convert_lp_pool),
    ("GlobalAveragePool", (1, 22), global_pool("global_avg_pool")),
    ("GlobalMaxPool", (1, 22), global_pool("global_max_pool")),
    ("GlobalLpPool", (2, 22), convert_global_lp_pool),
]
