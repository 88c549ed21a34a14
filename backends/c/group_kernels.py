"""Kernel grouping: fuse elementwise chains into one `fused_elementwise` kernel, and a chain that
consumes a linear / matmul / conv result into that producer's epilogue (`fused_linear`,
`fused_matmul`, `fused_conv`). The decisions are op attributes, so they print in the IR."""

from __future__ import annotations

from ...ir.graph import Graph, Node, Value
from ...ir.op import Op
from ...ir.ops.conv import Conv
from ...ir.ops.fused import (
    MAX_EXPR_NODES,
    Apply,
    Expr,
    FusedConv,
    FusedElementwise,
    FusedLinear,
    FusedMatmul,
    Operand,
    count_nodes,
    format_expr,
    is_elementwise,
)
from ...ir.ops.linalg import Linear, Matmul
from ...ir.shapes import shape_eq
from ...passes.manager import PassContext, graph_pass

PRODUCERS = (Linear, Matmul, Conv)


def _fusable(n: Node) -> bool:
    return len(n.outputs) == 1 and is_elementwise(n.op)


def _tree_size(root: Node, members: dict[int, Node]) -> int:
    """Ops in the expression tree of `root` over `members` (shared members count per use)."""

    def size(n: Node) -> int:
        return 1 + sum(size(v.node) for v in n.inputs if id(v.node) in members)

    return size(root)


def _grow(g: Graph, root: Node, taken: set[int]) -> dict[int, Node]:
    """The members of root's group: producers whose every use is inside the group, which are
    elementwise and have root's shape (so each output element needs each member once)."""
    shape = root.outputs[0].type.shape
    members = {id(root): root}
    changed = True
    while changed:
        changed = False
        for m in list(members.values()):
            for v in m.inputs:
                p = v.node
                if id(p) in members or id(p) in taken or not _fusable(p) or g.is_output(v):
                    continue
                if not shape_eq(v.type.shape, shape):
                    continue
                if not all(id(u) in members for u, _ in v.uses):
                    continue
                members[id(p)] = p
                if _tree_size(root, members) > MAX_EXPR_NODES:
                    del members[id(p)]
                    continue
                changed = True
    return members


def _producer_leaf(g: Graph, root: Node, members: dict[int, Node]) -> Node | None:
    """A linear/matmul/conv whose only readers are group members and whose result has the
    group's type: its epilogue can compute the whole group."""
    out = root.outputs[0].type
    best = None
    for m in members.values():
        for v in m.inputs:
            p = v.node
            if id(p) in members or not isinstance(p.op, PRODUCERS) or type(p.op) not in PRODUCERS:
                continue
            if g.is_output(v) or not all(id(u) in members for u, _ in v.uses):
                continue
            if v.type.dtype != out.dtype or not shape_eq(v.type.shape, out.shape):
                continue
            if best is None or g.position(p) > g.position(best):
                best = p
    return best


def _expression(
    root: Node, members: dict[int, Node], first: Value | None
) -> tuple[Expr, list[Value]]:
    """root's expression over the group; leaves become operands x0.. in first-use order
    (`first`, the producer result of an epilogue, is x0)."""
    leaves: list[Value] = [first] if first is not None else []

    def build(v: Value) -> Expr:
        n = v.node
        if id(n) in members:
            return Apply(n.op, tuple(build(a) for a in n.inputs))
        for i, leaf in enumerate(leaves):
            if leaf is v:
                return Operand(i)
        leaves.append(v)
        return Operand(len(leaves) - 1)

    return build(root.outputs[0]), leaves


def _fused_producer(p: Node, expr: str) -> Op:
    op = p.op
    if isinstance(op, Linear):
        return FusedLinear(bias=len(p.inputs) == 3, epilogue=expr)
    if isinstance(op, Matmul):
        return FusedMatmul(epilogue=expr)
    assert isinstance(op, Conv)
    return FusedConv(op.stride, op.padding, op.dilation, op.groups, len(p.inputs) == 3, expr)


def _replace(g: Graph, root: Node, dead: list[Node], op: Op, operands: list[Value]) -> None:
    new = g.add_node(op, operands, before=root)
    old = root.outputs[0]
    assert new.outputs[0].type.same_as(old.type), (new.outputs[0].type, old.type)
    g.replace_all_uses(old, new.outputs[0])
    for n in sorted(dead, key=g.position, reverse=True):
        g.remove_node(n)


@graph_pass()
def group_kernels(g: Graph, ctx: PassContext) -> Graph:
    """Fuse each maximal chain of elementwise ops of one output shape whose intermediate results
    nobody else reads into one `fused_elementwise` node; when the chain reads the result of a
    linear / matmul / conv that nobody else reads, fuse it into that op's epilogue instead.

    Safe: the fused ops' references apply the component ops' references in the same order, so
    the interpretation is unchanged bit for bit; only values no other node reads disappear.
    Option `epilogues` (default true) turns producer fusion off.
    """
    epilogues = bool(ctx.options.get("epilogues", True))
    taken: set[int] = set()
    plans: list[tuple[Node, dict[int, Node]]] = []
    for root in reversed(list(g.nodes)):
        if id(root) in taken or not _fusable(root):
            continue
        members = _grow(g, root, taken)
        taken.update(members)
        plans.append((root, members))
    for root, members in plans:
        producer = _producer_leaf(g, root, members) if epilogues else None
        if producer is not None:
            expr, leaves = _expression(root, members, producer.outputs[0])
            op = _fused_producer(producer, format_expr(expr))
            _replace(g, root, [*members.values(), producer], op, [*producer.inputs, *leaves[1:]])
            ctx.stat("epilogues")
            ctx.stat("nodes_fused", len(members) + 1)
        elif len(members) > 1:
            expr, leaves = _expression(root, members, None)
            assert count_nodes(expr) <= MAX_EXPR_NODES
            _replace(g, root, list(members.values()), FusedElementwise(format_expr(expr)), leaves)
            ctx.stat("fused_elementwise")
            ctx.stat("nodes_fused", len(members))
    return g
