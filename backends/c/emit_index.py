"""C emitters of indexing ops: gather, gather_elements, gather_nd, embedding, one_hot (index
maps with a range check first: an out-of-range index is a kernel error, as in the reference) and
scatter_elements / scatter_nd (a copy, then a serial update loop: duplicates apply in order)."""

from __future__ import annotations

from ...ir.graph import Node, Value
from ...ir.ops.index import Gather, GatherElements, GatherNd, OneHot, ScatterElements, ScatterNd
from ...ir.ops.nn import Embedding
from ...ir.shapes import Dim, norm, numel
from .cexpr import load, storage_literal, store
from .emit import C, Kernel
from .nd import MapBuilder, strides
from .sanitize import c_string


def index_check(
    k: Kernel,
    idx: Value,
    bound: str,
    op: str,
    negative: bool = True,
    column: tuple[int, int] | None = None,
) -> str:
    """A loop returning a kernel error at the first index outside [-bound, bound) (or
    [0, bound) without `negative`); `column` (j, m) checks only idx[q*m + j]."""
    p = k.ptr(idx)
    lo = f"-({bound})" if negative else "0"
    n = k.numel(idx)
    at = "q"
    if column is not None:
        j, m = column
        n = f"({n}) / {m}"
        at = f"q * {m} + {j}"
    msg = c_string(f"{op}: index out of range: ")
    return (
        f"for (int64_t q = 0; q < {n}; ++q) if ({p}[{at}] < {lo} || {p}[{at}] >= ({bound})) "
        f"return lmc_fail(ex->err, ex->err_len, {msg}, (int64_t){p}[{at}]);"
    )


def flat(axes: list[int], shape: list[Dim] | tuple[Dim, ...], k: Kernel) -> str:
    """sum_j i_{axes[j]} * stride_j of a contiguous `shape` (0 for a scalar)."""
    st = strides(list(shape))
    terms = [f"i{a} * {k.dim(s)}" if s != 1 else f"i{a}" for a, s in zip(axes, st)]
    return " + ".join(terms) or "0"


def _wrapped(m: MapBuilder, p: str, at: str, n: str) -> str:
    t = m.name("t")
    m.body.append(f"int64_t {t} = (int64_t){p}[{at}];")
    m.body.append(f"{t} += {t} < 0 ? {n} : 0;")
    return t


@C.emits(Gather)
def gather(k: Kernel, node: Node) -> str:
    x, idx = node.inputs
    y = node.outputs[0]
    ax = node.op.axis % x.type.rank  # type: ignore[attr-defined]
    ri = idx.type.rank
    n = k.dim(x.type.shape[ax])
    m = MapBuilder(k, list(y.type.shape))
    px, pi, py = m.pointer(x), m.pointer(idx), m.pointer(y, const=False)
    m.pre.append(index_check(k, idx, n, "gather"))
    t = _wrapped(m, pi, flat(list(range(ax, ax + ri)), idx.type.shape, k), n)
    xst = strides(x.type.shape)
    terms = [f"i{a} * {k.dim(xst[a])}" for a in range(ax)]
    terms.append(f"{t} * {k.dim(xst[ax])}")
    terms += [f"i{ax + ri + j} * {k.dim(xst[ax + 1 + j])}" for j in range(x.type.rank - ax - 1)]
    return m.render(f"{py}[o] = {px}[{' + '.join(terms)}];")


@C.emits(Embedding)
def embedding(k: Kernel, node: Node) -> str:
    table, ids = node.inputs
    y = node.outputs[0]
    m = MapBuilder(k, list(y.type.shape))
    pt, pi, py = m.pointer(table), m.pointer(ids), m.pointer(y, const=False)
    m.pre.append(index_check(k, ids, k.dim(table.type.shape[0]), "embedding", negative=False))
    r = ids.type.rank
    q = flat(list(range(r)), ids.type.shape, k)
    m.row.append(f"const int64_t row = (int64_t){pi}[{q}] * {k.dim(table.type.shape[1])};")
    return m.render(f"{py}[o] = {pt}[row + i{r}];")


@C.emits(GatherElements)
def gather_elements(k: Kernel, node: Node) -> str:
    x, idx = node.inputs
    y = node.outputs[0]
    ax = node.op.axis % x.type.rank  # type: ignore[attr-defined]
    n = k.dim(x.type.shape[ax])
    m = MapBuilder(k, list(y.type.shape))
    px, pi, py = m.pointer(x), m.pointer(idx), m.pointer(y, const=False)
    m.pre.append(index_check(k, idx, n, "gather_elements"))
    t = _wrapped(m, pi, "o", n)
    xst = strides(x.type.shape)
    terms = [f"{t if a == ax else f'i{a}'} * {k.dim(s)}" for a, s in enumerate(xst)]
    return m.render(f"{py}[o] = {px}[{' + '.join(terms)}];")


@C.emits(GatherNd)
def gather_nd(k: Kernel, node: Node) -> str:
    x, idx = node.inputs
    y = node.outputs[0]
    b, mm = node.op.batch_dims, idx.type.shape[-1]  # type: ignore[attr-defined]
    ri = idx.type.rank - 1  # leading out axes that address idx rows
    m = MapBuilder(k, list(y.type.shape))
    px, pi, py = m.pointer(x), m.pointer(idx), m.pointer(y, const=False)
    xst = strides(x.type.shape)
    q = flat(list(range(ri)), idx.type.shape[:-1], k)
    terms = []
    if b:
        terms.append(
            f"({flat(list(range(b)), idx.type.shape[:b], k)}) * "
            f"{k.dim(norm(numel(list(x.type.shape[b:]))))}"
        )
    for j in range(mm):  # type: ignore[arg-type]
        n = k.dim(x.type.shape[b + j])
        m.pre.append(index_check(k, idx, n, "gather_nd", column=(j, mm)))  # type: ignore[arg-type]
        t = _wrapped(m, pi, f"({q}) * {mm} + {j}", n)
        terms.append(f"{t} * {k.dim(xst[b + j])}")
    rest = x.type.rank - b - mm  # type: ignore[operator]
    terms += [f"i{ri + j} * {k.dim(xst[b + mm + j])}" for j in range(rest)]  # type: ignore[operator]
    return m.render(f"{py}[o] = {px}[{' + '.join(terms)}];")


