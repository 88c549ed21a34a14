"""The memory plan: valid (verified) on every lowered case graph, sized for the symbols' upper
bounds, reusing memory (in place and across lifetimes), aliasing views, placing outputs in
their buffers; and a verifier that catches overlapping plans."""

from __future__ import annotations

import pytest
from lmc.backends.c.build import lower, make_plan
from lmc.backends.memory_plan import Buffer, MemoryPlan, PlanError, verify_plan
from lmc.backends.targets import parse_target
from lmc.ir import OPS, DType, Graph, TensorType, sym

from .hostbuild import CASES, case_graph

F32 = DType.f32


def _lowered(g: Graph) -> Graph:
    return lower(g, parse_target("host"))


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_plan_of_every_case_verifies(path):
    g = _lowered(case_graph(path))
    plan = make_plan(g)
    verify_plan(plan)
    assert plan.arena_bytes % 64 == 0
    assert plan.arena_bytes <= sum(b.size for b in plan.buffers)
    for b in plan.buffers:
        assert b.offset % 64 == 0 and b.start <= b.end
    for v in g.values():
        assert id(v) in plan.where


def _chain(n: int = 6) -> Graph:
    """A chain of softmaxes (row kernels allowed to write over their dying operand) ending in a
    reduction: one or two buffers must serve the whole chain."""
    s0 = sym("s0")
    g = Graph("chain", {"s0": (1, 64)})
    x = g.input("x", TensorType(F32, [s0, 256]))
    h = x
    outs = []
    for i in range(n):
        h = g.apply(OPS["softmax"](), h)  # row kernel: may write over its dying operand
        h = g.apply(OPS["reduce_sum"](axes=(1,), keepdims=True), h) if i == n - 1 else h
    outs.append(h)
    g.set_outputs(outs)
    return g


def test_buffers_sized_for_upper_bounds_and_reused():
    g = _lowered(_chain())
    plan = make_plan(g)
    per_value = 64 * 256 * 4  # s0 at its upper bound 64
    assert plan.arena_bytes <= 2 * per_value, plan.table()
    assert plan.arena_bytes >= per_value
    assert plan.inplace, "softmax chains write over their dying operands"


def test_views_alias_and_outputs_are_direct():
    s0 = sym("s0")
    g = Graph("views", {"s0": (1, 8)})
    x = g.input("x", TensorType(F32, [s0, 6]))
    a = g.apply(OPS["exp"](), x)
    r = g.apply(OPS["reshape"](shape=(s0, 2, 3)), a)
    t = g.apply(OPS["transpose"](perm=(1, 0, 2)), r)
    g.set_outputs([t, r])
    g = _lowered(g)
    plan = make_plan(g)
    exp_v = next(n for n in g.nodes if n.op.name == "exp").outputs[0]
    view = next(n for n in g.nodes if n.op.name == "reshape").outputs[0]
    assert plan.location(exp_v) == plan.location(view), "reshape aliases its operand"
    assert plan.location(view).kind == "output", "an output's producer writes into its buffer"
    assert plan.views == 1 and plan.copies == []


def test_input_returned_as_output_is_copied():
    g = Graph("passthrough", {"s0": (1, 8)})
    x = g.input("x", TensorType(F32, [sym("s0"), 2]))
    g.set_outputs([x, g.apply(OPS["reshape"](shape=(2, sym("s0"))), x)])
    plan = make_plan(_lowered(g))
    assert [k for k, _ in plan.copies] == [0, 1]


def _plan(buffers: list[Buffer], arena: int) -> MemoryPlan:
    return MemoryPlan(buffers, {}, {}, [], [], 0, arena)


def test_verifier_catches_overlap():
    a = Buffer(0, 128, 0, 3, 0, ["%0"])
    b = Buffer(1, 128, 2, 5, 64, ["%1"])
    with pytest.raises(PlanError, match="overlap while both are live"):
        verify_plan(_plan([a, b], 256))
    b.start = 4  # a dies at 3: sharing bytes is fine now
    verify_plan(_plan([a, b], 256))


def test_verifier_catches_misalignment_and_overflow():
    with pytest.raises(PlanError, match="aligned"):
        verify_plan(_plan([Buffer(0, 64, 0, 1, 32, ["%0"])], 128))
    with pytest.raises(PlanError, match="past the arena"):
        verify_plan(_plan([Buffer(0, 128, 0, 1, 64, ["%0"])], 128))


def test_plan_prints_as_a_table():
    plan = make_plan(_lowered(case_graph(next(p for p in CASES if p.stem == "norm"))))
    text = plan.table()
    lines = text.splitlines()
    assert lines[0].startswith("memory plan: arena ") and "buffer" in lines[1]
    assert len(lines) == 2 + len(plan.buffers)
    assert set(plan.stats()) >= {"arena_bytes", "buffers", "inplace", "views"}
