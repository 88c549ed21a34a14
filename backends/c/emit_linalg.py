"""C emitters of linear, matmul (and their fused-epilogue forms), einsum and attention. f32
linear / matmul call the packed or strided GEMM of the kernel library (weights that are params
are pre-packed at compile time), f32 attention calls lmc_attention_f32; other dtypes get plain
loops (float sums in double, integer sums in int64 wrapped at the end)."""

from __future__ import annotations

import dataclasses

from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...ir.ops.fused import FusedLinear, FusedMatmul
from ...ir.ops.linalg import Einsum, Linear, Matmul, parse_einsum
from ...ir.ops.nn import Attention
from ...ir.ops.source import Param
from ...ir.shapes import Dim, broadcast_shapes, norm, numel
from .cexpr import compute_type
from .emit import C, Kernel
from .emit_linear_split import split_packable
from .emit_nn import F32_KERNEL, uses_kernels
from .epilogue import epilogue_callback, epilogue_in_place
from .nd import MapBuilder, broadcast_strides, strides

# Blob key suffix of a param pre-packed for the GEMM: as a linear weight W [N, K], or as a
# matmul right operand B [K, N] (packed transposed).
PACKED = {"linear": "#gemm", "matmul": "#gemm_t"}


def _acc(dt: DType) -> str:
    if dt.is_float:
        return "double"
    return "int64_t" if dt.is_signed else "uint64_t"


def packed_gemm_params(g: Graph, kernels: bool = True) -> set[tuple[str, str]]:
    """(param key, kind) of every GEMM weight read pre-packed: kind "linear" (w is [N, K]) or
    "matmul" (b is [K, N], packed transposed)."""
    out: set[tuple[str, str]] = set()
    if not kernels:
        return out
    for n in g.nodes:
        if isinstance(n.op, (Linear, FusedLinear)) or split_packable(n):
            w = n.inputs[1]
            if w.type.dtype in F32_KERNEL and isinstance(w.node.op, Param):
                out.add((w.node.op.key, "linear"))
        elif isinstance(n.op, (Matmul, FusedMatmul)) and _matmul_packable(n):
            out.add((n.inputs[1].node.op.key, "matmul"))  # type: ignore[attr-defined]
    return out


def _matmul_packable(n: Node) -> bool:
    a, b = n.inputs[:2]
    return (
        a.type.dtype in F32_KERNEL
        and b.type.rank == 2
        and isinstance(b.node.op, Param)
        and _flat_rows(n)
    )


def _flat_rows(n: Node) -> bool:
    """a's batch dims are the output's: all of a is one [B*M, K] matrix."""
    a, b = n.inputs[:2]
    out = n.outputs[0]
    if b.type.rank > 2 or a.type.rank < 2:
        return b.type.rank <= 2
    return list(a.type.shape[:-2]) == list(out.type.shape[: a.type.rank - 2])


def _epi(
    k: Kernel, node: Node, extras: list[Value], row_shape: list[Dim], col_shape: list[Dim]
) -> tuple[str, str]:
    """(callback code, callback name) for a fused op, or ("", "NULL")."""
    ep = getattr(node.op, "epilogue", "x0")
    if ep == "x0":
        return "", "NULL"
    code = epilogue_callback(k, ep, node.outputs[0], extras, row_shape, col_shape)
    return code, f"{k.name}_epi"


