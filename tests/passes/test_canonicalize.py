"""canonicalize: golden Before/Expected cases per rule, and the rule set's own guarantees."""

from __future__ import annotations

import pytest
from lmc.ir import parse_ir
from lmc.ir.dtypes import DType
from lmc.passes import PASSES, PassContext, Pipeline, Prop
from lmc.passes.canonical_rules import RULES, cast_through
from lmc.passes.manager import PROP_CHECKS

from tests.passes.harness import check_golden, golden_paths

GOLDEN = golden_paths("canonicalize_")


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path, request) -> None:
    check_golden(path, request.config.getoption("--update-golden"))


def test_rules_are_named_functions_with_docstrings() -> None:
    for rules in RULES.by_op.values():
        for rule in rules:
            assert rule.__name__ != "<lambda>"
            assert rule.__doc__, f"rule {rule.__name__} needs a docstring"


def test_per_rule_counts_are_recorded() -> None:
    g = parse_ir("""graph @g [s0 in 1..8] {
  %x = input() {index=0} : f32[s0]
  %0 = identity(%x) : f32[s0]
  %1 = identity(%0) : f32[s0]
  %2 = neg(%1) : f32[s0]
  %3 = neg(%2) : f32[s0]
  return %3
}
""")
    ctx = PassContext()
    Pipeline(["canonicalize"]).run(g, ctx)
    assert ctx.stats["canonicalize"] == {"identity_elim": 2, "neg_neg": 1}


def test_canonical_check_finds_a_rule_that_applies() -> None:
    g = parse_ir("""graph @g {
  %x = input() {index=0} : f32[3]
  %0 = identity(%x) : f32[3]
  return %0
}
""")
    problem = PROP_CHECKS[Prop.CANONICAL](g)
    assert problem and "identity_elim" in problem
    assert len(g.nodes) == 2, "the check must not change the graph it inspects"
    PASSES["canonicalize"](g)
    assert PROP_CHECKS[Prop.CANONICAL](g) is None


@pytest.mark.parametrize(
    "a,b,c,ok",
    [
        (DType.f16, DType.f32, DType.f64, True),
        (DType.f32, DType.f16, DType.f32, False),  # narrowing rounds
        (DType.i8, DType.i32, DType.u8, True),
        (DType.i16, DType.f32, DType.i8, False),  # float -> int saturates, int -> int wraps
        (DType.i16, DType.f32, DType.f64, True),
        (DType.i32, DType.f32, DType.f64, False),  # f32 cannot hold every i32
        (DType.u8, DType.i8, DType.i32, False),  # i8 cannot hold 200
        (DType.bool, DType.i8, DType.f32, True),
    ],
)
def test_cast_through(a, b, c, ok) -> None:
    assert cast_through(a, b, c) is ok


def test_cast_cast_rule_matches_the_reference_on_edge_values() -> None:
    """Every (a, b, c) the rule accepts gives bit-identical results on extreme values."""
    import numpy as np
    from lmc.ir.op import OPS

    cast = OPS["cast"]
    samples = {
        DType.bool: [True, False],
        DType.i4: [-8, 7, 0],
        DType.u4: [0, 15],
        DType.i8: [-128, 127, -1],
        DType.u8: [0, 255, 128],
        DType.i16: [-32768, 32767],
        DType.i32: [-(2**31), 2**31 - 1],
        DType.i64: [-(2**63), 2**63 - 1],
        DType.f16: [65504.0, -0.0, 1e-7, np.inf],
        DType.bf16: [3.0e38, -1.5],
        DType.f32: [3.4e38, 1e-45, -2.5],
        DType.f64: [1e308, -7.25],
    }
    for a, vals in samples.items():
        x = np.array(vals, dtype=a.np)
        for b in samples:
            for c in samples:
                if not cast_through(a, b, c):
                    continue
                two = cast(dtype=c).ref(cast(dtype=b).ref(x))
                one = cast(dtype=c).ref(x)
                assert np.array_equal(two, one, equal_nan=True), (a, b, c, two, one)
