"""C emitters of sources, views and data movement: reshape-like views (no code: the memory plan
aliases them), transpose / expand / slice / tile / pad / concat / split as index maps, the ops
that make tensors from shapes, triangular masks and depth/space rearrangements, and the final
copies into graph outputs."""

from __future__ import annotations

import dataclasses

from ...ir.dtypes import DType
from ...ir.graph import Node, Value
from ...ir.ops.elementwise import Identity
from ...ir.ops.misc import DepthToSpace, SpaceToDepth, Trilu
from ...ir.ops.shape import (
    Concat,
    Expand,
    Flatten,
    Full,
    Pad,
    Range,
    Reshape,
    Shape,
    Slice,
    Split,
    Squeeze,
    Tile,
    Transpose,
    Unsqueeze,
    slice_range,
)
from ...ir.ops.source import Constant, Input, Param
from ...ir.shapes import Dim, norm, numel
from .cexpr import compute_type, ctype, literal, storage_literal, store
from .emit import C, Kernel, ModuleBuilder, constant_is_static
from .nd import MapBuilder, broadcast_strides, strides
from .sanitize import c_comment

VIEWS = (Reshape, Squeeze, Unsqueeze, Flatten, Identity)
PAD_MODE = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}


@C.emits(*VIEWS)
def view(k: Kernel, node: Node) -> None:
    """No code: the result aliases operand 0's bytes (memory_plan views)."""
    return None


@C.emits(Param)
def param(k: Kernel, node: Node) -> None:
    return None


@C.emits(Input)
def graph_input(k: Kernel, node: Node) -> str | None:
    """bf16 crosses the API as 16 bits; inside, bf16 values live in float storage."""
    v = node.outputs[0]
    if v.type.dtype != DType.bf16:
        return None
    m = MapBuilder(k, list(v.type.shape))
    index = node.op.index  # type: ignore[attr-defined]
    m.decls.append(f"const uint16_t *const src = (const uint16_t *)ex->in[{index}];")
    y = m.pointer(v, const=False)
    return m.render(f"{y}[o] = lmc_bf2f(src[o]);")


@C.emits(Constant)
def constant(k: Kernel, node: Node) -> str | None:
    """Static constants are C arrays (emit.ModuleBuilder); symbolic ones are filled per run."""
    if constant_is_static(node):
        return None
    v = node.outputs[0]
    y = k.ptr(v, const=False)
    dt = v.type.dtype
    stmts = [
        f"{y}[{j}] = {store(dt, _value(k, x, dt))};"
        for j, x in enumerate(node.op.value)  # type: ignore[attr-defined]
    ]
    return k.render("ops/values.c.j2", decls=[], stmts=stmts)


def _value(k: Kernel, x: object, dt: DType) -> str:
    if isinstance(x, (bool, int, float)):
        return literal(x, dt)
    return f"({compute_type(dt)}){k.dim(x)}"  # type: ignore[arg-type]


def gather_map(k: Kernel, out: Value, src: Value, st: list[Dim], base: Dim = 0) -> str:
    """out[i] = src[base + sum_a i_a * st[a]] over out's shape."""
    m = MapBuilder(k, list(out.type.shape))
    x = m.pointer(src)
    y = m.pointer(out, const=False)
    b = k.dim(base) if not (isinstance(base, int) and base == 0) else ""
    if not out.type.shape:
        return m.render(f"{y}[o] = {x}[{b or 0}];")
    return m.render(f"{y}[o] = {x}[{m.offset(st, b)}];")