@C.emits(Linear, FusedLinear)
def linear(k: Kernel, node: Node) -> str:
    x, w = node.inputs[:2]
    has_b = len(node.inputs) > 2 if isinstance(node.op, Linear) else node.op.bias
    b = node.inputs[2] if has_b else None
    extras = list(node.inputs[3 if has_b else 2 :]) if isinstance(node.op, FusedLinear) else []
    y = node.outputs[0]
    rows = k.numel(list(x.type.shape[:-1]))
    n, kk = k.dim(w.type.shape[0]), k.dim(w.type.shape[1])
    bias = k.ptr(b) if b is not None else "NULL"
    if x.type.dtype in F32_KERNEL and uses_kernels(k):
        epi_code, epi = _epi(k, node, extras, list(y.type.shape[:-1]), [y.type.shape[-1]])
        key = w.node.op.key if isinstance(w.node.op, Param) else None  # type: ignore[attr-defined]
        if key is not None and key + PACKED["linear"] in k.mod.weights:
            packed = f"(const float *)(ex->weights + {k.weight(key + PACKED['linear']).offset})"
            call = (
                f"lmc_gemm_f32_packed(ex->pool, {rows}, {n}, {kk}, {k.ptr(x)}, {kk}, {packed}, "
                f"{k.ptr(y, const=False)}, {n}, {bias}, {epi}, &ectx);"
            )
        else:
            call = (
                f"lmc_gemm_f32(ex->pool, {rows}, {n}, {kk}, {k.ptr(x)}, {kk}, {k.ptr(w)}, 1, "
                f"{kk}, {k.ptr(y, const=False)}, {n}, {bias}, {epi}, &ectx);"
            )
        body = k.render("ops/values.c.j2", decls=["lmc_epi_ctx ectx = {ex, 0};"], stmts=[call])
        return epi_code + "\n" + body if epi_code else body
    t, acc = compute_type(y.type.dtype), _acc(y.type.dtype)
    m = MapBuilder(
        _main(k, node), [norm(numel(list(x.type.shape[:-1]))), w.type.shape[0]], grain=256
    )
    px, pw, py = m.pointer(x), m.pointer(w), m.pointer(y, const=False)
    init = f"({acc}){m.pointer(b)}[i1]" if b is not None else "0"
    m.body.append(f"{acc} acc = {init};")
    m.body.append(
        f"for (int64_t q = 0; q < {kk}; ++q) acc += ({acc}){px}[i0 * {kk} + q] * "
        f"{pw}[i1 * {kk} + q];"
    )
    return _native_with_epilogue(k, node, m.render(f"{py}[o] = ({t})acc;"), extras)


def _main(k: Kernel, node: Node) -> Kernel:
    """The kernel to render the main loop into: k itself, or k_main when an epilogue follows."""
    if getattr(node.op, "epilogue", "x0") == "x0":
        return k
    return dataclasses.replace(k, name=k.name + "_main")


def _native_with_epilogue(k: Kernel, node: Node, main: str, extras: list[Value]) -> str:
    """The native loop, then (for fused ops) the epilogue applied in place."""
    ep = getattr(node.op, "epilogue", "x0")
    if ep == "x0":
        return main
    post = dataclasses.replace(k, name=k.name + "_epi")
    code = epilogue_in_place(post, ep, node.outputs[0], extras)
    return k.render("ops/seq.c.j2", parts=[main, code], calls=[k.name + "_main", post.name])


def _matmul_shapes(a: Value, b: Value) -> tuple[tuple, tuple, tuple]:
    a2 = a.type.shape if a.type.rank > 1 else (1, a.type.shape[0])
    b2 = b.type.shape if b.type.rank > 1 else (b.type.shape[0], 1)
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    return a2, b2, tuple(batch)  # type: ignore[arg-type]


@C.emits(Matmul, FusedMatmul)
def matmul(k: Kernel, node: Node) -> str:
    a, b = node.inputs[:2]
    extras = list(node.inputs[2:])
    y = node.outputs[0]
    a2, b2, batch = _matmul_shapes(a, b)
    M, K, N = a2[-2], a2[-1], b2[-1]
    out2 = batch + (M, N)
    if a.type.dtype in F32_KERNEL and uses_kernels(k):
        return _matmul_kernel(k, node, a2, b2, batch, extras)
    t, acc = compute_type(y.type.dtype), _acc(y.type.dtype)
    m = MapBuilder(_main(k, node), list(out2), grain=256)
    pa, pb, py = m.pointer(a), m.pointer(b), m.pointer(y, const=False)
    ast = [norm(s * M * K) for s in broadcast_strides(a2[:-2], batch)] + [K, 0]
    bst = [norm(s * K * N) for s in broadcast_strides(b2[:-2], batch)] + [0, 1]
    ao, bo = m.offset(ast), m.offset(bst)
    m.body.append(f"const int64_t ao = {ao}, bo = {bo};")
    m.body.append(f"{acc} acc = 0;")
    m.body.append(
        f"for (int64_t q = 0; q < {k.dim(K)}; ++q) acc += ({acc}){pa}[ao + q] * "
        f"{pb}[bo + q * {k.dim(N)}];"
    )
    return _native_with_epilogue(k, node, m.render(f"{py}[o] = ({t})acc;"), extras)


