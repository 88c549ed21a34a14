"""Common-subexpression elimination: one in-order walk with a hash map of node keys."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

from ..ir.graph import Graph, Node
from ..ir.ops.source import Constant
from ..ir.printer import node_line
from .manager import PassContext, Prop, graph_pass, prop_check


def attr_key(v: Any) -> Hashable:
    """A hashable key that is equal exactly when two attribute values are the same value.

    Plain `==` is not enough: NaN != NaN (and hash(nan) depends on the object), 0.0 == -0.0,
    and True == 1 == 1.0 although they print (and may behave) differently.
    """
    if isinstance(v, tuple):
        return ("tuple", tuple(attr_key(x) for x in v))
    if isinstance(v, float):
        return ("float", "nan" if math.isnan(v) else v.hex())
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    return (type(v).__name__, v)


def constant_key(n: Node) -> Hashable:
    """Constants are equal when their type and materialized values are (bitwise for numbers:
    1 and 1.0 in an f32 constant are the same value; 0.0 and -0.0 are not)."""
    t = n.outputs[0].type
    vals = n.op.value
    if all(isinstance(v, (int, float, bool)) for v in vals):
        data: Hashable = n.op.materialize(t, {}).tobytes()
    else:
        data = attr_key(vals)  # symbolic dims: structural equality of the expressions
    return ("constant", t.dtype, tuple(attr_key(d) for d in t.shape), data)


def node_key(n: Node) -> Hashable | None:
    """The CSE key of a node, or None when it must never be merged (impure ops)."""
    if not n.op.pure:
        return None
    if isinstance(n.op, Constant):
        return constant_key(n)
    operands = [id(v) for v in n.inputs]
    if n.op.commutative:
        operands.sort()  # a multiset: a + b and b + a are one expression
    types: tuple = ()
    if n.op.declares_type:  # params: the same key read as the same type
        types = tuple((v.type.dtype, tuple(attr_key(d) for d in v.type.shape)) for v in n.outputs)
    return (type(n.op), attr_key(tuple(n.op.attrs().values())), tuple(operands), types)


@graph_pass(ensures={Prop.TYPED, Prop.NO_COMMON_SUBEXPRESSIONS})
def eliminate_common_subexpressions(g: Graph, ctx: PassContext) -> Graph:
    """Merge each pure node into an earlier one with the same op (attributes compared
    NaN-safely), the same operands (as a multiset for commutative ops) and so the same types:
    params reading the same key merge, constants of equal type and values merge.

    Safe because a pure op's results depend only on its attributes and operand values, so
    the two nodes compute the same tensors; the earlier one dominates every use of the later
    one since nodes are in topological order. One in-order walk suffices: operands are
    merged before their users are keyed.
    """
    seen: dict[Hashable, Node] = {}
    merged = 0
    for n in list(g.nodes):
        key = node_key(n)
        if key is None:
            continue
        first = seen.get(key)
        if first is None:
            seen[key] = n
            continue
        for old, new in zip(n.outputs, first.outputs):
            g.replace_all_uses(old, new)
        g.remove_node(n)
        merged += 1
        ctx.stat(f"merged.{n.op.name}")
    ctx.stat("nodes_merged", merged)
    return g


@prop_check(Prop.NO_COMMON_SUBEXPRESSIONS)
def check_no_common_subexpressions(g: Graph) -> str | None:
    seen: dict[Hashable, Node] = {}
    for n in g.nodes:
        key = node_key(n)
        if key is None:
            continue
        if key in seen:
            return f"{node_line(n)} repeats {node_line(seen[key])}"
        seen[key] = n
    return None
