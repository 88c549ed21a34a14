"""Attention for C: f32 through lmc_attention_f32 (explicit strides; batch dims beyond one are a
loop around the call), other dtypes through a plain two-pass loop per query row. Operands and the
result may be [..., S, H, D] views (fused_attention's *_t flags): only the strides change."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...ir.dtypes import DType
from ...ir.graph import Node, Value
from ...ir.ops.lowered import FusedAttention
from ...ir.shapes import Dim, broadcast_shapes, norm
from .cexpr import compute_type
from .emit import C, Kernel
from .emit_nn import F32_KERNEL, uses_kernels
from .nd import MapBuilder, broadcast_strides


@dataclass(frozen=True)
class Views:
    """Which of q, k, v and the result are [..., S, H, D] (axes -3, -2 swapped)."""

    q: bool = False
    k: bool = False
    v: bool = False
    out: bool = False


PLAIN = Views()


def views_of(node: Node) -> Views:
    op = node.op
    if isinstance(op, FusedAttention):
        return Views(op.q_t, op.k_t, op.v_t, op.out_t)
    return PLAIN


def _hs(x: Value, t: bool) -> tuple[Dim, Dim]:
    """(heads, sequence) of x in attention's order, whatever its layout."""
    a, b = x.type.shape[-3], x.type.shape[-2]
    return (b, a) if t else (a, b)


def _strides(h: Dim, s: Dim, d: Dim, t: bool) -> tuple[Dim, Dim]:
    """(head stride, row stride) in elements of a contiguous [H, S, D] or [S, H, D] block."""
    return (d, norm(h * d)) if t else (norm(s * d), d)


def _layout(q: Value, kk: Value, v: Value, mask: Value | None, vw: Views = PLAIN):
    r = q.type.rank
    batch = (
        tuple(broadcast_shapes(q.type.shape[:-3], kk.type.shape[:-3], v.type.shape[:-3]) or ())
        if r >= 3
        else ()
    )
    hq, sq = _hs(q, vw.q) if r >= 3 else (1, q.type.shape[-2])
    hkv, skv = _hs(kk, vw.k) if r >= 3 else (1, kk.type.shape[-2])
    d, dv = q.type.shape[-1], v.type.shape[-1]
    return batch, hq, hkv, sq, skv, d, dv


def _batch_strides(x: Value, batch: tuple, per: Dim) -> list[Dim]:
    """Element strides of x's batch dims (broadcast dims 0) over the output batch."""
    if not batch:
        return []
    shape = x.type.shape[: x.type.rank - 3]
    return [norm(s * per) for s in broadcast_strides(shape, batch)]


def _scale(k: Kernel, node: Node, d: Dim) -> str:
    s = node.op.scale  # type: ignore[attr-defined]
    if s is not None:
        return repr(float(s))
    if isinstance(d, int):
        return repr(float(1.0 / math.sqrt(d)) if d > 0 else 0.0)
    return f"(1.0 / sqrt((double){k.dim(d)}))"


def _mask_strides(mask: Value, batch: tuple, hq: Dim, sq: Dim, skv: Dim, r: int) -> list[Dim]:
    full = batch + ((hq,) if r >= 3 else ()) + (sq, skv)
    return broadcast_strides(mask.type.shape, full)


