"""fuse_rotary: golden Before/Expected cases (HF's rotate-half, other spellings, what it must
leave alone), exact interpretation on the cases and on random graphs built like HF's, and the
half-width cos / sin proof (half_of) on its own."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.ir import DType, Graph, TensorType, run, sym
from lmc.ir.op import OPS
from lmc.passes import PASSES, PassContext, Pipeline
from lmc.passes.fuse_rotary import half_of

from tests.passes.harness import (
    EXACT_TOLERANCE,
    assert_equivalent,
    check_golden,
    golden_paths,
    load_golden,
    reference_runs,
)

GOLDEN = golden_paths("fuse_rotary_")
F32 = DType.f32


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path, request) -> None:
    check_golden(path, request.config.getoption("--update-golden"))


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_cases_interpret_the_same(path) -> None:
    case = load_golden(path)
    runs = reference_runs(case.graph())
    assert runs is not None
    out, _ = case.run()
    assert_equivalent(out, runs, EXACT_TOLERANCE, f"fuse_rotary on {path.stem}")


def test_declared_exact() -> None:
    Pipeline([])
    assert PASSES["fuse_rotary"].tolerance is None


def _hf_rotary(heads: int, d: int, seed: int) -> tuple[Graph, int]:
    """q [2, heads, s0, d] rotated like HF LLaMA (cos / sin from positions and inv_freq)."""
    rng = np.random.default_rng(seed)
    s0 = sym("s0")
    g = Graph("rope", {"s0": (1, 32)})
    q = g.input("q", TensorType(F32, [2, heads, s0, d]))
    pos = g.input("pos", TensorType(F32, [1, s0, 1]))
    inv = g.param("inv", rng.random(d // 2).astype(np.float32))
    f = g.apply(OPS["mul"](), pos, inv)
    emb = g.apply(OPS["concat"](axis=-1), f, f)
    cs = [g.apply(OPS["unsqueeze"](axes=(1,)), g.apply(OPS[n](), emb)) for n in ("cos", "sin")]
    x1 = g.apply(OPS["slice"](axes=(3,), starts=(0,), ends=(d // 2,), steps=(1,)), q)
    x2 = g.apply(OPS["slice"](axes=(3,), starts=(d // 2,), ends=(1 << 62,), steps=(1,)), q)
    rot = g.apply(OPS["concat"](axis=3), g.apply(OPS["neg"](), x2), x1)
    y = g.apply(OPS["add"](), g.apply(OPS["mul"](), q, cs[0]), g.apply(OPS["mul"](), rot, cs[1]))
    g.set_outputs([y])
    return g, d


@pytest.mark.parametrize("heads,d,seed", [(1, 2, 0), (3, 16, 1), (2, 64, 2), (4, 40, 3)])
def test_hf_rotary_fuses_exactly(heads, d, seed) -> None:
    g, _ = _hf_rotary(heads, d, seed)
    out = Pipeline(["fuse_rotary", "eliminate_dead_nodes"]).run(g, PassContext(check_props=True))
    names = [n.op.name for n in out.nodes]
    assert names.count("rotary_embedding") == 1 and "neg" not in names and "concat" not in names
    rope = next(n for n in out.nodes if n.op.name == "rotary_embedding")
    assert rope.inputs[1].type.shape[-1] == d // 2
    runs = reference_runs(g)
    assert runs is not None
    for _, inputs, want in runs:  # bit for bit in f32
        got = run(out, inputs)
        assert np.array_equal(got[0], want[0])


def test_half_of_proves_equal_halves_only() -> None:
    s0 = sym("s0")
    g = Graph("halves", {"s0": (1, 8)})
    a = g.input("a", TensorType(F32, [s0, 3]))
    b = g.input("b", TensorType(F32, [s0, 6]))
    dup = g.apply(OPS["concat"](axis=1), a, a)
    same = g.apply(OPS["exp"](), g.apply(OPS["reshape"](shape=(1, s0, 6)), dup))
    col = g.input("col", TensorType(F32, [s0, 1]))
    mixed = g.apply(OPS["add"](), dup, col)
    out = g.apply(OPS["add"](), same, b)  # an anchor after everything
    g.set_outputs([out])
    anchor = out.node
    assert half_of(g, b, 3, anchor) is None
    assert half_of(g, dup, 3, anchor) is a
    h = half_of(g, same, 3, anchor)
    assert h is not None and list(h.type.shape) == [1, s0, 3]
    hm = half_of(g, mixed, 3, anchor)
    assert hm is not None and hm.node.inputs == (a, col)
    bad = g.apply(OPS["concat"](axis=1), a, g.apply(OPS["neg"](), a))
    assert half_of(g, bad, 3, anchor) is None
    c = g.constant([1.0, 2.0, 1.0, 2.0], TensorType(F32, [4]))
    assert list(half_of(g, c, 2, anchor).node.op.value) == [1.0, 2.0]  # type: ignore[union-attr]
    assert half_of(g, g.constant([1.0, 2.0, 2.0, 1.0], TensorType(F32, [4])), 2, anchor) is None
