"""C emitters of reductions (sum, mean, max, min, prod, norms, log-sum-exp), argmax/argmin and
cumsum: a parallel map over the kept positions, each running a serial loop over the reduced
axes. Float sums accumulate in double, integer sums in int64 (wrapped to the dtype at the end,
which equals wrapping at every step)."""

from __future__ import annotations

from ...ir.dtypes import DType
from ...ir.graph import Node
from ...ir.ops import reduce as rd
from ...ir.shapes import Dim, norm
from .cexpr import compute_type, ctype, kind
from .emit import C, Kernel
from .nd import MapBuilder, strides

INT_MIN = {8: "INT8_MIN", 16: "INT16_MIN", 32: "INT32_MIN", 64: "INT64_MIN"}
INT_MAX = {8: "INT8_MAX", 16: "INT16_MAX", 32: "INT32_MAX", 64: "INT64_MAX"}
UINT_MAX = {8: "UINT8_MAX", 16: "UINT16_MAX", 32: "UINT32_MAX", 64: "UINT64_MAX"}


def _loops(k: Kernel, shape: tuple[Dim, ...], axes: list[int], body: str) -> str:
    """Nested loops over `axes` of a contiguous `shape` (adjacent axes merged) around `body`,
    which reads the element offset `base + roff`."""
    st = strides(shape)
    merged: list[tuple[Dim, Dim]] = []  # (extent, stride)
    for a in axes:
        if merged and merged[-1][1] == norm(st[a] * shape[a]):
            merged[-1] = (norm(merged[-1][0] * shape[a]), st[a])
        else:
            merged.append((shape[a], st[a]))
    head, terms = [], []
    for j, (n, s) in enumerate(merged):
        head.append(f"for (int64_t r{j} = 0; r{j} < {k.dim(n)}; ++r{j})")
        terms.append(f"r{j}" if s == 1 else f"r{j} * {k.dim(s)}")
    return f"{' '.join(head)} {{ const int64_t roff = {' + '.join(terms) or '0'}; {body} }}"


def _identity(name: str, dt: DType) -> str:
    k = kind(dt)
    if name == "reduce_prod":
        return "1"
    if name == "reduce_max":
        return "-INFINITY" if k in "fd" else (INT_MIN[dt.bits] if k == "i" else "0")
    if name == "reduce_min":
        return "INFINITY" if k in "fd" else (INT_MAX[dt.bits] if k == "i" else UINT_MAX[dt.bits])
    return "0"


def _acc_type(name: str, dt: DType) -> str:
    if name in ("reduce_max", "reduce_min"):
        return compute_type(dt)
    if dt.is_float:
        return "double"
    return "int64_t" if dt.is_signed else "uint64_t"


def _step(name: str, dt: DType) -> str:
    """acc = combine(acc, v) for element value v (compute type)."""
    t = compute_type(dt)
    fl = dt.is_float
    if name == "reduce_max":
        return "acc = (acc != acc || acc > v) ? acc : v;" if fl else "acc = acc > v ? acc : v;"
    if name == "reduce_min":
        return "acc = (acc != acc || acc < v) ? acc : v;" if fl else "acc = acc < v ? acc : v;"
    if name == "reduce_prod":
        return "acc *= v;"
    if name == "reduce_l1":
        return "acc += fabs(v);" if fl else f"acc += ({t})(v < 0 ? -v : v);"
    if name in ("reduce_l2", "reduce_sum_square"):
        return "acc += (double)v * v;" if fl else f"acc += ({t})(v * v);"
    return "acc += v;"


def _finish(name: str, dt: DType, count: str) -> str:
    t = compute_type(dt)
    if name == "reduce_mean":
        return f"({t})(({t})acc / ({t})({count}))"
    if name == "reduce_l2":
        return f"({t})sqrt(({t})acc)"
    return f"({t})acc"