@C.emits(Transpose)
def transpose(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    st = strides(x.type.shape)
    return gather_map(k, y, x, [st[p] for p in node.op.perm])  # type: ignore[attr-defined]


@C.emits(Expand)
def expand(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    return gather_map(k, y, x, broadcast_strides(x.type.shape, y.type.shape))


@C.emits(Slice)
def slice_(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    op = node.op
    st = strides(x.type.shape)
    steps: list[Dim] = list(st)
    base: Dim = 0
    for ax, s0, e0, step in zip(op.axes, op.starts, op.ends, op.steps):  # type: ignore[attr-defined]
        ax = ax % x.type.rank
        first, _, _ = slice_range(op.name, x.type.shape[ax], s0, e0, step)
        base = norm(base + first * st[ax])
        steps[ax] = norm(st[ax] * step)
    return gather_map(k, y, x, steps, base)


@C.emits(Tile)
def tile(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    m = MapBuilder(k, list(y.type.shape))
    px, py = m.pointer(x), m.pointer(y, const=False)
    st = strides(x.type.shape)
    terms = [f"(i{a} % {k.dim(d)}) * {k.dim(s)}" for a, (d, s) in enumerate(zip(x.type.shape, st))]
    return m.render(f"{py}[o] = {px}[{' + '.join(terms) or '0'}];")


@C.emits(Pad)
def pad(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    op = node.op
    r = x.type.rank
    m = MapBuilder(k, list(y.type.shape))
    px, py = m.pointer(x), m.pointer(y, const=False)
    if r == 0:
        return m.render(f"{py}[o] = {px}[0];")
    mode = PAD_MODE[op.mode]  # type: ignore[attr-defined]
    st = strides(x.type.shape)
    srcs, terms = [], []
    for a in range(r):
        pb, pe, n = k.dim(op.pads[a]), k.dim(op.pads[r + a]), k.dim(x.type.shape[a])  # type: ignore[attr-defined]
        c0 = m.declare("int64_t", f"lmc_imax(-({pb}), 0)", "c")
        nn = m.declare("int64_t", f"{n} - {c0} - lmc_imax(-({pe}), 0)", "n")
        p0 = m.declare("int64_t", f"lmc_imax({pb}, 0)", "b")
        s = m.name("s")
        stmt = f"const int64_t {s} = lmc_pad_index(i{a} - {p0}, {nn}, {mode});"
        (m.row if a < r - 1 else m.body).append(stmt)
        srcs.append(s)
        terms.append(f"({c0} + {s}) * {k.dim(st[a])}")
    value = f"{px}[{' + '.join(terms)}]"
    if mode == 0:
        fill = storage_literal(op.value, x.type.dtype)  # type: ignore[attr-defined]
        ok = " && ".join(f"{s} >= 0" for s in srcs)
        value = f"({ok}) ? {value} : {fill}"
    return m.render(f"{py}[o] = {value};")


def _parts(k: Kernel, bodies: list[tuple[str, object]]) -> str:
    return k.render("ops/seq.c.j2", parts=[b for b, _ in bodies], calls=[c for _, c in bodies])


@C.emits(Concat)
def concat(k: Kernel, node: Node) -> str:
    y = node.outputs[0]
    ax = node.op.axis % y.type.rank  # type: ignore[attr-defined]
    yst = strides(y.type.shape)
    parts, offset = [], 0
    for j, x in enumerate(node.inputs):
        sub = dataclasses.replace(k, name=f"{k.name}_{j}")
        m = MapBuilder(sub, list(x.type.shape))
        px, py = m.pointer(x), m.pointer(y, const=False)
        dst = m.offset(yst, k.dim(norm(offset * yst[ax])) if offset != 0 else "")
        parts.append((m.render(f"{py}[{dst}] = {px}[o];"), sub.name))
        offset = norm(offset + x.type.shape[ax])
    return _parts(k, parts)


@C.emits(Split)
def split(k: Kernel, node: Node) -> str:
    x = node.inputs[0]
    ax = node.op.axis % x.type.rank  # type: ignore[attr-defined]
    xst = strides(x.type.shape)
    parts, offset = [], 0
    for j, y in enumerate(node.outputs):
        sub = dataclasses.replace(k, name=f"{k.name}_{j}")
        base = norm(offset * xst[ax])
        parts.append((gather_map(sub, y, x, list(xst), base), sub.name))
        offset = norm(offset + y.type.shape[ax])
    return _parts(k, parts)


@C.emits(Shape)
def shape(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    dims = x.type.shape[node.op.start : node.op.end]  # type: ignore[attr-defined]
    py = k.ptr(y, const=False)
    return k.render(
        "ops/values.c.j2", decls=[], stmts=[f"{py}[{j}] = {k.dim(d)};" for j, d in enumerate(dims)]
    )


@C.emits(Full)
def full(k: Kernel, node: Node) -> str:
    y = node.outputs[0]
    m = MapBuilder(k, list(y.type.shape))
    py = m.pointer(y, const=False)
    value = bool(node.op.value) if y.type.dtype == DType.bool else node.op.value  # type: ignore[attr-defined]
    return m.render(f"{py}[o] = {storage_literal(value, y.type.dtype)};")


@C.emits(Range)
def range_(k: Kernel, node: Node) -> str:
    y = node.outputs[0]
    op, dt = node.op, y.type.dtype
    m = MapBuilder(k, list(y.type.shape))
    py = m.pointer(y, const=False)
    work = "double" if dt.is_float else "int64_t"
    start, delta = (_range_value(k, v, work) for v in (op.start, op.delta))  # type: ignore[attr-defined]
    v = f"(({start}) + ({work})o * ({delta}))"
    if dt == DType.bf16:
        v = f"lmc_rbf16((float){v})"
    elif dt == DType.f16:
        v = f"lmc_f2h((float){v})"
    else:
        v = f"({ctype(dt)}){v}"
    return m.render(f"{py}[o] = {v};")


def _range_value(k: Kernel, v: object, work: str) -> str:
    if isinstance(v, float):
        return repr(v) if work == "double" else str(int(v))
    if isinstance(v, int):
        return f"({work})INT64_C({v})"
    return f"({work}){k.dim(v)}"  # type: ignore[arg-type]


@C.emits(Trilu)
def trilu(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    m = MapBuilder(k, list(y.type.shape))
    px, py = m.pointer(x), m.pointer(y, const=False)
    r, kk = y.type.rank, node.op.k  # type: ignore[attr-defined]
    cmp = ">=" if node.op.upper else "<="  # type: ignore[attr-defined]
    zero = storage_literal(0, y.type.dtype)
    return m.render(f"{py}[o] = (i{r - 1} - i{r - 2} {cmp} {kk}) ? {px}[o] : {zero};")


@C.emits(DepthToSpace)
def depth_to_space(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    b = node.op.blocksize  # type: ignore[attr-defined]
    _, c, h, w = (k.dim(d) for d in x.type.shape)
    c2 = k.dim(y.type.shape[1])
    m = MapBuilder(k, list(y.type.shape))
    px, py = m.pointer(x), m.pointer(y, const=False)
    m.row.append(f"const int64_t hi = i2 / {b}, bi = i2 % {b};")
    m.body.append(f"const int64_t wi = i3 / {b}, bj = i3 % {b};")
    if node.op.mode == "DCR":  # type: ignore[attr-defined]
        ch = f"(i1 + {c2} * ({b} * bi + bj))"
    else:
        ch = f"(i1 * {b * b} + {b} * bi + bj)"
    return m.render(f"{py}[o] = {px}[((i0 * {c} + {ch}) * {h} + hi) * {w} + wi];")


@C.emits(SpaceToDepth)
def space_to_depth(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    b = node.op.blocksize  # type: ignore[attr-defined]
    _, c, h, w = (k.dim(d) for d in x.type.shape)
    m = MapBuilder(k, list(y.type.shape))
    px, py = m.pointer(x), m.pointer(y, const=False)
    m.row.append(f"const int64_t blk = i1 / {c}, ci = i1 % {c};")
    m.row.append(f"const int64_t bi = blk / {b}, bj = blk % {b};")
    src = f"((i0 * {c} + ci) * {h} + i2 * {b} + bi) * {w} + i3 * {b} + bj"
    return m.render(f"{py}[o] = {px}[{src}];")


def output_copy(mod: ModuleBuilder, name: str, index: int, v: Value) -> str:
    """Copy a value into graph output `index` (bf16 converted to its 16-bit form)."""
    from .emit import Kernel as K

    k = K(mod, v.node, name, c_comment(f"output {index} = {v.type} (copy)"))
    if v.type.dtype == DType.bf16:
        m = MapBuilder(k, list(v.type.shape))
        x = m.pointer(v)
        m.decls.append(f"uint16_t *const y = (uint16_t *)ex->out[{index}];")
        return m.render(f"y[o] = lmc_f2bf({x}[o]);")
    nbytes = k.dim(norm(numel(list(v.type.shape)) * v.type.dtype.np.itemsize))
    return k.render("ops/copy.c.j2", dst=f"ex->out[{index}]", src=mod.base(v), nbytes=nbytes)
