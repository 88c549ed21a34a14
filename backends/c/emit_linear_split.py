"""C emitter of linear_split (sibling linears merged by merge_sibling_linears): f32 with the
kernel library runs one lmc_gemm_f32_packed_multi call over the pieces of the pre-packed
concatenated weight, each piece writing its own contiguous result (no split copy); otherwise
one GEMM or plain loop per piece over the piece's rows of the weight."""

from __future__ import annotations

from ...ir.graph import Node
from ...ir.ops.lowered import LinearSplit
from ...ir.ops.source import Param
from ...ir.shapes import norm, numel
from .cexpr import compute_type
from .emit import C, Kernel
from .emit_nn import F32_KERNEL, uses_kernels
from .nd import MapBuilder
from .packing import PANEL


def offsets(op: LinearSplit) -> list[int]:
    """First weight row of each piece."""
    out, acc = [], 0
    for s in op.sizes:
        out.append(acc)
        acc += s
    return out


def split_packable(node: Node) -> bool:
    """Whether the pieces start on packed-panel boundaries, so that each piece's rows of the
    concatenated weight are a contiguous run of the one packed blob."""
    return isinstance(node.op, LinearSplit) and all(o % PANEL == 0 for o in offsets(node.op))


@C.emits(LinearSplit)
def linear_split(k: Kernel, node: Node) -> str:
    op: LinearSplit = node.op  # type: ignore[assignment]
    x, w = node.inputs[:2]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    rows = k.numel(list(x.type.shape[:-1]))
    kk = k.dim(w.type.shape[1])
    if x.type.dtype in F32_KERNEL and uses_kernels(k):
        from .emit_linalg import PACKED

        key = w.node.op.key if isinstance(w.node.op, Param) else None  # type: ignore[attr-defined]
        blob = key + PACKED["linear"] if key is not None else None
        if blob in k.mod.weights and split_packable(node):
            base = f"(const float *)(ex->weights + {k.weight(blob).offset})"
            decls = [f"lmc_gemm_piece pieces[{len(op.sizes)}];"]
            stmts = []
            for i, (o, y) in enumerate(zip(offsets(op), node.outputs)):
                bias = f"{k.ptr(b)} + {o}" if b is not None else "NULL"
                stmts.append(
                    f"pieces[{i}].N = {op.sizes[i]}; pieces[{i}].packed = {base} + "
                    f"(int64_t){o} * {kk}; pieces[{i}].C = {k.ptr(y, const=False)}; "
                    f"pieces[{i}].ldc = {op.sizes[i]}; pieces[{i}].bias = {bias};"
                )
            stmts.append(
                f"lmc_gemm_f32_packed_multi(ex->pool, {rows}, {kk}, {k.ptr(x)}, {kk}, "
                f"{len(op.sizes)}, pieces);"
            )
            return k.render("ops/values.c.j2", decls=decls, stmts=stmts)
        stmts = []
        for o, n, y in zip(offsets(op), op.sizes, node.outputs):
            bias = f"{k.ptr(b)} + {o}" if b is not None else "NULL"
            stmts.append(
                f"lmc_gemm_f32(ex->pool, {rows}, {n}, {kk}, {k.ptr(x)}, {kk}, {k.ptr(w)} + "
                f"(int64_t){o} * {kk}, 1, {kk}, {k.ptr(y, const=False)}, {n}, {bias}, NULL, NULL);"
            )
        return k.render("ops/values.c.j2", decls=[], stmts=stmts)
    return "\n".join(_native_piece(k, node, i) for i in range(len(op.sizes)))


def _native_piece(k: Kernel, node: Node, i: int) -> str:
    """Plain loops for piece i (sums in double / 64-bit ints, like emit_linalg.linear)."""
    op: LinearSplit = node.op  # type: ignore[assignment]
    x, w = node.inputs[:2]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    y = node.outputs[i]
    o = offsets(op)[i]
    dt = y.type.dtype
    acc = "double" if dt.is_float else ("int64_t" if dt.is_signed else "uint64_t")
    piece = Kernel(k.mod, node, f"{k.name}_{i}", k.comment)
    m = MapBuilder(piece, [norm(numel(list(x.type.shape[:-1]))), op.sizes[i]], grain=256)
    px, pw, py = m.pointer(x), m.pointer(w), m.pointer(y, const=False)
    kk = k.dim(w.type.shape[1])
    init = f"({acc}){m.pointer(b)}[{o} + i1]" if b is not None else "0"
    m.body.append(f"{acc} acc = {init};")
    m.body.append(
        f"for (int64_t q = 0; q < {kk}; ++q) acc += ({acc}){px}[i0 * {kk} + q] * "
        f"{pw}[({o} + i1) * {kk} + q];"
    )
    code = m.render(f"{py}[o] = ({compute_type(dt)})acc;")
    if i + 1 < len(op.sizes):
        return code
    calls = " ".join(f"{k.name}_{j}(ex);" for j in range(len(op.sizes)))
    tail = f"\nstatic int {k.name}(const lmc_exec *ex) {{ {calls} return 0; }}"
    return code + tail
