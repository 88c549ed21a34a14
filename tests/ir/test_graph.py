"""The graph API keeps use-lists, order and outputs right under every mutation."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.ir import OPS, DType, Graph, LmcError, TensorType, print_graph, sym, verify
from lmc.ir.errors import IRTypeError
from lmc.ir.ops.source import Input, Param

F32 = DType.f32
Add, Mul, Relu = OPS["add"], OPS["mul"], OPS["relu"]


def uses(v) -> list[tuple[int, int]]:
    """A value's use-list as (node position, operand index) pairs, sorted."""
    g = v.node.graph
    return sorted((g.position(n), i) for n, i in v.uses)


def diamond() -> tuple[Graph, dict]:
    g = Graph("g", {"s0": (1, 8)})
    x = g.input("x", TensorType(F32, [sym("s0"), 4]))
    a = g.apply(Relu(), x)
    b = g.apply(Mul(), x, a)
    c = g.apply(Add(), a, b)
    g.set_outputs([c])
    return g, {"x": x, "a": a, "b": b, "c": c}


def test_add_node_records_uses_and_infers_types():
    g, v = diamond()
    assert uses(v["x"]) == [(1, 0), (2, 0)]
    assert uses(v["a"]) == [(2, 1), (3, 0)]
    assert v["c"].type == TensorType(F32, [sym("s0"), 4])
    verify(g)


def test_add_node_rejects_foreign_values_and_missing_types():
    g, _ = diamond()
    other, w = diamond()
    with pytest.raises(LmcError, match="not a value of graph @g"):
        g.apply(Relu(), w["x"])
    with pytest.raises(IRTypeError, match="declares its result type"):
        g.add_node(Input(index=1), [])


def test_add_node_before():
    g, v = diamond()
    n = g.add_node(Relu(), [v["x"]], before=v["b"].node)
    assert g.position(n) == 2 and g.position(v["b"].node) == 3
    verify(g)


def test_set_input_moves_one_use():
    g, v = diamond()
    b_node = v["b"].node
    g.set_input(b_node, 1, v["x"])
    assert b_node.inputs == (v["x"], v["x"])
    assert uses(v["x"]) == [(1, 0), (2, 0), (2, 1)]
    assert uses(v["a"]) == [(3, 0)]
    verify(g)


def test_replace_all_uses_moves_uses_and_outputs():
    g, v = diamond()
    y = g.apply(Relu(), v["x"], before=v["b"].node)  # the caller keeps definitions first
    g.replace_all_uses(v["a"], y)
    assert v["a"].uses == []
    assert uses(y) == [(3, 1), (4, 0)]
    g.replace_all_uses(v["c"], v["b"])
    assert g.outputs == [v["b"]]
    g.remove_node(v["c"].node)
    g.remove_node(v["a"].node)
    verify(g)
    assert print_graph(g).count("relu") == 1


def test_remove_node_refuses_used_results_and_updates_uses():
    g, v = diamond()
    with pytest.raises(LmcError, match="still used"):
        g.remove_node(v["a"].node)
    with pytest.raises(LmcError, match="still used"):
        g.remove_node(v["c"].node)  # a graph output
    g.set_outputs([v["b"]])
    g.remove_node(v["c"].node)
    assert uses(v["a"]) == [(2, 1)]
    assert uses(v["b"]) == []
    verify(g)


def test_replace_node():
    g, v = diamond()
    old = v["b"].node
    new = g.replace_node(old, Add(), [v["x"], v["a"]])
    assert old not in g.nodes and g.position(new) == 2
    assert uses(new.out) == [(3, 1)]
    assert all(n is not old for n, _ in v["x"].uses)
    verify(g)


def test_param_goes_before_the_first_computing_node():
    g, v = diamond()
    w = g.param("w", np.ones((4,), np.float32))
    assert g.position(w.node) == 1 and isinstance(w.node.op, Param)
    assert g.weights["w"].shape == (4,) and w.type == TensorType(F32, [4])
    with pytest.raises(LmcError, match="give an array or a type"):
        g.param("nothing")


def test_inputs_ordered_by_index():
    g = Graph("g")
    b = g.add_node(Input(index=1), [], [TensorType(F32, [2])], ["b"]).out
    a = g.add_node(Input(index=0), [], [TensorType(F32, [2])], ["a"]).out
    assert g.inputs == [a, b]


def test_copy_is_independent():
    g, v = diamond()
    g.weights["k"] = np.zeros(2)
    h = g.copy()
    assert print_graph(h) == print_graph(g)
    assert h.weights == g.weights and h.weights is not g.weights
    h.set_outputs([h.nodes[1].out])
    h.remove_node(h.nodes[3])
    assert len(g.nodes) == 4 and g.outputs == [v["c"]]
    assert all(n.graph is h for n in h.nodes)
    verify(g)
    verify(h)


def test_to_nx():
    g, _ = diamond()
    G = g.to_nx()
    assert sorted(G.nodes) == [0, 1, 2, 3]
    assert [G.nodes[i]["op"] for i in range(4)] == ["input", "relu", "mul", "add"]
    edges = sorted((u, w, d["operand"], d["result"]) for u, w, d in G.edges(data=True))
    assert edges == [(0, 1, 0, 0), (0, 2, 0, 0), (1, 2, 1, 0), (1, 3, 0, 0), (2, 3, 1, 0)]
    import networkx as nx

    assert list(nx.topological_sort(G)) == [0, 1, 2, 3]


def test_multi_result_node_out_and_values():
    g = Graph("g")
    x = g.input("x", TensorType(F32, [2]))
    node = g.add_node(Relu(), [x], [x.type, x.type])  # declared types: two results
    with pytest.raises(LmcError, match="2 results, not one"):
        node.out  # noqa: B018
    assert [v.index for v in node.outputs] == [0, 1]
    assert list(g.values()) == [x, *node.outputs]
    assert g.users(x) == [node] and not g.is_output(x)
