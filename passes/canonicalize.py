"""Canonicalization: local identities (canonical_rules.RULES) applied to a fixpoint."""

from __future__ import annotations

from ..ir.graph import Graph
from .canonical_rules import RULES
from .eliminate_dead_nodes import drop_unused_weights, unused_weights
from .manager import PassContext, Prop, graph_pass, prop_check
from .rewrite import apply_rules


@graph_pass(
    ensures={Prop.TYPED, Prop.CANONICAL},
    breaks={Prop.FOLDED, Prop.NO_COMMON_SUBEXPRESSIONS},
)
def canonicalize(g: Graph, ctx: PassContext) -> Graph:
    """Rewrite with the named rules of `canonical_rules` until none applies: drop identities
    (x + 0, x * 1, x / 1, identity, same-dtype casts, no-op reshapes/expands/slices/
    transposes, one-operand concat/split), merge chains (neg(neg), cast(cast) through a
    lossless widening, reshape chains, transpose pairs), put constants on the right of
    commutative ops and turn `shape(x)` into a constant of x's dims. Per-rule counts are
    recorded as stats.

    Safe because each rule is an identity of the reference semantics for every input and every
    binding of the symbols, and keeps the replaced node's exact type; producers left unread
    are deleted (with the weights only they read). Rewritten nodes can duplicate others
    (NO_COMMON_SUBEXPRESSIONS breaks), and a rule can hand a constant to a node that had none
    (`shape(x)` -> constant; a whole-tensor slice of a constant whose bounds are symbolic, so
    that folding had to keep it): FOLDED breaks too.
    """
    unused_before = unused_weights(g)
    for rule, count in sorted(apply_rules(g, RULES).items()):
        ctx.stat(rule, count)
    drop_unused_weights(g, keep=unused_before)
    return g


@prop_check(Prop.CANONICAL)
def check_canonical(g: Graph) -> str | None:
    counts = apply_rules(g.copy(), RULES)
    return f"rules still apply: {counts}" if counts else None