def attention_kernel(
    k: Kernel, node: Node, q: Value, kk: Value, v: Value, mask: Value | None, y: Value
) -> str:
    r = q.type.rank
    vw = views_of(node)
    batch, hq, hkv, sq, skv, d, dv = _layout(q, kk, v, mask, vw)
    qb = _batch_strides(q, batch, norm(hq * sq * d))
    kb = _batch_strides(kk, batch, norm(hkv * skv * d))
    vb = _batch_strides(v, batch, norm(hkv * skv * dv))
    ob = [norm(s * hq * sq * dv) for s in _contig(batch)]
    mst = _mask_strides(mask, batch, hq, sq, skv, r) if mask is not None else []
    mb = mst[: len(batch)]
    D = k.dim
    s = ["lmc_attention_args a;", "memset(&a, 0, sizeof a);"]
    inner = batch[-1] if batch else 1
    s.append(
        f"a.B = {D(inner)}; a.Hq = {D(hq)}; a.Hkv = {D(hkv)}; a.Sq = {D(sq)}; "
        f"a.Skv = {D(skv)}; a.D = {D(d)}; a.Dv = {D(dv)};"
    )
    last = lambda st: D(st[-1]) if batch else "0"  # noqa: E731
    for f, st, h, n, w, t in (
        ("q", qb, hq, sq, d, vw.q),
        ("k", kb, hkv, skv, d, vw.k),
        ("v", vb, hkv, skv, dv, vw.v),
        ("o", ob, hq, sq, dv, vw.out),
    ):
        sh, ss = _strides(h, n, w, t)
        s.append(
            f"a.{f}_sb = {last(st)}; a.{f}_sh = {D(sh) if r >= 3 else '0'}; a.{f}_ss = {D(ss)};"
        )
    if mask is not None:
        kind = 1 if mask.type.dtype == DType.bool else 2
        s.append(f"a.mask_kind = {kind}; a.m_sk = {D(mst[-1])}; a.m_sq = {D(mst[-2])};")
        s.append(f"a.m_sh = {D(mst[-3]) if r >= 3 else '0'}; a.m_sb = {last(mb)};")
    s.append(f"a.causal = {int(node.op.causal)}; a.scale = (float){_scale(k, node, d)};")  # type: ignore[attr-defined]
    ptrs = {"q": k.ptr(q), "k": k.ptr(kk), "v": k.ptr(v), "out": k.ptr(y, const=False)}
    if mask is not None:
        ptrs["mask"] = f"(const void *){k.ptr(mask)}"
    outer = batch[:-1]
    if not outer:
        s += [f"a.{f} = {p};" for f, p in ptrs.items()]
        s.append("lmc_attention_f32(ex->pool, &a);")
        return k.render("ops/values.c.j2", decls=[], stmts=s)
    offs = {"q": qb, "k": kb, "v": vb, "out": ob, "mask": mb}
    loop = ["int64_t rem = bi, oq = 0, ok = 0, ov = 0, oo = 0, om = 0;"]
    names = {"q": "oq", "k": "ok", "v": "ov", "out": "oo", "mask": "om"}
    for ax in range(len(outer) - 1, -1, -1):
        add = " ".join(f"{names[f]} += ia * {D(offs[f][ax])};" for f in ptrs)
        loop.append(f"{{ const int64_t ia = rem % {D(outer[ax])}; rem /= {D(outer[ax])}; {add} }}")
    for f, p in ptrs.items():
        if f == "mask":
            loop.append(f"a.mask = (const void *)({k.ptr(mask)} + om);")  # type: ignore[arg-type]
        else:
            loop.append(f"a.{f} = {p} + {names[f]};")
    loop.append("lmc_attention_f32(ex->pool, &a);")
    s.append(f"for (int64_t bi = 0; bi < {k.numel(list(outer))}; ++bi) {{ {' '.join(loop)} }}")
    return k.render("ops/values.c.j2", decls=[], stmts=s)


def _contig(batch: tuple) -> list[Dim]:
    from .nd import strides

    return strides(list(batch)) if batch else []


