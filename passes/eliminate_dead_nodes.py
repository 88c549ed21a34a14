"""Dead-node elimination: drop pure nodes whose results reach no graph output."""

from __future__ import annotations

from collections.abc import Set

from ..ir.graph import Graph, Node
from ..ir.ops.source import Param
from ..ir.printer import node_line
from .manager import PassContext, Prop, graph_pass, prop_check


def live_nodes(g: Graph) -> set[int]:
    """ids of the nodes an output or an impure node (inputs included) depends on."""
    live: set[int] = set()
    stack: list[Node] = [v.node for v in g.outputs] + [n for n in g.nodes if not n.op.pure]
    while stack:
        n = stack.pop()
        if id(n) in live:
            continue
        live.add(id(n))
        stack.extend(v.node for v in n.inputs)
    return live


def unused_weights(g: Graph) -> set[str]:
    """Keys of the weights store that no `param` node reads."""
    used = {n.op.key for n in g.nodes if isinstance(n.op, Param)}
    return {k for k in g.weights if k not in used}


def drop_unused_weights(g: Graph, keep: Set[str] = frozenset()) -> int:
    """Delete weights-store entries no `param` node reads, except the keys in `keep` (passes
    other than DCE drop only what they made unused); returns how many were dropped."""
    unused = unused_weights(g) - keep
    for k in unused:
        del g.weights[k]
    return len(unused)


@graph_pass(ensures={Prop.TYPED, Prop.NO_DEAD_NODES})
def eliminate_dead_nodes(g: Graph, ctx: PassContext) -> Graph:
    """Remove every pure node (params and constants included) whose results reach no graph
    output, then the weights-store entries that no remaining param reads.

    Safe because a pure node has no effect besides its results: if no output depends on
    them, the interpretation of every output is unchanged. Inputs and impure nodes stay (an
    input is part of the graph's signature even when unused).
    """
    live = live_nodes(g)
    removed = 0
    for n in reversed(list(g.nodes)):  # users before producers, so use-lists empty in turn
        if id(n) not in live:
            g.remove_node(n)
            removed += 1
    ctx.stat("nodes_removed", removed)
    ctx.stat("weights_dropped", drop_unused_weights(g))
    return g


@prop_check(Prop.NO_DEAD_NODES)
def check_no_dead_nodes(g: Graph) -> str | None:
    """A pure node whose results nobody reads, or an unread weights-store entry."""
    for n in g.nodes:
        if n.op.pure and not any(v.uses or g.is_output(v) for v in n.outputs):
            return f"dead node: {node_line(n)}"
    unused = sorted(unused_weights(g))
    if unused:
        return f"weights-store entries no param reads: {unused[:5]}"
    return None
