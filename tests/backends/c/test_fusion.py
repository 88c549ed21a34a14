"""Kernel grouping (group_kernels) and the fused ops: pass equivalence against the interpreter on
every case graph and on real models, the decisions it makes and refuses, the expression text,
and fused kernels with every epilogue operand pattern compiled for host."""

from __future__ import annotations

import pytest
from lmc.backends.c.build import BACKEND_PASSES
from lmc.backends.c.group_kernels import group_kernels
from lmc.ir import OPS, DType, Graph, TensorType, parse_ir, print_graph, sym, verify
from lmc.ir.errors import IRTypeError
from lmc.ir.ops.fused import FusedElementwise, format_expr, parse_expr
from lmc.passes import DEFAULT_PIPELINE, PassContext, Pipeline

from tests.passes.harness import EXACT_TOLERANCE, assert_equivalent, reference_runs

from .hostbuild import CASES, case_graph, check_host, needs_cc

F32 = DType.f32


def _op_names(g: Graph) -> list[str]:
    return [n.op.name for n in g.nodes]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_grouping_is_exact_on_cases(path):
    g = case_graph(path)
    runs = reference_runs(g)
    assert runs is not None
    out = Pipeline([group_kernels]).run(g, PassContext(check_props=True))
    assert_equivalent(out, runs, EXACT_TOLERANCE, f"group_kernels on {path.stem}")


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_backend_pipeline_is_equivalent_on_cases(path):
    g = case_graph(path)
    runs = reference_runs(g)
    out = Pipeline(BACKEND_PASSES).run(g, PassContext(check_props=True))
    assert_equivalent(out, runs, (1e-5, 1e-6), f"backend passes on {path.stem}")
    assert print_graph(parse_ir(print_graph(out))) == print_graph(out), "grouped IR round-trips"


def _mlp() -> Graph:
    s0 = sym("s0")
    g = Graph("mlp", {"s0": (1, 16)})
    x = g.input("x", TensorType(F32, [s0, 8]))
    r = g.input("r", TensorType(F32, [s0, 16]))
    w = g.input("w", TensorType(F32, [16, 8]))
    b = g.input("b", TensorType(F32, [16]))
    h = g.apply(OPS["linear"](), x, w, b)
    h = g.apply(OPS["gelu"](approximate="tanh"), h)
    h = g.apply(OPS["add"](), h, r)
    e = g.apply(OPS["exp"](), g.apply(OPS["neg"](), x))
    g.set_outputs([h, g.apply(OPS["mul"](), e, e)])
    return g


FUSED_LINEAR = (
    '%0 = fused_linear(%x, %w, %b, %r) {bias=true, epilogue="add(gelu{approximate=\\"tanh\\"}'
    '(x0), x1)"} : f32[s0, 16]'
)
EXPECTED_MLP = f"""graph @mlp [s0 in 1..16] {{
  %x = input() {{index=0}} : f32[s0, 8]
  %r = input() {{index=1}} : f32[s0, 16]
  %w = input() {{index=2}} : f32[16, 8]
  %b = input() {{index=3}} : f32[16]
  {FUSED_LINEAR}
  %1 = fused_elementwise(%x) {{expr="mul(exp(neg(x0)), exp(neg(x0)))"}} : f32[s0, 8]
  return %0, %1
}}
"""


def test_grouping_golden():
    out = Pipeline([group_kernels]).run(_mlp(), PassContext())
    assert print_graph(out) == EXPECTED_MLP


def test_grouping_refuses_shared_outputs_and_broadcasts():
    s0 = sym("s0")
    g = Graph("refuse", {"s0": (1, 16)})
    x = g.input("x", TensorType(F32, [s0, 4]))
    c = g.input("c", TensorType(F32, [s0, 1]))
    a = g.apply(OPS["exp"](), x)  # read by two kernels: must stay
    b = g.apply(OPS["neg"](), a)
    col = g.apply(OPS["sqrt"](), c)  # a smaller shape than its reader: not fused into it
    y = g.apply(OPS["add"](), g.apply(OPS["relu"](), a), col)
    out_mid = g.apply(OPS["tanh"](), x)  # a graph output: must stay
    g.set_outputs([b, y, out_mid, g.apply(OPS["abs"](), out_mid)])
    ctx = PassContext()
    out = Pipeline([group_kernels]).run(g, ctx)
    names = _op_names(out)
    assert "exp" in names and "sqrt" in names and "tanh" in names
    assert any('expr="add(relu(x0), x1)"' in line for line in print_graph(out).splitlines())
    assert ctx.stats["group_kernels"]["fused_elementwise"] == 1


