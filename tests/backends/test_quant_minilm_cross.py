"""all-MiniLM-L6-v2 (real weights) quantized W4-GPTQ (g128) and W8A8 and built for the arm64
(NEON + dotprod's sdot, under qemu) and wasm32 (SIMD128, through wasmtime) targets with
lmc.compile(..., quantize=..., calibration=...), against the quantized graph run by the
reference interpreter on sentences the calibration did not see; the whole-model counterpart of
the host test (tests/backends/c/test_quant_minilm_host.py).

W4 agrees within float rounding. W8A8 can land on a neighbouring int8 code where an activation
sits on a rounding tie of x / sx (the targets' f32 norms and softmax differ from numpy's in the
last bits), so it is held to the host test's bounds: cosine to the quantized reference, and the
same distance to float as the reference's own."""

from __future__ import annotations

import numpy as np
import pytest
from lmc import compile as lmc_compile
from lmc.ir import run
from lmc.passes.calibration import make_calibration

from tests.backends.arm64.arm64build import needs_arm64
from tests.backends.wasm32.wasmbuild import needs_wasm
from tests.passes.quant_models import (
    EVAL_SENTENCES,
    calibration_set,
    min_cosine,
    minilm_graph,
    tokenize,
)

pytestmark = pytest.mark.slow
TARGETS = [
    pytest.param("arm64+dotprod", marks=needs_arm64),
    pytest.param("wasm32", marks=needs_wasm),
]
KERNELS = {"w4-gptq-g128": "linear_w4", "w8a8": "linear_w8a8"}


@pytest.fixture(scope="module")
def setup():
    g = minilm_graph()
    cal = make_calibration(g, calibration_set())
    inputs = tokenize(EVAL_SENTENCES[9:13])  # 4 sentences, short enough for qemu
    quantized = {}  # spec -> the quantized graph (GPTQ once for both targets)

    def quantize(spec: str):
        if spec not in quantized:
            quantized[spec] = lmc_compile(g, quantize=spec, calibration=cal).graph
        return quantized[spec]

    return quantize, inputs, run(g, inputs)[0]


@pytest.mark.parametrize("spec", list(KERNELS))
@pytest.mark.parametrize("target", TARGETS)
def test_quantized_minilm_matches_the_quantized_graph(setup, target: str, spec: str) -> None:
    quantize, inputs, ref = setup
    q = quantize(spec)
    assert sum(n.op.name == KERNELS[spec] for n in q.nodes) == 36
    m = lmc_compile(q, target=target)  # the target's passes on the quantized graph
    try:
        assert m.target == target
        assert sum(n.op.name == KERNELS[spec] for n in m.graph.nodes) == 36
        got, want = m(*inputs), run(m.graph, inputs)[0]
    finally:
        m.close()
    assert got.shape == want.shape and np.isfinite(got).all()
    if spec.startswith("w4"):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    else:
        assert min_cosine(got, want) > 0.99
        assert abs(min_cosine(got, ref) - min_cosine(want, ref)) < 0.005
