"""fold_attention_layout and merge_sibling_linears (C lowering): an HF LLaMA-style attention
block loses every transpose, its GQA repeat and its split copies; the rewrites are exact under
the interpreter, refuse what they must, and the built artifact reads q / k / v as strided
[B, S, H, D] views through one multi-piece GEMM and agrees with the reference."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.backends.c.build import BACKEND_PASSES, build_artifact
from lmc.ir import DType, Graph, TensorType, print_graph, run, sym
from lmc.ir.op import OPS
from lmc.passes import PassContext, Pipeline
from lmc.runtime.artifact import read_manifest

from tests.passes.harness import EXACT_TOLERANCE, assert_equivalent, reference_runs

from .hostbuild import check_host, needs_cc

F32 = DType.f32
HID, HEADS, KV, D, FFN = 64, 4, 2, 16, 96


def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.2).astype(np.float32)


def llama_block(heads: int = HEADS, kv: int = KV, bias: bool = False) -> Graph:
    """One HF LLaMA decoder layer as torch.export leaves it after the default passes (rotary
    already fused): q/k/v linears, reshape + transpose to [B, H, S, D], rotary, repeat_kv,
    attention with a bool causal mask, transpose back, o_proj; then the SwiGLU MLP."""
    rng = np.random.default_rng(0)
    b, s = sym("batch"), sym("seq")
    g = Graph("block", {"batch": (1, 3), "seq": (1, 40)})
    x = g.input("x", TensorType(F32, [b, s, HID]))
    mask = g.input("mask", TensorType(DType.bool, [b, 1, s, s]))
    cos = g.input("cos", TensorType(F32, [1, 1, s, D // 2]))
    sin = g.input("sin", TensorType(F32, [1, 1, s, D // 2]))
    op = OPS

    def proj(name: str, n: int) -> object:
        ins = [x, g.param(f"{name}.weight", _w(rng, n, HID))]
        if bias:
            ins.append(g.param(f"{name}.bias", _w(rng, n)))
        y = g.apply(op["linear"](), *ins)
        y = g.apply(op["reshape"](shape=(b, s, n // D, D)), y)
        return g.apply(op["transpose"](perm=(0, 2, 1, 3)), y)

    q, k, v = proj("q", heads * D), proj("k", kv * D), proj("v", kv * D)
    q = g.apply(op["rotary_embedding"](), q, cos, sin)
    k = g.apply(op["rotary_embedding"](), k, cos, sin)
    rep = heads // kv

    def repeat_kv(t):
        if rep == 1:
            return t
        t = g.apply(op["unsqueeze"](axes=(2,)), t)
        t = g.apply(op["expand"](shape=(b, kv, rep, s, D)), t)
        return g.apply(op["reshape"](shape=(b, heads, s, D)), t)

    a = g.apply(op["attention"](scale=D**-0.5), q, repeat_kv(k), repeat_kv(v), mask)
    a = g.apply(op["transpose"](perm=(0, 2, 1, 3)), a)
    a = g.apply(op["reshape"](shape=(b, s, heads * D)), a)
    h = g.apply(op["add"](), x, g.apply(op["linear"](), a, g.param("o", _w(rng, HID, heads * D))))
    gate = g.apply(op["linear"](), h, g.param("gate", _w(rng, FFN, HID)))
    up = g.apply(op["linear"](), h, g.param("up", _w(rng, FFN, HID)))
    m = g.apply(op["mul"](), g.apply(op["silu"](), gate), up)
    g.set_outputs(
        [g.apply(op["add"](), h, g.apply(op["linear"](), m, g.param("down", _w(rng, HID, FFN))))]
    )
    return g


def _causal_inputs(g: Graph, env: dict, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    b, s = env["batch"], env["seq"]
    pos = np.arange(s, dtype=np.float32)[:, None] * rng.random(D // 2).astype(np.float32)
    return [
        rng.standard_normal((b, s, HID)).astype(np.float32),
        np.broadcast_to(np.tril(np.ones((s, s), bool)), (b, 1, s, s)).copy(),
        np.cos(pos)[None, None],
        np.sin(pos)[None, None],
    ]


def _ops(g: Graph) -> list[str]:
    return [n.op.name for n in g.nodes]


@pytest.mark.parametrize("heads,kv", [(4, 2), (4, 4), (4, 1)])
def test_block_loses_transposes_repeats_and_split_copies(heads, kv) -> None:
    g = llama_block(heads, kv)
    ctx = PassContext(check_props=True)
    out = Pipeline(BACKEND_PASSES).run(g, ctx)
    ops = _ops(out)
    assert "transpose" not in ops and "expand" not in ops and "unsqueeze" not in ops, ops
    assert ops.count("fused_attention") == 1 and ops.count("linear_split") == 1, ops
    fa = next(n for n in out.nodes if n.op.name == "fused_attention")
    # one kv head: [B, S, 1, D] -> [B, 1, S, D] only moves a size-1 axis (a reshape, a view)
    assert (fa.op.q_t, fa.op.k_t, fa.op.v_t, fa.op.out_t) == (True, kv > 1, kv > 1, True)
    assert fa.inputs[1].type.shape[-3 + (kv > 1)] == kv, "GQA: k keeps its kv heads"
    split = next(n for n in out.nodes if n.op.name == "linear_split")
    assert split.op.sizes == (heads * D, kv * D, kv * D)
    assert split.inputs[1].node.op.key == "q.weight+k.weight+v.weight"
    assert {"q.weight", "k.weight", "v.weight"}.isdisjoint(out.weights)
    w = out.weights["q.weight+k.weight+v.weight"]
    assert np.array_equal(w[: heads * D], g.weights["q.weight"])
    # gate / up keep their epilogue fusion instead of merging
    assert any(n.op.name == "fused_linear" and "silu" in n.op.epilogue for n in out.nodes)
    stats = ctx.stats
    assert stats["merge_sibling_linears"]["linears_merged"] == 3
    for env in ({"batch": 1, "seq": 7}, {"batch": 2, "seq": 33}):
        inputs = _causal_inputs(g, env)
        assert _scale_error(run(out, inputs)[0], run(g, inputs)[0]) <= 1e-5, env


def _scale_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| as a fraction of max |b| (sums that cancel make elementwise rtol
    meaningless for reordered dot products)."""
    return float(np.abs(a.astype(np.float64) - b).max() / max(float(np.abs(b).max()), 1e-30))


