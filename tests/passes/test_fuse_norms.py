"""fuse_norms: golden Before/Expected cases (RMS and layer norm spellings, the HF cast variant,
what it must leave alone), interpretation within the declared tolerance on the cases and on
random inputs, and the zoo's LLaMA (torch.export and ONNX paths) interpreted before and after."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from lmc.ir import parse_ir, run
from lmc.passes import PASSES, PassContext, Pipeline

from tests.passes.harness import (
    assert_equivalent,
    check_golden,
    golden_paths,
    load_golden,
    reference_runs,
)

GOLDEN = golden_paths("fuse_norms_")
GOLDEN_BY_NAME = {p.stem: p for p in GOLDEN}


def _tolerance() -> tuple[float, float]:
    Pipeline([])  # loads the built-in passes
    tol = PASSES["fuse_norms"].tolerance
    assert tol is not None and tol[0] <= 1e-5, "fuse_norms declares a tight tolerance"
    return tol


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden(path, request) -> None:
    check_golden(path, request.config.getoption("--update-golden"))


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_cases_interpret_the_same(path) -> None:
    case = load_golden(path)
    g = case.graph()
    runs = reference_runs(g)
    assert runs is not None
    out, _ = case.run()
    assert_equivalent(out, runs, _tolerance(), f"fuse_norms on {path.stem}")


def test_enough_cases() -> None:
    assert len(GOLDEN) >= 5


RMS = """graph @rms [s0 in 1..64] {
  %x = input() {index=0} : f32[s0, 96]
  %w = input() {index=1} : f32[96]
  %0 = mul(%x, %x) : f32[s0, 96]
  %1 = reduce_mean(%0) {axes=[1], keepdims=true} : f32[s0, 1]
  %2 = constant() {value=[1e-06]} : f32[]
  %3 = add(%1, %2) : f32[s0, 1]
  %4 = rsqrt(%3) : f32[s0, 1]
  %5 = mul(%x, %4) : f32[s0, 96]
  %6 = mul(%5, %w) : f32[s0, 96]
  return %6
}
"""


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_rms_within_tolerance_on_random_rows(scale) -> None:
    g = parse_ir(RMS)
    out = Pipeline(["fuse_norms"]).run(g, PassContext(check_props=True))
    assert [n.op.name for n in out.nodes] == ["input", "input", "rms_norm"]
    rng = np.random.default_rng(0)
    rtol, atol = _tolerance()
    for rows in (1, 7, 64):
        x = (rng.standard_normal((rows, 96)) * scale).astype(np.float32)
        w = rng.standard_normal(96).astype(np.float32)
        want, got = run(g, [x, w])[0], run(out, [x, w])[0]
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1.0, scale))


def test_stats_count_each_rule() -> None:
    ctx = PassContext()
    Pipeline(["fuse_norms"]).run(load_golden(GOLDEN_BY_NAME["fuse_norms_layer"]).graph(), ctx)
    assert ctx.stats["fuse_norms"] == {
        "layer_norm_decomposed": 1,
        "norm_weight": 1,
        "layer_norm_bias": 1,
    }


# -- the zoo's LLaMA ------------------------------------------------------------------------
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.models import LLAMA, ZOO  # noqa: E402

FUSE = ["fuse_norms", "fuse_rotary", "eliminate_common_subexpressions", "eliminate_dead_nodes"]


@functools.cache
def _zoo_graph(name: str, path: str):
    from lmc.frontend import import_model
    from lmc.passes import DEFAULT_PIPELINE

    if path == "onnx":
        pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
        from lmc.frontend.onnx import import_onnx

        from tests.frontend.test_onnx_models import export

        _, model, dynamic = export(name)
        g, _ = import_onnx(model, dynamic_shapes=dynamic)
    else:
        z = ZOO[name].build()
        g, _ = import_model(z.module, z.example_inputs, dynamic_shapes=z.dynamic_shapes)
    return Pipeline(DEFAULT_PIPELINE).run(g)


def _ops(g) -> list[str]:
    return [n.op.name for n in g.nodes]


@pytest.mark.parametrize(
    "name,path",
    [
        ("llama_prefill", "torch"),
        ("llama_decode", "torch"),
        pytest.param("llama_prefill", "onnx", marks=pytest.mark.slow),
    ],
)
def test_zoo_llama_norms_and_rotary_fuse(name, path) -> None:
    g = _zoo_graph(name, path)
    ctx = PassContext(check_props=True)
    out = Pipeline(FUSE).run(g, ctx)
    layers = LLAMA["num_hidden_layers"]
    ops = _ops(out)
    assert ops.count("rms_norm") == 2 * layers + 1, ops
    assert ops.count("rotary_embedding") == 2 * layers, ops
    for gone in ("pow", "rsqrt", "reciprocal", "reduce_mean", "neg"):
        assert gone not in ops, f"{name} ({path}): {gone} left after fusion"
    stats = ctx.stats
    assert stats["fuse_norms"]["norm_weight"] == 2 * layers + 1
    entry = ZOO[name]
    tol = _tolerance()
    for dims in entry.dim_values:
        inputs = [t.numpy() for t in entry.inputs(seed=4, **dims)]
        for i, (a, b) in enumerate(zip(run(out, inputs), run(g, inputs))):
            scale = max(float(np.abs(b).max()), 1e-12)
            err = float(np.abs(a.astype(np.float64) - b).max()) / scale
            assert err <= tol[0], f"{name} ({path}) {dims} output {i}: {err:.2e} of scale"
