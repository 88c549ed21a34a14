"""The ONNX frontend: symbols from dim_params, symbolic shape propagation, params, errors
reported all at once, quantization decompositions, and the backend API. Numerics are compared
with onnxruntime at several values of each dynamic dim."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the ONNX frontend needs onnx")
ort = pytest.importorskip("onnxruntime", reason="the comparisons need onnxruntime")

from lmc.frontend import import_model  # noqa: E402
from lmc.frontend.common import ModelImportError, UnsupportedOpsError  # noqa: E402
from lmc.frontend.onnx import import_onnx, symbol_name  # noqa: E402
from lmc.frontend.onnx_backend import LmcBackend  # noqa: E402
from lmc.ir.interpreter import run  # noqa: E402
from lmc.ir.parser import parse_ir  # noqa: E402
from lmc.ir.printer import print_graph  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tests.util import assert_close  # noqa: E402

F32 = TensorProto.FLOAT


def make_model(nodes, inputs, outputs, inits=(), opset=18):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def ort_run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def attention_block(hidden=16, heads=4):
    """x [batch, seq, hidden] -> multi-head self attention whose head split goes through
    Shape -> Gather -> Concat -> Reshape on the dynamic dims (as exporters write it)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(
        rng.standard_normal((hidden, 3 * hidden)).astype(np.float32), "w_qkv"
    )
    c = {
        name: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
        for name, v in {
            "i0": [0],
            "i1": [1],
            "heads": [heads],
            "hd": [hidden // heads],
            "neg1": [-1],
            "split": [hidden, hidden, hidden],
        }.items()
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w_qkv"], ["qkv"]),
        helper.make_node("Split", ["qkv", "split"], ["q", "k", "v"], axis=2),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "i0"], ["b"], axis=0),
        helper.make_node("Gather", ["shape", "i1"], ["s"], axis=0),
        helper.make_node("Concat", ["b", "s", "heads", "hd"], ["split_shape"], axis=0),
        helper.make_node("Concat", ["b", "s", "neg1"], ["merge_shape"], axis=0),
    ]
    for t in "qkv":
        nodes += [
            helper.make_node("Reshape", [t, "split_shape"], [t + "4"]),
            helper.make_node("Transpose", [t + "4"], [t + "h"], perm=[0, 2, 1, 3]),
        ]
    nodes += [
        helper.make_node("Transpose", ["kh"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["qh", "kt"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "vh"], ["o"]),
        helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ot", "merge_shape"], ["y"]),
    ]
    return make_model(
        nodes,
        [vi("x", F32, ["batch", "seq", hidden])],
        [vi("y", F32, ["batch", "seq", hidden])],
        [w, *c.values()],
    )


def test_dim_params_become_symbols_and_shape_chains_fold():
    model = attention_block()
    g, report = import_onnx(model)
    text = print_graph(g)
    assert g.symbols == {"batch": (1, 4096), "seq": (1, 4096)}
    assert report.symbols == g.symbols
    assert str(g.inputs[0].type) == "f32[batch, seq, 16]"
    # The shape arithmetic folded into attributes: no shape/gather/concat left at run time.
    ops = {n.op.name for n in g.nodes}
    assert not ops & {"shape", "gather", "concat"}, ops
    assert "reshape(" in text and "{shape=[batch, seq, 4, 4]}" in text
    assert print_graph(parse_ir(text)) == text
    assert "w_qkv" in g.weights and any(n.op.name == "param" for n in g.nodes)
    for batch, seq in ((1, 3), (2, 7), (3, 1)):
        x = np.random.default_rng(batch).standard_normal((batch, seq, 16)).astype(np.float32)
        (want,) = ort_run(model, {"x": x})
        (got,) = run(g, [x])
        assert_close(got, want, 1e-5, 1e-5, name=f"batch={batch} seq={seq}")


def test_dynamic_shapes_override_names_and_bounds():
    model = attention_block()
    g, _ = import_onnx(model, dynamic_shapes={"x": {0: ("B", 1, 8), 1: ("S", 2, 64)}})
    assert g.symbols == {"B": (1, 8), "S": (2, 64)}
    assert str(g.inputs[0].type) == "f32[B, S, 16]"


def test_unnamed_dynamic_dims_get_fresh_symbols_and_names_are_sanitized():
    model = make_model(
        [helper.make_node("Relu", ["a"], ["y"])],
        [vi("a", F32, [None, "batch size", "f32"])],
        [vi("y", F32, None)],
    )
    g, _ = import_onnx(model)
    names = [str(d) for d in g.inputs[0].type.shape]
    assert names[1] == "batch_size" and names[2] == "s_f32"
    assert names[0] not in names[1:] and names[0].isidentifier()
    assert all(lo == 1 and hi == 4096 for lo, hi in g.symbols.values())
    text = print_graph(g)
    assert print_graph(parse_ir(text)) == text
    assert symbol_name("2d") == "s_2d" and symbol_name("in") == "s_in"


def test_static_dim_made_dynamic_by_dynamic_shapes():
    model = make_model(
        [helper.make_node("Sigmoid", ["a"], ["y"])], [vi("a", F32, [2, 5])], [vi("y", F32, [2, 5])]
    )
    g, _ = import_onnx(model, dynamic_shapes={"a": {1: ("n", 1, 32)}})
    assert str(g.inputs[0].type) == "f32[2, n]"
    x = np.linspace(-3, 3, 22, dtype=np.float32).reshape(2, 11)
    assert_close(run(g, [x])[0], 1 / (1 + np.exp(-x)), 1e-6, 1e-6)


def test_symbolic_slice_and_range_resolve_with_bounds():
    """x[:, :seq] of a static table (as position embeddings do) stays [1, seq]."""
    table = numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(1, 64), "table")
    consts = [
        numpy_helper.from_array(np.array(v, dtype=np.int64), n)
        for n, v in (("zero", [0]), ("one", [1]), ("ax", [1]))
    ]
    nodes = [
        helper.make_node("Shape", ["ids"], ["shp"]),
        helper.make_node("Gather", ["shp", "one"], ["seq"], axis=0),
        helper.make_node("Slice", ["table", "zero", "seq", "ax"], ["pos"]),
        helper.make_node("Add", ["pos", "ids"], ["y"]),
    ]
    model = make_model(
        nodes, [vi("ids", F32, [1, "seq"])], [vi("y", F32, [1, "seq"])], [table, *consts]
    )
    g, _ = import_onnx(model, dynamic_shapes={"ids": {1: ("seq", 1, 32)}})
    assert str(g.outputs[0].type) == "f32[1, seq]"
    for n in (1, 9):
        x = np.ones((1, n), np.float32)
        assert_close(run(g, [x])[0], ort_run(model, {"ids": x})[0])


