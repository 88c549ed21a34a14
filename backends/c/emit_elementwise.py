"""C emitters of elementwise ops and fused elementwise chains: one map kernel whose per-element
statements come from `cexpr.C_EXPR` (operands broadcast by strides, axes collapsed)."""

from __future__ import annotations

from ...ir.graph import Node, Value
from ...ir.ops.elementwise import Identity
from ...ir.ops.fused import Apply, Expr, FusedElementwise, Operand, elementwise_ops, parse_expr
from .cexpr import expr_statements, has_expr, load, store
from .emit import C, Kernel
from .nd import MapBuilder, collapse


def map_expression(k: Kernel, out: Value, e: Expr, operands: list[Value], prefix: str = "t") -> str:
    """A map kernel writing out[o] = e(operands at o), with numpy broadcasting."""
    dims, per_op = collapse(out.type.shape, [v.type.shape for v in operands])
    m = MapBuilder(k, dims)
    leaves = []
    for v, st in zip(operands, per_op):
        p = m.pointer(v)
        leaves.append(load(v.type.dtype, f"{p}[{m.offset(st)}]"))
    stmts, final, _ = expr_statements(e, leaves, [v.type.dtype for v in operands], prefix)
    m.body.extend(stmts)
    y = m.pointer(out, const=False)
    return m.render(f"{y}[o] = {store(out.type.dtype, final)};")


def expression_reason(e: Expr, dtypes: list) -> str | None:
    """Why `e` has no C expression for these operand dtypes (None: it has one)."""
    from ...ir.types import TensorType

    def visit(x: Expr):
        if isinstance(x, Operand):
            return dtypes[x.index]
        assert isinstance(x, Apply)
        ins = [visit(a) for a in x.args]
        if not has_expr(x.op, ins):
            raise KeyError(f"{x.op.name} has no C expression for {', '.join(map(str, ins))}")
        return x.op.infer(*(TensorType(d, ()) for d in ins)).dtype  # type: ignore[union-attr]

    try:
        visit(e)
    except KeyError as err:
        return str(err.args[0])
    return None


def _single(node: Node) -> Expr:
    return Apply(node.op, tuple(Operand(i) for i in range(len(node.inputs))))


def _check_single(node: Node) -> str | None:
    return expression_reason(_single(node), [v.type.dtype for v in node.inputs])


def _check_fused(node: Node) -> str | None:
    return expression_reason(parse_expr(node.op.expr), [v.type.dtype for v in node.inputs])  # type: ignore[attr-defined]


ELEMENTWISE = tuple(cls for name, cls in sorted(elementwise_ops().items()) if cls is not Identity)


@C.emits(*ELEMENTWISE, check=_check_single)
def elementwise(k: Kernel, node: Node) -> str:
    return map_expression(k, node.outputs[0], _single(node), list(node.inputs))


@C.emits(FusedElementwise, check=_check_fused)
def fused_elementwise(k: Kernel, node: Node) -> str:
    e = parse_expr(node.op.expr)  # type: ignore[attr-defined]
    return map_expression(k, node.outputs[0], e, list(node.inputs))
