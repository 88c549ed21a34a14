"""Quantization passes on small graphs: spec parsing, calibration (statistics, errors), GPTQ's
algebra, equivalence within each pass's declared tolerance, smoothing folds, mixed precision,
per-layer stats and lmc.compile(quantize=..., calibration=...)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lmc import compile as lmc_compile
from lmc.ir import DType, Graph, TensorType, parse_ir, print_graph, run, sym
from lmc.ir.ops.activation import Relu
from lmc.ir.ops.elementwise import Mul
from lmc.ir.ops.linalg import Linear, Matmul
from lmc.ir.ops.nn import LayerNorm, RmsNorm
from lmc.passes import PASSES, PassContext, Pipeline
from lmc.passes.calibration import (
    SAMPLE_ROWS,
    CalibrationError,
    TensorStats,
    make_calibration,
    record,
)
from lmc.passes.quant_layers import Grid, quant_stats, quantize_rtn
from lmc.passes.quant_spec import VALID_FORMS, QuantSpecError, parse_quant_spec
from lmc.passes.quantize_weights_gptq import gptq, inverse_cholesky

from tests.util import assert_close

RNG = np.random.default_rng(0)
T = TensorType
s0 = sym("s0")


def _f32(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def mlp(norm: str = "layer_norm", residual: bool = False) -> Graph:
    """x -> norm -> fc1 (+bias) -> relu -> matmul by a stored [in, out] weight (fc2); with
    `residual` the norm's output is a graph output too (read by more than the linears)."""
    g = Graph("mlp", {"s0": (1, 256)})
    x = g.input("x", T(DType.f32, [s0, 64]))
    if norm == "layer_norm":
        h = g.apply(LayerNorm(), x, g.param("ln.w", _f32(64)), g.param("ln.b", _f32(64)))
    elif norm == "rms_norm":
        h = g.apply(RmsNorm(), x, g.param("ln.w", _f32(64)))
    else:  # a decomposed norm's scale: mul by a vector
        h = g.apply(Mul(), g.param("ln.w", _f32(64)), x)
    w1 = g.param("fc1.weight", _f32(128, 64, scale=0.1))
    h1 = g.apply(Relu(), g.apply(Linear(), h, w1, g.param("fc1.bias", _f32(128))))
    y = g.apply(Matmul(), h1, g.param("fc2.weight", _f32(128, 32, scale=0.1)))
    # residual: the norm's output is also read by something other than the linears
    g.set_outputs([y, h] if residual else [y])
    return g


def samples(n: int = 4, rows: int = 32) -> list[list[np.ndarray]]:
    """Inputs with an outlier channel (what SmoothQuant is about)."""
    boost = 1 + 8 * (np.arange(64) == 5)
    return [[(_f32(rows, 64) * boost).astype(np.float32)] for _ in range(n)]


def quantized(g: Graph, spec: str, data=None, **opts) -> tuple[Graph, PassContext]:
    qs = parse_quant_spec(spec)
    ctx = PassContext(options={"quantize": qs, **opts}, check_props=True)
    ctx.calibration = make_calibration(g, data if data is not None else samples())
    return Pipeline(qs.passes(calibrated=True)).run(g, ctx), ctx


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# -- specs --------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", VALID_FORMS)
def test_every_documented_spec_form_parses(form):
    s = parse_quant_spec(form)
    assert s.bits in (4, 8) and s.passes(calibrated=True)[0] == "collect_calibration"
    assert all(p in PASSES or p in _pass_names() for p in s.passes(True))


def _pass_names() -> set[str]:
    Pipeline([])  # loads the built-in passes
    return set(PASSES)


def test_spec_fields():
    s = parse_quant_spec("w4-gptq-g128-actorder")
    assert (s.bits, s.method, s.group, s.act_order, s.sym) == (4, "gptq", 128, True, False)
    s = parse_quant_spec("w8a8-static-smooth,alpha=0.7,skip=lm_head|embed")
    assert (s.act_bits, s.act_static, s.smooth, s.alpha, s.group) == (8, True, True, 0.7, 0)
    assert s.skips("model.lm_head.weight") and s.skips("embed.weight") and not s.skips("fc.w")
    assert s.passes(calibrated=True) == [
        "collect_calibration",
        "smooth_activations",
        "quantize_weights_rtn",
        "quantize_activations",
        "keep_sensitive_float",
    ]
    assert parse_quant_spec("w4-rtn-g64").passes(calibrated=False) == ["quantize_weights_rtn"]
    assert parse_quant_spec("w8-rtn,budget=none").budget is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "w3",
        "int4",
        "w8a4",
        "w4a4",
        "w4-foo",
        "w8a8-asym",
        "w4-rtn-actorder",
        "w8a8-g128",
        "w4-static",
        "w8a8,alpha=2",
        "w4,skip",
        "w4-g3",
        "w4,frobnicate=1",
        "w4-gptq,damp=x",
    ],
)
def test_nonsense_specs_name_the_valid_forms(bad):
    with pytest.raises(QuantSpecError) as e:
        parse_quant_spec(bad)
    assert "w4-gptq-g128" in str(e.value) and "w8a8" in str(e.value)


