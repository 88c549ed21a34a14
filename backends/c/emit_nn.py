"""C emitters of normalizations, softmax and rotary embeddings: f32 rows over the last axis go
to the kernel library (lmc_layer_norm_f32, lmc_rms_norm_f32, lmc_softmax_f32); other dtypes and
axes get plain loops (double accumulators)."""

from __future__ import annotations

from ...ir.dtypes import DType
from ...ir.graph import Node, Value
from ...ir.ops.nn import (
    BatchNorm,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    LogSoftmax,
    RmsNorm,
    RotaryEmbedding,
    Softmax,
)
from ...ir.shapes import floor_div, norm, numel
from .cexpr import compute_type, literal
from .emit import C, Kernel
from .nd import MapBuilder, broadcast_strides, strides

F32_KERNEL = (DType.f32, DType.bf16)  # bf16 values live in float storage


def uses_kernels(k: Kernel) -> bool:
    return bool(k.mod.options.get("kernels", True))


def _rows(x: Value) -> tuple[list, object]:
    return list(x.type.shape[:-1]), x.type.shape[-1]


@C.emits(LayerNorm, RmsNorm)
def row_norm(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    op, dt = node.op, x.type.dtype
    rows, cols = _rows(x)
    w = node.inputs[1] if len(node.inputs) > 1 else None
    b = node.inputs[2] if len(node.inputs) > 2 else None
    eps = float(op.eps)  # type: ignore[attr-defined]
    if dt in F32_KERNEL and uses_kernels(k):
        args = [k.ptr(x), k.ptr(w) if w else "NULL"]
        if isinstance(op, LayerNorm):
            args.append(k.ptr(b) if b else "NULL")
            fn = "lmc_layer_norm_f32"
        else:
            fn = "lmc_rms_norm_f32"
        call = (
            f"{fn}(ex->pool, {k.numel(rows)}, {k.dim(cols)}, {', '.join(args)}, "
            f"{literal(eps, DType.f32)}, {k.ptr(y, const=False)});"
        )
        return k.render("ops/values.c.j2", decls=[], stmts=[call])
    t = compute_type(dt)
    m = MapBuilder(k, rows, grain=64)
    px, py = m.pointer(x), m.pointer(y, const=False)
    pw = m.pointer(w) if w else None
    pb = m.pointer(b) if b else None
    c = k.dim(cols)
    m.body.append(f"const {t} *xr = {px} + o * {c}; {t} *yr = {py} + o * {c};")
    if isinstance(op, LayerNorm):
        m.body.append(f"double mean = 0, var = 0; for (int64_t j = 0; j < {c}; ++j) mean += xr[j];")
        m.body.append(f"mean /= (double){c};")
        m.body.append(
            f"for (int64_t j = 0; j < {c}; ++j) {{ const double d = xr[j] - mean; var += d * d; }}"
        )
        m.body.append(f"const double inv = 1.0 / sqrt(var / (double){c} + {eps!r});")
        v = "(xr[j] - mean) * inv"
    else:
        m.body.append(
            f"double ms = 0; for (int64_t j = 0; j < {c}; ++j) ms += (double)xr[j] * xr[j];"
        )
        m.body.append(f"const double inv = 1.0 / sqrt(ms / (double){c} + {eps!r});")
        v = "xr[j] * inv"
    if pw:
        v = f"({v}) * {pw}[j]"
    if pb:
        v = f"({v}) + {pb}[j]"
    m.body.append(f"for (int64_t j = 0; j < {c}; ++j) yr[j] = ({t})({v});")
    return m.render("(void)o;")


@C.emits(GroupNorm, InstanceNorm)
def group_norm(k: Kernel, node: Node) -> str:
    x, w, b = node.inputs
    y = node.outputs[0]
    dt = x.type.dtype
    t = compute_type(dt)
    n, ch = x.type.shape[0], x.type.shape[1]
    groups = node.op.groups if isinstance(node.op, GroupNorm) else ch  # type: ignore[attr-defined]
    spatial = norm(numel(list(x.type.shape[2:])))
    per = norm(floor_div(ch, groups) * spatial) if groups != ch else spatial
    m = MapBuilder(k, [n, groups], grain=8)
    px, py, pw, pb = m.pointer(x), m.pointer(y, const=False), m.pointer(w), m.pointer(b)
    eps = float(node.op.eps)  # type: ignore[attr-defined]
    cpg, sz, sp = k.dim(floor_div(ch, groups)), k.dim(per), k.dim(spatial)
    m.body.append(f"const {t} *xr = {px} + o * {sz}; {t} *yr = {py} + o * {sz};")
    m.body.append(f"double mean = 0, var = 0; for (int64_t j = 0; j < {sz}; ++j) mean += xr[j];")
    m.body.append(f"mean /= (double)({sz});")
    m.body.append(
        f"for (int64_t j = 0; j < {sz}; ++j) {{ const double d = xr[j] - mean; var += d * d; }}"
    )
    m.body.append(f"const double inv = 1.0 / sqrt(var / (double)({sz}) + {eps!r});")
    m.body.append(
        f"for (int64_t c = 0; c < {cpg}; ++c) {{ const int64_t ci = i1 * {cpg} + c; "
        f"for (int64_t s = 0; s < {sp}; ++s) {{ const int64_t j = c * {sp} + s; "
        f"yr[j] = ({t})((xr[j] - mean) * inv * {pw}[ci] + {pb}[ci]); }} }}"
    )
    return m.render("(void)o;")


@C.emits(BatchNorm)
def batch_norm(k: Kernel, node: Node) -> str:
    x, w, b, mean, var = node.inputs
    y = node.outputs[0]
    t = compute_type(x.type.dtype)
    m = MapBuilder(k, list(x.type.shape))
    px, py = m.pointer(x), m.pointer(y, const=False)
    pw, pb, pm, pv = (m.pointer(p) for p in (w, b, mean, var))
    eps = literal(node.op.eps, x.type.dtype)  # type: ignore[attr-defined]
    sq = "sqrtf" if t == "float" else "sqrt"
    m.body.append(f"const {t} inv = {pw}[i1] / {sq}({pv}[i1] + {eps});")
    return m.render(f"{py}[o] = ({px}[o] - {pm}[i1]) * inv + {pb}[i1];")


@C.emits(Softmax, LogSoftmax)
def softmax(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    dt = x.type.dtype
    ax = node.op.axis % x.type.rank  # type: ignore[attr-defined]
    log = isinstance(node.op, LogSoftmax)
    if dt in F32_KERNEL and ax == x.type.rank - 1 and uses_kernels(k):
        rows, cols = _rows(x)
        call = (
            f"lmc_softmax_f32(ex->pool, {k.numel(rows)}, {k.dim(cols)}, {k.ptr(x)}, "
            f"{k.ptr(y, const=False)}, {int(log)});"
        )
        return k.render("ops/values.c.j2", decls=[], stmts=[call])
    t = compute_type(dt)
    ex = "expf" if t == "float" else "exp"
    lg = "logf" if t == "float" else "log"
    kept = [a for a in range(x.type.rank) if a != ax]
    m = MapBuilder(k, [x.type.shape[a] for a in kept], grain=64)
    px, py = m.pointer(x), m.pointer(y, const=False)
    xst = strides(x.type.shape)
    n, s = k.dim(x.type.shape[ax]), k.dim(xst[ax])
    base = " + ".join(f"i{j} * {k.dim(xst[a])}" for j, a in enumerate(kept)) or "0"
    m.body.append(f"const int64_t base = {base};")
    m.body.append(
        f"{t} mx = -INFINITY; for (int64_t j = 0; j < {n}; ++j) "
        f"{{ const {t} v = {px}[base + j * {s}]; mx = v > mx ? v : mx; }}"
    )
    m.body.append(
        f"double sum = 0; for (int64_t j = 0; j < {n}; ++j) sum += {ex}({px}[base + j * {s}] - mx);"
    )
    if log:
        m.body.append(f"const {t} lse = ({t}){lg}(({t})sum);")
        m.body.append(
            f"for (int64_t j = 0; j < {n}; ++j) "
            f"{py}[base + j * {s}] = ({px}[base + j * {s}] - mx) - lse;"
        )
    else:
        m.body.append(f"const {t} den = ({t})sum;")
        m.body.append(
            f"for (int64_t j = 0; j < {n}; ++j) "
            f"{py}[base + j * {s}] = {ex}({px}[base + j * {s}] - mx) / den;"
        )
    return m.render("(void)o;")


@C.emits(RotaryEmbedding)
def rotary_embedding(k: Kernel, node: Node) -> str:
    x, cos, sin = node.inputs
    y = node.outputs[0]
    if x.type.dtype == DType.f32 and uses_kernels(k):
        return _rotary_rows(k, node)
    t = compute_type(x.type.dtype)
    r = x.type.rank
    half = cos.type.shape[-1]
    m = MapBuilder(k, list(x.type.shape))
    px, pc, ps, py = m.pointer(x), m.pointer(cos), m.pointer(sin), m.pointer(y, const=False)
    cst = broadcast_strides(cos.type.shape[:-1], x.type.shape[:-1])
    h = k.dim(half)
    cb = " + ".join(f"i{a} * {k.dim(s)}" for a, s in enumerate(cst) if s != 0) or "0"
    m.row.append(f"const int64_t cb = {cb};")
    j = f"i{r - 1}"
    m.body.append(f"const int64_t rowx = o - {j};")
    if node.op.interleaved:  # type: ignore[attr-defined]
        m.body.append(f"const int64_t p = {j} / 2;")
        m.body.append(f"const int64_t cbp = cb * {h} + p;")
        value = (
            f"{j} >= 2 * {h} ? ({t}){px}[o] : ({j} % 2 == 0 ? "
            f"({t})({px}[o] * {pc}[cbp] - {px}[o + 1] * {ps}[cbp]) : "
            f"({t})({px}[o] * {pc}[cbp] + {px}[o - 1] * {ps}[cbp]))"
        )
    else:
        m.body.append(f"const int64_t jj = {j} < {h} ? {j} : {j} - {h};")
        m.body.append(f"const int64_t cbp = cb * {h} + jj;")
        value = (
            f"{j} >= 2 * {h} ? ({t}){px}[o] : ({j} < {h} ? "
            f"({t})({px}[o] * {pc}[cbp] - {px}[rowx + jj + {h}] * {ps}[cbp]) : "
            f"({t})({px}[o] * {pc}[cbp] + {px}[rowx + jj] * {ps}[cbp]))"
        )
    return m.render(f"{py}[o] = {value};")


def _rotary_rows(k: Kernel, node: Node) -> str:
    """f32: one vectorized library call per row (lmc_rotary_row_f32), cos / sin rows found
    through their broadcast strides; parallel over rows."""
    x, cos, sin = node.inputs
    y = node.outputs[0]
    half, d = cos.type.shape[-1], x.type.shape[-1]
    rows = list(x.type.shape[:-1])
    m = MapBuilder(k, rows + [1], grain=max(1, 16384 // max(1, _static_or(d, 64))))
    px, pc, ps, py = m.pointer(x), m.pointer(cos), m.pointer(sin), m.pointer(y, const=False)
    cst = [norm(s * half) for s in broadcast_strides(cos.type.shape[:-1], tuple(rows))]
    cb = m.offset(cst + [0])
    dd, hh = k.dim(d), k.dim(half)
    inter = int(bool(node.op.interleaved))  # type: ignore[attr-defined]
    m.body.append(
        f"lmc_rotary_row_f32({px} + o * {dd}, {pc} + {cb}, {ps} + {cb}, {py} + o * {dd}, "
        f"{hh}, {dd}, {inter});"
    )
    return m.render("(void)o;")


def _static_or(d: object, default: int) -> int:
    return d if isinstance(d, int) else default
