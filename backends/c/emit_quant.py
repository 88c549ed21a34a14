"""C emitters of the quantization ops. quantize / dequantize are map loops (the reference's
arithmetic per element, scale / zero point indexed per tensor, axis or block). linear_w4 /
linear_w8 call lmc_linear_wq_f32 (templates/c/lib/lmc_quant.c), linear_w4a8
lmc_linear_w4a8_f32 (lmc_w4a8.c, the same packed weights as linear_w4) and linear_w8a8
lmc_linear_w8a8_f32 (lmc_w8a8.c) with the weights pre-packed at compile time (`quant_blobs`: one
blob per (codes, scales, zeros, group) combination, the params it replaces are not stored raw);
with the kernel library off or weights that are computed values they are plain loops."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...ir.ops.quant import (
    QUANT_RANGES,
    Dequantize,
    LinearW4,
    LinearW4a8,
    LinearW8,
    LinearW8a8,
    Quantize,
    group_count,
    unpack_int4,
)
from ...ir.ops.source import Param
from ...ir.shapes import ceil_div, norm, numel
from .cexpr import ctype, load
from .emit import C, Kernel
from .emit_nn import uses_kernels
from .nd import MapBuilder, strides
from .packing import GEMM_S8_LAYOUT, WQ_LAYOUT, pack_gemm_s8, pack_wq

WQ_SUFFIX = "#wq"  # blob key part of a packed weight-only linear
A8_SUFFIX = "#w8a8"  # blob key suffix of packed W8A8 codes
KERNEL_X = (DType.f32, DType.bf16)  # activations the kernels read (bf16 lives in f32 storage)


# -- which nodes run on the kernels, and their packed blobs -------------------------------------
def _param(v: Value | None) -> str | None:
    return v.node.op.key if v is not None and isinstance(v.node.op, Param) else None  # type: ignore[attr-defined]


def wq_operands(node: Node) -> tuple[Value, Value, Value, Value | None, Value | None]:
    """(x, codes, scales, zeros, bias) of a linear_w4 / linear_w8 (split_zeros_bias's rule:
    u8 zeros, float bias)."""
    x, codes, scales, *rest = node.inputs
    zeros, bias = (rest + [None, None])[:2]
    if zeros is not None and bias is None and zeros.type.dtype.is_float:
        zeros, bias = None, zeros
    return x, codes, scales, zeros, bias


def w4a8_operands(
    node: Node,
) -> tuple[Value, Value, Value, Value | None, Value | None, Value | None]:
    """(x, codes, scales, zeros, bias, x_scale) of a linear_w4a8 (by dtype and rank)."""
    x, codes, scales, *rest = node.inputs
    zeros = next((v for v in rest if not v.type.dtype.is_float), None)
    bias = next((v for v in rest if v.type.dtype.is_float and v.type.rank == 1), None)
    xs = next((v for v in rest if v.type.dtype.is_float and v.type.rank == 0), None)
    return x, codes, scales, zeros, bias, xs


def a8_operands(node: Node) -> tuple[Value, Value, Value, Value | None, Value | None]:
    """(x, codes, w_scales, bias, x_scale) of a linear_w8a8 (_split_bias_scale's rule: the
    rank-0 operand is x_scale)."""
    x, codes, sw, *rest = node.inputs
    bias, xs = (rest + [None, None])[:2]
    if bias is not None and xs is None and bias.type.rank == 0:
        bias, xs = None, bias
    return x, codes, sw, bias, xs


def blob_key(node: Node) -> str | None:
    """The packed blob a kernel-eligible quantized linear reads (None: it runs plain loops):
    f32 / bf16 activations with a static in-dim and weights (codes, scales, zeros) that are
    params."""
    if not isinstance(node.op, (LinearW4, LinearW4a8, LinearW8, LinearW8a8)):
        return None
    x = node.inputs[0]
    if x.type.dtype not in KERNEL_X or not isinstance(x.type.shape[-1], int):
        return None
    if isinstance(node.op, LinearW8a8):
        key = _param(node.inputs[1])
        return None if key is None else key + A8_SUFFIX
    _, codes, scales, zeros = _weight_operands(node)
    keys = [_param(codes), _param(scales)] + ([_param(zeros)] if zeros is not None else [])
    if any(k is None for k in keys):
        return None
    bits = 8 if isinstance(node.op, LinearW8) else 4
    zk = keys[2] if zeros is not None else "-"
    return f"{keys[0]}{WQ_SUFFIX}{bits}:{keys[1]}:{zk}:g{node.op.group}:k{x.type.shape[-1]}"  # type: ignore[attr-defined]


def _weight_operands(node: Node) -> tuple[Value, Value, Value, Value | None]:
    """(x, codes, scales, zeros) of a linear_w4 / linear_w8 / linear_w4a8."""
    if isinstance(node.op, LinearW4a8):
        return w4a8_operands(node)[:4]
    return wq_operands(node)[:4]


def _packed_operands(node: Node) -> list[Value]:
    """The operands a kernel reads through its packed blob."""
    if isinstance(node.op, LinearW8a8):
        return [node.inputs[1]]
    _, codes, scales, zeros = _weight_operands(node)
    return [codes, scales] + ([zeros] if zeros is not None else [])


def reads_quant_packed(user: Node, v: Value) -> bool:
    """Whether quantized-linear `user` reads param value v only through its packed blob."""
    if blob_key(user) is None:
        return False
    packed = _packed_operands(user)
    return any(p is v for p in packed) and not any(
        x is v for x in user.inputs if all(x is not p for p in packed)
    )


def quant_blobs(g: Graph, kernels: bool = True) -> tuple[dict[str, tuple[Any, dict]], set[str]]:
    """(packed blobs by key, param keys some kernel reads packed) of the graph's quantized
    linears that run on the kernel library."""
    blobs: dict[str, tuple[Any, dict]] = {}
    keys: set[str] = set()
    if not kernels:
        return blobs, keys
    for n in g.nodes:
        key = blob_key(n)
        if key is None:
            continue
        ops = _packed_operands(n)
        keys |= {_param(v) for v in ops}  # type: ignore[misc]
        if key not in blobs:
            blobs[key] = _blob(g, n)
    return blobs, keys


def _blob(g: Graph, n: Node) -> tuple[bytes, dict]:
    arrays = [np.asarray(g.weights[_param(v)]) for v in _packed_operands(n)]  # type: ignore[index]
    if isinstance(n.op, LinearW8a8):
        codes = arrays[0]
        meta = {"dtype": "i8", "shape": list(codes.shape[::-1]), "layout": GEMM_S8_LAYOUT}
        return pack_gemm_s8(np.ascontiguousarray(codes.T)), meta
    k = n.inputs[0].type.shape[-1]
    bits = 8 if isinstance(n.op, LinearW8) else 4
    codes = unpack_int4(arrays[0], k) if bits == 4 else arrays[0]
    zeros = arrays[2] if len(arrays) > 2 else None
    meta = {
        "dtype": "u8" if bits == 4 else codes.dtype.name.replace("uint", "u").replace("int", "i"),
        "shape": [int(codes.shape[0]), int(k)],
        "layout": WQ_LAYOUT,
        "bits": bits,
        "group": int(n.op.group),  # type: ignore[attr-defined]
        "zeros": zeros is not None,
    }
    return pack_wq(codes, arrays[1], zeros, bits, n.op.group), meta  # type: ignore[attr-defined]


# -- quantize / dequantize -----------------------------------------------------------------------
def _param_index(k: Kernel, op: Any, out_shape: tuple, p: Value) -> str:
    """The element of scale / zero point p that output index (i0, i1, ...) reads."""
    if op.axis is None:
        return "0"
    ax = op.axis % len(out_shape)
    if op.block == 0:
        return f"i{ax}"
    terms = []
    for a, st in enumerate(strides(p.type.shape)):
        i = f"(i{a} / {op.block})" if a == ax else f"i{a}"
        terms.append(f"{i} * {k.dim(st)}")
    return " + ".join(terms)


def _as(dt: DType, access: str) -> str:
    """A stored element as float (f16 widened) or double (f64)."""
    return load(dt, access)


@C.emits(Quantize)
def quantize(k: Kernel, node: Node) -> str:
    x, scale = node.inputs[:2]
    zp = node.inputs[2] if len(node.inputs) > 2 else None
    y = node.outputs[0]
    op: Quantize = node.op  # type: ignore[assignment]
    m = MapBuilder(k, list(y.type.shape), grain=4096)
    px, ps, py = m.pointer(x), m.pointer(scale), m.pointer(y, const=False)
    idx = _param_index(k, op, y.type.shape, scale)
    xv, sv = _as(x.type.dtype, f"{px}[o]"), _as(scale.type.dtype, f"{ps}[{idx}]")
    wide = np.result_type(x.type.dtype.np, scale.type.dtype.np)  # x / scale in numpy's type
    if wide == np.float64:
        div = f"(double){xv} / (double){sv}"
    elif wide == np.float16:
        div = f"(double)lmc_rh({xv} / {sv})"  # an f16 quotient
    else:
        div = f"(double)((float){xv} / (float){sv})"
    lo, hi = QUANT_RANGES[op.dtype]
    m.body.append(f"double q = rint({div});")
    m.body.append("if (q != q) q = 0.0;")
    if zp is not None:
        m.body.append(f"q += (double){m.pointer(zp)}[{idx}];")
    m.body.append(f"q = q < {lo}.0 ? {lo}.0 : (q > {hi}.0 ? {hi}.0 : q);")
    return m.render(f"{py}[o] = ({ctype(op.dtype)})q;")


@C.emits(Dequantize)
def dequantize(k: Kernel, node: Node) -> str:
    q, scale = node.inputs[:2]
    zp = node.inputs[2] if len(node.inputs) > 2 else None
    y = node.outputs[0]
    m = MapBuilder(k, list(y.type.shape), grain=4096)
    pq, ps, py = m.pointer(q), m.pointer(scale), m.pointer(y, const=False)
    idx = _param_index(k, node.op, y.type.shape, scale)
    acc = "double" if q.type.dtype == DType.i32 or scale.type.dtype == DType.f64 else "float"
    d = f"({acc}){pq}[o]"
    if zp is not None:
        d = f"({d} - ({acc}){m.pointer(zp)}[{idx}])"
    m.body.append(f"const {acc} v = {d} * ({acc}){_as(scale.type.dtype, f'{ps}[{idx}]')};")
    out = y.type.dtype
    value = "lmc_f2h((float)v)" if out == DType.f16 else f"({ctype(out)})v"
    return m.render(f"{py}[o] = {value};")


# -- quantized linears ---------------------------------------------------------------------------
def _struct(name: str, fields: dict[str, str]) -> str:
    init = ", ".join(f".{f} = {v}" for f, v in fields.items())
    return f"{name} args = {{{init}}};"


@C.emits(LinearW4, LinearW8)
def linear_wq(k: Kernel, node: Node) -> str:
    x, codes, scales, zeros, bias = wq_operands(node)
    y = node.outputs[0]
    key = blob_key(node)
    if not (uses_kernels(k) and key is not None and key in k.mod.weights):
        return _wq_native(k, node)
    bits = 4 if isinstance(node.op, LinearW4) else 8
    kk = x.type.shape[-1]
    fields = {
        "M": k.numel(list(x.type.shape[:-1])),
        "N": k.dim(codes.type.shape[0]),
        "K": k.dim(kk),
        "x": k.ptr(x, as_type="float"),
        "ldx": k.dim(kk),
        "packed": f"(const uint8_t *)(ex->weights + {k.weight(key).offset})",
        "bits": str(bits),
        "group": str(node.op.group),  # type: ignore[attr-defined]
        "has_zeros": "1" if zeros is not None else "0",
        "bias": k.ptr(bias, as_type="float") if bias is not None else "NULL",
        "y": k.ptr(y, const=False, as_type="float"),
        "ldy": k.dim(codes.type.shape[0]),
    }
    decls = [_struct("lmc_linear_wq_args", fields)]
    return k.render("ops/values.c.j2", decls=decls, stmts=["lmc_linear_wq_f32(ex->pool, &args);"])


def _wq_native(k: Kernel, node: Node) -> str:
    """One output element per iteration: W dequantized per element in f32, sums in double."""
    x, codes, scales, zeros, bias = wq_operands(node)
    y = node.outputs[0]
    w4 = isinstance(node.op, LinearW4)
    group = node.op.group  # type: ignore[attr-defined]
    kk, n_out = x.type.shape[-1], codes.type.shape[0]
    rows = norm(numel(list(x.type.shape[:-1])))
    m = MapBuilder(k, [rows, n_out], grain=64)
    px, pc, ps = m.pointer(x), m.pointer(codes), m.pointer(scales)
    pz = m.pointer(zeros) if zeros is not None else None
    py = m.pointer(y, const=False)
    K, G = k.dim(kk), k.dim(scales.type.shape[1])
    code = (
        f"(({pc}[i1 * {k.dim(ceil_div(kk, 2))} + q / 2] >> ((q & 1) * 4)) & 15)"
        if w4
        else f"{pc}[i1 * {K} + q]"
    )
    g = f"q / {group}" if group else "0"
    zero = f"(float){pz}[i1 * {G} + {g}]" if pz else ("8.0f" if w4 else "0.0f")
    scale = _as(scales.type.dtype, f"{ps}[i1 * {G} + {g}]")
    m.body.append("double acc = 0;")
    xv = load(x.type.dtype, f"{px}[i0 * {K} + q]")
    m.body.append(
        f"for (int64_t q = 0; q < {K}; ++q) acc += (double){xv}"
        f" * (double)(((float){code} - {zero}) * (float){scale});"
    )
    value = "(float)acc"
    if bias is not None:
        value = f"((float)acc + {load(bias.type.dtype, f'{m.pointer(bias)}[i1]')})"
    return m.render(f"{py}[o] = {value};")


def _a8_fields(
    k: Kernel, node: Node, x: Value, codes: Value, bias: Value | None, xs: Value | None
) -> dict[str, str]:
    """The activation side of the int8-activation kernels' argument structs (lmc_linear_w8a8_args,
    lmc_linear_w4a8_args): shapes, x, the static x_scale (NULL per token), bias, y."""
    kk, n_out = x.type.shape[-1], codes.type.shape[0]
    per_token = node.op.per_token  # type: ignore[attr-defined]
    return {
        "M": k.numel(list(x.type.shape[:-1])),
        "N": k.dim(n_out),
        "K": k.dim(kk),
        "x": k.ptr(x, as_type="float"),
        "ldx": k.dim(kk),
        "x_scale": k.ptr(xs) if xs is not None and not per_token else "NULL",
        "bias": k.ptr(bias, as_type="float") if bias is not None else "NULL",
        "y": k.ptr(node.outputs[0], const=False, as_type="float"),
        "ldy": k.dim(n_out),
    }


@C.emits(LinearW8a8)
def linear_w8a8(k: Kernel, node: Node) -> str:
    x, codes, sw, bias, xs = a8_operands(node)
    key = blob_key(node)
    if not (uses_kernels(k) and key is not None and key in k.mod.weights):
        return _a8_native(k, node)
    fields = {
        **_a8_fields(k, node, x, codes, bias, xs),
        "w_packed": f"(const uint8_t *)(ex->weights + {k.weight(key).offset})",
        "w_scales": k.ptr(sw),
    }
    decls = [_struct("lmc_linear_w8a8_args", fields)]
    return k.render("ops/values.c.j2", decls=decls, stmts=["lmc_linear_w8a8_f32(ex->pool, &args);"])


def _row_scale(m: MapBuilder, node: Node, xv: str, K: str, xs: Value | None) -> list[str]:
    """C lines declaring `sx`, the activation row's int8 scale as the reference computes it:
    max|x| / 127 over the row (NaN propagating) per token, else the static x_scale."""
    if node.op.per_token:  # type: ignore[attr-defined]
        return [
            f"float mx = 0.0f; for (int64_t q = 0; q < {K}; ++q) {{ const float a = fabsf({xv}); "
            "mx = (a > mx || a != a) ? a : mx; }",
            "const float sx = mx / 127.0f;",
        ]
    return [f"const float sx = {m.pointer(xs)}[0];"]


def _a8_native(k: Kernel, node: Node) -> str:
    """One output element per iteration, the reference's arithmetic: the row's scale (max|x| /
    127, NaN propagating, or x_scale), codes rounded half to even, an exact int64 sum wrapped to
    int32, then ((float)acc * sx) * sw + b in f32."""
    x, codes, sw, bias, xs = a8_operands(node)
    y = node.outputs[0]
    kk, n_out = x.type.shape[-1], codes.type.shape[0]
    rows = norm(numel(list(x.type.shape[:-1])))
    m = MapBuilder(k, [rows, n_out], grain=64)
    px, pw, psw = m.pointer(x), m.pointer(codes), m.pointer(sw)
    py = m.pointer(y, const=False)
    K = k.dim(kk)
    xv = load(x.type.dtype, f"{px}[i0 * {K} + q]")
    m.body.extend(_row_scale(m, node, xv, K, xs))
    m.body.append("int64_t acc = 0;")
    m.body.append(
        f"if (sx > 0.0f) for (int64_t q = 0; q < {K}; ++q) {{ float v = {xv} / sx; "
        "v = v != v ? 0.0f : (v > -128.0f ? v : -128.0f); v = v < 127.0f ? v : 127.0f; "
        f"acc += (int64_t)rintf(v) * (int64_t){pw}[i1 * {K} + q]; }}"
    )
    value = f"((float)(int32_t)acc * sx) * {psw}[i1]"
    if bias is not None:
        value = f"({value} + {load(bias.type.dtype, f'{m.pointer(bias)}[i1]')})"
    return m.render(f"{py}[o] = {value};")


def w4a8_workspace(node: Node) -> Any:
    """Bytes of lmc_linear_w4a8_f32's workspace (lmc_linear_w4a8_workspace_bytes): per row,
    two int32 quads per 8-input block of every group, one int32 sum per group and the f32
    scale."""
    x = node.inputs[0]
    kk = x.type.shape[-1]
    if not isinstance(kk, int) or kk <= 0:
        return None
    group = node.op.group  # type: ignore[attr-defined]
    gl = group or kk
    groups = int(group_count(kk, group))
    blocks = sum(-(-min(gl, kk - g * gl) // 8) for g in range(groups))
    return norm(numel(list(x.type.shape[:-1])) * (2 * blocks + groups + 1) * 4)


@C.emits(LinearW4a8, workspace=w4a8_workspace)
def linear_w4a8(k: Kernel, node: Node) -> str:
    x, codes, scales, zeros, bias, xs = w4a8_operands(node)
    key = blob_key(node)
    if not (uses_kernels(k) and key is not None and key in k.mod.weights):
        return _w4a8_native(k, node)
    fields = {
        **_a8_fields(k, node, x, codes, bias, xs),
        "packed": f"(const uint8_t *)(ex->weights + {k.weight(key).offset})",
        "group": str(node.op.group),  # type: ignore[attr-defined]
        "has_zeros": "1" if zeros is not None else "0",
        "workspace": k.workspace(),
    }
    decls = [_struct("lmc_linear_w4a8_args", fields)]
    return k.render("ops/values.c.j2", decls=decls, stmts=["lmc_linear_w4a8_f32(ex->pool, &args);"])


def _w4a8_native(k: Kernel, node: Node) -> str:
    """One output element per iteration, the reference's arithmetic: the row's scale (as in
    _a8_native), per group an exact sum of q * (code - zero), then t += acc * scale in f32, and
    t * sx + b."""
    x, codes, scales, zeros, bias, xs = w4a8_operands(node)
    y = node.outputs[0]
    group = node.op.group  # type: ignore[attr-defined]
    kk, n_out = x.type.shape[-1], codes.type.shape[0]
    rows = norm(numel(list(x.type.shape[:-1])))
    m = MapBuilder(k, [rows, n_out], grain=64)
    px, pc, ps, py = m.pointer(x), m.pointer(codes), m.pointer(scales), m.pointer(y, const=False)
    K, G = k.dim(kk), k.dim(scales.type.shape[1])
    gl = str(group) if group else K
    xv = load(x.type.dtype, f"{px}[i0 * {K} + q]")
    m.body.extend(_row_scale(m, node, xv, K, xs))
    code = f"(({pc}[i1 * {k.dim(ceil_div(kk, 2))} + q / 2] >> ((q & 1) * 4)) & 15)"
    zero = f"(int64_t){m.pointer(zeros)}[i1 * {G} + g]" if zeros is not None else "8"
    m.body.append("float t = 0.0f;")
    m.body.append(
        f"for (int64_t g = 0; g < {G}; ++g) {{ int64_t acc = 0; "
        f"if (sx > 0.0f) for (int64_t q = g * {gl}; q < {K} && q < (g + 1) * {gl}; ++q) {{ "
        f"float v = {xv} / sx; v = v != v ? 0.0f : (v > -128.0f ? v : -128.0f); "
        "v = v < 127.0f ? v : 127.0f; "
        f"acc += (int64_t)rintf(v) * ((int64_t){code} - {zero}); }} "
        f"t = t + (float)(int32_t)acc * {ps}[i1 * {G} + g]; }}"
    )
    value = "t * sx"
    if bias is not None:
        value = f"({value} + {load(bias.type.dtype, f'{m.pointer(bias)}[i1]')})"
    return m.render(f"{py}[o] = {value};")
