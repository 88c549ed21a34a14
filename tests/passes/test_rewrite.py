"""The rewrite engine: rule lookup, fixpoint, dead-producer cleanup and rule-bug reports."""

from __future__ import annotations

import pytest
from lmc.ir import parse_ir, print_graph
from lmc.ir.dtypes import DType
from lmc.ir.errors import PassError
from lmc.ir.graph import Graph, Node, Value
from lmc.ir.op import OPS
from lmc.passes.rewrite import RuleSet, apply_rules, remove_dead

TEXT = """graph @g [s0 in 1..4] {
  %x = input() {index=0} : f32[s0]
  %0 = exp(%x) : f32[s0]
  %1 = neg(%0) : f32[s0]
  %2 = neg(%1) : f32[s0]
  return %2
}
"""


def test_rules_by_class_and_by_name_reach_a_fixpoint() -> None:
    rules = RuleSet("test")

    @rules.rule(OPS["neg"])
    def drop_double_neg(g: Graph, n: Node) -> Value | None:
        x = n.inputs[0]
        return x.node.inputs[0] if x.node.op.name == "neg" else None

    @rules.rule("exp")
    def exp_to_relu(g: Graph, n: Node) -> Value:
        return g.add_node(OPS["relu"](), n.inputs, before=n).out

    g = parse_ir(TEXT)
    counts = apply_rules(g, rules)
    assert counts == {"drop_double_neg": 1, "exp_to_relu": 1}
    assert [n.op.name for n in g.nodes] == ["input", "relu"], "dead producers are deleted"
    assert sorted(rules.names()) == ["drop_double_neg", "exp_to_relu"]


def test_lambdas_are_rejected() -> None:
    with pytest.raises(PassError, match="named functions"):
        RuleSet("test").rule("neg")(lambda g, n: None)


def rules_with(fn) -> RuleSet:
    rules = RuleSet("test")
    rules.rule("neg")(fn)
    return rules


def test_a_rule_that_changes_the_type_is_reported() -> None:
    def to_f16(g: Graph, n: Node) -> Value:
        return g.add_node(OPS["cast"](dtype=DType.f16), n.inputs, before=n).out

    with pytest.raises(PassError, match="to_f16 changed a type: f32\\[s0\\] -> f16\\[s0\\]"):
        apply_rules(parse_ir(TEXT), rules_with(to_f16))


def test_a_rule_that_mutates_but_returns_none_is_reported() -> None:
    def sloppy(g: Graph, n: Node) -> None:
        g.add_node(OPS["relu"](), n.inputs, before=n)

    with pytest.raises(PassError, match="sloppy changed the graph but returned None"):
        apply_rules(parse_ir(TEXT), rules_with(sloppy))


def test_a_rule_returning_its_own_node_is_reported() -> None:
    def same(g: Graph, n: Node) -> Value:
        return n.out

    with pytest.raises(PassError, match="same returned the node's own result"):
        apply_rules(parse_ir(TEXT), rules_with(same))


def test_rules_that_never_settle_are_reported() -> None:
    def flip(g: Graph, n: Node) -> Value:
        return g.add_node(OPS["neg"](), n.inputs, before=n).out

    with pytest.raises(PassError, match="did not converge"):
        apply_rules(parse_ir(TEXT), rules_with(flip), max_rounds=5)


def test_remove_dead_keeps_used_and_impure_nodes() -> None:
    g = parse_ir(TEXT)
    before = print_graph(g)
    assert remove_dead(g, list(g.nodes)) == 0
    assert print_graph(g) == before
    g.set_outputs([g.inputs[0]])
    assert remove_dead(g, [g.nodes[-1]]) == 3, "the chain goes, the input stays"
    assert [n.op.name for n in g.nodes] == ["input"]
