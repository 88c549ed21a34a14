"""C emitters of convolution and pooling. f32 1-D / 2-D convs (and their fused epilogues) call
lmc_conv2d_f32 (a 1-D conv is a 2-D one with H = 1) with the weight pre-packed at compile time
when it is a param (blob key + PACKED_CONV, layout packing.CONV2D_LAYOUT) or packed at run time
into the workspace, which also holds the zero-padded input copy the kernel packs patches from;
fused_conv with algo="winograd" calls lmc_conv2d_wino_f32 on its weight transformed at compile
time (blob key + PACKED_WINO, layout packing.winograd_layout); f32 2-D max pools call
lmc_max_pool2d_f32; other convs, transposed convs and pools are plain loops over the output
with the window nested."""

from __future__ import annotations

import dataclasses

from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...ir.ops.conv import (
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    AvgPool,
    Conv,
    ConvTranspose,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool,
    pads,
    spatial,
)
from ...ir.ops.fused import FusedConv
from ...ir.ops.source import Param
from ...ir.shapes import Dim, floor_div, norm, numel
from .cexpr import compute_type
from .emit import C, Kernel
from .emit_linalg import _acc, _main, _native_with_epilogue
from .emit_nn import F32_KERNEL, uses_kernels
from .emit_reduce import INT_MIN
from .epilogue import epilogue_callback
from .nd import MapBuilder, strides


def _conv_attrs(op, nd: int):
    s = spatial(op.name, "stride", op.stride, nd, 1, 1)
    d = spatial(op.name, "dilation", op.dilation, nd, 1, 1)
    pb, pe = pads(op.name, op.padding, nd)
    return s, d, pb, pe


PACKED_CONV = "#conv"  # blob key suffix of a conv weight packed for lmc_conv2d_f32
PACKED_WINO = "#wino"  # ... and of one transformed for lmc_conv2d_wino_f32


def _winograd(node: Node) -> bool:
    return isinstance(node.op, FusedConv) and node.op.algo == "winograd"


def _kernel_conv(node: Node) -> bool:
    """Whether a conv node runs lmc_conv2d_f32 (when the kernel library is on)."""
    x = node.inputs[0]
    return x.type.dtype in F32_KERNEL and x.type.rank - 2 in (1, 2)


def conv_packed_key(node: Node) -> str | None:
    """The blob key of a conv's pre-packed weight: when it is a param the kernel reads only as
    its weight (groups in the key: the layout depends on them)."""
    if not isinstance(node.op, (Conv, FusedConv)) or not _kernel_conv(node):
        return None
    w = node.inputs[1]
    if not isinstance(w.node.op, Param) or any(v is w for i, v in enumerate(node.inputs) if i != 1):
        return None
    if _winograd(node):
        return w.node.op.key + PACKED_WINO  # type: ignore[attr-defined]
    groups = node.op.groups  # type: ignore[attr-defined]
    return w.node.op.key + PACKED_CONV + (f".g{groups}" if groups != 1 else "")  # type: ignore[attr-defined]


def packed_conv_params(g: Graph, kernels: bool = True) -> dict[str, tuple[str, int, str]]:
    """Blob key -> (param key, groups, algo) of every conv weight read pre-packed."""
    if not kernels:
        return {}
    out: dict[str, tuple[str, int, str]] = {}
    for n in g.nodes:
        key = conv_packed_key(n)
        if key is not None:
            algo = getattr(n.op, "algo", "gemm")
            out[key] = (n.inputs[1].node.op.key, n.op.groups, algo)  # type: ignore[attr-defined]
    return out


def _conv_dims(op, x: Value, w: Value, y: Value) -> list[tuple]:
    """(in, kernel, out, stride, pad begin, pad end, dilation) per 2-D axis (H first)."""
    nd = x.type.rank - 2
    s, d, pb, pe = _conv_attrs(op, nd)
    hw = [(1, 1, 1, 1, 0, 0, 1)] if nd == 1 else []
    return hw + [
        (x.type.shape[2 + i], w.type.shape[2 + i], y.type.shape[2 + i], s[i], pb[i], pe[i], d[i])
        for i in range(nd)
    ]


