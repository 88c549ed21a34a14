"""`lmc build --quantize SPEC --calib FILE.npz` end to end on a MiniLM-sized ONNX block (hidden
384, FFN 1536, residual, layer norm; dynamic batch and sequence): W8A8 with calibration in both
.npz forms, weight-only RTN without calibration, the per-layer report on standard output and in
the manifest, the artifact against the quantized reference graph, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lmc import compile as lmc_compile
from lmc import load

from tests.backends.c.hostbuild import needs_cc
from tests.passes.quant_models import min_cosine
from tests.test_cli_build import build, one_error

H, F = 384, 1536
DYN = ["--dynamic", "x:0=batch:1:4", "--dynamic", "x:1=seq:1:32"]
RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def block_onnx(tmp_path_factory) -> Path:
    """y = layer_norm(x + relu(x @ W1 + b1) @ W2 + b2) over x [batch, seq, 384]."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    def init(name: str, shape: tuple[int, ...], scale: float) -> object:
        return numpy_helper.from_array(
            (RNG.standard_normal(shape) * scale).astype(np.float32), name
        )

    inits = [init("w1", (H, F), H**-0.5), init("b1", (F,), 0.1), init("w2", (F, H), F**-0.5),
             init("b2", (H,), 0.1), init("gamma", (H,), 1.0), init("beta", (H,), 0.1)]  # fmt: skip
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        helper.make_node("Add", ["h3", "b2"], ["h4"]),
        helper.make_node("Add", ["h4", "x"], ["h5"]),
        helper.make_node("LayerNormalization", ["h5", "gamma", "beta"], ["y"], axis=-1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", H])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", H])
    graph = helper.make_graph(nodes, "block", [x], [y], inits)
    path = tmp_path_factory.mktemp("onnx") / "block.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def samples(n: int = 4, seq: int = 16) -> np.ndarray:
    return RNG.standard_normal((n, 2, seq, H)).astype(np.float32)


@pytest.fixture(scope="module")
def w8a8_build(block_onnx, tmp_path_factory) -> tuple[Path, str, np.ndarray]:
    calib = samples()
    f = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(f, x=calib)  # <input> with a leading sample axis
    out = tmp_path_factory.mktemp("art") / "w8a8"
    code, stdout, stderr = build(block_onnx, "-o", out, *DYN, "--quantize", "w8a8", "--calib", f)
    assert code == 0, stderr
    return out, stdout, calib


@needs_cc
def test_w8a8_build_reports_layers_and_runs(block_onnx, w8a8_build) -> None:
    out, stdout, calib = w8a8_build
    assert "quantized layers (2):" in stdout
    rows = [ln for ln in stdout.splitlines() if " w8a8 " in ln]
    assert len(rows) == 2 and all("dB" in r for r in rows)
    manifest = json.loads((out / "manifest.json").read_text())
    stats = manifest["quant_stats"]
    assert len(stats) == 2 and all(s["kind"] == "w8a8" for s in stats.values())
    assert all(s["output_cos"] > 0.999 and s["weight_sqnr_db"] > 30 for s in stats.values())
    assert "quantize_activations" in manifest["passes"]["applied"]
    src = (out / "src" / "model.c").read_text()
    assert src.count("lmc_linear_w8a8_f32(ex") == 2
    # the artifact against the same quantization run by the reference interpreter
    ref = lmc_compile(block_onnx, quantize="w8a8", calibration=list(calib),
                      dynamic_shapes={"x": {0: ("batch", 1, 4), 1: ("seq", 1, 32)}})  # fmt: skip
    x = RNG.standard_normal((3, 7, H)).astype(np.float32)
    with load(out) as m:
        got = m.run([x])[0]
    want = ref(x)
    assert min_cosine(got.reshape(-1, H), want.reshape(-1, H)) > 0.9999
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=2e-3)


@needs_cc
def test_per_sample_calibration_and_weight_only_rtn(block_onnx, tmp_path) -> None:
    f = tmp_path / "calib.npz"
    np.savez(f, **{f"x_{k}": samples(1, seq)[0] for k, seq in enumerate((5, 9, 16))})
    code, stdout, stderr = build(
        block_onnx, "-o", tmp_path / "gptq", *DYN, "--quantize", "w4-gptq-g128", "--calib", f
    )
    assert code == 0, stderr
    assert stdout.count(" w4 ") == 2
    code, stdout, stderr = build(block_onnx, "-o", tmp_path / "rtn", *DYN, "--quantize", "w8-rtn")
    assert code == 0, stderr
    manifest = json.loads((tmp_path / "rtn" / "manifest.json").read_text())
    assert {s["kind"] for s in manifest["quant_stats"].values()} == {"w8"}
    assert (tmp_path / "rtn" / "src" / "model.c").read_text().count("lmc_linear_wq_f32(ex") == 2


