"""eliminate_common_subexpressions: golden cases and the key's notion of equality."""

from __future__ import annotations

import pytest
from lmc.ir import parse_ir
from lmc.passes import PASSES, PassContext, Pipeline, Prop
from lmc.passes.eliminate_common_subexpressions import attr_key
from lmc.passes.manager import PROP_CHECKS

from tests.passes.harness import check_golden, golden_paths

GOLDEN = golden_paths("cse_")
CSE = PASSES["eliminate_common_subexpressions"]


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path, request) -> None:
    check_golden(path, request.config.getoption("--update-golden"))


@pytest.mark.parametrize(
    "a,b,same",
    [
        (float("nan"), float("nan"), True),
        (0.0, -0.0, False),
        (1, 1.0, False),
        (True, 1, False),
        ((1, 2), (1, 2), True),
        ((1, float("nan")), (1, float("nan")), True),
        ("a", "a", True),
    ],
)
def test_attr_key(a, b, same) -> None:
    assert (attr_key(a) == attr_key(b)) is same
    if same:
        assert hash(attr_key(a)) == hash(attr_key(b))


def test_chains_merge_in_one_walk() -> None:
    g = parse_ir("""graph @g [s0 in 1..4] {
  %x = input() {index=0} : f32[s0]
  %0 = exp(%x) : f32[s0]
  %1 = exp(%x) : f32[s0]
  %2 = neg(%0) : f32[s0]
  %3 = neg(%1) : f32[s0]
  %4 = add(%2, %3) : f32[s0]
  return %4
}
""")
    ctx = PassContext()
    out = Pipeline(["eliminate_common_subexpressions"]).run(g, ctx)
    assert [n.op.name for n in out.nodes] == ["input", "exp", "neg", "add"]
    add = out.nodes[-1]
    assert add.inputs[0] is add.inputs[1]
    assert ctx.stats["eliminate_common_subexpressions"]["nodes_merged"] == 2


def test_check_reports_the_repeated_node() -> None:
    g = parse_ir("""graph @g {
  %x = input() {index=0} : f32[2]
  %0 = exp(%x) : f32[2]
  %1 = exp(%x) : f32[2]
  return %0, %1
}
""")
    problem = PROP_CHECKS[Prop.NO_COMMON_SUBEXPRESSIONS](g)
    assert problem and "exp(%x)" in problem
    assert PROP_CHECKS[Prop.NO_COMMON_SUBEXPRESSIONS](CSE(g)) is None


def test_inputs_never_merge() -> None:
    g = parse_ir("""graph @g {
  %a = input() {index=0} : f32[2]
  %b = input() {index=1} : f32[2]
  return %a, %b
}
""")
    assert len(CSE(g).nodes) == 2
