"""A small rewrite engine: named rule functions, keyed by op class, applied to a fixpoint.

A rule is `def rule_name(g: Graph, node: Node) -> Sequence[Value] | Value | None`. It returns
None when it does not apply (and then must not have changed the graph), else the values that
replace the node's results (new nodes are inserted with `g.add_node(..., before=node)`, or
existing values are reused). The engine moves the uses, deletes the node and any pure
producers that became dead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ..ir.errors import PassError
from ..ir.graph import Graph, Node, Value
from ..ir.op import Op
from ..ir.printer import node_line

Rule = Callable[[Graph, Node], "Sequence[Value] | Value | None"]


class RuleSet:
    """Rules grouped by the op they match: an op class, an op name (for ops another module
    declares, matched by `op.name`), or nothing (rules tried on every node)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.by_op: dict[type[Op] | str | None, list[Rule]] = {}

    def rule(self, *ops: type[Op] | str) -> Callable[[Rule], Rule]:
        def deco(fn: Rule) -> Rule:
            if fn.__name__ == "<lambda>":
                raise PassError(f"rule set {self.name}: rules must be named functions")
            for op in ops or (None,):
                self.by_op.setdefault(op, []).append(fn)
            return fn

        return deco

    def rules_for(self, node: Node) -> list[Rule]:
        cls = type(node.op)
        return self.by_op.get(cls, []) + self.by_op.get(cls.name, []) + self.by_op.get(None, [])

    def names(self) -> list[str]:
        """Every rule's name, once, in registration order."""
        seen: dict[str, None] = {}
        for rules in self.by_op.values():
            for r in rules:
                seen.setdefault(r.__name__, None)
        return list(seen)


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
                if _apply_one(g, node, rule, removed):
                    counts[rule.__name__] = counts.get(rule.__name__, 0) + 1
                    changed = True
                    break
        if not changed:
            return counts
    raise PassError(f"rule set {rules.name} did not converge in {max_rounds} rounds: {counts}")


def _apply_one(g: Graph, node: Node, rule: Rule, removed: set[int]) -> bool:
    size = len(g.nodes)
    result = rule(g, node)
    if result is None:
        if len(g.nodes) != size:
            raise PassError(
                f"rule {rule.__name__} changed the graph but returned None at {node_line(node)}"
            )
        return False
    new = [result] if isinstance(result, Value) else list(result)
    if len(new) != len(node.outputs):
        raise PassError(
            f"rule {rule.__name__} returned {len(new)} values for "
            f"{node.op.name} with {len(node.outputs)} results"
        )
    for old, nv in zip(node.outputs, new):
        if nv is old or nv.node is node:
            raise PassError(
                f"rule {rule.__name__} returned the node's own result at {node_line(node)}"
            )
        if nv.type.dtype != old.type.dtype or not nv.type.same_as(old.type):
            raise PassError(
                f"rule {rule.__name__} changed a type: {old.type} -> {nv.type} at {node_line(node)}"
            )
    for old, nv in zip(node.outputs, new):
        g.replace_all_uses(old, nv)
    remove_dead(g, [node], removed, force=True)
    return True


def remove_dead(
    g: Graph, nodes: Iterable[Node], removed: set[int] | None = None, force: bool = False
) -> int:
    """Delete the given nodes if nobody reads their results, then (transitively) their pure
    producers that became unread. `force`: the given nodes go even when impure (a rule
    replaced them). Records deleted nodes' ids in `removed`; returns how many were deleted."""
    removed = set() if removed is None else removed
    start = {id(n) for n in nodes} if force else set()
    stack = list(nodes)
    count = 0
    while stack:
        n = stack.pop()
        if id(n) in removed or any(v.uses or g.is_output(v) for v in n.outputs):
            continue
        if id(n) not in start and not n.op.pure:
            continue
        producers = [v.node for v in n.inputs]
        g.remove_node(n)
        removed.add(id(n))
        count += 1
        stack.extend(producers)
    return count
