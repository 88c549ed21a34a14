"""A small rewrite engine: named rule functions, keyed by op class, applied to a fixpoint.

A rule is `def rule_name(g: Graph, node: Node) -> Sequence[Value] | Value | None`. It returns
None when it does not apply, else the values that replace the node's results (new nodes are
inserted with `g.add_node(..., before=node)`, or existing values are reused). The engine moves
the uses, deletes the node and any pure producers that became dead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..ir.errors import PassError
from ..ir.graph import Graph, Node, Value
from ..ir.op import Op

Rule = Callable[[Graph, Node], "Sequence[Value] | Value | None"]


class RuleSet:
    """Rules grouped by the op class they match (`None` key: rules tried on every node)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.by_op: dict[type[Op] | None, list[Rule]] = {}

    def rule(self, *ops: type[Op]) -> Callable[[Rule], Rule]:
        def deco(fn: Rule) -> Rule:
            for op in ops or (None,):
                self.by_op.setdefault(op, []).append(fn)
            return fn

        return deco

    def rules_for(self, node: Node) -> list[Rule]:
        return self.by_op.get(type(node.op), []) + self.by_op.get(None, [])


def apply_rules(g: Graph, rules: RuleSet, max_rounds: int = 100) -> dict[str, int]:
    """Apply rules until no rule fires; returns how often each rule fired."""
    counts: dict[str, int] = {}
    for _ in range(max_rounds):
        changed = False
        removed: set[int] = set()
        for node in list(g.nodes):
            if id(node) in removed:
                continue
            for rule in rules.rules_for(node):
                result = rule(g, node)
                if result is None:
                    continue
                new = [result] if isinstance(result, Value) else list(result)
                if len(new) != len(node.outputs):
                    raise PassError(f"rule {rule.__name__} returned {len(new)} values for "
                                    f"{node.op.name} with {len(node.outputs)} results")
                for old, nv in zip(node.outputs, new):
                    if nv.type.dtype != old.type.dtype or not nv.type.same_as(old.type):
                        raise PassError(f"rule {rule.__name__} changed a type: {old.type} -> "
                                        f"{nv.type} at {node.op.name}")
                    g.replace_all_uses(old, nv)
                _remove_dead(g, node, removed)
                counts[rule.__name__] = counts.get(rule.__name__, 0) + 1
                changed = True
                break
        if not changed:
            return counts
    raise PassError(f"rule set {rules.name} did not converge in {max_rounds} rounds: {counts}")


def _remove_dead(g: Graph, node: Node, removed: set[int]) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if id(n) in removed or any(v.uses or g.is_output(v) for v in n.outputs):
            continue
        if n is not node and not n.op.pure:
            continue
        producers = [v.node for v in n.inputs]
        g.remove_node(n)
        removed.add(id(n))
        stack.extend(producers)
