"""eliminate_dead_nodes: golden cases, the weights store, and the property check."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.ir import parse_ir
from lmc.passes import PASSES, PassContext, Pipeline, Prop
from lmc.passes.manager import PROP_CHECKS

from tests.passes.harness import check_golden, golden_paths

GOLDEN = golden_paths("dce_")
CHECK = PROP_CHECKS[Prop.NO_DEAD_NODES]

TEXT = """graph @g [s0 in 1..4] {
  %x = input() {index=0} : f32[s0, 2]
  %w = param() {key="w"} : f32[2]
  %u = param() {key="u"} : f32[2]
  %0 = mul(%x, %w) : f32[s0, 2]
  %1 = mul(%x, %u) : f32[s0, 2]
  %2 = exp(%1) : f32[s0, 2]
  return %0
}
"""


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path, request) -> None:
    check_golden(path, request.config.getoption("--update-golden"))


def test_unused_params_and_weights_go() -> None:
    g = parse_ir(TEXT)
    g.weights = {k: np.ones(2, np.float32) for k in ("w", "u", "orphan")}
    ctx = PassContext()
    out = Pipeline(["eliminate_dead_nodes"]).run(g, ctx)
    assert [n.op.name for n in out.nodes] == ["input", "param", "mul"]
    assert sorted(out.weights) == ["w"]
    assert sorted(g.weights) == ["orphan", "u", "w"], "the pipeline works on a copy"
    assert ctx.stats["eliminate_dead_nodes"] == {"nodes_removed": 3, "weights_dropped": 2}


def test_check_names_dead_nodes_and_orphan_weights() -> None:
    g = parse_ir(TEXT)
    problem = CHECK(g)
    assert problem and "exp(%1)" in problem
    out = PASSES["eliminate_dead_nodes"](g)
    assert CHECK(out) is None
    out.weights["orphan"] = np.zeros(1, np.float32)
    assert "orphan" in (CHECK(out) or "")
