"""quantize / dequantize against ONNX's reference and torch; the quantized linears against
torch on dequantized weights; int4 packing; shape rules and rejections; the case file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lmc.ir import DType, Graph, TensorType, run, sym
from lmc.ir.errors import IRTypeError
from lmc.ir.ops.quant import (
    Dequantize,
    LinearW4,
    LinearW4a8,
    LinearW8,
    LinearW8a8,
    Quantize,
    pack_int4,
    unpack_int4,
)

from tests.ir.ops.opcheck import apply_op, onnx_run
from tests.util import assert_close, tolerance

RNG = np.random.default_rng(0)
T = TensorType
s0 = sym("s0")


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# -- quantize / dequantize ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_quantize_per_tensor_rounds_half_to_even_like_onnx(dtype):
    x = np.array([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 300.0, -300.0, 7.49, 0.0], np.float32)
    scale, zp = np.array(1.0, np.float32), np.array(3, dtype)
    dt = DType.u8 if dtype == np.uint8 else DType.i8
    got = apply_op(Quantize(dtype=dt), x, scale, zp)
    (want,) = onnx_run("QuantizeLinear", [x, scale, zp])
    np.testing.assert_array_equal(got, want)
    back = apply_op(Dequantize(), got, scale, zp)
    np.testing.assert_array_equal(back, onnx_run("DequantizeLinear", [got, scale, zp])[0])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_per_axis_matches_onnx_and_torch(axis):
    x = rand(4, 6) * 3
    n = x.shape[axis]
    scale = (RNG.random(n) + 0.1).astype(np.float32)
    zp = RNG.integers(-5, 5, n).astype(np.int8)
    got = apply_op(Quantize(axis=axis, dtype=DType.i8), x, scale, zp)
    np.testing.assert_array_equal(got, onnx_run("QuantizeLinear", [x, scale, zp], axis=axis)[0])
    shape = [1, 1]
    shape[axis % 2] = n
    ts, tz = torch.tensor(scale).reshape(shape), torch.tensor(zp.astype(np.int64)).reshape(shape)
    want = (torch.round(torch.tensor(x) / ts) + tz).clamp(-128, 127).to(torch.int8).numpy()
    np.testing.assert_array_equal(got, want)
    back = apply_op(Dequantize(axis=axis), got, scale, zp)
    want = onnx_run("DequantizeLinear", [got, scale, zp], axis=axis)[0]
    np.testing.assert_array_equal(back, want)


@pytest.mark.parametrize("dt,npdt", [(DType.i4, np.int8), (DType.u4, np.uint8)])
def test_blocked_int4_quantize_saturates(dt, npdt):
    x = rand(6, 5) * 10
    scale = (RNG.random((2, 5)) + 0.5).astype(np.float32)  # blocks of 4 rows: ceil(6 / 4)
    q = apply_op(Quantize(axis=0, dtype=dt, block=4), x, scale)
    lo, hi = (-8, 7) if dt == DType.i4 else (0, 15)
    want = np.clip(np.rint(x / np.repeat(scale, 4, 0)[:6]), lo, hi).astype(npdt)
    np.testing.assert_array_equal(q, want)
    y = apply_op(Dequantize(axis=0, block=4), q, scale)
    assert_close(y, q.astype(np.float32) * np.repeat(scale, 4, 0)[:6], 0, 0)


def test_quantize_f16_divides_in_f16_and_empty_tensors_work():
    x = (rand(3, 4) * 7).astype(np.float16)
    s = np.array(0.3, np.float16)
    got = apply_op(Quantize(dtype=DType.u8), x, s, np.array(0, np.uint8))
    np.testing.assert_array_equal(got, onnx_run("QuantizeLinear", [x, s, np.array(0, np.uint8)])[0])
    assert apply_op(Dequantize(), got, s).dtype == np.float16
    empty = apply_op(
        Quantize(axis=1, dtype=DType.i16), np.zeros((0, 3), np.float32), np.ones(3, np.float32)
    )
    assert empty.shape == (0, 3) and empty.dtype == np.int16


def test_quantize_shape_rules_are_symbolic_and_reject_bad_operands():
    x = T(DType.f32, [s0, 8])
    assert Quantize(axis=0, dtype=DType.u8).infer(x, T(DType.f32, [s0])) == T(DType.u8, [s0, 8])
    assert (
        Dequantize(axis=1, block=3).infer(T(DType.i4, [s0, 8]), T(DType.f16, [s0, 3])).dtype
        == DType.f16
    )
    bad = [
        (Quantize(dtype=DType.f32), (x, T(DType.f32, []))),
        (Quantize(), (T(DType.i32, [2]), T(DType.f32, []))),
        (Quantize(), (x, T(DType.f32, [8]))),
        (Quantize(axis=1), (x, T(DType.f32, [7]))),
        (Quantize(axis=2), (x, T(DType.f32, [8]))),
        (Quantize(block=2), (x, T(DType.f32, []))),
        (Quantize(dtype=DType.u8), (x, T(DType.f32, []), T(DType.i8, []))),
        (Dequantize(), (T(DType.f32, [2]), T(DType.f32, []))),
        (Dequantize(axis=1, block=-1), (T(DType.i8, [2, 8]), T(DType.f32, [2, 1]))),
        (Dequantize(), (T(DType.i8, [2]), T(DType.f32, []), T(DType.u8, []))),
    ]
    for op, types in bad:
        with pytest.raises(IRTypeError, match=op.name):
            op.infer(*types)


# -- int4 packing --------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_pack_int4_low_nibble_is_the_even_column(n):
    codes = RNG.integers(0, 16, (3, n)).astype(np.uint8)
    packed = pack_int4(codes)
    assert packed.shape == (3, (n + 1) // 2)
    assert (packed[:, 0] & 15 == codes[:, 0]).all()
    if n > 1:
        assert (packed[:, 0] >> 4 == codes[:, 1]).all()
    np.testing.assert_array_equal(unpack_int4(packed, n), codes)


# -- quantized linears ---------------------------------------------------------------------------
def _torch_linear(x, w, b=None) -> np.ndarray:
    return F.linear(
        torch.tensor(x), torch.tensor(w), None if b is None else torch.tensor(b)
    ).numpy()


@pytest.mark.parametrize(
    "n_in,group,asym,bias",
    [(64, 32, True, True), (64, 0, False, False), (37, 16, True, False), (8, 128, False, True)],
)
def test_linear_w4_matches_torch_on_the_dequantized_weight(n_in, group, asym, bias):
    out = 5
    codes = RNG.integers(0, 16, (out, n_in)).astype(np.uint8)
    groups = 1 if group == 0 else -(-n_in // group)
    scales = (RNG.random((out, groups)) * 0.1).astype(np.float32)
    zeros = RNG.integers(0, 16, (out, groups)).astype(np.uint8) if asym else None
    b = rand(out) if bias else None
    x = rand(2, 3, n_in)
    cols = np.arange(n_in) // (group or n_in)
    zero = zeros[:, cols].astype(np.float32) if asym else np.float32(8)
    w = (codes.astype(np.float32) - zero) * scales[:, cols]
    args = [x, pack_int4(codes), scales] + ([zeros] if asym else []) + ([b] if bias else [])
    got = apply_op(LinearW4(group=group), *args)
    assert_close(got, _torch_linear(x, w, b), *tolerance("torch", DType.f32))


@pytest.mark.parametrize("signed", [True, False])
def test_linear_w8_matches_torch(signed):
    out, n_in = 7, 24
    x = rand(4, n_in)
    if signed:
        codes = RNG.integers(-128, 128, (out, n_in)).astype(np.int8)
        scales = (RNG.random((out, 1)) * 0.01).astype(np.float16)
        w = codes.astype(np.float32) * scales.astype(np.float32)
        got = apply_op(LinearW8(), x, codes, scales)
    else:
        codes = RNG.integers(0, 256, (out, n_in)).astype(np.uint8)
        scales = (RNG.random((out, 3)) * 0.01).astype(np.float32)
        zeros = RNG.integers(0, 256, (out, 3)).astype(np.uint8)
        cols = np.arange(n_in) // 8
        w = (codes.astype(np.float32) - zeros[:, cols]) * scales[:, cols]
        got = apply_op(LinearW8(group=8), x, codes, scales, zeros)
    assert_close(got, _torch_linear(x, w), *tolerance("torch", DType.f32))


def _w8a8_torch(x, w, sw, b=None, sx=None):
    """The W8A8 reference written with torch ops (round = half to even)."""
    xt = torch.tensor(x).reshape(-1, x.shape[-1])
    if sx is None:
        s = xt.abs().amax(-1, keepdim=True) / 127.0
    else:
        s = torch.tensor(sx).reshape(1, 1)
    q = torch.where(s > 0, torch.round(xt / torch.where(s > 0, s, 1.0)).clamp(-128, 127), 0)
    acc = q.to(torch.int64) @ torch.tensor(w).to(torch.int64).T
    y = acc.to(torch.float32) * s * torch.tensor(sw)
    if b is not None:
        y = y + torch.tensor(b)
    return acc.numpy(), y.reshape(*x.shape[:-1], -1).numpy()


@pytest.mark.parametrize("per_token", [True, False])
def test_linear_w8a8_integer_part_is_exact_and_matches_torch(per_token):
    out, n_in = 6, 300
    x = rand(2, 5, n_in) * 4
    x[0, 1] = 0.0  # an all-zero row quantizes to 0 (no division by zero)
    w = RNG.integers(-127, 128, (out, n_in)).astype(np.int8)
    sw, b = (RNG.random(out) * 0.02).astype(np.float32), rand(out)
    sx = np.array(0.05, np.float32)
    args = [x, w, sw, b] + ([] if per_token else [sx])
    got = apply_op(LinearW8a8(per_token=per_token), *args)
    _, want = _w8a8_torch(x, w, sw, b, None if per_token else sx)
    np.testing.assert_array_equal(got, want)  # same f32 operations in the same order
    assert_close(got[0, 1], b, 0, 0)


def _w4a8_torch(x, codes, scales, zeros, group, b=None, sx=None):
    """The W4A8 reference written with torch ops: activations as _w8a8_torch, weights
    (code - zero) per group, per-group int64 sums scaled in f32 in group order."""
    xt = torch.tensor(x).reshape(-1, x.shape[-1])
    n_in = xt.shape[1]
    s = xt.abs().amax(-1, keepdim=True) / 127.0 if sx is None else torch.tensor(sx).reshape(1, 1)
    q = torch.where(s > 0, torch.round(xt / torch.where(s > 0, s, 1.0)).clamp(-128, 127), 0)
    c = torch.tensor(codes.astype(np.int64))
    z = torch.full(scales.shape, 8) if zeros is None else torch.tensor(zeros.astype(np.int64))
    span = group or n_in
    t = torch.zeros(xt.shape[0], c.shape[0])
    for g in range(scales.shape[1]):
        cols = slice(g * span, (g + 1) * span)
        acc = q[:, cols].to(torch.int64) @ (c[:, cols] - z[:, g : g + 1]).T
        t = t + acc.to(torch.float32) * torch.tensor(scales[:, g])
    y = t * s
    if b is not None:
        y = y + torch.tensor(b)
    return y.reshape(*x.shape[:-1], -1).numpy()


@pytest.mark.parametrize("per_token", [True, False])
@pytest.mark.parametrize("group,asym", [(32, True), (0, False), (48, False)])
def test_linear_w4a8_matches_torch(per_token, group, asym):
    out, n_in = 7, 100
    x = rand(2, 3, n_in) * 4
    x[1, 2] = 0.0  # an all-zero row quantizes to 0: y = b
    codes = RNG.integers(0, 16, (out, n_in)).astype(np.uint8)
    groups = 1 if group == 0 else -(-n_in // group)
    scales = (RNG.random((out, groups)) * 0.02).astype(np.float32)
    zeros = RNG.integers(0, 16, (out, groups)).astype(np.uint8) if asym else None
    b, sx = rand(out), np.array(0.03, np.float32)
    args = [x, pack_int4(codes), scales] + ([zeros] if asym else []) + [b]
    args += [] if per_token else [sx]
    got = apply_op(LinearW4a8(group=group, per_token=per_token), *args)
    want = _w4a8_torch(x, codes, scales, zeros, group, b, None if per_token else sx)
    np.testing.assert_array_equal(got, want)  # same f32 operations in the same order
    if per_token:
        assert_close(got[1, 2], b, 0, 0)


def test_linear_w8a8_accumulates_beyond_f32_exactness():
    """Sums past 2**24 stay exact: the i32 accumulator, not an f32 one."""
    from lmc.ir.ops.quant import int8_matmul

    n = 4096
    q = np.full((1, n), 127, np.int8)
    q[0, 0] = 126
    w = np.full((1, n), -128, np.int8)
    assert int8_matmul(q, w)[0, 0] == -128 * (127 * n - 1)


def test_quantized_linear_shape_rules():
    x = T(DType.f32, [s0, 64])
    assert LinearW4().infer(x, T(DType.u8, [5, 32]), T(DType.f32, [5, 1])) == T(DType.f32, [s0, 5])
    assert LinearW4(group=16).infer(
        x, T(DType.u8, [5, 32]), T(DType.f16, [5, 4]), T(DType.u8, [5, 4]), T(DType.f32, [5])
    ) == T(DType.f32, [s0, 5])
    assert LinearW8a8(per_token=False).infer(
        x, T(DType.i8, [5, 64]), T(DType.f32, [5]), T(DType.f32, [])
    ) == T(DType.f32, [s0, 5])
    assert LinearW4a8(group=16, per_token=False).infer(
        x, T(DType.u8, [5, 32]), T(DType.f32, [5, 4]), T(DType.u8, [5, 4]), T(DType.f32, [5]),
        T(DType.f32, []),
    ) == T(DType.f32, [s0, 5])  # fmt: skip
    bad = [
        (LinearW4(), (x, T(DType.u8, [5, 64]), T(DType.f32, [5, 1]))),
        (LinearW4(), (x, T(DType.i8, [5, 32]), T(DType.f32, [5, 1]))),
        (LinearW4(group=16), (x, T(DType.u8, [5, 32]), T(DType.f32, [5, 1]))),
        (LinearW4(group=-1), (x, T(DType.u8, [5, 32]), T(DType.f32, [5, 1]))),
        (LinearW4(), (x, T(DType.u8, [5, 32]), T(DType.f32, [5, 1]), T(DType.f16, [5]))),
        (LinearW8(), (x, T(DType.u8, [5, 64]), T(DType.f32, [5, 1]))),
        (LinearW8(), (x, T(DType.i8, [5, 64]), T(DType.f32, [5, 1]), T(DType.u8, [5, 1]))),
        (LinearW8(), (T(DType.i32, [2, 64]), T(DType.i8, [5, 64]), T(DType.f32, [5, 1]))),
        (LinearW8a8(), (x, T(DType.i8, [5, 64]), T(DType.f32, [5]), T(DType.f32, []))),
        (LinearW8a8(per_token=False), (x, T(DType.i8, [5, 64]), T(DType.f32, [5]))),
        (LinearW8a8(), (x, T(DType.i8, [5, 64]), T(DType.f32, [5, 1]))),
        (LinearW8a8(), (T(DType.f32, [2, 200000]), T(DType.i8, [5, 200000]), T(DType.f32, [5]))),
        (LinearW4a8(), (x, T(DType.u8, [5, 32]), T(DType.f16, [5, 1]))),  # f16 scales
        (LinearW4a8(), (x, T(DType.u8, [5, 32]), T(DType.f32, [5, 1]), T(DType.f32, []))),
        (LinearW4a8(per_token=False), (x, T(DType.u8, [5, 32]), T(DType.f32, [5, 1]))),
        (LinearW4a8(group=16), (x, T(DType.u8, [5, 32]), T(DType.f32, [5, 1]))),
        (
            LinearW4a8(group=0),
            (T(DType.f32, [1, 2000000]), T(DType.u8, [5, 1000000]), T(DType.f32, [5, 1])),
        ),  # fmt: skip
    ]
    for op, types in bad:
        with pytest.raises(IRTypeError, match=op.name):
            op.infer(*types)


def test_quantized_linears_interpret_in_a_graph_at_two_batch_sizes():
    g = Graph("q", {"s0": (1, 8)})
    x = g.input("x", T(DType.f32, [s0, 16]))
    codes = g.param("c", RNG.integers(0, 256, (4, 8)).astype(np.uint8))
    scales = g.param("s", (RNG.random((4, 1)) * 0.1).astype(np.float32))
    g.set_outputs([g.apply(LinearW4(group=0), x, codes, scales)])
    for n in (1, 8):
        (y,) = run(g, [rand(n, 16)])
        assert y.shape == (n, 4)


def test_quant_case_file():
    """The case parses, prints back identically and interprets with random weights."""
    from lmc.ir import parse_ir, print_graph

    from tests.ir.ops.opcheck import CASES
    from tests.passes.harness import with_random_weights

    text = (CASES / "quant.lmc").read_text()
    assert print_graph(parse_ir(text)) == text
    g = with_random_weights(parse_ir(text))
    for n in (1, 6):
        outs = run(g, [rand(n, 20)])
        assert [o.shape for o in outs] == [(n, 6)] * 9