# -- calibration --------------------------------------------------------------------------------
def test_calibration_set_errors_name_the_input_and_shapes():
    g = mlp()
    with pytest.raises(CalibrationError, match="empty"):
        make_calibration(g, [])
    with pytest.raises(CalibrationError, match=r"input 0 \(%x\).*rank 2.*got shape \[3\]"):
        make_calibration(g, [[np.zeros(3, np.float32)]])
    with pytest.raises(CalibrationError, match=r"sample 1.*dim 1 is 32, expected 64"):
        make_calibration(g, [[_f32(2, 64)], [_f32(2, 32)]])
    with pytest.raises(CalibrationError, match=r"'x' expects f32\[s0, 64\], got a int64"):
        make_calibration(g, [[np.zeros((2, 64), np.int64)]])
    with pytest.raises(CalibrationError, match="takes 1 inputs"):
        make_calibration(g, [[_f32(2, 64), _f32(2, 64)]])
    with pytest.raises(CalibrationError, match="iterable of samples"):
        make_calibration(g, _f32(2, 64))
    cal = make_calibration(g, ({"x": a.astype(np.float64)} for a in [_f32(2, 64)]))
    assert cal.samples[0][0].dtype == np.float32  # same-kind arrays are cast


def test_quantizing_without_calibration_fails_clearly():
    with pytest.raises(CalibrationError, match="needs calibration data"):
        lmc_compile(mlp(), quantize="w4-gptq-g128")
    with pytest.raises(CalibrationError, match="needs calibration"):
        Pipeline(["quantize_weights_gptq"]).run(mlp(), PassContext())


def test_recorded_statistics_and_hessian_stream_exactly():
    g = mlp()
    data = samples(n=5, rows=150)
    ctx = PassContext()
    ctx.calibration = make_calibration(g, data)
    cal = record(g, ctx, hessians=True)
    inp = cal.inputs["fc1.weight"]
    xs = np.concatenate([run(_probe(g), d)[0] for d in data])
    assert_close(inp.hessian, 2 * xs.T.astype(np.float64) @ xs / len(xs), 1e-10, 1e-10)
    assert inp.rows == 750 and inp.sample.shape == (SAMPLE_ROWS, 64)
    assert_close(inp.stats.absmax_channel, np.abs(xs).max(0), 0, 0)
    assert inp.stats.min == xs.min() and inp.stats.max == xs.max()
    p99 = inp.stats.percentile(99)
    assert np.percentile(np.abs(xs), 99) <= p99 <= 1.1 * np.percentile(np.abs(xs), 99)


def _probe(g: Graph) -> Graph:
    """g with the layer norm's output as its output (fc1's input)."""
    p = g.copy()
    p.set_outputs([next(n for n in p.nodes if n.op.name == "layer_norm").outputs[0]])
    return p


def test_tensor_stats_percentiles_of_constant_and_zero_data():
    st = TensorStats()
    st.update(np.zeros((4, 3), np.float32))
    assert st.absmax == 0 and st.percentile(50) <= 2.0**-32
    st.update(np.full((2, 3), -3.0, np.float32))
    assert st.min == -3 and st.absmax == 3 and 2.9 < st.percentile(99) <= 3


# -- GPTQ algebra -------------------------------------------------------------------------------
def test_inverse_cholesky_is_the_upper_factor_of_the_inverse():
    x = RNG.standard_normal((200, 40))
    h = 2 * x.T @ x / 200
    u, lam, tries = inverse_cholesky(h, 0.01, "t")
    assert tries == 0 and np.allclose(u, np.triu(u))
    assert_close(u.T @ u, np.linalg.inv(h + lam * np.eye(40)), 1e-8, 1e-10)


def test_damping_grows_until_an_indefinite_hessian_factors():
    h = np.diag([1.0, 1.0, -5.0])
    u, lam, tries = inverse_cholesky(h, 0.01, "t")
    assert tries > 0 and lam > 5
    qw, info = gptq(_f32(4, 3).astype(np.float64), h, Grid(4, False), 0)
    assert info.damp_retries > 0


def _correlated(n_in: int, rows: int) -> np.ndarray:
    mix = RNG.standard_normal((n_in, n_in)) / np.sqrt(n_in)
    return RNG.standard_normal((rows, n_in)) @ (np.eye(n_in) + 0.8 * mix)


