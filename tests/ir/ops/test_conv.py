"""conv, conv_transpose and pooling: references against torch, symbolic shapes, rejections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lmc.ir import DType, sym
from lmc.ir.errors import IRTypeError
from lmc.ir.ops.conv import (
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    AvgPool,
    Conv,
    ConvTranspose,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool,
    pool_out,
)
from lmc.ir.shapes import evaluate
from lmc.ir.types import TensorType

from tests.ir.ops.test_linalg import check_case, check_torch

RNG = np.random.default_rng(1)
F32 = DType.f32
s0, s1 = sym("s0"), sym("s1")
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
ADAPT_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
ADAPT_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def tt(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(a) for a in arrays]


# -- conv -----------------------------------------------------------------------------------

# (x shape, w shape, stride, symmetric pad, dilation, groups, bias)
CONVS = [
    ((2, 3, 9), (4, 3, 3), 1, 0, 1, 1, True),
    ((1, 4, 10), (6, 2, 3), 2, 1, 2, 2, False),
    ((2, 3, 7, 8), (5, 3, 3, 3), 1, 1, 1, 1, True),
    ((1, 4, 9, 6), (4, 1, 3, 2), (2, 1), (1, 0), (1, 2), 4, True),
    ((3, 2, 5, 5), (2, 2, 1, 1), 1, 0, 1, 1, False),
    ((1, 6, 1, 7), (4, 3, 1, 3), (1, 3), (0, 2), 1, 2, True),
    ((1, 2, 4, 5, 6), (4, 2, 2, 3, 2), (1, 2, 1), 1, (2, 1, 1), 1, True),
    ((2, 4, 3, 4, 5), (2, 2, 3, 1, 2), 2, (1, 0, 1), 1, 2, False),
]


def _tup(v, nd: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, tuple) else (v,) * nd


@pytest.mark.parametrize("xs,ws,stride,pad,dil,groups,bias", CONVS)
def test_conv_matches_torch(xs, ws, stride, pad, dil, groups, bias):
    nd = len(xs) - 2
    x, w, b = rand(*xs), rand(*ws), rand(ws[0])
    p = _tup(pad, nd)
    op = Conv(stride=_tup(stride, nd), padding=p + p, dilation=_tup(dil, nd), groups=groups)
    arrays = [x, w, b] if bias else [x, w]
    want = CONV[nd](*tt(x, w), torch.from_numpy(b) if bias else None, stride, pad, dil, groups)
    check_torch(op, arrays, want)


def test_conv_asymmetric_padding_and_defaults():
    x, w = rand(2, 3, 6, 7), rand(4, 3, 3, 2)
    op = Conv(stride=(2, 1), padding=(1, 0, 2, 1))
    want = F.conv2d(F.pad(*tt(x), (0, 1, 1, 2)), *tt(w), stride=(2, 1))
    check_torch(op, [x, w], want)
    check_torch(Conv(), [x, w], F.conv2d(*tt(x, w)))


# (x shape, w shape, stride, symmetric pad, output_padding, dilation, groups)
CONV_TS = [
    ((2, 3, 5), (3, 4, 3), 1, 0, 0, 1, 1),
    ((1, 4, 6), (4, 2, 3), 2, 1, 1, 1, 2),
    ((1, 2, 4, 5), (2, 3, 3, 3), 2, 1, (1, 0), 1, 1),
    ((2, 4, 3, 3), (4, 1, 2, 3), (3, 1), (0, 1), (2, 0), (1, 2), 4),
    ((1, 2, 1, 1), (2, 5, 1, 1), 1, 0, 0, 1, 1),
    ((1, 2, 3, 2, 4), (2, 2, 2, 3, 2), (2, 1, 2), (1, 1, 0), (1, 0, 0), 1, 1),
]


@pytest.mark.parametrize("xs,ws,stride,pad,opad,dil,groups", CONV_TS)
def test_conv_transpose_matches_torch(xs, ws, stride, pad, opad, dil, groups):
    nd = len(xs) - 2
    x, w, b = rand(*xs), rand(*ws), rand(ws[1] * groups)
    p = _tup(pad, nd)
    op = ConvTranspose(
        stride=_tup(stride, nd),
        padding=p + p,
        output_padding=_tup(opad, nd),
        dilation=_tup(dil, nd),
        groups=groups,
    )
    want = CONV_T[nd](*tt(x, w, b), stride, pad, opad, groups, dil)
    check_torch(op, [x, w, b], want)


def test_conv_transpose_asymmetric_padding_crops_the_full_output():
    x, w = rand(1, 2, 4, 3), rand(2, 3, 3, 2)
    full = ConvTranspose(stride=(2, 2)).ref(x, w)
    got = ConvTranspose(stride=(2, 2), padding=(1, 0, 0, 1)).ref(x, w)
    np.testing.assert_array_equal(got, full[:, :, 1:, :-1])


def test_conv_symbolic_shapes():
    x = TensorType(F32, (1, 4, s0, s1))
    op = Conv(stride=(2, 1), padding=(1, 1, 0, 2), dilation=(1, 2), groups=2)
    t = op.infer(x, TensorType(F32, (6, 2, 3, 3)))
    for a, b in [(5, 4), (16, 9), (7, 2)]:
        xp = F.pad(torch.zeros(1, 4, a, b), (1, 2, 1, 0))  # begins (1, 1), ends (0, 2)
        want = F.conv2d(xp, torch.zeros(6, 2, 3, 3), None, (2, 1), 0, (1, 2), 2).shape
        assert [evaluate(d, {"s0": a, "s1": b}) for d in t.shape] == list(want)
    t = ConvTranspose(stride=(3, 2), padding=(1, 0, 1, 0), output_padding=(2, 1)).infer(
        x, TensorType(F32, (4, 3, 3, 2))
    )
    for a in (1, 4, 9):
        want = F.conv_transpose2d(
            torch.zeros(1, 4, a, a), torch.zeros(4, 3, 3, 2), None, (3, 2), (1, 0), (2, 1)
        ).shape
        assert [evaluate(d, {"s0": a, "s1": a}) for d in t.shape] == list(want)


@pytest.mark.parametrize(
    "op,xs,ws,bs",
    [
        (Conv(), (1, 4, 8), (2, 3, 3), None),
        (Conv(groups=2), (1, 4, 8), (3, 2, 3), None),
        (Conv(), (1, 4, 8), (2, 4, 3), (3,)),
        (Conv(stride=(1, 1)), (1, 4, 8), (2, 4, 3), None),
        (Conv(padding=(1,)), (1, 4, 8), (2, 4, 3), None),
        (Conv(stride=(0,)), (1, 4, 8), (2, 4, 3), None),
        (Conv(), (1, 4, 2), (2, 4, 3), None),
        (Conv(), (4, 8), (2, 4), None),
        (Conv(), (1, 4, 8), (2, 4, 3, 3), None),
        (Conv(), (1, 4, s0), (2, 3, 3), None),
        (ConvTranspose(), (1, 4, 8), (3, 2, 3), None),
        (ConvTranspose(groups=3), (1, 3, 8), (3, 2, 3), (2,)),
        (ConvTranspose(stride=(2,), output_padding=(2,)), (1, 4, 8), (4, 2, 3), None),
        (ConvTranspose(padding=(3, 3)), (1, 4, 1), (4, 2, 3), None),
    ],
)
def test_conv_rejects(op, xs, ws, bs):
    with pytest.raises(IRTypeError, match=f"^{op.name}"):
        op.infer(TensorType(F32, xs), TensorType(F32, ws), bs and TensorType(F32, bs))
    with pytest.raises(IRTypeError, match=f"^{op.name}"):
        op.infer(TensorType(DType.i32, (1, 4, 8)), TensorType(DType.i32, (2, 4, 3)))


def test_conv_case():
    check_case("conv.lmc", ({"s0": 7, "s1": 4},))


# -- pooling --------------------------------------------------------------------------------


def test_pool_out_matches_torch_and_symbolic_form():
    """Exhaustive 1-D check of the output-length rule, static and symbolic."""
    for k in (1, 2, 3):
        for s in (1, 2, 3):
            for pad in range(k // 2 + 1):
                for ceil in (False, True):
                    sym_len = pool_out(s0, k, s, pad, pad, ceil)
                    for n in range(max(1, k - 2 * pad), 12):
                        want = F.max_pool1d(torch.zeros(1, 1, n), k, s, pad, ceil_mode=ceil)
                        assert pool_out(n, k, s, pad, pad, ceil) == want.shape[-1], (k, s, n)
                        assert evaluate(sym_len, {"s0": n}) == want.shape[-1], (k, s, n)


# (x shape, kernel, stride, symmetric pad, dilation, ceil_mode)
MAXPOOLS = [
    ((2, 3, 9), 3, 2, 1, 1, False),
    ((1, 2, 10), 2, 3, 1, 2, True),
    ((1, 2, 7, 8), 2, 2, 0, 1, True),
    ((2, 1, 9, 7), (3, 2), (2, 1), (1, 1), (2, 1), False),
    ((1, 3, 5, 5), 3, 2, 1, 1, True),
    ((1, 1, 1, 4), (1, 2), (1, 2), 0, 1, True),
    ((1, 2, 5, 4, 6), 2, (2, 1, 2), (1, 0, 1), 1, True),
]


@pytest.mark.parametrize("xs,k,stride,pad,dil,ceil", MAXPOOLS)
def test_max_pool_matches_torch(xs, k, stride, pad, dil, ceil):
    nd = len(xs) - 2
    x = rand(*xs)
    p = _tup(pad, nd)
    op = MaxPool(
        kernel=_tup(k, nd),
        stride=_tup(stride, nd),
        padding=p + p,
        dilation=_tup(dil, nd),
        ceil_mode=ceil,
    )
    check_torch(op, [x], MAX[nd](*tt(x), k, stride, pad, dil, ceil))


def test_max_pool_ints_nan_and_leading_dims():
    x = RNG.integers(-50, 50, (2, 3, 7)).astype(np.int32)
    got = MaxPool(kernel=(3,), stride=(2,), padding=(1, 1)).ref(x)
    want = F.max_pool1d(torch.from_numpy(x).double(), 3, 2, 1).numpy().astype(np.int32)
    np.testing.assert_array_equal(got, want)
    x = rand(5, 6)
    x[0, 1] = np.nan
    got = MaxPool(kernel=(2,), stride=(2,)).ref(x)  # pools the last dim of a rank-2 input
    assert np.isnan(got[0, 0]) and not np.isnan(got[1:]).any()
    want_rows = F.max_pool1d(torch.from_numpy(x)[None], 2, 2)[0].numpy()
    np.testing.assert_array_equal(got, want_rows)


# (x shape, kernel, stride, symmetric pad, ceil_mode, count_include_pad)
AVGPOOLS = [
    ((2, 3, 9), 3, 2, 1, False, True),
    ((1, 2, 10), 3, 2, 1, True, False),
    ((1, 2, 10), 3, 2, 1, True, True),
    ((1, 2, 7, 8), 2, 2, 1, True, True),
    ((2, 1, 9, 7), (3, 2), (2, 1), (1, 1), True, False),
    ((1, 3, 5, 5), 3, 3, 1, False, False),
    ((1, 1, 1, 1), 1, 1, 0, False, True),
    ((1, 2, 5, 4, 6), 2, (2, 1, 3), (1, 0, 1), True, False),
]


@pytest.mark.parametrize("xs,k,stride,pad,ceil,include", AVGPOOLS)
def test_avg_pool_matches_torch(xs, k, stride, pad, ceil, include):
    nd = len(xs) - 2
    x = rand(*xs)
    p = _tup(pad, nd)
    op = AvgPool(
        kernel=_tup(k, nd),
        stride=_tup(stride, nd),
        padding=p + p,
        ceil_mode=ceil,
        count_include_pad=include,
    )
    check_torch(op, [x], AVG[nd](*tt(x), k, stride, pad, ceil, include))


def test_avg_pool_asymmetric_padding():
    x = rand(1, 2, 6, 5)
    op = AvgPool(kernel=(3, 2), stride=(2, 2), padding=(1, 0, 0, 1), count_include_pad=True)
    want = F.avg_pool2d(F.pad(*tt(x), (0, 1, 1, 0)), (3, 2), (2, 2))
    check_torch(op, [x], want)


@pytest.mark.parametrize("xs", [(2, 3, 5), (1, 2, 4, 3), (2, 1, 3, 1, 2)])
def test_global_pools_match_torch(xs):
    x = rand(*xs)
    dims = tuple(range(2, len(xs)))
    check_torch(GlobalAvgPool(), [x], torch.from_numpy(x).mean(dims, keepdim=True))
    check_torch(GlobalMaxPool(), [x], torch.from_numpy(x).amax(dims, keepdim=True))


@pytest.mark.parametrize(
    "xs,out",
    [
        ((2, 3, 10), (3,)),
        ((1, 2, 7, 5), (3, 2)),
        ((1, 2, 4, 4), (4, 4)),
        ((1, 1, 3, 2), (5, 1)),
        ((1, 2, 5, 4, 3), (2, 3, 1)),
    ],
)
def test_adaptive_pools_match_torch(xs, out):
    nd = len(out)
    x = rand(*xs)
    check_torch(AdaptiveAvgPool(output_size=out), [x], ADAPT_AVG[nd](*tt(x), out))
    check_torch(AdaptiveMaxPool(output_size=out), [x], ADAPT_MAX[nd](*tt(x), out))


def test_pool_symbolic_shapes():
    x = TensorType(F32, (2, 3, s0, s1))
    op = MaxPool(
        kernel=(3, 2), stride=(2, 2), padding=(1, 0, 1, 1), dilation=(1, 2), ceil_mode=True
    )
    avg = AvgPool(kernel=(3, 3), stride=(2, 3), padding=(1, 1, 1, 1), ceil_mode=True)
    t, ta = op.infer(x), avg.infer(x)
    for a, b in [(4, 5), (9, 8), (2, 3)]:
        env = {"s0": a, "s1": b}
        want = F.max_pool2d(torch.zeros(1, 1, a, b + 1), (3, 2), 2, (1, 0), (1, 2), True).shape
        assert [evaluate(d, env) for d in t.shape[2:]] == list(want[2:])
        want = F.avg_pool2d(torch.zeros(1, 1, a, b), 3, (2, 3), 1, True).shape
        assert [evaluate(d, env) for d in ta.shape[2:]] == list(want[2:])
    assert GlobalAvgPool().infer(x).shape == (2, 3, 1, 1)
    assert AdaptiveMaxPool(output_size=(3,)).infer(x).shape == (2, 3, s0, 3)


@pytest.mark.parametrize(
    "op,xs",
    [
        (MaxPool(), (1, 2, 5)),
        (MaxPool(kernel=(0,)), (1, 2, 5)),
        (MaxPool(kernel=(2, 2, 2)), (2, 5, 5)),
        (MaxPool(kernel=(2,), padding=(2, 0)), (1, 2, 5)),
        (MaxPool(kernel=(2,), stride=(1, 1)), (1, 2, 5)),
        (MaxPool(kernel=(4,)), (1, 2, 3)),
        (AvgPool(kernel=(3,), padding=(1,)), (1, 2, 5)),
        (GlobalAvgPool(), (2, 5)),
        (AdaptiveAvgPool(), (1, 2, 5)),
        (AdaptiveAvgPool(output_size=(2, 0)), (1, 2, 5, 5)),
        (AdaptiveMaxPool(output_size=(2, 2, 2)), (2, 5, 5)),
    ],
)
def test_pool_rejects(op, xs):
    with pytest.raises(IRTypeError, match=f"^{op.name}"):
        op.infer(TensorType(F32, xs))


@pytest.mark.parametrize(
    "op",
    [
        AvgPool(kernel=(2,)),
        GlobalAvgPool(),
        AdaptiveAvgPool(output_size=(2,)),
        MaxPool(kernel=(2,)),
    ],
)
def test_pool_rejects_dtypes(op):
    bad = DType.bool if op.name == "max_pool" else DType.i32
    with pytest.raises(IRTypeError, match=f"^{op.name}"):
        op.infer(TensorType(bad, (1, 2, 6)))


def test_pool_case():
    check_case("pool.lmc", ({"s0": 9, "s1": 4},))
