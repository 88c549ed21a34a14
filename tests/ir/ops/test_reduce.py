"""Reductions, argmax/argmin and cumsum: references against torch, shape rules, the case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lmc.ir import DType, parse_ir, print_graph, run, sym, verify
from lmc.ir.dtypes import from_numpy
from lmc.ir.errors import IRTypeError
from lmc.ir.op import Op
from lmc.ir.ops import reduce as R
from lmc.ir.types import TensorType

from tests.util import assert_close, random_inputs, symbol_values, tolerance

CASES = Path(__file__).resolve().parents[2] / "cases"
F16, F32, F64, I8, I32, I64, U8, BOOL = (
    DType.f16, DType.f32, DType.f64, DType.i8, DType.i32, DType.i64, DType.u8, DType.bool,
)  # fmt: skip
s0, s1 = sym("s0"), sym("s1")
# (shape, axes): all axes, negative axes, size-1 and empty dims, rank 0.
AXES = [
    ((3, 4, 5), ()),
    ((3, 4, 5), (1,)),
    ((3, 4, 5), (-1, 0)),
    ((2, 1, 3), (1,)),
    ((4, 0, 3), (1,)),
    ((4, 0, 3), (0, 2)),
    ((6,), (-1,)),
    ((), ()),
]


def sample(shape, dt: DType, seed: int = 0) -> np.ndarray:
    r = np.random.default_rng(seed)
    if dt.is_int:
        return r.integers(-5 if dt.is_signed else 0, 6, size=shape).astype(dt.np)
    return r.standard_normal(shape).astype(dt.np)


def tt(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, order="C"))  # keeps 0-d arrays 0-d


def check(op: Op, x: np.ndarray, expected, dt: DType) -> None:
    """op.ref(x) matches expected within the torch tolerance; op.infer predicts shape/dtype."""
    got = op.ref(x)
    t = op.infer(TensorType(from_numpy(x.dtype), x.shape))
    assert got.shape == t.concrete({}) and got.dtype == t.dtype.np, (op, got.shape, got.dtype)
    want = expected.numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert_close(got, want, *tolerance("torch", dt), name=f"{op} {list(x.shape)}")


def over_axes(fn, x: torch.Tensor, axes, keepdims: bool) -> torch.Tensor:
    """torch `fn(x, dim, keepdim=True)` applied one axis at a time (for single-dim reductions)."""
    axes = [a % x.ndim for a in axes] if axes else list(range(x.ndim))
    for a in axes:
        x = fn(x, a, keepdim=True)
    return x if keepdims else x.reshape([n for i, n in enumerate(x.shape) if i not in axes])


def _sum(x, axes, keep):
    return over_axes(torch.sum, x, axes, keep)


def _mean(x, axes, keep):
    dims = [a % x.ndim for a in axes] if axes else list(range(x.ndim))
    return x.mean(dim=dims, keepdim=keep) if dims else x.clone()


def _identity_fill(x, axes, keep, largest: bool):
    """What the reference gives for max/min over an empty axis (torch rejects those)."""
    shape = over_axes(torch.sum, x, axes, keep).shape
    info = torch.finfo(x.dtype) if x.dtype.is_floating_point else torch.iinfo(x.dtype)
    inf = torch.inf if x.dtype.is_floating_point else None
    value = (inf or info.max) if largest else (-inf if inf else info.min)
    return torch.full(shape, value, dtype=x.dtype)


def _amax(x, axes, keep):
    if x.numel() == 0:
        return _identity_fill(x, axes, keep, largest=False)
    return over_axes(torch.amax, x, axes, keep)


def _amin(x, axes, keep):
    if x.numel() == 0:
        return _identity_fill(x, axes, keep, largest=True)
    return over_axes(torch.amin, x, axes, keep)


def _prod(x, axes, keep):
    return over_axes(torch.prod, x, axes, keep)


def _l1(x, axes, keep):
    return over_axes(torch.sum, x.abs(), axes, keep)


def _l2(x, axes, keep):
    return over_axes(torch.sum, x * x, axes, keep).sqrt()


def _sum_square(x, axes, keep):
    return over_axes(torch.sum, x * x, axes, keep)


def _log_sum_exp(x, axes, keep):
    return over_axes(torch.logsumexp, x, axes, keep)


REDUCES = [
    (R.ReduceSum, _sum, (F32, F64, F16, I32, I8, U8)),
    (R.ReduceMean, _mean, (F32, F64, F16)),
    (R.ReduceMax, _amax, (F32, F64, F16, I32, I8)),
    (R.ReduceMin, _amin, (F32, F64, F16, I32, U8)),
    (R.ReduceProd, _prod, (F32, F64, I32, I8)),
    (R.ReduceL1, _l1, (F32, F64, F16, I32)),
    (R.ReduceL2, _l2, (F32, F64, F16)),
    (R.ReduceSumSquare, _sum_square, (F32, F64, I32)),
    (R.ReduceLogSumExp, _log_sum_exp, (F32, F64, F16)),
]
REDUCE_CASES = [(cls, fn, dt) for cls, fn, dts in REDUCES for dt in dts]


@pytest.mark.parametrize(
    "cls,fn,dt", REDUCE_CASES, ids=[f"{c[0].name}-{c[2]}" for c in REDUCE_CASES]
)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduce_matches_torch(cls, fn, dt, keepdims):
    for i, (shape, axes) in enumerate(AXES):
        x = sample(shape, dt, seed=i)
        xt = tt(x).float() if dt == F16 and cls is not R.ReduceSum else tt(x)
        want = fn(xt, axes, keepdims)
        want = want.to(tt(x).dtype)  # integer sums/products wrap to the input dtype
        check(cls(axes=axes, keepdims=keepdims), x, want, dt)


def test_empty_reductions_give_identities():
    x = np.zeros((2, 0), np.float32)
    got = {cls.name: cls(axes=(1,)).ref(x).tolist() for cls, _, _ in REDUCES}
    assert got["reduce_sum"] == got["reduce_l1"] == got["reduce_l2"] == [0.0, 0.0]
    assert got["reduce_prod"] == [1.0, 1.0]
    assert got["reduce_max"] == got["reduce_log_sum_exp"] == [-np.inf, -np.inf]
    assert got["reduce_min"] == [np.inf, np.inf]
    assert np.isnan(got["reduce_mean"]).all()
    xi = np.zeros((0, 3), np.int8)
    assert R.ReduceMax(axes=(0,)).ref(xi).tolist() == [-128] * 3
    assert R.ReduceMin(axes=(0,)).ref(xi).tolist() == [127] * 3


def test_reduce_special_values():
    x = np.array([[1.0, np.nan, 2.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0]])
    assert np.isnan(R.ReduceMax(axes=(1,)).ref(x)[0])
    assert R.ReduceLogSumExp(axes=(1,)).ref(x)[1:].tolist() == [-np.inf, np.inf]
    big = np.array([1000.0, 1000.0], np.float32)  # no overflow: shifted by the max
    assert_close(R.ReduceLogSumExp().ref(big), np.float32(1000 + np.log(2)), 1e-6, 0)


def test_integer_sums_wrap():
    x = np.full((40,), 100, np.int8)
    assert R.ReduceSum().ref(x) == np.int8(4000 - 16 * 256)
    assert R.ReduceSum().ref(x).dtype == np.int8


# -- argmax / argmin ----------------------------------------------------------------------

ARG_SHAPES = [((3, 4, 5), 1), ((3, 4, 5), -1), ((4,), 0), ((2, 1, 3), 1), ((0, 3), 1)]


@pytest.mark.parametrize("cls,fn", [(R.Argmax, torch.argmax), (R.Argmin, torch.argmin)])
@pytest.mark.parametrize("dt", [F32, F64, F16, I32, U8], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_arg_matches_torch(cls, fn, dt, keepdims):
    for i, (shape, axis) in enumerate(ARG_SHAPES):
        x = sample(shape, dt, seed=i)
        if dt == F32 and x.size:
            x.reshape(-1)[1] = np.nan  # NaN counts as the max and as the min, like torch
        want = fn(tt(x), dim=axis, keepdim=keepdims)
        check(cls(axis=axis, keepdims=keepdims), x, want, I64)


@pytest.mark.parametrize("cls,fn", [(R.Argmax, np.argmax), (R.Argmin, np.argmin)])
def test_arg_select_last_index(cls, fn):
    x = np.array([[1, 3, 3, 0, 0], [2, 2, 2, 2, 2]], np.int32)  # ties
    first = cls(axis=1).ref(x)
    last = cls(axis=1, select_last_index=True).ref(x)
    assert first.tolist() == fn(x, axis=1).tolist()
    assert last.tolist() == ([2, 4] if cls is R.Argmax else [4, 4])
    assert cls(axis=0, keepdims=True, select_last_index=True).ref(x).shape == (1, 5)


def test_arg_of_an_empty_axis_is_an_error():
    with pytest.raises(IRTypeError, match="argmax"):
        R.Argmax(axis=1).infer(TensorType(F32, [3, 0]))
    with pytest.raises(ValueError, match="argmin"):
        R.Argmin(axis=0).ref(np.zeros((0, 2), np.float32))


# -- cumsum -------------------------------------------------------------------------------


def torch_cumsum(x: torch.Tensor, axis: int, exclusive: bool, reverse: bool) -> torch.Tensor:
    y = x.flip(axis) if reverse else x
    c = torch.cumsum(y, axis)
    if exclusive:
        c = c - y  # exact for integers, within tolerance for floats
    return (c.flip(axis) if reverse else c).to(x.dtype)


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dt", [F32, F64, F16, I32, I8], ids=str)
def test_cumsum_matches_torch(exclusive, reverse, dt):
    for i, (shape, axis) in enumerate(ARG_SHAPES):
        x = sample(shape, dt, seed=i)
        xt = tt(x).float() if dt == F16 else tt(x)
        want = torch_cumsum(xt, axis, exclusive, reverse).to(tt(x).dtype)
        check(R.Cumsum(axis=axis, exclusive=exclusive, reverse=reverse), x, want, dt)


def test_cumsum_exclusive_reverse_exact():
    x = np.array([1, 2, 3, 4], np.int32)
    assert R.Cumsum(exclusive=True).ref(x).tolist() == [0, 1, 3, 6]
    assert R.Cumsum(reverse=True).ref(x).tolist() == [10, 9, 7, 4]
    assert R.Cumsum(exclusive=True, reverse=True).ref(x).tolist() == [9, 7, 4, 0]


# -- shape rules --------------------------------------------------------------------------


def test_infer_symbolic_shapes():
    t = TensorType
    x = t(F32, [s0, 4, s1])
    assert R.ReduceSum(axes=(1,)).infer(x) == t(F32, [s0, s1])
    assert R.ReduceMean(axes=(-1,), keepdims=True).infer(x) == t(F32, [s0, 4, 1])
    assert R.ReduceMax().infer(x) == t(F32, [])
    assert R.ReduceL2(axes=(2, 0)).infer(x) == t(F32, [4])
    assert R.ReduceLogSumExp(keepdims=True).infer(x) == t(F32, [1, 1, 1])
    assert R.ReduceProd(axes=(0,)).infer(t(I32, [s0 + 1, 2])) == t(I32, [2])
    assert R.Argmax(axis=-1).infer(x) == t(I64, [s0, 4])
    assert R.Argmin(axis=0, keepdims=True).infer(x) == t(I64, [1, 4, s1])
    assert R.Cumsum(axis=-2).infer(x) == x


REJECTS = [
    (R.ReduceSum(axes=(3,)), (F32, [s0, 4, 5])),
    (R.ReduceSum(axes=(-4,)), (F32, [s0, 4, 5])),
    (R.ReduceSum(axes=(1, -2)), (F32, [s0, 4, 5])),  # the same axis twice
    (R.ReduceSum(), (BOOL, [3])),
    (R.ReduceMax(), (DType.i4, [3])),
    (R.ReduceMean(), (I32, [3])),
    (R.ReduceL2(), (I32, [3])),
    (R.ReduceLogSumExp(axes=(0,)), (I8, [3])),
    (R.Argmax(axis=2), (F32, [s0, 4])),
    (R.Argmax(), (F32, [])),
    (R.Argmin(axis=0), (F32, [0, s0])),
    (R.Argmin(), (BOOL, [3])),
    (R.Cumsum(axis=-3), (F32, [s0, 4])),
    (R.Cumsum(), (BOOL, [s0])),
]


@pytest.mark.parametrize("op,t", REJECTS, ids=[f"{r[0].name}-{i}" for i, r in enumerate(REJECTS)])
def test_infer_rejects(op, t):
    with pytest.raises(IRTypeError, match=op.name):
        op.infer(TensorType(*t))


# -- case ---------------------------------------------------------------------------------


def test_case():
    """reduce.lmc parses, verifies, prints back identically and interprets at two symbol
    values; it uses every op of the family."""
    text = (CASES / "reduce.lmc").read_text()
    g = parse_ir(text)
    verify(g)
    assert print_graph(g) == text
    envs = symbol_values(g)
    assert len(envs) >= 2
    for env in envs:
        outs = run(g, random_inputs(g, env))
        for v, o in zip(g.outputs, outs):
            assert o.shape == v.type.concrete(env) and o.dtype == v.type.dtype.np
    ops = {c.name for c in vars(R).values() if isinstance(c, type) and "name" in c.__dict__}
    assert ops - {n.op.name for n in g.nodes} == set()