@C.emits(
    rd.ReduceSum,
    rd.ReduceMean,
    rd.ReduceMax,
    rd.ReduceMin,
    rd.ReduceProd,
    rd.ReduceL1,
    rd.ReduceL2,
    rd.ReduceSumSquare,
    rd.ReduceLogSumExp,
)
def reduce(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    op, dt = node.op, x.type.dtype
    axes = list(op.reduced_axes(x.type.rank))  # type: ignore[attr-defined]
    kept = [a for a in range(x.type.rank) if a not in axes]
    m = MapBuilder(k, [x.type.shape[a] for a in kept])
    px, py = m.pointer(x), m.pointer(y, const=False)
    xst = strides(x.type.shape)
    base = " + ".join(f"i{j} * {k.dim(xst[a])}" for j, a in enumerate(kept)) or "0"
    m.body.append(f"const int64_t base = {base};")
    t = compute_type(dt)
    load = f"const {t} v = {px}[base + roff];"
    count = k.dim(norm(_prod([x.type.shape[a] for a in axes])))
    if op.name == "reduce_log_sum_exp":
        m.body.append(f"{t} mx = -INFINITY; double acc = 0;")
        m.body.append(_loops(k, x.type.shape, axes, f"{load} mx = (mx != mx || mx > v) ? mx : v;"))
        m.body.append("if (!isfinite(mx)) mx = 0;")
        m.body.append(_loops(k, x.type.shape, axes, f"{load} acc += exp((double)(v - mx));"))
        return m.render(f"{py}[o] = ({t})(log(({t})acc) + mx);")
    acc_t = _acc_type(op.name, dt)
    m.body.append(f"{acc_t} acc = {_identity(op.name, dt)};")
    m.body.append(_loops(k, x.type.shape, axes, f"{load} {_step(op.name, dt)}"))
    if dt.is_float and op.name not in ("reduce_max", "reduce_min"):
        # the reference sums in the dtype: round the double sum to it before dividing
        m.body.append(f"acc = ({t})acc;")
    return m.render(f"{py}[o] = {_finish(op.name, dt, count)};")


def _prod(ds: list[Dim]) -> Dim:
    acc: Dim = 1
    for d in ds:
        acc = norm(acc * d)
    return acc


@C.emits(rd.Argmax, rd.Argmin)
def arg_reduce(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    op, dt = node.op, x.type.dtype
    ax = op.axis % x.type.rank  # type: ignore[attr-defined]
    kept = [a for a in range(x.type.rank) if a != ax]
    m = MapBuilder(k, [x.type.shape[a] for a in kept])
    px, py = m.pointer(x), m.pointer(y, const=False)
    xst = strides(x.type.shape)
    n, s = k.dim(x.type.shape[ax]), k.dim(xst[ax])
    m.pre.append(
        f'if ({n} == 0) return lmc_fail(ex->err, ex->err_len, "{op.name}: empty axis ", {ax});'
    )
    base = " + ".join(f"i{j} * {k.dim(xst[a])}" for j, a in enumerate(kept)) or "0"
    t = compute_type(dt)
    cmp = ">" if op.name == "argmax" else "<"
    last = op.select_last_index  # type: ignore[attr-defined]
    if dt.is_float:
        step = (
            (
                "if (v != v) { best = v; bi = j; } else if (best == best && v "
                f"{cmp}= best) {{ best = v; bi = j; }}"
            )
            if last
            else (f"if (best != best) break; if (v != v || v {cmp} best) {{ best = v; bi = j; }}")
        )
    else:
        step = f"if (v {cmp}{'=' if last else ''} best) {{ best = v; bi = j; }}"
    m.body.append(f"const int64_t base = {base};")
    m.body.append(f"{t} best = {px}[base]; int64_t bi = 0;")
    m.body.append(
        f"for (int64_t j = 1; j < {n}; ++j) {{ const {t} v = {px}[base + j * {s}]; {step} }}"
    )
    return m.render(f"{py}[o] = bi;")


@C.emits(rd.Cumsum)
def cumsum(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    op, dt = node.op, x.type.dtype
    ax = op.axis % x.type.rank  # type: ignore[attr-defined]
    kept = [a for a in range(x.type.rank) if a != ax]
    m = MapBuilder(k, [x.type.shape[a] for a in kept])
    px, py = m.pointer(x), m.pointer(y, const=False)
    xst = strides(x.type.shape)
    n, s = k.dim(x.type.shape[ax]), k.dim(xst[ax])
    base = " + ".join(f"i{j} * {k.dim(xst[a])}" for j, a in enumerate(kept)) or "0"
    acc_t = compute_type(dt) if dt.is_float else ("int64_t" if dt.is_signed else "uint64_t")
    m.body.append(f"const int64_t base = {base};")
    m.body.append(f"{acc_t} acc = 0;")
    idx = f"({n} - 1 - j)" if op.reverse else "j"  # type: ignore[attr-defined]
    at = f"base + {idx} * {s}"
    if op.exclusive:  # type: ignore[attr-defined]
        step = f"{{ const {acc_t} v = {px}[{at}]; {py}[{at}] = ({ctype(dt)})acc; acc += v; }}"
    else:
        step = f"{{ acc += {px}[{at}]; {py}[{at}] = ({ctype(dt)})acc; }}"
    m.body.append(f"for (int64_t j = 0; j < {n}; ++j) {step}")
    return m.render("(void)o;")