def _matmul_kernel(
    k: Kernel, node: Node, a2: tuple, b2: tuple, batch: tuple, extras: list[Value]
) -> str:
    a, b = node.inputs[:2]
    y = node.outputs[0]
    M, K, N = a2[-2], a2[-1], b2[-1]
    dm, dk, dn = k.dim(M), k.dim(K), k.dim(N)
    out2 = list(batch) + [M, N]
    epi_code, epi = _epi(k, node, extras, out2[:-1], [N])
    pa, py = k.ptr(a), k.ptr(y, const=False)
    decls = ["lmc_epi_ctx ectx = {ex, 0};"]
    if _flat_rows(node):
        rows = k.numel(out2[:-1])
        key = b.node.op.key if isinstance(b.node.op, Param) else None  # type: ignore[attr-defined]
        if key is not None and key + PACKED["matmul"] in k.mod.weights and b.type.rank == 2:
            packed = f"(const float *)(ex->weights + {k.weight(key + PACKED['matmul']).offset})"
            stmts = [
                f"lmc_gemm_f32_packed(ex->pool, {rows}, {dn}, {dk}, {pa}, {dk}, {packed}, {py}, "
                f"{dn}, NULL, {epi}, &ectx);"
            ]
        else:
            stmts = [
                f"lmc_gemm_f32(ex->pool, {rows}, {dn}, {dk}, {pa}, {dk}, {k.ptr(b)}, {dn}, 1, "
                f"{py}, "
                f"{dn}, NULL, {epi}, &ectx);"
            ]
    else:
        pb = k.ptr(b)
        ast = broadcast_strides(a2[:-2], batch)
        bst = broadcast_strides(b2[:-2], batch)
        loop = ["int64_t rem = bi, ao = 0, bo = 0;"]
        for ax in range(len(batch) - 1, -1, -1):
            d = k.dim(batch[ax])
            loop.append(
                f"{{ const int64_t ia = rem % {d}; rem /= {d}; ao += ia * {k.dim(ast[ax])}; "
                f"bo += ia * {k.dim(bst[ax])}; }}"
            )
        loop.append(f"ectx.row_base = bi * {dm};")
        loop.append(
            f"lmc_gemm_f32(ex->pool, {dm}, {dn}, {dk}, {pa} + ao * {dm} * {dk}, {dk}, "
            f"{pb} + bo * {dk} * {dn}, {dn}, 1, {py} + bi * {dm} * {dn}, {dn}, NULL, {epi}, "
            f"&ectx);"
        )
        stmts = [f"for (int64_t bi = 0; bi < {k.numel(list(batch))}; ++bi) {{ {' '.join(loop)} }}"]
    body = k.render("ops/values.c.j2", decls=decls, stmts=stmts)
    return epi_code + "\n" + body if epi_code else body


@C.emits(Einsum)
def einsum(k: Kernel, node: Node) -> str:
    """Plain loops: the output labels index the map, summed labels nest inside."""
    y = node.outputs[0]
    terms, out = parse_einsum(node.op.equation, len(node.inputs))  # type: ignore[attr-defined]
    n_ell = max(
        (v.type.rank - (len(t) - 1) for t, v in zip(terms, node.inputs) if "..." in t), default=0
    )
    ell = [f"E{j}" for j in range(n_ell)]
    size: dict[str, Dim] = {}
    labels = []
    for t, v in zip(terms, node.inputs):
        lab: list[str] = []
        for x in t:
            lab += ell[n_ell - (v.type.rank - (len(t) - 1)) :] if x == "..." else [x]
        labels.append(lab)
        for x, d in zip(lab, v.type.shape):
            if x not in size or size[x] == 1:
                size[x] = d
    out_l = [z for x in out for z in (ell if x == "..." else [x])]
    summed = sorted({x for lab in labels for x in lab} - set(out_l))
    m = MapBuilder(k, [size[x] for x in out_l], grain=256)
    ptrs = [m.pointer(v) for v in node.inputs]
    py = m.pointer(y, const=False)
    var = {x: f"i{j}" for j, x in enumerate(out_l)}
    var.update({x: f"r_{x}" for x in summed})
    dt = y.type.dtype
    acc = _acc(dt)
    factors = []
    for p, lab, v in zip(ptrs, labels, node.inputs):
        st = strides(v.type.shape)
        terms_c = [f"{var[x]} * {k.dim(s)}" for x, d, s in zip(lab, v.type.shape, st) if d != 1]
        factors.append(f"({acc}){p}[{' + '.join(terms_c) or '0'}]")
    loops = " ".join(f"for (int64_t r_{x} = 0; r_{x} < {k.dim(size[x])}; ++r_{x})" for x in summed)
    m.body.append(f"{acc} acc = 0;")
    m.body.append(f"{loops} acc += {' * '.join(factors)};")
    return m.render(f"{py}[o] = ({compute_type(dt)})acc;")


@C.emits(Attention)
def attention(k: Kernel, node: Node) -> str:
    q, kk, v = node.inputs[:3]
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    y = node.outputs[0]
    from .emit_attention import attention_kernel, attention_native

    if q.type.dtype in F32_KERNEL and uses_kernels(k):
        return attention_kernel(k, node, q, kk, v, mask, y)
    return attention_native(k, node, q, kk, v, mask, y)