def attention_native(
    k: Kernel, node: Node, q: Value, kk: Value, v: Value, mask: Value | None, y: Value
) -> str:
    r = q.type.rank
    vw = views_of(node)
    batch, hq, hkv, sq, skv, d, dv = _layout(q, kk, v, mask, vw)
    nb = len(batch)
    head = (hq,) if r >= 3 else ()
    rows = list(batch) + list(head) + [sq]
    m = MapBuilder(k, rows, grain=4)
    t = compute_type(q.type.dtype)
    pq, pk, pv, py = m.pointer(q), m.pointer(kk), m.pointer(v), m.pointer(y, const=False)
    D = k.dim
    qh, qs = _strides(hq, sq, d, vw.q)
    kh_st, ks = _strides(hkv, skv, d, vw.k)
    vh_st, vs = _strides(hkv, skv, dv, vw.v)
    oh, os_ = _strides(hq, sq, dv, vw.out)
    qst = _batch_strides(q, batch, norm(hq * sq * d)) + ([qh] if head else []) + [qs]
    kst = _batch_strides(kk, batch, norm(hkv * skv * d)) + ([0] if head else []) + [0]
    vst = _batch_strides(v, batch, norm(hkv * skv * dv)) + ([0] if head else []) + [0]
    ost = _contig(batch)
    ost = [norm(x * hq * sq * dv) for x in ost] + ([oh] if head else []) + [os_]
    iq = f"i{len(rows) - 1}"
    m.body.append(f"const int64_t qo = {_lin(k, qst)};")
    kh = "0"
    if head:
        m.body.append(f"const int64_t kh = i{nb} / ({D(hq)} / {D(hkv)});")
        kh = "kh"
    m.body.append(f"const int64_t ko = {_lin(k, kst)} + {kh} * {D(kh_st)};")
    m.body.append(f"const int64_t vo = {_lin(k, vst)} + {kh} * {D(vh_st)};")
    score = f"acc * {_scale(k, node, d)}"
    skip = []
    if node.op.causal:  # type: ignore[attr-defined]
        skip.append(f"j > {iq}")
    if mask is not None:
        pm = m.pointer(mask)
        mst = _mask_strides(mask, batch, hq, sq, skv, r)
        m.body.append(f"const int64_t mo = {_lin(k, mst[:-1])};")
        at = f"{pm}[mo + j * {D(mst[-1])}]"
        if mask.type.dtype == DType.bool:
            skip.append(f"!{at}")
        else:
            score = f"{score} + (double){at}"
    cond = f"if ({' || '.join(skip)}) continue; " if skip else ""
    dot = (
        f"double acc = 0; for (int64_t c = 0; c < {D(d)}; ++c) acc += (double){pq}[qo + c] * "
        f"{pk}[ko + j * {D(ks)} + c]; const double sc = {score};"
    )
    m.body.append(f"{t} *yr = {py} + {_lin(k, ost)};")
    m.body.append(
        f"double mx = -INFINITY; for (int64_t j = 0; j < {D(skv)}; ++j) {{ {cond}{dot} "
        "if (sc > mx) mx = sc; }"
    )
    m.body.append(f"for (int64_t c = 0; c < {D(dv)}; ++c) yr[c] = 0;")
    m.body.append(
        f"if (mx != -INFINITY) {{ double sum = 0; for (int64_t j = 0; j < {D(skv)}; ++j) {{ {cond}"
        f"{dot} const double e = exp(sc - mx); sum += e; for (int64_t c = 0; c < {D(dv)}; ++c) "
        f"yr[c] += ({t})(e * {pv}[vo + j * {D(vs)} + c]); }} "
        f"for (int64_t c = 0; c < {D(dv)}; ++c) yr[c] = ({t})(yr[c] / sum); }}"
    )
    return m.render("(void)o;")


def _lin(k: Kernel, st: list[Dim]) -> str:
    return " + ".join(f"i{a} * {k.dim(s)}" for a, s in enumerate(st) if s != 0) or "0"


@C.emits(FusedAttention)
def fused_attention(k: Kernel, node: Node) -> str:
    q, kk, v = node.inputs[:3]
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    y = node.outputs[0]
    if q.type.dtype in F32_KERNEL and uses_kernels(k):
        return attention_kernel(k, node, q, kk, v, mask, y)
    return attention_native(k, node, q, kk, v, mask, y)
