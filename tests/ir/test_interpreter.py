"""The reference interpreter: symbol binding from input shapes, input checks, and errors that
quote the printed IR line of the failing node."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.ir import OPS, DType, Graph, TensorType, parse_ir, run, sym
from lmc.ir.errors import InterpreterError
from lmc.ir.interpreter import bind_symbols

from tests.util import assert_close

F32 = DType.f32

TEXT = """graph @g [s0 in 1..8, s1 in 2..4] {
  %x = input() {index=0} : f32[s0, s1]
  %y = input() {index=1} : f32[s1]
  %z = input() {index=2} : f32[s0 + 1]
  %0 = add(%x, %y) : f32[s0, s1]
  %1 = relu(%0) : f32[s0, s1]
  return %1, %z
}
"""


def arrays(s0: int, s1: int, z: int | None = None) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.standard_normal((s0, s1)).astype(np.float32),
        rng.standard_normal((s1,)).astype(np.float32),
        np.zeros((s0 + 1 if z is None else z,), np.float32),
    ]


def interp_error(g: Graph, inputs, weights=None) -> str:
    with pytest.raises(InterpreterError) as info:
        run(g, inputs, weights)
    return str(info.value)


def test_runs_and_matches_numpy():
    g = parse_ir(TEXT)
    for s0, s1 in [(1, 2), (5, 3), (8, 4)]:
        ins = arrays(s0, s1)
        out, z = run(g, ins)
        assert_close(out, np.maximum(ins[0] + ins[1], 0), name=f"s0={s0}")
        assert z.shape == (s0 + 1,)


def test_binds_symbols_from_input_shapes():
    g = parse_ir(TEXT)
    assert bind_symbols(g, arrays(6, 3)) == {"s0": 6, "s1": 3}


def test_inputs_by_name():
    g = parse_ir(TEXT)
    x, y, z = arrays(2, 2)
    out, _ = run(g, {"z": z, "y": y, "x": x})
    assert_close(out, np.maximum(x + y, 0))
    assert "missing input(s) ['z']" in interp_error(g, {"x": x, "y": y})
    assert "unknown input name(s) ['w']" in interp_error(g, {"x": x, "y": y, "z": z, "w": z})


def test_input_count():
    assert "takes 3 inputs, got 2" in interp_error(parse_ir(TEXT), arrays(2, 2)[:2])


def test_dim_outside_symbol_bounds():
    msg = interp_error(parse_ir(TEXT), arrays(9, 3))
    assert "input 0 (%x): dim 0 = 9 is outside s0 in 1..8" in msg
    msg = interp_error(parse_ir(TEXT), arrays(2, 5))
    assert "dim 1 = 5 is outside s1 in 2..4" in msg


def test_inconsistent_symbol_values():
    x, y, z = arrays(3, 2)
    msg = interp_error(parse_ir(TEXT), [x, np.zeros((3,), np.float32), z])
    assert "input %y: dim 0 is 3, expected s1 = 2" in msg


def test_dim_expression_checked():
    msg = interp_error(parse_ir(TEXT), arrays(3, 2, z=3))
    assert "input %z: dim 0 is 3, expected s0 + 1 = 4" in msg


def test_symbol_only_in_an_expression_cannot_be_bound():
    g = parse_ir("graph @g [n in 1..8] {\n  %x = input() {index=0} : f32[2*n]\n  return %x\n}\n")
    assert "symbol n cannot be bound" in interp_error(g, [np.zeros(4, np.float32)])


def test_wrong_rank():
    x, y, z = arrays(3, 2)
    msg = interp_error(parse_ir(TEXT), [x[None], y, z])
    assert "input 0 (%x): expected rank 2 (f32[s0, s1]), got shape [1, 3, 2]" in msg


def test_wrong_dtype():
    x, y, z = arrays(3, 2)
    msg = interp_error(parse_ir(TEXT), [x.astype(np.float64), y, z])
    assert "input 0 (%x): expected dtype f32 (float32), got float64" in msg


def test_missing_weight_names_the_node_line():
    g = Graph("g")
    x = g.input("x", TensorType(F32, [2]))
    w = g.param("layer.w", type=TensorType(F32, [2]))
    g.set_outputs([g.apply(OPS["add"](), x, w)])
    msg = interp_error(g, [np.zeros(2, np.float32)])
    assert "weights store has no key 'layer.w'" in msg
    assert 'at: %layer.w = param() {key="layer.w"} : f32[2]' in msg
    out = run(g, [np.ones(2, np.float32)], {"layer.w": np.full(2, 2.0, np.float32)})[0]
    assert_close(out, np.full(2, 3.0))


def test_reference_result_not_matching_the_declared_type_names_the_node():
    g = Graph("g", {"s0": (1, 8)})
    x = g.input("x", TensorType(F32, [sym("s0")]))
    # Declared type disagrees with what the reference computes (the verifier would object;
    # the interpreter checks every result anyway).
    g.add_node(OPS["relu"](), [x], [TensorType(F32, [sym("s0") + 1])])
    g.set_outputs([g.nodes[-1].out])
    msg = interp_error(g, [np.zeros(3, np.float32)])
    assert "result 0 has shape [3], type says f32[s0 + 1] = [4]" in msg
    assert "at: %0 = relu(%x) : f32[s0 + 1]" in msg


def test_constant_with_symbolic_values_is_bound():
    g = Graph("g", {"s0": (1, 8)})
    g.input("x", TensorType(F32, [sym("s0")]))
    c = g.constant([sym("s0"), 2 * sym("s0") + 1], TensorType(DType.i64, [2]))
    g.set_outputs([c])
    (out,) = run(g, [np.zeros(5, np.float32)])
    assert out.dtype == np.int64 and out.tolist() == [5, 11]
