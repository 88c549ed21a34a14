"""Round trip of the text IR over random graphs built from the op registry (hypothesis).

For every graph g: print(parse(print(g))) == print(g), parse(print(g)) structurally equals g,
and the verifier accepts both. Hostile names for graphs, inputs and params round-trip too.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lmc.ir import OPS, DType, Graph, TensorType, parse_ir, print_graph, sym, verify
from lmc.ir.equal import structurally_equal

from .strategies import HOSTILE_NAMES, SOURCE_OPS, graphs, names

Add = OPS["add"]
# Random exploration locally; in CI (CI=true) a fixed sequence, so a red run is reproducible
# and never depends on luck.
DERANDOMIZE = bool(os.environ.get("CI"))
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def check_round_trip(g: Graph) -> None:
    text = print_graph(g)
    verify(g)
    g2 = parse_ir(text)
    assert print_graph(g2) == text
    problem = structurally_equal(g2, g)
    assert problem is None, f"{problem}\n{text}"
    verify(g2)


@SETTINGS
@given(graphs())
def test_random_graphs_round_trip(built):
    check_round_trip(built.graph)


@pytest.mark.parametrize("name", sorted(set(OPS) - SOURCE_OPS))
def test_each_op_round_trips(name):
    """Every registered op, with random attributes and operands, round-trips; a shape rule
    given operands it cannot take raises IRTypeError (an LmcError), never crashes."""

    @settings(
        max_examples=3,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(graphs(max_steps=2, ops=(name,)))
    def check(built):
        check_round_trip(built.graph)
        assert not built.crashes, "infer crashed instead of raising IRTypeError:\n" + "\n".join(
            built.crashes
        )

    check()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_round_trip(name):
    g = Graph(name, {"s0": (1, 4)})
    x = g.input(name, TensorType(DType.f32, [sym("s0"), 2]))
    w = g.param(name, np.ones((1, 2), np.float32), name=name + "_w")
    g.set_outputs([g.apply(Add(), x, w)])
    check_round_trip(g)
    text = print_graph(g)
    # A hostile name never ends a line early or opens a comment: one node per line.
    assert len(text.splitlines()) == 6


@SETTINGS
@given(st.lists(names(), min_size=2, max_size=4, unique=True), names(), names())
def test_random_names_round_trip(input_names, graph_name, key):
    assume(input_names[0] != "")  # g.param(key, name="") names the value after its key
    g = Graph(graph_name)
    values = [g.input(n, TensorType(DType.f32, [3])) for n in input_names[1:]]
    values.append(g.param(key, type=TensorType(DType.f32, [3]), name=input_names[0]))
    out = values[0]
    for v in values[1:]:
        out = g.apply(Add(), out, v)
    g.set_outputs([out])
    check_round_trip(g)
    g2 = parse_ir(print_graph(g))
    assert [v.name for v in g2.inputs] == input_names[1:]
    assert g2.name == graph_name
    assert g2.nodes[len(input_names) - 1].op.key == key
