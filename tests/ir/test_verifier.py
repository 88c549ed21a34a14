"""The verifier rejects each broken invariant with a message that quotes the node's IR line."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.ir import OPS, DType, Graph, TensorType, parse_ir, sym, verify
from lmc.ir.errors import VerifyError
from lmc.ir.ops.source import Constant, Input

F32 = DType.f32
Add, Relu = OPS["add"], OPS["relu"]


def small_graph() -> Graph:
    g = Graph("g", {"s0": (1, 8)})
    x = g.input("x", TensorType(F32, [sym("s0"), 4]))
    w = g.param("w", np.ones((4,), np.float32))
    y = g.apply(Add(), g.apply(Relu(), x), w)
    g.set_outputs([y])
    return g


def verify_error(g: Graph, **kw) -> str:
    with pytest.raises(VerifyError) as info:
        verify(g, **kw)
    return str(info.value)


def test_valid_graph_passes():
    g = small_graph()
    verify(g)
    verify(g, check_weights=True)


def test_use_before_definition():
    g = small_graph()
    relu = g.nodes[2]
    g.nodes.remove(relu)
    g.nodes.append(relu)  # now after its reader
    msg = verify_error(g)
    assert "operand 0 is used before it is defined" in msg
    assert "at: %0 = add(%1, %w) : f32[s0, 4]" in msg


def test_operand_from_another_graph():
    g, other = small_graph(), small_graph()
    node, x, foreign = g.nodes[2], g.inputs[0], other.inputs[0]
    node.inputs = (foreign,)
    x.uses.remove((node, 0))
    foreign.uses.append((node, 0))
    assert "used before it is defined (or not in this graph)" in verify_error(g)


def test_wrong_declared_type():
    g = small_graph()
    x = g.inputs[0]
    g.add_node(Relu(), [x], [TensorType(F32, [sym("s0"), 5])])
    msg = verify_error(g)
    assert "declared f32[s0, 5] but the op's rule gives f32[s0, 4]" in msg
    assert "at: %2 = relu(%x) : f32[s0, 5]" in msg


def test_wrong_declared_dtype_from_text():
    text = (
        "graph @g {\n  %x = input() {index=0} : f32[3]\n  %0 = relu(%x) : f16[3]\n  return %0\n}\n"
    )
    assert "declared f16[3] but the op's rule gives f32[3]" in verify_error(parse_ir(text))


def test_operands_the_rule_rejects():
    g = Graph("g")
    a = g.input("a", TensorType(F32, [3]))
    b = g.input("b", TensorType(F32, [4]))
    g.add_node(Add(), [a, b], [TensorType(F32, [3])])
    g.set_outputs([g.nodes[-1].out])
    msg = verify_error(g)
    assert "type rule rejects the operands" in msg and "add(%a, %b)" in msg


def test_undeclared_symbol_in_type():
    g = small_graph()
    g.add_node(Input(index=1), [], [TensorType(F32, [sym("s9")])], ["z"])
    msg = verify_error(g)
    assert "undeclared symbol(s) ['s9']" in msg and "%z = input()" in msg


def test_undeclared_symbol_in_attribute():
    g = small_graph()
    g.add_node(Constant(value=(sym("n"), 2)), [], [TensorType(DType.i64, [2])])
    assert "attributes use undeclared symbol(s) ['n']" in verify_error(g)


def test_bad_symbol_bounds():
    g = small_graph()
    g.symbols["s0"] = (4, 2)
    assert "symbol s0 has bad bounds 4..2" in verify_error(g)


@pytest.mark.parametrize("indices", [[1], [0, 0], [0, 2]])
def test_bad_input_indices(indices):
    g = Graph("g")
    values = [
        g.add_node(Input(index=i), [], [TensorType(F32, [2])], [f"x{k}"]).out
        for k, i in enumerate(indices)
    ]
    g.set_outputs(values)
    assert "input indices" in verify_error(g)


def test_duplicate_source_names():
    g = small_graph()
    g.add_node(Input(index=1), [], [TensorType(F32, [2])], ["x"])
    assert "name %x is defined twice" in verify_error(g)


def test_arity():
    g = small_graph()
    x = g.inputs[0]
    g.add_node(Relu(), [x, x], [x.type])
    assert "relu takes 1 operands, got 2" in verify_error(g)


def test_no_outputs_and_undefined_output():
    g = small_graph()
    g.set_outputs([])
    assert "graph has no outputs" in verify_error(g)
    g.set_outputs([small_graph().outputs[0]])
    assert "an output is not defined in the graph" in verify_error(g)


def test_stale_use_list():
    g = small_graph()
    x = g.inputs[0]
    x.uses.clear()
    assert "use-list of operand 0 misses this node" in verify_error(g)


def test_constant_value_count_must_match_type():
    g = small_graph()
    g.add_node(Constant(value=(1.0, 2.0)), [], [TensorType(F32, [3])])
    assert "constant: 2 values for type f32[3]" in verify_error(g)


def test_missing_weights_only_with_check_weights():
    g = small_graph()
    del g.weights["w"]
    verify(g)
    msg = verify_error(g, check_weights=True)
    assert "weights store has no key 'w'" in msg and "%w = param()" in msg


@pytest.mark.parametrize("array", [np.ones((5,), np.float32), np.ones((4,), np.float64)])
def test_weight_shape_or_dtype_mismatch(array):
    g = small_graph()
    g.weights["w"] = array
    assert "the node declares f32[4]" in verify_error(g, check_weights=True)


def test_weight_that_is_not_an_array():
    g = small_graph()
    g.weights["w"] = [1.0, 2.0, 3.0, 4.0]
    assert "is not a numpy array" in verify_error(g, check_weights=True)