@pytest.mark.parametrize(
    "bits,group,act_order",
    [(4, 32, False), (4, 0, False), (4, 32, True), (8, 0, False), (4, 48, False)],
)
def test_gptq_output_error_is_below_round_to_nearest(bits, group, act_order):
    x = _correlated(96, 400)
    w = RNG.standard_normal((24, 96))
    h = 2 * x.T @ x / len(x)
    grid = Grid(bits, bits == 8)
    qg, _ = gptq(w, h, grid, group, act_order)
    qr = quantize_rtn(w, grid, group)
    err_g = np.linalg.norm(x @ (w - qg.dequant()).T)
    err_r = np.linalg.norm(x @ (w - qr.dequant()).T)
    assert err_g < 0.9 * err_r
    assert qg.codes.max() <= grid.maxq and qg.scales.shape == qr.scales.shape


def test_gptq_dead_inputs_and_static_act_order_groups():
    x = _correlated(64, 300)
    x[:, [3, 40]] = 0.0  # never active
    w = RNG.standard_normal((8, 64))
    h = 2 * x.T @ x / len(x)
    qw, info = gptq(w, h, Grid(4, False), 16, act_order=True)
    assert info.dead_inputs == 2
    wq = qw.dequant()
    assert np.all(wq[:, [3, 40]] == 0)
    # static groups: each group's grid comes from the original weights, in the original order
    w0 = w.copy()
    w0[:, [3, 40]] = 0
    rtn = quantize_rtn(w0, Grid(4, False), 16)
    assert_close(qw.scales, rtn.scales, 0, 0)


# -- passes on graphs ---------------------------------------------------------------------------
SPECS = [
    "w4-rtn-g32",
    "w4-gptq-g32",
    "w4-gptq-g32-actorder",
    "w8-rtn",
    "w8-gptq",
    "w4-rtn-g0-sym",
    "w8-rtn-g16-asym",
    "w8a8",
    "w8a8-static",
    "w8a8-smooth",
    "w8a8-gptq",
    "w4a8-gptq-g32",
    "w4a8-rtn-g32-static",
]


@pytest.mark.parametrize("spec", SPECS)
def test_quantized_graph_stays_within_the_declared_tolerance(spec):
    g = mlp()
    out, ctx = quantized(g, spec)
    names = {n.op.name for n in out.nodes}
    assert names & {"linear_w4", "linear_w4a8", "linear_w8", "linear_w8a8"}
    if "a8" in spec.split("-")[0]:  # every weight layer quantizes its activations too
        assert names & {"linear_w4", "linear_w8"} == set()
    assert not names & {"linear", "matmul"}, "every linear is quantized"
    assert print_graph(parse_ir(print_graph(out))) == print_graph(out)
    tol = max(PASSES[p].tolerance or (0, 0) for p in parse_quant_spec(spec).passes(True))
    for rows in (1, 17):
        x = _f32(rows, 64)
        (want,), (got,) = run(g, [x]), run(out, [x])
        assert got.dtype == want.dtype
        assert rel_err(got, want) < tol[0], spec
    stats = quant_stats(ctx.stats)
    assert set(stats) == {"fc1.weight", "fc2.weight"}
    for numbers in stats.values():
        assert numbers["output_cos"] > 0.98 and numbers["weight_sqnr_db"] > 10
    assert ctx.stats["keep_sensitive_float"]["reverted"] == []
    json.dumps(ctx.stats, allow_nan=False)  # the manifest carries these stats


def test_gptq_beats_rtn_on_every_layer_of_the_mlp():
    g = mlp()
    data = [[(_correlated(64, 64)).astype(np.float32)] for _ in range(4)]
    _, rtn = quantized(g, "w4-rtn-g32", data)
    _, gq = quantized(g, "w4-gptq-g32", data)
    r, q = quant_stats(rtn.stats), quant_stats(gq.stats)
    for name in r:
        assert q[name]["output_rel_err"] < r[name]["output_rel_err"], name


def test_weights_leave_the_store_and_skipped_layers_are_reported():
    g = mlp()
    out, ctx = quantized(g, "w4-rtn-g32,skip=fc2")
    assert "fc1.weight" not in out.weights and "fc1.weight.codes" in out.weights
    assert "fc2.weight" in out.weights
    assert ctx.stats["quantize_weights_rtn"]["skipped"] == ["fc2.weight"]
    assert quant_stats(ctx.stats)["fc2.weight"]["kind"] == "float"
    assert [n.op.name for n in out.nodes if n.op.name.startswith(("lin", "mat"))] == [
        "linear_w4",
        "matmul",
    ]


def test_mixed_precision_reverts_layers_over_budget_and_says_so():
    g = mlp()
    with pytest.warns(UserWarning, match=r"2 layer\(s\) kept in float.*fc1.weight"):
        out, ctx = quantized(g, "w4-rtn-g32,budget=0.001")
    assert ctx.stats["keep_sensitive_float"]["reverted"] == ["fc1.weight", "fc2.weight"]
    st = quant_stats(ctx.stats)
    assert st["fc1.weight"]["kind"] == "float" and st["fc1.weight"]["reverted"]
    x = _f32(9, 64)
    assert_close(run(out, [x])[0], run(g, [x])[0], 1e-5, 1e-5)


