"""Pre-quantized ONNX models: the importer's quantize / dequantize ops, and
fuse_quantized_linear turning DequantizeLinear -> MatMul / Gemm (int8, uint8, int4 blocked)
and static QDQ activations into quantized linears, checked against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the ONNX frontend needs onnx")
ort = pytest.importorskip("onnxruntime", reason="the comparisons need onnxruntime")

from lmc.frontend.onnx import import_onnx  # noqa: E402
from lmc.ir import parse_ir, print_graph, run  # noqa: E402
from lmc.passes import PassContext, Pipeline  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tests.util import assert_close  # noqa: E402

RNG = np.random.default_rng(0)
F32 = TensorProto.FLOAT


def _model(nodes, inits, n_in=16, n_out=8, opset=21):
    graph = helper.make_graph(
        nodes,
        "q",
        [helper.make_tensor_value_info("x", F32, ["batch", n_in])],
        [helper.make_tensor_value_info("y", F32, ["batch", n_out])],
        [numpy_helper.from_array(a, k) for k, a in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def _int4_initializer(name: str, values: np.ndarray) -> onnx.TensorProto:
    return helper.make_tensor(name, TensorProto.INT4, values.shape, values.reshape(-1).tolist())


def _scales(*shape: int) -> np.ndarray:
    return (RNG.random(shape) * 0.05 + 0.01).astype(np.float32)


def matmul_i8():
    w = RNG.integers(-127, 128, (16, 8)).astype(np.int8)
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "ws"], ["w"], axis=1),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    return _model(nodes, {"wq": w, "ws": _scales(8)}), "linear_w8"


def gemm_u8_bias():
    w = RNG.integers(0, 256, (8, 16)).astype(np.uint8)
    z = RNG.integers(100, 156, 8).astype(np.uint8)
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
        helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1),
    ]
    inits = {"wq": w, "ws": _scales(8), "wz": z, "b": RNG.standard_normal(8).astype(np.float32)}
    return _model(nodes, inits), "linear_w8"


def matmul_int4_blocked():
    w = RNG.integers(-8, 8, (16, 8)).astype(np.int8)
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "ws"], ["w"], axis=0, block_size=8),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    model = _model(nodes, {"ws": _scales(2, 8)})
    model.graph.initializer.append(_int4_initializer("wq", w))
    return model, "linear_w4"


def qdq_static_w8a8():
    w = RNG.integers(-127, 128, (16, 8)).astype(np.int8)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws"], ["w"], axis=1),
        helper.make_node("MatMul", ["xd", "w"], ["y"]),
    ]
    inits = {
        "wq": w,
        "ws": _scales(8),
        "xs": np.array(0.02, np.float32),
        "xz": np.array(0, np.int8),
    }
    return _model(nodes, inits), "linear_w8a8"


@pytest.mark.parametrize("build", [matmul_i8, gemm_u8_bias, matmul_int4_blocked, qdq_static_w8a8])
def test_prequantized_onnx_becomes_a_quantized_linear(build):
    model, op = build()
    g, _ = import_onnx(model, dynamic_shapes={"x": {0: ("batch", 1, 64)}})
    assert "dequantize" in {n.op.name for n in g.nodes}, "the weight's dequantize stays a node"
    ctx = PassContext(check_props=True)
    fused = Pipeline(["fuse_quantized_linear", "eliminate_dead_nodes"]).run(g, ctx)
    names = [n.op.name for n in fused.nodes if n.op.name not in ("input", "param")]
    assert names == [op], print_graph(fused)
    assert print_graph(parse_ir(print_graph(fused))) == print_graph(fused)
    opts = ort.SessionOptions()  # unoptimized: onnxruntime may rewrite DQ -> MatMul into a
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # dynamic int8 op
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    for rows in (1, 5):
        x = RNG.standard_normal((rows, 16)).astype(np.float32)
        (want,) = sess.run(None, {"x": x})
        (before,), (after,) = run(g, [x]), run(fused, [x])
        assert_close(before, want, 1e-5, 1e-5, name=f"{build.__name__} import")
        assert_close(after, want, 1e-4, 1e-5, name=f"{build.__name__} fused")


def test_activation_only_qdq_and_per_input_channel_weights_stay_unfused():
    w = RNG.integers(-127, 128, (16, 8)).astype(np.int8)
    nodes = [  # per input channel (axis 0 of a [in, out] weight): no quantized-linear form
        helper.make_node("DequantizeLinear", ["wq", "ws"], ["w"], axis=0),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    g, _ = import_onnx(_model(nodes, {"wq": w, "ws": _scales(16)}))
    fused = Pipeline(["fuse_quantized_linear"]).run(g, PassContext())
    assert [n.op.name for n in fused.nodes if n.op.name not in ("input", "param")] == [
        "dequantize",
        "matmul",
    ]


def test_fusing_the_quant_case_graph_keeps_its_outputs():
    from pathlib import Path

    from tests.passes.harness import with_random_weights

    text = (Path(__file__).resolve().parents[1] / "cases" / "quant.lmc").read_text()
    g = with_random_weights(parse_ir(text))
    fused = Pipeline(["fuse_quantized_linear"]).run(g, PassContext(check_props=True))
    assert sum(n.op.name == "linear_w4" for n in fused.nodes) == 3  # the blocked int4 matmul
    x = RNG.standard_normal((3, 20)).astype(np.float32)
    for a, b in zip(run(fused, [x]), run(g, [x])):
        assert_close(a, b, 1e-4, 1e-4)
