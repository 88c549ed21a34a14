"""Pass equivalence: every case graph interprets the same before and after each pass."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.ir import parse_ir, sym
from lmc.ir.dtypes import DType
from lmc.ir.graph import Graph, Value
from lmc.ir.op import OPS
from lmc.ir.types import TensorType
from lmc.passes import PassContext, Pipeline

from tests.passes.harness import (
    all_case_graphs,
    assert_equivalent,
    golden_paths,
    reference_runs,
    with_random_weights,
)

# (label, pipeline spec, options): each built-in pass alone, folding params, the default.
VARIANTS = [
    ("canonicalize", "canonicalize", {}),
    ("fold_constants", "fold_constants", {}),
    ("fold_params", "fold_constants", {"fold_params": True}),
    ("cse", "eliminate_common_subexpressions", {}),
    ("dce", "eliminate_dead_nodes", {}),
    ("default", "default", {}),
]
CASES = all_case_graphs()


def combined_tolerance(pipe: Pipeline) -> tuple[float, float] | None:
    tols = [p.tolerance for p in pipe.passes if p.tolerance is not None]
    return (max(t[0] for t in tols), max(t[1] for t in tols)) if tols else None


@pytest.mark.parametrize("label,text", CASES, ids=[c[0] for c in CASES])
def test_passes_preserve_interpretation(label: str, text: str) -> None:
    g = with_random_weights(parse_ir(text))
    if g is None:
        pytest.skip("a param has a symbolic shape: no random weights")
    runs = reference_runs(g)
    if runs is None:
        pytest.skip("the graph does not interpret on random inputs")
    for name, spec, options in VARIANTS:
        pipe = Pipeline.from_spec(spec)
        ctx = PassContext(options=dict(options), check_props=True)
        after = pipe.run(g, ctx)
        assert_equivalent(after, runs, combined_tolerance(pipe), f"{label} after {name}")


def test_enough_golden_cases() -> None:
    assert len(golden_paths()) >= 20


def test_every_golden_case_has_a_test_file() -> None:
    prefixes = ("canonicalize_", "fold_", "cse_", "dce_", "pipeline_", "fuse_norms_", "fuse_rot")
    stray = [p.name for p in golden_paths() if not p.name.startswith(prefixes)]
    assert not stray, f"golden cases no test file picks up: {stray}"


# -- random graphs: chains of ops the passes rewrite, checked the same way ----------------------
def _random_step(g: Graph, pool: list[Value], rng: np.random.Generator) -> Value:
    """One random, well-typed op on a random float value of the pool."""
    x = pool[-1] if rng.random() < 0.6 else pool[int(rng.integers(len(pool)))]  # chains
    shape, dt, rank = x.type.shape, x.type.dtype, x.type.rank
    kind = str(rng.choice(KINDS))
    if kind == "unary":
        return g.apply(OPS[str(rng.choice(["neg", "identity", "exp", "relu"]))](), x)
    if kind == "binary":
        c = g.constant([float(rng.choice([0.0, 1.0, 2.0]))], TensorType(dt, ()))
        a, b = (c, x) if rng.random() < 0.5 else (x, c)
        return g.apply(OPS[str(rng.choice(["add", "sub", "mul", "div"]))](), a, b)
    if kind == "cast":
        return g.apply(OPS["cast"](dtype=rng.choice([DType.f16, DType.f32, DType.f64])), x)
    if kind == "transpose" and rank >= 2:
        return g.apply(OPS["transpose"](perm=tuple(int(p) for p in rng.permutation(rank))), x)
    if kind == "reshape" and rank >= 2:
        i = int(rng.integers(rank - 1))
        merged = shape[:i] + (shape[i] * shape[i + 1],) + shape[i + 2 :]
        return g.apply(OPS["reshape"](shape=merged), x)
    if kind == "unsqueeze":
        return g.apply(OPS["unsqueeze"](axes=(int(rng.integers(rank + 1)),)), x)
    if kind == "squeeze" and 1 in shape:
        return g.apply(OPS["squeeze"](axes=(shape.index(1),)), x)
    if kind == "expand":
        return g.apply(OPS["expand"](shape=shape), x)
    if kind == "slice" and rank >= 1:
        ax = int(rng.integers(rank))
        return g.apply(OPS["slice"](axes=(ax,), starts=(0,), ends=(shape[ax],), steps=(1,)), x)
    if kind == "concat_split" and rank >= 1:
        y = g.apply(OPS["split"](axis=0, sizes=(shape[0],)), x)
        return g.apply(OPS["concat"](axis=0), y)
    return g.apply(OPS["add"](), x, x)  # also a CSE opportunity when repeated


KINDS = [
    "unary",
    "binary",
    "cast",
    "transpose",
    "reshape",
    "unsqueeze",
    "squeeze",
    "expand",
    "slice",
    "concat_split",
    "twice",
]


def random_graph(seed: int) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(f"random{seed}", {"s0": (1, 6)})
    pool = [g.input("x", TensorType(DType.f32, (sym("s0"), 2, 3)))]
    for _ in range(12):
        pool.append(_random_step(g, pool, rng))
    size = g.apply(OPS["shape"](), pool[-1])
    g.set_outputs([pool[-1], pool[int(rng.integers(1, len(pool)))], size])
    return g


@pytest.mark.parametrize("seed", range(24))
def test_random_graphs(seed: int) -> None:
    g = random_graph(seed)
    runs = reference_runs(g)
    assert runs is not None
    for name, spec, options in VARIANTS:
        ctx = PassContext(options=dict(options), check_props=True)
        after = Pipeline.from_spec(spec).run(g, ctx)
        assert_equivalent(after, runs, None, f"random graph {seed} after {name}")