@pytest.fixture(scope="module")
def zoo_lmc(tmp_path_factory):
    """name -> (.lmc file, .npz weights, calibration .npz, eval inputs, float graph) of the
    test zoo's all-MiniLM-L6-v2 (real weights) and LLaMA-architecture prefill, imported from
    torch: the files a user hands `lmc build`."""
    pytest.importorskip("transformers")
    from lmc.frontend import import_model
    from lmc.ir import print_graph

    from tests.models import ZOO

    made: dict[str, tuple] = {}

    def make(name: str) -> tuple:
        if name not in made:
            module, example, dynamic = ZOO[name].build()
            g, _ = import_model(module, example, dynamic_shapes=dynamic)
            d = tmp_path_factory.mktemp(name)
            (d / "model.lmc").write_text(print_graph(g))
            np.savez(d / "weights.npz", **g.weights)
            names = [v.name for v in g.inputs]
            cal = [[t.numpy() for t in ZOO[name].inputs(seed=10 + k, batch=2, seq=12)]
                   for k in range(4)]  # fmt: skip
            np.savez(d / "calib.npz", **{f"{n}_{k}": s[i] for k, s in enumerate(cal)
                                         for i, n in enumerate(names)})  # fmt: skip
            inputs = [t.numpy() for t in ZOO[name].inputs(seed=3, batch=1, seq=9)]
            made[name] = (d / "model.lmc", d / "weights.npz", d / "calib.npz", inputs, g, cal)
        return made[name]

    return make


@pytest.mark.slow
@needs_cc
@pytest.mark.parametrize("spec", ["w4-gptq-g128", "w8a8"])
@pytest.mark.parametrize("name", ["minilm", "llama_prefill"])
def test_real_models_quantized_by_lmc_build(zoo_lmc, tmp_path, name, spec) -> None:
    """`lmc build MODEL.lmc --weights W.npz --quantize SPEC --calib C.npz` on the real models:
    every linear quantized (the report lists them), and the artifact computes what the same
    quantization of the same graph computes in the reference interpreter."""
    model, weights, calib, inputs, g, cal = zoo_lmc(name)
    out = tmp_path / "art"
    code, stdout, stderr = build(
        model, "--weights", weights, "-o", out, "--quantize", spec, "--calib", calib
    )
    assert code == 0, stderr
    kind = spec.split("-")[0]
    stats = json.loads((out / "manifest.json").read_text())["quant_stats"]
    ref = lmc_compile(g, quantize=spec, calibration=cal)
    assert len(stats) == len(ref.quant_stats) > 0
    assert {s["kind"] for s in stats.values()} == {kind}
    assert f"quantized layers ({len(stats)}):" in stdout
    with load(out) as m:
        got = m.run(inputs)[0]
    want = ref(*inputs)
    flat = got.reshape(-1, got.shape[-1]), want.reshape(-1, want.shape[-1])
    if kind == "w4":  # float arithmetic on the same codes
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    else:  # int8 codes may flip at rounding ties of the activations (see the host tests)
        assert min_cosine(*flat) > 0.99


@needs_cc
@pytest.mark.parametrize(
    "argv,message",
    [
        (["--quantize", "w8a8"], "needs calibration data: pass --calib FILE.npz"),
        (["--quantize", "w4-gptq-g128"], "needs calibration data"),
        (["--calib", "calib.npz"], "give --quantize SPEC too"),
        (["--quantize", "w3"], "3-bit weights are not supported"),
        (["--quantize", "w8a8", "--calib", "nowhere.npz"], "no such file"),
        (["--quantize", "w8a8", "--calib", "wrong.npz"], "name no input"),
    ],
)
def test_quantize_errors(block_onnx, tmp_path, monkeypatch, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "calib.npz", x=samples(1))
    np.savez(tmp_path / "wrong.npz", inputs=samples(1))
    code, _, stderr = build(block_onnx, "-o", tmp_path / "out", *DYN, *argv)
    # errors in the arguments come before any work; a calibration file that does not fit the
    # model after the import line
    last = stderr.splitlines()[-1] + "\n"
    assert code == 1 and message in one_error(last), stderr
    assert stderr.count("lmc: error:") == 1