@pytest.mark.parametrize(
    "norm,residual,into",
    [
        ("layer_norm", False, "layer_norm"),
        ("rms_norm", False, "rms_norm"),
        ("mul", False, "mul"),
        ("layer_norm", True, "inserted mul"),
    ],
)
def test_smoothing_is_exact_and_folds_into_the_norm(norm, residual, into):
    g = mlp(norm, residual)
    ctx = PassContext(options={"quantize": "w8a8-smooth"}, check_props=True)
    ctx.calibration = make_calibration(g, samples())
    out = Pipeline(["smooth_activations"]).run(g, ctx)
    layers = ctx.stats["smooth_activations"]["layers"]
    assert layers["fc1.weight"]["smooth_into"] == into
    assert layers["fc1.weight"]["smooth_max"] > 1.5  # the outlier channel moved
    assert ("mul" in [n.op.name for n in out.nodes]) == (norm == "mul" or residual)
    x = samples(1)[0][0]
    assert_close(run(out, [x])[0], run(g, [x])[0], 1e-4, 1e-5)
    assert g.weights["ln.w"] is not out.weights["ln.w"] or into == "inserted mul"


def test_smoothing_lowers_static_w8a8_error_on_outlier_channels():
    g = mlp()
    x = samples(1)[0][0]
    (want,) = run(g, [x])
    plain, _ = quantized(g, "w8a8-static")
    smooth, _ = quantized(g, "w8a8-static-smooth")
    assert rel_err(run(smooth, [x])[0], want) < rel_err(run(plain, [x])[0], want)


def test_compile_with_quantize_and_calibration_reports_progress_and_stats():
    said: list[str] = []
    m = lmc_compile(mlp(), quantize="w4-gptq-g32", calibration=samples(3), progress=said.append)
    assert "calibration: sample 3/3" in said
    assert {"fc1.weight", "fc2.weight"} == set(m.quant_stats)
    assert m.quant_stats["fc1.weight"]["method"] == "gptq"
    assert "linear_w4" in m.ir
    quiet = lmc_compile(mlp(), quantize="w8a8")  # dynamic W8A8 needs no calibration
    assert "linear_w8a8" in quiet.ir and quiet.quant_stats["fc1.weight"]["kind"] == "w8a8"


# -- clip-ratio search --------------------------------------------------------------------------
def test_clip_is_the_w4_gptq_default_and_a_spec_word():
    assert parse_quant_spec("w4-gptq-g128").clip
    assert not parse_quant_spec("w4-gptq-g128-noclip").clip
    assert not parse_quant_spec("w4-rtn-g128").clip
    assert parse_quant_spec("w4-rtn-g128-clip").clip
    assert not parse_quant_spec("w8-gptq").clip
    assert parse_quant_spec("w4-gptq-g128").damp == 0.1
    assert parse_quant_spec("w4-gptq-g128,damp=0.01").damp == 0.01


@pytest.mark.parametrize("sym", [False, True])
def test_clip_search_never_rounds_worse_than_min_max(sym):
    rng = np.random.default_rng(3)
    w = rng.standard_t(3, size=(16, 64))  # heavy tails: clipping pays
    imp = rng.random(64) + 0.1
    errs = []
    for grid in (Grid(4, sym), Grid(4, sym, clip=True)):
        s, z = grid.params(w, imp)
        q = (grid.codes(w, s[:, None], z[:, None]) - z[:, None]) * s[:, None]
        errs.append(((w - q) ** 2) @ imp)
    assert np.all(errs[1] <= errs[0] + 1e-12) and errs[1].sum() < 0.9 * errs[0].sum()


def test_clipped_gptq_stays_below_rtn_and_runs_in_the_reference_op():
    x = _correlated(96, 400)
    w = RNG.standard_normal((24, 96))
    h = 2 * x.T @ x / len(x)
    qc, _ = gptq(w, h, Grid(4, False, clip=True), 32)
    qr = quantize_rtn(w, Grid(4, False), 32)
    assert np.linalg.norm(x @ (w - qc.dequant()).T) < 0.9 * np.linalg.norm(x @ (w - qr.dequant()).T)
    g0 = mlp()
    g, ctx = quantized(g0.copy(), "w4-gptq-g32")
    layers = ctx.stats["quantize_weights_gptq"]["layers"]
    assert all(v["clip"] for v in layers.values())
    assert [n.op.name for n in g.nodes].count("linear_w4") == 2
    xs = samples(1)[0]
    assert rel_err(run(g, xs)[0], run(g0, xs)[0]) < 0.2
