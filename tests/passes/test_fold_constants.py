"""fold_constants: golden cases, weights-store results, symbolic shape arithmetic, limits."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.ir import parse_ir, print_graph, run
from lmc.ir.ops.source import Param
from lmc.passes import PASSES, PassContext, Pipeline, Prop
from lmc.passes.fold_constants import evaluate_node
from lmc.passes.manager import PROP_CHECKS

from tests.passes.harness import check_golden, golden_paths
from tests.util import assert_close

GOLDEN = golden_paths("fold_")
FOLD = PASSES["fold_constants"]


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path, request) -> None:
    check_golden(path, request.config.getoption("--update-golden"))


LARGE = """graph @large [s0 in 1..8] {
  %x = input() {index=0} : f32[s0, 100]
  %0 = constant() {value=[0.5]} : f32[1]
  %1 = expand(%0) {shape=[100]} : f32[100]
  %2 = constant() {value=[2.0]} : f32[1]
  %3 = expand(%2) {shape=[100]} : f32[100]
  %4 = mul(%1, %3) : f32[100]
  %5 = add(%x, %4) : f32[s0, 100]
  return %5, %1
}
"""


def test_large_results_become_params_with_fresh_keys() -> None:
    g = parse_ir(LARGE)
    g.weights["const.0"] = np.zeros(3, np.float32)  # an unrelated weight owns const.0
    out = Pipeline(["fold_constants"]).run(g, PassContext(check_props=True))
    params = {n.op.key: n.out for n in out.nodes if isinstance(n.op, Param)}
    # Only results an unfolded node (or an output) reads are materialized.
    assert sorted(params) == ["const.1", "const.2"]
    assert sorted(out.weights) == ["const.0", "const.1", "const.2"]
    assert out.weights["const.0"].shape == (3,), "weights the pass did not touch stay"
    np.testing.assert_array_equal(out.weights["const.1"], np.full(100, 0.5, np.float32))
    np.testing.assert_array_equal(out.weights["const.2"], np.full(100, 1.0, np.float32))
    x = np.random.default_rng(0).standard_normal((3, 100)).astype(np.float32)
    for a, b in zip(run(out, [x]), run(g, [x])):
        assert_close(a, b, 0, 0)
    again = Pipeline(["fold_constants"]).run(g)
    assert print_graph(again) == print_graph(out), "keys must be deterministic"


def test_huge_broadcasts_are_kept() -> None:
    g = parse_ir("""graph @g {
  %0 = constant() {value=[1.0]} : f32[1]
  %1 = expand(%0) {shape=[2048, 1024]} : f32[2048, 1024]
  %2 = full() {shape=[1024, 1025], value=0.0, dtype=f32} : f32[1024, 1025]
  return %1, %2
}
""")
    out = FOLD(g.copy())
    assert [n.op.name for n in out.nodes] == ["constant", "expand", "full"]
    assert PROP_CHECKS[Prop.FOLDED](out) is None, "kept on purpose: still FOLDED"


def test_params_fold_only_when_asked() -> None:
    text = """graph @g {
  %w = param() {key="w"} : f32[2, 3]
  %0 = constant() {value=[1.0]} : f32[1]
  %1 = add(%w, %0) : f32[2, 3]
  return %1
}
"""
    g = parse_ir(text)
    g.weights["w"] = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert print_graph(FOLD(g.copy())) == text
    ctx = PassContext(options={"fold_params": True})
    out = Pipeline(["fold_constants"]).run(g, ctx)
    assert [n.op.name for n in out.nodes] == ["constant"]
    assert out.weights == {}, "the param's weight is dropped with its last reader"
    assert_close(run(out, [])[0], g.weights["w"] + 1, 0, 0)
    assert ctx.stats["fold_constants"]["folded.add"] == 1


def test_symbolic_values_fold_only_into_small_constants() -> None:
    # 3 * 30 symbolic values do not fit an inline constant (64): the concat stays.
    g = parse_ir("""graph @g [s0 in 1..8] {
  %x = input() {index=0} : f32[s0, 2, 3]
  %0 = shape(%x) {start=0, end=none} : i64[3]
  %1 = expand(%0) {shape=[30, 3]} : i64[30, 3]
  return %1
}
""")
    out = FOLD(g)
    assert [n.op.name for n in out.nodes] == ["input", "constant", "expand"]


def test_reference_errors_are_left_to_run_time() -> None:
    g = parse_ir("""graph @g {
  %0 = constant() {value=[1.0, 2.0]} : f32[2]
  %1 = constant() {value=[5]} : i64[1]
  %2 = gather(%0, %1) {axis=0} : f32[1]
  return %2
}
""")
    assert evaluate_node(g, g.nodes[2]) is None
    assert [n.op.name for n in FOLD(g).nodes] == ["constant", "constant", "gather"]


def test_folded_check_names_the_node() -> None:
    g = parse_ir("""graph @g {
  %0 = constant() {value=[1.0]} : f32[1]
  %1 = neg(%0) : f32[1]
  return %1
}
""")
    problem = PROP_CHECKS[Prop.FOLDED](g)
    assert problem and "neg(%0)" in problem


def test_symbolic_division_truncates_like_the_reference() -> None:
    g = parse_ir("""graph @g [s0 in 1..9] {
  %x = input() {index=0} : f32[s0]
  %0 = shape(%x) {start=0, end=none} : i64[1]
  %1 = constant() {value=[9]} : i64[1]
  %2 = sub(%0, %1) : i64[1]
  %3 = neg(%0) : i64[1]
  %4 = constant() {value=[2]} : i64[1]
  %5 = div(%3, %4) : i64[1]
  %6 = div(%2, %4) : i64[1]
  %7 = add(%0, %1) : i64[1]
  %8 = div(%7, %4) : i64[1]
  return %5, %6, %8
}
""")
    out = FOLD(g.copy())
    # (s0 + 9) / 2 folds (provably >= 0: truncating is flooring); -s0 / 2 and (s0 - 9) / 2
    # may be negative, where truncation and flooring differ: those stay.
    assert [n.op.name for n in out.nodes].count("div") == 2
    for s0 in range(1, 10):
        x = np.zeros(s0, np.float32)
        for a, b in zip(run(out, [x]), run(g, [x])):
            assert_close(a, b, 0, 0)