def test_every_unsupported_op_is_reported_at_once():
    nodes = [
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("NonZero", ["r"], ["nz"], name="nz1"),
        helper.make_node("Det", ["a"], ["d1"], name="det1"),
        helper.make_node("Det", ["a"], ["d2"], name="det2"),
        helper.make_node("Unique", ["a"], ["u"], name="uniq"),
    ]
    model = make_model(
        nodes,
        [vi("a", F32, [3, 3])],
        [
            vi("nz", TensorProto.INT64, None),
            vi("d1", F32, None),
            vi("d2", F32, None),
            vi("u", F32, None),
        ],
    )
    with pytest.raises(UnsupportedOpsError) as err:
        import_onnx(model)
    msg = str(err.value)
    assert "4 node(s) of 3 unsupported op kind(s)" in msg
    assert "Det (opset 18, version 22" not in msg and "Det (opset 18, version 11" in msg
    assert "2 node(s): det1, det2" in msg and "nz1" in msg and "uniq" in msg
    assert len(err.value.problems) == 3


def test_corrupt_and_truncated_files_give_one_clear_error(tmp_path):
    data = attention_block().SerializeToString()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 3])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not an onnx model at all\xff\xff\xff")
    for path in (truncated, garbage):
        with pytest.raises(ModelImportError) as err:
            import_onnx(path)
        assert path.name in str(err.value)
        assert not isinstance(err.value, UnsupportedOpsError)
    with pytest.raises(ModelImportError, match="does not exist"):
        import_model(tmp_path / "missing.onnx")


def test_import_model_dispatches_onnx_paths(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(attention_block(), str(path))
    g, report = import_model(path)
    assert report.path.startswith("onnx") and "batch" in g.symbols


def test_quantize_dequantize_round_half_to_even_like_onnxruntime():
    x = np.array(
        [-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 200.0, -300.0, 7.49, 0.0], dtype=np.float32
    )
    scale = numpy_helper.from_array(np.array(1.0, np.float32), "scale")
    for zp_dtype, zp_value in ((np.uint8, 128), (np.int8, -3)):
        zp = numpy_helper.from_array(np.array(zp_value, zp_dtype), "zp")
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"]),
        ]
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(zp_dtype))
        model = make_model(
            nodes, [vi("x", F32, [12])], [vi("q", elem, [12]), vi("y", F32, [12])], [scale, zp]
        )
        g, _ = import_onnx(model)
        assert {n.op.name for n in g.nodes} >= {"quantize", "dequantize"}
        got, want = run(g, [x]), ort_run(model, {"x": x})
        for a, b in zip(got, want):
            assert a.dtype == b.dtype
            assert_close(a, b, 0, 0, name=str(zp_dtype))