def _conv_workspace(node: Node) -> Dim | None:
    """Room for the weight packed at run time (when it is not a pre-packed param) and the
    zero-padded input copy (when the conv pads): lmc_conv2d_packed_bytes rounded up to 64,
    then at least lmc_conv2d_workspace_bytes."""
    if not isinstance(node.op, (Conv, FusedConv)) or not _kernel_conv(node) or _winograd(node):
        return None
    x, w = node.inputs[:2]
    y = node.outputs[0]
    dims = _conv_dims(node.op, x, w, y)
    total: Dim = norm(0)
    if conv_packed_key(node) is None:
        groups = node.op.groups  # type: ignore[attr-defined]
        red = numel(list(w.type.shape[1:]))
        total = norm((w.type.shape[0] + 15 * groups) * red * 4 + 64)
    if any(pb or pe for _, _, _, _, pb, pe, _ in dims):
        hp, wp = (norm((o - 1) * s + (k - 1) * d + 1) for _, k, o, s, _, _, d in dims)
        total = norm(total + x.type.shape[0] * x.type.shape[1] * hp * wp * 4)
    return None if total == 0 else total


@C.emits(Conv, FusedConv, workspace=_conv_workspace)
def conv(k: Kernel, node: Node) -> str:
    x, w = node.inputs[:2]
    y = node.outputs[0]
    op = node.op
    has_b = op.bias if isinstance(op, FusedConv) else len(node.inputs) > 2  # type: ignore[attr-defined]
    b = node.inputs[2] if has_b else None
    extras = list(node.inputs[3 if has_b else 2 :]) if isinstance(op, FusedConv) else []
    nd = x.type.rank - 2
    if _kernel_conv(node) and uses_kernels(k):
        D = k.dim
        (H, R, OH, sh, ph, _, dh), (W, S, OW, sw, pw, _, dw) = _conv_dims(op, x, w, y)
        shape = (
            f"{{{D(x.type.shape[0])}, {D(x.type.shape[1])}, {D(H)}, {D(W)}, {D(w.type.shape[0])}, "
            f"{D(R)}, {D(S)}, {D(OH)}, {D(OW)}, {sh}, {sw}, {ph}, {pw}, {dh}, {dw}, {op.groups}}}"
        )  # type: ignore[attr-defined]
        ep = getattr(op, "epilogue", "x0")
        epi_code, epi = "", "NULL"
        if ep != "x0":
            epi_code = epilogue_callback(
                k, ep, y, extras, list(y.type.shape[:2]), list(y.type.shape[2:])
            )
            epi = f"{k.name}_epi"
        decls = [f"const lmc_conv2d_shape cs = {shape};", "lmc_epi_ctx ectx = {ex, 0};"]
        stmts = []
        if _winograd(node):
            wp = f"(const float *)(ex->weights + {k.weight(conv_packed_key(node)).offset})"
            stmts += [
                "if (!lmc_conv2d_wino_applies(&cs))",
                "  return lmc_fail(ex->err, ex->err_len, "
                '"fused_conv algo=winograd: no Winograd kernel for input channels ", cs.C);',
                f"lmc_conv2d_wino_f32(ex->pool, &cs, {k.ptr(x)}, {wp}, "
                f"{k.ptr(b) if b is not None else 'NULL'}, {k.ptr(y, const=False)}, {epi}, "
                "&ectx);",
            ]
            body = k.render("ops/values.c.j2", decls=decls, stmts=stmts)
            return epi_code + "\n" + body if epi_code else body
        ws = k.workspace() if _conv_workspace(node) is not None else "NULL"
        key = conv_packed_key(node)
        if key is not None and key in k.mod.weights:
            wp = f"(const float *)(ex->weights + {k.weight(key).offset})"
        else:
            decls.append(f"float *wp = (float *){ws};")
            stmts.append(f"lmc_conv2d_pack(&cs, {k.ptr(w)}, wp);")
            ws = "((uint8_t *)wp + ((lmc_conv2d_packed_bytes(&cs) + 63) & ~(size_t)63))"
            wp = "wp"
        stmts.append(
            f"lmc_conv2d_f32(ex->pool, &cs, {k.ptr(x)}, {wp}, "
            f"{k.ptr(b) if b is not None else 'NULL'}, {k.ptr(y, const=False)}, {ws}, {epi}, "
            "&ectx);"
        )
        body = k.render("ops/values.c.j2", decls=decls, stmts=stmts)
        return epi_code + "\n" + body if epi_code else body
    main = _conv_native(_main(k, node), x, w, b, y, op, nd)
    return _native_with_epilogue(k, node, main, extras)