def test_layout_pass_is_exact_and_merge_within_tolerance() -> None:
    g = llama_block()
    for passes, exact in ((["fold_attention_layout"], True), (["merge_sibling_linears"], False)):
        out = Pipeline(passes).run(g, PassContext(check_props=True))
        for env in ({"batch": 1, "seq": 5}, {"batch": 3, "seq": 12}):
            inputs = _causal_inputs(g, env, seed=1)
            got, want = run(out, inputs)[0], run(g, inputs)[0]
            if exact:
                assert np.array_equal(got, want), passes
            else:
                assert _scale_error(got, want) <= 1e-6, passes


def test_merge_refusals() -> None:
    g = llama_block()
    off = Pipeline(["merge_sibling_linears"]).run(g, PassContext(options={"kernels": False}))
    assert "linear_split" not in _ops(off)
    off = Pipeline(["merge_sibling_linears"]).run(g, PassContext(options={"merge_linears": False}))
    assert "linear_split" not in _ops(off)
    biased = Pipeline(["merge_sibling_linears"]).run(llama_block(bias=True), PassContext())
    split = next(n for n in biased.nodes if n.op.name == "linear_split")
    assert len(split.inputs) == 3 and split.inputs[2].node.op.key == "q.bias+k.bias+v.bias"


def test_merge_puts_unaligned_pieces_last() -> None:
    s0 = sym("s0")
    g = Graph("odd", {"s0": (1, 9)})
    x = g.input("x", TensorType(F32, [s0, 8]))
    rng = np.random.default_rng(1)
    outs = [g.apply(OPS["linear"](), x, g.param(f"w{n}", _w(rng, n, 8))) for n in (5, 16, 7, 32)]
    g.set_outputs(outs)
    out = Pipeline(["merge_sibling_linears"]).run(g, PassContext(check_props=True))
    split = [n for n in out.nodes if n.op.name == "linear_split"]
    assert len(split) == 1 and split[0].op.sizes == (16, 32, 5)
    assert _ops(out).count("linear") == 1  # w7: a second unaligned piece stays alone
    runs = reference_runs(g)
    assert_equivalent(out, runs, (1e-5, 1e-6), "merge with unaligned pieces")


def test_unit_axis_transpose_becomes_reshape_and_shared_transpose_stays() -> None:
    s0 = sym("s0")
    g = Graph("unit", {"s0": (1, 9)})
    x = g.input("x", TensorType(F32, [1, s0, 1, 4]))
    y = g.input("y", TensorType(F32, [2, s0, 3, 4]))
    c = g.input("c", TensorType(F32, [s0, 2]))
    unit = g.apply(OPS["transpose"](perm=(2, 1, 0, 3)), x)
    shared = g.apply(OPS["transpose"](perm=(0, 2, 1, 3)), y)  # read twice: stays put
    r = g.apply(OPS["rotary_embedding"](), shared, c, c)
    g.set_outputs([unit, r, shared])
    out = Pipeline(["fold_attention_layout"]).run(g, PassContext(check_props=True))
    assert _ops(out) == ["input", "input", "input", "reshape", "transpose", "rotary_embedding"]
    assert_equivalent(out, reference_runs(g), EXACT_TOLERANCE, "unit transposes")


@needs_cc
@pytest.mark.parametrize("heads,kv", [(4, 2), (4, 4)])
def test_block_on_host_reads_strided_views(heads, kv, tmp_path) -> None:
    g = llama_block(heads, kv)
    res = build_artifact(g, "host", tmp_path / "block")
    code = (res.directory / "src" / "model.c").read_text(encoding="utf-8")
    assert "lmc_gemm_f32_packed_multi(" in code and code.count("lmc_gemm_piece pieces[3]") == 1
    assert f"a.q_sh = {D}; a.q_ss = {heads * D};" in code  # q read as [B, S, H, D]
    assert f"a.k_sh = {D}; a.k_ss = {kv * D};" in code
    assert f"a.o_sh = {D}; a.o_ss = {heads * D};" in code  # result written as [B, S, H, D]
    assert "transpose" not in print_graph(res.graph)
    meta = read_manifest(res.directory)
    assert meta["passes"]["stats"]["merge_sibling_linears"]["groups"] == 1
    from lmc.runtime.host import host_runner

    with host_runner(res.directory, meta, num_threads=2) as r:
        for env in ({"batch": 1, "seq": 1}, {"batch": 1, "seq": 6}, {"batch": 3, "seq": 40}):
            inputs = _causal_inputs(g, env, seed=env["seq"])
            got, want = r.run(inputs)[0], run(g, inputs)[0]
            assert _scale_error(got, want) <= 1e-5, env


@needs_cc
def test_block_on_host_with_plain_loops() -> None:
    check_host(llama_block(), {"kernels": False}, label="block (plain loops)")
