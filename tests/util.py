"""Shared test helpers: llm.c-style closeness reports, tolerances, random inputs for graphs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from lmc.ir.dtypes import DType
from lmc.ir.graph import Graph
from lmc.ir.shapes import evaluate

# (backend, dtype) -> (rtol, atol). Overrides in a test say why.
TOLERANCES: dict[tuple[str, DType], tuple[float, float]] = {
    ("reference", DType.f64): (1e-10, 1e-12),
    ("reference", DType.f32): (1e-5, 1e-6),
    ("reference", DType.f16): (1e-2, 1e-3),
    ("reference", DType.bf16): (2e-2, 1e-2),
    ("torch", DType.f64): (1e-9, 1e-11),
    ("torch", DType.f32): (1e-4, 1e-5),
    ("torch", DType.f16): (1e-2, 1e-2),
    ("torch", DType.bf16): (2e-2, 2e-2),
    # host C: sums in another order, the kernel library's polynomial exp/tanh/erf (~2 ulp)
    ("host", DType.f64): (1e-9, 1e-11),
    ("host", DType.f32): (1e-4, 1e-5),
    ("host", DType.f16): (1e-2, 1e-2),
    ("host", DType.bf16): (2e-2, 2e-2),
    # wasm32: the host's kernels without FMA (SIMD128 has none): one rounding more per product
    ("wasm32", DType.f64): (1e-9, 1e-11),
    ("wasm32", DType.f32): (1e-4, 1e-5),
    ("wasm32", DType.f16): (1e-2, 1e-2),
    ("wasm32", DType.bf16): (2e-2, 2e-2),
    # arm64 (NEON under qemu): the host library's algorithms, other sum orders and FMA use
    ("arm64", DType.f64): (1e-9, 1e-11),
    ("arm64", DType.f32): (1e-4, 1e-5),
    ("arm64", DType.f16): (1e-2, 1e-2),
    ("arm64", DType.bf16): (2e-2, 2e-2),
}


def tolerance(backend: str, dtype: DType) -> tuple[float, float]:
    return TOLERANCES.get((backend, dtype), (0.0, 0.0))


def assert_close(actual, expected, rtol: float = 1e-5, atol: float = 1e-6, name: str = "") -> None:
    """Assert allclose; on failure report max abs/rel error, the worst index and values."""
    a, e = np.asarray(actual), np.asarray(expected)
    label = f"[{name}] " if name else ""
    assert a.shape == e.shape, f"{label}shape {a.shape} != expected {e.shape}"
    if a.dtype == np.bool_ or e.dtype == np.bool_ or np.issubdtype(e.dtype, np.integer):
        bad = np.argwhere(a != e)
        assert bad.size == 0, (
            f"{label}{len(bad)} of {a.size} elements differ; first at "
            f"{tuple(bad[0])}: got {a[tuple(bad[0])]}, want {e[tuple(bad[0])]}"
        )
        return
    af, ef = a.astype(np.float64), e.astype(np.float64)
    same_nan = np.isnan(af) & np.isnan(ef)
    same_inf = np.isinf(af) & (af == ef)
    diff = np.where(same_nan | same_inf, 0.0, np.abs(af - ef))
    diff = np.where(np.isnan(diff), np.inf, diff)
    ok = diff <= atol + rtol * np.abs(np.where(same_inf | same_nan, 0, ef))
    if ok.all():
        return
    worst = np.unravel_index(np.argmax(np.where(ok, 0, diff)), diff.shape) if diff.ndim else ()
    rel = diff / np.maximum(np.abs(ef), 1e-30)
    firsts = "\n".join(
        f"    {x: .6g}  {y: .6g}" for x, y in zip(af.reshape(-1)[:5], ef.reshape(-1)[:5])
    )
    raise AssertionError(
        f"{label}mismatch: {int((~ok).sum())} of {a.size} elements off (rtol={rtol}, "
        f"atol={atol})\n  max abs diff {diff.max():.3g}, max rel diff {rel.max():.3g}\n"
        f"  worst at {tuple(int(i) for i in worst)}: got {af[worst]!r}, want {ef[worst]!r}\n"
        f"  first values (got, want):\n{firsts}"
    )


def random_array(shape: tuple[int, ...], dtype: DType, rng: np.random.Generator) -> np.ndarray:
    if dtype.is_float:
        return rng.standard_normal(shape).astype(dtype.np)
    if dtype == DType.bool:
        return rng.random(shape) < 0.5
    lo, hi = (0, 4) if not dtype.is_signed else (-4, 5)
    return rng.integers(lo, hi, size=shape).astype(dtype.np)


def random_inputs(g: Graph, env: Mapping[str, int], seed: int = 0) -> list[np.ndarray]:
    """Random inputs for every graph input with symbols bound by env."""
    rng = np.random.default_rng(seed)
    return [
        random_array(tuple(evaluate(d, env) for d in v.type.shape), v.type.dtype, rng)
        for v in g.inputs
    ]


def symbol_values(g: Graph) -> list[dict[str, int]]:
    """Two or three environments per graph: small, another small, and the lower bounds."""
    envs = []
    for pick in (
        lambda lo, hi: min(hi, max(lo, 3)),
        lambda lo, hi: min(hi, max(lo, 5)),
        lambda lo, hi: lo,
    ):
        env = {s: pick(lo, hi) for s, (lo, hi) in g.symbols.items()}
        if env not in envs:
            envs.append(env)
    return envs
