"""C emitter of matmul_integer: the int8 GEMM of the kernel library (lmc_gemm_s8; a right operand
that is a param is pre-packed at compile time, any other is packed into a workspace at run
time), or plain loops when the kernel library is off. Sums wrap modulo 2^32 like the
reference's int32 matmul."""

from __future__ import annotations

from ...ir.dtypes import DType
from ...ir.graph import Graph, Node
from ...ir.ops.quant import MatmulInteger
from ...ir.ops.source import Param
from ...ir.shapes import Dim, norm, numel
from .emit import C, Kernel
from .emit_nn import uses_kernels
from .nd import MapBuilder

PACKED_S8 = "#gemm_s8"  # blob key suffix of a param packed for lmc_gemm_s8


def s8_packed_params(g: Graph, kernels: bool = True) -> set[str]:
    """Keys of the params that some matmul_integer reads pre-packed (its right operand)."""
    if not kernels:
        return set()
    return {
        n.inputs[1].node.op.key  # type: ignore[attr-defined]
        for n in g.nodes
        if isinstance(n.op, MatmulInteger) and isinstance(n.inputs[1].node.op, Param)
    }


def _workspace(node: Node) -> Dim | None:
    """Room for the run-time packed right operand (>= lmc_gemm_s8_packed_bytes(N, K))."""
    b = node.inputs[1]
    if isinstance(b.node.op, Param):
        return None
    kk, n = b.type.shape
    return norm((n + 15) * (kk + 3) + (n + 16) * 4)


def _flag(dt: DType) -> int:
    return 1 if dt == DType.u8 else 0


@C.emits(MatmulInteger, workspace=_workspace)
def matmul_integer(k: Kernel, node: Node) -> str:
    a, b, za, zb = node.inputs
    y = node.outputs[0]
    rows = k.numel(list(a.type.shape[:-1]))
    kk, n = k.dim(b.type.shape[0]), k.dim(b.type.shape[1])
    if not uses_kernels(k):
        return _native(k, node)
    key = b.node.op.key if isinstance(b.node.op, Param) else None  # type: ignore[attr-defined]
    stmts = []
    if key is not None and key + PACKED_S8 in k.mod.weights:
        packed = f"(const uint8_t *)(ex->weights + {k.weight(key + PACKED_S8).offset})"
    else:
        packed = f"(uint8_t *)({k.workspace()})"
        stmts.append(
            f"lmc_gemm_s8_pack({n}, {kk}, {k.ptr(b)}, {_flag(b.type.dtype)}, {n}, 1, {packed});"
        )
    fields = {
        "M": rows,
        "N": n,
        "K": kk,
        "a": k.ptr(a),
        "lda": kk,
        "a_u8": _flag(a.type.dtype),
        "a_zp": k.ptr(za),
        "a_zp_period": k.numel(za),
        "b_packed": packed,
        "b_u8": _flag(b.type.dtype),
        "b_zp": k.ptr(zb),
        "b_zp_period": k.numel(zb),
        "c": k.ptr(y, const=False),
        "ldc": n,
    }
    init = ", ".join(f".{f} = {v}" for f, v in fields.items())
    stmts.append("lmc_gemm_s8(ex->pool, &args);")
    return k.render("ops/values.c.j2", decls=[f"lmc_gemm_s8_args args = {{{init}}};"], stmts=stmts)


def _native(k: Kernel, node: Node) -> str:
    """One output element per iteration: a 64-bit sum of the centered products, wrapped."""
    a, b, za, zb = node.inputs
    y = node.outputs[0]
    m_dim, kd, nd = a.type.shape[-2], a.type.shape[-1], b.type.shape[1]
    mb = MapBuilder(k, [norm(numel(list(a.type.shape[:-1]))), nd], grain=256)
    pa, pb, pza, pzb = (mb.pointer(v) for v in (a, b, za, zb))
    py = mb.pointer(y, const=False)
    za_at = "0" if k.numel(za) == "1" else f"i0 % {k.dim(m_dim)}"
    zb_at = "0" if k.numel(zb) == "1" else "i1"
    kk, n = k.dim(kd), k.dim(nd)
    mb.body.append(f"const int64_t za = {pza}[{za_at}], zb = {pzb}[{zb_at}];")
    mb.body.append("uint64_t acc = 0;")
    mb.body.append(
        f"for (int64_t q = 0; q < {kk}; ++q) acc += (uint64_t)((int64_t){pa}[i0 * {kk} + q] - za)"
        f" * (uint64_t)((int64_t){pb}[q * {n} + i1] - zb);"
    )
    return mb.render(f"{py}[o] = (int32_t)(uint32_t)acc;")
