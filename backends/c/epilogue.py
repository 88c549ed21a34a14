"""Epilogues of fused linear / matmul / conv kernels: a callback the kernel library calls on each
finished f32 output tile (templates/c/ops/epilogue.c.j2), or -- on the native path -- a map over
the finished output applying the same expression in place."""

from __future__ import annotations

from ...ir.graph import Value
from ...ir.ops.fused import Operand, parse_expr, substitute
from ...ir.shapes import Dim, norm
from .cexpr import expr_statements, load
from .nd import broadcast_strides, strides


def _decompose(k, var: str, shape: list[Dim], st: list[Dim], out: str) -> list[str]:
    """Statements adding sum_a idx_a(var) * st[a] to `out`, idx over a contiguous `shape`."""
    if not any(s != 0 for s in st):
        return []
    if [norm(s) for s in st] == [norm(s * st[-1]) for s in strides(shape)] and st[-1] != 0:
        return [f"{out} += {var} * {k.dim(st[-1])};"]
    stmts = [f"{{ int64_t rem = {var};"]
    for a in range(len(shape) - 1, -1, -1):
        stmts.append(
            f"{out} += (rem % {k.dim(shape[a])}) * {k.dim(st[a])}; rem /= {k.dim(shape[a])};"
        )
    stmts.append("}")
    return [" ".join(stmts)]


def epilogue_callback(
    k, epilogue: str, out: Value, extras: list[Value], row_shape: list[Dim], col_shape: list[Dim]
) -> str:
    """The C callback (named <kernel>_epi, ctx = lmc_epi_ctx *) applying `epilogue` to tiles of
    the output viewed as a [prod(row_shape), prod(col_shape)] matrix; ctx->row_base is added to
    tile rows (batched matmul)."""
    decls, row, body = [], [], []
    leaves = ["c[r * ldc + j]"]
    for i, v in enumerate(extras):
        p = f"e{i}"
        decls.append(f"const {_ctype(v)} *const {p} = {k.ptr(v)};")
        st = broadcast_strides(v.type.shape, out.type.shape)
        nr = len(row_shape)
        row.append(f"int64_t ro{i} = 0;")
        row += _decompose(k, "gr", row_shape, st[:nr], f"ro{i}")
        col = _decompose(k, "gc", col_shape, st[nr:], f"co{i}")
        if col:
            body.append(f"int64_t co{i} = 0; {' '.join(col)}")
            leaves.append(load(v.type.dtype, f"{p}[ro{i} + co{i}]"))
        else:
            leaves.append(load(v.type.dtype, f"{p}[ro{i}]"))
    e = parse_expr(epilogue)
    stmts, final, _ = expr_statements(e, leaves, [out.type.dtype] + [v.type.dtype for v in extras])
    return k.render(
        "ops/epilogue.c.j2",
        decls=decls,
        row=row,
        body=body + stmts,
        store=f"c[r * ldc + j] = {final};",
    )


def epilogue_in_place(k, epilogue: str, out: Value, extras: list[Value]) -> str:
    """A map kernel applying `epilogue` to the finished output (native path)."""
    from .emit_elementwise import map_expression

    e = substitute(parse_expr(epilogue), {0: Operand(0)})
    return map_expression(k, out, e, [out, *extras], prefix="u")


def _ctype(v: Value) -> str:
    from .cexpr import ctype

    return ctype(v.type.dtype)
