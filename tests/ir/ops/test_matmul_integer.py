"""matmul_integer's reference against onnxruntime's MatMulInteger and a torch int64 matmul
(then wrapped to int32), and its shape rule (symbolic dims, rejected operands)."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.ir import DType, TensorType, sym
from lmc.ir.errors import IRTypeError
from lmc.ir.ops.quant import MatmulInteger

OP = MatmulInteger()


def _rand(rng, dt, shape):
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max + 1, shape).astype(dt)


def _onnx(a, b, za, zb):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import helper, numpy_helper

    t = {np.dtype(np.int8): onnx.TensorProto.INT8, np.dtype(np.uint8): onnx.TensorProto.UINT8}
    inits = [numpy_helper.from_array(za, "za"), numpy_helper.from_array(zb, "zb")]
    node = helper.make_node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("a", t[a.dtype], a.shape),
         helper.make_tensor_value_info("b", t[b.dtype], b.shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT32, None)],
        inits,
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"a": a, "b": b})[0]


@pytest.mark.parametrize("a_dt", [np.int8, np.uint8])
@pytest.mark.parametrize("b_dt", [np.int8, np.uint8])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 7, 5), (2, 4, 16, 9), (0, 4, 3)])
@pytest.mark.parametrize("per", ["scalar", "vector"])
def test_ref_matches_onnxruntime(a_dt, b_dt, shape, per):
    rng = np.random.default_rng(sum(shape))
    *lead, m, k, n = (1, *shape) if len(shape) == 3 else shape
    a = _rand(rng, a_dt, (*lead, m, k))
    b = _rand(rng, b_dt, (k, n))
    # onnxruntime takes zero points of the operand's dtype: per row of a, per column of b
    za = _rand(rng, a_dt, () if per == "scalar" or lead else (m,))
    zb = _rand(rng, b_dt, () if per == "scalar" else (n,))
    got = OP.ref(a, b, za.astype(np.int32), zb.astype(np.int32))
    assert got.dtype == np.int32 and got.shape == (*lead, m, n)
    np.testing.assert_array_equal(got, _onnx(a, b, za, zb))


def test_empty_contraction_gives_zeros():
    """K = 0 (onnxruntime leaves such outputs uninitialized; the sum over nothing is 0)."""
    y = OP.ref(np.zeros((5, 0), np.int8), np.zeros((0, 3), np.uint8), np.int32(4), np.int32(9))
    np.testing.assert_array_equal(y, np.zeros((5, 3), np.int32))


def test_ref_matches_torch_and_wraps():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a, b = _rand(rng, np.int8, (4, 9)), _rand(rng, np.uint8, (9, 3))
    za = np.array([2**31 - 1], np.int32)  # extreme zero points: the sums wrap modulo 2^32
    zb = np.array([-5, 7, 300], np.int32)
    want = (torch.tensor(a, dtype=torch.int64) - int(za[0])) @ (
        torch.tensor(b, dtype=torch.int64) - torch.tensor(zb, dtype=torch.int64)
    )
    want = ((want.numpy() + 2**31) % 2**32 - 2**31).astype(np.int32)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(OP.ref(a, b, za, zb), want)


def test_infer_symbolic_and_rejects_bad_operands():
    s = sym("s0")
    i32 = TensorType(DType.i32, ())
    a, b = TensorType(DType.u8, [s, 3, 8]), TensorType(DType.i8, [8, 5])
    assert OP.infer(a, b, TensorType(DType.i32, [3]), TensorType(DType.i32, [5])) == TensorType(
        DType.i32, [s, 3, 5]
    )
    bad = [
        (TensorType(DType.f32, [3, 8]), b, i32, i32),  # float a
        (a, TensorType(DType.i16, [8, 5]), i32, i32),  # 16-bit b
        (a, TensorType(DType.i8, [2, 8, 5]), i32, i32),  # batched b
        (a, TensorType(DType.i8, [7, 5]), i32, i32),  # k differs
        (TensorType(DType.u8, [8]), b, i32, i32),  # 1-D a
        (a, b, TensorType(DType.u8, []), i32),  # zero point dtype
        (a, b, TensorType(DType.i32, [4]), i32),  # per-row count
        (a, b, i32, TensorType(DType.i32, [5, 1])),  # per-column shape
    ]
    for args in bad:
        with pytest.raises(IRTypeError, match="matmul_integer"):
            OP.infer(*args)