def _conv_native(k: Kernel, x: Value, w: Value, b: Value | None, y: Value, op, nd: int) -> str:
    s, d, pb, _ = _conv_attrs(op, nd)
    m = MapBuilder(k, list(y.type.shape), grain=64)
    px, pw, py = m.pointer(x), m.pointer(w), m.pointer(y, const=False)
    D = k.dim
    acc = _acc(y.type.dtype)
    cig, cog = w.type.shape[1], floor_div(w.type.shape[0], op.groups)
    xst, wst = strides(x.type.shape), strides(w.type.shape)
    m.body.append(f"const int64_t g = i1 / {D(cog)};")
    m.body.append(f"{acc} acc = {f'({acc}){m.pointer(b)}[i1]' if b is not None else '0'};")
    loops, conds, xo, wo = [], [], [f"i0 * {D(xst[0])}"], [f"i1 * {D(wst[0])}"]
    for i in range(nd):
        loops.append(
            f"for (int64_t k{i} = 0; k{i} < {D(w.type.shape[2 + i])}; ++k{i}) {{ "
            f"const int64_t p{i} = i{2 + i} * {s[i]} + k{i} * {d[i]} - {pb[i]}; "
            f"if (p{i} < 0 || p{i} >= {D(x.type.shape[2 + i])}) continue;"
        )
        xo.append(f"p{i} * {D(xst[2 + i])}")
        wo.append(f"k{i} * {D(wst[2 + i])}")
    xo.append(f"(g * {D(cig)} + c) * {D(xst[1])}")
    wo.append(f"c * {D(wst[1])}")
    inner = f"acc += ({acc}){px}[{' + '.join(xo)}] * {pw}[{' + '.join(wo)}];"
    m.body.append(
        f"for (int64_t c = 0; c < {D(cig)}; ++c) {{ {' '.join(loops)} {inner} {'}' * nd} }}"
    )
    del conds
    return m.render(f"{py}[o] = ({compute_type(y.type.dtype)})acc;")


@C.emits(ConvTranspose)
def conv_transpose(k: Kernel, node: Node) -> str:
    x, w = node.inputs[:2]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    y = node.outputs[0]
    op = node.op
    nd = x.type.rank - 2
    s, d, pb, _ = _conv_attrs(op, nd)
    m = MapBuilder(k, list(y.type.shape), grain=64)
    px, pw, py = m.pointer(x), m.pointer(w), m.pointer(y, const=False)
    D = k.dim
    acc = _acc(y.type.dtype)
    cig, cog = floor_div(x.type.shape[1], op.groups), w.type.shape[1]  # type: ignore[attr-defined]
    xst, wst = strides(x.type.shape), strides(w.type.shape)
    m.body.append(f"const int64_t g = i1 / {D(cog)}, ol = i1 % {D(cog)};")
    m.body.append(f"{acc} acc = {f'({acc}){m.pointer(b)}[i1]' if b is not None else '0'};")
    loops, xo, wo = [], [f"i0 * {D(xst[0])}"], [f"ol * {D(wst[1])}"]
    for i in range(nd):
        loops.append(
            f"for (int64_t k{i} = 0; k{i} < {D(w.type.shape[2 + i])}; ++k{i}) {{ "
            f"const int64_t t{i} = i{2 + i} + {pb[i]} - k{i} * {d[i]}; "
            f"if (t{i} < 0 || t{i} % {s[i]} != 0 || t{i} / {s[i]} >= "
            f"{D(x.type.shape[2 + i])}) continue;"
        )
        xo.append(f"(t{i} / {s[i]}) * {D(xst[2 + i])}")
        wo.append(f"k{i} * {D(wst[2 + i])}")
    xo.append(f"ci * {D(xst[1])}")
    wo.append(f"ci * {D(wst[0])}")
    inner = f"acc += ({acc}){px}[{' + '.join(xo)}] * {pw}[{' + '.join(wo)}];"
    m.body.append(
        f"for (int64_t c = 0; c < {D(cig)}; ++c) {{ const int64_t ci = g * {D(cig)} + c; "
        f"{' '.join(loops)} {inner} {'}' * nd} }}"
    )
    return m.render(f"{py}[o] = ({compute_type(y.type.dtype)})acc;")