@C.emits(OneHot)
def one_hot(k: Kernel, node: Node) -> str:
    idx, y = node.inputs[0], node.outputs[0]
    op = node.op
    ax = op.axis % y.type.rank  # type: ignore[attr-defined]
    m = MapBuilder(k, list(y.type.shape))
    pi, py = m.pointer(idx), m.pointer(y, const=False)
    axes = [a for a in range(y.type.rank) if a != ax]
    t = _wrapped(m, pi, flat(axes, idx.type.shape, k), str(op.depth))  # type: ignore[attr-defined]
    on = storage_literal(op.on_value, y.type.dtype)  # type: ignore[attr-defined]
    off = storage_literal(op.off_value, y.type.dtype)  # type: ignore[attr-defined]
    return m.render(f"{py}[o] = {t} == i{ax} ? {on} : {off};")


_COMBINE = {
    "none": "{u}",
    "add": "({y} + {u})",
    "mul": "({y} * {u})",
    "max": "({y} != {y} || {y} > {u} ? {y} : {u})",
    "min": "({y} != {y} || {y} < {u} ? {y} : {u})",
}


def _combine(reduction: str, y: str, u: str, dt) -> str:
    if reduction == "max" and not dt.is_float:
        return f"({y} > {u} ? {y} : {u})"
    if reduction == "min" and not dt.is_float:
        return f"({y} < {u} ? {y} : {u})"
    return _COMBINE[reduction].format(y=y, u=u)


def _scatter(k: Kernel, node: Node, loop: list[str]) -> str:
    x, y = node.inputs[0], node.outputs[0]
    nbytes = k.dim(norm(numel(list(x.type.shape)) * x.type.dtype.np.itemsize))
    px, py = k.ptr(x), k.ptr(y, const=False)
    decls = [
        f"if ((const void *){py} != (const void *){px} && {nbytes} > 0) "
        f"memcpy({py}, {px}, (size_t)({nbytes}));"
    ]
    return k.render("ops/values.c.j2", decls=decls, stmts=loop)


@C.emits(ScatterElements)
def scatter_elements(k: Kernel, node: Node) -> str:
    x, idx, upd = node.inputs
    y = node.outputs[0]
    dt = y.type.dtype
    ax = node.op.axis % x.type.rank  # type: ignore[attr-defined]
    n = k.dim(x.type.shape[ax])
    py, pi, pu = k.ptr(y, const=False), k.ptr(idx), k.ptr(upd)
    yst = strides(y.type.shape)
    ishape = [k.dim(d) for d in idx.type.shape]
    loop = [index_check(k, idx, n, "scatter_elements")]
    body = ["int64_t rem = q, off = 0;"]
    for a in range(x.type.rank - 1, -1, -1):
        body.append(f"{{ const int64_t ia = rem % {ishape[a]}; rem /= {ishape[a]};")
        if a == ax:
            body.append(
                f"  int64_t t = (int64_t){pi}[q]; t += t < 0 ? {n} : 0; "
                f"off += t * {k.dim(yst[a])}; }}"
            )
        else:
            body.append(f"  off += ia * {k.dim(yst[a])}; }}")
    yv, uv = load(dt, f"{py}[off]"), load(dt, f"{pu}[q]")
    body.append(f"{py}[off] = {store(dt, _combine(node.op.reduction, yv, uv, dt))};")  # type: ignore[attr-defined]
    loop.append(f"for (int64_t q = 0; q < {k.numel(idx)}; ++q) {{ {' '.join(body)} }}")
    return _scatter(k, node, loop)


@C.emits(ScatterNd)
def scatter_nd(k: Kernel, node: Node) -> str:
    x, idx, upd = node.inputs
    y = node.outputs[0]
    dt = y.type.dtype
    mm = idx.type.shape[-1]
    py, pi, pu = k.ptr(y, const=False), k.ptr(idx), k.ptr(upd)
    yst = strides(y.type.shape)
    slab = k.dim(norm(numel(list(x.type.shape[mm:]))))  # type: ignore[misc]
    loop = []
    parts = []
    for j in range(mm):  # type: ignore[arg-type]
        n = k.dim(x.type.shape[j])
        loop.append(index_check(k, idx, n, "scatter_nd", column=(j, mm)))  # type: ignore[arg-type]
        parts.append(
            f"{{ int64_t t = (int64_t){pi}[q * {mm} + {j}]; t += t < 0 ? {n} : 0; "
            f"off += t * {k.dim(yst[j])}; }}"
        )
    yv, uv = load(dt, f"{py}[off + s]"), load(dt, f"{pu}[q * {slab} + s]")
    upd_stmt = f"{py}[off + s] = {store(dt, _combine(node.op.reduction, yv, uv, dt))};"  # type: ignore[attr-defined]
    rows = f"({k.numel(idx)}) / {mm}"
    loop.append(
        f"for (int64_t q = 0; q < {rows}; ++q) {{ int64_t off = 0; {' '.join(parts)} "
        f"for (int64_t s = 0; s < {slab}; ++s) {upd_stmt} }}"
    )
    return _scatter(k, node, loop)
