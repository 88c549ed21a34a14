"""Quantization quality on all-MiniLM-L6-v2 (real weights, its own tokenizer, offline):
sentence-embedding cosine against the float model, minimum over 18 varied sentences that the
calibration set (96 other sentences, ~2000 tokens) does not contain; GPTQ against
round-to-nearest per layer and end to end; the mixed-precision budget.

Measured (reference interpreter): W8A8 per-token 0.9964, W8A8 + SmoothQuant 0.9978; W4 g128
RTN 0.9345 (with clip search 0.9449), GPTQ 0.9750 (act-order 0.9773). GPTQ's default for W4
(clip-ratio search per group, damping 0.1·mean(diag H)) and the larger calibration set took it
from 0.9545: with 32 sentences (~550 tokens) the 1536-input FFN-down Hessian is rank-deficient
and GPTQ over-fits it (held-out layer errors 1.5-2.5x the calibration ones); damping 0.1
regularizes that. Sequential quantization (Hessians from the quantized prefix) gave nothing
(0.9547) at 10x the time. Every W4 g128 layer still loses ~4-8% output accuracy and the
losses add up over 36 linears, so W4 on this small model stays under 0.99 unless the budget
keeps the most damaged layers in float. Measured beside these tests (README "Status"): 0.99
needs every layer's error 0.63x smaller; AWQ-style scaling before GPTQ reaches 0.980,
end-to-end tuning of scales and rounding in PyTorch 0.9814 (260 s), calibrating on the
evaluation sentences themselves 0.986."""

from __future__ import annotations

import time

import numpy as np
import pytest
from lmc import compile as lmc_compile
from lmc.passes import PassContext, Pipeline
from lmc.passes.calibration import make_calibration

from tests.passes.quant_models import calibration_set, embed, min_cosine, minilm_graph

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def float_model():
    g = minilm_graph()
    return g, embed(g)


@pytest.fixture(scope="module")
def w4(float_model):
    """RTN and GPTQ (g128) compiled from one calibration record (same graph, same data)."""
    g, _ = float_model
    cal = make_calibration(g, calibration_set())
    rtn = lmc_compile(g, quantize="w4-rtn-g128", calibration=cal)
    t0 = time.perf_counter()
    gptq = lmc_compile(g, quantize="w4-gptq-g128", calibration=cal)
    gptq_seconds = gptq.pass_context.timings["quantize_weights_gptq"]
    total = time.perf_counter() - t0
    print(f"GPTQ of MiniLM (36 linears): {gptq_seconds:.1f} s; compile {total:.1f} s")
    return rtn, gptq


@pytest.mark.parametrize("spec,floor", [("w8a8", 0.995), ("w8a8-smooth", 0.995)])
def test_w8a8_sentence_embeddings_stay_close(float_model, spec, floor):
    g, ref = float_model
    m = lmc_compile(g, quantize=spec, calibration=calibration_set())
    ops = [n.op.name for n in m.graph.nodes]
    assert ops.count("linear_w8a8") == 36 and "linear" not in ops
    cos = min_cosine(embed(m.graph), ref)
    print(f"{spec}: min cosine {cos:.4f}")
    assert cos >= floor
    stats = m.quant_stats
    assert len(stats) == 36 and all(s["kind"] == "w8a8" for s in stats.values())
    assert min(s["output_cos"] for s in stats.values()) > 0.999


def test_gptq_beats_rtn_on_every_layer_and_end_to_end(float_model, w4):
    _, ref = float_model
    rtn, gptq = w4
    r, q = rtn.quant_stats, gptq.quant_stats
    assert set(r) == set(q) and len(q) == 36
    worse = [k for k in q if q[k]["output_rel_err"] >= r[k]["output_rel_err"]]
    assert not worse, f"GPTQ not below RTN on {worse}"
    ratio = [q[k]["output_rel_err"] / r[k]["output_rel_err"] for k in q]
    print(f"GPTQ/RTN per-layer output error: mean {np.mean(ratio):.2f}, max {max(ratio):.2f}")
    cos_r, cos_q = min_cosine(embed(rtn.graph), ref), min_cosine(embed(gptq.graph), ref)
    print(f"w4 g128 min cosine: RTN {cos_r:.4f}, GPTQ {cos_q:.4f}")
    assert cos_q > cos_r + 0.01
    assert cos_q >= 0.97
    assert sum(n.op.name == "linear_w4" for n in gptq.graph.nodes) == 36


def test_budget_keeps_the_worst_w4_layers_float(float_model, w4):
    g, ref = float_model
    _, gptq = w4
    ctx = PassContext(options={"quantize": "w4-gptq-g128,budget=0.04"})
    ctx.calibration = gptq.pass_context.calibration
    with pytest.warns(UserWarning, match="kept in float"):
        mixed = Pipeline(["keep_sensitive_float"]).run(gptq.graph, ctx)
    reverted = ctx.stats["keep_sensitive_float"]["reverted"]
    n_w4 = sum(n.op.name == "linear_w4" for n in mixed.nodes)
    assert reverted and n_w4 == 36 - len(reverted)
    cos = min_cosine(embed(mixed), ref)
    print(f"w4 g128 GPTQ with budget 0.04: {len(reverted)} layers float, min cosine {cos:.4f}")
    assert cos > min_cosine(embed(gptq.graph), ref)


def test_w4a8_costs_little_over_w4(float_model, w4):
    """W4A8 keeps GPTQ's int4 weights and quantizes activations per token: measured min
    cosine 0.9715 against W4's 0.9750."""
    g, ref = float_model
    _, gptq = w4
    m = lmc_compile(g, quantize="w4a8-gptq-g128", calibration=gptq.pass_context.calibration)
    assert sum(n.op.name == "linear_w4a8" for n in m.graph.nodes) == 36
    cos, cos_w4 = min_cosine(embed(m.graph), ref), min_cosine(embed(gptq.graph), ref)
    print(f"w4a8 g128 GPTQ min cosine {cos:.4f} (w4 {cos_w4:.4f})")
    assert cos_w4 - 0.01 < cos <= cos_w4 + 0.002
    assert all(s["kind"] == "w4a8" for s in m.quant_stats.values())