def _lowest(dt: DType) -> str:
    if dt.is_float:
        return "-INFINITY"
    return INT_MIN[dt.bits] if dt.is_signed else "0"


@C.emits(MaxPool, AvgPool)
def pool(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    op = node.op
    nd = len(op.kernel)  # type: ignore[attr-defined]
    kern, s, dil, pb, pe = op._attrs(nd)  # type: ignore[attr-defined]
    lead = x.type.rank - nd
    if isinstance(op, MaxPool) and x.type.dtype == DType.f32 and nd in (1, 2) and uses_kernels(k):
        D = k.dim
        rows = [(1, 1, 1, 1, 0, 1)] if nd == 1 else []
        (H, KH, OH, sh, ph, dh), (W, KW, OW, sw, pw, dw) = rows + [
            (x.type.shape[lead + i], kern[i], y.type.shape[lead + i], s[i], pb[i], dil[i])
            for i in range(nd)
        ]
        shape = (
            f"{{{k.numel(list(x.type.shape[:lead]))}, {D(H)}, {D(W)}, {D(OH)}, {D(OW)}, {KH}, "
            f"{KW}, {sh}, {sw}, {ph}, {pw}, {dh}, {dw}}}"
        )
        call = f"lmc_max_pool2d_f32(ex->pool, &ps, {k.ptr(x)}, {k.ptr(y, const=False)});"
        return k.render(
            "ops/values.c.j2", decls=[f"const lmc_pool2d_shape ps = {shape};"], stmts=[call]
        )
    m = MapBuilder(k, list(y.type.shape), grain=256)
    px, py = m.pointer(x), m.pointer(y, const=False)
    D = k.dim
    xst = strides(x.type.shape)
    t = compute_type(x.type.dtype)
    base = " + ".join([f"i{a} * {D(xst[a])}" for a in range(lead)]) or "0"
    m.body.append(f"const int64_t base = {base};")
    loops, xo = [], []
    for i in range(nd):
        a = lead + i
        loops.append(
            f"for (int64_t k{i} = 0; k{i} < {kern[i]}; ++k{i}) {{ const int64_t p{i} = "
            f"i{a} * {s[i]} + k{i} * {dil[i]} - {pb[i]}; if (p{i} < 0 || p{i} >= "
            f"{D(x.type.shape[a])}) continue;"
        )
        xo.append(f"p{i} * {D(xst[a])}")
    v = f"{px}[base + {' + '.join(xo)}]"
    close = "}" * nd
    if isinstance(op, MaxPool):
        step = (
            f"{{ const {t} v = {v}; acc = (acc != acc || acc > v) ? acc : v; }}"
            if x.type.dtype.is_float
            else f"{{ const {t} v = {v}; acc = acc > v ? acc : v; }}"
        )
        m.body.append(f"{t} acc = {_lowest(x.type.dtype)};")
        m.body.append(f"{' '.join(loops)} {step} {close}")
        return m.render(f"{py}[o] = acc;")
    m.body.append("double acc = 0;")
    m.body.append(f"{' '.join(loops)} acc += {v}; {close}")
    counts = []
    for i in range(nd):
        a = lead + i
        lo, hi = (
            (f"-{pb[i]}", f"{D(x.type.shape[a])} + {pe[i]}")
            if op.count_include_pad
            else (  # type: ignore[attr-defined]
                "0",
                D(x.type.shape[a]),
            )
        )
        m.body.append(
            f"int64_t n{i} = 0; for (int64_t k{i} = 0; k{i} < {kern[i]}; ++k{i}) {{ "
            f"const int64_t p = i{a} * {s[i]} + k{i} - {pb[i]}; n{i} += p >= {lo} && p < {hi}; }}"
        )
        counts.append(f"({t})n{i}")
    return m.render(f"{py}[o] = ({t})(({t})acc / ({' * '.join(counts)}));")


@C.emits(GlobalAvgPool, GlobalMaxPool)
def global_pool(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    t = compute_type(x.type.dtype)
    m = MapBuilder(k, list(x.type.shape[:2]), grain=16)
    px, py = m.pointer(x), m.pointer(y, const=False)
    n = k.dim(norm(numel(list(x.type.shape[2:]))))
    m.body.append(f"const {t} *xr = {px} + o * {n};")
    if isinstance(node.op, GlobalAvgPool):
        m.body.append(f"double acc = 0; for (int64_t j = 0; j < {n}; ++j) acc += xr[j];")
        return m.render(f"{py}[o] = ({t})(({t})acc / ({t})({n}));")
    fl = x.type.dtype.is_float
    step = (
        "acc = (acc != acc || acc > xr[j]) ? acc : xr[j];"
        if fl
        else "acc = acc > xr[j] ? acc : xr[j];"
    )
    m.body.append(f"{t} acc = {_lowest(x.type.dtype)}; for (int64_t j = 0; j < {n}; ++j) {step}")
    return m.render(f"{py}[o] = acc;")


@C.emits(AdaptiveAvgPool, AdaptiveMaxPool)
def adaptive_pool(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    sizes = node.op.output_size  # type: ignore[attr-defined]
    nd = len(sizes)
    lead = x.type.rank - nd
    t = compute_type(x.type.dtype)
    m = MapBuilder(k, list(y.type.shape), grain=64)
    px, py = m.pointer(x), m.pointer(y, const=False)
    D = k.dim
    xst = strides(x.type.shape)
    m.body.append(
        f"const int64_t base = {' + '.join(f'i{a} * {D(xst[a])}' for a in range(lead)) or '0'};"
    )
    loops, xo, cnt = [], [], []
    for i in range(nd):
        a, n, o = lead + i, D(x.type.shape[lead + i]), sizes[i]
        m.body.append(
            f"const int64_t lo{i} = i{a} * {n} / {o}, hi{i} = ((i{a} + 1) * {n} + {o} - 1) / {o};"
        )
        loops.append(f"for (int64_t p{i} = lo{i}; p{i} < hi{i}; ++p{i})")
        xo.append(f"p{i} * {D(xst[a])}")
        cnt.append(f"(hi{i} - lo{i})")
    v = f"{px}[base + {' + '.join(xo)}]"
    if isinstance(node.op, AdaptiveAvgPool):
        m.body.append(f"double acc = 0; {' '.join(loops)} acc += {v};")
        return m.render(f"{py}[o] = ({t})(acc / (double)({' * '.join(cnt)}));")
    fl = x.type.dtype.is_float
    step = (
        f"{{ const {t} v = {v}; acc = (acc != acc || acc > v) ? acc : v; }}"
        if fl
        else f"{{ const {t} v = {v}; acc = acc > v ? acc : v; }}"
    )
    m.body.append(f"{t} acc = {_lowest(x.type.dtype)}; {' '.join(loops)} {step}")
    return m.render(f"{py}[o] = acc;")


dataclasses  # noqa: B018