def test_per_axis_quantize_and_dynamic_quantize_match_onnxruntime():
    rng = np.random.default_rng(0)
    scale = numpy_helper.from_array(np.array([0.5, 0.25, 2.0], np.float32), "scale")
    zp = numpy_helper.from_array(np.array([1, -2, 3], np.int8), "zp")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], axis=1),
        helper.make_node("DynamicQuantizeLinear", ["x"], ["dq", "ds", "dz"]),
    ]
    model = make_model(
        nodes,
        [vi("x", F32, [2, 3, 4])],
        [
            vi("q", TensorProto.INT8, None),
            vi("dq", TensorProto.UINT8, None),
            vi("ds", F32, None),
            vi("dz", TensorProto.UINT8, None),
        ],
        [scale, zp],
    )
    g, _ = import_onnx(model)
    x = (rng.standard_normal((2, 3, 4)) * 10).astype(np.float32)
    for a, b in zip(run(g, [x]), ort_run(model, {"x": x})):
        assert_close(a, b, 1e-6, 1e-7)


def test_matmul_integer_and_gemm_match_onnxruntime():
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["i"]),
        helper.make_node("Gemm", ["x", "w", "c"], ["g"], alpha=0.5, beta=2.0, transB=1),
    ]
    inits = [
        numpy_helper.from_array(np.array(3, np.uint8), "az"),
        numpy_helper.from_array(np.array(5, np.uint8), "bz"),
        numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "c"),
    ]
    model = make_model(
        nodes,
        [
            vi("a", TensorProto.UINT8, ["m", 4]),
            vi("b", TensorProto.UINT8, [4, 5]),
            vi("x", F32, ["m", 4]),
        ],
        [vi("i", TensorProto.INT32, None), vi("g", F32, None)],
        inits,
        opset=13,
    )
    g, _ = import_onnx(model)
    for m in (2, 5):
        feeds = {
            "a": rng.integers(0, 255, (m, 4)).astype(np.uint8),
            "b": rng.integers(0, 255, (4, 5)).astype(np.uint8),
            "x": rng.standard_normal((m, 4)).astype(np.float32),
        }
        for a, b in zip(run(g, feeds), ort_run(model, feeds)):
            assert_close(a, b, 1e-5, 1e-5)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET"])
def test_conv_and_pool_auto_pad_match_onnxruntime(auto_pad):
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 2)).astype(np.float32), "w")
    kw = {"pads": [1, 0, 1, 1]} if auto_pad == "NOTSET" else {}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], auto_pad=auto_pad, strides=[2, 1], **kw),
        helper.make_node(
            "MaxPool",
            ["c"],
            ["y"],
            kernel_shape=[2, 3],
            strides=[2, 2],
            auto_pad=auto_pad if auto_pad != "NOTSET" else "VALID",
        ),
    ]
    model = make_model(nodes, [vi("x", F32, [1, 3, 7, 6])], [vi("y", F32, None)], [w])
    g, _ = import_onnx(model)
    x = rng.standard_normal((1, 3, 7, 6)).astype(np.float32)
    assert_close(run(g, [x])[0], ort_run(model, {"x": x})[0], 1e-5, 1e-5, name=auto_pad)


def test_backend_specializes_on_shape_inputs_and_runs_nodes():
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
    model = make_model(
        nodes, [vi("x", F32, [2, 6]), vi("shape", TensorProto.INT64, [2])], [vi("y", F32, None)]
    )
    rep = LmcBackend.prepare(model)
    assert rep.compiled is None and rep.specialize_on == ("shape",)
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    for shape in ([3, 4], [-1, 2], [3, 4]):
        (y,) = rep.run([x, np.array(shape, np.int64)])
        assert_close(y, x.reshape(shape))
    assert len(rep._cache) == 2  # one compile per distinct value
    node = helper.make_node("Add", ["a", "b"], ["c"])
    a = np.ones((2, 3), np.float32)
    (c,) = LmcBackend.run_node(node, [a, a])
    assert_close(c, 2 * a)
    assert LmcBackend.supports_device("CPU") and not LmcBackend.supports_device("CUDA")