def test_expression_text():
    for text in [
        "gelu(add(x0, x1))",
        'gelu{approximate="tanh"}(x0)',
        "cast{dtype=i8}(x0)",
        "clip{min=-0.5, max=inf}(x0)",
        "where(x0, x1, leaky_relu{alpha=0.2}(x2))",
    ]:
        assert format_expr(parse_expr(text)) == text
    for bad in [
        "",
        "linear(x0)",
        "gelu(x0",
        "gelu(x0) x1",
        "gelu{alpha=1.0}(x0)",
        "x",
        "add(x0)",
        "gelu(x0, x1)",
        '*/ system("x"); /*',
    ]:
        with pytest.raises(IRTypeError):
            FusedElementwise(bad).infer(TensorType(F32, [2]), TensorType(F32, [2]))


def _model_graph(name: str) -> tuple[Graph, object]:
    pytest.importorskip("torch")
    from lmc.frontend import import_model

    from tests.models import ZOO

    entry = ZOO[name]
    m = entry.build()
    g, _ = import_model(m.module, m.example_inputs, dynamic_shapes=m.dynamic_shapes)
    return Pipeline(DEFAULT_PIPELINE).run(g), entry


@pytest.mark.slow
@pytest.mark.parametrize("name,fused", [("resnet", "fused_conv"), ("gpt2", "fused_matmul")])
def test_grouping_on_real_models(name, fused):
    g, entry = _model_graph(name)
    ctx = PassContext(check_props=True)
    out = Pipeline(BACKEND_PASSES).run(g, ctx)
    assert fused in _op_names(out), f"{name}: no {fused} after grouping"
    assert ctx.stats["group_kernels"]["epilogues"] >= 1
    from lmc.ir import run

    from tests.util import assert_close

    for dims in entry.dim_values:
        ins = [t.numpy() for t in entry.inputs(**dims)]
        for a, b in zip(run(out, ins), run(g, ins)):
            assert_close(a, b, 1e-5, 1e-6, name=f"{name} grouped at {dims}")
    if name == "resnet":
        _check_model_on_host(g, entry)


def _check_model_on_host(g: Graph, entry) -> None:
    from lmc.ir import run

    from tests.util import assert_close

    from .hostbuild import CC, build, runner

    if CC is None:
        return
    out, res = build(g)
    assert "fused_conv" in _op_names(res.graph)
    r = runner(out)
    for dims in entry.dim_values:
        ins = [t.numpy() for t in entry.inputs(**dims)]
        for a, b in zip(r.run(ins), run(g, ins)):
            assert_close(a, b, 1e-4, 1e-4, name=f"resnet on host at {dims}")
    r.close()


def epilogue_graph() -> Graph:
    """Fused linear / matmul / conv epilogues reading extras of every broadcast pattern: full,
    per column, per row, scalar, bool, per channel, and batch-broadcast matmul operands."""
    s0 = sym("s0")
    g = Graph("epilogues", {"s0": (2, 24)})
    x = g.input("x", TensorType(F32, [2, s0, 8]))
    w = g.param("w", type=TensorType(F32, [16, 8]))
    full = g.input("full", TensorType(F32, [2, s0, 16]))
    col = g.input("col", TensorType(F32, [16]))
    row = g.input("row", TensorType(F32, [s0, 1]))
    mask = g.input("mask", TensorType(DType.bool, [2, 1, 16]))
    h = g.apply(OPS["linear"](), x, w)
    h = g.apply(OPS["mul"](), g.apply(OPS["add"](), h, full), col)
    h = g.apply(OPS["sub"](), h, row)
    h = g.apply(OPS["where"](), mask, h, g.apply(OPS["silu"](), h))
    bm = g.input("bm", TensorType(F32, [1, 16, 5]))
    m = g.apply(OPS["matmul"](), h, bm)
    m = g.apply(OPS["tanh"](), g.apply(OPS["add"](), m, g.constant((0.5,), TensorType(F32, ()))))
    img = g.input("img", TensorType(F32, [2, 3, s0, 6]))
    k = g.param("k", type=TensorType(F32, [4, 3, 3, 3]))
    kb = g.param("kb", type=TensorType(F32, [4]))
    res = g.input("res", TensorType(F32, [2, 4, s0, 6]))
    mean, var = (g.param(n, type=TensorType(F32, [4])) for n in ("mean", "var"))
    c = g.apply(OPS["conv"](padding=(1, 1, 1, 1)), img, k, kb)
    c = g.apply(OPS["batch_norm"](), c, kb, kb, mean, g.apply(OPS["abs"](), var))
    c = g.apply(OPS["relu"](), g.apply(OPS["add"](), c, res))
    g.set_outputs([m, c])
    verify(g)
    from tests.passes.harness import with_random_weights

    return with_random_weights(g)  # type: ignore[return-value]


@needs_cc
@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "plain"])
def test_fused_epilogues_on_host(kernels):
    g = epilogue_graph()
    out = check_host(g, {"kernels": kernels}, label=f"epilogues kernels={kernels}")
    text = (out / "model.lmc").read_text()
    for op in ("fused_linear", "fused_matmul", "fused_conv"):
        assert op in text, f"{op} missing:\n{text}"
    assert "_epi(void *ctx" in (out / "src" / "model.c").read_text() or not kernels
